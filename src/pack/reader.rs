//! Reading chunk records by position.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::format::{pack_file_name, ChunkLoc, RecordHeader, RECORD_HEADER_LEN};
use crate::error::{Error, Result};
use crate::id::ChunkId;

/// Positional reads from pack files, with a cache of open handles.
pub(crate) struct PackReader {
    dir: PathBuf,
    files: RwLock<HashMap<u32, Arc<File>>>,
}

impl PackReader {
    pub fn new(dir: &Path) -> Self {
        PackReader {
            dir: dir.to_path_buf(),
            files: RwLock::new(HashMap::new()),
        }
    }

    fn file(&self, pack: u32) -> Result<Arc<File>> {
        if let Some(f) = self.files.read().get(&pack) {
            return Ok(Arc::clone(f));
        }
        let path = self.dir.join(pack_file_name(pack));
        let f = Arc::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
        self.files.write().insert(pack, Arc::clone(&f));
        Ok(f)
    }

    /// Closes the cached handle of a pack about to be deleted.
    pub fn forget(&self, pack: u32) {
        self.files.write().remove(&pack);
    }

    /// Reads the record at `loc` into `buf` and returns its payload, after
    /// checking that the record header agrees with `loc` and `id`.
    pub fn read<'b>(&self, id: &ChunkId, loc: &ChunkLoc, buf: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        let what = RecordName(loc);
        let total = RECORD_HEADER_LEN + loc.stored_len as usize;
        buf.clear();
        buf.resize(total, 0);
        let file = self.file(loc.pack)?;
        file.read_exact_at(buf, loc.offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(what, format!("pack ends before the record's {total} bytes"))
            } else {
                Error::io(self.dir.join(pack_file_name(loc.pack)), e)
            }
        })?;
        let h = RecordHeader::decode(&buf[..RECORD_HEADER_LEN], &what)?;
        if h.id != *id
            || h.codec != loc.codec
            || h.raw_len != loc.raw_len
            || h.stored_len != loc.stored_len
        {
            return Err(Error::corrupt(
                what,
                format!(
                    "record header ({:?}, {:?}, raw {}, stored {}) disagrees with the index ({id:?}, {:?}, raw {}, stored {})",
                    h.id, h.codec, h.raw_len, h.stored_len, loc.codec, loc.raw_len, loc.stored_len
                ),
            ));
        }
        Ok(&buf[RECORD_HEADER_LEN..])
    }
}

/// Displays as `pack 0000002a record at 4096`.
#[derive(Clone, Copy)]
struct RecordName<'a>(&'a ChunkLoc);

impl std::fmt::Display for RecordName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pack {:08x} record at {}", self.0.pack, self.0.offset)
    }
}
