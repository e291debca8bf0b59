//! Reading chunk records by position.
//!
//! **Handle cache.** Open pack files are kept in a cache of at most
//! [`MAX_OPEN_PACKS`] handles (256), the least recently used closed first,
//! so a long-running process or a `verify --read-data` over thousands of
//! packs keeps a bounded number of descriptors open (with RocksDB's bounded
//! table cache, well under the usual limit of 1,024) and never runs out of
//! them for its own writes. A handle in use by a read stays open until that
//! read ends, even if evicted meanwhile.
//!
//! **Committed packs.** The reader knows each pack's committed length (from
//! the store's open, raised by every commit *before* its index entries can
//! be seen) and reads only inside it. [`PackReader::forget`] drops a pack
//! that compaction is about to delete: later reads of it fail as if its
//! file were gone, and a handle opened before the forget (by a read that
//! raced with it) is used for that read only, never cached, so no deleted
//! pack is kept open.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::format::{
    pack_file_name, ChunkLoc, RecordHeader, MAX_CODEC_OVERHEAD, MAX_RAW_CHUNK, PACK_HEADER_LEN,
    RECORD_HEADER_LEN,
};
use crate::error::{Error, Result};
use crate::id::ChunkId;

/// Default bound of the handle cache: open pack files per store.
pub(crate) const MAX_OPEN_PACKS: usize = 256;

/// Positional reads from pack files, with a bounded cache of open handles.
pub(crate) struct PackReader {
    dir: PathBuf,
    /// The store's largest chunk (its chunking maximum): no index entry of
    /// this store can name a longer one.
    max_raw: u32,
    /// Most handles cached at once (at least 1).
    cap: usize,
    state: RwLock<State>,
    /// Stamps handle uses, for least-recently-used eviction.
    clock: AtomicU64,
    /// Runs between a pack's open and its insertion into the cache, so
    /// tests can interleave a `forget` exactly there.
    #[cfg(test)]
    after_open: parking_lot::Mutex<Option<AfterOpen>>,
}

/// See `PackReader::after_open`.
#[cfg(test)]
type AfterOpen = Box<dyn Fn(&PackReader, u32) + Send + Sync>;

struct State {
    /// Committed length of every pack the store holds.
    committed: HashMap<u32, u64>,
    /// Cached handles, at most `cap`.
    open: HashMap<u32, Handle>,
}

struct Handle {
    file: Arc<File>,
    /// `clock` at its last use.
    used: AtomicU64,
}

impl PackReader {
    /// A reader of the packs in `dir` whose committed lengths are
    /// `committed`, for a store whose chunks are at most `max_raw` bytes,
    /// caching at most `cap` open packs ([`MAX_OPEN_PACKS`] by default).
    pub fn new(dir: &Path, max_raw: u32, committed: &HashMap<u32, u64>, cap: usize) -> Self {
        PackReader {
            dir: dir.to_path_buf(),
            max_raw: max_raw.min(MAX_RAW_CHUNK),
            cap: cap.max(1),
            state: RwLock::new(State {
                committed: committed.clone(),
                open: HashMap::new(),
            }),
            clock: AtomicU64::new(0),
            #[cfg(test)]
            after_open: parking_lot::Mutex::new(None),
        }
    }

    /// Records that `pack` is committed up to at least `len` bytes. Called
    /// before the commit that makes index entries up to there visible.
    pub fn committed(&self, pack: u32, len: u64) {
        let mut st = self.state.write();
        let c = st.committed.entry(pack).or_insert(len);
        *c = (*c).max(len);
    }

    /// Drops a pack about to be deleted: closes its cached handle, and
    /// reads of it fail from now on as if its file were gone.
    pub fn forget(&self, pack: u32) {
        let mut st = self.state.write();
        st.committed.remove(&pack);
        st.open.remove(&pack);
    }

    /// Closes `pack`'s cached handle, if any: the next read opens the file
    /// again (a read-only store whose writer may have replaced it).
    pub fn close(&self, pack: u32) {
        self.state.write().open.remove(&pack);
    }

    /// The packs whose handles are cached now.
    #[cfg(test)]
    pub fn cached(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.state.read().open.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn path(&self, pack: u32) -> PathBuf {
        self.dir.join(pack_file_name(pack))
    }

    /// A handle on `pack` and its committed length.
    fn file(&self, pack: u32) -> Result<(Arc<File>, u64)> {
        let committed = {
            let st = self.state.read();
            let Some(&len) = st.committed.get(&pack) else {
                return Err(Error::io(
                    self.path(pack),
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "the store holds no such pack (deleted by compaction, or never committed)",
                    ),
                ));
            };
            if let Some(h) = st.open.get(&pack) {
                h.used.store(
                    self.clock.fetch_add(1, Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                return Ok((Arc::clone(&h.file), len));
            }
            len
        };
        let path = self.path(pack);
        let file = Arc::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
        #[cfg(test)]
        if let Some(f) = &*self.after_open.lock() {
            f(self, pack);
        }
        let mut st = self.state.write();
        if !st.committed.contains_key(&pack) {
            // Forgotten while we opened it: this read may use the handle
            // (the file is still readable), the cache must not keep it.
            return Ok((file, committed));
        }
        if let Some(h) = st.open.get(&pack) {
            // Another read cached it meanwhile.
            return Ok((Arc::clone(&h.file), committed));
        }
        if st.open.len() >= self.cap {
            let lru = st
                .open
                .iter()
                .min_by_key(|(_, h)| h.used.load(Ordering::Relaxed))
                .map(|(&p, _)| p);
            if let Some(p) = lru {
                st.open.remove(&p);
            }
        }
        let used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed));
        st.open.insert(
            pack,
            Handle {
                file: Arc::clone(&file),
                used,
            },
        );
        Ok((file, committed))
    }

    /// Reads the record at `loc` into `buf` and returns its payload, after
    /// checking that the record header agrees with `loc` and `id`.
    ///
    /// Nothing `loc` says is trusted before it is checked: its lengths
    /// against this store's chunk maximum, its extent against the pack's
    /// committed length, and the record header (read on its own first)
    /// against it. Only then is the payload read, so a hostile entry never
    /// makes the reader allocate more than the largest chunk the store holds.
    pub fn read<'b>(&self, id: &ChunkId, loc: &ChunkLoc, buf: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        let what = RecordName::of(loc);
        let max_stored = self.max_raw + MAX_CODEC_OVERHEAD;
        if loc.raw_len > self.max_raw || loc.stored_len > max_stored {
            return Err(Error::corrupt(
                what,
                format!(
                    "index entry's raw_len {} / stored_len {} exceed this store's chunk maximum of {} / {max_stored} bytes",
                    loc.raw_len, loc.stored_len, self.max_raw
                ),
            ));
        }
        let (file, committed) = self.file(loc.pack)?;
        let end = loc
            .offset
            .checked_add(RECORD_HEADER_LEN as u64 + u64::from(loc.stored_len));
        if loc.offset < PACK_HEADER_LEN as u64 || end.is_none_or(|e| e > committed) {
            return Err(Error::corrupt(
                what,
                format!(
                    "index entry's record of {} bytes at offset {} is not within the pack's committed {committed} bytes",
                    RECORD_HEADER_LEN as u64 + u64::from(loc.stored_len),
                    loc.offset
                ),
            ));
        }
        let short = |e: io::Error, n: usize| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::corrupt(what, format!("pack ends before the record's {n} bytes"))
            } else {
                Error::io(self.path(loc.pack), e)
            }
        };
        let mut hb = [0u8; RECORD_HEADER_LEN];
        file.read_exact_at(&mut hb, loc.offset)
            .map_err(|e| short(e, RECORD_HEADER_LEN))?;
        let h = RecordHeader::decode(&hb, &what)?;
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
        let n = loc.stored_len as usize;
        buf.clear();
        buf.resize(n, 0);
        file.read_exact_at(buf, loc.offset + RECORD_HEADER_LEN as u64)
            .map_err(|e| short(e, RECORD_HEADER_LEN + n))?;
        Ok(&buf[..])
    }

    /// Every record of `pack` within its committed length, in order: its
    /// offset and header (one small read per record; payloads are skipped,
    /// not read). A header that does not parse, a stored length beyond this
    /// store's maximum, or a record running past the committed length is a
    /// corruption error naming the record: the walk cannot go on past it.
    pub fn headers(&self, pack: u32) -> Result<Vec<(u64, RecordHeader)>> {
        let (file, committed) = self.file(pack)?;
        let max_stored = self.max_raw + MAX_CODEC_OVERHEAD;
        let mut out = Vec::new();
        let mut offset = PACK_HEADER_LEN as u64;
        let mut hb = [0u8; RECORD_HEADER_LEN];
        while offset < committed {
            let what = RecordName { pack, offset };
            let end = offset + RECORD_HEADER_LEN as u64;
            if end > committed {
                return Err(Error::corrupt(
                    what,
                    format!("a record header does not fit in the committed {committed} bytes"),
                ));
            }
            file.read_exact_at(&mut hb, offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    Error::corrupt(what, "pack ends before the record header")
                } else {
                    Error::io(self.path(pack), e)
                }
            })?;
            let h = RecordHeader::decode(&hb, &what)?;
            if h.raw_len > self.max_raw || h.stored_len > max_stored {
                return Err(Error::corrupt(
                    what,
                    format!(
                        "raw {} / stored {} bytes exceed this store's chunk maximum",
                        h.raw_len, h.stored_len
                    ),
                ));
            }
            let next = end + u64::from(h.stored_len);
            if next > committed {
                return Err(Error::corrupt(
                    what,
                    format!("the record runs past the committed {committed} bytes"),
                ));
            }
            out.push((offset, h));
            offset = next;
        }
        Ok(out)
    }
}

/// Displays as `pack 0000002a record at 4096`; formatted only when an
/// error names it.
#[derive(Clone, Copy)]
struct RecordName {
    pack: u32,
    offset: u64,
}

impl RecordName {
    fn of(loc: &ChunkLoc) -> Self {
        RecordName {
            pack: loc.pack,
            offset: loc.offset,
        }
    }
}

impl std::fmt::Display for RecordName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pack {:08x} record at {}", self.pack, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::process::Command;

    use super::*;
    use crate::codec::Codec;
    use crate::pack::format::PackHeader;
    use crate::pack::io::{PackFile, PackIo};
    use crate::{BlobId, Durability, Store, VerifyOptions};

    /// Writes pack `id` holding one raw record of `data`; returns the
    /// record's id and location.
    fn write_pack(dir: &Path, id: u32, data: &[u8]) -> (ChunkId, ChunkLoc) {
        let cid = ChunkId::of(data);
        let len = data.len() as u32;
        let h = RecordHeader {
            codec: Codec::Raw,
            raw_len: len,
            stored_len: len,
            id: cid,
        };
        let mut b = PackHeader {
            id,
            store_id: [7; 16],
        }
        .encode()
        .to_vec();
        b.extend_from_slice(&h.encode());
        b.extend_from_slice(data);
        std::fs::write(dir.join(pack_file_name(id)), &b).unwrap();
        let loc = ChunkLoc {
            pack: id,
            offset: PACK_HEADER_LEN as u64,
            stored_len: len,
            raw_len: len,
            codec: Codec::Raw,
            base: None,
            height: 0,
        };
        (cid, loc)
    }

    fn content(i: u32) -> Vec<u8> {
        format!("record of pack {i}").repeat(3).into_bytes()
    }

    /// `n` packs of one record each, all committed.
    fn packs(dir: &Path, n: u32) -> (Vec<(ChunkId, ChunkLoc)>, HashMap<u32, u64>) {
        let recs: Vec<_> = (0..n).map(|i| write_pack(dir, i, &content(i))).collect();
        let committed = recs.iter().map(|(_, l)| (l.pack, l.end())).collect();
        (recs, committed)
    }

    #[test]
    fn the_handle_cache_stays_within_its_cap_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let (recs, committed) = packs(dir.path(), 2000);
        let r = PackReader::new(dir.path(), 1 << 17, &committed, 8);
        let mut buf = Vec::new();
        for (i, (id, loc)) in recs.iter().enumerate() {
            let payload = r.read(id, loc, &mut buf).unwrap();
            assert_eq!(payload, content(i as u32));
            let cached = r.cached();
            assert!(cached.len() <= 8, "{} handles cached", cached.len());
        }
        // Packs 0..8 cached; using 0 again makes 1 the least recent.
        for (id, loc) in recs[..8].iter().chain(&recs[..1]) {
            r.read(id, loc, &mut buf).unwrap();
        }
        r.read(&recs[8].0, &recs[8].1, &mut buf).unwrap();
        assert_eq!(r.cached(), vec![0, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_handle_opened_before_forget_is_not_cached_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (recs, committed) = packs(dir.path(), 2);
        let r = PackReader::new(dir.path(), 1 << 17, &committed, 8);
        // Compaction forgets pack 0 between this read's open and its insert.
        *r.after_open.lock() = Some(Box::new(|r: &PackReader, pack| {
            if pack == 0 {
                r.forget(0);
            }
        }));
        let mut buf = Vec::new();
        let (id, loc) = &recs[0];
        assert_eq!(r.read(id, loc, &mut buf).unwrap(), content(0));
        assert_eq!(r.cached(), Vec::<u32>::new(), "a forgotten pack stays open");
        // Later reads of it fail as if the file were gone (the store's read
        // path then looks the chunk up again), though it is still there.
        match r.read(id, loc, &mut buf) {
            Err(Error::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::NotFound),
            other => panic!("read of a forgotten pack: {other:?}"),
        }
        assert!(dir.path().join(pack_file_name(0)).exists());
        // Other packs are cached as usual.
        r.read(&recs[1].0, &recs[1].1, &mut buf).unwrap();
        assert_eq!(r.cached(), vec![1]);
    }

    #[test]
    fn headers_walk_every_record_and_name_the_first_that_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(pack_file_name(3));
        // Pack 3: three raw records of 10, 20 and 30 bytes.
        let mut b = PackHeader {
            id: 3,
            store_id: [7; 16],
        }
        .encode()
        .to_vec();
        let mut want = Vec::new();
        for n in [10u8, 20, 30] {
            let data = vec![n; n as usize];
            let h = RecordHeader {
                codec: Codec::Raw,
                raw_len: n.into(),
                stored_len: n.into(),
                id: ChunkId::of(&data),
            };
            want.push((b.len() as u64, h.id));
            b.extend_from_slice(&h.encode());
            b.extend_from_slice(&data);
        }
        std::fs::write(&path, &b).unwrap();
        let reader = |committed: u64| {
            PackReader::new(dir.path(), 1 << 17, &HashMap::from([(3, committed)]), 8)
        };
        let got: Vec<_> = reader(b.len() as u64)
            .headers(3)
            .unwrap()
            .into_iter()
            .map(|(o, h)| (o, h.id))
            .collect();
        assert_eq!(got, want);
        // Only what is committed is walked: the first record alone.
        let first = want[1].0;
        assert_eq!(reader(first).headers(3).unwrap().len(), 1);
        // A committed length that cuts the second record's header, then one
        // that cuts its payload.
        for cut in [40, RECORD_HEADER_LEN as u64 + 5] {
            let e = reader(first + cut).headers(3).unwrap_err();
            assert!(e.is_integrity(), "{e}");
            assert!(e.to_string().contains(&format!("record at {first}")), "{e}");
        }
        // A damaged second header: named, and the walk stops there.
        let mut bad = b.clone();
        bad[first as usize + 20] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = reader(b.len() as u64).headers(3).unwrap_err();
        assert!(e.is_integrity(), "{e}");
        assert!(e.to_string().contains(&format!("record at {first}")), "{e}");
        // A stored length beyond this store's chunk maximum, with a valid
        // checksum: refused before the walk jumps by it.
        let huge = RecordHeader {
            codec: Codec::Raw,
            raw_len: 1 << 20,
            stored_len: 1 << 20,
            id: want[1].1,
        };
        bad[first as usize..first as usize + RECORD_HEADER_LEN].copy_from_slice(&huge.encode());
        std::fs::write(&path, &bad).unwrap();
        let e = reader(b.len() as u64).headers(3).unwrap_err();
        assert!(
            e.to_string().contains("exceed this store's chunk maximum"),
            "{e}"
        );
    }

    #[test]
    fn lengths_and_offsets_are_checked_before_anything_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let (recs, mut committed) = packs(dir.path(), 1);
        let (id, good) = recs[0];
        // Committed far past the file: only the record header can refute
        // an entry's lengths then.
        committed.insert(0, 1 << 30);
        let r = PackReader::new(dir.path(), 1 << 17, &committed, 8);
        let cases: Vec<(ChunkLoc, &str)> = vec![
            (
                ChunkLoc {
                    stored_len: u32::MAX,
                    ..good
                },
                "stored_len 4294967295",
            ),
            (
                ChunkLoc {
                    raw_len: (1 << 17) + 1,
                    ..good
                },
                "raw_len 131073",
            ),
            // Within the store's maximum: the header, read first, refutes it.
            (
                ChunkLoc {
                    raw_len: 1 << 17,
                    stored_len: 1 << 17,
                    ..good
                },
                "disagrees with the index",
            ),
            (
                ChunkLoc {
                    offset: u64::MAX - 10,
                    ..good
                },
                "not within the pack's committed",
            ),
            (
                ChunkLoc {
                    offset: 1 << 30,
                    ..good
                },
                "not within the pack's committed",
            ),
            (
                ChunkLoc { offset: 4, ..good },
                "not within the pack's committed",
            ),
        ];
        for (loc, want) in cases {
            let mut buf = Vec::new();
            let e = r.read(&id, &loc, &mut buf).unwrap_err();
            assert!(e.is_integrity(), "{loc:?}: {e}");
            assert!(e.to_string().contains(want), "{loc:?}: {e}");
            assert_eq!(buf.capacity(), 0, "{loc:?}: allocated before checking");
        }
        let mut buf = Vec::new();
        assert_eq!(r.read(&id, &good, &mut buf).unwrap(), content(0));
        // Past the committed length of the pack (but inside the file).
        committed.insert(0, good.end() - 1);
        let r = PackReader::new(dir.path(), 1 << 17, &committed, 8);
        let e = r.read(&id, &good, &mut buf).unwrap_err();
        assert!(e.to_string().contains("committed"), "{e}");
    }

    /// The store's pack writer without fsyncs: builds thousands of packs
    /// quickly (durability is not what the test is about).
    struct NoSync;
    struct NoSyncFile(File);

    impl PackIo for NoSync {
        fn create(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            Ok(Arc::new(NoSyncFile(f)))
        }
        fn open(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
            let f = std::fs::OpenOptions::new().write(true).open(path)?;
            Ok(Arc::new(NoSyncFile(f)))
        }
        fn sync_dir(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
    }

    impl PackFile for NoSyncFile {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            FileExt::write_all_at(&self.0, buf, offset)
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Set to the store directory in the child process of
    /// [`thousands_of_packs_read_within_a_low_descriptor_limit`].
    const CHILD_ENV: &str = "MODELVAULT_FD_LIMIT_CHILD";
    /// The child's limit on open files (its soft and hard `RLIMIT_NOFILE`).
    const CHILD_FD_LIMIT: u64 = 512;
    const PACKS: u32 = 2000;

    fn blob_content(i: u32) -> Vec<u8> {
        format!("blob {i} ").repeat(8).into_bytes()
    }

    fn read_blob(store: &Store, id: &BlobId) -> Vec<u8> {
        let mut out = Vec::new();
        store
            .blob_reader(id)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The child's side: under `ulimit -n 512`, a store with default
    /// options reads all 2,000 blobs (each in a pack of its own), verifies
    /// every chunk, then takes an upload and reads it back.
    fn child(dir: &Path) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(soft <= CHILD_FD_LIMIT, "{line}");
        let ids: Vec<BlobId> = std::fs::read_to_string(dir.with_extension("ids"))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let store = Store::open(dir).unwrap();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(read_blob(&store, id), blob_content(i as u32), "blob {i}");
        }
        let report = store.verify(VerifyOptions::new().read_data(true)).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.chunks_read >= u64::from(PACKS));
        let mut w = store.blob_writer();
        w.write_all(b"the next upload").unwrap();
        let id = w.finish().unwrap();
        assert_eq!(read_blob(&store, &id), b"the next upload");
        assert!(store.inner.chunks().cached_packs().len() <= MAX_OPEN_PACKS);
        println!("CHILD OK");
    }

    #[test]
    fn thousands_of_packs_read_within_a_low_descriptor_limit() {
        if let Some(dir) = std::env::var_os(CHILD_ENV) {
            child(Path::new(&dir));
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let mut ids = String::new();
        {
            let mut opts = Store::options().durability(Durability::Eventual).threads(1);
            // One record per pack.
            opts.pack_size = 1;
            opts.pack_io = Arc::new(NoSync);
            opts.max_open_packs = 8;
            let store = opts.open(&dir).unwrap();
            for i in 0..PACKS {
                let id = store.put_blob(&blob_content(i)[..]).unwrap();
                ids.push_str(&format!("{id}\n"));
            }
            store.sync().unwrap();
            let packs = std::fs::read_dir(dir.join("packs")).unwrap().count();
            assert!(packs >= PACKS as usize, "{packs} packs");
            // In process, with a cap of 8: every blob reads, 8 stay open.
            for (i, id) in ids.lines().enumerate() {
                let id: BlobId = id.parse().unwrap();
                assert_eq!(read_blob(&store, &id), blob_content(i as u32));
                assert!(store.inner.chunks().cached_packs().len() <= 8);
            }
        }
        std::fs::write(dir.with_extension("ids"), ids).unwrap();
        // The child is this test again, under the lower limit (set in the
        // child only: the limit is per process and tests run in parallel).
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {CHILD_FD_LIMIT} && exec \"$0\" \"$@\""))
            .arg(&exe)
            .args([
                "--exact",
                "pack::reader::tests::thousands_of_packs_read_within_a_low_descriptor_limit",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHILD OK"),
            "child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
