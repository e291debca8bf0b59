//! Appending chunk records to the current pack files.
//!
//! One writer per store, shared by all upload threads behind a mutex. It
//! keeps one open pack per [`Lane`]: uploads go to one, records written a
//! second time (reverse deltas, compaction's copies) to the other, so that
//! data of different lifetimes does not share packs and a pack tends to die
//! whole (see [`Lane`]). Records are staged in a 1 MiB buffer per open pack
//! and written with positional writes. The append that fills a buffer
//! takes it, reserves its place in the file and writes it *after* letting
//! the lock go, so uploads on other threads go on appending while the
//! kernel copies the megabyte (the copy into the page cache was most of the
//! time the lock was held). `sync` makes everything appended so far durable:
//! the buffers flushed, the writes in flight below that point waited for,
//! then `fdatasync`, one at a time per pack (see [`Durable`]). When a pack
//! reaches its target size it is flushed and closed, and fsynced by the
//! append that rolled it over once the lock is let go; the next record of
//! its lane opens a new pack (file and directory fsynced before first use,
//! so a pack that an index entry names always exists after a crash).
//!
//! Any I/O failure poisons the writer: the file position of a failed write is
//! unknown, so every later append and sync fails until the store is reopened
//! (which truncates the pack to its last committed length).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

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
    /// Notified whenever a write made outside the lock ends.
    written: Condvar,
}

struct State {
    /// The open pack of each lane, indexed by `Lane as usize`.
    cur: [Option<Current>; 2],
    next_id: u32,
    poisoned: Option<String>,
    /// Emptied stage buffers, kept for reuse (at most [`SPARE_STAGES`]).
    spare: Vec<Vec<u8>>,
    /// Packs rolled over whose sealing `fdatasync` (made by the append that
    /// rolled them, with the lock let go) may not have completed, with
    /// their final length: a `sync` covers them too.
    sealing: Vec<(Arc<Durable>, u64)>,
}

/// What is known durable of one pack, and the lock every `fdatasync` of it
/// runs under. One at a time matters: the kernel reports a failed
/// write-back to one `fdatasync` of a file description only, so of two at
/// once one could return success for bytes that never reached the disk.
/// Under this lock the failure poisons the writer before the next
/// `fdatasync` of the pack can start, and that one then fails too.
struct Durable {
    id: u32,
    file: Arc<dyn PackFile>,
    /// Bytes covered by an `fdatasync` that began after they were written.
    upto: Mutex<u64>,
}

/// Stage buffers kept for reuse: one per write in flight, which is at most
/// one per upload thread in practice.
const SPARE_STAGES: usize = 4;

struct Current {
    id: u32,
    file: Arc<dyn PackFile>,
    /// Logical length: everything appended, staged or written.
    len: u64,
    /// File offset of `stage[0]`.
    stage_at: u64,
    /// What is durable of it (`sync` skips a pack with nothing beyond).
    durable: Arc<Durable>,
    stage: Vec<u8>,
    /// File offsets of the full stage buffers being written outside the
    /// lock: bytes below `stage_at` are on their way to the file, not in
    /// it, until their write leaves this set.
    in_flight: Vec<u64>,
}

impl Current {
    /// Whether every byte below `upto` has been written to the file.
    fn written_below(&self, upto: u64) -> bool {
        self.in_flight.iter().all(|&at| at >= upto)
    }
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
                durable: Arc::new(Durable {
                    id,
                    file: Arc::clone(&file),
                    // Recovery truncated and synced it to this length.
                    upto: Mutex::new(len),
                }),
                file,
                len,
                stage_at: len,
                stage: Vec::with_capacity(STAGE_BYTES),
                in_flight: Vec::new(),
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
                spare: Vec::new(),
                sealing: Vec::new(),
            }),
            written: Condvar::new(),
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
        let rec_len = (RECORD_HEADER_LEN + payload.len()) as u64;
        let l = lane as usize;
        let mut sealed = None;
        loop {
            check_poison(&st)?;
            let full = st.cur[l].as_ref().is_some_and(|c| {
                c.len > PACK_HEADER_LEN as u64 && c.len + rec_len > self.target_size
            });
            if !(st.cur[l].is_none() || full) {
                break;
            }
            // A pack is sealed only once every write into it has ended.
            if st.cur[l].as_ref().is_some_and(|c| !c.in_flight.is_empty()) {
                self.written.wait(&mut st);
                continue;
            }
            match self.roll(&mut st, lane) {
                Ok(s) => sealed = s,
                Err(e) => return Err(poison(&mut st, e)),
            }
            break;
        }
        let state = &mut *st;
        let cur = state.cur[l].as_mut().expect("roll opened a pack");
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
        let published = publish(loc);
        if cur.stage.len() < STAGE_BYTES {
            drop(st);
            self.seal(sealed)?;
            return Ok(published);
        }
        // A full stage: reserve its place, write it without the lock.
        let fresh = state
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(STAGE_BYTES));
        let full = std::mem::replace(&mut cur.stage, fresh);
        let at = cur.stage_at;
        cur.stage_at += full.len() as u64;
        cur.in_flight.push(at);
        let (file, id) = (Arc::clone(&cur.file), cur.id);
        drop(st);
        let written = self.write_outside(file, id, at, full);
        self.seal(sealed)?;
        written?;
        Ok(published)
    }

    /// Seals `lane`'s open pack if it holds a record, so that what is
    /// appended next starts a new pack (once every write into the old one
    /// has ended; its `fdatasync` is made here, with the lock let go).
    pub fn roll_lane(&self, lane: Lane) -> Result<()> {
        let mut st = self.state.lock();
        let sealed = loop {
            check_poison(&st)?;
            match st.cur[lane as usize].as_ref() {
                None => return Ok(()),
                Some(c) if c.len <= PACK_HEADER_LEN as u64 => return Ok(()),
                Some(c) if !c.in_flight.is_empty() => self.written.wait(&mut st),
                Some(_) => match self.roll(&mut st, lane) {
                    Ok(s) => break s,
                    Err(e) => return Err(poison(&mut st, e)),
                },
            }
        };
        drop(st);
        self.seal(sealed)
    }

    /// Completes the roll-over of a pack `roll` sealed: its `fdatasync`,
    /// made with the lock let go, then its removal from `sealing`.
    fn seal(&self, sealed: Option<(Arc<Durable>, u64)>) -> Result<()> {
        let Some((d, len)) = sealed else {
            return Ok(());
        };
        let r = self.sync_to(&d, len);
        self.state.lock().sealing.retain(|(s, _)| s.id != d.id);
        r
    }

    /// Makes pack `d` durable up to byte `upto` (nothing if it is already),
    /// under its lock (see [`Durable`]).
    fn sync_to(&self, d: &Durable, upto: u64) -> Result<()> {
        let mut done = d.upto.lock();
        check_poison(&self.state.lock())?;
        if *done >= upto {
            return Ok(());
        }
        if let Err(e) = d.file.sync_data() {
            let err = Error::io(self.dir.join(pack_file_name(d.id)), e);
            return Err(poison(&mut self.state.lock(), err));
        }
        *done = upto;
        Ok(())
    }

    /// Writes the stage buffer `buf` reserved at offset `at` of pack `id`
    /// (listed in its `in_flight`), with the lock let go; then takes it off
    /// the list and wakes whoever waits for writes to end. A failed write
    /// poisons the writer.
    fn write_outside(
        &self,
        file: Arc<dyn PackFile>,
        id: u32,
        at: u64,
        mut buf: Vec<u8>,
    ) -> Result<()> {
        let r = file
            .write_all_at(&buf, at)
            .map_err(|e| Error::io(self.dir.join(pack_file_name(id)), e));
        let mut st = self.state.lock();
        // The pack cannot have been sealed meanwhile: `roll` waits for this.
        if let Some(cur) = st.cur.iter_mut().flatten().find(|c| c.id == id) {
            cur.in_flight.retain(|&a| a != at);
        }
        if st.spare.len() < SPARE_STAGES {
            buf.clear();
            st.spare.push(buf);
        }
        let r = poison_on_err(&mut st, r);
        drop(st);
        self.written.notify_all();
        r
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
        let mut upto = Vec::with_capacity(2);
        let mut flushed = Ok(());
        for cur in st.cur.iter_mut().flatten() {
            flushed = self.flush_stage(cur);
            if flushed.is_err() {
                break;
            }
            upto.push((cur.id, cur.stage_at));
        }
        poison_on_err(&mut st, flushed)?;
        // Everything below those points must be in the file before the
        // fdatasync: wait for the writes in flight there (a pack rolled over
        // meanwhile is in `sealing`, written whole).
        let mut packs = Vec::with_capacity(2);
        for (id, target) in upto {
            loop {
                check_poison(&st)?;
                match st.cur.iter().flatten().find(|c| c.id == id) {
                    Some(cur) if !cur.written_below(target) => self.written.wait(&mut st),
                    Some(cur) => {
                        packs.push((Arc::clone(&cur.durable), target));
                        break;
                    }
                    None => break,
                }
            }
        }
        packs.extend(st.sealing.iter().map(|(d, len)| (Arc::clone(d), *len)));
        // fdatasync outside the lock so other uploads keep appending.
        drop(st);
        for (d, target) in packs {
            self.sync_to(&d, target)?;
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

    /// Seals `lane`'s open pack and creates the next one. The sealed pack
    /// is flushed here and listed in `sealing`; the caller makes it durable
    /// with the lock let go ([`PackWriter::seal`]). The caller has seen no
    /// write in flight into the pack.
    fn roll(&self, st: &mut State, lane: Lane) -> Result<Option<(Arc<Durable>, u64)>> {
        let mut sealed = None;
        if let Some(mut cur) = st.cur[lane as usize].take() {
            self.flush_stage(&mut cur)?;
            st.sealing.push((Arc::clone(&cur.durable), cur.stage_at));
            sealed = Some((cur.durable, cur.stage_at));
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
            durable: Arc::new(Durable {
                id,
                file: Arc::clone(&file),
                upto: Mutex::new(PACK_HEADER_LEN as u64),
            }),
            file,
            len: PACK_HEADER_LEN as u64,
            stage_at: PACK_HEADER_LEN as u64,
            stage: Vec::with_capacity(STAGE_BYTES),
            in_flight: Vec::new(),
        });
        Ok(sealed)
    }
}

fn check_poison(st: &State) -> Result<()> {
    match &st.poisoned {
        Some(why) => Err(Error::Poisoned(why.clone())),
        None => Ok(()),
    }
}

/// Poisons the writer with `e` (the first reason is kept) and returns it.
fn poison(st: &mut State, e: Error) -> Error {
    st.poisoned.get_or_insert_with(|| e.to_string());
    e
}

fn poison_on_err(st: &mut State, r: Result<()>) -> Result<()> {
    r.map_err(|e| poison(st, e))
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

    /// The OS file system, each file it creates or opens wrapped by `.0`.
    struct Wrapping<F>(F);

    impl<F: Fn(std::fs::File) -> Arc<dyn PackFile> + Send + Sync> PackIo for Wrapping<F> {
        fn create(&self, path: &Path) -> std::io::Result<Arc<dyn PackFile>> {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            Ok((self.0)(f))
        }
        fn open(&self, path: &Path) -> std::io::Result<Arc<dyn PackFile>> {
            Ok((self.0)(
                std::fs::OpenOptions::new().write(true).open(path)?,
            ))
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            OsIo.sync_dir(dir)
        }
    }

    /// Files counting their `fdatasync`s in `.1`.
    struct CountingFile(std::fs::File, Arc<AtomicUsize>);

    fn counting(syncs: &Arc<AtomicUsize>) -> Arc<dyn PackIo> {
        let syncs = Arc::clone(syncs);
        Arc::new(Wrapping(move |f| -> Arc<dyn PackFile> {
            Arc::new(CountingFile(f, Arc::clone(&syncs)))
        }))
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
        let io = counting(&syncs);
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

    /// A pack file whose writes of whole stage buffers wait at a gate, and
    /// whose `fdatasync` notes whether one ran while the gate was closed.
    #[derive(Default)]
    struct Gate {
        open: parking_lot::Mutex<bool>,
        opened: parking_lot::Condvar,
        big_writes_entered: AtomicUsize,
        early_syncs: AtomicUsize,
    }
    struct GatedFile(std::fs::File, Arc<Gate>);

    impl PackFile for GatedFile {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            if buf.len() >= STAGE_BYTES {
                self.1.big_writes_entered.fetch_add(1, Ordering::SeqCst);
                let mut open = self.1.open.lock();
                while !*open {
                    self.1.opened.wait(&mut open);
                }
            }
            std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            if !*self.1.open.lock() {
                self.1.early_syncs.fetch_add(1, Ordering::SeqCst);
            }
            self.0.sync_data()
        }
        fn sync_all(&self) -> std::io::Result<()> {
            self.0.sync_all()
        }
    }

    fn record(n: u32, len: usize) -> (RecordHeader, Vec<u8>) {
        let payload: Vec<u8> = (0..len)
            .map(|i| (i as u32 ^ n.wrapping_mul(2654435761)) as u8)
            .collect();
        let header = RecordHeader {
            codec: Codec::Raw,
            raw_len: len as u32,
            stored_len: len as u32,
            id: ChunkId::of(&payload),
        };
        (header, payload)
    }

    /// Reads the record at `loc` back from the pack file.
    fn read_back(dir: &Path, loc: &ChunkLoc) -> (RecordHeader, Vec<u8>) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(dir.join(pack_file_name(loc.pack))).unwrap();
        let mut hb = [0u8; RECORD_HEADER_LEN];
        f.read_exact_at(&mut hb, loc.offset).unwrap();
        let h = RecordHeader::decode(&hb, &"test record").unwrap();
        let mut payload = vec![0; h.stored_len as usize];
        f.read_exact_at(&mut payload, loc.offset + RECORD_HEADER_LEN as u64)
            .unwrap();
        (h, payload)
    }

    #[test]
    fn sync_waits_for_a_stage_written_outside_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Arc::new(Gate::default());
        let io = {
            let gate = Arc::clone(&gate);
            Arc::new(Wrapping(move |f| -> Arc<dyn PackFile> {
                Arc::new(GatedFile(f, Arc::clone(&gate)))
            }))
        };
        let w = Arc::new(PackWriter::open(io, dir.path(), [7; 16], 64 << 20, 0, None).unwrap());
        // Two records of 600 KB fill the 1 MiB stage: the second append
        // writes it, held at the gate.
        let (h1, p1) = record(1, 600_000);
        let (h2, p2) = record(2, 600_000);
        let l1 = w.append(Lane::New, &h1, &p1).unwrap();
        let appender = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.append(Lane::New, &h2, &p2).unwrap())
        };
        while gate.big_writes_entered.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        // Another upload appends meanwhile: the lock is free.
        let (h3, p3) = record(3, 1000);
        let l3 = w.append(Lane::New, &h3, &p3).unwrap();
        let syncer = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.sync().unwrap())
        };
        // Give the sync time to reach its fdatasync if it did not wait.
        std::thread::sleep(std::time::Duration::from_millis(50));
        *gate.open.lock() = true;
        gate.opened.notify_all();
        let l2 = appender.join().unwrap();
        syncer.join().unwrap();
        assert_eq!(
            gate.early_syncs.load(Ordering::SeqCst),
            0,
            "an fdatasync ran before the stage in flight reached the file"
        );
        for (loc, p) in [
            (l1, record(1, 600_000).1),
            (l2, record(2, 600_000).1),
            (l3, record(3, 1000).1),
        ] {
            let (h, got) = read_back(dir.path(), &loc);
            assert_eq!(h.id, ChunkId::of(&p));
            assert!(got == p, "record at {} holds other bytes", loc.offset);
        }
    }

    #[test]
    fn appends_from_many_threads_land_whole_across_stages_and_packs() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(AtomicUsize::new(0));
        let io = counting(&syncs);
        // 3 MiB packs: the 4 threads' 8 MiB roll several while stages are
        // written outside the lock.
        let w = Arc::new(PackWriter::open(io, dir.path(), [7; 16], 3 << 20, 0, None).unwrap());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    (0..64u32)
                        .map(|i| {
                            let n = t * 1000 + i;
                            let (h, p) = record(n, 20_000 + (n as usize * 7919) % 40_000);
                            (n, p.len(), w.append(Lane::New, &h, &p).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let locs: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        w.sync().unwrap();
        let packs: std::collections::BTreeSet<u32> = locs.iter().map(|(_, _, l)| l.pack).collect();
        assert!(packs.len() >= 3, "expected several packs, got {packs:?}");
        for (n, len, loc) in &locs {
            let (_, want) = record(*n, *len);
            let (h, got) = read_back(dir.path(), loc);
            assert_eq!(h.id, ChunkId::of(&want), "record {n}");
            assert!(got == want, "record {n} holds other bytes");
        }
    }

    /// Files whose first `fdatasync` fails after a pause, as a failed
    /// write-back does; later ones succeed, as the kernel reports the
    /// failure once.
    struct FailOnceFile(std::fs::File, Arc<AtomicUsize>);

    impl PackFile for FailOnceFile {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                return Err(std::io::Error::other("write-back failed"));
            }
            self.0.sync_data()
        }
        fn sync_all(&self) -> std::io::Result<()> {
            self.0.sync_all()
        }
    }

    #[test]
    fn of_two_syncs_at_once_neither_succeeds_when_the_write_back_failed() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let io = {
            let calls = Arc::clone(&calls);
            Arc::new(Wrapping(move |f| -> Arc<dyn PackFile> {
                Arc::new(FailOnceFile(f, Arc::clone(&calls)))
            }))
        };
        let w = Arc::new(PackWriter::open(io, dir.path(), [7; 16], 64 << 20, 0, None).unwrap());
        append(&w, Lane::New, 1);
        let first = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.sync())
        };
        while calls.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        // The first fdatasync is under way and will fail; this one must not
        // report the same bytes durable.
        let second = w.sync();
        let first = first.join().unwrap();
        assert!(first.is_err(), "the failed fdatasync reported success");
        assert!(
            second.is_err(),
            "a sync beside a failed one reported success: {second:?}"
        );
        assert!(
            w.sync().is_err(),
            "the writer went on after a failed fdatasync"
        );
    }
}
