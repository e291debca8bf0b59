//! The `gc` column family: the collection's work queue. A dead manifest
//! (`m` ‖ manifest id u64 BE) is one no blob or upload owns; its segments are
//! released and deleted by the next collection. A chunk candidate
//! (`c` ‖ chunk id) is a chunk whose count fell to 0; the next collection
//! deletes its index entry unless it is referenced or held again by then.
//! Values are empty.

use crate::error::{Error, Result};
use crate::id::{ChunkId, Hash32};
use crate::meta::{keys, Batch, Cf, Meta, Scan};

use super::refs::Cursor;
use super::{IdOrKey, RawKey};

fn bad_key() -> Error {
    Error::corrupt("gc column family", "key of the wrong length")
}

/// Queues manifest `m` as dead.
pub(crate) fn mark_manifest(batch: &mut Batch, m: u64) {
    batch.put(Cf::Gc, keys::gc_manifest(m).to_vec(), Vec::new());
}

/// Takes manifest `m` off the queue (its segments are all released).
pub(crate) fn unmark_manifest(batch: &mut Batch, m: u64) {
    batch.delete(Cf::Gc, keys::gc_manifest(m).to_vec());
}

/// Queues chunk `id` as a candidate for deletion.
pub(crate) fn mark_chunk(batch: &mut Batch, id: &ChunkId) {
    batch.put(Cf::Gc, keys::gc_chunk(id.as_bytes()).to_vec(), Vec::new());
}

/// Takes chunk `id` off the candidates.
pub(crate) fn unmark_chunk(batch: &mut Batch, id: &ChunkId) {
    batch.delete(Cf::Gc, keys::gc_chunk(id.as_bytes()).to_vec());
}

/// The first dead manifest after `after` (from the start if `None`).
pub(crate) fn next_manifest(meta: &Meta, after: Option<u64>) -> Result<Option<u64>> {
    let prefix = [keys::gc::MANIFEST];
    let from = match after {
        Some(m) => [&keys::gc_manifest(m)[..], &[0]].concat(),
        None => prefix.to_vec(),
    };
    match meta.scan_prefix(Cf::Gc, &prefix, &from).next() {
        Some(kv) => keys::parse_u64(&kv?.0[1..]).ok_or_else(bad_key).map(Some),
        None => Ok(None),
    }
}

/// The highest dead manifest id.
pub(crate) fn last_manifest(meta: &Meta) -> Result<Option<u64>> {
    let gm = keys::gc_manifest(u64::MAX);
    meta.floor(Cf::Gc, &gm[..1], &gm)?
        .map(|(k, _)| keys::parse_u64(&k[1..]).ok_or_else(bad_key))
        .transpose()
}

/// The chunk candidates after `after` (from the first if `None`), in id
/// order.
pub(crate) fn chunks<'m>(
    meta: &'m Meta,
    after: Option<&ChunkId>,
) -> impl Iterator<Item = Result<ChunkId>> + 'm {
    let prefix = [keys::gc::CHUNK];
    let from = match after {
        Some(id) => [&prefix[..], id.as_bytes(), &[0]].concat(),
        None => prefix.to_vec(),
    };
    meta.scan_prefix(Cf::Gc, &prefix, &from).map(|kv| {
        let (k, _) = kv?;
        Hash32::from_slice(&k[1..]).ok_or_else(bad_key)
    })
}

/// Every key of the queue that is neither a chunk candidate nor a dead
/// manifest marker, in key order.
pub(crate) fn malformed<'s>(
    r: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<RawKey>> + 's {
    r.scan_prefix(Cf::Gc, &[], &[]).filter_map(|kv| match kv {
        Err(e) => Some(Err(e)),
        Ok((k, _)) => match (k.first(), k.len()) {
            (Some(&keys::gc::CHUNK), 33) | (Some(&keys::gc::MANIFEST), 9) => None,
            _ => Some(Ok(RawKey::new(Cf::Gc, &k))),
        },
    })
}

/// The chunk candidates, for lookups in ascending id order alongside
/// another id-ordered scan.
pub(crate) fn candidates<'s>(r: &'s (impl Scan + ?Sized)) -> Cursor<'s, ()> {
    Cursor::new(r, Cf::Gc, &[keys::gc::CHUNK], |_| ())
}

/// The dead manifests in `[lo, hi]`, ascending; a malformed manifest key in
/// that range comes as its [`RawKey`].
pub(crate) fn manifests_in<'s>(
    r: &'s (impl Scan + ?Sized),
    lo: u64,
    hi: u64,
) -> impl Iterator<Item = Result<IdOrKey>> + 's {
    super::ids_in(
        r,
        Cf::Gc,
        &[keys::gc::MANIFEST],
        &keys::gc_manifest(lo),
        keys::gc_manifest(hi).to_vec(),
        |k| keys::parse_u64(&k[1..]),
    )
}

/// Deletes every key of the queue (tests that make a store look like one
/// written before reference counts).
#[cfg(test)]
pub(crate) fn clear(meta: &Meta, batch: &mut Batch) {
    for kv in meta.scan_prefix(Cf::Gc, &[], &[]) {
        batch.delete(Cf::Gc, kv.unwrap().0.to_vec());
    }
}
