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
use crate::id::{BlobId, Hash32};
use crate::meta::keys::{self, refs};
use crate::meta::records::{self, SegmentEntry, StatsRecord};
use crate::meta::tables::{blobs, gc_queue};
use crate::meta::{Batch, Cf, Meta};

/// Adds a manifest segment to `batch`, with one reference per entry.
pub(crate) fn put_segment(batch: &mut Batch, manifest: u64, start: u64, seg: &[SegmentEntry]) {
    batch.put(
        Cf::Manifests,
        keys::segment(manifest, start).to_vec(),
        records::encode_segment(seg),
    );
    for e in seg {
        batch.count(keys::count(refs::CHUNK, e.id.as_bytes()), 1);
    }
}

/// The committed count under a `refs` key (0 when absent).
pub(crate) fn get(meta: &Meta, key: &[u8]) -> Result<u64> {
    Ok(meta
        .with(Cf::Refs, key, records::decode_count)?
        .unwrap_or(0))
}

fn describe(key: &[u8]) -> String {
    let id = Hash32::from_slice(&key[1..]).map_or_else(|| "?".into(), |h| h.to_string());
    match key[0] {
        refs::CHUNK => format!("chunk {id}"),
        refs::BLOB => format!("references of blob {id}"),
        refs::HOLD => format!("holds of blob {id}"),
        _ => format!("refs key {key:02x?}"),
    }
}

/// Turns `batch`'s count changes into writes. Must run under the commit
/// lock, so the values read are the committed ones and stay so until the
/// batch is written.
pub(crate) fn resolve(meta: &Meta, batch: &mut Batch, stats: &mut StatsRecord) -> Result<()> {
    let deltas = batch.take_deltas();
    if deltas.is_empty() {
        return Ok(());
    }
    let mut sum: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (k, d) in deltas {
        if k.len() != 33 {
            return Err(Error::corrupt("reference count key", format!("{k:02x?}")));
        }
        *sum.entry(k).or_default() += d;
    }
    let mut after: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut blobs_at_zero = Vec::new();
    // One batched lookup for the whole batch (a segment is 1024 keys).
    let keys: Vec<Vec<u8>> = sum.keys().cloned().collect();
    let olds = meta.get_sorted(Cf::Refs, &keys)?;
    for ((k, d), old) in sum.iter().zip(olds) {
        let old = match old {
            Some(b) => records::decode_count(&b)?,
            None => 0,
        };
        let new = i128::from(old) + i128::from(*d);
        let new = u64::try_from(new).map_err(|_| {
            Error::corrupt(
                describe(k),
                format!("count {old} changed by {d:+} would fall below zero"),
            )
        })?;
        if new == old {
            continue;
        }
        if new == 0 {
            batch.delete(Cf::Refs, k.clone());
        } else {
            batch.put(Cf::Refs, k.clone(), records::encode_count(new).to_vec());
        }
        after.insert(k.clone(), new);
        if new == 0 {
            match k[0] {
                refs::CHUNK => {
                    let id = <[u8; 32]>::try_from(&k[1..]).expect("33-byte key");
                    gc_queue::mark_chunk(batch, &Hash32(id));
                }
                _ => blobs_at_zero.push(<[u8; 32]>::try_from(&k[1..]).expect("33-byte key")),
            }
        }
    }
    blobs_at_zero.sort_unstable();
    blobs_at_zero.dedup();
    for id in blobs_at_zero {
        let mut live = 0;
        for tag in [refs::BLOB, refs::HOLD] {
            let k = keys::count(tag, &id);
            live += match after.get(k.as_slice()) {
                Some(&n) => n,
                None => get(meta, &k)?,
            };
        }
        if live > 0 {
            continue;
        }
        let blob = BlobId(Hash32(id));
        let Some(rec) = blobs::get(meta, &blob)? else {
            return Err(Error::corrupt(
                format!("blob {}", Hash32(id)),
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
