//! Byte layout of pack files. See docs/FORMAT.md for the full description.
//!
//! ```text
//! pack file  = pack header, then chunk records back to back
//! pack header (32 bytes):
//!   0..8    magic  89 4D 56 50 0D 0A 1A 0A  ("\x89MVP\r\n\x1a\n")
//!   8..12   format version, u32 LE (1)
//!   12..16  pack id, u32 LE (matches the file name)
//!   16..32  store id (UUID bytes)
//! chunk record = record header (52 bytes), then `stored_len` payload bytes
//!   0..4    magic "CHNK"
//!   4..6    codec kind, codec parameter
//!   6..8    reserved, zero
//!   8..12   raw length, u32 LE
//!   12..16  stored length, u32 LE
//!   16..48  chunk id: blake3 of the raw bytes
//!   48..52  crc32 of bytes 0..48
//! ```

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::id::ChunkId;

/// Pack file magic, PNG-style: a high byte, a name, and line-ending bytes
/// that a text-mode transfer would mangle.
pub(crate) const PACK_MAGIC: [u8; 8] = *b"\x89MVP\r\n\x1a\n";
/// The pack format version this build writes and reads.
pub(crate) const PACK_VERSION: u32 = 1;
/// Length of the pack header: magic (8) + version (4) + pack id (4) + store id (16).
pub const PACK_HEADER_LEN: usize = 8 + 4 + 4 + 16;

/// Chunk record magic.
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"CHNK";
/// Length of a record header: magic (4) + codec (2) + reserved (2) + raw
/// length (4) + stored length (4) + chunk id (32) + crc32 (4).
pub const RECORD_HEADER_LEN: usize = 4 + 2 + 2 + 4 + 4 + 32 + 4;

/// Largest raw chunk this format accepts: the largest chunking maximum a
/// store can be created with (`Chunker::check`). A store's own maximum, 128
/// KiB by default, bounds its chunks further (`PackReader` checks it); this
/// limit bounds what a hostile record or index entry can make any reader
/// allocate.
pub(crate) const MAX_RAW_CHUNK: u32 = 16 << 20;
/// Most bytes a stored payload may exceed its chunk's raw length by: every
/// codec falls back to storing raw when it would not save space, and a
/// delta adds its 35-byte header to a payload smaller than the chunk, so
/// 64 KiB (zstd's worst-case expansion of a 16 MiB input) is never reached.
pub(crate) const MAX_CODEC_OVERHEAD: u32 = 1 << 16;
/// Largest stored payload: raw plus the worst-case codec overhead.
pub(crate) const MAX_STORED_CHUNK: u32 = MAX_RAW_CHUNK + MAX_CODEC_OVERHEAD;

/// Where a chunk lives: enough to read and decode it without any other lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkLoc {
    /// Pack file id.
    pub pack: u32,
    /// Byte offset of the record header within the pack.
    pub offset: u64,
    /// Payload bytes after the header.
    pub stored_len: u32,
    /// Decoded length.
    pub raw_len: u32,
    /// How the payload is encoded.
    pub codec: Codec,
    /// For a [`Codec::Delta`] record, the chunk it was encoded against
    /// (also named in the payload); `None` for every other codec.
    pub base: Option<ChunkId>,
    /// For a record stored whole: the length of the longest delta chain
    /// that ends at this chunk (0 when no delta names it, directly or
    /// through other deltas). It only grows, and bounds how much deeper a
    /// reverse delta may make those chains. Always 0 for a delta record.
    pub height: u8,
}

impl ChunkLoc {
    /// The offset just past this record.
    pub fn end(&self) -> u64 {
        self.offset + RECORD_HEADER_LEN as u64 + self.stored_len as u64
    }
}

/// `<id as 8 hex digits>.pack`.
pub(crate) fn pack_file_name(id: u32) -> String {
    format!("{id:08x}.pack")
}

/// The inverse of [`pack_file_name`]; `None` for any other file name.
pub(crate) fn parse_pack_file_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".pack")?;
    if hex.len() != 8
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The header at the start of every pack file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackHeader {
    pub id: u32,
    pub store_id: [u8; 16],
}

impl PackHeader {
    pub fn encode(&self) -> [u8; PACK_HEADER_LEN] {
        let mut b = [0u8; PACK_HEADER_LEN];
        b[0..8].copy_from_slice(&PACK_MAGIC);
        b[8..12].copy_from_slice(&PACK_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..32].copy_from_slice(&self.store_id);
        b
    }

    pub fn decode(b: &[u8], what: &str) -> Result<Self> {
        if b.len() < PACK_HEADER_LEN {
            return Err(Error::corrupt(
                what,
                format!("header is {} bytes, need {PACK_HEADER_LEN}", b.len()),
            ));
        }
        if b[0..8] != PACK_MAGIC {
            return Err(Error::corrupt(
                what,
                "bad magic: not a modelvault pack file",
            ));
        }
        let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
        if version != PACK_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "pack",
                found: version,
                supported: PACK_VERSION,
            });
        }
        Ok(PackHeader {
            id: u32::from_le_bytes(b[12..16].try_into().unwrap()),
            store_id: b[16..32].try_into().unwrap(),
        })
    }
}

/// The header in front of each chunk's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub codec: Codec,
    pub raw_len: u32,
    pub stored_len: u32,
    pub id: ChunkId,
}

impl RecordHeader {
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4..6].copy_from_slice(&self.codec.to_bytes());
        b[8..12].copy_from_slice(&self.raw_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.stored_len.to_le_bytes());
        b[16..48].copy_from_slice(self.id.as_bytes());
        let crc = crc32fast::hash(&b[0..48]);
        b[48..52].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks a record header: magic, checksum, codec and length
    /// limits. `what` names the record in errors.
    pub fn decode(b: &[u8], what: &dyn std::fmt::Display) -> Result<Self> {
        if b.len() < RECORD_HEADER_LEN {
            return Err(Error::corrupt(
                what,
                format!("record header truncated to {} bytes", b.len()),
            ));
        }
        if b[0..4] != RECORD_MAGIC {
            return Err(Error::corrupt(what, "bad record magic"));
        }
        let crc = u32::from_le_bytes(b[48..52].try_into().unwrap());
        if crc != crc32fast::hash(&b[0..48]) {
            return Err(Error::corrupt(what, "record header checksum mismatch"));
        }
        if b[6..8] != [0, 0] {
            return Err(Error::corrupt(what, "reserved header bytes are not zero"));
        }
        let codec = Codec::from_bytes([b[4], b[5]])?;
        let raw_len = u32::from_le_bytes(b[8..12].try_into().unwrap());
        let stored_len = u32::from_le_bytes(b[12..16].try_into().unwrap());
        if raw_len > MAX_RAW_CHUNK || stored_len > MAX_STORED_CHUNK {
            return Err(Error::corrupt(
                what,
                format!("lengths out of range: raw {raw_len}, stored {stored_len}"),
            ));
        }
        Ok(RecordHeader {
            codec,
            raw_len,
            stored_len,
            id: ChunkId::from_slice(&b[16..48]).unwrap(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_detect_any_flipped_bit() {
        let h = RecordHeader {
            codec: Codec::Planes { width: 4 },
            raw_len: 65536,
            stored_len: 40000,
            id: ChunkId::of(b"x"),
        };
        let b = h.encode();
        assert_eq!(RecordHeader::decode(&b, &"r").unwrap(), h);
        for bit in 0..RECORD_HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                RecordHeader::decode(&c, &"r").is_err(),
                "bit {bit} not detected"
            );
        }
        let p = PackHeader {
            id: 7,
            store_id: [3; 16],
        };
        assert_eq!(PackHeader::decode(&p.encode(), "p").unwrap(), p);
        assert!(PackHeader::decode(&p.encode()[..10], "p").is_err());
    }

    #[test]
    fn pack_file_names_round_trip() {
        assert_eq!(pack_file_name(0x1f), "0000001f.pack");
        assert_eq!(parse_pack_file_name("0000001f.pack"), Some(0x1f));
        for bad in [
            "1f.pack",
            "0000001F.pack",
            "0000001f.pak",
            "../0000001f.pack",
            "zzzzzzzz.pack",
        ] {
            assert_eq!(parse_pack_file_name(bad), None, "{bad}");
        }
    }
}
