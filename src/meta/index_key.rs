//! The order-preserving encoding of a typed [`Value`] inside secondary
//! index keys (`index` column family, `MODEL_META` entries): bytes that sort
//! (bytewise, as RocksDB does) like the values. An on-disk layout: changing
//! it would misorder every stored index entry (see docs/FORMAT.md).

use crate::query::Value;

const TAG_BOOL: u8 = 0x01;
const TAG_NUM: u8 = 0x02;
const TAG_STR: u8 = 0x03;
const TAG_LIST: u8 = 0x04;
const LIST_END: u8 = 0x00;
const KIND_INT: u8 = 0x00;
const KIND_FLOAT: u8 = 0x01;
const SIGN: u64 = 1 << 63;
/// The order key of every NaN (a positive quiet NaN, sign bit flipped).
const NAN_KEY: u64 = 0x7ff8_0000_0000_0000 ^ SIGN;
/// Deepest list nesting [`decode_index_key`] accepts.
const MAX_KEY_DEPTH: usize = 64;

/// f64 → u64 whose unsigned order is the numeric order; -0.0 is read as
/// 0.0 and every NaN as one NaN above +inf.
fn f64_order_bits(f: f64) -> u64 {
    if f.is_nan() {
        return NAN_KEY;
    }
    let f = if f == 0.0 { 0.0 } else { f };
    let bits = f.to_bits();
    if bits & SIGN != 0 {
        !bits
    } else {
        bits ^ SIGN
    }
}

fn f64_from_order_bits(k: u64) -> f64 {
    f64::from_bits(if k & SIGN != 0 { k ^ SIGN } else { !k })
}

fn push_num(out: &mut Vec<u8>, approx: f64, exact: i64, kind: u8) {
    out.push(TAG_NUM);
    out.extend_from_slice(&f64_order_bits(approx).to_be_bytes());
    out.extend_from_slice(&((exact as u64) ^ SIGN).to_be_bytes());
    out.push(kind);
}

fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
        // `as` rounds to nearest: monotone, so ints stay ordered by the
        // f64, and the exact i64 breaks ties among ints rounding alike.
        Value::Int(i) => push_num(out, *i as f64, *i, KIND_INT),
        // `as` truncates and saturates (NaN → 0): exact for integral floats
        // in i64 range, so Float(3.0) ties with Int(3) up to the kind byte.
        Value::Float(f) => {
            let f = if f.is_nan() { f64::NAN } else { *f };
            push_num(out, f, if f.is_nan() { 0 } else { f as i64 }, KIND_FLOAT)
        }
        Value::Str(s) => {
            out.push(TAG_STR);
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0x00 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0x00, 0x01]);
        }
        Value::List(items) => {
            out.push(TAG_LIST);
            for item in items {
                encode_into(item, out);
            }
            out.push(LIST_END);
        }
    }
}

/// Bytes that sort (bytewise) like the values, for secondary index keys.
///
/// Layout — a type tag byte, then a big-endian order-preserving payload:
///
/// ```text
/// Bool   01 b                      b = 00 (false) | 01 (true)           2 bytes
/// Int    02 F[8] T[8] 00           F = order bits of (i as f64)        18 bytes
/// Float  02 F[8] T[8] 01           F = order bits of f, T = f as i64   18 bytes
///                                  (truncating, saturating; 0 for NaN)
/// Str    03 escaped-bytes 00 01    each 00 byte written as 00 FF
/// List   04 key(e1) key(e2) .. 00
/// ```
///
/// - Tags order the kinds: Bool < numbers < Str < List. Int and Float
///   share one tag, so they interleave numerically.
/// - F: the f64's bits with the sign bit flipped if it was clear, or all
///   bits inverted if it was set; as an unsigned big-endian u64 this sorts
///   like the number. `-0.0` is written as `0.0`; every NaN is written as
///   one positive NaN, which sorts after `+inf` (and after every number).
/// - T: an i64 with its sign bit flipped, big-endian. F alone loses
///   precision for integers beyond 2^53; T orders the integers that round
///   to the same f64 exactly. A Float shares its F bucket with at most the
///   integers rounding to it, and its T is its exact value when it is an
///   integer in range, so `Int(3)` and `Float(3.0)` have the same 17-byte
///   prefix and sort as neighbours (Int first, by the final kind byte).
///   The one float at 2^63 saturates to `i64::MAX` and the kind byte puts
///   it after `Int(i64::MAX)`, as it should.
/// - Str: escaping makes the encoding prefix-free and keeps byte order:
///   `"a"` (`03 61 00 01`) < `"a\0"` (`03 61 00 FF 00 01`) < `"ab"`
///   (`03 61 62 00 01`).
///
/// So for numbers, strings and bools, `index_key(a).cmp(&index_key(b))`
/// agrees with `a.cmp_loose(&b)` whenever that is `Less` or `Greater`; when
/// it is `Equal` the keys are equal, or (Int vs Float) equal except for
/// the last byte.
pub fn index_key(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(v, &mut out);
    out
}

fn decode_at(b: &[u8], depth: usize) -> Option<(Value, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    match tag {
        TAG_BOOL => match rest.split_first()? {
            (0, rest) => Some((Value::Bool(false), rest)),
            (1, rest) => Some((Value::Bool(true), rest)),
            _ => None,
        },
        TAG_NUM => {
            let f = u64::from_be_bytes(rest.get(0..8)?.try_into().ok()?);
            let t = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
            let kind = *rest.get(16)?;
            let rest = rest.get(17..)?;
            match kind {
                KIND_INT => Some((Value::Int((t ^ SIGN) as i64), rest)),
                KIND_FLOAT => Some((Value::Float(f64_from_order_bits(f)), rest)),
                _ => None,
            }
        }
        TAG_STR => {
            let mut out = Vec::new();
            let mut i = 0;
            loop {
                match *rest.get(i)? {
                    0x00 => match *rest.get(i + 1)? {
                        0xFF => out.push(0x00),
                        0x01 => {
                            let s = String::from_utf8(out).ok()?;
                            return Some((Value::Str(s), rest.get(i + 2..)?));
                        }
                        _ => return None,
                    },
                    c => {
                        out.push(c);
                        i += 1;
                        continue;
                    }
                }
                i += 2;
            }
        }
        TAG_LIST => {
            if depth >= MAX_KEY_DEPTH {
                return None;
            }
            let mut items = Vec::new();
            let mut rest = rest;
            loop {
                if *rest.first()? == LIST_END {
                    return Some((Value::List(items), &rest[1..]));
                }
                let (v, r) = decode_at(rest, depth + 1)?;
                items.push(v);
                rest = r;
            }
        }
        _ => None,
    }
}

/// Decodes [`index_key`]'s output back to a Value (for tests/debugging).
///
/// `None` on malformed input (never panics): truncated or trailing bytes,
/// unknown tags, invalid UTF-8, bad escapes, lists nested deeper than 64,
/// or any encoding `index_key` would not produce (e.g. an Int whose F part
/// disagrees with its T part). A Float keeps its kind; `-0.0` decodes as
/// `0.0` and NaN as a NaN.
pub fn decode_index_key(b: &[u8]) -> Option<Value> {
    let (v, rest) = decode_at(b, 0)?;
    if !rest.is_empty() || index_key(&v) != b {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use proptest::prelude::*;

    use super::*;
    use crate::query::testing::{arb_number, arb_same_kind_pair, arb_scalar, s, TWO_POW_63};

    #[test]
    fn index_key_layout() {
        assert_eq!(index_key(&Value::Bool(true)), vec![0x01, 0x01]);
        assert_eq!(index_key(&s("a")), vec![0x03, 0x61, 0x00, 0x01]);
        assert_eq!(
            index_key(&s("a\0")),
            vec![0x03, 0x61, 0x00, 0xFF, 0x00, 0x01]
        );
        let k = index_key(&Value::Int(0));
        assert_eq!(k.len(), 18);
        assert_eq!(k[0], 0x02);
        assert_eq!(&k[1..9], &(1u64 << 63).to_be_bytes());
        assert_eq!(&k[9..17], &(1u64 << 63).to_be_bytes());
        assert_eq!(k[17], 0x00);
        assert!(index_key(&s("a")) < index_key(&s("a\0")));
        assert!(index_key(&s("a\0")) < index_key(&s("ab")));
        assert!(index_key(&Value::Bool(true)) < index_key(&Value::Int(i64::MIN)));
        assert!(index_key(&Value::Float(f64::INFINITY)) < index_key(&s("")));
    }

    #[test]
    fn index_key_int_float_neighbours_and_nan() {
        let i = index_key(&Value::Int(3));
        let f = index_key(&Value::Float(3.0));
        assert_eq!(i[..17], f[..17]);
        assert!(i < f);
        assert!(f < index_key(&Value::Int(4)));
        assert!(index_key(&Value::Float(2.9999)) < i);
        assert_eq!(
            index_key(&Value::Float(-0.0)),
            index_key(&Value::Float(0.0))
        );
        let nan = index_key(&Value::Float(f64::NAN));
        assert_eq!(nan, index_key(&Value::Float(-f64::NAN)));
        assert!(nan > index_key(&Value::Float(f64::INFINITY)));
        assert!(nan > index_key(&Value::Int(i64::MAX)));
        assert!(nan < index_key(&s("")));
        assert!(matches!(decode_index_key(&nan), Some(Value::Float(x)) if x.is_nan()));
        // Around 2^63: Int(MAX) rounds to 2^63 but is below Float(2^63).
        assert!(index_key(&Value::Int(i64::MAX)) < index_key(&Value::Float(TWO_POW_63)));
        assert!(index_key(&Value::Int(i64::MAX - 1)) < index_key(&Value::Int(i64::MAX)));
    }

    #[test]
    fn decode_rejects_malformed() {
        assert_eq!(decode_index_key(&[]), None);
        assert_eq!(decode_index_key(&[0x09]), None);
        assert_eq!(decode_index_key(&[0x01, 0x02]), None);
        assert_eq!(decode_index_key(&[0x01, 0x01, 0x00]), None);
        assert_eq!(decode_index_key(&[0x03, 0x61, 0x00]), None);
        assert_eq!(decode_index_key(&[0x03, 0x61, 0x00, 0x02]), None);
        assert_eq!(decode_index_key(&[0x03, 0xFF, 0x00, 0x01]), None);
        let mut k = index_key(&Value::Int(5));
        k[17] = 7;
        assert_eq!(decode_index_key(&k), None);
        let mut k = index_key(&Value::Int(5));
        k[16] ^= 1; // T no longer agrees with F
        assert_eq!(decode_index_key(&k), None);
        assert_eq!(decode_index_key(&index_key(&Value::Int(5))[..10]), None);
        assert_eq!(decode_index_key(&vec![0x04; 10_000]), None);
        let l = Value::List(vec![s("x"), Value::Int(1), Value::List(vec![])]);
        assert_eq!(decode_index_key(&index_key(&l)), Some(l));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn prop_index_key_orders_like_cmp_loose((a, b) in arb_same_kind_pair()) {
            let (ka, kb) = (index_key(&a), index_key(&b));
            match a.cmp_loose(&b) {
                Some(Ordering::Equal) => {
                    let same_kind = std::mem::discriminant(&a) == std::mem::discriminant(&b);
                    if same_kind {
                        prop_assert_eq!(&ka, &kb);
                    } else {
                        // Int vs Float: neighbours differing in the kind byte only.
                        prop_assert_eq!(ka.len(), 18);
                        prop_assert_eq!(&ka[..17], &kb[..17]);
                    }
                }
                Some(o) => prop_assert_eq!(ka.cmp(&kb), o, "{:?} vs {:?}", a, b),
                None => prop_assert!(false, "same-kind pair incomparable: {:?} {:?}", a, b),
            }
        }

        #[test]
        fn prop_index_key_roundtrip(v in prop_oneof![arb_number(), arb_scalar()]) {
            let k = index_key(&v);
            let back = decode_index_key(&k);
            match (&v, &back) {
                (Value::Float(_), Some(Value::Float(_))) => prop_assert_eq!(back, Some(v)),
                (Value::Float(_), _) => prop_assert!(false, "float decoded as {:?}", back),
                _ => prop_assert_eq!(back, Some(v)),
            }
        }

        #[test]
        fn prop_decode_never_panics(b in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Some(v) = decode_index_key(&b) {
                prop_assert_eq!(index_key(&v), b);
            }
        }

        #[test]
        fn prop_decode_mutated_keys(v in arb_scalar(), i in any::<prop::sample::Index>(), x in any::<u8>()) {
            let mut k = index_key(&v);
            let at = i.index(k.len());
            k[at] = x;
            if let Some(d) = decode_index_key(&k) {
                prop_assert_eq!(index_key(&d), k);
            }
        }
    }
}
