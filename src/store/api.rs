//! The public methods of [`Store`] that delegate to the layers below it:
//! each is a thin call on the shared `Core` (`crate::blob::Core`), whose
//! methods live with the layer that does the work.
use super::Store;
use crate::blob::{BlobReader, ReverseDeltaReport};
use crate::chunking::tensors::{TensorLayout, TensorSpan};
#[allow(unused_imports)] // named by the docs
use crate::error::Error;
use crate::error::Result;
use crate::gc::{GcOptions, GcReport, UploadInfo};
use crate::id::BlobId;
use crate::meta::records::FileEntry;
use crate::meta::registry_records::EntityId;
use crate::query::Query;
use crate::registry::delete::{DeleteReport, Retention};
use crate::registry::experiment::{Experiment, ExperimentQuery, NewExperiment};
use crate::registry::model::{Model, ModelInfo, ModelSummary, NewModel};
use crate::registry::put::PutVersion;
use crate::registry::version::ModelVersion;
use crate::registry::version_upload::VersionUpload;
use crate::verify::IndexReport;
use crate::verify::{VerifyOptions, VerifyReport};

/// From `src/blob/reverse.rs`.
impl Store {
    /// Re-encodes the chunks of `older` as deltas against the matching
    /// chunks of `newer` (see the module documentation), so that `newer`,
    /// typically the latest checkpoint, reads without following any base.
    /// What either blob reads back is unchanged. Call it once `newer` is
    /// stored (best cut with [`crate::BlobWriter::cut_like`]`(older)`).
    ///
    /// The replaced records are dead. At the end, each sealed pack that
    /// held some of them and is now under half live (what [`Store::gc`]
    /// compacts by default) is compacted: its live records copied, its file
    /// deleted; a pack of `older`'s own upload usually has nothing left to
    /// copy. (A model version's put, [`Store::put_version`], compacts under
    /// 90% live: it starts a pack of its own, so what is left live beside
    /// the replaced records is chunks the versions share.) The report says
    /// what this reclaimed; a collection reclaims the rest.
    ///
    /// A chunk that cannot be rebased (already a delta, too long a chain,
    /// unreadable, or no smaller as a delta) is left as it is: this is an
    /// optimization, never a reason to fail.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if either blob is not stored; I/O and
    /// metadata errors.
    pub fn reverse_delta(&self, older: &BlobId, newer: &BlobId) -> Result<ReverseDeltaReport> {
        let below = crate::GcOptions::default().compact_below;
        self.inner.reverse_deltas(&[(*older, *newer)], below)
    }
}

/// From `src/blob/tensor.rs`.
impl Store {
    /// The tensor layout of a stored safetensors or GGUF file, or `None` for
    /// any other content. Reads (and verifies) only the header.
    pub fn tensor_layout(&self, blob: &BlobId) -> Result<Option<TensorLayout>> {
        self.inner.tensor_layout(blob)
    }

    /// One tensor of a stored safetensors or GGUF file, by name: its span
    /// and a reader over exactly its bytes (verified like every read).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the blob is not a tensor container or has no
    /// tensor of that name.
    pub fn tensor_reader(
        &self,
        blob: &BlobId,
        name: &str,
    ) -> Result<(TensorSpan, std::io::Take<BlobReader>)> {
        self.inner.tensor_reader(blob, name)
    }
}

/// From `src/gc/collect.rs`.
impl Store {
    /// Collects garbage: gives up expired upload sessions, releases the
    /// chunk references of deleted blobs, deletes the index entries of
    /// chunks nothing references or holds, and compacts packs (see
    /// [`GcOptions`]). Safe to run while other threads upload, read and
    /// delete; one collection runs at a time. Last, when it deleted at
    /// least an eighth of the store's chunk index entries and manifests (or
    /// always, with [`GcOptions::compact_metadata`]), the metadata database
    /// is flushed and its blob-related column families compacted, so the
    /// entries it deleted stop taking space.
    ///
    /// A pack chosen for compaction with a live record that cannot be read
    /// or verified is left as it is and named in
    /// [`GcReport::packs_skipped`]; the collection goes on with the others.
    ///
    /// # Errors
    /// I/O and metadata errors (a full disk while copying records is
    /// [`Error::Io`] naming the pack file). A collection interrupted by an
    /// error or a crash leaves a consistent store; the next one finishes
    /// the work (after a failed pack write, reopen the store first).
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        self.inner.gc(opts)
    }

    /// [`Store::gc`], calling `progress(done, total)` as compaction works
    /// through the packs it chose (bytes of those packs done, of all of
    /// them): for a progress bar.
    pub fn gc_with_progress(
        &self,
        opts: &GcOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<GcReport> {
        self.inner.gc_reporting(opts, progress)
    }

    /// Drops one hold on a blob (taken by [`crate::BlobWriter::finish`] or
    /// [`Store::put_blob`]). A blob with no hold left and no registry record
    /// referring to it is deleted; its chunks are freed by the next
    /// [`Store::gc`].
    ///
    /// # Errors
    /// [`Error::NotFound`] if the blob is not stored, [`Error::InvalidInput`]
    /// if it has no hold to release.
    pub fn release_blob(&self, id: &crate::BlobId) -> Result<()> {
        self.inner.release_blob(id)
    }

    /// Continues an upload session after a crash or a
    /// [`crate::BlobWriter::suspend`]: the returned writer has the durable
    /// prefix (its [`crate::BlobWriter::len`]) already; write the rest of
    /// the content from that offset and finish or stage it as usual.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or expired session;
    /// [`Error::InvalidInput`] if a writer in this process has it open;
    /// [`Error::Corrupt`] if its durable prefix cannot be read back.
    pub fn resume_upload(&self, id: crate::UploadId) -> Result<crate::BlobWriter> {
        self.inner.resume_upload(id)
    }

    /// A reader over the durable prefix of upload session `id`: the bytes
    /// [`Store::resume_upload`] would continue after, each chunk verified as
    /// it is read. Reads only; the session is left as it is. A caller about
    /// to resume from a source it reads again (a file) compares that
    /// source's first [`BlobReader::len`] bytes with these first, so that a
    /// source changed since the interruption is refused, not stored spliced.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or expired session; reads fail
    /// with [`Error::Corrupt`] (inside the `io::Error`) if a chunk of the
    /// prefix is damaged.
    pub fn upload_prefix(&self, id: crate::UploadId) -> Result<BlobReader> {
        crate::BlobWriter::upload_prefix(&self.inner, id)
    }

    /// The upload sessions with durable progress and no blob yet.
    pub fn uploads(&self) -> Result<Vec<UploadInfo>> {
        self.inner.uploads()
    }
}

/// From `src/verify.rs`.
impl Store {
    /// Checks the store. Problems are reported, not returned as errors; an
    /// `Err` means verification itself could not run (e.g. I/O on the
    /// metadata database).
    ///
    /// Runs beside writers, deletions and collections without stopping
    /// them: every record is read from one snapshot of the metadata (the
    /// store as of the call; commits are atomic batches, so it is
    /// consistent), and no lock is held. Its memory does not grow with the
    /// store's chunks (docs/ARCHITECTURE.md, "Verify").
    pub fn verify(&self, opts: VerifyOptions) -> Result<VerifyReport> {
        self.inner.verify(opts)
    }

    /// [`Store::verify`], calling `progress` with the raw bytes re-read so
    /// far as `read_data` reads chunks: for a progress bar (the total is
    /// about [`crate::Stats::unique_bytes`], a part of it with a subset).
    pub fn verify_with_progress(
        &self,
        opts: VerifyOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<VerifyReport> {
        self.inner.verify_reporting(opts, progress)
    }
}

/// From `src/registry/delete.rs`.
impl Store {
    /// [`Model::prune`] of every model, as one deletion (one commit): a
    /// blob that versions of several models share is freed once all of them
    /// drop it, in the dry run's figures as in the real run's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the rule keeps nothing explicitly (no rule set).
    pub fn prune_all(&self, rule: &Retention, dry_run: bool) -> Result<DeleteReport> {
        self.inner.prune_all(rule, dry_run)
    }
}

/// From `src/registry/usage.rs`.
impl Store {
    /// How much each model, version and experiment takes: logical bytes,
    /// stored bytes, the bytes only it keeps (what deleting it would free,
    /// as a deletion's dry run reports) and the bytes it shares.
    pub fn space_usage(&self) -> Result<crate::SpaceReport> {
        self.inner.space_usage()
    }

    /// The version files, artifact revisions and S3 objects that reference
    /// blob `id`, with its reference and hold counts (all empty for a blob
    /// nothing references, or that is not stored: `size` tells).
    pub fn blob_users(&self, id: &crate::BlobId) -> Result<crate::BlobUsers> {
        self.inner.blob_users(id)
    }

    /// The blobs whose manifests list chunk `id`, the delta chunks stored
    /// against it and the blobs that need it through them. Scans every
    /// blob's manifest (there is no chunk → blob index).
    pub fn chunk_users(&self, id: &crate::ChunkId) -> Result<crate::ChunkUsers> {
        self.inner.chunk_users(id)
    }
}

/// From `src/registry/experiment.rs`.
impl Store {
    /// Creates an experiment in state `created`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or over-long project, name or tag.
    pub fn create_experiment(&self, spec: NewExperiment) -> Result<Experiment> {
        self.inner.create_experiment(spec)
    }

    /// The experiment with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn experiment(&self, id: EntityId) -> Result<Experiment> {
        self.inner.experiment(id)
    }

    /// The most recently created experiment called `name` in `project`.
    pub fn experiment_by_name(&self, project: &str, name: &str) -> Result<Experiment> {
        self.inner.experiment_by_name(project, name)
    }

    /// A query over experiments; add filters, then [`ExperimentQuery::run`].
    pub fn experiments(&self) -> ExperimentQuery {
        self.inner.experiments()
    }
}

/// From `src/registry/model.rs`.
impl Store {
    /// Creates a model with no versions yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, project, tag or metadata key;
    /// [`Error::NotFound`] for an unknown creating experiment or parent;
    /// [`Error::Immutable`] if the creating experiment is finished.
    pub fn create_model(&self, spec: NewModel) -> Result<Model> {
        self.inner.create_model(spec)
    }

    /// Registers a model whose bytes live at `url`, without storing them.
    /// Registering the same URL again returns the existing model.
    pub fn register_external_model(
        &self,
        spec: NewModel,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<Model> {
        self.inner.register_external_model(spec, url, checksum)
    }

    /// The model with this id.
    pub fn model(&self, id: EntityId) -> Result<Model> {
        self.inner.model(id)
    }

    /// The most recently created model called `name`.
    pub fn model_by_name(&self, name: &str) -> Result<Model> {
        self.inner.model_by_name(name)
    }

    /// Resolves what a user typed: a model id, a name, `NAME@VERSION`,
    /// `NAME@ALIAS`, `ID@VERSION` or a model URL. Returns the model and the
    /// version meant (`None`: the latest).
    pub fn resolve_model(&self, spec: &str) -> Result<(Model, Option<u32>)> {
        self.inner.resolve_model(spec)
    }

    /// Models matching a query (see [`super::query`]). Indexed conjuncts
    /// (`framework`, `project`, `name`, `tag`, `status`, `metadata.*`) are
    /// answered from the index and intersected; the full query is then
    /// checked on each candidate. A query with no indexed conjunct scans.
    pub fn find_models(&self, q: &Query) -> Result<Vec<ModelInfo>> {
        self.inner.find_models(q)
    }

    /// All models (id, name, latest version), in creation order.
    pub fn models(&self) -> Result<Vec<ModelSummary>> {
        self.inner.models()
    }

    /// The model versions that contain `blob`: (model, version).
    pub fn versions_with_blob(&self, blob: &crate::id::BlobId) -> Result<Vec<(EntityId, u32)>> {
        self.inner.versions_with_blob(blob)
    }

    /// Commits `files` as the next version of the model called `name`,
    /// creating the model if there is none. Returns the version number.
    pub fn commit_version(&self, name: &str, files: Vec<FileEntry>) -> Result<u32> {
        self.inner.commit_version(name, files)
    }

    /// A version of the model called `name`: the given one, or the latest.
    pub fn version(&self, name: &str, version: Option<u32>) -> Result<ModelVersion> {
        self.inner.version(name, version)
    }

    /// Version numbers of the model called `name`.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>> {
        self.inner.versions(name)
    }
}

/// From `src/registry/put.rs`.
impl Store {
    /// Starts storing files as the next version of the model called
    /// `name`: set the options (delta base, reverse delta, project,
    /// experiment, whether the model may be created), then
    /// [`PutVersion::begin`], add the files and commit. This is the way to
    /// store a version with the same policy as `modelvault put`.
    pub fn put_version(&self, name: &str) -> PutVersion {
        self.inner.put_version(name)
    }
}

/// From `src/registry/repair.rs`.
impl Store {
    /// Compares the secondary indexes with what the records imply.
    pub fn verify_index(&self) -> Result<IndexReport> {
        self.inner.verify_index()
    }

    /// Rebuilds the secondary indexes from the records (the repair path);
    /// returns what was wrong.
    pub fn rebuild_index(&self) -> Result<IndexReport> {
        self.inner.rebuild_index()
    }
}

/// From `src/registry/version_upload.rs`.
impl Store {
    /// Starts a model version of staged files, committed in bounded
    /// memory whatever their number: see [`VersionUpload`].
    pub fn version_upload(&self) -> VersionUpload {
        self.inner.version_upload()
    }
}

/// From `src/archive/`.
impl Store {
    /// Writes a bundle of the experiments and models `spec` selects, with
    /// their console lines, scalars, artifacts and versions and the content
    /// of every blob those name, to `out` (streamed: memory holds one chunk
    /// and the ids sent so far, whatever the size). Returns
    /// `out` and what was written. `progress` is called with the raw bytes
    /// read so far. The format is in docs/FORMAT.md, "Bundles".
    ///
    /// # Errors
    /// [`Error::NotFound`] for a model or version range that does not
    /// exist (before anything is written); an integrity error if a chunk
    /// read fails its check; an I/O error of `out`.
    pub fn export<W: std::io::Write>(
        &self,
        spec: &crate::ExportSpec,
        out: W,
        progress: &dyn Fn(u64),
    ) -> Result<(W, crate::ExportReport)> {
        self.inner.export(spec, out, progress)
    }

    /// Reads a bundle from `input` and adds its experiments, models,
    /// versions and blobs to this store, keeping their ids and version
    /// numbers: every record
    /// and byte is checked as it is read, and nothing becomes visible until
    /// the bundle's trailer has been checked, when everything is committed
    /// at once. Importing the same bundle twice changes nothing the second
    /// time. `progress` is called with the bundle bytes read so far.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the byte offset where a damaged, cut off
    /// or inconsistent bundle broke; [`Error::InvalidInput`] listing the
    /// conflicts (unless [`crate::ImportOptions::skip_conflicts`]). In every
    /// error case the store is unchanged.
    pub fn import(
        &self,
        input: impl std::io::Read,
        opts: &crate::ImportOptions,
        progress: &dyn Fn(u64),
    ) -> Result<crate::ImportReport> {
        self.inner.import(input, opts, progress)
    }

    /// Calls `f` with the id of every chunk this store holds, in id order:
    /// the list an export to this store may leave out
    /// ([`crate::ExportSpec::exclude_chunks`]).
    pub fn chunk_ids(&self, mut f: impl FnMut(&crate::ChunkId) -> Result<()>) -> Result<()> {
        self.inner.chunks().catch_up()?;
        for kv in crate::meta::tables::chunks::all(self.inner.chunks().meta()) {
            f(&kv?.0)?;
        }
        Ok(())
    }
}
