//! `modelvault::decode_index_key` / `index_key` (the index-key encoding of a
//! `query::Value`).
//!
//! 1. Arbitrary bytes: when `decode_index_key` accepts them, `index_key` of
//!    the value gives the same bytes back.
//! 2. The same bytes read (via `arbitrary`) as two values: `index_key`
//!    decodes back to the value (same key; NaN ≠ NaN), and for scalars
//!    (numbers, strings, bools) the byte order of the keys agrees with
//!    `Value::cmp_loose` as documented: a strict order gives the same
//!    strict key order; equality gives equal keys, or for Int vs Float
//!    keys equal except the last (kind) byte.
#![no_main]

use std::cmp::Ordering;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use modelvault::query::Value;
use modelvault::{decode_index_key, index_key};

#[derive(Arbitrary, Debug)]
enum V {
    Int(i64),
    Float(f64),
    /// An integral float near an i64, to hit Int/Float ties.
    FloatOf(i64),
    Bool(bool),
    Str(String),
    List(Vec<V>),
}

impl V {
    fn value(&self, depth: usize) -> Value {
        match self {
            V::Int(i) => Value::Int(*i),
            V::Float(f) => Value::Float(*f),
            V::FloatOf(i) => Value::Float(*i as f64),
            V::Bool(b) => Value::Bool(*b),
            V::Str(s) => Value::Str(s.clone()),
            // Keep nesting within what decode_index_key accepts (64).
            V::List(items) if depth < 32 => {
                Value::List(items.iter().map(|v| v.value(depth + 1)).collect())
            }
            V::List(_) => Value::List(Vec::new()),
        }
    }
}

fn check_round_trip(v: &Value) {
    let k = index_key(v);
    match decode_index_key(&k) {
        Some(back) => assert_eq!(index_key(&back), k, "{v:?} decoded as {back:?}"),
        None => panic!("index_key({v:?}) = {k:02x?} does not decode"),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::List(_))
}

fuzz_target!(|data: &[u8]| {
    if let Some(v) = decode_index_key(data) {
        assert_eq!(index_key(&v), data, "decoded {v:?}");
    }

    let mut u = Unstructured::new(data);
    let (Ok(a), Ok(b)) = (u.arbitrary::<V>(), u.arbitrary::<V>()) else { return };
    let (a, b) = (a.value(0), b.value(0));
    check_round_trip(&a);
    check_round_trip(&b);
    if !(is_scalar(&a) && is_scalar(&b)) {
        return;
    }
    let (ka, kb) = (index_key(&a), index_key(&b));
    match a.cmp_loose(&b) {
        None => {}
        Some(Ordering::Equal) => {
            let int_float = matches!(
                (&a, &b),
                (Value::Int(_), Value::Float(_)) | (Value::Float(_), Value::Int(_))
            );
            if int_float {
                assert_eq!(ka.len(), kb.len());
                assert_eq!(ka[..ka.len() - 1], kb[..kb.len() - 1], "{a:?} == {b:?}");
            } else {
                assert_eq!(ka, kb, "{a:?} == {b:?} but keys differ");
            }
        }
        Some(o) => assert_eq!(ka.cmp(&kb), o, "{a:?} vs {b:?}: keys {ka:02x?} / {kb:02x?}"),
    }
});
