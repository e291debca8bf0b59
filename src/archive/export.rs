//! Writing a bundle: the selected experiments, each followed by its console
//! lines, scalars and artifacts, then the selected models (those the
//! experiments created and, on request, used), each followed by its versions,
//! each version preceded by the blobs it names that the bundle has not
//! carried yet. A blob's content is its chunks in order: the chunks the
//! target holds already (the `have` list) and those this bundle carried
//! before are named only; the others are carried whole, as their raw bytes
//! compressed with zstd (delta chains are resolved, not carried: a bundle
//! must be readable without the store's delta bases, and the target
//! stores each blob with its own chunking and codecs).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;

use super::bundle::{BundleWriter, Kind};
use super::{ExportReport, ExportSpec};
use crate::blob::Core;
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::object_records::encode_object;
use crate::meta::records::encode_postcard;
use crate::meta::registry_records::{ArtifactBody, EntityId, ModelRecord};
use crate::meta::tables::{
    artifacts, blobs, buckets, console, experiments, index, manifests, models, objects, scalars,
    versions,
};
use crate::registry::experiment::load_experiment;

/// zstd level for chunk bytes in a bundle: fast, and most of what level
/// 19 would save on float weights.
const CHUNK_LEVEL: i32 = 3;

struct Exporter<'a, W: Write> {
    core: &'a Core,
    out: BundleWriter<W>,
    have: &'a HashSet<ChunkId>,
    sent_blobs: HashSet<BlobId>,
    sent_chunks: HashSet<ChunkId>,
    report: ExportReport,
    progress: &'a dyn Fn(u64),
    raw: Vec<u8>,
    scratch: Vec<u8>,
    /// Raw bytes read so far, for `progress`.
    done: u64,
}

impl Core {
    /// See [`crate::Store::export`].
    pub(crate) fn export<W: Write>(
        &self,
        spec: &ExportSpec,
        out: W,
        progress: &dyn Fn(u64),
    ) -> Result<(W, ExportReport)> {
        let meta = self.chunks().meta();
        // Resolve the selection first: an unknown name or id fails before a
        // byte is written. Per model: all versions (`None`) or some.
        let mut models: BTreeMap<EntityId, Option<BTreeSet<u32>>> = BTreeMap::new();
        let mut exps: BTreeSet<EntityId> = BTreeSet::new();
        if spec.all {
            for id in models::ids(meta) {
                models.insert(id?, None);
            }
            for id in experiments::ids_from(meta, &EntityId([0; 16])) {
                exps.insert(id?);
            }
        }
        for (name, range) in &spec.models {
            crate::meta::names::check_name(name)?;
            let id = index::models_named(meta, name)?
                .into_iter()
                .max()
                .ok_or_else(|| Error::not_found("model", name))?;
            let Some((lo, hi)) = range else {
                models.insert(id, None);
                continue;
            };
            let vs: BTreeSet<u32> = versions::numbers(meta, &id)
                .filter(|v| v.as_ref().map_or(true, |v| v >= lo && v <= hi))
                .collect::<Result<_>>()?;
            if vs.is_empty() {
                let which = if lo == hi {
                    format!("{name}@{lo}")
                } else {
                    format!("{name}@{lo}..{hi}")
                };
                return Err(Error::not_found("version", which));
            }
            add_versions(&mut models, id, vs);
        }
        for (id, with_used) in &spec.experiments {
            let rec = load_experiment(meta, id)?;
            exps.insert(*id);
            for m in index::models_created_by(meta, id)? {
                models.insert(m, None);
            }
            if *with_used {
                for (m, v) in &rec.inputs {
                    add_versions(&mut models, *m, BTreeSet::from([*v]));
                }
            }
        }
        let mut ex = Exporter {
            core: self,
            out: BundleWriter::new(out)?,
            have: &spec.have,
            sent_blobs: HashSet::new(),
            sent_chunks: HashSet::new(),
            report: ExportReport::default(),
            progress,
            raw: Vec::new(),
            scratch: Vec::new(),
            done: 0,
        };
        for id in &exps {
            ex.experiment(id)?;
        }
        if spec.all {
            ex.objects()?;
        }
        for (id, vs) in &models {
            let rec = models::get(meta, id)?.ok_or_else(|| Error::not_found("model", id))?;
            let vs: Vec<u32> = match vs {
                Some(vs) => vs.iter().copied().collect(),
                None => versions::numbers(meta, id).collect::<Result<_>>()?,
            };
            ex.model(id, &rec, &vs)?;
        }
        let (out, len) = ex.out.finish()?;
        ex.report.bundle_bytes = len;
        Ok((out, ex.report))
    }
}

/// Adds versions `vs` of model `id` to the selection (all of them stay all).
fn add_versions(
    models: &mut BTreeMap<EntityId, Option<BTreeSet<u32>>>,
    id: EntityId,
    vs: BTreeSet<u32>,
) {
    match models.entry(id) {
        Entry::Vacant(e) => {
            e.insert(Some(vs));
        }
        Entry::Occupied(mut e) => {
            if let Some(have) = e.get_mut() {
                have.extend(vs);
            }
        }
    }
}

impl<W: Write> Exporter<'_, W> {
    /// An experiment, then its console lines, scalars and artifacts (each
    /// blob artifact after its blob).
    fn experiment(&mut self, id: &EntityId) -> Result<()> {
        let meta = self.core.chunks().meta();
        let rec = load_experiment(meta, id)?;
        self.out
            .frame(Kind::Experiment, &[&id.0, &encode_postcard(&rec)])?;
        for line in console::from(meta, id, 0) {
            self.out
                .frame(Kind::Console, &[&id.0, &encode_postcard(&line?)])?;
        }
        for s in scalars::of(meta, id) {
            self.out
                .frame(Kind::Scalar, &[&id.0, &encode_postcard(&s?)])?;
        }
        let arts = artifacts::of(meta, id).collect::<Result<Vec<_>>>()?;
        for (name, revision, art) in arts {
            if let ArtifactBody::Blob { blob, .. } = &art.body {
                self.blob(blob, None)?;
            }
            self.out.frame(
                Kind::Artifact,
                &[&id.0, &encode_postcard(&(name, revision, art))],
            )?;
        }
        self.report.experiments += 1;
        Ok(())
    }

    fn model(&mut self, id: &EntityId, rec: &ModelRecord, vs: &[u32]) -> Result<()> {
        self.out
            .frame(Kind::Model, &[&id.0, &encode_postcard(rec)])?;
        self.report.models += 1;
        let meta = self.core.chunks().meta();
        for &v in vs {
            let vrec = versions::get(meta, id, v)?
                .ok_or_else(|| Error::not_found("version", format!("{}@{v}", rec.name)))?;
            for f in &vrec.files {
                self.blob(&f.blob, Some((id, &f.path)))?;
            }
            self.out.frame(
                Kind::Version,
                &[&id.0, &v.to_be_bytes(), &encode_postcard(&vrec)],
            )?;
            self.report.versions += 1;
        }
        Ok(())
    }

    /// Every bucket, each followed by its objects (each after its blob).
    fn objects(&mut self) -> Result<()> {
        let meta = self.core.chunks().meta();
        let buckets = buckets::all(meta).collect::<Result<Vec<_>>>()?;
        for (name, rec) in buckets {
            self.out
                .frame(Kind::Bucket, &[&encode_postcard(&(&name, &rec))])?;
            for kv in objects::scan(meta, &name, b"") {
                let (key, obj) = kv?;
                self.blob(&BlobId(Hash32(obj.blob)), None)?;
                self.out.frame(
                    Kind::Object,
                    &[&encode_postcard(&(&name, &key)), &encode_object(&obj)],
                )?;
                self.report.objects += 1;
            }
        }
        Ok(())
    }

    /// A blob's content, once per bundle. `file`: the model and path of a
    /// version file it is, a hint for the importer's choice of delta base.
    fn blob(&mut self, id: &BlobId, file: Option<(&EntityId, &str)>) -> Result<()> {
        if !self.sent_blobs.insert(*id) {
            return Ok(());
        }
        let chunks = self.core.chunks();
        let meta = chunks.meta();
        let rec = blobs::get(meta, id)?.ok_or_else(|| Error::not_found("blob", id))?;
        let (model, path): (&[u8], &[u8]) = match file {
            Some((m, p)) => (&m.0, p.as_bytes()),
            None => (&[], &[]),
        };
        self.out.frame(
            Kind::BlobBegin,
            &[&id.0 .0, &rec.size.to_le_bytes(), model, path],
        )?;
        let mut offset = 0u64;
        for seg in manifests::segments(meta, rec.manifest, None) {
            for e in seg?.entries? {
                if self.have.contains(&e.id) || self.sent_chunks.contains(&e.id) {
                    self.out
                        .frame(Kind::ChunkRef, &[&e.id.0, &e.len.to_le_bytes()])?;
                    self.report.chunks_named += 1;
                } else {
                    let object = || format!("blob {id}");
                    chunks.read_chunk(&e.id, &object, offset, &mut self.scratch, &mut self.raw)?;
                    let z = zstd::bulk::compress(&self.raw, CHUNK_LEVEL)
                        .map_err(|e| Error::from_io("compressing a chunk for the bundle", e))?;
                    self.out
                        .frame(Kind::Chunk, &[&e.id.0, &e.len.to_le_bytes(), &z])?;
                    self.sent_chunks.insert(e.id);
                    self.report.chunks_carried += 1;
                    self.report.raw_bytes_carried += u64::from(e.len);
                }
                offset += u64::from(e.len);
                self.done += u64::from(e.len);
                (self.progress)(self.done);
            }
        }
        if offset != rec.size {
            return Err(Error::corrupt(
                format!("blob {id}"),
                format!("its manifest covers {offset} bytes of {}", rec.size),
            ));
        }
        self.out.frame(Kind::BlobEnd, &[])?;
        self.report.blobs += 1;
        Ok(())
    }
}
