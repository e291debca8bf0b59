//! The file operations the pack writer performs, behind a trait so tests can
//! inject failures (fail the k-th write, fsync or create) and simulate a
//! power cut (drop whatever was written but not fsynced).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Creating and opening pack files, and making directory entries durable.
pub(crate) trait PackIo: Send + Sync {
    /// Creates a new file (failing if it exists), for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn PackFile>>;
    /// Opens an existing file for writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn PackFile>>;
    /// fsyncs a directory, so a file created in it survives a crash.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Positional writes and syncs on one open pack file.
pub(crate) trait PackFile: Send + Sync {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
}

/// The real file system.
pub(crate) struct OsIo;

impl PackIo for OsIo {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(f))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
        Ok(Arc::new(OpenOptions::new().write(true).open(path)?))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl PackFile for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
}
