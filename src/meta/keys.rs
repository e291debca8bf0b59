//! Key layouts, one per column family. All integers are big-endian so that
//! RocksDB's byte order is numeric order.

use crate::error::{Error, Result};
use crate::meta::registry_records::EntityId;

/// `manifests` key: manifest id, then the logical offset the segment starts at.
pub(crate) fn segment(manifest: u64, start: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&manifest.to_be_bytes());
    k[8..].copy_from_slice(&start.to_be_bytes());
    k
}

/// Parses a `manifests` key.
pub(crate) fn parse_segment(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 16 {
        return None;
    }
    Some((
        u64::from_be_bytes(k[..8].try_into().ok()?),
        u64::from_be_bytes(k[8..].try_into().ok()?),
    ))
}

/// `packs` key.
pub(crate) fn pack(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

/// Parses a `packs` key.
pub(crate) fn parse_pack(k: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(k.try_into().ok()?))
}

/// `refs` key tags.
pub(crate) mod refs {
    /// Chunk id → number of manifest segment entries naming it.
    pub const CHUNK: u8 = b'c';
    /// Blob id → number of registry records (version files, artifacts) naming it.
    pub const BLOB: u8 = b'b';
    /// Blob id → number of holds taken by callers (`BlobWriter::finish`).
    pub const HOLD: u8 = b'h';
}

/// A `refs` key: tag, then the 32-byte id.
pub(crate) fn count(tag: u8, id: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = tag;
    k[1..].copy_from_slice(id);
    k
}

/// `gc` key tags.
pub(crate) mod gc {
    /// Manifest id (u64 BE) → empty: a manifest no blob or upload owns; its
    /// segments are released and deleted by the next collection.
    pub const MANIFEST: u8 = b'm';
    /// Chunk id → empty: its count fell to 0; the next collection deletes its
    /// index entry unless it is referenced or held again by then.
    pub const CHUNK: u8 = b'c';
}

/// A `gc` key for a dead manifest.
pub(crate) fn gc_manifest(m: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = gc::MANIFEST;
    k[1..].copy_from_slice(&m.to_be_bytes());
    k
}

/// A `gc` key for a chunk whose count fell to 0.
pub(crate) fn gc_chunk(id: &[u8; 32]) -> [u8; 33] {
    count(gc::CHUNK, id)
}

/// `uploads` key: the upload's manifest id.
pub(crate) fn upload(m: u64) -> [u8; 8] {
    m.to_be_bytes()
}

/// Parses a u64 BE id (an `uploads` key, or a `gc` manifest key after its tag).
pub(crate) fn parse_u64(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

/// Parses `entity id (16) ‖ version u32 BE`, the tail of `versions` keys and
/// of the version-carrying index keys. `what` names the key in errors.
pub(crate) fn id_version(b: &[u8], what: &'static str) -> Result<(EntityId, u32)> {
    let bad = || {
        Error::corrupt(
            what,
            format!("{} bytes, expected a 16-byte id and a u32", b.len()),
        )
    };
    let id = EntityId(
        b.get(..16)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?,
    );
    let v = b
        .get(16..20)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(bad)?;
    Ok((id, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_numerically() {
        assert_eq!(parse_segment(&segment(3, 1 << 40)), Some((3, 1 << 40)));
        assert!(segment(1, 2) < segment(1, 256));
        assert!(segment(1, u64::MAX) < segment(2, 0));
        assert_eq!(parse_pack(&pack(9)), Some(9));
        assert_eq!(parse_segment(b"short"), None);
    }
}
