//! Property tests of the query language: printing and parsing round-trip,
//! alternative spellings parse alike, hostile text never panics.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::lexer::is_bare;
use super::testing::{arb_query, arb_scalar, is_reserved};
use super::{parse, Op, Query, Value, MAX_QUERY_LEN};

fn arb_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b.c",
        "x-y",
        "=",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "~",
        "1",
        "-2.5",
        "1e3",
        "'x'",
        "\"y z\"",
        "'q\\''",
        "AND",
        "or",
        "NOT",
        "!",
        "&&",
        "||",
        "(",
        ")",
        "IN",
        "in",
        ",",
        "HAS",
        "true",
        "pytorch",
        "2024-01-01",
        "\\",
        "'",
        "&",
        "é",
    ])
}

/// Renders `q` in a random non-canonical but equivalent spelling:
/// keyword case and synonyms, `==`, quote styles, barewords, `{:e}`
/// floats, optional spaces, extra parentheses.
fn render_alt(q: &Query, c: &mut impl Iterator<Item = u8>, out: &mut String) {
    fn pick<'a>(c: &mut impl Iterator<Item = u8>, opts: &[&'a str]) -> &'a str {
        opts[c.next().unwrap_or(0) as usize % opts.len()]
    }
    fn sub(q: &Query, needs_paren: bool, c: &mut impl Iterator<Item = u8>, out: &mut String) {
        let extra = c.next().unwrap_or(0).is_multiple_of(8);
        if needs_paren || extra {
            out.push_str(pick(c, &["(", "( "]));
            render_alt(q, c, out);
            out.push_str(pick(c, &[")", " )"]));
        } else {
            render_alt(q, c, out);
        }
    }
    fn value(v: &Value, c: &mut impl Iterator<Item = u8>, out: &mut String) {
        match v {
            Value::Float(x) if c.next().unwrap_or(0).is_multiple_of(2) => {
                out.push_str(&format!("{x:e}"))
            }
            Value::Bool(b) => out.push_str(if *b {
                pick(c, &["true", "TRUE", "True"])
            } else {
                pick(c, &["false", "FALSE", "False"])
            }),
            Value::Str(s) => {
                let bare = s.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
                    && s.bytes().all(is_bare)
                    && !is_reserved(s);
                match c.next().unwrap_or(0) % 3 {
                    0 if bare => out.push_str(s),
                    1 => {
                        out.push('\'');
                        for ch in s.chars() {
                            match ch {
                                '\\' => out.push_str("\\\\"),
                                '\'' => out.push_str("\\'"),
                                '"' if c.next().unwrap_or(0).is_multiple_of(2) => {
                                    out.push_str("\\\"")
                                }
                                ch => out.push(ch),
                            }
                        }
                        out.push('\'');
                    }
                    _ => out.push_str(&v.to_string()),
                }
            }
            v => out.push_str(&v.to_string()),
        }
    }
    match q {
        Query::And(qs) | Query::Or(qs) => {
            let and = matches!(q, Query::And(_));
            for (i, child) in qs.iter().enumerate() {
                if i > 0 {
                    out.push_str(if and {
                        pick(c, &[" AND ", " and ", " And ", "&&", " && "])
                    } else {
                        pick(c, &[" OR ", " or ", "||", " || ", "\t|| "])
                    });
                }
                let needs = match child {
                    Query::Or(_) => true,
                    Query::And(_) => and,
                    _ => false,
                };
                sub(child, needs, c, out);
            }
        }
        Query::Not(inner) => {
            out.push_str(pick(c, &["NOT ", "not ", "!", "! ", "Not\n"]));
            sub(
                inner,
                matches!(**inner, Query::And(_) | Query::Or(_)),
                c,
                out,
            );
        }
        Query::Cmp {
            field,
            op,
            value: v,
        } => {
            out.push_str(field);
            out.push_str(pick(c, &["", " "]));
            out.push_str(if *op == Op::Eq {
                pick(c, &["=", "=="])
            } else {
                op.as_str()
            });
            out.push_str(pick(c, &["", " "]));
            value(v, c, out);
        }
        Query::In { field, values } => {
            out.push_str(field);
            out.push_str(pick(c, &[" IN (", " in(", " In ( "]));
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(pick(c, &[",", ", ", " , "]));
                }
                value(v, c, out);
            }
            out.push_str(pick(c, &[")", " )"]));
        }
        Query::Has { field } => {
            out.push_str(pick(c, &["HAS ", "has ", "Has  "]));
            out.push_str(field);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prop_display_parse_roundtrip(q in arb_query()) {
        let text = q.to_string();
        prop_assume!(text.len() <= MAX_QUERY_LEN);
        prop_assert_eq!(parse(&text), Ok(q), "text: {}", text);
    }

    #[test]
    fn prop_parse_never_panics(input in any::<String>()) {
        let _ = parse(&input);
    }

    #[test]
    fn prop_token_soup_never_panics_and_roundtrips(
        toks in prop::collection::vec((arb_token(), any::<bool>()), 0..16)
    ) {
        let mut input = String::new();
        for (t, space) in &toks {
            input.push_str(t);
            if *space {
                input.push(' ');
            }
        }
        if let Ok(q) = parse(&input) {
            let text = q.to_string();
            prop_assert_eq!(parse(&text), Ok(q), "input: {}, text: {}", input, text);
        }
    }

    #[test]
    fn prop_alternative_spellings_parse_equal(q in arb_query(), seed in prop::collection::vec(any::<u8>(), 1..64)) {
        let mut choices = seed.iter().copied().cycle();
        let mut text = String::new();
        render_alt(&q, &mut choices, &mut text);
        prop_assume!(text.len() <= MAX_QUERY_LEN);
        prop_assert_eq!(parse(&text), Ok(q), "text: {}", text);
    }

    #[test]
    fn prop_mutated_queries_never_panic(
        q in arb_query(),
        seed in prop::collection::vec(any::<u8>(), 1..32),
        at in any::<prop::sample::Index>(),
        cut in 0usize..4,
        insert in arb_token(),
    ) {
        let mut choices = seed.iter().copied().cycle();
        let mut text = String::new();
        render_alt(&q, &mut choices, &mut text);
        // Delete `cut` chars and insert a token at a random char boundary.
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let i = at.index(bounds.len());
        let j = bounds[(i + cut).min(bounds.len() - 1)];
        let mutated = format!("{}{}{}", &text[..bounds[i]], insert, &text[j..]);
        if let Ok(q2) = parse(&mutated) {
            let canon = q2.to_string();
            prop_assert_eq!(parse(&canon), Ok(q2), "mutated: {}, canon: {}", mutated, canon);
        }
    }

    #[test]
    fn prop_matches_never_panics(q in arb_query(), v in arb_scalar(), l in prop::collection::vec(arb_scalar(), 0..3)) {
        let fields: Vec<&str> = q.fields();
        let mut r = BTreeMap::new();
        for (i, f) in fields.iter().enumerate() {
            let val = if i % 2 == 0 { v.clone() } else { Value::List(l.clone()) };
            r.insert(f.to_string(), val);
        }
        let _ = q.matches(&r);
        // NOT is always the complement.
        let n = Query::Not(Box::new(q.clone()));
        prop_assert_eq!(n.matches(&r), !q.matches(&r));
    }
}
