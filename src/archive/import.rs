//! Reading a bundle into a store, all or nothing.
//!
//! Every frame is checked as it is read: records decode and pass the rules
//! a write through the API would meet, each chunk's bytes hash to its id,
//! each blob's bytes to the blob's id and size. Blobs are written as staged
//! blobs (durable, invisible: nothing references them), the records are
//! kept aside, and only once the trailer has been read and its digest
//! matches are the records and the staged blobs committed, in one commit.
//! A bundle damaged or cut off anywhere therefore leaves the store as it
//! was: the staged blobs are given up (and a crash meanwhile leaves only
//! unreferenced data, which the next collection frees).
//!
//! Chunks a bundle carries are spooled, still compressed, to an unnamed
//! temporary file in the store's directory, so that a later blob of the
//! same bundle that only names one can read it back: memory holds the
//! spool's index (about 50 bytes a chunk), never the bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use super::bundle::{damaged, BundleReader, Frame, Kind};
use super::{ImportOptions, ImportReport};
use crate::blob::{BlobWriter, Core, StagedBlob};
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::names::check_path;
use crate::meta::object_records::{decode_object, BucketRecord, ObjectRecord};
use crate::meta::records::{decode_postcard, decode_postcard_prefix};
use crate::meta::registry_index as index_keys;
use crate::meta::registry_records::{
    ArtifactBody, ArtifactRecord, ConsoleRecord, EntityId, ExperimentRecord, ModelRecord,
    VersionRecord,
};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{
    artifacts, blobs, buckets, console, experiments, index, models, objects, scalars, versions,
};
use crate::meta::{Batch, Meta};
use crate::objects::names::{
    check_bucket, check_checksums, check_field, check_key as check_object_key,
    check_metadata as check_object_metadata,
};
use crate::pack::MAX_RAW_CHUNK;
use crate::registry::experiment::{check_artifact_record, check_experiment_record, check_scalar};
use crate::registry::model::check_model_record;
use crate::registry::version::check_version_paths;

// Planning the conflicts and committing: the second half of an import.
mod commit;

/// What an import would refuse (conflicts), the versions each model would
/// gain, and the experiments new to the store.
#[derive(Clone, PartialEq)]
struct Plan {
    conflicts: Vec<String>,
    versions: BTreeMap<EntityId, Vec<u32>>,
    experiments: BTreeSet<EntityId>,
    buckets: BTreeSet<String>,
    objects: BTreeSet<(String, String)>,
}

/// A blob being received.
struct Incoming {
    id: BlobId,
    size: u64,
    got: u64,
    hasher: blake3::Hasher,
    /// `None`: the store or this bundle has the blob already; its bytes
    /// are checked, not stored again.
    writer: Option<BlobWriter>,
    offset: u64,
}

/// Where a carried chunk sits in the spool.
struct Spooled {
    at: u64,
    zlen: u32,
    raw: u32,
}

struct Importer<'a> {
    core: &'a Arc<Core>,
    spool: File,
    spool_len: u64,
    spooled: HashMap<ChunkId, Spooled>,
    staged: HashMap<BlobId, StagedBlob>,
    /// Blobs the bundle carries that the store has already.
    present: HashSet<BlobId>,
    models: BTreeMap<EntityId, (ModelRecord, u64)>,
    versions: BTreeMap<(EntityId, u32), VersionRecord>,
    experiments: BTreeMap<EntityId, ExperimentRecord>,
    console: BTreeMap<(EntityId, u64), ConsoleRecord>,
    scalars: BTreeMap<(EntityId, String, String, u64), f64>,
    artifacts: BTreeMap<(EntityId, String, u32), ArtifactRecord>,
    buckets: BTreeMap<String, BucketRecord>,
    objects: BTreeMap<(String, String), ObjectRecord>,
    current: Option<Incoming>,
    report: ImportReport,
    scratch: Vec<u8>,
}

impl Core {
    /// See [`crate::Store::import`].
    pub(crate) fn import(
        self: &Arc<Self>,
        input: impl Read,
        opts: &ImportOptions,
        progress: &dyn Fn(u64),
    ) -> Result<ImportReport> {
        self.chunks().writable("import")?;
        let spool = tempfile::tempfile_in(self.path()).map_err(|e| Error::io(self.path(), e))?;
        let mut im = Importer {
            core: self,
            spool,
            spool_len: 0,
            spooled: HashMap::new(),
            staged: HashMap::new(),
            present: HashSet::new(),
            models: BTreeMap::new(),
            versions: BTreeMap::new(),
            experiments: BTreeMap::new(),
            console: BTreeMap::new(),
            scalars: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            buckets: BTreeMap::new(),
            objects: BTreeMap::new(),
            current: None,
            report: ImportReport::default(),
            scratch: Vec::new(),
        };
        let mut reader = BundleReader::new(input)?;
        while let Some(frame) = reader.next()? {
            im.frame(frame)?;
            progress(reader.offset());
        }
        im.report.bundle_bytes = reader.offset();
        if let Some(b) = &im.current {
            return Err(damaged(
                reader.offset(),
                format!("the bundle ends inside blob {}", b.id),
            ));
        }
        im.commit(opts)
    }
}

fn field<const N: usize>(f: &Frame, at: usize) -> Result<[u8; N]> {
    f.payload
        .get(at..at + N)
        .map(|b| b.try_into().expect("N bytes"))
        .ok_or_else(|| damaged(f.offset, format!("a {:?} frame too short", f.kind)))
}

impl Importer<'_> {
    fn frame(&mut self, f: Frame) -> Result<()> {
        let in_blob = matches!(f.kind, Kind::Chunk | Kind::ChunkRef | Kind::BlobEnd);
        if in_blob != self.current.is_some() {
            return Err(damaged(
                f.offset,
                format!(
                    "a {:?} frame {} a blob",
                    f.kind,
                    if in_blob { "outside" } else { "inside" }
                ),
            ));
        }
        match f.kind {
            Kind::Model => self.model(&f),
            Kind::Version => self.version(&f),
            Kind::BlobBegin => self.blob_begin(&f),
            Kind::Chunk => self.chunk(&f),
            Kind::ChunkRef => self.chunk_ref(&f),
            Kind::BlobEnd => self.blob_end(&f),
            Kind::Experiment => self.experiment(&f),
            Kind::Console => {
                let (id, (seq, rec)) = self.of_experiment::<(u64, ConsoleRecord)>(&f)?;
                if seq >= self.experiments[&id].console_lines {
                    return Err(damaged(
                        f.offset,
                        format!("console line {seq} of experiment {id}, past its count"),
                    ));
                }
                if self.console.insert((id, seq), rec).is_some() {
                    return Err(damaged(
                        f.offset,
                        format!("console line {seq} of experiment {id} appears twice"),
                    ));
                }
                Ok(())
            }
            Kind::Scalar => {
                let (id, (metric, variant, it, value)) =
                    self.of_experiment::<(String, String, u64, f64)>(&f)?;
                check_scalar(&metric, &variant).map_err(|e| damaged(f.offset, e))?;
                if self
                    .scalars
                    .insert((id, metric, variant, it), value)
                    .is_some()
                {
                    return Err(damaged(
                        f.offset,
                        format!("a scalar of experiment {id} appears twice"),
                    ));
                }
                Ok(())
            }
            Kind::Artifact => self.artifact(&f),
            Kind::Bucket => {
                let (name, rec): (String, BucketRecord) =
                    decode_postcard("bundled bucket", &f.payload)
                        .map_err(|e| damaged(f.offset, e))?;
                check_bucket(&name).map_err(|e| damaged(f.offset, e))?;
                if self.buckets.insert(name.clone(), rec).is_some() {
                    return Err(damaged(f.offset, format!("bucket {name} appears twice")));
                }
                Ok(())
            }
            Kind::Object => self.object(&f),
            Kind::End => unreachable!("the reader consumes the trailer"),
        }
    }

    fn model(&mut self, f: &Frame) -> Result<()> {
        let id = EntityId(field::<16>(f, 0)?);
        let rec: ModelRecord = decode_postcard("bundled model record", &f.payload[16..])
            .map_err(|e| damaged(f.offset, e))?;
        check_model_record(&rec).map_err(|e| damaged(f.offset, e))?;
        if self.models.insert(id, (rec, f.offset)).is_some() {
            return Err(damaged(f.offset, format!("model {id} appears twice")));
        }
        Ok(())
    }

    fn experiment(&mut self, f: &Frame) -> Result<()> {
        let id = EntityId(field::<16>(f, 0)?);
        let rec: ExperimentRecord = decode_postcard("bundled experiment record", &f.payload[16..])
            .map_err(|e| damaged(f.offset, e))?;
        check_experiment_record(&rec).map_err(|e| damaged(f.offset, e))?;
        if self.experiments.insert(id, rec).is_some() {
            return Err(damaged(f.offset, format!("experiment {id} appears twice")));
        }
        Ok(())
    }

    /// The experiment id a console, scalar or artifact frame begins with
    /// (described earlier in the bundle), and the value after it.
    fn of_experiment<T: serde::de::DeserializeOwned>(&self, f: &Frame) -> Result<(EntityId, T)> {
        let id = EntityId(field::<16>(f, 0)?);
        if !self.experiments.contains_key(&id) {
            return Err(damaged(
                f.offset,
                format!(
                    "a {:?} frame of experiment {id}, which the bundle does not describe first",
                    f.kind
                ),
            ));
        }
        let v = decode_postcard("bundled experiment record", &f.payload[16..])
            .map_err(|e| damaged(f.offset, e))?;
        Ok((id, v))
    }

    fn object(&mut self, f: &Frame) -> Result<()> {
        let ((bucket, key), rest): ((String, String), _) =
            decode_postcard_prefix("bundled object", &f.payload)
                .map_err(|e| damaged(f.offset, e))?;
        let rec = decode_object(rest).map_err(|e| damaged(f.offset, e))?;
        if !self.buckets.contains_key(&bucket) {
            return Err(damaged(
                f.offset,
                format!(
                    "object {key:?} of bucket {bucket}, which the bundle does not describe first"
                ),
            ));
        }
        check_object_key(&key)
            .and_then(|()| check_field("entity tag", &rec.etag))
            .and_then(|()| {
                rec.content_type
                    .as_deref()
                    .map_or(Ok(()), |t| check_field("content type", t))
            })
            .and_then(|()| check_object_metadata(&rec.metadata, &rec.headers))
            .and_then(|()| check_checksums(&rec.checksums))
            .map_err(|e| damaged(f.offset, e))?;
        let blob = BlobId(Hash32(rec.blob));
        self.check_blob(f, &blob, rec.size, &|| format!("object {bucket}/{key}"))?;
        if self
            .objects
            .insert((bucket.clone(), key.clone()), rec)
            .is_some()
        {
            return Err(damaged(
                f.offset,
                format!("object {bucket}/{key} appears twice"),
            ));
        }
        Ok(())
    }

    fn artifact(&mut self, f: &Frame) -> Result<()> {
        let (id, (name, revision, rec)) = self.of_experiment::<(String, u32, ArtifactRecord)>(f)?;
        check_artifact_record(&name, &rec).map_err(|e| damaged(f.offset, e))?;
        if revision == 0 {
            return Err(damaged(
                f.offset,
                format!("artifact {name} revision 0 (revisions count from 1)"),
            ));
        }
        if let ArtifactBody::Blob { blob, size } = &rec.body {
            self.check_blob(f, blob, *size, &|| {
                format!("artifact {name} of experiment {id}")
            })?;
        }
        if self
            .artifacts
            .insert((id, name.clone(), revision), rec)
            .is_some()
        {
            return Err(damaged(
                f.offset,
                format!("artifact {name} revision {revision} appears twice"),
            ));
        }
        Ok(())
    }

    /// Checks that `blob` of `size` bytes came earlier in the bundle or is
    /// in the store.
    fn check_blob(
        &self,
        f: &Frame,
        blob: &BlobId,
        size: u64,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let known = match self.staged.get(blob) {
            Some(b) => Some(b.len()),
            None => blobs::get(self.core.chunks().meta(), blob)?.map(|b| b.size),
        };
        match known {
            Some(s) if s == size => Ok(()),
            Some(s) => Err(damaged(
                f.offset,
                format!("{} says {size} bytes, its blob {blob} has {s}", what()),
            )),
            None => Err(damaged(
                f.offset,
                format!(
                "{} names blob {blob}, which neither the bundle (before it) nor this store holds",
                what()
            ),
            )),
        }
    }

    fn version(&mut self, f: &Frame) -> Result<()> {
        let id = EntityId(field::<16>(f, 0)?);
        let v = u32::from_be_bytes(field::<4>(f, 16)?);
        let rec: VersionRecord = decode_postcard("bundled version record", &f.payload[20..])
            .map_err(|e| damaged(f.offset, e))?;
        let Some((model, _)) = self.models.get(&id) else {
            return Err(damaged(
                f.offset,
                format!("version {v} of model {id}, which the bundle does not describe first"),
            ));
        };
        if v == 0 {
            return Err(damaged(f.offset, "version 0 (versions count from 1)"));
        }
        let mut paths = Vec::with_capacity(rec.files.len());
        for file in &rec.files {
            check_path(&file.path).map_err(|e| damaged(f.offset, e))?;
            paths.push(file.path.as_str());
            let name = &model.name;
            self.check_blob(f, &file.blob, file.size, &|| {
                format!("{name}@{v} file {}", file.path)
            })?;
        }
        paths.sort_unstable();
        check_version_paths(&paths).map_err(|e| damaged(f.offset, e))?;
        if self.versions.insert((id, v), rec).is_some() {
            return Err(damaged(
                f.offset,
                format!("version {v} of model {id} appears twice"),
            ));
        }
        Ok(())
    }

    fn blob_begin(&mut self, f: &Frame) -> Result<()> {
        let id = BlobId(Hash32(field::<32>(f, 0)?));
        let size = u64::from_le_bytes(field::<8>(f, 32)?);
        // The optional hint: the model and path of a version file it is.
        let hint = match f.payload.len() {
            40 => None,
            n if n > 56 => {
                let model = EntityId(field::<16>(f, 40)?);
                let path = std::str::from_utf8(&f.payload[56..])
                    .map_err(|_| damaged(f.offset, "a blob's path hint is not UTF-8"))?;
                check_path(path).map_err(|e| damaged(f.offset, e))?;
                Some((model, path.to_string()))
            }
            n => return Err(damaged(f.offset, format!("a BlobBegin frame of {n} bytes"))),
        };
        let have = self.staged.contains_key(&id)
            || self.present.contains(&id)
            || self.core.contains_blob(&id)?;
        let writer = if have {
            None
        } else {
            let w = self.core.blob_writer().label(format!("import: blob {id}"));
            Some(match self.delta_base(hint.as_ref())? {
                // A base that cannot serve (not a tensor container, gone
                // meanwhile) only costs the delta.
                Some(base) => w.delta_base(&base).unwrap_or_else(|_| {
                    self.core.blob_writer().label(format!("import: blob {id}"))
                }),
                None => w,
            })
        };
        self.current = Some(Incoming {
            id,
            size,
            got: 0,
            hasher: blake3::Hasher::new(),
            writer,
            offset: f.offset,
        });
        Ok(())
    }

    /// The delta base for a file of model `hint.0` at path `hint.1`, as
    /// `put` would choose it: that path in the newest version of the model
    /// this store has committed (versions of the same bundle are not
    /// committed yet, so they cannot serve).
    fn delta_base(&self, hint: Option<&(EntityId, String)>) -> Result<Option<BlobId>> {
        let Some((model, path)) = hint else {
            return Ok(None);
        };
        let meta = self.core.chunks().meta();
        let Some(v) = versions::newest(meta, model)? else {
            return Ok(None);
        };
        Ok(versions::get(meta, model, v)?
            .and_then(|r| r.files.into_iter().find(|f| f.path == *path))
            .map(|f| f.blob))
    }

    fn chunk(&mut self, f: &Frame) -> Result<()> {
        let id: ChunkId = Hash32(field::<32>(f, 0)?);
        let raw = u32::from_le_bytes(field::<4>(f, 32)?);
        if raw == 0 || raw > MAX_RAW_CHUNK {
            return Err(damaged(
                f.offset,
                format!("chunk {id} of {raw} bytes (1 to {MAX_RAW_CHUNK})"),
            ));
        }
        let z = &f.payload[36..];
        let bytes = unpack(z, raw).map_err(|e| damaged(f.offset, format!("chunk {id}: {e}")))?;
        if Hash32::of(&bytes) != id {
            return Err(damaged(
                f.offset,
                format!("chunk {id}: its bytes do not hash to its id"),
            ));
        }
        if !self.spooled.contains_key(&id) {
            self.spool
                .seek(SeekFrom::Start(self.spool_len))
                .and_then(|_| self.spool.write_all(z))
                .map_err(|e| Error::io(self.core.path(), e))?;
            self.spooled.insert(
                id,
                Spooled {
                    at: self.spool_len,
                    zlen: z.len() as u32,
                    raw,
                },
            );
            self.spool_len += z.len() as u64;
        }
        self.report.chunks_received += 1;
        self.feed(f, &bytes)
    }

    fn chunk_ref(&mut self, f: &Frame) -> Result<()> {
        let id: ChunkId = Hash32(field::<32>(f, 0)?);
        let raw = u32::from_le_bytes(field::<4>(f, 32)?);
        self.report.chunks_named += 1;
        let bytes = if let Some(s) = self.spooled.get(&id) {
            let mut z = vec![0u8; s.zlen as usize];
            self.spool
                .seek(SeekFrom::Start(s.at))
                .and_then(|_| self.spool.read_exact(&mut z))
                .map_err(|e| Error::io(self.core.path(), e))?;
            let b = unpack(&z, s.raw).map_err(|e| Error::corrupt("the import spool", e))?;
            if Hash32::of(&b) != id {
                return Err(Error::corrupt(
                    "the import spool",
                    format!("chunk {id} read back damaged"),
                ));
            }
            b
        } else {
            let chunks = self.core.chunks();
            if chunks.chunk_loc(&id)?.is_none() {
                return Err(damaged(
                    f.offset,
                    format!(
                        "names chunk {id} as held by this store, which does not hold it \
                     (export again without an exclusion list, or with this store's `have` list)"
                    ),
                ));
            }
            let mut out = Vec::new();
            let object = || format!("chunk {id} named by the bundle");
            chunks.read_chunk(&id, &object, 0, &mut self.scratch, &mut out)?;
            out
        };
        if bytes.len() != raw as usize {
            return Err(damaged(
                f.offset,
                format!("chunk {id} is {} bytes, the bundle says {raw}", bytes.len()),
            ));
        }
        self.feed(f, &bytes)
    }

    fn feed(&mut self, f: &Frame, bytes: &[u8]) -> Result<()> {
        let b = self.current.as_mut().expect("checked: inside a blob");
        b.got += bytes.len() as u64;
        if b.got > b.size {
            return Err(damaged(
                f.offset,
                format!("blob {} runs past its {} bytes", b.id, b.size),
            ));
        }
        b.hasher.update(bytes);
        if let Some(w) = &mut b.writer {
            w.write_all(bytes)
                .map_err(|e| Error::from_io("storing an imported blob", e))?;
        }
        Ok(())
    }

    fn blob_end(&mut self, f: &Frame) -> Result<()> {
        let b = self.current.take().expect("checked: inside a blob");
        if b.got != b.size {
            return Err(damaged(
                f.offset,
                format!("blob {} has {} bytes of {}", b.id, b.got, b.size),
            ));
        }
        if BlobId(Hash32(*b.hasher.finalize().as_bytes())) != b.id {
            return Err(damaged(
                b.offset,
                format!("the bytes of blob {} do not hash to its id", b.id),
            ));
        }
        match b.writer {
            Some(w) => {
                let staged = w.stage()?;
                if staged.id() != b.id {
                    return Err(Error::corrupt(
                        format!("imported blob {}", b.id),
                        format!("stored as {}", staged.id()),
                    ));
                }
                self.report.blobs_added += 1;
                self.staged.insert(b.id, staged);
            }
            None => {
                self.present.insert(b.id);
            }
        }
        Ok(())
    }
}

/// Decompresses one chunk's zstd frame into exactly `raw` bytes: never
/// allocates more than `raw`, so a decompression bomb fails at that size.
fn unpack(z: &[u8], raw: u32) -> std::result::Result<Vec<u8>, String> {
    let out = zstd::bulk::decompress(z, raw as usize)
        .map_err(|e| format!("does not decompress within its {raw} bytes: {e}"))?;
    if out.len() != raw as usize {
        return Err(format!("decompresses to {} bytes, not {raw}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::bundle::{BundleWriter, Kind};
    use crate::meta::records::encode_postcard;
    use crate::meta::registry_records::VersionFile;
    use crate::{ImportOptions, Store};

    fn import(store: &Store, frames: &[(Kind, Vec<u8>)]) -> crate::Error {
        let mut w = BundleWriter::new(Vec::new()).unwrap();
        for (k, p) in frames {
            w.frame(*k, &[p]).unwrap();
        }
        let (b, _) = w.finish().unwrap();
        store
            .import(&b[..], &ImportOptions::default(), &|_| {})
            .unwrap_err()
    }

    #[test]
    fn a_decompression_bomb_and_a_path_with_dot_dot_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s")).unwrap();
        // 64 MiB of zeros compress to a few KiB; the frame claims 4 KiB.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        let mut chunk = [7u8; 32].to_vec();
        chunk.extend_from_slice(&4096u32.to_le_bytes());
        chunk.extend_from_slice(&bomb);
        let mut begin = [1u8; 32].to_vec();
        begin.extend_from_slice(&4096u64.to_le_bytes());
        let err = import(&store, &[(Kind::BlobBegin, begin), (Kind::Chunk, chunk)]);
        assert!(err.to_string().contains("within its 4096 bytes"), "{err}");

        let model = crate::meta::registry_records::ModelRecord {
            name: "m".into(),
            project: "p".into(),
            framework: crate::formats::detect::Framework::Unknown,
            framework_set: false,
            tags: vec![],
            labels: Default::default(),
            design: None,
            metadata: Default::default(),
            comment: None,
            experiment: None,
            parent: None,
            created_ms: 1,
            updated_ms: 1,
            finalized_ms: None,
            latest: 1,
            aliases: Default::default(),
            external: None,
        };
        let id = [3u8; 16];
        let mut m = id.to_vec();
        m.extend(encode_postcard(&model));
        let version = crate::meta::registry_records::VersionRecord {
            files: vec![VersionFile {
                path: "../etc/passwd".into(),
                blob: crate::BlobId(crate::Hash32([0; 32])),
                size: 0,
                format: crate::formats::detect::FileFormat::Unknown,
            }],
            created_ms: 1,
            experiment: None,
        };
        let mut v = id.to_vec();
        v.extend(1u32.to_be_bytes());
        v.extend(encode_postcard(&version));
        let err = import(&store, &[(Kind::Model, m), (Kind::Version, v)]);
        assert!(err.to_string().contains(".."), "{err}");
        assert!(store.models().unwrap().is_empty());
    }
}
