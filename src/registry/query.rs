//! The query language of `modelvault model list --query '...'`: parsing,
//! evaluation, and an order-preserving key encoding for secondary indexes.
//!
//! # Grammar
//!
//! ```text
//! query      := or_expr
//! or_expr    := and_expr ( OR and_expr )*
//! and_expr   := unary ( AND unary )*
//! unary      := NOT unary | '(' or_expr ')' | comparison
//! comparison := field op value
//!             | field IN '(' value ( ',' value )* ')'
//!             | HAS field                       (the field exists)
//! field      := ident ( '.' ident )*
//! ident      := [A-Za-z_] [A-Za-z0-9_-]*
//! op         := '=' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '~'   ('~' = string prefix)
//! value      := number | 'single quoted' | "double quoted" | true | false | bareword
//! number     := '-'? [0-9]+ ( '.' [0-9]* )? ( [eE] [+-]? [0-9]+ )?
//!               (i64 without '.' or exponent, else a finite f64)
//! bareword   := [A-Za-z_] [A-Za-z0-9_.:/-]*     (read as a string)
//! ```
//!
//! - Keywords `AND`, `OR`, `NOT`, `IN`, `HAS`, `true`, `false` are
//!   case-insensitive; `&&`, `||` and `!` are synonyms of `AND`, `OR`, `NOT`.
//!   A keyword cannot be used as a field name or bareword (quote it).
//! - `NOT` binds tightest, then `AND`, then `OR`; parentheses group.
//! - Quoted strings take the escapes `\\`, `\'` and `\"`; any other
//!   character (including newlines) stands for itself.
//! - A token that starts like a number but goes on with bareword characters
//!   (`2024-01-01`, `1.2.3`) is read as a bareword string.
//! - Integer literals outside i64 and float literals that overflow f64 are
//!   errors.
//! - Inputs longer than [`MAX_QUERY_LEN`] bytes, or nesting `(` / `NOT`
//!   deeper than [`MAX_DEPTH`], are rejected (never a stack overflow or panic).
//!
//! Examples:
//!
//! ```text
//! metadata.accuracy > 0.9 AND framework = pytorch
//! (project = "vision" OR project = 'nlp') AND NOT status = archived
//! tag IN (prod, staging) && HAS metadata.f1
//! name ~ resnet- AND created >= "2024-01-01" AND metadata.lr < 1e-3
//! ```
//!
//! # Evaluation
//!
//! [`Query::matches`] evaluates a query against anything implementing
//! [`Fields`]:
//!
//! - A comparison (or `IN`) on a missing field is false, so
//!   `NOT x = 1` is true when `x` is missing. `HAS x` is true iff the field
//!   is present (whatever its value).
//! - Values are compared with [`Value::cmp_loose`]: Int and Float compare
//!   numerically (exactly, even beyond 2^53); Str with Str bytewise; Bool
//!   with Bool (`false < true`). Any other pairing — a string against a
//!   number, say — is false for every operator, including `!=`. A bareword is
//!   a string and is never coerced: `accuracy > high` is false. A Float NaN
//!   compares false with everything.
//! - `~` is true iff both sides are strings and the field starts with the
//!   value.
//! - For a list-valued field (e.g. `tag`): `=` means "contains", `!=` means
//!   "does not contain", `IN` means "contains any", `~` means "some element
//!   has the prefix", and `<`, `<=`, `>`, `>=` mean "some element compares
//!   so".
//!
//! # Index keys
//!
//! [`index_key`] encodes a [`Value`] as bytes that sort (bytewise, as
//! RocksDB does) like the values; see its documentation for the layout.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Longest query text accepted by [`parse`], in bytes.
pub const MAX_QUERY_LEN: usize = 4096;

/// Deepest nesting of `(` and `NOT` accepted by [`parse`].
pub const MAX_DEPTH: usize = 64;

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
            return Err(crate::meta::records::refuse(format!(
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

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `~`: string prefix match.
    Prefix,
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// All of the sub-queries hold (an empty `And` is true).
    And(Vec<Query>),
    /// Any of the sub-queries holds (an empty `Or` is false).
    Or(Vec<Query>),
    /// The sub-query does not hold.
    Not(Box<Query>),
    /// `field op value`.
    Cmp {
        /// Dotted field name, e.g. `metadata.accuracy`.
        field: String,
        /// The operator.
        op: Op,
        /// The literal compared against.
        value: Value,
    },
    /// `field IN (v1, v2, ...)`.
    In {
        /// Dotted field name.
        field: String,
        /// The candidate values (at least one when parsed).
        values: Vec<Value>,
    },
    /// `HAS field`: the field exists.
    Has {
        /// Dotted field name.
        field: String,
    },
}

/// A syntax error: the byte offset where it was found and what was
/// expected there versus what was found.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("bad query at byte {at}: {message}")]
pub struct QueryError {
    /// Byte offset into the query text.
    pub at: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// Anything a query can be evaluated against.
pub trait Fields {
    /// The value of a (dotted) field, e.g. `"metadata.accuracy"` →
    /// `Float(0.93)`; list-valued fields (tags) return [`Value::List`];
    /// `None` if the field is absent.
    fn field(&self, name: &str) -> Option<Value>;
}

impl Fields for HashMap<String, Value> {
    /// Looks the name up as a key.
    fn field(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

impl Fields for BTreeMap<String, Value> {
    /// Looks the name up as a key.
    fn field(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

// ---------------------------------------------------------------------------
// Values and operators
// ---------------------------------------------------------------------------

/// 2^63 as f64: the first float above every i64.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

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

impl Op {
    /// The canonical spelling (`=`, `!=`, `<`, `<=`, `>`, `>=`, `~`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Prefix => "~",
        }
    }

    /// Whether `lhs op rhs` holds for two scalars (no list semantics).
    fn holds(self, lhs: &Value, rhs: &Value) -> bool {
        if self == Op::Prefix {
            return match (lhs, rhs) {
                (Value::Str(a), Value::Str(b)) => a.starts_with(b.as_str()),
                _ => false,
            };
        }
        let Some(o) = lhs.cmp_loose(rhs) else {
            return false;
        };
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Prefix => false,
        }
    }
}

impl fmt::Display for Op {
    /// The canonical spelling, as [`Op::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Evaluation and inspection
// ---------------------------------------------------------------------------

fn loose_eq(a: &Value, b: &Value) -> bool {
    a.cmp_loose(b) == Some(Ordering::Equal)
}

impl Query {
    /// Evaluates the query against a record (see the module docs for the
    /// semantics of missing fields, mixed kinds and list fields).
    pub fn matches(&self, f: &dyn Fields) -> bool {
        match self {
            Query::And(qs) => qs.iter().all(|q| q.matches(f)),
            Query::Or(qs) => qs.iter().any(|q| q.matches(f)),
            Query::Not(q) => !q.matches(f),
            Query::Has { field } => f.field(field).is_some(),
            Query::Cmp { field, op, value } => {
                let Some(actual) = f.field(field) else {
                    return false;
                };
                match (&actual, value) {
                    (Value::List(items), v) if !matches!(v, Value::List(_)) => match op {
                        Op::Ne => !items.iter().any(|e| loose_eq(e, v)),
                        op => items.iter().any(|e| op.holds(e, v)),
                    },
                    _ => op.holds(&actual, value),
                }
            }
            Query::In { field, values } => {
                let Some(actual) = f.field(field) else {
                    return false;
                };
                match &actual {
                    Value::List(items) => {
                        items.iter().any(|e| values.iter().any(|v| loose_eq(e, v)))
                    }
                    a => values.iter().any(|v| loose_eq(a, v)),
                }
            }
        }
    }

    /// Conjuncts at the top level (the whole query if not an And), for the
    /// planner.
    pub fn conjuncts(&self) -> Vec<&Query> {
        match self {
            Query::And(qs) => qs.iter().collect(),
            q => vec![q],
        }
    }

    /// Field names referenced anywhere, each once, in order of first
    /// appearance.
    pub fn fields(&self) -> Vec<&str> {
        fn walk<'a>(q: &'a Query, out: &mut Vec<&'a str>) {
            match q {
                Query::And(qs) | Query::Or(qs) => qs.iter().for_each(|q| walk(q, out)),
                Query::Not(q) => walk(q, out),
                Query::Cmp { field, .. } | Query::In { field, .. } | Query::Has { field } => {
                    if !out.contains(&field.as_str()) {
                        out.push(field);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

impl fmt::Display for Query {
    /// A canonical form: ` AND ` / ` OR ` between operands, `NOT `,
    /// canonical operators and literals (strings always double-quoted),
    /// parentheses only where needed (an And or Or nested directly in an
    /// And, an Or nested in an Or, an And/Or under NOT).
    ///
    /// `parse(&q.to_string()) == Ok(q)` for every query `parse` returns
    /// (while the printed form stays within [`MAX_QUERY_LEN`]), and for every
    /// hand-built query of the same shape: And/Or with at least two
    /// children, valid non-keyword field names, non-List comparison values,
    /// finite floats, non-empty IN lists.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn child(f: &mut fmt::Formatter<'_>, q: &Query, paren: bool) -> fmt::Result {
            if paren {
                write!(f, "({q})")
            } else {
                write!(f, "{q}")
            }
        }
        match self {
            Query::And(qs) => {
                for (i, q) in qs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" AND ")?;
                    }
                    child(f, q, matches!(q, Query::And(_) | Query::Or(_)))?;
                }
                Ok(())
            }
            Query::Or(qs) => {
                for (i, q) in qs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" OR ")?;
                    }
                    child(f, q, matches!(q, Query::Or(_)))?;
                }
                Ok(())
            }
            Query::Not(q) => {
                f.write_str("NOT ")?;
                child(f, q, matches!(**q, Query::And(_) | Query::Or(_)))
            }
            Query::Cmp { field, op, value } => write!(f, "{field} {op} {value}"),
            Query::In { field, values } => {
                write!(f, "{field} IN (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Query::Has { field } => write!(f, "HAS {field}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
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
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        at,
        message: message.into(),
    })
}

/// At most 32 characters of `s`, with an ellipsis if cut.
fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(32).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':' | b'/')
}

fn is_op_char(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'<' | b'>' | b'~' | b'&' | b'|')
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
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

    fn next_token(&mut self) -> Result<Token, QueryError> {
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

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Index keys
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmp(field: &str, op: Op, value: Value) -> Query {
        Query::Cmp {
            field: field.to_string(),
            op,
            value,
        }
    }
    fn eq(field: &str, i: i64) -> Query {
        cmp(field, Op::Eq, Value::Int(i))
    }
    fn s(x: &str) -> Value {
        Value::Str(x.to_string())
    }
    fn p(q: &str) -> Query {
        match parse(q) {
            Ok(q) => q,
            Err(e) => panic!("{q:?} should parse: {e}"),
        }
    }
    fn perr(q: &str) -> QueryError {
        match parse(q) {
            Ok(x) => panic!("{q:?} should fail, got {x:?}"),
            Err(e) => e,
        }
    }
    fn rec(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

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

    // ----- display -----

    #[test]
    fn display_is_canonical() {
        let cases = [
            ("a=1 OR b=2 AND c=3", "a = 1 OR b = 2 AND c = 3"),
            ("(a=1 or b=2) and c=3", "(a = 1 OR b = 2) AND c = 3"),
            ("a=1 AND (b=2 AND c=3)", "a = 1 AND (b = 2 AND c = 3)"),
            ("!(a==x || b~'y')", "NOT (a = \"x\" OR b ~ \"y\")"),
            (
                "t in (a,'b\\'c', 1.0, -2)",
                "t IN (\"a\", \"b'c\", 1.0, -2)",
            ),
            ("has m.x", "HAS m.x"),
            ("x = 1e20", "x = 1e20"),
            ("x = 'q\"\\\\'", "x = \"q\\\"\\\\\""),
        ];
        for (input, want) in cases {
            let q = p(input);
            assert_eq!(q.to_string(), want, "{input}");
            assert_eq!(p(want), q, "{want}");
        }
    }

    // ----- evaluation -----

    #[test]
    fn matches_basic_and_missing_fields() {
        let r = rec(&[
            ("framework", s("pytorch")),
            ("metadata.accuracy", Value::Float(0.93)),
            ("epochs", Value::Int(10)),
        ]);
        assert!(p("metadata.accuracy > 0.9 AND framework = pytorch").matches(&r));
        assert!(!p("metadata.accuracy > 0.95").matches(&r));
        assert!(p("framework ~ py").matches(&r));
        assert!(!p("framework ~ torch").matches(&r));
        assert!(!p("missing = 1").matches(&r));
        assert!(!p("missing != 1").matches(&r));
        assert!(p("NOT missing = 1").matches(&r));
        assert!(!p("missing IN (1, 2)").matches(&r));
        assert!(p("HAS epochs AND NOT HAS missing").matches(&r));
        assert!(p("epochs IN (3, 10)").matches(&r));
        assert!(!p("epochs IN (3, 11)").matches(&r));
        assert!(p("epochs = 1 OR epochs >= 10").matches(&r));
        assert!(p("epochs <= 10 AND epochs < 11 AND epochs != 9").matches(&r));
    }

    #[test]
    fn matches_kind_mismatch_is_false() {
        let r = rec(&[
            ("accuracy", Value::Float(0.93)),
            ("name", s("10")),
            ("flag", Value::Bool(true)),
            ("nan", Value::Float(f64::NAN)),
        ]);
        assert!(!p("accuracy > high").matches(&r));
        assert!(!p("accuracy != high").matches(&r));
        assert!(!p("name = 10").matches(&r));
        assert!(p("name = '10'").matches(&r));
        assert!(!p("accuracy ~ '0'").matches(&r));
        assert!(p("flag = true AND flag != false").matches(&r));
        assert!(!p("flag = 1").matches(&r));
        for op in ["=", "!=", "<", "<=", ">", ">="] {
            assert!(!p(&format!("nan {op} 1.0")).matches(&r), "{op}");
            assert!(!p(&format!("nan {op} 1")).matches(&r), "{op}");
        }
    }

    #[test]
    fn matches_int_float_mixing() {
        let r = rec(&[
            ("i", Value::Int(3)),
            ("f", Value::Float(3.0)),
            ("big", Value::Int((1 << 53) + 1)),
        ]);
        assert!(p("i = 3.0 AND f = 3 AND i >= 2.5 AND f < 4").matches(&r));
        assert!(p("i < 3.5 AND i > 2.999").matches(&r));
        // Exact beyond 2^53: (2^53 + 1) as f64 would round to 2^53.
        assert!(p("big > 9007199254740992.0").matches(&r));
        assert!(!p("big = 9007199254740992.0").matches(&r));
        assert!(p("big IN (9007199254740993)").matches(&r));
        assert!(p("i IN (1, 3.0)").matches(&r));
    }

    #[test]
    fn matches_list_fields() {
        let r = rec(&[(
            "tag",
            Value::List(vec![s("prod"), s("resnet"), Value::Int(7)]),
        )]);
        assert!(p("tag = prod").matches(&r));
        assert!(!p("tag = dev").matches(&r));
        assert!(p("tag != dev").matches(&r));
        assert!(!p("tag != prod").matches(&r));
        assert!(p("NOT tag = dev").matches(&r));
        assert!(p("tag IN (dev, resnet)").matches(&r));
        assert!(!p("tag IN (dev, qa)").matches(&r));
        assert!(p("tag ~ res").matches(&r));
        assert!(!p("tag ~ xyz").matches(&r));
        assert!(p("tag = 7.0 AND tag > 6").matches(&r));
        assert!(!p("tag > 7").matches(&r));
        assert!(p("HAS tag").matches(&r));
        let empty = rec(&[("tag", Value::List(vec![]))]);
        assert!(p("HAS tag AND tag != x AND NOT tag = x").matches(&empty));
        assert!(!p("tag IN (x)").matches(&empty));
    }

    #[test]
    fn matches_with_hashmap_and_empty_combinators() {
        let mut h = HashMap::new();
        h.insert("a".to_string(), Value::Int(1));
        assert!(p("a = 1").matches(&h));
        assert!(Query::And(vec![]).matches(&h));
        assert!(!Query::Or(vec![]).matches(&h));
    }

    #[test]
    fn conjuncts_and_fields() {
        let q = p("a = 1 AND (b = 2 OR c = 3) AND NOT HAS a AND d IN (1)");
        let c = q.conjuncts();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0], &eq("a", 1));
        assert_eq!(q.fields(), vec!["a", "b", "c", "d"]);
        let single = p("x ~ y");
        assert_eq!(single.conjuncts(), vec![&single]);
        let or = p("a = 1 OR b = 1");
        assert_eq!(or.conjuncts(), vec![&or]);
        assert_eq!(or.fields(), vec!["a", "b"]);
    }

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

    // ----- index keys -----

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

    // ----- property tests -----

    fn is_reserved(w: &str) -> bool {
        ["and", "or", "not", "in", "has", "true", "false"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    }

    fn arb_field() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_-]{0,5}(\\.[A-Za-z_][A-Za-z0-9_-]{0,5}){0,2}"
            .prop_filter("keyword", |f| !is_reserved(f))
    }

    fn arb_finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            (-1000i64..1000).prop_map(|i| i as f64 / 8.0),
        ]
    }

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            (-5i64..5).prop_map(Value::Int),
            arb_finite().prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
            ".{0,8}".prop_map(Value::Str),
            "[a-z\\\\'\" ]{0,6}".prop_map(Value::Str),
        ]
    }

    fn arb_op() -> impl Strategy<Value = Op> {
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

    fn arb_query() -> impl Strategy<Value = Query> {
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
    fn arb_number() -> impl Strategy<Value = Value> {
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

    fn arb_same_kind_pair() -> impl Strategy<Value = (Value, Value)> {
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
