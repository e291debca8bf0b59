//! Helpers shared by the query tests (and the index-key tests in `meta`):
//! query builders and proptest strategies for values and queries.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{parse, Op, Query, QueryError, Value};

pub(crate) use super::value::TWO_POW_63;

pub(crate) fn cmp(field: &str, op: Op, value: Value) -> Query {
    Query::Cmp {
        field: field.to_string(),
        op,
        value,
    }
}
pub(crate) fn eq(field: &str, i: i64) -> Query {
    cmp(field, Op::Eq, Value::Int(i))
}
pub(crate) fn s(x: &str) -> Value {
    Value::Str(x.to_string())
}
pub(crate) fn p(q: &str) -> Query {
    match parse(q) {
        Ok(q) => q,
        Err(e) => panic!("{q:?} should parse: {e}"),
    }
}
pub(crate) fn perr(q: &str) -> QueryError {
    match parse(q) {
        Ok(x) => panic!("{q:?} should fail, got {x:?}"),
        Err(e) => e,
    }
}
pub(crate) fn rec(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub(crate) fn is_reserved(w: &str) -> bool {
    ["and", "or", "not", "in", "has", "true", "false"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

pub(crate) fn arb_field() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_-]{0,5}(\\.[A-Za-z_][A-Za-z0-9_-]{0,5}){0,2}"
        .prop_filter("keyword", |f| !is_reserved(f))
}

pub(crate) fn arb_finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        (-1000i64..1000).prop_map(|i| i as f64 / 8.0),
    ]
}

pub(crate) fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (-5i64..5).prop_map(Value::Int),
        arb_finite().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
        ".{0,8}".prop_map(Value::Str),
        "[a-z\\\\'\" ]{0,6}".prop_map(Value::Str),
    ]
}

pub(crate) fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::Ne),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Gt),
        Just(Op::Ge),
        Just(Op::Prefix),
    ]
}

pub(crate) fn arb_query() -> impl Strategy<Value = Query> {
    let leaf = prop_oneof![
        (arb_field(), arb_op(), arb_scalar()).prop_map(|(field, op, value)| Query::Cmp {
            field,
            op,
            value
        }),
        (arb_field(), prop::collection::vec(arb_scalar(), 1..4))
            .prop_map(|(field, values)| Query::In { field, values }),
        arb_field().prop_map(|field| Query::Has { field }),
    ];
    leaf.prop_recursive(5, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::Or),
            inner.prop_map(|q| Query::Not(Box::new(q))),
        ]
    })
}

/// Numbers that stress the f64/i64 boundary cases.
pub(crate) fn arb_number() -> impl Strategy<Value = Value> {
    let edge_int = prop_oneof![
        any::<i64>(),
        (-100i64..100),
        ((1i64 << 53) - 50..(1i64 << 53) + 50),
        (-(1i64 << 53) - 50..-(1i64 << 53) + 50),
        (i64::MAX - 2000..=i64::MAX),
        (i64::MIN..i64::MIN + 2000),
    ];
    let edge_int2 = edge_int.clone();
    prop_oneof![
        edge_int.prop_map(Value::Int),
        edge_int2.prop_map(|i| Value::Float(i as f64)),
        any::<f64>()
            .prop_filter("not NaN", |x| !x.is_nan())
            .prop_map(Value::Float),
        (-100i64..100).prop_map(|i| Value::Float(i as f64 / 4.0)),
        prop_oneof![
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(TWO_POW_63),
            Just(-TWO_POW_63),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
        ]
        .prop_map(Value::Float),
    ]
}

pub(crate) fn arb_same_kind_pair() -> impl Strategy<Value = (Value, Value)> {
    prop_oneof![
        (arb_number(), arb_number()),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| (Value::Bool(a), Value::Bool(b))),
        (
            "[a\\x00\\xFF-\\u{10FFFF}b]{0,4}",
            "[a\\x00\\xFF-\\u{10FFFF}b]{0,4}"
        )
            .prop_map(|(a, b)| (Value::Str(a), Value::Str(b))),
        (any::<String>(), any::<String>()).prop_map(|(a, b)| (Value::Str(a), Value::Str(b))),
    ]
}
