//! Key layouts, one per column family. All integers are big-endian so that
//! RocksDB's byte order is numeric order.

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
