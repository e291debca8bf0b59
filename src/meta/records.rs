//! Record encodings. Every persisted record starts with a format version
//! byte. Hot records (chunk locations, blob heads, manifest segments) use
//! fixed little-endian layouts; the rest are postcard-encoded serde structs.
//! Every decoder treats its input as hostile: lengths and counts are checked
//! against the bytes actually present before anything is allocated.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::pack::ChunkLoc;
use crate::query::take_refusal;

/// Milliseconds since the Unix epoch, as records keep times (0 if the clock
/// is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Version byte of every record kind this build writes.
pub(crate) const RECORD_VERSION: u8 = 1;

fn check_version(what: &'static str, b: &[u8]) -> Result<()> {
    match b.first() {
        None => Err(Error::corrupt(what, "empty record")),
        Some(&RECORD_VERSION) => Ok(()),
        Some(&v) => Err(Error::UnsupportedVersion {
            what,
            found: v as u32,
            supported: RECORD_VERSION as u32,
        }),
    }
}

fn fixed<const N: usize>(what: &'static str, b: &[u8]) -> Result<[u8; N]> {
    check_version(what, b)?;
    b.try_into()
        .map_err(|_| Error::corrupt(what, format!("{} bytes, expected {N}", b.len())))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("caller checked length"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("caller checked length"))
}

/// `chunks` value: version, pack u32, offset u64, stored_len u32, raw_len
/// u32, codec [u8; 2], then for a delta record (codec kind 3) only, its
/// base chunk id [u8; 32]; for a whole record that delta chains end at, one
/// more byte, the longest such chain (`ChunkLoc::height`, 1..=255; absent
/// means 0).
pub(crate) const CHUNK_LOC_LEN: usize = 1 + 4 + 8 + 4 + 4 + 2;
/// Length of the index entry of a whole record with a non-zero height.
pub(crate) const ROOT_LOC_LEN: usize = CHUNK_LOC_LEN + 1;
/// Length of a delta record's index entry.
pub(crate) const DELTA_LOC_LEN: usize = CHUNK_LOC_LEN + 32;

pub(crate) fn encode_chunk_loc(l: &ChunkLoc) -> Vec<u8> {
    let mut b = Vec::with_capacity(DELTA_LOC_LEN);
    b.push(RECORD_VERSION);
    b.extend_from_slice(&l.pack.to_le_bytes());
    b.extend_from_slice(&l.offset.to_le_bytes());
    b.extend_from_slice(&l.stored_len.to_le_bytes());
    b.extend_from_slice(&l.raw_len.to_le_bytes());
    b.extend_from_slice(&l.codec.to_bytes());
    if let Some(base) = &l.base {
        b.extend_from_slice(base.as_bytes());
    } else if l.height > 0 {
        b.push(l.height);
    }
    b
}

pub(crate) fn decode_chunk_loc(b: &[u8]) -> Result<ChunkLoc> {
    const WHAT: &str = "chunk index entry";
    check_version(WHAT, b)?;
    if ![CHUNK_LOC_LEN, ROOT_LOC_LEN, DELTA_LOC_LEN].contains(&b.len()) {
        return Err(Error::corrupt(
            WHAT,
            format!(
                "{} bytes, expected {CHUNK_LOC_LEN}, {ROOT_LOC_LEN} or {DELTA_LOC_LEN}",
                b.len()
            ),
        ));
    }
    let codec = Codec::from_bytes([b[21], b[22]])?;
    let base = Hash32::from_slice(&b[CHUNK_LOC_LEN..]);
    let delta = matches!(codec, Codec::Delta { .. });
    if delta != base.is_some() {
        return Err(Error::corrupt(
            WHAT,
            format!(
                "{} bytes for a {} record: a base id comes with exactly the delta codec",
                b.len(),
                codec.name()
            ),
        ));
    }
    let height = if b.len() == ROOT_LOC_LEN {
        b[CHUNK_LOC_LEN]
    } else {
        0
    };
    if b.len() == ROOT_LOC_LEN && height == 0 {
        return Err(Error::corrupt(WHAT, "an explicit delta chain height of 0"));
    }
    let loc = ChunkLoc {
        pack: u32_at(b, 1),
        offset: u64_at(b, 5),
        stored_len: u32_at(b, 13),
        raw_len: u32_at(b, 17),
        codec,
        base,
        height,
    };
    check_chunk_loc_bounds(&loc).map_err(|detail| Error::corrupt(WHAT, detail))?;
    Ok(loc)
}

/// The format's limits on an index entry's lengths and offset (see
/// docs/FORMAT.md, `chunks`): checked before anything is allocated or read
/// on its word. A record starts after the pack header and ends within
/// `u64`; its lengths are at most the format's maxima (a store's own chunk
/// maximum is checked by the pack reader, which knows it).
fn check_chunk_loc_bounds(l: &ChunkLoc) -> std::result::Result<(), String> {
    use crate::pack::{MAX_RAW_CHUNK, MAX_STORED_CHUNK, PACK_HEADER_LEN, RECORD_HEADER_LEN};
    if l.raw_len == 0 || l.raw_len > MAX_RAW_CHUNK {
        return Err(format!(
            "raw_len {} is outside 1..={MAX_RAW_CHUNK}",
            l.raw_len
        ));
    }
    if l.stored_len > MAX_STORED_CHUNK {
        return Err(format!(
            "stored_len {} is above the format's maximum {MAX_STORED_CHUNK}",
            l.stored_len
        ));
    }
    if l.offset < PACK_HEADER_LEN as u64 {
        return Err(format!(
            "offset {} is inside the {PACK_HEADER_LEN}-byte pack header",
            l.offset
        ));
    }
    if l.offset
        .checked_add(RECORD_HEADER_LEN as u64 + u64::from(l.stored_len))
        .is_none()
    {
        return Err(format!(
            "offset {} plus the record's {} bytes overflows",
            l.offset,
            RECORD_HEADER_LEN as u64 + u64::from(l.stored_len)
        ));
    }
    Ok(())
}

/// `packs` value: how much of a pack file is referenced by committed index
/// entries. Bytes past `committed_len` are an interrupted append and are
/// truncated at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackRecord {
    pub committed_len: u64,
}

pub(crate) const PACK_RECORD_LEN: usize = 1 + 8;

pub(crate) fn encode_pack(p: &PackRecord) -> [u8; PACK_RECORD_LEN] {
    let mut b = [0u8; PACK_RECORD_LEN];
    b[0] = RECORD_VERSION;
    b[1..9].copy_from_slice(&p.committed_len.to_le_bytes());
    b
}

pub(crate) fn decode_pack(b: &[u8]) -> Result<PackRecord> {
    let b: [u8; PACK_RECORD_LEN] = fixed("pack record", b)?;
    Ok(PackRecord {
        committed_len: u64_at(&b, 1),
    })
}

/// `blobs` value: a blob's size, chunk count and the manifest holding its
/// chunk list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobRecord {
    /// Content length in bytes.
    pub size: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Manifest id whose segments list the chunks (0 for the empty blob).
    pub manifest: u64,
}

pub(crate) const BLOB_RECORD_LEN: usize = 1 + 8 + 8 + 8;

pub(crate) fn encode_blob(r: &BlobRecord) -> [u8; BLOB_RECORD_LEN] {
    let mut b = [0u8; BLOB_RECORD_LEN];
    b[0] = RECORD_VERSION;
    b[1..9].copy_from_slice(&r.size.to_le_bytes());
    b[9..17].copy_from_slice(&r.chunks.to_le_bytes());
    b[17..25].copy_from_slice(&r.manifest.to_le_bytes());
    b
}

pub(crate) fn decode_blob(b: &[u8]) -> Result<BlobRecord> {
    let b: [u8; BLOB_RECORD_LEN] = fixed("blob record", b)?;
    let r = BlobRecord {
        size: u64_at(&b, 1),
        chunks: u64_at(&b, 9),
        manifest: u64_at(&b, 17),
    };
    if r.chunks > r.size || (r.size > 0) != (r.chunks > 0) {
        return Err(Error::corrupt(
            "blob record",
            format!("{} chunks for {} bytes", r.chunks, r.size),
        ));
    }
    Ok(r)
}

/// `refs` value: version, count u64.
pub(crate) const COUNT_LEN: usize = 1 + 8;

pub(crate) fn encode_count(n: u64) -> [u8; COUNT_LEN] {
    let mut b = [0u8; COUNT_LEN];
    b[0] = RECORD_VERSION;
    b[1..].copy_from_slice(&n.to_le_bytes());
    b
}

pub(crate) fn decode_count(b: &[u8]) -> Result<u64> {
    let b: [u8; COUNT_LEN] = fixed("reference count", b)?;
    Ok(u64_at(&b, 1))
}

/// `uploads` value: an upload session whose segments are durable but whose
/// blob is not committed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    /// When the session's first segment was committed (ms since the epoch).
    pub created_ms: u64,
    /// When its last segment was committed.
    pub updated_ms: u64,
    /// Bytes covered by its committed segments (where a resume continues).
    pub durable_bytes: u64,
    /// Chunks in those segments.
    pub durable_chunks: u64,
}

/// One entry of a manifest segment: a chunk and its raw length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub id: ChunkId,
    pub len: u32,
}

/// Most entries a segment holds (about 64 MiB of content at 64 KiB chunks).
pub(crate) const SEGMENT_MAX_ENTRIES: usize = 1024;
const SEGMENT_ENTRY_LEN: usize = 32 + 4;

/// `manifests` value: version, entry count u32, then per entry chunk id
/// (32 bytes) and raw length u32.
pub(crate) fn encode_segment(entries: &[SegmentEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(5 + entries.len() * SEGMENT_ENTRY_LEN);
    b.push(RECORD_VERSION);
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        b.extend_from_slice(e.id.as_bytes());
        b.extend_from_slice(&e.len.to_le_bytes());
    }
    b
}

pub(crate) fn decode_segment(b: &[u8]) -> Result<Vec<SegmentEntry>> {
    const WHAT: &str = "manifest segment";
    check_version(WHAT, b)?;
    if b.len() < 5 {
        return Err(Error::corrupt(WHAT, "truncated count"));
    }
    let n = u32_at(b, 1) as usize;
    if n == 0 || n > SEGMENT_MAX_ENTRIES || b.len() != 5 + n * SEGMENT_ENTRY_LEN {
        return Err(Error::corrupt(
            WHAT,
            format!("count {n} does not match {} bytes", b.len()),
        ));
    }
    b[5..]
        .chunks_exact(SEGMENT_ENTRY_LEN)
        .map(|e| {
            let len = u32_at(e, 32);
            if len == 0 || len > crate::pack::MAX_RAW_CHUNK {
                return Err(Error::corrupt(
                    WHAT,
                    format!("entry with chunk length {len}"),
                ));
            }
            Ok(SegmentEntry {
                id: Hash32::from_slice(&e[..32]).expect("32 bytes"),
                len,
            })
        })
        .collect()
}

/// Encodes a serde record behind a version byte.
pub(crate) fn encode_postcard<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = vec![RECORD_VERSION];
    // Serialising plain structs of strings and integers into a Vec cannot fail.
    b.extend(postcard::to_stdvec(v).expect("postcard encodes plain records"));
    b
}

/// Decodes a record written by [`encode_postcard`], rejecting trailing bytes.
pub(crate) fn decode_postcard<T: DeserializeOwned>(what: &'static str, b: &[u8]) -> Result<T> {
    check_version(what, b)?;
    decode_postcard_tail(what, &b[1..])
}

/// Decodes the record at the start of `b` (after its version byte) and
/// returns it with the bytes after it, for records that may carry more.
pub(crate) fn decode_postcard_prefix<'b, T: DeserializeOwned>(
    what: &'static str,
    b: &'b [u8],
) -> Result<(T, &'b [u8])> {
    check_version(what, b)?;
    decode_postcard_value(what, &b[1..])
}

/// Decodes a postcard value that must fill `b` exactly (no version byte:
/// the rest of a record [`decode_postcard_prefix`] read).
pub(crate) fn decode_postcard_tail<T: DeserializeOwned>(what: &'static str, b: &[u8]) -> Result<T> {
    let (v, rest) = decode_postcard_value(what, b)?;
    if !rest.is_empty() {
        return Err(Error::corrupt(
            what,
            format!("{} trailing bytes", rest.len()),
        ));
    }
    Ok(v)
}

fn decode_postcard_value<'b, T: DeserializeOwned>(
    what: &'static str,
    b: &'b [u8],
) -> Result<(T, &'b [u8])> {
    // Forget a reason left over from an earlier decode on this thread.
    take_refusal();
    postcard::take_from_bytes(b).map_err(|e| match take_refusal() {
        Some(reason) => Error::corrupt(what, reason),
        None => Error::corrupt(what, e),
    })
}

/// One file of a model version.
///
/// Deliberately exhaustive (no `#[non_exhaustive]`): users build it with a
/// struct literal for every commit, and it is stored as it is (postcard, in
/// the version record), so a new field would be an on-disk format change
/// with its own record version, not a silent addition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct FileEntry {
    /// Relative path, `/`-separated, validated by [`crate::meta::names::check_path`].
    pub path: String,
    /// The file's content.
    pub blob: BlobId,
    /// Content length in bytes.
    pub size: u64,
}

/// 32 bytes in records, 64 hex digits in JSON.
impl Serialize for BlobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.as_bytes().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(|b| BlobId(Hash32(b)))
        }
    }
}

/// Store-wide counters, kept in the `meta` column family under `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatsRecord {
    /// Bytes of all files of all committed versions, as the user sees them.
    pub logical_bytes: u64,
    /// Raw bytes of distinct chunks in the index.
    pub unique_bytes: u64,
    /// Distinct chunks in the index.
    pub chunks: u64,
    /// Distinct blobs.
    pub blobs: u64,
    /// Committed model versions.
    pub versions: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_records_round_trip_and_reject_wrong_lengths() {
        let l = ChunkLoc {
            pack: 3,
            offset: 1 << 33,
            stored_len: 9,
            raw_len: 100,
            codec: Codec::Zstd,
            base: None,
            height: 0,
        };
        let b = encode_chunk_loc(&l);
        assert_eq!(b.len(), CHUNK_LOC_LEN);
        assert_eq!(decode_chunk_loc(&b).unwrap(), l);
        assert!(decode_chunk_loc(&b[..22]).is_err());
        let root = ChunkLoc { height: 3, ..l };
        let rb = encode_chunk_loc(&root);
        assert_eq!(rb.len(), ROOT_LOC_LEN);
        assert_eq!(decode_chunk_loc(&rb).unwrap(), root);
        let mut zero_height = rb.clone();
        zero_height[CHUNK_LOC_LEN] = 0;
        assert!(decode_chunk_loc(&zero_height).unwrap_err().is_integrity());
        let d = ChunkLoc {
            codec: Codec::Delta { depth: 2 },
            base: Some(Hash32([5; 32])),
            ..l
        };
        let db = encode_chunk_loc(&d);
        assert_eq!(db.len(), DELTA_LOC_LEN);
        assert_eq!(decode_chunk_loc(&db).unwrap(), d);
        // A base without the delta codec, or the delta codec without a base.
        let mut plain_with_base = b.clone();
        plain_with_base.extend_from_slice(&[5; 32]);
        assert!(decode_chunk_loc(&plain_with_base)
            .unwrap_err()
            .is_integrity());
        assert!(decode_chunk_loc(&db[..CHUNK_LOC_LEN])
            .unwrap_err()
            .is_integrity());
        let mut v2 = b;
        v2[0] = 2;
        assert!(matches!(
            decode_chunk_loc(&v2),
            Err(Error::UnsupportedVersion { .. })
        ));

        let r = BlobRecord {
            size: 10,
            chunks: 1,
            manifest: 4,
        };
        assert_eq!(decode_blob(&encode_blob(&r)).unwrap(), r);
        let bad = BlobRecord {
            size: 0,
            chunks: 1,
            manifest: 4,
        };
        assert!(decode_blob(&encode_blob(&bad)).is_err());

        let p = PackRecord { committed_len: 77 };
        assert_eq!(decode_pack(&encode_pack(&p)).unwrap(), p);
    }

    #[test]
    fn chunk_entries_with_lengths_or_offsets_out_of_range_are_refused() {
        let good = ChunkLoc {
            pack: 3,
            offset: 4096,
            stored_len: 9,
            raw_len: 100,
            codec: Codec::Zstd,
            base: None,
            height: 0,
        };
        assert_eq!(decode_chunk_loc(&encode_chunk_loc(&good)).unwrap(), good);
        let max = ChunkLoc {
            raw_len: crate::pack::MAX_RAW_CHUNK,
            stored_len: crate::pack::MAX_STORED_CHUNK,
            offset: u64::MAX - 52 - crate::pack::MAX_STORED_CHUNK as u64,
            ..good
        };
        assert_eq!(decode_chunk_loc(&encode_chunk_loc(&max)).unwrap(), max);
        for (bad, field) in [
            (
                ChunkLoc {
                    stored_len: u32::MAX,
                    ..good
                },
                "stored_len 4294967295",
            ),
            (
                ChunkLoc {
                    stored_len: crate::pack::MAX_STORED_CHUNK + 1,
                    ..good
                },
                "stored_len",
            ),
            (
                ChunkLoc {
                    raw_len: crate::pack::MAX_RAW_CHUNK + 1,
                    ..good
                },
                "raw_len",
            ),
            (ChunkLoc { raw_len: 0, ..good }, "raw_len 0"),
            (ChunkLoc { offset: 31, ..good }, "offset 31"),
            (
                ChunkLoc {
                    offset: u64::MAX - 60,
                    ..good
                },
                "overflows",
            ),
        ] {
            let e = decode_chunk_loc(&encode_chunk_loc(&bad)).unwrap_err();
            assert!(e.is_integrity(), "{bad:?}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("chunk index entry") && msg.contains(field),
                "{bad:?}: {msg}"
            );
        }
    }

    /// Postcard bytes of a `Value` nested `depth` levels: lists of one
    /// element around `Int(0)`.
    fn nested_value(depth: usize) -> Vec<u8> {
        let mut b = [4u8, 1].repeat(depth - 1);
        b.extend_from_slice(&[0, 0]);
        b
    }

    #[test]
    fn deeply_nested_values_are_refused_not_a_stack_overflow() {
        use crate::meta::registry_records::ArtifactRecord;
        use crate::query::{Value, MAX_VALUE_DEPTH};
        use std::collections::BTreeMap;
        // Model metadata: one key, a value a million levels deep.
        for depth in [MAX_VALUE_DEPTH + 1, 1_000_000] {
            let mut b = vec![RECORD_VERSION, 1, 1, b'k'];
            b.extend(nested_value(depth));
            let e = decode_postcard::<BTreeMap<String, Value>>("metadata", &b).unwrap_err();
            assert!(e.is_integrity(), "{e}");
            assert!(e.to_string().contains("nested deeper than 64"), "{e}");
            // An artifact's inline body (variant 1), no metadata, time 0.
            let mut b = vec![RECORD_VERSION, 1];
            b.extend(nested_value(depth));
            b.extend_from_slice(&[0, 0]);
            let e = decode_postcard::<ArtifactRecord>("artifact record", &b).unwrap_err();
            assert!(e.to_string().contains("nested deeper than 64"), "{e}");
        }
        // At the limit the value decodes, and encodes back to the same bytes.
        let mut b = vec![RECORD_VERSION, 1, 1, b'k'];
        b.extend(nested_value(MAX_VALUE_DEPTH));
        let m = decode_postcard::<BTreeMap<String, Value>>("metadata", &b).unwrap();
        assert_eq!(m["k"].depth(), MAX_VALUE_DEPTH);
        assert_eq!(encode_postcard(&m), b);
        // Other decode errors keep postcard's own message.
        let e = decode_postcard::<BTreeMap<String, Value>>("metadata", &[RECORD_VERSION, 1])
            .unwrap_err();
        assert!(!e.to_string().contains("nested"), "{e}");
    }

    #[test]
    fn segments_round_trip_and_reject_lying_counts() {
        let e: Vec<_> = (0..5u32)
            .map(|i| SegmentEntry {
                id: Hash32::of(&i.to_le_bytes()),
                len: 100 + i,
            })
            .collect();
        let b = encode_segment(&e);
        assert_eq!(decode_segment(&b).unwrap(), e);
        let mut lie = b.clone();
        lie[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_segment(&lie).is_err());
        assert!(decode_segment(&b[..b.len() - 1]).is_err());
        assert!(decode_segment(&[1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn postcard_records_reject_trailing_bytes() {
        let v = StatsRecord {
            logical_bytes: 5,
            unique_bytes: 4,
            chunks: 3,
            blobs: 2,
            versions: 1,
        };
        let mut b = encode_postcard(&v);
        assert_eq!(decode_postcard::<StatsRecord>("stats", &b).unwrap(), v);
        b.push(0);
        assert!(decode_postcard::<StatsRecord>("stats", &b).is_err());
        assert!(
            decode_postcard::<Vec<FileEntry>>("files", &[1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err()
        );
    }
}
