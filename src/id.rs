//! Content addresses: full 256-bit blake3 digests, always compared in full.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A 256-bit blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// Length of a digest in bytes.
    pub const LEN: usize = 32;

    /// The blake3 digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Hash32(*blake3::hash(data).as_bytes())
    }

    /// The digest as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a digest from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash32)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl FromStr for Hash32 {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(Error::invalid(
                "digest",
                s,
                "must be 64 hex digits (a full blake3 digest)",
            ));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| Error::invalid("digest", s, format!("not hex: {e}")))?;
        Ok(Hash32(out))
    }
}

/// The address of a chunk: the blake3 digest of its raw (uncompressed) bytes.
pub type ChunkId = Hash32;

/// The identity of a blob: the blake3 digest of its whole content, so equal
/// content gives an equal id whoever stored it and however it was chunked.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub Hash32);

impl BlobId {
    /// The id of the empty blob.
    pub fn empty() -> Self {
        BlobId(Hash32::of(&[]))
    }

    /// The digest as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({:?})", self.0)
    }
}

impl FromStr for BlobId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        s.parse().map(BlobId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_full_length_required() {
        let h = Hash32::of(b"abc");
        let s = h.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<Hash32>().unwrap(), h);
        assert!(s[..63].parse::<Hash32>().is_err());
        assert!("zz".repeat(32).parse::<Hash32>().is_err());
    }
}
