//! Appending chunk records to the current pack files.
//!
//! One writer per store, shared by all upload threads behind a mutex. It
//! keeps one open pack per [`Lane`]: uploads go to one, records written a
//! second time (reverse deltas, compaction's copies) to the other, so that
//! data of different lifetimes does not share packs and a pack tends to die
//! whole (see [`Lane`]). Records are staged in a 1 MiB buffer per open pack
//! and written with positional writes; `sync` makes everything appended so
//! far durable (buffers flushed, `fdatasync`). When a pack reaches its target
//! size it is flushed, fsynced and closed, and the next record of its lane
//! opens a new pack (file and directory fsynced before first use, so a pack
//! that an index entry names always exists after a crash).
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

/// Which open pack a record is appended to.
///
/// With reverse deltas, the newest version's whole records are replaced by
/// the next version's reverse pass, while the deltas that pass writes live
/// as long as their version. Mixed in one pack, every version's death left
/// packs part live, and compaction copied (and, to verify, decoded through
/// their chains) the deltas again and again; kept apart, the whole records'
/// packs die whole and are deleted without copying anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Uploads: new data.
    New = 0,
    /// Records written again: reverse deltas and compaction's copies, data
    /// that has already outlived a version.
    Old = 1,
}

pub(crate) struct PackWriter {
    io: Arc<dyn PackIo>,
    dir: PathBuf,
    store_id: [u8; 16],
    target_size: u64,
    state: Mutex<State>,
}

struct State {
    /// The open pack of each lane, indexed by `Lane as usize`.
    cur: [Option<Current>; 2],
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
    /// Bytes known durable: covered by an `fdatasync` that began after they
    /// were written. `sync` skips a pack with nothing beyond this.
    durable: u64,
    stage: Vec<u8>,
}

impl PackWriter {
    /// A writer whose lane `resume.2` appends to pack `resume.0` (already
    /// truncated to `resume.1` bytes) if given; new packs start at `next_id`.
    pub fn open(
        io: Arc<dyn PackIo>,
        dir: &Path,
        store_id: [u8; 16],
        target_size: u64,
        next_id: u32,
        resume: Option<(u32, u64, Lane)>,
    ) -> Result<Self> {
        let mut cur = [None, None];
        if let Some((id, len, lane)) = resume.filter(|r| r.1 < target_size) {
            let path = dir.join(pack_file_name(id));
            let file = io.open(&path).map_err(|e| Error::io(&path, e))?;
            cur[lane as usize] = Some(Current {
                id,
                file,
                len,
                stage_at: len,
                // Recovery truncated and synced it to this length.
                durable: len,
                stage: Vec::with_capacity(STAGE_BYTES),
            });
        }
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

    /// Appends one record to `lane`'s pack. The returned location is valid
    /// for readers only after [`PackWriter::sync`] and the index commit that
    /// follows it.
    pub fn append(&self, lane: Lane, header: &RecordHeader, payload: &[u8]) -> Result<ChunkLoc> {
        self.append_with(lane, header, payload, |loc| loc)
    }

    /// [`PackWriter::append`], calling `publish` with the new location before
    /// the writer's lock is released: whatever `publish` records about the
    /// record is in place before its pack can be sealed, so whoever sees a
    /// pack sealed ([`PackWriter::current`]) sees every record of it published.
    pub fn append_with<T>(
        &self,
        lane: Lane,
        header: &RecordHeader,
        payload: &[u8],
        publish: impl FnOnce(ChunkLoc) -> T,
    ) -> Result<T> {
        debug_assert_eq!(header.stored_len as usize, payload.len());
        let mut st = self.state.lock();
        check_poison(&st)?;
        let rec_len = (RECORD_HEADER_LEN + payload.len()) as u64;
        let l = lane as usize;
        let full = st.cur[l]
            .as_ref()
            .is_some_and(|c| c.len > PACK_HEADER_LEN as u64 && c.len + rec_len > self.target_size);
        if st.cur[l].is_none() || full {
            let r = self.roll(&mut st, lane);
            poison_on_err(&mut st, r)?;
        }
        let cur = st.cur[l].as_mut().expect("roll opened a pack");
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

    /// The packs appends go to now (one per lane at most). Every other pack
    /// is sealed: nothing is ever appended to it again.
    pub fn open_packs(&self) -> Vec<u32> {
        self.state
            .lock()
            .cur
            .iter()
            .flatten()
            .map(|c| c.id)
            .collect()
    }

    /// Makes every record appended so far durable. A lane's pack with
    /// nothing written since its last completed `fdatasync` is not synced
    /// again (an idle lane costs uploads nothing).
    pub fn sync(&self) -> Result<()> {
        let mut st = self.state.lock();
        check_poison(&st)?;
        let mut files = Vec::with_capacity(2);
        let mut flushed = Ok(());
        for cur in st.cur.iter_mut().flatten() {
            flushed = self.flush_stage(cur);
            if flushed.is_err() {
                break;
            }
            if cur.durable < cur.stage_at {
                files.push((Arc::clone(&cur.file), cur.id, cur.stage_at));
            }
        }
        poison_on_err(&mut st, flushed)?;
        // fdatasync outside the lock so other uploads keep appending.
        drop(st);
        for (file, id, upto) in files {
            if let Err(e) = file.sync_data() {
                let err = Error::io(self.dir.join(pack_file_name(id)), e);
                self.state.lock().poisoned = Some(err.to_string());
                return Err(err);
            }
            // Only now: a concurrent `sync` that saw these bytes not yet
            // durable has synced them itself rather than skip.
            let mut st = self.state.lock();
            if let Some(cur) = st.cur.iter_mut().flatten().find(|c| c.id == id) {
                cur.durable = cur.durable.max(upto);
            }
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

    /// Seals `lane`'s open pack (flush + fsync) and creates the next one.
    fn roll(&self, st: &mut State, lane: Lane) -> Result<()> {
        if let Some(mut cur) = st.cur[lane as usize].take() {
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
        st.cur[lane as usize] = Some(Current {
            id,
            file,
            len: PACK_HEADER_LEN as u64,
            stage_at: PACK_HEADER_LEN as u64,
            durable: PACK_HEADER_LEN as u64,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::codec::Codec;
    use crate::id::ChunkId;

    /// The OS file system, counting `fdatasync`s.
    struct Counting(Arc<AtomicUsize>);
    struct CountingFile(std::fs::File, Arc<AtomicUsize>);

    impl PackIo for Counting {
        fn create(&self, path: &Path) -> std::io::Result<Arc<dyn PackFile>> {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            Ok(Arc::new(CountingFile(f, Arc::clone(&self.0))))
        }
        fn open(&self, path: &Path) -> std::io::Result<Arc<dyn PackFile>> {
            let f = std::fs::OpenOptions::new().write(true).open(path)?;
            Ok(Arc::new(CountingFile(f, Arc::clone(&self.0))))
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            OsIo.sync_dir(dir)
        }
    }

    impl PackFile for CountingFile {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.sync_data()
        }
        fn sync_all(&self) -> std::io::Result<()> {
            self.0.sync_all()
        }
    }

    fn append(w: &PackWriter, lane: Lane, n: u8) {
        let payload = vec![n; 100];
        let header = RecordHeader {
            codec: Codec::Raw,
            raw_len: 100,
            stored_len: 100,
            id: ChunkId::of(&payload),
        };
        w.append(lane, &header, &payload).unwrap();
    }

    #[test]
    fn sync_skips_a_lane_with_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(AtomicUsize::new(0));
        let io = Arc::new(Counting(Arc::clone(&syncs)));
        let w = PackWriter::open(io, dir.path(), [7; 16], 1 << 20, 0, None).unwrap();
        append(&w, Lane::New, 1);
        append(&w, Lane::Old, 2);
        w.sync().unwrap();
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            2,
            "both lanes had new records"
        );
        append(&w, Lane::New, 3);
        w.sync().unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 3, "only the upload lane had");
        w.sync().unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 3, "nothing new");
        append(&w, Lane::Old, 4);
        w.sync().unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 4);
    }
}
