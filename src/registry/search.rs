//! Answering model queries from the secondary indexes.
//!
//! Each top-level conjunct that an index can answer yields a candidate id
//! set; the sets are intersected, and [`Query::matches`] then checks the
//! whole query on each candidate record (so an index only has to return a
//! superset, never the exact answer). Fields the planner uses:
//!
//! | conjunct | index |
//! |---|---|
//! | `framework = X`, `framework IN (…)` | by framework |
//! | `project = X`, `project IN (…)` | by project |
//! | `name = X`, `name ~ P`, `name IN (…)` | by name (a prefix scan for `~`) |
//! | `tag = X`, `tag IN (…)` | by tag |
//! | `status = finalized` / `draft` | by state |
//! | `metadata.K op V` (`=`, `<`, `<=`, `>`, `>=`) | typed metadata, a range scan |
//!
//! A query with no such conjunct (e.g. only `OR`s or `!=`) scans all models.

use std::collections::BTreeSet;

use super::index::{tag, trailing_id, Key};
use super::model::ModelInfo;
use super::query::{index_key, Fields, Op, Query, Value};
use super::records::EntityId;
use crate::error::{Error, Result};
use crate::meta::{Cf, Meta};

/// The fields a model query can name.
pub(crate) struct ModelFields<'a>(pub &'a ModelInfo);

impl Fields for ModelFields<'_> {
    fn field(&self, name: &str) -> Option<Value> {
        let m = self.0;
        if let Some(k) = name.strip_prefix("metadata.") {
            return m.metadata.get(k).cloned();
        }
        if let Some(k) = name.strip_prefix("labels.") {
            return m.labels.get(k).map(|&v| Value::Int(v));
        }
        Some(match name {
            "id" => Value::Str(m.id.to_string()),
            "name" => Value::Str(m.name.clone()),
            "project" => Value::Str(m.project.clone()),
            "framework" => Value::Str(m.framework.name().to_string()),
            "tag" | "tags" => Value::List(m.tags.iter().cloned().map(Value::Str).collect()),
            "status" => Value::Str(
                if m.finalized_ms.is_some() {
                    "finalized"
                } else {
                    "draft"
                }
                .into(),
            ),
            "created" => Value::Int(m.created_ms as i64),
            "updated" => Value::Int(m.updated_ms as i64),
            "latest" | "versions" => Value::Int(m.latest as i64),
            "experiment" => Value::Str(m.experiment?.to_string()),
            "parent" => Value::Str(m.parent?.to_string()),
            "comment" => Value::Str(m.comment.clone()?),
            "external" | "url" => Value::Str(m.external.as_ref()?.url.clone()),
            _ => return None,
        })
    }
}

/// Candidate ids for `q`, or `None` when no conjunct is indexed.
pub(crate) fn candidates(meta: &Meta, q: &Query) -> Result<Option<BTreeSet<EntityId>>> {
    let mut acc: Option<BTreeSet<EntityId>> = None;
    for c in q.conjuncts() {
        if let Some(set) = conjunct(meta, c)? {
            acc = Some(match acc {
                Some(a) => a.intersection(&set).copied().collect(),
                None => set,
            });
            if acc.as_ref().is_some_and(BTreeSet::is_empty) {
                break;
            }
        }
    }
    Ok(acc)
}

fn string_index(field: &str) -> Option<u8> {
    Some(match field {
        "framework" => tag::MODEL_FRAMEWORK,
        "project" => tag::MODEL_PROJECT,
        "name" => tag::MODEL_NAME,
        "tag" | "tags" => tag::MODEL_TAG,
        _ => return None,
    })
}

fn conjunct(meta: &Meta, c: &Query) -> Result<Option<BTreeSet<EntityId>>> {
    match c {
        Query::Cmp { field, op, value } => {
            if let (Some(t), Value::Str(s)) = (string_index(field), value) {
                return match op {
                    Op::Eq => scan(meta, &Key::new(t).str(s).done(), None, None).map(Some),
                    Op::Prefix if t == tag::MODEL_NAME => {
                        scan(meta, &Key::new(t).bytes(s.as_bytes()).done(), None, None).map(Some)
                    }
                    _ => Ok(None),
                };
            }
            if field == "status" && *op == Op::Eq {
                let state = match value {
                    Value::Str(s) if s == "finalized" => 1u8,
                    Value::Str(s) if s == "draft" => 0u8,
                    _ => return Ok(Some(BTreeSet::new())),
                };
                return scan(
                    meta,
                    &Key::new(tag::MODEL_STATE).bytes(&[state]).done(),
                    None,
                    None,
                )
                .map(Some);
            }
            if let Some(k) = field.strip_prefix("metadata.") {
                return metadata_range(meta, k, *op, value);
            }
            Ok(None)
        }
        Query::In { field, values } => {
            let Some(t) = string_index(field) else {
                return Ok(None);
            };
            let mut all = BTreeSet::new();
            for v in values {
                if let Value::Str(s) = v {
                    all.extend(scan(meta, &Key::new(t).str(s).done(), None, None)?);
                }
            }
            Ok(Some(all))
        }
        _ => Ok(None),
    }
}

/// Range over `metadata.K`: keys are `K ‖ 0 ‖ index_key(value) ‖ id`.
fn metadata_range(meta: &Meta, key: &str, op: Op, v: &Value) -> Result<Option<BTreeSet<EntityId>>> {
    let ik = match v {
        Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_) => index_key(v),
        _ => return Ok(None),
    };
    if matches!(v, Value::Float(f) if f.is_nan()) {
        return Ok(Some(BTreeSet::new()));
    }
    // Equal numbers (Int 3, Float 3.0) share the first 17 bytes (type tag,
    // f64 order bits, i64 tiebreak); other kinds are prefix-free already.
    let eq_prefix = match v {
        Value::Int(_) | Value::Float(_) => &ik[..17.min(ik.len())],
        _ => &ik[..],
    };
    let base = Key::new(tag::MODEL_META).str(key).done();
    let with = |tail: &[u8]| [base.as_slice(), tail].concat();
    let type_lo = with(&ik[..1]);
    let type_hi = with(&[ik[0] + 1]);
    let past_eq = with(&[eq_prefix, &[0xFF; 18]].concat());
    let (lo, hi) = match op {
        Op::Eq => (with(eq_prefix), past_eq),
        Op::Lt => (type_lo, with(eq_prefix)),
        Op::Le => (type_lo, past_eq),
        Op::Gt => (past_eq, type_hi),
        Op::Ge => (with(eq_prefix), type_hi),
        _ => return Ok(None),
    };
    scan(meta, &base, Some(&lo), Some(&hi)).map(Some)
}

/// Ids of index keys under `prefix`, from `lo` (inclusive) to `hi` (exclusive).
fn scan(
    meta: &Meta,
    prefix: &[u8],
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
) -> Result<BTreeSet<EntityId>> {
    let mut out = BTreeSet::new();
    for kv in meta.scan_prefix(Cf::Index, prefix, lo.unwrap_or(prefix)) {
        let (k, _) = kv?;
        if hi.is_some_and(|h| &k[..] >= h) {
            break;
        }
        out.insert(trailing_id(&k).ok_or_else(|| Error::corrupt("index", "key too short"))?);
    }
    Ok(out)
}
