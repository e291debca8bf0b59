//! `query::parse` on arbitrary text. It must never panic; an accepted query
//! printed with `Display` must parse back to the same query (while the
//! printed form is within `MAX_QUERY_LEN`), and printing is a fixed point.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use modelvault::query::{parse, Value, MAX_QUERY_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = parse(s) else {
        return;
    };
    let printed = q.to_string();
    if printed.len() > MAX_QUERY_LEN {
        return;
    }
    match parse(&printed) {
        Ok(again) => {
            assert_eq!(again, q, "input {s:?} printed as {printed:?}");
            assert_eq!(again.to_string(), printed, "printing is not a fixed point");
        }
        Err(e) => panic!("input {s:?} printed as {printed:?}, which does not parse: {e}"),
    }
    // Evaluation and inspection must not panic either.
    let _ = q.fields();
    let _ = q.conjuncts();
    let mut rec = BTreeMap::new();
    for (i, f) in q.fields().into_iter().enumerate() {
        let v = match i % 4 {
            0 => Value::Int(i as i64 - 1),
            1 => Value::Float(0.5),
            2 => Value::Str(f.to_string()),
            _ => Value::List(vec![Value::Bool(true), Value::Str("prod".into())]),
        };
        rec.insert(f.to_string(), v);
    }
    let _ = q.matches(&rec);
    let _ = q.matches(&BTreeMap::new());
});
