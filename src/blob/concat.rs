//! A blob made of stored blobs end to end, from their chunk lists alone: no
//! byte is read or written. The new blob's manifest lists the parts'
//! chunks in order, each entry adding a chunk reference as every manifest
//! segment does, in the caller's commit (under the commit lock), so the
//! parts may be released in the same batch without their chunks ever
//! being unreferenced.
//!
//! Its id cannot be the hash of its content without reading it: it is a
//! BLAKE3 key derivation over the parts' ids and sizes (see
//! docs/FORMAT.md, "Blob id"), so the same parts in the same order make
//! the same blob, stored once.

use crate::error::{Error, Result};
use crate::id::{BlobId, Hash32};
use crate::meta::records::{BlobRecord, SegmentEntry, StatsRecord, SEGMENT_MAX_ENTRIES};
use crate::meta::tables::{blobs, manifests};
use crate::meta::{Batch, Meta};

use crate::chunk::refs::put_segment;

/// The BLAKE3 key-derivation context of concatenated blobs' ids.
const CONCAT_CONTEXT: &str = "modelvault 2026-12-07 concatenated blob id v1";

/// The id of the concatenation of `parts` (ids and sizes, in order).
fn concat_id(parts: &[(BlobId, BlobRecord)]) -> BlobId {
    let mut h = blake3::Hasher::new_derive_key(CONCAT_CONTEXT);
    h.update(&(parts.len() as u64).to_le_bytes());
    for (id, r) in parts {
        h.update(id.as_bytes());
        h.update(&r.size.to_le_bytes());
    }
    BlobId(Hash32(*h.finalize().as_bytes()))
}

/// Adds to `batch` the blob whose content is `parts`' contents end to end,
/// and returns its id and size; the caller adds the reference that keeps it in the
/// same batch. Runs under the commit lock (in a `Chunks::commit` closure):
/// `meta` is the committed state, and the parts must be kept by references
/// committed there. `manifest` is a fresh manifest id
/// (`Chunks::new_manifest`), used only if a new manifest is written.
///
/// With one part that has bytes (the others empty) the blob is that part's;
/// with none, the first part's (the empty blob). A concatenation already
/// stored is taken as it is.
pub(crate) fn apply_concat(
    meta: &Meta,
    stats: &mut StatsRecord,
    batch: &mut Batch,
    parts: &[BlobId],
    manifest: u64,
) -> Result<(BlobId, u64)> {
    let mut recs = Vec::with_capacity(parts.len());
    for id in parts {
        let r = blobs::get(meta, id)?
            .ok_or_else(|| Error::corrupt(format!("blob {id}"), "a part's blob is not stored"))?;
        recs.push((*id, r));
    }
    let Some(first) = recs.first() else {
        return Err(Error::invalid("part list", "[]", "no parts to concatenate"));
    };
    let first = first.0;
    let full: Vec<(BlobId, BlobRecord)> = recs.into_iter().filter(|(_, r)| r.size > 0).collect();
    let mut total = 0u64;
    for (_, r) in &full {
        total = total
            .checked_add(r.size)
            .ok_or_else(|| Error::invalid("part list", "sizes", "the parts' sizes overflow"))?;
    }
    match full.len() {
        0 => return Ok((first, 0)),
        1 => return Ok((full[0].0, total)),
        _ => {}
    }
    let id = concat_id(&full);
    if blobs::exists(meta, &id)? {
        return Ok((id, total));
    }
    if manifest == 0 {
        return Err(Error::corrupt(
            "concatenation",
            "manifest id 0 (internal error)",
        ));
    }
    let mut seg: Vec<SegmentEntry> = Vec::with_capacity(SEGMENT_MAX_ENTRIES);
    let (mut seg_start, mut at, mut chunks) = (0u64, 0u64, 0u64);
    for (part, r) in &full {
        let object = || format!("blob {part}");
        let (mut expect, mut count) = (0u64, 0u64);
        for stored in manifests::segments(meta, r.manifest, None) {
            let stored = stored?;
            let start = stored.start();
            if start != Some(expect) {
                return Err(Error::corrupt(
                    object(),
                    format!("manifest segment starts at {start:?}, expected {expect}"),
                ));
            }
            for e in stored.entries? {
                expect = expect
                    .checked_add(u64::from(e.len))
                    .filter(|&end| end <= r.size)
                    .ok_or_else(|| {
                        Error::corrupt(object(), "manifest runs past the blob's size")
                    })?;
                count += 1;
                seg.push(e);
                if seg.len() == SEGMENT_MAX_ENTRIES {
                    put_segment(batch, manifest, seg_start, &seg);
                    seg_start = at + expect;
                    seg.clear();
                }
            }
        }
        if expect != r.size || count != r.chunks {
            return Err(Error::corrupt(
                object(),
                format!(
                    "manifest covers {expect} bytes in {count} chunks, record says {} bytes in {}",
                    r.size, r.chunks
                ),
            ));
        }
        at += r.size;
        chunks += r.chunks;
    }
    if !seg.is_empty() {
        put_segment(batch, manifest, seg_start, &seg);
    }
    blobs::put(
        batch,
        &id,
        &BlobRecord {
            size: at,
            chunks,
            manifest,
        },
    );
    stats.blobs += 1;
    Ok((id, at))
}
