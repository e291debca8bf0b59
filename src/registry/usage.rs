//! Storage attribution: how much of the store each model, version and
//! experiment takes, and the reverse lookups behind it (who references a
//! blob, which blobs contain a chunk).
//!
//! The bytes an owner alone keeps ("unique") are what deleting it would
//! free: the same computation as a deletion's dry run
//! ([`crate::gc::estimate::freed_by`] of the references the owner holds).
//! Its stored bytes are those of every chunk its blobs need, delta bases
//! included, each counted once ([`crate::gc::estimate::stored_by`]); the
//! difference is shared with other owners (or with upload holds). Figures
//! are read from the live records, like a dry run: beside writers they may
//! mix states of one moment and the next.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::experiment::load_experiment;
use crate::blob::Core;
use crate::error::Result;
use crate::gc::estimate::{freed_by, stored_by};
use crate::id::{BlobId, ChunkId};
use crate::meta::registry_records::{ArtifactBody, EntityId};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{
    artifacts, blobs, chunks, experiments, index, manifests, models, objects, versions,
};
use crate::meta::Meta;

/// What one owner (a model, a version, an experiment) takes in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SpaceUse {
    /// `model`, `version` or `experiment`.
    pub kind: &'static str,
    /// The model's or experiment's id.
    pub id: EntityId,
    /// The model's name, or the experiment's `PROJECT/NAME`.
    pub name: String,
    /// The version number (versions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Distinct blobs it references (files, artifacts).
    pub blobs: u64,
    /// Bytes of its files (or artifacts), as written: duplicates counted
    /// each time.
    pub logical_bytes: u64,
    /// Pack bytes of the chunks its blobs need (delta bases included),
    /// each counted once.
    pub stored_bytes: u64,
    /// Of those, the bytes nothing else keeps: what deleting it would free
    /// (at the next `gc`).
    pub unique_bytes: u64,
    /// `stored_bytes - unique_bytes`: kept by others too.
    pub shared_bytes: u64,
}

/// [`SpaceUse`] of every model, version and experiment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SpaceReport {
    /// Per model (all its versions together), in id order.
    pub models: Vec<SpaceUse>,
    /// Per version, by model id then version.
    pub versions: Vec<SpaceUse>,
    /// Per experiment (its blob artifacts; models it created are counted
    /// under the models), in id order.
    pub experiments: Vec<SpaceUse>,
}

/// A model version file that names a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VersionRef {
    /// The model's id.
    pub model: EntityId,
    /// The model's name.
    pub name: String,
    /// The version.
    pub version: u32,
    /// The file's path in the version.
    pub path: String,
}

/// An experiment artifact revision that names a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArtifactRef {
    /// The experiment's id.
    pub experiment: EntityId,
    /// The artifact's name.
    pub name: String,
    /// Its revision.
    pub revision: u32,
}

/// An S3 object that names a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectRef {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
}

/// Everything that references one blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BlobUsers {
    /// The blob.
    pub blob: BlobId,
    /// Its length, if it is stored.
    pub size: Option<u64>,
    /// Its reference count (one per version file, artifact, object, part).
    pub references: u64,
    /// Holds on it (uploads in flight that produced it).
    pub holds: u64,
    /// Version files naming it.
    pub versions: Vec<VersionRef>,
    /// Artifact revisions naming it.
    pub artifacts: Vec<ArtifactRef>,
    /// S3 objects naming it.
    pub objects: Vec<ObjectRef>,
}

/// Everything that contains one chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ChunkUsers {
    /// The chunk.
    #[serde(serialize_with = "hex::one")]
    pub chunk: ChunkId,
    /// Its stored length in its pack (record header excluded), if indexed.
    pub stored_len: Option<u32>,
    /// The chunk it is a delta against, if it is one.
    #[serde(serialize_with = "hex::opt")]
    pub base: Option<ChunkId>,
    /// Chunks stored as deltas against it, directly or down a chain.
    #[serde(serialize_with = "hex::many")]
    pub deltas: Vec<ChunkId>,
    /// Blobs whose manifests list it.
    pub blobs: Vec<BlobId>,
    /// Blobs that need it only as the base of a delta chunk they list.
    pub blobs_via_deltas: Vec<BlobId>,
}

/// Chunk ids as 64 hex digits in JSON (as blob ids are).
mod hex {
    use crate::id::ChunkId;
    use serde::Serializer;

    pub(super) fn one<S: Serializer>(id: &ChunkId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub(super) fn opt<S: Serializer>(id: &Option<ChunkId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.collect_str(id),
            None => s.serialize_none(),
        }
    }

    pub(super) fn many<S: Serializer>(ids: &[ChunkId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|id| id.to_string()))
    }
}

/// The figures of an owner holding the references `drops` (blob →
/// references), with `logical` bytes.
fn space(
    meta: &Meta,
    kind: &'static str,
    id: EntityId,
    name: String,
    version: Option<u32>,
    drops: &BTreeMap<BlobId, u64>,
    logical: u64,
) -> Result<SpaceUse> {
    let (_, unique) = freed_by(meta, drops)?;
    let stored = stored_by(meta, drops.keys())?;
    Ok(SpaceUse {
        kind,
        id,
        name,
        version,
        blobs: drops.len() as u64,
        logical_bytes: logical,
        stored_bytes: stored,
        unique_bytes: unique.min(stored),
        shared_bytes: stored.saturating_sub(unique),
    })
}

impl Core {
    /// See [`crate::Store::space_usage`].
    pub(crate) fn space_usage(self: &Arc<Self>) -> Result<SpaceReport> {
        let meta = self.chunks().meta();
        let mut r = SpaceReport::default();
        for m in models::all(meta) {
            let (id, rec) = m?;
            let mut all: BTreeMap<BlobId, u64> = BTreeMap::new();
            let mut all_logical = 0;
            for v in versions::of(meta, &id) {
                let (v, vr) = v?;
                let mut drops: BTreeMap<BlobId, u64> = BTreeMap::new();
                let mut logical = 0;
                for f in &vr.files {
                    *drops.entry(f.blob).or_insert(0) += 1;
                    *all.entry(f.blob).or_insert(0) += 1;
                    logical += f.size;
                }
                all_logical += logical;
                r.versions.push(space(
                    meta,
                    "version",
                    id,
                    rec.name.clone(),
                    Some(v),
                    &drops,
                    logical,
                )?);
            }
            r.models
                .push(space(meta, "model", id, rec.name, None, &all, all_logical)?);
        }
        for e in experiments::ids_from(meta, &EntityId([0; 16])) {
            let id = e?;
            let rec = load_experiment(meta, &id)?;
            let mut drops: BTreeMap<BlobId, u64> = BTreeMap::new();
            let mut logical = 0;
            for a in artifacts::of(meta, &id) {
                let (_, _, a) = a?;
                if let ArtifactBody::Blob { blob, size } = a.body {
                    *drops.entry(blob).or_insert(0) += 1;
                    logical += size;
                }
            }
            let name = format!("{}/{}", rec.project, rec.name);
            r.experiments
                .push(space(meta, "experiment", id, name, None, &drops, logical)?);
        }
        Ok(r)
    }

    /// See [`crate::Store::blob_users`].
    pub(crate) fn blob_users(self: &Arc<Self>, blob: &BlobId) -> Result<BlobUsers> {
        let meta = self.chunks().meta();
        let mut out = BlobUsers {
            blob: *blob,
            size: blobs::get(meta, blob)?.map(|b| b.size),
            references: refs::get(meta, Count::Blob(*blob))?,
            holds: refs::get(meta, Count::Hold(*blob))?,
            versions: Vec::new(),
            artifacts: Vec::new(),
            objects: Vec::new(),
        };
        // Versions, from the blob → version index (as verify names them).
        let mut names: HashMap<EntityId, String> = HashMap::new();
        for (model, v) in index::versions_with_blob(meta, blob)? {
            let Some(vr) = versions::get(meta, &model, v)? else {
                continue;
            };
            let name = match names.get(&model) {
                Some(n) => n.clone(),
                None => {
                    let n = models::get(meta, &model)?.map_or_else(String::new, |m| m.name);
                    names.insert(model, n.clone());
                    n
                }
            };
            for f in vr.files.iter().filter(|f| f.blob == *blob) {
                out.versions.push(VersionRef {
                    model,
                    name: name.clone(),
                    version: v,
                    path: f.path.clone(),
                });
            }
        }
        // Artifacts and objects have no index by blob: one scan each.
        for e in experiments::ids_from(meta, &EntityId([0; 16])) {
            let id = e?;
            for a in artifacts::of(meta, &id) {
                let (name, revision, a) = a?;
                if matches!(a.body, ArtifactBody::Blob { blob: b, .. } if b == *blob) {
                    out.artifacts.push(ArtifactRef {
                        experiment: id,
                        name,
                        revision,
                    });
                }
            }
        }
        for (bucket, key) in objects::naming_blob(meta, blob)? {
            out.objects.push(ObjectRef { bucket, key });
        }
        Ok(out)
    }

    /// See [`crate::Store::chunk_users`].
    pub(crate) fn chunk_users(self: &Arc<Self>, chunk: &ChunkId) -> Result<ChunkUsers> {
        let meta = self.chunks().meta();
        let loc = chunks::get(meta, chunk)?;
        // The delta chunks that need it: a reverse walk of the base links.
        let mut based_on: HashMap<ChunkId, Vec<ChunkId>> = HashMap::new();
        for e in chunks::all(meta) {
            let (id, l) = e?;
            if let Some(b) = l.base {
                based_on.entry(b).or_default().push(id);
            }
        }
        let mut deltas = BTreeSet::new();
        let mut work = vec![*chunk];
        while let Some(c) = work.pop() {
            for d in based_on.get(&c).into_iter().flatten() {
                if deltas.insert(*d) {
                    work.push(*d);
                }
            }
        }
        let (mut direct, mut via) = (Vec::new(), Vec::new());
        for e in blobs::entries(meta) {
            let (id, rec) = e?;
            let (Ok(id), Ok(rec)) = (id, rec) else {
                continue; // verify reports records that do not decode
            };
            if rec.manifest == 0 {
                continue;
            }
            let (mut lists, mut needs) = (false, false);
            for seg in manifests::segments(meta, rec.manifest, None) {
                for e in seg?.entries? {
                    lists |= e.id == *chunk;
                    needs |= deltas.contains(&e.id);
                }
            }
            if lists {
                direct.push(id);
            } else if needs {
                via.push(id);
            }
        }
        Ok(ChunkUsers {
            chunk: *chunk,
            stored_len: loc.as_ref().map(|l| l.stored_len),
            base: loc.and_then(|l| l.base),
            deltas: deltas.into_iter().collect(),
            blobs: direct,
            blobs_via_deltas: via,
        })
    }
}
