//! The store handle, the public face of the layers below. Opening
//! (directory, marker, lock, metadata set-up and migrations) is in `open`,
//! pack recovery at open in `recovery`, tuning in `options`. Every write
//! goes through the chunk layer's commit door (`crate::chunk`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::blob::{BlobReader, BlobWriter, Pool};
use crate::chunk::Chunks;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::meta::records::{self, BlobRecord};
use crate::meta::Cf;

mod open;
mod options;
mod recovery;

pub use options::{Durability, Options};

/// A modelvault store. Cheap to clone (`Arc` inside), `Send + Sync`: share
/// one handle between threads. The store stays open and locked until the
/// last clone (and every reader and writer made from it) is dropped.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub store_id: [u8; 16],
    /// The chunk layer: packs, index, pending holds, the commit door.
    pub chunks: Arc<Chunks>,
    pub opts: Options,
    /// Manifest ids of the uploads open in this process (never expired).
    pub active_uploads: Mutex<HashSet<u64>>,
    pub pool: Pool,
    /// Serialises collections (one at a time per store).
    pub gc: Mutex<()>,
    _lock: File,
}

/// Space and dedup figures for a store.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Bytes of all files of all committed versions, as the user sees them.
    pub logical_bytes: u64,
    /// Raw bytes of the distinct chunks kept.
    pub unique_bytes: u64,
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
    /// logical / unique: what chunk dedup saves.
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

    /// Tuning knobs; finish with [`Options::open`].
    pub fn options() -> Options {
        Options::default()
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The store's unique id (a UUID, fixed at creation).
    pub fn id(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.inner.store_id)
    }

    /// Starts a streaming upload. Write the content, then call
    /// [`BlobWriter::finish`] for its id.
    pub fn blob_writer(&self) -> BlobWriter {
        BlobWriter::new(self.clone())
    }

    /// Stores everything `src` yields and returns the blob id.
    pub fn put_blob(&self, mut src: impl Read) -> Result<BlobId> {
        let mut w = self.blob_writer();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("<input stream>", e)),
            };
            w.write_all(&buf[..n])
                .map_err(|e| Error::io("<blob writer>", e))?;
        }
        w.finish()
    }

    /// Opens a blob for reading (`Read + Seek`, every chunk verified).
    ///
    /// # Errors
    /// [`Error::NotFound`] if no such blob is stored.
    pub fn blob_reader(&self, id: &BlobId) -> Result<BlobReader> {
        let rec = self
            .blob_record(id)?
            .ok_or_else(|| Error::not_found("blob", id))?;
        Ok(BlobReader::new(self.clone(), *id, rec))
    }

    /// The record of a blob, if stored.
    pub fn blob_record(&self, id: &BlobId) -> Result<Option<BlobRecord>> {
        self.inner
            .chunks
            .meta()
            .with(Cf::Blobs, id.as_bytes(), records::decode_blob)
    }

    /// True if a blob with this id is stored.
    pub fn contains_blob(&self, id: &BlobId) -> Result<bool> {
        Ok(self.blob_record(id)?.is_some())
    }

    /// Makes every commit so far durable (pack data and the metadata WAL).
    /// Needed only with [`Durability::Eventual`].
    pub fn sync(&self) -> Result<()> {
        self.inner.chunks.sync()
    }

    /// Space and dedup figures.
    pub fn stats(&self) -> Stats {
        let (s, stored, packs) = self.inner.chunks.stats();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Stats {
            logical_bytes: s.logical_bytes,
            unique_bytes: s.unique_bytes,
            stored_bytes: stored,
            chunks: s.chunks,
            blobs: s.blobs,
            versions: s.versions,
            packs,
            dedup_ratio: ratio(s.logical_bytes, s.unique_bytes),
            compression_ratio: ratio(s.unique_bytes, stored),
            stored_fraction: ratio(stored, s.logical_bytes),
        }
    }
}
pub(crate) fn tracing_note(msg: &str) {
    if std::env::var_os("MODELVAULT_LOG").is_some() {
        eprintln!("modelvault: {msg}");
    }
}
