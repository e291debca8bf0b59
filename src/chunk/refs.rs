//! Reference counts, kept in the `refs` column family and changed only
//! under the store's commit lock.
//!
//! Writers never read-modify-write a count themselves: they add signed
//! changes to their [`Batch`] (`Batch::count`), and the commit resolves them
//! here, against the committed values, into plain puts and deletes in the
//! same atomic batch. What a count falling to zero implies is decided here
//! too, in that batch:
//!
//! * a chunk's count (manifest segment entries naming it) at 0 → a `gc`
//!   candidate key; the next collection deletes the chunk's index entry
//!   unless by then it is referenced again or held by an upload in flight;
//! * a blob's references (registry records) and holds (callers) both at 0 →
//!   its record is deleted now and its manifest is marked dead; the next
//!   collection releases the manifest's chunk references.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::meta::records::{SegmentEntry, StatsRecord};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{blobs, gc_queue, manifests};
use crate::meta::{Batch, Meta};

pub(crate) use refs::get;

/// Adds a manifest segment to `batch`, with one reference per entry.
pub(crate) fn put_segment(batch: &mut Batch, manifest: u64, start: u64, seg: &[SegmentEntry]) {
    manifests::put(batch, manifest, start, seg);
    for e in seg {
        refs::change(batch, Count::Chunk(e.id), 1);
    }
}

fn describe(c: Count) -> String {
    match c {
        Count::Chunk(id) => format!("chunk {id}"),
        Count::Blob(id) => format!("references of blob {id}"),
        Count::Hold(id) => format!("holds of blob {id}"),
    }
}

/// Turns `batch`'s count changes into writes. Must run under the commit
/// lock, so the values read are the committed ones and stay so until the
/// batch is written.
pub(crate) fn resolve(meta: &Meta, batch: &mut Batch, stats: &mut StatsRecord) -> Result<()> {
    let sum = refs::take_changes(batch)?;
    if sum.is_empty() {
        return Ok(());
    }
    let mut after: BTreeMap<Count, u64> = BTreeMap::new();
    let mut blobs_at_zero = Vec::new();
    // One batched lookup for the whole batch (a segment is 1024 keys).
    let counts: Vec<Count> = sum.keys().copied().collect();
    let olds = refs::get_sorted(meta, &counts)?;
    for ((&c, d), old) in sum.iter().zip(olds) {
        let new = i128::from(old) + i128::from(*d);
        let new = u64::try_from(new).map_err(|_| {
            Error::corrupt(
                describe(c),
                format!("count {old} changed by {d:+} would fall below zero"),
            )
        })?;
        if new == old {
            continue;
        }
        if new == 0 {
            refs::delete(batch, c);
        } else {
            refs::put(batch, c, new);
        }
        after.insert(c, new);
        if new == 0 {
            match c {
                Count::Chunk(id) => gc_queue::mark_chunk(batch, &id),
                Count::Blob(id) | Count::Hold(id) => blobs_at_zero.push(id),
            }
        }
    }
    blobs_at_zero.sort_unstable();
    blobs_at_zero.dedup();
    for blob in blobs_at_zero {
        let mut live = 0;
        for c in [Count::Blob(blob), Count::Hold(blob)] {
            live += match after.get(&c) {
                Some(&n) => n,
                None => get(meta, c)?,
            };
        }
        if live > 0 {
            continue;
        }
        let Some(rec) = blobs::get(meta, &blob)? else {
            return Err(Error::corrupt(
                format!("blob {}", blob.0),
                "its last reference was released but it has no record",
            ));
        };
        blobs::delete(batch, &blob);
        if rec.manifest != 0 {
            gc_queue::mark_manifest(batch, rec.manifest);
        }
        stats.blobs = stats.blobs.saturating_sub(1);
    }
    Ok(())
}
