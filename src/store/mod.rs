//! The store handle, the public face of the layers below. Opening
//! (directory, marker, lock, metadata set-up and migrations) is in `open`,
//! pack recovery at open in `recovery`, tuning in `options`. Every write
//! goes through the chunk layer's commit door (`crate::chunk`).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::blob::{BlobReader, BlobWriter, Core};
#[allow(unused_imports)] // named by the docs
use crate::error::Error;
use crate::error::Result;
use crate::id::BlobId;
use crate::meta::records::BlobRecord;

mod api;
#[cfg(test)]
mod group_commit_tests;
mod open;
mod options;
#[cfg(test)]
mod readonly_tests;
mod recovery;

pub use options::{Durability, Options};

/// A modelvault store. Cheap to clone (`Arc` inside), `Send + Sync`: share
/// one handle between threads. The store stays open and locked until the
/// last clone (and every reader and writer made from it) is dropped.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Core>,
}

/// What [`Store::blob_info`] tells about a stored blob: a view of its
/// metadata record, which itself stays private (its layout is the on-disk
/// format). Non-exhaustive: fields may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobInfo {
    /// Content length in bytes.
    pub size: u64,
    /// Number of chunks the content is cut into.
    pub chunks: u64,
}

impl BlobInfo {
    fn of(r: &BlobRecord) -> BlobInfo {
        BlobInfo {
            size: r.size,
            chunks: r.chunks,
        }
    }
}

/// Space and dedup figures for a store. Non-exhaustive: figures may be
/// added.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes of all files of all committed versions, as the user sees them.
    pub logical_bytes: u64,
    /// Raw bytes of the distinct chunks kept.
    pub unique_bytes: u64,
    /// Of those, the bytes only interrupted upload sessions keep (see
    /// [`Store::uploads`]): no version's `logical_bytes` includes them, so
    /// `dedup_ratio` leaves them out. `gc` frees them once the sessions
    /// expire.
    pub upload_bytes: u64,
    /// Bytes of pack files (what the chunk data costs on disk).
    pub stored_bytes: u64,
    /// Distinct chunks.
    pub chunks: u64,
    /// Distinct blobs.
    pub blobs: u64,
    /// Committed model versions.
    pub versions: u64,
    /// Pack files.
    pub packs: u64,
    /// logical / (unique - upload): what chunk dedup saves.
    pub dedup_ratio: f64,
    /// unique / stored: what the codecs save.
    pub compression_ratio: f64,
    /// stored / logical: the fraction of its input the store keeps.
    pub stored_fraction: f64,
}

impl Store {
    /// Opens the store in `dir`, creating it if `dir` does not exist or is
    /// an empty directory.
    ///
    /// # Errors
    /// [`Error::NotAStore`] if `dir` holds something else, [`Error::Locked`]
    /// if another process (or handle) has the store open (after waiting up
    /// to half a second for a holder that is letting go),
    /// [`Error::UnsupportedVersion`] for a store from a newer build.
    pub fn create(dir: impl AsRef<Path>) -> Result<Store> {
        Options::default().open(dir)
    }

    /// Opens an existing store; never creates one.
    ///
    /// # Errors
    /// As [`Store::create`], and [`Error::NotAStore`] if `dir` is missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Options::default().create(false).open(dir)
    }

    /// Opens an existing store for reading only, beside a writer that may
    /// hold it in another process (or this one): takes no lock and writes
    /// nothing in `dir` (no recovery, no migrations; what RocksDB's
    /// secondary instance keeps goes into a private temporary directory).
    ///
    /// The handle sees committed state only, as of its last catch-up with
    /// the writer: at the open, on [`Store::catch_up`], and by itself on
    /// reads at most every 100 ms. A read whose record the writer's
    /// compaction moved (its pack deleted) catches up and looks again once.
    /// Every write (uploads, commits, registry and object writes, `gc`,
    /// deletions) returns [`Error::ReadOnly`] and changes nothing.
    ///
    /// # Errors
    /// [`Error::NotAStore`] if `dir` holds no store (none is created),
    /// [`Error::UnsupportedVersion`] for a store from a newer build.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_read_only_at(dir.as_ref())
    }

    /// On a store opened with [`Store::open_read_only`]: catches up with
    /// the writer now, so that the next read sees every commit made before
    /// this call. Nothing on a store opened for writing (it sees its own
    /// commits at once).
    pub fn catch_up(&self) -> Result<()> {
        self.inner.chunks().catch_up()
    }

    /// True if this handle was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.chunks().meta().is_read_only()
    }

    /// True if `dir` holds a store (its marker file), whether or not it
    /// can be opened now. Reads nothing else and takes no lock.
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        open::has_marker(dir.as_ref())
    }

    /// Tuning knobs; finish with [`Options::open`].
    pub fn options() -> Options {
        Options::default()
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The store's unique id (a UUID, fixed at creation).
    pub fn id(&self) -> uuid::Uuid {
        self.inner.id()
    }

    /// Starts a streaming upload. Write the content, then call
    /// [`BlobWriter::finish`] for its id.
    pub fn blob_writer(&self) -> BlobWriter {
        self.inner.blob_writer()
    }

    /// Stores everything `src` yields and returns the blob id.
    pub fn put_blob(&self, src: impl Read) -> Result<BlobId> {
        self.inner.put_blob(src)
    }

    /// Opens a blob for reading (`Read + Seek`, every chunk verified).
    ///
    /// # Errors
    /// [`Error::NotFound`] if no such blob is stored.
    pub fn blob_reader(&self, id: &BlobId) -> Result<BlobReader> {
        self.inner.blob_reader(id)
    }

    /// A stored blob's size and chunk count, or `None` if no such blob is
    /// stored.
    pub fn blob_info(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        Ok(self.inner.blob_record(id)?.map(|r| BlobInfo::of(&r)))
    }

    /// The S3-style object namespace: buckets of objects named by keys, each
    /// object a blob of this store (see [`crate::Objects`]).
    pub fn objects(&self) -> crate::Objects<'_> {
        crate::objects::Objects::new(&self.inner)
    }

    /// The blob's metadata record itself (with its manifest id), for unit
    /// tests that follow a blob to its manifest.
    #[cfg(test)]
    pub(crate) fn blob_record(&self, id: &BlobId) -> Result<Option<BlobRecord>> {
        self.inner.blob_record(id)
    }

    /// True if a blob with this id is stored.
    pub fn contains_blob(&self, id: &BlobId) -> Result<bool> {
        self.inner.contains_blob(id)
    }

    /// Makes every commit so far durable (pack data and the metadata WAL).
    /// Needed only with [`Durability::Eventual`].
    pub fn sync(&self) -> Result<()> {
        self.inner.chunks().sync()
    }

    /// Space and dedup figures.
    pub fn stats(&self) -> Stats {
        let (s, stored, packs) = self.inner.chunks().stats();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        // A figure, not a check: a session record that does not read is
        // counted as nothing here (verify reports it).
        let upload = crate::gc::estimate::upload_only_bytes(self.inner.chunks().meta())
            .unwrap_or_else(|e| {
                tracing::warn!("stats: upload session bytes not counted: {e}");
                0
            })
            .min(s.unique_bytes);
        Stats {
            logical_bytes: s.logical_bytes,
            unique_bytes: s.unique_bytes,
            upload_bytes: upload,
            stored_bytes: stored,
            chunks: s.chunks,
            blobs: s.blobs,
            versions: s.versions,
            packs,
            dedup_ratio: ratio(s.logical_bytes, s.unique_bytes - upload),
            compression_ratio: ratio(s.unique_bytes, stored),
            stored_fraction: ratio(stored, s.logical_bytes),
        }
    }
}
