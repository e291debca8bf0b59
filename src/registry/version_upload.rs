//! A model version of any number of staged files, in bounded memory.
//!
//! A [`VersionUpload`] takes staged blobs one at a time. Each file's format
//! is detected when it is added, from the first bytes its writer kept, and
//! only the result is kept. Staged blobs are committed in groups (every
//! [`GROUP_FILES`] files or [`GROUP_BYTES`] bytes of staged records): a group
//! commit writes their last manifest segments and chunk index entries, and
//! records each blob's upload session as complete, but writes no blob
//! record. Until the version commit each of those manifests is owned by its
//! upload session, which stays registered as open in this process, so no
//! collection expires it. The version commit
//! ([`crate::Model::add_version_upload`]) then replaces every session by its
//! blob record (or, for content stored already, marks the manifest dead)
//! and writes the version record, in one batch.
//!
//! So nothing is visible before the version commit, and whatever a group
//! commit wrote stays collectable: a version upload dropped (or whose
//! version commit fails) gives its sessions up at once; after a crash the
//! sessions are ordinary abandoned uploads, which `gc` expires
//! ([`crate::GcOptions::expire_uploads_after`]), releasing their chunks.
//!
//! What stays in memory per file is what the version record holds anyway
//! (path, blob id, size, format) and, for a file whose group was committed,
//! its blob record and session id: about 100 bytes besides the path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::blob::Core;
use crate::blob::{abandon_sessions, check_same_store, GroupedBlob, StagedBlob};
use crate::error::{Error, Result};
use crate::formats::detect::{self, FileFormat};
use crate::id::BlobId;
use crate::meta::names::check_path;
use crate::meta::records::FileEntry;
use crate::meta::Batch;

/// A group is committed once it holds this many staged blobs...
pub(crate) const GROUP_FILES: usize = 1024;
/// ... or once its staged blobs keep this many bytes (their last segments
/// and chunk locations; see `StagedBlob::retained_bytes`).
pub(crate) const GROUP_BYTES: usize = 1 << 20;

/// A model version being assembled from staged blobs
/// ([`crate::BlobWriter::stage`]); [`crate::Model::add_version_upload`]
/// commits it. Memory stays bounded whatever the number of files, as long
/// as each blob is added as soon as it is staged (see the module docs):
/// staged blobs are committed in groups, invisibly, and the version with
/// all of them at the end.
///
/// Dropping it without committing leaves nothing visible and gives up
/// what its group commits wrote.
///
/// A version upload belongs to the store handle that made it
/// ([`Store::version_upload`]), like the staged blobs it takes.
#[must_use = "a version exists only once Model::add_version_upload commits it"]
pub struct VersionUpload {
    store: Arc<Core>,
    /// Path → blob, size, format: the version record's files.
    files: BTreeMap<String, (BlobId, u64, FileFormat)>,
    /// Blobs a group commit wrote, by id, until the version commit.
    grouped: HashMap<BlobId, GroupedBlob>,
    /// Staged blobs not committed yet: the next group (or the last one,
    /// which goes with the version commit).
    group: Vec<StagedBlob>,
    /// What `group` keeps, in bytes.
    group_bytes: usize,
    /// The most `group_bytes` has been.
    peak_group_bytes: usize,
    /// Why a group commit failed: the version cannot be complete.
    failed: Option<String>,
}

impl Core {
    /// See [`crate::Store::version_upload`].
    pub(crate) fn version_upload(self: &Arc<Self>) -> VersionUpload {
        VersionUpload {
            store: self.clone(),
            files: BTreeMap::new(),
            grouped: HashMap::new(),
            group: Vec::new(),
            group_bytes: 0,
            peak_group_bytes: 0,
            failed: None,
        }
    }
}

impl VersionUpload {
    /// Adds `blob` as the file at `path`. Its format is detected now, from
    /// the first bytes the writer kept. Every so many files, the staged
    /// blobs added since the last group are committed (invisibly: see the
    /// module documentation).
    ///
    /// # Errors
    /// [`Error::WrongStore`] for a blob staged by another store handle;
    /// [`Error::InvalidInput`] for a bad path, a path already added, or a
    /// path that is also a folder of another file (the blob is then
    /// dropped, the upload is unchanged and may go on). An error committing
    /// a group fails this upload: every later call fails.
    pub fn add(&mut self, path: impl Into<String>, mut blob: StagedBlob) -> Result<()> {
        self.check()?;
        check_same_store(
            || format!("staged blob {}", blob.id()),
            blob.store(),
            &self.store,
        )?;
        let path = path.into();
        check_path(&path)?;
        check_new_path(&self.files, &path)?;
        let head = std::mem::take(&mut blob.head);
        let format = detect::detect(&path, &head, blob.len());
        drop(head);
        self.files.insert(path, (blob.id(), blob.len(), format));
        self.group_bytes += blob.retained_bytes();
        self.peak_group_bytes = self.peak_group_bytes.max(self.group_bytes);
        self.group.push(blob);
        if self.group.len() >= GROUP_FILES || self.group_bytes >= GROUP_BYTES {
            if let Err(e) = self.commit_group() {
                self.failed = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Files added so far.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True if no file was added.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The most bytes the staged blobs waiting for a group commit kept at
    /// once.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn peak_group_bytes(&self) -> usize {
        self.peak_group_bytes
    }

    /// The store handle this upload belongs to.
    pub(crate) fn store(&self) -> &Arc<Core> {
        &self.store
    }

    pub(crate) fn check(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(Error::Poisoned(format!(
                "this version upload failed earlier: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Commits the staged blobs of the current group: their last segments,
    /// the chunk index entries they need and their sessions, complete. A
    /// blob whose content is already in this upload is given up instead.
    /// On error the group's staged blobs are dropped, which gives them up.
    fn commit_group(&mut self) -> Result<()> {
        let group = std::mem::take(&mut self.group);
        self.group_bytes = 0;
        let chunks: Vec<_> = group
            .iter()
            .flat_map(|b| b.chunks.iter().copied())
            .collect();
        let mut batch = Batch::default();
        let mut first = HashSet::new();
        let mut kept = Vec::with_capacity(group.len());
        for b in &group {
            let new = !self.grouped.contains_key(&b.id()) && first.insert(b.id());
            if new {
                b.apply_grouped(&mut batch);
            } else {
                b.apply_duplicate(&mut batch);
            }
            kept.push(new);
        }
        self.store
            .chunks()
            .commit(&chunks, batch, |_, _, _| Ok(()))?;
        for (b, new) in group.into_iter().zip(kept) {
            if new {
                let id = b.id();
                self.grouped.insert(id, b.into_grouped());
            } else {
                b.committed();
            }
        }
        Ok(())
    }

    /// Takes what the version commit needs: the files in path order, the
    /// staged blobs of the last group and the grouped blobs.
    pub(crate) fn parts(&mut self) -> Parts<'_> {
        let files = std::mem::take(&mut self.files)
            .into_iter()
            .map(|(path, (blob, size, fmt))| (FileEntry { path, blob, size }, fmt))
            .collect();
        self.group_bytes = 0;
        Parts {
            files,
            staged: std::mem::take(&mut self.group),
            grouped: &self.grouped,
        }
    }

    /// After the version commit: the grouped blobs' sessions are gone,
    /// so they are no longer open uploads.
    pub(crate) fn committed(mut self) {
        let grouped = std::mem::take(&mut self.grouped);
        let mut open = self.store.active_uploads().lock();
        for g in grouped.values() {
            open.remove(&g.session);
        }
    }
}

/// What [`VersionUpload::parts`] hands the version commit.
pub(crate) struct Parts<'a> {
    /// Every file, in path order, with its detected format.
    pub files: Vec<(FileEntry, FileFormat)>,
    /// The staged blobs of the last group, not committed yet.
    pub staged: Vec<StagedBlob>,
    /// The blobs group commits wrote, by id.
    pub grouped: &'a HashMap<BlobId, GroupedBlob>,
}

impl Drop for VersionUpload {
    /// Gives up the sessions of the grouped blobs (their segments become
    /// garbage); the staged blobs not committed yet give themselves up.
    fn drop(&mut self) {
        let sessions: Vec<u64> = self
            .grouped
            .values()
            .map(|g| g.session)
            .filter(|&s| s != 0)
            .collect();
        if !sessions.is_empty() {
            abandon_sessions(&self.store, &sessions);
        }
    }
}

/// Checks that `path` may join a version holding `files`: not there yet,
/// not below one of them, not above one of them (no directory could hold
/// a file that is also a folder).
fn check_new_path(files: &BTreeMap<String, (BlobId, u64, FileFormat)>, path: &str) -> Result<()> {
    if files.contains_key(path) {
        return Err(Error::invalid("path", path, "two files claim this path"));
    }
    let folder_of = |file: &str, folder: &str| {
        Error::invalid(
            "path",
            file,
            format!("{folder:?} is a file of this version, so it cannot be a folder"),
        )
    };
    for (i, _) in path.match_indices('/') {
        if files.contains_key(&path[..i]) {
            return Err(folder_of(path, &path[..i]));
        }
    }
    let below = format!("{path}/");
    if let Some((other, _)) = files.range(below.clone()..).next() {
        if other.starts_with(&below) {
            return Err(folder_of(other, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::{GROUP_BYTES, GROUP_FILES};
    use crate::test_support::noise;
    use crate::{NewModel, StagedBlob, Store};

    fn stage(store: &Store, data: &[u8]) -> StagedBlob {
        let mut w = store.blob_writer();
        w.write_all(data).unwrap();
        w.stage().unwrap()
    }

    /// Pseudo-random bytes: nothing dedups, every chunk is new.
    #[test]
    fn staged_blobs_wait_in_groups_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let m = store.create_model(NewModel::new("m")).unwrap();
        let mut up = store.version_upload();
        let (mut total, mut largest) = (0, 0);
        let mut add = |up: &mut super::VersionUpload, path: String, data: &[u8]| {
            let b = stage(&store, data);
            // What the blob keeps once its format is detected.
            let kept = b.retained_bytes() - b.head.capacity();
            total += kept;
            largest = largest.max(kept);
            up.add(path, b).unwrap();
        };
        // Many small files, then larger ones (a few hundred chunks each).
        for i in 0..8 * GROUP_FILES {
            add(&mut up, format!("s/{i}"), &noise(i as u64, 100 + i % 200));
        }
        for i in 0..20 {
            add(&mut up, format!("l/{i}"), &noise(10_000 + i, 4 << 20));
        }
        let peak = up.peak_group_bytes();
        assert!(
            peak <= GROUP_BYTES + largest,
            "{peak} bytes waited for a group commit"
        );
        assert!(peak * 4 < total, "{peak} of {total} bytes at once");
        assert_eq!(up.len(), 8 * GROUP_FILES + 20);
        m.add_version_upload(up, None).unwrap();
        let v = m.version(None).unwrap();
        assert_eq!(v.files.len(), 8 * GROUP_FILES + 20);
        assert_eq!(store.stats().blobs, 8 * GROUP_FILES as u64 + 20);
        assert!(store.uploads().unwrap().is_empty());
        assert!(store
            .verify(crate::VerifyOptions::new().read_data(false))
            .unwrap()
            .is_clean());
    }
}
