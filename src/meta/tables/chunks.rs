//! The `chunks` column family: the chunk index, chunk id → [`ChunkLoc`]
//! (where the chunk's record lives, its delta base and chain height).

use crate::error::Result;
use crate::id::ChunkId;
use crate::meta::records;
use crate::meta::{Batch, Cf, Meta};
use crate::pack::ChunkLoc;

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
