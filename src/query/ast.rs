//! The parsed form of a query ([`Query`], [`Op`]) and its canonical text.

use std::fmt;

use super::Value;

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
}

impl fmt::Display for Op {
    /// The canonical spelling, as [`Op::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Query {
    /// A canonical form: ` AND ` / ` OR ` between operands, `NOT `,
    /// canonical operators and literals (strings always double-quoted),
    /// parentheses only where needed (an And or Or nested directly in an
    /// And, an Or nested in an Or, an And/Or under NOT).
    ///
    /// `parse(&q.to_string()) == Ok(q)` for every query `parse` returns
    /// (while the printed form stays within [`MAX_QUERY_LEN`](super::MAX_QUERY_LEN)), and for every
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

#[cfg(test)]
mod tests {
    use crate::query::testing::p;

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
}
