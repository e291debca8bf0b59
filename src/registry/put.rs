//! Version policy: storing a set of files as the next version of a model.
//!
//! [`PutVersion`] (from [`crate::Store::put_version`]) holds the choices a
//! caller makes — the delta base, reverse delta, the project and experiment
//! of a model created on the way — and [`PutVersion::begin`] checks them all
//! before anything is written. The [`VersionPut`] it returns takes the files
//! one at a time as `Read` sources ([`VersionPut::add`]) or as
//! [`crate::BlobWriter`]s it set up ([`VersionPut::writer`], then
//! [`VersionPut::add_writer`]), staging each into a [`VersionUpload`] at
//! once, so memory stays bounded whatever the number and size of the files;
//! [`VersionPut::commit`] makes the version visible in one batch, then
//! (reverse delta) re-encodes the base's files against the new ones.
//!
//! Delta bases: each file's base is a file of the base version (the model's
//! latest by default, or the one named with [`PutVersion::base`]) chosen by
//! [`crate::ModelVersion::delta_bases`]: the same path, else the only
//! unclaimed file of the same size.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use crate::blob::{BlobWriter, Core, ReverseDeltaReport};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::meta::names::check_name;
use crate::meta::registry_records::EntityId;
use crate::registry::common::check_label;
use crate::registry::model::{Model, NewModel};
use crate::registry::version::ModelVersion;
use crate::registry::version_upload::VersionUpload;

/// Where the files of a new version find their delta bases.
#[derive(Clone, Debug)]
enum BaseChoice {
    /// The latest version of the model, if it has one.
    Latest,
    /// A version named by a model spec (`NAME`, `NAME@VERSION`, ...).
    Named(String),
    /// None: every file stored whole.
    None,
}

/// The options of a new model version; [`PutVersion::begin`] checks them
/// and starts it. Made by [`crate::Store::put_version`].
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = modelvault::Store::open("store")?;
/// let mut put = store
///     .put_version("resnet")
///     .base("resnet@3")
///     .begin([("model.safetensors", 1 << 30)])?;
/// put.add("model.safetensors", std::fs::File::open("model.safetensors")?)?;
/// let report = put.commit()?;
/// println!("resnet@{}", report.version);
/// # Ok(()) }
/// ```
#[must_use = "nothing is stored until begin, then VersionPut::commit"]
pub struct PutVersion {
    store: Arc<Core>,
    name: String,
    base: BaseChoice,
    reverse: bool,
    project: String,
    experiment: Option<EntityId>,
    create: bool,
}

impl Core {
    /// See [`crate::Store::put_version`].
    pub(crate) fn put_version(self: &Arc<Self>, name: &str) -> PutVersion {
        PutVersion {
            store: self.clone(),
            name: name.to_string(),
            base: BaseChoice::Latest,
            reverse: true,
            project: "default".to_string(),
            experiment: None,
            create: true,
        }
    }
}

impl PutVersion {
    /// Store the files as deltas against the files of this version (a model
    /// spec as [`crate::Store::resolve_model`] takes it: `NAME`,
    /// `NAME@VERSION`, `NAME@ALIAS`, an id), e.g. the model a fine-tune
    /// started from. Default: the latest version of the model, if any.
    pub fn base(mut self, spec: impl Into<String>) -> Self {
        self.base = BaseChoice::Named(spec.into());
        self
    }

    /// Store every file whole, without a delta base (also turns reverse
    /// delta off: it needs a base).
    pub fn no_delta(mut self) -> Self {
        self.base = BaseChoice::None;
        self
    }

    /// Reverse delta: store the new files whole (cut like their bases), then,
    /// once the version is committed, re-encode the base's files as deltas
    /// against them ([`crate::Store::reverse_delta`], which also reclaims
    /// the packs that emptied), so the newest version reads fastest and
    /// older ones pay for the chain. Default: on. Off, the new files are
    /// stored as deltas against the base (forward deltas): a faster put,
    /// and the newest version is the one at the far end of the chain.
    pub fn reverse_delta(mut self, on: bool) -> Self {
        self.reverse = on;
        self
    }

    /// Project of the model if this creates it. Default: `default`.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = project.into();
        self
    }

    /// The experiment that made this version (linked to the version, and to
    /// the model if this creates it).
    pub fn experiment(mut self, id: EntityId) -> Self {
        self.experiment = Some(id);
        self
    }

    /// Create the model if none has this name (default: true). When false,
    /// an unknown name is refused by [`PutVersion::begin`].
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create = on;
        self
    }

    /// Checks every option and chooses each file's delta base; nothing of
    /// the version is written (with reverse delta and a base, the pack new
    /// uploads append to is sealed, so this version's records start one).
    /// `files` lists the paths and sizes of the files to come, as far as
    /// known: a file whose path the base version lacks gets the base
    /// version's only unlisted file of its size (a renamed file). A file
    /// added under a path not listed finds its base by path only.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad model name or project;
    /// [`Error::NotFound`] for an unknown model (unless it may be created),
    /// an unknown experiment, or a base spec naming no version (a base spec
    /// that cannot be parsed is [`Error::InvalidInput`]).
    pub fn begin<'a, I>(self, files: I) -> Result<VersionPut>
    where
        I: IntoIterator<Item = (&'a str, u64)>,
    {
        check_name(&self.name)?;
        let model = match self.store.model_by_name(&self.name) {
            Ok(m) => Some(m),
            Err(e) if e.is_not_found() && self.create => {
                check_label("project", &self.project, 256)?;
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(id) = self.experiment {
            self.store.experiment(id)?;
        }
        let base = match &self.base {
            BaseChoice::None => None,
            BaseChoice::Named(spec) => Some(self.resolve(spec)?),
            BaseChoice::Latest => match &model {
                None => None,
                Some(m) => match m.version(None) {
                    Ok(v) => Some(v),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e),
                },
            },
        };
        let bases = match &base {
            None => HashMap::new(),
            Some(v) => {
                let files: Vec<(&str, u64)> = files.into_iter().collect();
                let chosen = v.delta_bases(&files);
                files
                    .iter()
                    .zip(chosen)
                    .filter_map(|((p, _), b)| Some((p.to_string(), b?)))
                    .collect()
            }
        };
        if self.reverse && !bases.is_empty() {
            // This version's whole records start a pack: the next version's
            // reverse pass replaces them, and their packs then die whole
            // instead of sharing one with the base's records.
            self.store.chunks().roll_upload_pack()?;
        }
        Ok(VersionPut {
            upload: self.store.version_upload(),
            opts: self,
            model,
            base,
            bases,
            rebase: Vec::new(),
        })
    }

    /// The version a base spec names.
    fn resolve(&self, spec: &str) -> Result<ModelVersion> {
        let (m, v) = self.store.resolve_model(spec)?;
        m.version(v)
    }
}

/// A model version being stored: add its files, then
/// [`VersionPut::commit`]. Made by [`PutVersion::begin`]. Dropping it
/// without committing leaves nothing visible (see [`VersionUpload`]).
#[must_use = "a version exists only once VersionPut::commit commits it"]
pub struct VersionPut {
    opts: PutVersion,
    /// The model, if it exists already.
    model: Option<Model>,
    /// The version the files are stored against.
    base: Option<ModelVersion>,
    /// Each listed path's delta base.
    bases: HashMap<String, BlobId>,
    upload: VersionUpload,
    /// (older, newer) blobs to re-encode after the version commit.
    rebase: Vec<(BlobId, BlobId)>,
}

/// What [`VersionPut::commit`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutReport {
    /// The new version's number.
    pub version: u32,
    /// Files re-encoded against the new version (reverse delta).
    pub rebased_files: u64,
    /// The reverse delta of those files, summed.
    pub reverse: ReverseDeltaReport,
}

impl VersionPut {
    /// The version the files are stored against, if any.
    pub fn base_version(&self) -> Option<&ModelVersion> {
        self.base.as_ref()
    }

    /// The delta base chosen for the file at `path`: the listed path's
    /// choice, else the base version's file at that path.
    pub fn base_of(&self, path: &str) -> Option<BlobId> {
        self.bases
            .get(path)
            .copied()
            .or_else(|| self.base.as_ref()?.file(path).map(|f| f.blob))
    }

    /// A writer for the file at `path`, set up against its delta base (cut
    /// like it, with reverse delta). Write the content, then hand it to
    /// [`VersionPut::add_writer`].
    ///
    /// # Errors
    /// As [`crate::BlobWriter::delta_base`] and
    /// [`crate::BlobWriter::cut_like`].
    pub fn writer(&self, path: &str) -> Result<BlobWriter> {
        // An interrupted put's session says which file of which version it was.
        let w = self
            .upload
            .store()
            .blob_writer()
            .label(format!("put {}: {path}", self.opts.name));
        match self.base_of(path) {
            Some(b) if self.opts.reverse => w.cut_like(&b),
            Some(b) => w.delta_base(&b),
            None => Ok(w),
        }
    }

    /// Stages what `w` holds as the file at `path` (its format detected
    /// now) and adds it to the version.
    ///
    /// # Errors
    /// As [`crate::BlobWriter::stage`] and [`VersionUpload::add`]: a bad
    /// or repeated path is refused and the version may go on.
    pub fn add_writer(&mut self, path: &str, w: BlobWriter) -> Result<()> {
        self.add_staged(path, w.stage()?)
    }

    /// Adds `blob`, staged from a writer this put gave for `path` (see
    /// [`VersionPut::writer`]), as the file at `path`. Lets a caller stage
    /// one file on another thread (`stage` waits for its last chunks)
    /// while it writes the next.
    ///
    /// # Errors
    /// As [`VersionUpload::add`]: a bad or repeated path is refused and
    /// the version may go on.
    pub fn add_staged(&mut self, path: &str, blob: crate::StagedBlob) -> Result<()> {
        let id = blob.id();
        self.upload.add(path, blob)?;
        if self.opts.reverse {
            if let Some(b) = self.base_of(path) {
                self.rebase.push((b, id));
            }
        }
        Ok(())
    }

    /// Stores everything `src` yields as the file at `path`, streaming it
    /// through [`VersionPut::writer`]; returns its length.
    ///
    /// # Errors
    /// [`Error::Io`] from `src`, and as [`VersionPut::add_writer`].
    pub fn add(&mut self, path: &str, mut src: impl Read) -> Result<u64> {
        let mut w = self.writer(path)?;
        let n = io::copy(&mut src, &mut w).map_err(|e| Error::io(path, e))?;
        self.add_writer(path, w)?;
        Ok(n)
    }

    /// Files added so far.
    pub fn len(&self) -> usize {
        self.upload.len()
    }

    /// True if no file was added.
    pub fn is_empty(&self) -> bool {
        self.upload.is_empty()
    }

    /// Commits the version (creating the model if it did not exist), then,
    /// with reverse delta, re-encodes each base file against its new file.
    ///
    /// # Errors
    /// As [`crate::Model::add_version_upload`] (nothing of the version is
    /// visible then); a reverse-delta error comes after the version is
    /// committed (what is re-encoded stays readable either way).
    pub fn commit(self) -> Result<PutReport> {
        let VersionPut {
            opts,
            model,
            upload,
            rebase,
            ..
        } = self;
        let model = match model {
            Some(m) => m,
            // Made by another handle since `begin`? Then it is used as is.
            None => match opts.store.model_by_name(&opts.name) {
                Ok(m) => m,
                Err(e) if e.is_not_found() => {
                    let mut spec = NewModel::new(&opts.name).project(&opts.project);
                    if let Some(e) = opts.experiment {
                        spec = spec.experiment(e);
                    }
                    opts.store.create_model(spec)?
                }
                Err(e) => return Err(e),
            },
        };
        let version = model.add_version_upload(upload, opts.experiment)?;
        let mut report = PutReport {
            version,
            ..PutReport::default()
        };
        // `begin` sealed the upload pack: the base's packs hold no record
        // of this version (see `gc::reclaim`).
        report.reverse = opts
            .store
            .reverse_deltas(&rebase, crate::gc::PUT_RECLAIM_BELOW)?;
        report.rebased_files = rebase.len() as u64;
        Ok(report)
    }
}
