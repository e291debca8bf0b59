//! Query text to tokens.

use super::{Op, QueryError, Value};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    Comma,
    Op(Op),
    And,
    Or,
    Not,
    In,
    Has,
    Bool(bool),
    Num(Value),
    Str(String),
    Word(String),
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) fn err<T>(at: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        at,
        message: message.into(),
    })
}

/// At most 32 characters of `s`, with an ellipsis if cut.
pub(super) fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(32).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

pub(super) fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':' | b'/')
}

fn is_op_char(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'<' | b'>' | b'~' | b'&' | b'|')
}

pub(super) struct Lexer<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
}

impl<'a> Lexer<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    /// The character at byte `at`, described for an error message.
    fn char_at(&self, at: usize) -> String {
        match self.src.get(at..).and_then(|r| r.chars().next()) {
            Some(c) => format!("{c:?}"),
            None => "end of input".to_string(),
        }
    }

    pub(super) fn next_token(&mut self) -> Result<Token, QueryError> {
        let b = self.bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = b.get(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
        };
        let single = |tok| Token {
            tok,
            start,
            end: start + 1,
        };
        let t = match c {
            b'(' => single(Tok::LParen),
            b')' => single(Tok::RParen),
            b',' => single(Tok::Comma),
            b'\'' | b'"' => self.string(c)?,
            b'0'..=b'9' | b'-' => self.number()?,
            c if c.is_ascii_alphabetic() || c == b'_' => self.word(),
            c if is_op_char(c) => self.operator()?,
            _ => {
                return err(
                    start,
                    format!(
                        "expected a field, value, operator or parenthesis, found {}",
                        self.char_at(start)
                    ),
                )
            }
        };
        self.pos = t.end;
        Ok(t)
    }

    /// Longest known operator at the cursor. It may be followed directly
    /// by `!` (`a=1&&!b=2`, `!!x`) but by no other operator character, so
    /// `=>`, `<>`, `=~`, `===` are reported as unknown operators.
    fn operator(&self) -> Result<Token, QueryError> {
        let b = self.bytes();
        let start = self.pos;
        let rest = &b[start..];
        let two = match rest {
            [b'=', b'=', ..] => Some(Tok::Op(Op::Eq)),
            [b'!', b'=', ..] => Some(Tok::Op(Op::Ne)),
            [b'<', b'=', ..] => Some(Tok::Op(Op::Le)),
            [b'>', b'=', ..] => Some(Tok::Op(Op::Ge)),
            [b'&', b'&', ..] => Some(Tok::And),
            [b'|', b'|', ..] => Some(Tok::Or),
            _ => None,
        };
        let known = match two {
            Some(t) => Some((t, 2)),
            None => match rest.first() {
                Some(b'=') => Some((Tok::Op(Op::Eq), 1)),
                Some(b'<') => Some((Tok::Op(Op::Lt), 1)),
                Some(b'>') => Some((Tok::Op(Op::Gt), 1)),
                Some(b'~') => Some((Tok::Op(Op::Prefix), 1)),
                Some(b'!') => Some((Tok::Not, 1)),
                _ => None,
            },
        };
        match known {
            Some((tok, len)) if !matches!(b.get(start + len), Some(&c) if is_op_char(c) && c != b'!') => {
                Ok(Token {
                    tok,
                    start,
                    end: start + len,
                })
            }
            _ => {
                let mut end = start;
                while end < b.len() && is_op_char(b[end]) {
                    end += 1;
                }
                err(
                    start,
                    format!(
                        "unknown operator: expected one of = == != < <= > >= ~ && || !, found {:?}",
                        snippet(&self.src[start..end])
                    ),
                )
            }
        }
    }

    fn word(&self) -> Token {
        let b = self.bytes();
        let start = self.pos;
        let mut end = start;
        while end < b.len() && is_bare(b[end]) {
            end += 1;
        }
        let text = &self.src[start..end];
        let keyword = |k: &str| text.eq_ignore_ascii_case(k);
        let tok = if keyword("and") {
            Tok::And
        } else if keyword("or") {
            Tok::Or
        } else if keyword("not") {
            Tok::Not
        } else if keyword("in") {
            Tok::In
        } else if keyword("has") {
            Tok::Has
        } else if keyword("true") {
            Tok::Bool(true)
        } else if keyword("false") {
            Tok::Bool(false)
        } else {
            Tok::Word(text.to_string())
        };
        Token { tok, start, end }
    }

    fn number(&self) -> Result<Token, QueryError> {
        let b = self.bytes();
        let start = self.pos;
        let digits = |mut p: usize| {
            while p < b.len() && b[p].is_ascii_digit() {
                p += 1;
            }
            p
        };
        let negative = b[start] == b'-';
        let mut p = if negative { start + 1 } else { start };
        if !b.get(p).is_some_and(u8::is_ascii_digit) {
            return err(
                start,
                format!("expected a digit after '-', found {}", self.char_at(p)),
            );
        }
        p = digits(p);
        let mut is_float = false;
        if b.get(p) == Some(&b'.') {
            is_float = true;
            p = digits(p + 1);
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            let mut q = p + 1;
            if matches!(b.get(q), Some(b'+' | b'-')) {
                q += 1;
            }
            if b.get(q).is_some_and(u8::is_ascii_digit) {
                is_float = true;
                p = digits(q);
            }
        }
        if b.get(p).copied().is_some_and(is_bare) {
            if negative {
                let mut end = p;
                while end < b.len() && is_bare(b[end]) {
                    end += 1;
                }
                return err(
                    start,
                    format!(
                        "expected a number, found {:?}",
                        snippet(&self.src[start..end])
                    ),
                );
            }
            // Starts like a number but goes on: a bareword (`2024-01-01`).
            let mut end = start;
            while end < b.len() && is_bare(b[end]) {
                end += 1;
            }
            return Ok(Token {
                tok: Tok::Word(self.src[start..end].to_string()),
                start,
                end,
            });
        }
        let text = &self.src[start..p];
        let value = if is_float {
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Value::Float(x),
                _ => {
                    return err(
                        start,
                        format!("expected a finite number, found {}", snippet(text)),
                    )
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => {
                    return err(
                        start,
                        format!(
                            "expected an integer within i64, found {} (out of range)",
                            snippet(text)
                        ),
                    )
                }
            }
        };
        Ok(Token {
            tok: Tok::Num(value),
            start,
            end: p,
        })
    }

    fn string(&self, quote: u8) -> Result<Token, QueryError> {
        let b = self.bytes();
        let start = self.pos;
        let mut out = String::new();
        let mut p = start + 1;
        let mut seg = p;
        let unterminated = || {
            err(
                start,
                format!(
                    "unterminated string: expected closing {} before end of input",
                    quote as char
                ),
            )
        };
        loop {
            let Some(&c) = b.get(p) else {
                return unterminated();
            };
            if c == quote {
                out.push_str(&self.src[seg..p]);
                p += 1;
                break;
            }
            if c == b'\\' {
                out.push_str(&self.src[seg..p]);
                match b.get(p + 1) {
                    Some(&e @ (b'\\' | b'\'' | b'"')) => out.push(e as char),
                    Some(_) => {
                        return err(
                            p,
                            format!(
                                "unknown escape: expected \\\\, \\' or \\\", found \\{}",
                                self.char_at(p + 1)
                            ),
                        )
                    }
                    None => return unterminated(),
                }
                p += 2;
                seg = p;
                continue;
            }
            p += 1;
        }
        Ok(Token {
            tok: Tok::Str(out),
            start,
            end: p,
        })
    }
}
