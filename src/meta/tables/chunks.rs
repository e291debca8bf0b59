//! The `chunks` column family: the chunk index, chunk id → [`ChunkLoc`]
//! (where the chunk's record lives, its delta base and chain height).

use crate::error::Result;
use crate::id::{ChunkId, Hash32};
use crate::meta::records;
use crate::meta::{Batch, Cf, Meta, Scan};
use crate::pack::ChunkLoc;

use super::{Entry, Read};

/// Where chunk `id` lives, if it is in the index.
pub(crate) fn get(meta: &Meta, id: &ChunkId) -> Result<Option<ChunkLoc>> {
    meta.with(Cf::Chunks, id.as_bytes(), records::decode_chunk_loc)
}

/// Writes the index entry of chunk `id`.
pub(crate) fn put(batch: &mut Batch, id: &ChunkId, loc: &ChunkLoc) {
    batch.put(
        Cf::Chunks,
        id.as_bytes().to_vec(),
        records::encode_chunk_loc(loc),
    );
}

/// Deletes the index entry of chunk `id`.
pub(crate) fn delete(batch: &mut Batch, id: &ChunkId) {
    batch.delete(Cf::Chunks, id.as_bytes().to_vec());
}

/// Whether the index has any entry.
pub(crate) fn any(meta: &Meta) -> Result<bool> {
    Ok(meta.last_key(Cf::Chunks)?.is_some())
}

/// Whether chunk `id` is in the index (live or as of a snapshot).
pub(crate) fn exists(r: &impl Read, id: &ChunkId) -> Result<bool> {
    Ok(r.get(Cf::Chunks, id.as_bytes())?.is_some())
}

/// Every index entry, in id order, key and value parsed apart (see
/// [`Entry`]).
pub(crate) fn entries<'s>(
    r: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<Entry<ChunkId, ChunkLoc>>> + 's {
    super::entries(r, Cf::Chunks, Hash32::from_slice, |v| {
        records::decode_chunk_loc(v)
    })
}

/// Every index entry, in id order; a malformed key or an undecodable value
/// is an error.
pub(crate) fn all<'s>(
    r: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<(ChunkId, ChunkLoc)>> + 's {
    super::strict("chunks column family", entries(r))
}
