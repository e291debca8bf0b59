//! Appending chunk records to the current pack file.
//!
//! One writer per store, shared by all upload threads behind a mutex. Records
//! are staged in a 1 MiB buffer and written with positional writes; `sync`
//! makes everything appended so far durable (buffer flushed, `fdatasync`).
//! When a pack reaches its target size it is flushed, fsynced and closed,
//! and the next record opens a new pack (file and directory fsynced before
//! first use, so a pack that an index entry names always exists after a crash).
//!
//! Any I/O failure poisons the writer: the file position of a failed write is
//! unknown, so every later append and sync fails until the store is reopened
//! (which truncates the pack to its last committed length).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::format::{
    pack_file_name, ChunkLoc, PackHeader, RecordHeader, PACK_HEADER_LEN, RECORD_HEADER_LEN,
};
use super::io::{OsIo, PackFile, PackIo};
use crate::error::{Error, Result};

const STAGE_BYTES: usize = 1 << 20;

pub(crate) struct PackWriter {
    io: Arc<dyn PackIo>,
    dir: PathBuf,
    store_id: [u8; 16],
    target_size: u64,
    state: Mutex<State>,
}

struct State {
    cur: Option<Current>,
    next_id: u32,
    poisoned: Option<String>,
}

struct Current {
    id: u32,
    file: Arc<dyn PackFile>,
    /// Logical length: everything appended, staged or written.
    len: u64,
    /// File offset of `stage[0]`.
    stage_at: u64,
    stage: Vec<u8>,
}

impl PackWriter {
    /// A writer that appends to pack `resume.0` (already truncated to
    /// `resume.1` bytes) if given, and otherwise starts pack `next_id`.
    pub fn open(
        io: Arc<dyn PackIo>,
        dir: &Path,
        store_id: [u8; 16],
        target_size: u64,
        next_id: u32,
        resume: Option<(u32, u64)>,
    ) -> Result<Self> {
        let cur = match resume {
            Some((id, len)) if len < target_size => {
                let path = dir.join(pack_file_name(id));
                let file = io.open(&path).map_err(|e| Error::io(&path, e))?;
                Some(Current {
                    id,
                    file,
                    len,
                    stage_at: len,
                    stage: Vec::with_capacity(STAGE_BYTES),
                })
            }
            _ => None,
        };
        Ok(PackWriter {
            io,
            dir: dir.to_path_buf(),
            store_id,
            target_size,
            state: Mutex::new(State {
                cur,
                next_id,
                poisoned: None,
            }),
        })
    }

    /// Appends one record. The returned location is valid for readers only
    /// after [`PackWriter::sync`] and the index commit that follows it.
    pub fn append(&self, header: &RecordHeader, payload: &[u8]) -> Result<ChunkLoc> {
        self.append_with(header, payload, |loc| loc)
    }

    /// [`PackWriter::append`], calling `publish` with the new location before
    /// the writer's lock is released: whatever `publish` records about the
    /// record is in place before its pack can be sealed, so whoever sees a
    /// pack sealed ([`PackWriter::current`]) sees every record of it published.
    pub fn append_with<T>(
        &self,
        header: &RecordHeader,
        payload: &[u8],
        publish: impl FnOnce(ChunkLoc) -> T,
    ) -> Result<T> {
        debug_assert_eq!(header.stored_len as usize, payload.len());
        let mut st = self.state.lock();
        check_poison(&st)?;
        let rec_len = (RECORD_HEADER_LEN + payload.len()) as u64;
        let full = st
            .cur
            .as_ref()
            .is_some_and(|c| c.len > PACK_HEADER_LEN as u64 && c.len + rec_len > self.target_size);
        if st.cur.is_none() || full {
            let r = self.roll(&mut st);
            poison_on_err(&mut st, r)?;
        }
        let cur = st.cur.as_mut().expect("roll opened a pack");
        let offset = cur.len;
        cur.stage.extend_from_slice(&header.encode());
        cur.stage.extend_from_slice(payload);
        cur.len += rec_len;
        let loc = ChunkLoc {
            pack: cur.id,
            offset,
            stored_len: header.stored_len,
            raw_len: header.raw_len,
            codec: header.codec,
            // The caller's `publish` names the base of a delta record.
            base: None,
            height: 0,
        };
        if cur.stage.len() >= STAGE_BYTES {
            let r = self.flush_stage(cur);
            poison_on_err(&mut st, r)?;
        }
        Ok(publish(loc))
    }

    /// The pack appends go to now, if one is open. Every other pack is
    /// sealed: nothing is ever appended to it again.
    pub fn current(&self) -> Option<u32> {
        self.state.lock().cur.as_ref().map(|c| c.id)
    }

    /// Makes every record appended so far durable.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.state.lock();
        check_poison(&st)?;
        let Some(cur) = st.cur.as_mut() else {
            return Ok(());
        };
        let r = self.flush_stage(cur);
        poison_on_err(&mut st, r)?;
        let (file, id) = {
            let cur = st.cur.as_ref().expect("checked above");
            (Arc::clone(&cur.file), cur.id)
        };
        // fdatasync outside the lock so other uploads keep appending.
        drop(st);
        if let Err(e) = file.sync_data() {
            let err = Error::io(self.dir.join(pack_file_name(id)), e);
            self.state.lock().poisoned = Some(err.to_string());
            return Err(err);
        }
        Ok(())
    }

    fn flush_stage(&self, cur: &mut Current) -> Result<()> {
        if cur.stage.is_empty() {
            return Ok(());
        }
        cur.file
            .write_all_at(&cur.stage, cur.stage_at)
            .map_err(|e| Error::io(self.dir.join(pack_file_name(cur.id)), e))?;
        cur.stage_at += cur.stage.len() as u64;
        cur.stage.clear();
        Ok(())
    }

    /// Seals the current pack (flush + fsync) and creates the next one.
    fn roll(&self, st: &mut State) -> Result<()> {
        if let Some(mut cur) = st.cur.take() {
            self.flush_stage(&mut cur)?;
            cur.file
                .sync_data()
                .map_err(|e| Error::io(self.dir.join(pack_file_name(cur.id)), e))?;
        }
        let id = st.next_id;
        let path = self.dir.join(pack_file_name(id));
        let file = self.io.create(&path).map_err(|e| Error::io(&path, e))?;
        let header = PackHeader {
            id,
            store_id: self.store_id,
        };
        file.write_all_at(&header.encode(), 0)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&path, e))?;
        self.io
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        st.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("pack ids", "exhausted the 32-bit pack id space"))?;
        st.cur = Some(Current {
            id,
            file,
            len: PACK_HEADER_LEN as u64,
            stage_at: PACK_HEADER_LEN as u64,
            stage: Vec::with_capacity(STAGE_BYTES),
        });
        Ok(())
    }
}

fn check_poison(st: &State) -> Result<()> {
    match &st.poisoned {
        Some(why) => Err(Error::Poisoned(why.clone())),
        None => Ok(()),
    }
}

fn poison_on_err(st: &mut State, r: Result<()>) -> Result<()> {
    if let Err(e) = &r {
        st.poisoned = Some(e.to_string());
    }
    r
}

/// fsyncs a directory so that a file created or removed in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    OsIo.sync_dir(dir).map_err(|e| Error::io(dir, e))
}
