//! The query language of `modelvault model list --query '...'`: the typed
//! [`Value`]s records hold, parsing and evaluation. A pure library: it
//! knows nothing of the store (answering a query from the indexes is
//! `registry::search`; the order-preserving index-key encoding of a
//! `Value` is `meta::index_key`, re-exported as [`crate::index_key`]).
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
//! # Layout
//!
//! - `value`: [`Value`] and its serde forms, [`MAX_VALUE_DEPTH`].
//! - `ast`: [`Query`] and [`Op`], printed in canonical form.
//! - `lexer`, `parser`: text to [`Query`] ([`parse`]).
//! - `eval`: [`Query::matches`] over anything implementing [`Fields`].

mod ast;
mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
pub(crate) mod testing;
mod value;

pub use ast::{Op, Query};
pub use eval::Fields;
pub use parser::parse;
pub(crate) use value::take_refusal;
pub use value::{Value, MAX_VALUE_DEPTH};

/// Longest query text accepted by [`parse`], in bytes.
pub const MAX_QUERY_LEN: usize = 4096;

/// Deepest nesting of `(` and `NOT` accepted by [`parse`].
pub const MAX_DEPTH: usize = 64;

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
