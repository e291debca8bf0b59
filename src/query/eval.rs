//! Evaluating a [`Query`] against a record's fields (see the module docs of
//! [`crate::query`] for the semantics).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use super::{Op, Query, Value};

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

impl Op {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::query::testing::{eq, p, rec, s};
    use crate::query::{Query, Value};

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
}
