//! Checking the secondary indexes against the primary records.
//!
//! The index is derived data: every entry follows from an experiment, model
//! or version record (`meta::registry_index`). [`compare`] recomputes the
//! full key set and compares it with the `index` column family; `verify`
//! reports the differences, `Store::rebuild_index` applies the fix.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::meta::registry_index as index_keys;
use crate::meta::tables::{experiments, index, models, versions};
use crate::meta::{Batch, Scan, Snapshot};

/// Differences between the index and what the records imply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IndexReport {
    /// Entries the records imply but the index lacks (hex keys).
    pub missing: Vec<String>,
    /// Entries in the index that no record implies, or with a wrong value (hex keys).
    pub extra: Vec<String>,
}

impl IndexReport {
    /// True when the index matches the records exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// A primary record the index is derived from that does not decode: the
/// entries it implies are unknown.
pub(crate) struct Unreadable {
    /// The problem kind `verify` reports it as.
    pub kind: &'static str,
    /// The record: `model ID`, `experiment ID`, `model ID@VERSION`, or the
    /// key in hex when the key itself does not parse.
    pub object: String,
    pub error: Error,
}

/// Index entries: key → value.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every index entry implied by the primary records that decode, and the
/// records that do not.
fn expected(meta: &impl Scan) -> Result<(Entries, Vec<Unreadable>)> {
    let mut out = BTreeMap::new();
    let mut unreadable = Vec::new();
    for e in experiments::entries(meta) {
        let (key, id, r) = e?;
        match (id, r) {
            (Ok(id), Ok(r)) => out.extend(
                index_keys::experiment_keys(&id, &r)
                    .into_iter()
                    .map(|k| (k, Vec::new())),
            ),
            (Ok(id), Err(error)) => unreadable.push(Unreadable {
                kind: "experiment-corrupt",
                object: format!("experiment {id}"),
                error,
            }),
            (Err(error), _) => unreadable.push(Unreadable {
                kind: "experiment-key-corrupt",
                object: key.to_string(),
                error,
            }),
        }
    }
    for m in models::entries(meta) {
        let (key, id, r) = m?;
        let (id, r) = match (id, r) {
            (Ok(id), Ok(r)) => (id, r),
            (Ok(id), Err(error)) => {
                unreadable.push(Unreadable {
                    kind: "model-corrupt",
                    object: format!("model {id}"),
                    error,
                });
                continue;
            }
            (Err(error), _) => {
                unreadable.push(Unreadable {
                    kind: "model-key-corrupt",
                    object: key.to_string(),
                    error,
                });
                continue;
            }
        };
        out.extend(
            index_keys::model_keys(&id, &r)
                .into_iter()
                .map(|k| (k, Vec::new())),
        );
        if let Some(x) = &r.external {
            // The first model registered for a URL owns its entry.
            out.entry(index_keys::url_key(&x.url))
                .or_insert_with(|| id.0.to_vec());
        }
    }
    for v in versions::entries(meta) {
        let (key, id, r) = v?;
        match (id, r) {
            (Ok((id, ver)), Ok(r)) => out.extend(
                index_keys::version_keys(&id, ver, &r)
                    .into_iter()
                    .map(|k| (k, Vec::new())),
            ),
            (Ok((id, ver)), Err(error)) => unreadable.push(Unreadable {
                kind: "version-corrupt",
                object: format!("model {id}@{ver}"),
                error,
            }),
            (Err(error), _) => unreadable.push(Unreadable {
                kind: "version-key-corrupt",
                object: key.to_string(),
                error,
            }),
        }
    }
    Ok((out, unreadable))
}

/// The differences between the index and what the records imply, and the
/// batch that makes the index equal to it (`Store::rebuild_index`). An
/// error, naming the record, if a record the index derives from does not
/// decode: what the index should hold is then unknown, and a repair would
/// drop the entries of that record.
pub(crate) fn compare(meta: &impl Scan) -> Result<(IndexReport, Batch)> {
    let (report, fix, unreadable) = compare_all(meta)?;
    match unreadable.into_iter().next() {
        Some(u) => Err(u.error),
        None => Ok((report, fix)),
    }
}

/// [`compare`] against the records that decode, with those that do not.
fn compare_all(meta: &impl Scan) -> Result<(IndexReport, Batch, Vec<Unreadable>)> {
    let (want, unreadable) = expected(meta)?;
    let mut report = IndexReport::default();
    let mut fix = Batch::default();
    let mut seen = 0usize;
    for kv in index::entries(meta) {
        let (k, v) = kv?;
        match want.get(&k[..]) {
            Some(w) if w[..] == v[..] => seen += 1,
            Some(w) => {
                seen += 1;
                report.extra.push(hex::encode(&k));
                index::put_entry(&mut fix, k.to_vec(), w.clone());
            }
            None => {
                report.extra.push(hex::encode(&k));
                index::delete_entry(&mut fix, k.to_vec());
            }
        }
    }
    if seen != want.len() {
        let mut present = std::collections::BTreeSet::new();
        for kv in index::entries(meta) {
            present.insert(kv?.0.to_vec());
        }
        for (k, v) in &want {
            if !present.contains(k) {
                report.missing.push(hex::encode(k));
                index::put_entry(&mut fix, k.clone(), v.clone());
            }
        }
    }
    Ok((report, fix, unreadable))
}

/// The index check of `verify` as of `snap` (it reads one point in time):
/// the differences from the records that decode, and the records that do
/// not (reported as problems of their own, not an error that ends the
/// check).
pub(crate) fn verify_index_at(snap: &Snapshot) -> Result<(IndexReport, Vec<Unreadable>)> {
    let (report, _, unreadable) = compare_all(snap)?;
    Ok((report, unreadable))
}
