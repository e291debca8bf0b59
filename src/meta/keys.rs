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

/// `versions` key: model name, a zero byte (names never contain one), then
/// the version number.
pub(crate) fn version(name: &str, version: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 5);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The prefix shared by all `versions` keys of one model.
pub(crate) fn version_prefix(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// Parses a `versions` key.
pub(crate) fn parse_version(k: &[u8]) -> Option<(&str, u32)> {
    if k.len() < 6 {
        return None;
    }
    let (name, rest) = k.split_at(k.len() - 5);
    if rest[0] != 0 || name.contains(&0) {
        return None;
    }
    let v = u32::from_be_bytes(rest[1..].try_into().ok()?);
    Some((std::str::from_utf8(name).ok()?, v))
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
        assert_eq!(parse_version(&version("resnet", 12)), Some(("resnet", 12)));
        assert!(version("a", 2) < version("a", 10));
        assert!(
            version("a", u32::MAX) < version("a0", 0)
                || version("a", u32::MAX)[..2] != version("a0", 0)[..2]
        );
        assert!(version("resnet", 1).starts_with(&version_prefix("resnet")));
        assert!(!version("resnet2", 1).starts_with(&version_prefix("resnet")));
        assert_eq!(parse_version(b"ab"), None);
        assert_eq!(parse_segment(b"short"), None);
    }
}
