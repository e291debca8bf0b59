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
    Ok(())
}
