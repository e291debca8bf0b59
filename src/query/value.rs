//! [`Value`], the typed value of a query literal and of a record's field:
//! its serde forms (with a nesting limit on decoding), its loose comparison
//! and its canonical literal form.

use std::cmp::Ordering;
use std::fmt;

/// Deepest nesting of a [`Value`], counting every level: 1 for a scalar or
/// an empty list, 2 for a list of scalars, and so on ([`Value::depth`]).
/// The store refuses to write a deeper value, and decoding one fails (a
/// record crafted to nest values a million deep is an error, never a stack
/// overflow).
pub const MAX_VALUE_DEPTH: usize = 64;

/// A typed value: a literal in a query, or a field's value in a record.
///
/// Serialized as a tagged enum in binary formats (postcard records) and as a
/// plain JSON value (`3`, `0.5`, `true`, `"s"`, `[…]`) in human-readable ones.
/// Deserializing reads the tagged enum and refuses a value nested deeper
/// than [`MAX_VALUE_DEPTH`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float (literals are always finite; records may hold any).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string (quoted literal or bareword).
    Str(String),
    /// A list, e.g. a record's tags; never produced by the parser.
    List(Vec<Value>),
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return match self {
                Value::Int(i) => s.serialize_i64(*i),
                Value::Float(f) => s.serialize_f64(*f),
                Value::Bool(b) => s.serialize_bool(*b),
                Value::Str(t) => s.serialize_str(t),
                Value::List(l) => s.collect_seq(l),
            };
        }
        // The same shape `#[derive(Serialize)]` gives, which the derived
        // `Deserialize` reads back.
        match self {
            Value::Int(i) => s.serialize_newtype_variant("Value", 0, "Int", i),
            Value::Float(f) => s.serialize_newtype_variant("Value", 1, "Float", f),
            Value::Bool(b) => s.serialize_newtype_variant("Value", 2, "Bool", b),
            Value::Str(t) => s.serialize_newtype_variant("Value", 3, "Str", t),
            Value::List(l) => s.serialize_newtype_variant("Value", 4, "List", l),
        }
    }
}

/// The shape `Value` had with `#[derive(Deserialize)]`, which its
/// `Serialize` writes; its lists hold `Value`s, so every level of nesting
/// goes through `Value::deserialize` and is counted there.
#[derive(serde::Deserialize)]
#[serde(rename = "Value")]
enum ValueRepr {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
}

thread_local! {
    /// How many `Value`s are being deserialized on this thread, one inside
    /// the other (deserializing is synchronous, so the count is the depth).
    static DECODING_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One level of nesting, given back however the level ends.
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                DECODING_DEPTH.with(|n| n.set(n.get() - 1));
            }
        }
        let depth = DECODING_DEPTH.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        let _level = Level;
        if depth > MAX_VALUE_DEPTH {
            return Err(refuse(format!(
                "a typed value nested deeper than {MAX_VALUE_DEPTH} levels"
            )));
        }
        Ok(match ValueRepr::deserialize(d)? {
            ValueRepr::Int(i) => Value::Int(i),
            ValueRepr::Float(f) => Value::Float(f),
            ValueRepr::Bool(b) => Value::Bool(b),
            ValueRepr::Str(s) => Value::Str(s),
            ValueRepr::List(l) => Value::List(l),
        })
    }
}

thread_local! {
    /// Why a `Deserialize` implementation refused its input during the
    /// current decode on this thread (see [`refuse`]).
    static REFUSED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The error a `Deserialize` implementation returns to refuse its input
/// (e.g. a value nested too deep). postcard keeps no message of a custom
/// error, so the reason is also noted on this thread, for the record
/// decoder (`meta::records::decode_postcard`) to report via [`take_refusal`].
pub(crate) fn refuse<E: serde::de::Error>(reason: String) -> E {
    let e = E::custom(&reason);
    REFUSED.with(|r| *r.borrow_mut() = Some(reason));
    e
}

/// Takes (and clears) the reason noted by the last [`refuse`] on this
/// thread, if any.
pub(crate) fn take_refusal() -> Option<String> {
    REFUSED.with(|r| r.borrow_mut().take())
}

/// 2^63 as f64: the first float above every i64.
pub(crate) const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Exact comparison of an i64 with an f64 (None if `f` is NaN).
fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // In [-2^63, 2^63) and integral: the cast is exact.
    let ti = t as i64;
    Some(match i.cmp(&ti) {
        Ordering::Equal => {
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    })
}

impl Value {
    /// How deeply the value nests: 1 for a scalar or an empty list, one more
    /// than its deepest element for a list. Walks the value without
    /// recursion, so any value a caller built can be measured.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut todo = vec![(self, 1usize)];
        while let Some((v, d)) = todo.pop() {
            deepest = deepest.max(d);
            if let Value::List(items) = v {
                todo.extend(items.iter().map(|i| (i, d + 1)));
            }
        }
        deepest
    }

    /// Compares two values the way queries do: Int and Float numerically
    /// (exactly); Str with Str bytewise; Bool with Bool (`false < true`);
    /// List with List element by element (None if any pair is
    /// incomparable). Different kinds, or a NaN, give `None`.
    pub fn cmp_loose(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
            (Value::Int(a), Value::Float(b)) => cmp_int_float(*a, *b),
            (Value::Float(a), Value::Int(b)) => cmp_int_float(*b, *a).map(Ordering::reverse),
            (Value::Str(a), Value::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::List(a), Value::List(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.cmp_loose(y)? {
                        Ordering::Equal => {}
                        o => return Some(o),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// The canonical literal: integers plainly, floats with `.` or an
    /// exponent (shortest round-trip form), strings double-quoted with `\\`
    /// and `\"` escaped, lists as `(a, b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '\\' => f.write_str("\\\\")?,
                        '"' => f.write_str("\\\"")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Value::List(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::testing::s;

    #[test]
    fn cmp_loose_examples() {
        use Ordering::*;
        assert_eq!(Value::Int(3).cmp_loose(&Value::Float(3.0)), Some(Equal));
        assert_eq!(Value::Float(2.5).cmp_loose(&Value::Int(3)), Some(Less));
        assert_eq!(Value::Int(-3).cmp_loose(&Value::Float(-3.5)), Some(Greater));
        assert_eq!(
            Value::Int(i64::MAX).cmp_loose(&Value::Float(TWO_POW_63)),
            Some(Less)
        );
        assert_eq!(
            Value::Int(i64::MIN).cmp_loose(&Value::Float(-TWO_POW_63)),
            Some(Equal)
        );
        assert_eq!(Value::Int(0).cmp_loose(&Value::Float(f64::NAN)), None);
        assert_eq!(s("a").cmp_loose(&s("b")), Some(Less));
        assert_eq!(
            Value::Bool(true).cmp_loose(&Value::Bool(false)),
            Some(Greater)
        );
        assert_eq!(s("1").cmp_loose(&Value::Int(1)), None);
        assert_eq!(Value::Bool(true).cmp_loose(&Value::Int(1)), None);
    }
}
