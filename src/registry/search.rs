//! Answering model queries from the secondary indexes.
//!
//! Each top-level conjunct that an index can answer is a candidate id set.
//! The planner scans all of them in rounds of growing limits (64, 512, …)
//! and drives the query from the first set that completes, so the work is a
//! small multiple of the smallest set. Other equality conjuncts are tested
//! on the driver's ids by index point lookups; [`Query::matches`] then checks
//! the whole query on each remaining record, so an index only has to return
//! a superset, never the exact answer. Fields the planner uses:
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

use super::model::ModelInfo;
use crate::error::{Error, Result};
use crate::meta::index_key::index_key;
use crate::meta::registry_index::{tag, trailing_id, Key};
use crate::meta::registry_records::EntityId;
use crate::meta::tables::index;
use crate::meta::Meta;
use crate::query::{Fields, Op, Query, Value};

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

/// Scan limits of the planner's probing rounds: every indexed conjunct is
/// scanned up to the limit, and the first conjunct whose scan completes
/// drives the query. The work is bounded by a small multiple of the
/// smallest conjunct's size, not by the largest.
const ROUNDS: [Option<usize>; 5] = [Some(64), Some(512), Some(4096), Some(32768), None];

/// Candidate ids for `q`, or `None` when no conjunct is indexed. The other
/// equality conjuncts on string indexes are applied to the driver's ids by
/// point lookups, so fewer records are loaded.
pub(crate) fn candidates(meta: &Meta, q: &Query) -> Result<Option<BTreeSet<EntityId>>> {
    let conjuncts = q.conjuncts();
    let mut driver = None;
    'rounds: for limit in ROUNDS {
        let mut any = false;
        for (i, c) in conjuncts.iter().enumerate() {
            if let Some(p) = conjunct(meta, c, limit)? {
                any = true;
                if p.complete {
                    driver = Some((i, p.ids));
                    break 'rounds;
                }
            }
        }
        if !any {
            return Ok(None);
        }
    }
    let Some((d, mut ids)) = driver else {
        return Ok(None);
    };
    for (i, c) in conjuncts.iter().enumerate() {
        if i == d {
            continue;
        }
        if let Some(keep) = members(meta, c, &ids)? {
            ids = keep;
        }
    }
    Ok(Some(ids))
}

/// The subset of `ids` satisfying an equality conjunct, by batched index
/// point lookups; `None` when the conjunct cannot be tested that way.
fn members(meta: &Meta, c: &Query, ids: &BTreeSet<EntityId>) -> Result<Option<BTreeSet<EntityId>>> {
    let (t, values): (u8, Vec<&str>) = match c {
        Query::Cmp {
            field,
            op: Op::Eq,
            value: Value::Str(s),
        } => match string_index(field) {
            Some(t) => (t, vec![s.as_str()]),
            None => return Ok(None),
        },
        Query::In { field, values } => match (
            string_index(field),
            values.iter().all(|v| matches!(v, Value::Str(_))),
        ) {
            (Some(t), true) => (
                t,
                values
                    .iter()
                    .filter_map(|v| {
                        if let Value::Str(s) = v {
                            Some(s.as_str())
                        } else {
                            None
                        }
                    })
                    .collect(),
            ),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let mut keep = BTreeSet::new();
    for v in values {
        // Keys of one value share a prefix and ids ascend: the batch is sorted.
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| Key::new(t).str(v).id(id).done())
            .collect();
        for (id, hit) in ids.iter().zip(index::exist_sorted(meta, &keys)?) {
            if hit {
                keep.insert(*id);
            }
        }
    }
    Ok(Some(keep))
}

/// The ids one conjunct's index yields; `complete` is false when the scan
/// stopped at its limit.
struct Probe {
    ids: BTreeSet<EntityId>,
    complete: bool,
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

fn conjunct(meta: &Meta, c: &Query, limit: Option<usize>) -> Result<Option<Probe>> {
    match c {
        Query::Cmp { field, op, value } => {
            if let (Some(t), Value::Str(s)) = (string_index(field), value) {
                return match op {
                    Op::Eq => scan(meta, &Key::new(t).str(s).done(), None, None, limit).map(Some),
                    Op::Prefix if t == tag::MODEL_NAME => scan(
                        meta,
                        &Key::new(t).bytes(s.as_bytes()).done(),
                        None,
                        None,
                        limit,
                    )
                    .map(Some),
                    _ => Ok(None),
                };
            }
            if field == "status" && *op == Op::Eq {
                let state = match value {
                    Value::Str(s) if s == "finalized" => 1u8,
                    Value::Str(s) if s == "draft" => 0u8,
                    _ => {
                        return Ok(Some(Probe {
                            ids: BTreeSet::new(),
                            complete: true,
                        }))
                    }
                };
                return scan(
                    meta,
                    &Key::new(tag::MODEL_STATE).bytes(&[state]).done(),
                    None,
                    None,
                    limit,
                )
                .map(Some);
            }
            if let Some(k) = field.strip_prefix("metadata.") {
                return metadata_range(meta, k, *op, value, limit);
            }
            Ok(None)
        }
        Query::In { field, values } => {
            let Some(t) = string_index(field) else {
                return Ok(None);
            };
            let mut all = Probe {
                ids: BTreeSet::new(),
                complete: true,
            };
            for v in values {
                if let Value::Str(s) = v {
                    let p = scan(meta, &Key::new(t).str(s).done(), None, None, limit)?;
                    all.ids.extend(p.ids);
                    all.complete &= p.complete;
                }
            }
            Ok(Some(all))
        }
        _ => Ok(None),
    }
}

/// Range over `metadata.K`: keys are `K ‖ 0 ‖ index_key(value) ‖ id`.
fn metadata_range(
    meta: &Meta,
    key: &str,
    op: Op,
    v: &Value,
    limit: Option<usize>,
) -> Result<Option<Probe>> {
    let ik = match v {
        Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_) => index_key(v),
        _ => return Ok(None),
    };
    if matches!(v, Value::Float(f) if f.is_nan()) {
        return Ok(Some(Probe {
            ids: BTreeSet::new(),
            complete: true,
        }));
    }
    // Equal numbers (Int 3, Float 3.0) share the first 17 bytes (type tag,
    // f64 order bits, i64 tiebreak); other kinds are prefix-free already.
    // That bucket can also hold unequal numbers at the edges of i64
    // (Int(i64::MAX) and Float(2^63) round alike), so strict comparisons
    // include it too: the index returns a superset, `matches` decides.
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
        Op::Lt | Op::Le => (type_lo, past_eq),
        Op::Gt => (with(eq_prefix), type_hi),
        Op::Ge => (with(eq_prefix), type_hi),
        _ => return Ok(None),
    };
    scan(meta, &base, Some(&lo), Some(&hi), limit).map(Some)
}

/// Ids of index keys under `prefix`, from `lo` (inclusive) to `hi`
/// (exclusive), stopping after `limit` entries.
fn scan(
    meta: &Meta,
    prefix: &[u8],
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
    limit: Option<usize>,
) -> Result<Probe> {
    let mut ids = BTreeSet::new();
    let mut complete = true;
    index::scan_keys(meta, prefix, lo.unwrap_or(prefix), |k| {
        if hi.is_some_and(|h| k >= h) {
            return Ok(false);
        }
        if limit.is_some_and(|l| ids.len() >= l) {
            complete = false;
            return Ok(false);
        }
        ids.insert(trailing_id(k).ok_or_else(|| Error::corrupt("index", "key too short"))?);
        Ok(true)
    })?;
    Ok(Probe { ids, complete })
}
