//! Tokens to a [`Query`]: a recursive-descent parser with a nesting limit.

use super::lexer::{err, snippet, Lexer, Tok, Token};
use super::{Query, QueryError, Value, MAX_DEPTH, MAX_QUERY_LEN};

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Token>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token, QueryError> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lex.next_token()?,
        };
        Ok(self.peeked.insert(t))
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    fn describe(&self, t: &Token) -> String {
        let text = snippet(self.lex.src.get(t.start..t.end).unwrap_or(""));
        match &t.tok {
            Tok::Eof => "end of input".to_string(),
            Tok::LParen | Tok::RParen | Tok::Comma => format!("'{text}'"),
            Tok::Op(_) => format!("operator '{text}'"),
            Tok::And | Tok::Or | Tok::Not | Tok::In | Tok::Has => {
                if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    format!("keyword '{text}'")
                } else {
                    format!("operator '{text}'")
                }
            }
            Tok::Bool(_) => format!("keyword '{text}'"),
            Tok::Num(_) => format!("number {text}"),
            Tok::Str(_) => format!("string {text}"),
            Tok::Word(_) => format!("word '{text}'"),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                at,
                format!("nesting too deep: expected at most {MAX_DEPTH} levels of '(' and NOT"),
            );
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Query, QueryError> {
        let mut items = vec![self.and_expr()?];
        while self.peek()?.tok == Tok::Or {
            self.next()?;
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Query::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Query, QueryError> {
        let mut items = vec![self.unary()?];
        while self.peek()?.tok == Tok::And {
            self.next()?;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Query::And(items)
        })
    }

    fn unary(&mut self) -> Result<Query, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Not => {
                self.enter(t.start)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Query::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.enter(t.start)?;
                let inner = self.or_expr()?;
                self.depth -= 1;
                let close = self.next()?;
                if close.tok != Tok::RParen {
                    return err(
                        close.start,
                        format!(
                            "expected AND, OR or ')' (to close '(' at byte {}), found {}",
                            t.start,
                            self.describe(&close)
                        ),
                    );
                }
                Ok(inner)
            }
            Tok::Has => {
                let f = self.next()?;
                let field = self.field(&f, "after HAS")?;
                Ok(Query::Has { field })
            }
            Tok::Word(_) => {
                let field = self.field(&t, "")?;
                self.comparison_rest(field)
            }
            _ => err(
                t.start,
                format!(
                    "expected a comparison (field op value), '(', NOT or HAS, found {}",
                    self.describe(&t)
                ),
            ),
        }
    }

    /// Checks that `t` is a field name: idents joined by '.'.
    fn field(&self, t: &Token, context: &str) -> Result<String, QueryError> {
        let context = if context.is_empty() {
            String::new()
        } else {
            format!(" {context}")
        };
        let Tok::Word(w) = &t.tok else {
            return err(
                t.start,
                format!("expected a field name{context}, found {}", self.describe(t)),
            );
        };
        let b = w.as_bytes();
        let mut ident_start = true;
        let mut bad = None;
        for (i, &c) in b.iter().enumerate() {
            if ident_start {
                if c.is_ascii_alphabetic() || c == b'_' {
                    ident_start = false;
                } else {
                    bad = Some(i);
                    break;
                }
            } else if c == b'.' {
                ident_start = true;
            } else if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
                bad = Some(i);
                break;
            }
        }
        if bad.is_none() && ident_start {
            bad = Some(b.len());
        }
        match bad {
            None => Ok(w.clone()),
            Some(i) => err(
                t.start + i,
                format!(
                    "expected a field name{context} (identifiers joined by '.'), found {}",
                    self.describe(t)
                ),
            ),
        }
    }

    fn comparison_rest(&mut self, field: String) -> Result<Query, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Op(op) => {
                let value = self.value()?;
                Ok(Query::Cmp { field, op, value })
            }
            Tok::In => {
                let open = self.next()?;
                if open.tok != Tok::LParen {
                    return err(
                        open.start,
                        format!("expected '(' after IN, found {}", self.describe(&open)),
                    );
                }
                let mut values = vec![self.value()?];
                loop {
                    let t = self.next()?;
                    match t.tok {
                        Tok::Comma => values.push(self.value()?),
                        Tok::RParen => break,
                        _ => {
                            return err(
                                t.start,
                                format!(
                                    "expected ',' or ')' in IN list (opened at byte {}), found {}",
                                    open.start,
                                    self.describe(&t)
                                ),
                            )
                        }
                    }
                }
                Ok(Query::In { field, values })
            }
            _ => err(
                t.start,
                format!(
                    "expected an operator (= == != < <= > >= ~) or IN after field '{}', found {}",
                    snippet(&field),
                    self.describe(&t)
                ),
            ),
        }
    }

    fn value(&mut self) -> Result<Value, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Num(v) => Ok(v),
            Tok::Str(s) | Tok::Word(s) => Ok(Value::Str(s)),
            Tok::Bool(b) => Ok(Value::Bool(b)),
            _ => err(
                t.start,
                format!(
                    "expected a value (number, quoted string, true, false or bareword), found {}",
                    self.describe(&t)
                ),
            ),
        }
    }
}

/// Parses a query (see the module docs for the grammar). Never panics;
/// rejects input over [`MAX_QUERY_LEN`] bytes or nested deeper than
/// [`MAX_DEPTH`].
pub fn parse(s: &str) -> Result<Query, QueryError> {
    if s.len() > MAX_QUERY_LEN {
        return err(
            MAX_QUERY_LEN,
            format!(
                "query too long: expected at most {MAX_QUERY_LEN} bytes, found {}",
                s.len()
            ),
        );
    }
    let mut p = Parser {
        lex: Lexer { src: s, pos: 0 },
        peeked: None,
        depth: 0,
    };
    let q = p.or_expr().map_err(|mut e| {
        if s.trim().is_empty() {
            e.message = format!("empty query: {}", e.message);
        }
        e
    })?;
    let t = p.next()?;
    if t.tok != Tok::Eof {
        return err(
            t.start,
            format!("expected AND, OR or end of input, found {}", p.describe(&t)),
        );
    }
    Ok(q)
}

impl std::str::FromStr for Query {
    type Err = QueryError;

    /// Same as [`parse`].
    fn from_str(s: &str) -> Result<Query, QueryError> {
        parse(s)
    }
}

#[cfg(test)]
mod tests {
    use crate::query::testing::{cmp, eq, p, perr, s};
    use crate::query::{parse, Op, Query, Value, MAX_DEPTH, MAX_QUERY_LEN};

    // ----- parsing -----

    #[test]
    fn parses_the_cli_example() {
        assert_eq!(
            p("metadata.accuracy > 0.9 AND framework = pytorch"),
            Query::And(vec![
                cmp("metadata.accuracy", Op::Gt, Value::Float(0.9)),
                cmp("framework", Op::Eq, s("pytorch")),
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            p("a=1 OR b=2 AND c=3"),
            Query::Or(vec![eq("a", 1), Query::And(vec![eq("b", 2), eq("c", 3)])])
        );
        assert_eq!(
            p("a=1 AND b=2 OR c=3"),
            Query::Or(vec![Query::And(vec![eq("a", 1), eq("b", 2)]), eq("c", 3)])
        );
        assert_eq!(
            p("a=1 OR b=2 OR c=3"),
            Query::Or(vec![eq("a", 1), eq("b", 2), eq("c", 3)])
        );
    }

    #[test]
    fn parentheses_group_and_are_not_flattened() {
        assert_eq!(
            p("(a=1 OR b=2) AND c=3"),
            Query::And(vec![Query::Or(vec![eq("a", 1), eq("b", 2)]), eq("c", 3)])
        );
        assert_eq!(
            p("a=1 AND (b=2 AND c=3)"),
            Query::And(vec![eq("a", 1), Query::And(vec![eq("b", 2), eq("c", 3)])])
        );
        assert_eq!(p("((a = 1))"), eq("a", 1));
    }

    #[test]
    fn not_binds_tightest() {
        assert_eq!(
            p("NOT a=1 AND b=2"),
            Query::And(vec![Query::Not(Box::new(eq("a", 1))), eq("b", 2)])
        );
        assert_eq!(
            p("NOT (a=1 AND b=2)"),
            Query::Not(Box::new(Query::And(vec![eq("a", 1), eq("b", 2)])))
        );
        assert_eq!(
            p("a=1&&!b=2"),
            Query::And(vec![eq("a", 1), Query::Not(Box::new(eq("b", 2)))])
        );
        assert_eq!(
            p("!!a=1"),
            Query::Not(Box::new(Query::Not(Box::new(eq("a", 1)))))
        );
    }

    #[test]
    fn in_and_has() {
        assert_eq!(
            p("tag IN (prod, 'staging', 3, true)"),
            Query::In {
                field: "tag".into(),
                values: vec![s("prod"), s("staging"), Value::Int(3), Value::Bool(true)],
            }
        );
        assert_eq!(
            p("x in(1)"),
            Query::In {
                field: "x".into(),
                values: vec![Value::Int(1)]
            }
        );
        assert_eq!(
            p("HAS metadata.f1"),
            Query::Has {
                field: "metadata.f1".into()
            }
        );
    }

    #[test]
    fn all_operators() {
        for (text, op) in [
            ("=", Op::Eq),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
            ("~", Op::Prefix),
        ] {
            assert_eq!(
                p(&format!("x{text}1")),
                cmp("x", op, Value::Int(1)),
                "{text}"
            );
        }
    }

    #[test]
    fn quoted_strings_and_escapes() {
        assert_eq!(p(r#"n = 'it\'s'"#), cmp("n", Op::Eq, s("it's")));
        assert_eq!(p(r#"n = "say \"hi\"""#), cmp("n", Op::Eq, s("say \"hi\"")));
        assert_eq!(
            p(r#"n = 'back\\slash'"#),
            cmp("n", Op::Eq, s("back\\slash"))
        );
        assert_eq!(p(r#"n = 'mixed "q"'"#), cmp("n", Op::Eq, s("mixed \"q\"")));
        assert_eq!(p(r#"n = """#), cmp("n", Op::Eq, s("")));
        assert_eq!(p("n = 'naïve ✓'"), cmp("n", Op::Eq, s("naïve ✓")));
        assert_eq!(p("n = 'AND'"), cmp("n", Op::Eq, s("AND")));
    }

    #[test]
    fn numbers() {
        assert_eq!(p("x = -3"), eq("x", -3));
        assert_eq!(p("x=-3"), eq("x", -3));
        assert_eq!(p("x = -9223372036854775808"), eq("x", i64::MIN));
        assert_eq!(p("x = 1e3"), cmp("x", Op::Eq, Value::Float(1000.0)));
        assert_eq!(p("x = -2.5E-3"), cmp("x", Op::Eq, Value::Float(-0.0025)));
        assert_eq!(p("x = 1.5e+2"), cmp("x", Op::Eq, Value::Float(150.0)));
        assert_eq!(p("x = 5."), cmp("x", Op::Eq, Value::Float(5.0)));
        assert_eq!(p("x = 0.9"), cmp("x", Op::Eq, Value::Float(0.9)));
    }

    #[test]
    fn barewords_and_booleans() {
        assert_eq!(p("x = resnet-50"), cmp("x", Op::Eq, s("resnet-50")));
        assert_eq!(
            p("x ~ s3://bucket/a.b"),
            cmp("x", Op::Prefix, s("s3://bucket/a.b"))
        );
        assert_eq!(p("x >= 2024-01-01"), cmp("x", Op::Ge, s("2024-01-01")));
        assert_eq!(p("x = 1.2.3"), cmp("x", Op::Eq, s("1.2.3")));
        assert_eq!(p("x = TRUE"), cmp("x", Op::Eq, Value::Bool(true)));
        assert_eq!(p("x = false"), cmp("x", Op::Eq, Value::Bool(false)));
    }

    #[test]
    fn keywords_are_case_insensitive_and_have_synonyms() {
        let want = Query::Or(vec![
            Query::And(vec![Query::Not(Box::new(eq("a", 1))), eq("b", 2)]),
            Query::Has { field: "c".into() },
        ]);
        for q in [
            "NOT a=1 AND b=2 OR HAS c",
            "not a=1 and b=2 or has c",
            "Not a=1 aNd b=2 Or HaS c",
            "!a=1 && b=2 || HAS c",
            "! a = 1&&b = 2||has c",
            "!a=1&&b=2||HAS c",
        ] {
            assert_eq!(p(q), want, "{q}");
        }
    }

    #[test]
    fn from_str_matches_parse() {
        let q: Query = "a = 1".parse().unwrap();
        assert_eq!(q, eq("a", 1));
        assert_eq!("".parse::<Query>(), parse(""));
    }

    // ----- errors -----

    #[test]
    fn error_empty_query() {
        let e = perr("");
        assert_eq!(e.at, 0);
        assert!(e.message.contains("empty query"), "{e}");
        assert!(e.message.contains("found end of input"), "{e}");
        let e = perr("   ");
        assert_eq!(e.at, 3);
        assert!(e.message.contains("empty query"), "{e}");
    }

    #[test]
    fn error_dangling_operator() {
        let e = perr("a = 1 AND");
        assert_eq!(e.at, 9);
        assert!(e.message.contains("expected a comparison"), "{e}");
        assert!(e.message.contains("found end of input"), "{e}");
        let e = perr("a =");
        assert_eq!(e.at, 3);
        assert!(e.message.contains("expected a value"), "{e}");
        let e = perr("a = 1 OR OR b = 2");
        assert_eq!(e.at, 9);
        assert!(e.message.contains("found keyword 'OR'"), "{e}");
        let e = perr("a = 1 || && b");
        assert_eq!(e.at, 9);
        assert!(e.message.contains("found operator '&&'"), "{e}");
        let e = perr("NOT");
        assert_eq!(e.at, 3);
    }

    #[test]
    fn error_unclosed_paren() {
        let e = perr("(a = 1 AND (b = 2)");
        assert_eq!(e.at, 18);
        assert!(e.message.contains("')'"), "{e}");
        assert!(e.message.contains("at byte 0"), "{e}");
        assert!(e.message.contains("found end of input"), "{e}");
        let e = perr("x IN (1, 2");
        assert_eq!(e.at, 10);
        assert!(e.message.contains("expected ',' or ')'"), "{e}");
    }

    #[test]
    fn error_unclosed_quote() {
        let e = perr("name = 'abc");
        assert_eq!(e.at, 7);
        assert!(e.message.contains("unterminated string"), "{e}");
        assert!(e.message.contains("expected closing '"), "{e}");
        let e = perr(r#"name = "ab\"#);
        assert_eq!(e.at, 7);
        assert!(e.message.contains("unterminated"), "{e}");
        let e = perr(r"name = 'a\nb'");
        assert_eq!(e.at, 9);
        assert!(e.message.contains("unknown escape"), "{e}");
    }

    #[test]
    fn error_unknown_operator() {
        for (q, at) in [
            ("a => 1", 2),
            ("a <> 1", 2),
            ("a =~ x", 2),
            ("a & b", 2),
            ("a | b", 2),
            ("a === 1", 2),
            ("a !== 1", 2),
            ("a=1 &&& b=1", 4),
        ] {
            let e = perr(q);
            assert_eq!(e.at, at, "{q}: {e}");
            assert!(e.message.contains("unknown operator"), "{q}: {e}");
        }
        let e = perr("a 1");
        assert_eq!(e.at, 2);
        assert!(e.message.contains("expected an operator"), "{e}");
        assert!(e.message.contains("found number 1"), "{e}");
        let e = perr("a # 1");
        assert_eq!(e.at, 2);
        assert!(e.message.contains("found '#'"), "{e}");
        let e = perr("a = é");
        assert_eq!(e.at, 4);
        assert!(e.message.contains("'é'"), "{e}");
    }

    #[test]
    fn error_trailing_garbage() {
        let e = perr("a = 1 b");
        assert_eq!(e.at, 6);
        assert!(
            e.message.contains("expected AND, OR or end of input"),
            "{e}"
        );
        assert!(e.message.contains("found word 'b'"), "{e}");
        let e = perr("a = 1)");
        assert_eq!(e.at, 5);
        assert!(e.message.contains("found ')'"), "{e}");
    }

    #[test]
    fn error_bad_fields_and_values() {
        let e = perr("a..b = 1");
        assert_eq!(e.at, 2);
        assert!(e.message.contains("expected a field name"), "{e}");
        let e = perr("a:b = 1");
        assert_eq!(e.at, 1);
        let e = perr("a. = 1");
        assert_eq!(e.at, 2);
        let e = perr("HAS 3");
        assert_eq!(e.at, 4);
        assert!(e.message.contains("expected a field name after HAS"), "{e}");
        let e = perr("x = AND");
        assert_eq!(e.at, 4);
        assert!(e.message.contains("found keyword 'AND'"), "{e}");
        let e = perr("x = 99999999999999999999");
        assert_eq!(e.at, 4);
        assert!(e.message.contains("out of range"), "{e}");
        let e = perr("x = 1e999");
        assert_eq!(e.at, 4);
        assert!(e.message.contains("finite"), "{e}");
        let e = perr("x = -abc");
        assert_eq!(e.at, 4);
        let e = perr("x IN 1");
        assert_eq!(e.at, 5);
        assert!(e.message.contains("expected '(' after IN"), "{e}");
        let e = perr("x IN ()");
        assert_eq!(e.at, 6);
        assert!(e.message.contains("expected a value"), "{e}");
    }

    #[test]
    fn error_too_deep() {
        // 10,000 '(' must error, not overflow the stack (too long here).
        let e = perr(&"(".repeat(10_000));
        assert_eq!(e.at, MAX_QUERY_LEN);
        // Within the length limit: the depth limit trips.
        let e = perr(&"(".repeat(4000));
        assert_eq!(e.at, MAX_DEPTH);
        assert!(e.message.contains("nesting too deep"), "{e}");
        let e = perr(&"NOT ".repeat(1000));
        assert_eq!(e.at, 4 * MAX_DEPTH);
        assert!(e.message.contains("nesting too deep"), "{e}");
        let e = perr(&"!".repeat(4000));
        assert_eq!(e.at, MAX_DEPTH);
        // Exactly MAX_DEPTH levels is fine.
        let q = format!("{}a=1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(p(&q), eq("a", 1));
        let q = format!("{}a=1", "NOT ".repeat(MAX_DEPTH));
        assert!(parse(&q).is_ok());
    }

    #[test]
    fn error_too_long() {
        let long = format!("a = '{}'", "x".repeat(MAX_QUERY_LEN));
        let e = perr(&long);
        assert_eq!(e.at, MAX_QUERY_LEN);
        assert!(e.message.contains("too long"), "{e}");
        let ok = format!("a = '{}'", "x".repeat(MAX_QUERY_LEN - 6));
        assert_eq!(ok.len(), MAX_QUERY_LEN);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn error_display_format() {
        let e = perr("a = 1 b");
        assert_eq!(
            e.to_string(),
            "bad query at byte 6: expected AND, OR or end of input, found word 'b'"
        );
    }
}
