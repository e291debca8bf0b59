//! Every reference the primary records make, in one walk: manifest segment
//! entries and delta records name chunks; version files and blob artifacts
//! name blobs. What the `refs` counts must add up to: `gc::recount` builds
//! counts from it, `verify` checks them against it.
//!
//! The walk reads the registry's version and artifact records (decoding
//! [`VersionRecord`] and [`ArtifactRecord`]), the only engine code that
//! looks at them: they are what keep blobs.

use crate::error::{Error, Result};
use crate::meta::records;
use crate::meta::registry_records::{ArtifactBody, ArtifactRecord, VersionRecord};
use crate::meta::{Cf, Scan};

use super::refs::Count;
use super::{chunks, manifests, RawKey};

/// The kinds of record that make references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A manifest segment.
    Segment,
    /// A chunk index entry (a delta names its base).
    ChunkEntry,
    /// A model version (its files name blobs).
    Version,
    /// An experiment artifact (a blob artifact names its blob).
    Artifact,
    /// An S3 object (it names its blob).
    Object,
    /// A part of an unfinished multipart upload (it names its blob).
    Part,
}

/// What the walk finds, in the order it finds it.
pub(crate) enum Found {
    /// A manifest segment, by its manifest id (`None`: a malformed key),
    /// before the references it makes.
    Segment(Option<u64>),
    /// Every manifest segment was walked (the chunk index, versions and
    /// artifacts follow).
    SegmentsDone,
    /// One reference (a chunk or blob count), once per reference made.
    Reference(Count),
    /// A record whose value does not decode: it adds nothing.
    Undecodable {
        source: Source,
        key: RawKey,
        error: Error,
    },
}

/// Walks the primary records of `r` (manifest segments, the chunk index,
/// versions, artifacts, in that order), calling `f` with what it finds; an
/// error of `f` ends the walk.
pub(crate) fn walk(r: &(impl Scan + ?Sized), f: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    for seg in manifests::all(r) {
        let seg = seg?;
        f(Found::Segment(seg.at.map(|(m, _)| m)))?;
        match seg.entries {
            Ok(entries) => {
                for e in entries {
                    f(Found::Reference(Count::Chunk(e.id)))?;
                }
            }
            Err(error) => f(Found::Undecodable {
                source: Source::Segment,
                key: seg.key,
                error,
            })?,
        }
    }
    f(Found::SegmentsDone)?;
    // A delta record references its base chunk.
    for e in chunks::entries(r) {
        match e? {
            (_, Ok(loc)) => {
                if let Some(base) = loc.base {
                    f(Found::Reference(Count::Chunk(base)))?;
                }
            }
            (key, Err(error)) => f(Found::Undecodable {
                source: Source::ChunkEntry,
                key: key.map_or_else(|raw| raw, |id| RawKey::new(Cf::Chunks, id.as_bytes())),
                error,
            })?,
        }
    }
    for kv in r.scan_prefix(Cf::Versions, &[], &[]) {
        let (k, v) = kv?;
        match records::decode_postcard::<VersionRecord>("version record", &v) {
            Ok(vr) => {
                for file in &vr.files {
                    f(Found::Reference(Count::Blob(file.blob)))?;
                }
            }
            Err(error) => f(Found::Undecodable {
                source: Source::Version,
                key: RawKey::new(Cf::Versions, &k),
                error,
            })?,
        }
    }
    for kv in r.scan_prefix(Cf::Artifacts, &[], &[]) {
        let (k, v) = kv?;
        match records::decode_postcard::<ArtifactRecord>("artifact", &v) {
            Ok(a) => {
                if let ArtifactBody::Blob { blob, .. } = a.body {
                    f(Found::Reference(Count::Blob(blob)))?;
                }
            }
            Err(error) => f(Found::Undecodable {
                source: Source::Artifact,
                key: RawKey::new(Cf::Artifacts, &k),
                error,
            })?,
        }
    }
    super::objects::walk_refs(r, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::id::Hash32;
    use crate::meta::records::SegmentEntry;
    use crate::meta::{Batch, Meta};
    use crate::pack::{ChunkLoc, PACK_HEADER_LEN};

    /// What a walk found: references, the sources and keys (hex) of the
    /// records that did not decode, and the manifest ids of the segments.
    type Walked = (Vec<Count>, Vec<(Source, String)>, Vec<Option<u64>>);

    fn found(meta: &Meta) -> Walked {
        let (mut refs, mut bad, mut segs) = (Vec::new(), Vec::new(), Vec::new());
        walk(meta, &mut |f| {
            match f {
                Found::Segment(m) => segs.push(m),
                Found::SegmentsDone => {}
                Found::Reference(c) => refs.push(c),
                Found::Undecodable { source, key, .. } => bad.push((source, key.to_string())),
            }
            Ok(())
        })
        .unwrap();
        (refs, bad, segs)
    }

    /// Segment entries and delta bases name chunks; records that do not
    /// decode are handed over with their keys (in the walk's order) and add
    /// nothing, and deleting them through their keys removes them.
    #[test]
    fn the_walk_yields_references_and_surfaces_what_does_not_decode() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path(), true).unwrap();
        let (a, b) = (Hash32([1; 32]), Hash32([2; 32]));
        let mut batch = Batch::default();
        let seg = [
            SegmentEntry { id: a, len: 10 },
            SegmentEntry { id: b, len: 5 },
        ];
        manifests::put(&mut batch, 7, 0, &seg);
        let delta = ChunkLoc {
            pack: 1,
            offset: PACK_HEADER_LEN as u64,
            stored_len: 3,
            raw_len: 5,
            codec: Codec::Delta { depth: 1 },
            base: Some(a),
            height: 0,
        };
        chunks::put(&mut batch, &b, &delta);
        // Damaged records, one per source.
        batch.put(Cf::Manifests, vec![0; 16], b"junk".to_vec());
        batch.put(Cf::Chunks, vec![3; 32], b"junk".to_vec());
        batch.put(Cf::Versions, vec![4; 20], b"junk".to_vec());
        batch.put(Cf::Artifacts, vec![5; 20], b"junk".to_vec());
        meta.commit(batch, true).unwrap();

        let (refs, bad, segs) = found(&meta);
        assert_eq!(
            refs,
            [Count::Chunk(a), Count::Chunk(b), Count::Chunk(a)],
            "two segment entries, then the delta's base"
        );
        assert_eq!(segs, [Some(0), Some(7)]);
        let want = [
            (Source::Segment, hex::encode([0u8; 16])),
            (Source::ChunkEntry, hex::encode([3u8; 32])),
            (Source::Version, hex::encode([4u8; 20])),
            (Source::Artifact, hex::encode([5u8; 20])),
        ];
        assert_eq!(bad, want);

        // The keys handed over delete the records they name.
        let mut batch = Batch::default();
        walk(&meta, &mut |f| {
            if let Found::Undecodable { key, .. } = f {
                key.delete(&mut batch);
            }
            Ok(())
        })
        .unwrap();
        meta.commit(batch, true).unwrap();
        let (refs_after, bad_after, segs_after) = found(&meta);
        assert_eq!(refs_after, refs);
        assert!(bad_after.is_empty(), "{bad_after:?}");
        assert_eq!(segs_after, [Some(7)]);
    }
}
