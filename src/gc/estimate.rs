//! What releasing blob references would free, computed from the committed
//! counts without changing anything (for dry runs and deletion reports).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::Result;
use crate::id::{BlobId, ChunkId};
use crate::meta::tables::manifests;
use crate::meta::tables::refs::{get, Count};
use crate::meta::Meta;
use crate::pack::RECORD_HEADER_LEN;

/// Blobs that `drops` (blob → references released) would delete, and the
/// pack bytes of the chunks that would then be unreferenced (reclaimed by
/// the next collection with compaction).
pub(crate) fn freed_by(meta: &Meta, drops: &BTreeMap<BlobId, u64>) -> Result<(u64, u64)> {
    let mut chunk_drops: HashMap<ChunkId, u64> = HashMap::new();
    let mut blobs = 0;
    for (blob, n) in drops {
        let refs_now = get(meta, Count::Blob(*blob))?;
        let holds = get(meta, Count::Hold(*blob))?;
        if refs_now > *n || holds > 0 {
            continue;
        }
        let Some(rec) = crate::meta::tables::blobs::get(meta, blob)? else {
            continue;
        };
        blobs += 1;
        if rec.manifest == 0 {
            continue;
        }
        for seg in manifests::segments(meta, rec.manifest, None) {
            for e in seg?.entries? {
                *chunk_drops.entry(e.id).or_insert(0) += 1;
            }
        }
    }
    // A freed delta releases its base: follow the chains.
    let mut bytes = 0;
    let mut work: Vec<ChunkId> = chunk_drops.keys().copied().collect();
    let mut freed: HashSet<ChunkId> = HashSet::new();
    while let Some(id) = work.pop() {
        let n = chunk_drops[&id];
        if freed.contains(&id) || get(meta, Count::Chunk(id))? > n {
            continue;
        }
        freed.insert(id);
        if let Some(loc) = crate::meta::tables::chunks::get(meta, &id)? {
            bytes += RECORD_HEADER_LEN as u64 + loc.stored_len as u64;
            if let Some(base) = loc.base {
                *chunk_drops.entry(base).or_insert(0) += 1;
                work.push(base);
            }
        }
    }
    Ok((blobs, bytes))
}

/// Stored bytes (pack record headers included, as in [`freed_by`]) of every
/// chunk the blobs `blobs` name, with the delta bases those chunks need,
/// each chunk counted once however many of the blobs name it: what the
/// blobs take in the packs, shared or not. Blobs that are not stored add
/// nothing.
pub(crate) fn stored_by<'a>(
    meta: &Meta,
    blobs: impl IntoIterator<Item = &'a BlobId>,
) -> Result<u64> {
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut work: Vec<ChunkId> = Vec::new();
    for blob in blobs {
        let Some(rec) = crate::meta::tables::blobs::get(meta, blob)? else {
            continue;
        };
        if rec.manifest == 0 {
            continue;
        }
        for seg in manifests::segments(meta, rec.manifest, None) {
            for e in seg?.entries? {
                if seen.insert(e.id) {
                    work.push(e.id);
                }
            }
        }
    }
    let mut bytes = 0;
    while let Some(id) = work.pop() {
        if let Some(loc) = crate::meta::tables::chunks::get(meta, &id)? {
            bytes += RECORD_HEADER_LEN as u64 + loc.stored_len as u64;
            if let Some(base) = loc.base {
                if seen.insert(base) {
                    work.push(base);
                }
            }
        }
    }
    Ok(bytes)
}

/// Raw bytes of the chunks that only upload sessions keep (an interrupted
/// upload's durable prefix, no blob or version naming them): what `stats`
/// counts apart, since no version's logical bytes include them. A chunk is
/// counted when its reference count is no more than the references the
/// sessions' manifests make to it.
pub(crate) fn upload_only_bytes(meta: &Meta) -> Result<u64> {
    let mut in_sessions: HashMap<ChunkId, (u64, u64)> = HashMap::new();
    for s in crate::meta::tables::uploads::all(meta) {
        let (manifest, _) = s?;
        for seg in manifests::segments(meta, manifest, None) {
            for e in seg?.entries? {
                let c = in_sessions.entry(e.id).or_insert((0, u64::from(e.len)));
                c.0 += 1;
            }
        }
    }
    let mut bytes = 0;
    for (id, (n, len)) in in_sessions {
        if get(meta, Count::Chunk(id))? <= n {
            bytes += len;
        }
    }
    Ok(bytes)
}
