//! Model versions: numbered, immutable sets of path → blob. Adding one
//! checks its paths, detects each file's format from its first bytes,
//! guesses the framework and commits the version with its references and
//! index entries in one batch; reading one gives a [`ModelVersion`].

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Serialize;

use super::common::now_ms;
use super::experiment::load_experiment;
use super::model::{load_model, Model};
use super::version_upload::VersionUpload;
use crate::blob::{check_same_store, GroupedBlob, StagedBlob};
use crate::error::{Error, Result};
use crate::formats::detect::{self, FileFormat, Framework};
use crate::id::{BlobId, ChunkId};
use crate::meta::names::check_path;
use crate::meta::records::FileEntry;
use crate::meta::registry_index as index_keys;
use crate::meta::registry_records::{EntityId, VersionFile, VersionRecord};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{blobs, index, versions};
use crate::meta::Meta;
use crate::pack::ChunkLoc;

/// One version of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ModelVersion {
    /// The model's id.
    pub model: EntityId,
    /// The model's name.
    pub name: String,
    /// Version number, from 1.
    pub version: u32,
    /// Files, sorted by path.
    pub files: Vec<VersionFile>,
    /// Commit time, Unix ms.
    pub created_ms: u64,
    /// The experiment that logged this version, if any.
    pub experiment: Option<EntityId>,
}

impl ModelVersion {
    /// Total bytes of all files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The file at `path`.
    pub fn file(&self, path: &str) -> Option<&VersionFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The delta base in this version for each file `(path, size)` of a new
    /// version (see [`crate::BlobWriter::delta_base`]): the file with the
    /// same path, else the only file of this version that no new path
    /// claims and that has the same size (a file renamed between versions).
    pub fn delta_bases(&self, new: &[(&str, u64)]) -> Vec<Option<BlobId>> {
        let claimed: HashSet<&str> = new.iter().map(|(p, _)| *p).collect();
        let mut by_size: HashMap<u64, Vec<BlobId>> = HashMap::new();
        for f in self
            .files
            .iter()
            .filter(|f| !claimed.contains(f.path.as_str()))
        {
            by_size.entry(f.size).or_default().push(f.blob);
        }
        new.iter()
            .map(|(path, size)| {
                self.file(path)
                    .map(|f| f.blob)
                    .or_else(|| match by_size.get(size) {
                        Some(only) if only.len() == 1 => Some(only[0]),
                        _ => None,
                    })
            })
            .collect()
    }
}

pub(crate) fn load_version(meta: &Meta, id: &EntityId, v: u32) -> Result<VersionRecord> {
    versions::get(meta, id, v)?
        .ok_or_else(|| Error::not_found("version", format!("{v} of model {id}")))
}

/// Checks the paths of a version, sorted: no two alike, and no file also a
/// folder of another (`a` and `a/b`): no directory could hold such a
/// version.
pub(crate) fn check_version_paths(paths: &[&str]) -> Result<()> {
    for w in paths.windows(2) {
        if w[0] == w[1] {
            return Err(Error::invalid("path", w[0], "two files claim this path"));
        }
    }
    let set: HashSet<&str> = paths.iter().copied().collect();
    for p in paths {
        for (i, _) in p.match_indices('/') {
            if set.contains(&p[..i]) {
                return Err(Error::invalid(
                    "path",
                    p,
                    format!(
                        "{:?} is a file of this version, so it cannot be a folder",
                        &p[..i]
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Model {
    /// Adds a version made of `files` (blobs already stored). Formats are
    /// detected from each file's first bytes; the framework is guessed from
    /// them unless it was set. Returns the new version number.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad or duplicate path, [`Error::NotFound`]
    /// for a blob not stored, [`Error::Immutable`] once finalized.
    pub fn add_version(&self, files: Vec<FileEntry>) -> Result<u32> {
        self.add_version_by(files, None)
    }

    /// [`Model::add_version`], recording the experiment that logged it.
    pub fn add_version_by(
        &self,
        files: Vec<FileEntry>,
        experiment: Option<EntityId>,
    ) -> Result<u32> {
        let mut detected = Vec::with_capacity(files.len());
        for f in files {
            check_path(&f.path)?;
            let fmt = self.detect_format(&f)?;
            detected.push((f, fmt));
        }
        self.commit_files(detected, Vec::new(), &HashMap::new(), experiment)
    }

    /// Adds a version made of staged blobs ([`crate::BlobWriter::stage`]):
    /// the blobs and the version are committed together, with one pack fsync
    /// and one WAL fsync for a version of up to about a thousand files.
    /// Formats are detected from the bytes the writers kept, without reading
    /// anything back. The staged blobs are taken in groups as for
    /// [`Model::add_version_upload`], which is the way to store a version of
    /// many files in bounded memory: `files` itself holds every staged blob
    /// at once.
    ///
    /// # Errors
    /// [`Error::WrongStore`] if a blob was staged by another store handle;
    /// otherwise as [`Model::add_version`]. Every blob and path is checked
    /// before anything is written; on error none of the staged blobs is
    /// visible.
    pub fn add_version_staged(
        &self,
        files: Vec<(String, StagedBlob)>,
        experiment: Option<EntityId>,
    ) -> Result<u32> {
        for (_, blob) in &files {
            check_same_store(
                || format!("staged blob {}", blob.id()),
                blob.store(),
                &self.store,
            )?;
        }
        let mut paths = Vec::with_capacity(files.len());
        for (path, _) in &files {
            check_path(path)?;
            paths.push(path.as_str());
        }
        paths.sort_unstable();
        check_version_paths(&paths)?;
        let mut upload = self.store.version_upload();
        for (path, blob) in files {
            upload.add(path, blob)?;
        }
        self.add_version_upload(upload, experiment)
    }

    /// Commits a version made of the files of `upload` (see
    /// [`VersionUpload`]): the staged blobs not yet committed by a group,
    /// every blob record, and the version record, in one batch. Returns the
    /// new version number.
    ///
    /// # Errors
    /// [`Error::WrongStore`] if `upload` was made by another store handle;
    /// [`Error::Poisoned`] if one of its group commits failed; otherwise as
    /// [`Model::add_version`]. On error nothing of the upload is visible,
    /// and what its group commits wrote is given up.
    pub fn add_version_upload(
        &self,
        mut upload: VersionUpload,
        experiment: Option<EntityId>,
    ) -> Result<u32> {
        check_same_store(|| "version upload".into(), upload.store(), &self.store)?;
        upload.check()?;
        let parts = upload.parts();
        let v = self.commit_files(parts.files, parts.staged, parts.grouped, experiment)?;
        upload.committed();
        Ok(v)
    }

    /// The version commit shared by the add_version variants.
    fn commit_files(
        &self,
        mut detected: Vec<(FileEntry, FileFormat)>,
        staged: Vec<StagedBlob>,
        grouped: &HashMap<BlobId, GroupedBlob>,
        experiment: Option<EntityId>,
    ) -> Result<u32> {
        detected.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        check_version_paths(
            &detected
                .iter()
                .map(|(f, _)| f.path.as_str())
                .collect::<Vec<_>>(),
        )?;
        // Each path is moved along, never copied: a version may have very
        // many files.
        let (mut detected, blobs): (Vec<_>, Vec<_>) = detected
            .into_iter()
            .map(|(f, fmt)| ((f.path, fmt), (f.blob, f.size)))
            .unzip();
        let chunks: Vec<(ChunkId, ChunkLoc)> = staged
            .iter()
            .flat_map(|b| b.chunks.iter().copied())
            .collect();
        detect::refine_with_siblings(&mut detected);
        let guess = detect::guess_framework(&detected);
        let logical: u64 = blobs.iter().map(|&(_, size)| size).sum();
        let vfiles: Vec<VersionFile> = detected
            .into_iter()
            .zip(blobs)
            .map(|((path, format), (blob, size))| VersionFile {
                path,
                blob,
                size,
                format,
            })
            .collect();
        let id = self.id;
        let v = self.update_with(&chunks, |meta, rec, batch, stats| {
            for (id, g) in grouped {
                g.apply(id, meta, stats, batch)?;
            }
            // Grouped blobs are distinct (a group commit gave duplicates
            // up); `seen` has the staged ones.
            let mut seen = HashSet::new();
            for b in &staged {
                b.apply(meta, stats, batch, &mut seen, |id| grouped.contains_key(id))?;
            }
            // Each file references its blob. Blobs not staged here must still
            // exist now, under the commit lock (a deletion may have raced
            // the check made while detecting formats).
            for f in &vfiles {
                if !seen.contains(&f.blob)
                    && !grouped.contains_key(&f.blob)
                    && !blobs::exists(meta, &f.blob)?
                {
                    return Err(Error::not_found("blob", f.blob));
                }
                refs::change(batch, Count::Blob(f.blob), 1);
            }
            if let Some(e) = &experiment {
                let exp = load_experiment(meta, e)?;
                if exp.status.is_final() {
                    return Err(Error::Immutable {
                        what: format!("experiment {e}"),
                        state: exp.status.name().into(),
                    });
                }
            }
            let v = rec
                .latest
                .checked_add(1)
                .ok_or_else(|| Error::invalid("model", id, "has 2^32 versions"))?;
            let vrec = VersionRecord {
                files: vfiles,
                created_ms: now_ms(),
                experiment,
            };
            // A new version: all its index keys are new (moved into the
            // batch, not copied: one per file).
            index::insert(batch, index_keys::version_keys(&id, v, &vrec));
            versions::put(batch, &id, v, &vrec);
            rec.latest = v;
            if !rec.framework_set && guess != Framework::Unknown {
                rec.framework = guess;
            }
            stats.logical_bytes += logical;
            stats.versions += 1;
            Ok(v)
        })?;
        for b in &staged {
            b.committed();
        }
        Ok(v)
    }

    /// Reads a file's first bytes (verified) to detect its format; checks
    /// the blob exists with the stated size.
    fn detect_format(&self, f: &FileEntry) -> Result<FileFormat> {
        let rec = blobs::get(self.store.chunks().meta(), &f.blob)?
            .ok_or_else(|| Error::not_found("blob", f.blob))?;
        if rec.size != f.size {
            return Err(Error::invalid(
                "file size",
                f.size,
                format!("blob {} holds {} bytes", f.blob, rec.size),
            ));
        }
        let mut head = vec![0u8; detect::HEAD_LEN.min(f.size as usize)];
        let mut r = self.store.blob_reader(&f.blob)?;
        r.read_exact(&mut head)
            .map_err(|e| Error::io(format!("blob {}", f.blob), e))?;
        Ok(detect::detect(&f.path, &head, f.size))
    }

    /// A version (`None`: the latest).
    pub fn version(&self, version: Option<u32>) -> Result<ModelVersion> {
        let meta = self.store.chunks().meta();
        let rec = load_model(meta, &self.id)?;
        let v = match version {
            Some(v) => v,
            // The newest version still there (the latest may be deleted).
            None => match versions::newest(meta, &self.id)? {
                Some(v) => v,
                None => {
                    return Err(Error::not_found(
                        "version",
                        format!("any version of model {} ({})", rec.name, self.id),
                    ))
                }
            },
        };
        let vr = load_version(meta, &self.id, v)
            .map_err(|_| Error::not_found("version", format!("{}@{v}", rec.name)))?;
        for f in &vr.files {
            check_path(&f.path)
                .map_err(|e| Error::corrupt(format!("version record {}@{v}", rec.name), e))?;
        }
        Ok(ModelVersion {
            model: self.id,
            name: rec.name,
            version: v,
            files: vr.files,
            created_ms: vr.created_ms,
            experiment: vr.experiment,
        })
    }

    /// All version numbers, ascending.
    pub fn versions(&self) -> Result<Vec<u32>> {
        versions::numbers(self.store.chunks().meta(), &self.id).collect()
    }
}
