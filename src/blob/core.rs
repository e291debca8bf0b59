//! [`Core`]: what every handle of one open store shares below the public
//! `Store` handle: the chunk layer, the upload worker pool, the uploads open
//! in this process, and the store directory's lock. Blob writers and
//! readers, registry handles and the layers above blob hold an `Arc<Core>`;
//! `Store` is a thin public face over the same `Arc`.
//!
//! The work behind each public `Store` method is a `Core` method in the
//! layer that does it (here and in `blob/`, `gc/collect.rs`, `verify.rs`,
//! `registry/`); `store/api.rs` only delegates. Fields are private: the
//! layers reach them through the accessors below.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{BlobReader, BlobWriter, Pool};
use crate::chunk::Chunks;
use crate::chunking::CdcParams;
use crate::codec::EncodeOptions;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::meta::records::BlobRecord;

/// The tuning the layers from blob up use (the part of the store's options
/// that outlives opening it).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub cdc: CdcParams,
    pub encode: EncodeOptions,
    pub threads: usize,
    pub max_delta_depth: u8,
    pub delta_min_saving: f64,
}

/// See the module docs. Two handles are the same open store exactly when
/// they share one `Core` (`Arc::ptr_eq`).
pub(crate) struct Core {
    dir: PathBuf,
    store_id: [u8; 16],
    /// The chunk layer: packs, index, pending holds, the commit door.
    chunks: Chunks,
    opts: Config,
    /// Manifest ids of the uploads open in this process (never expired).
    active_uploads: Mutex<HashSet<u64>>,
    pool: Pool,
    /// Serialises collections (one at a time per store) and reverse deltas.
    gc: Mutex<()>,
    /// The store directory's lock, held as long as anything uses the store
    /// (none for a read-only store: it never writes).
    _lock: Option<File>,
}

impl Core {
    /// Assembles the shared state of a store that was just opened and
    /// recovered, holding its directory `lock` (`None`: read-only).
    pub fn new(
        dir: &Path,
        store_id: [u8; 16],
        chunks: Chunks,
        opts: Config,
        pool: Pool,
        lock: Option<File>,
    ) -> Core {
        Core {
            dir: dir.to_path_buf(),
            store_id,
            chunks,
            opts,
            active_uploads: Mutex::new(HashSet::new()),
            pool,
            gc: Mutex::new(()),
            _lock: lock,
        }
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The chunk layer: packs, index, pending holds, the commit door.
    pub fn chunks(&self) -> &Chunks {
        &self.chunks
    }

    /// The tuning of the layers from blob up.
    pub fn opts(&self) -> &Config {
        &self.opts
    }

    /// Manifest ids of the uploads open in this process.
    pub fn active_uploads(&self) -> &Mutex<HashSet<u64>> {
        &self.active_uploads
    }

    /// The upload worker pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Waits for, then holds until the guard drops, the collection mutex:
    /// one collection or reverse-delta batch at a time.
    pub fn exclusive(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.gc.lock()
    }

    /// The store's unique id.
    pub fn id(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.store_id)
    }

    /// See `Store::blob_writer`.
    pub fn blob_writer(self: &Arc<Self>) -> BlobWriter {
        BlobWriter::new(Arc::clone(self))
    }

    /// See `Store::put_blob`.
    pub fn put_blob(self: &Arc<Self>, src: impl Read) -> Result<BlobId> {
        let mut w = self.blob_writer();
        copy_into(&mut w, src)?;
        w.finish()
    }

    /// See `Store::blob_reader`.
    pub fn blob_reader(self: &Arc<Self>, id: &BlobId) -> Result<BlobReader> {
        let rec = self
            .blob_record(id)?
            .ok_or_else(|| Error::not_found("blob", id))?;
        Ok(BlobReader::new(Arc::clone(self), *id, rec))
    }

    /// The record of a blob, if stored.
    pub fn blob_record(&self, id: &BlobId) -> Result<Option<BlobRecord>> {
        crate::meta::tables::blobs::get(self.chunks.meta(), id)
    }

    /// True if a blob with this id is stored.
    pub fn contains_blob(&self, id: &BlobId) -> Result<bool> {
        Ok(self.blob_record(id)?.is_some())
    }
}

/// Writes all of `src` into `w`, a megabyte at a time.
pub(crate) fn copy_into(w: &mut BlobWriter, mut src: impl Read) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("<input stream>", e)),
        };
        // The writer's own error (a refused write, say) as it was.
        w.write_all(&buf[..n])
            .map_err(|e| Error::from_io("<blob writer>", e))?;
    }
}
