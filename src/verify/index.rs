//! Checking the secondary indexes against the primary records.
//!
//! The index is derived data: every entry follows from an experiment, model
//! or version record (`meta::registry_index`). [`compare`] recomputes the
//! full key set and compares it with the `index` column family; `verify`
//! reports the differences, `Store::rebuild_index` applies the fix.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
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

/// Every index entry (key → value) implied by the primary records.
fn expected(meta: &impl Scan) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for e in experiments::all(meta) {
        let (id, r) = e?;
        out.extend(
            index_keys::experiment_keys(&id, &r)
                .into_iter()
                .map(|k| (k, Vec::new())),
        );
    }
    for m in models::all(meta) {
        let (id, r) = m?;
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
    for v in versions::all(meta) {
        let (id, ver, r) = v?;
        out.extend(
            index_keys::version_keys(&id, ver, &r)
                .into_iter()
                .map(|k| (k, Vec::new())),
        );
    }
    Ok(out)
}

/// The differences between the index and what the records imply, and the
/// batch that makes the index equal to it (`Store::rebuild_index`).
pub(crate) fn compare(meta: &impl Scan) -> Result<(IndexReport, Batch)> {
    let want = expected(meta)?;
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
    Ok((report, fix))
}

/// `Store::verify_index` as of `snap` (`verify` reads one point in time).
pub(crate) fn verify_index_at(snap: &Snapshot) -> Result<IndexReport> {
    Ok(compare(snap)?.0)
}
