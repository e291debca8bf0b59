//! The RocksDB instance: column families, tuning, atomic batches.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};

/// The column families, one per record kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cf {
    /// Store-wide singletons: format version, store id, counters.
    Meta,
    /// Chunk id → location.
    Chunks,
    /// Pack id → committed length.
    Packs,
    /// Blob id → size, chunk count, manifest id.
    Blobs,
    /// (manifest id, start offset) → chunk list segment.
    Manifests,
    /// Model id → model record.
    Models,
    /// (model id, version) → files.
    Versions,
    /// Experiment id → experiment record.
    Experiments,
    /// (experiment id, sequence) → console line.
    Console,
    /// (experiment id, metric, variant, iteration) → value.
    Scalars,
    /// (experiment id, name, revision) → artifact.
    Artifacts,
    /// Secondary indexes, one tag byte per index (see `meta::registry_index`).
    Index,
    /// Reference counts: chunk ← manifest segment entries, blob ← registry
    /// records, blob ← caller holds (see `gc`).
    Refs,
    /// Garbage-collection work: dead manifests, chunks whose count fell to 0.
    Gc,
    /// Upload sessions: manifest id → session record, until the upload's
    /// blob is committed or the session expires.
    Uploads,
    /// Object-namespace buckets: name → bucket record.
    Buckets,
    /// Objects: (bucket, key) → object record (blob, size, etag, metadata).
    Objects,
    /// Multipart uploads of objects, their parts, and a by-bucket index.
    Multipart,
}

impl Cf {
    pub const ALL: [Cf; 18] = [
        Cf::Meta,
        Cf::Chunks,
        Cf::Packs,
        Cf::Blobs,
        Cf::Manifests,
        Cf::Models,
        Cf::Versions,
        Cf::Experiments,
        Cf::Console,
        Cf::Scalars,
        Cf::Artifacts,
        Cf::Index,
        Cf::Refs,
        Cf::Gc,
        Cf::Uploads,
        Cf::Buckets,
        Cf::Objects,
        Cf::Multipart,
    ];

    /// Whether the column family's records are written per chunk or per
    /// blob segment (or are store-wide singletons and upload bookkeeping), so
    /// that its size grows with the bytes stored, rather than per registry
    /// entity.
    pub fn grows_with_blobs(self) -> bool {
        matches!(
            self,
            Cf::Meta
                | Cf::Chunks
                | Cf::Packs
                | Cf::Blobs
                | Cf::Manifests
                | Cf::Refs
                | Cf::Gc
                | Cf::Uploads
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Chunks => "chunks",
            Cf::Packs => "packs",
            Cf::Blobs => "blobs",
            Cf::Manifests => "manifests",
            Cf::Models => "models",
            Cf::Versions => "versions",
            Cf::Experiments => "experiments",
            Cf::Console => "console",
            Cf::Scalars => "scalars",
            Cf::Artifacts => "artifacts",
            Cf::Index => "index",
            Cf::Refs => "refs",
            Cf::Gc => "gc",
            Cf::Uploads => "uploads",
            Cf::Buckets => "buckets",
            Cf::Objects => "objects",
            Cf::Multipart => "multipart",
        }
    }
}

/// The block cache of the column families whose size grows with the bytes
/// stored ([`Cf::grows_with_blobs`]). Small, so that RocksDB's memory while
/// storing or restoring does not grow with the blob: together with their
/// memtables it is in use once about 1 GiB of blobs is indexed. A block that
/// is not cached is read from the SST file, normally in the OS page cache
/// (one `pread` per lookup, small next to reading and hashing a chunk). See
/// docs/ARCHITECTURE.md, "Memory bound".
const BLOB_CACHE_BYTES: usize = 2 << 20;

/// The write buffer (memtable) of each of those column families: flushed at
/// this size; at most two per column family (one being flushed, RocksDB's
/// `max_write_buffer_number`), so at most 4 MiB for all eight.
const BLOB_WRITE_BUFFER_BYTES: usize = 256 << 10;

/// A memtable's allocation unit for those column families (RocksDB's default
/// would be 1/8 of the write buffer): every column family written since its
/// last flush holds at least one block.
const BLOB_ARENA_BLOCK_BYTES: usize = 32 << 10;

/// The block cache of the registry's column families, whose size depends on
/// the number of experiments, models and versions, not on blob sizes.
const REGISTRY_CACHE_BYTES: usize = 64 << 20;

/// The write buffer of each registry column family. Large: registry queries
/// scan and look up many small records, several times faster from a few
/// large memtables and SST files than from many small ones (the metadata
/// query of `examples/registry_bench`, p50: 0.4 ms, against 1.4 to 2.0 ms
/// with one 2 MiB memtable budget for all column families).
const REGISTRY_WRITE_BUFFER_BYTES: usize = 32 << 20;

/// Most table (SST) files RocksDB keeps open at once.
const MAX_OPEN_TABLE_FILES: i32 = 512;

/// The metadata database.
pub(crate) struct Meta {
    db: DB,
    /// Set when this is a read-only secondary instance beside the store's
    /// writer (see [`Meta::open_secondary`]).
    secondary: Option<Secondary>,
    /// Test-only: where the state a power cut would leave is recorded
    /// (see [`power_cut`]).
    #[cfg(test)]
    durable: Option<power_cut::Recorder>,
    /// Entries read per column family (`Cf as usize`), in tests only: see
    /// [`Meta::reads`].
    #[cfg(test)]
    reads: [std::sync::atomic::AtomicU64; Cf::ALL.len()],
}

/// A set of writes applied atomically by [`Meta::commit`].
#[derive(Default)]
pub(crate) struct Batch {
    /// The puts and deletes, in order, packed into blocks of bytes: a
    /// version commit writes a few entries per file, and a vector per key
    /// and per value (56 bytes of bookkeeping and two allocations a write)
    /// cost far more than their bytes, while one growing buffer would
    /// double its size at times. Blocks grow from 4 KiB to [`OPS_BLOCK`]
    /// (a larger write gets a block of its own) and a write never spans two.
    /// Per write: the column family's index in [`Cf::ALL`], with [`DELETE`]
    /// set for a delete (1 byte); the key's length (LEB128) and the key; for
    /// a put, the value's length (LEB128) and the value.
    ops: Vec<Vec<u8>>,
    ranges: Vec<(Cf, Vec<u8>, Vec<u8>)>,
    /// Reference-count changes (`refs` keys), resolved into puts by the
    /// store's commit under its lock: see `gc::refs`.
    deltas: Vec<(Vec<u8>, i64)>,
}

/// Flag of a delete in a [`Batch`] write's first byte.
const DELETE: u8 = 0x80;
/// The largest block of a [`Batch`]'s writes (but for a single larger write).
const OPS_BLOCK: usize = 64 << 10;

// `Cf as u8` is a column family's index in `Cf::ALL` (the batch relies on it).
const _: () = {
    let mut i = 0;
    while i < Cf::ALL.len() {
        assert!(Cf::ALL[i] as usize == i);
        i += 1;
    }
};

fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push(n as u8 | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads what [`put_len`] wrote at `*at` and the bytes it counts. Only
/// ever reads a batch's own writes.
fn take_bytes<'a>(buf: &'a [u8], at: &mut usize) -> &'a [u8] {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = buf[*at];
        *at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    let bytes = &buf[*at..*at + n];
    *at += n;
    bytes
}

impl Batch {
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.push(cf, &key.into(), Some(&value.into()));
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.push(cf, &key.into(), None);
    }

    fn push(&mut self, cf: Cf, key: &[u8], value: Option<&[u8]>) {
        // At most: the first byte, two lengths of up to 10 bytes, the bytes.
        let need = 21 + key.len() + value.map_or(0, <[u8]>::len);
        if self
            .ops
            .last()
            .is_none_or(|b| b.capacity() - b.len() < need)
        {
            let block = (4096 << self.ops.len().min(4)).min(OPS_BLOCK).max(need);
            self.ops.push(Vec::with_capacity(block));
        }
        let b = self.ops.last_mut().expect("a block was just made");
        b.push(cf as u8 | if value.is_none() { DELETE } else { 0 });
        put_len(b, key.len());
        b.extend_from_slice(key);
        if let Some(v) = value {
            put_len(b, v.len());
            b.extend_from_slice(v);
        }
    }

    /// The puts (with a value) and deletes, in the order they were added.
    fn writes(&self) -> impl Iterator<Item = (Cf, &[u8], Option<&[u8]>)> + '_ {
        self.ops.iter().flat_map(|b| {
            let mut at = 0;
            std::iter::from_fn(move || {
                let first = *b.get(at)?;
                at += 1;
                let cf = Cf::ALL[usize::from(first & !DELETE)];
                let key = take_bytes(b, &mut at);
                let value = (first & DELETE == 0).then(|| take_bytes(b, &mut at));
                Some((cf, key, value))
            })
        })
    }

    /// Appends all of `other`'s writes.
    pub fn extend(&mut self, other: Batch) {
        self.ops.extend(other.ops);
        self.ranges.extend(other.ranges);
        self.deltas.extend(other.deltas);
    }

    /// Adds `delta` to the reference count under `key` (a `refs` key).
    pub(in crate::meta) fn count(&mut self, key: impl Into<Vec<u8>>, delta: i64) {
        self.deltas.push((key.into(), delta));
    }

    /// Takes the reference-count changes out, for resolution.
    pub fn take_deltas(&mut self) -> Vec<(Vec<u8>, i64)> {
        std::mem::take(&mut self.deltas)
    }

    /// Deletes keys in `[from, to)`.
    pub fn delete_range(&mut self, cf: Cf, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ranges.push((cf, from.into(), to.into()));
    }
}

/// A key and its value, as read from RocksDB.
pub(crate) type Pair = (Box<[u8]>, Box<[u8]>);

impl Meta {
    /// Opens the database in `dir`, creating it only if `create` (a store
    /// whose metadata exists must never be silently replaced by an empty
    /// database, e.g. when its `CURRENT` file is lost).
    pub fn open(dir: &Path, create: bool) -> Result<Self> {
        let (db_opts, cfs) = options(create);
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs)?;
        Ok(Meta {
            db,
            secondary: None,
            #[cfg(test)]
            durable: power_cut::recorder_for(dir),
            #[cfg(test)]
            reads: Default::default(),
        })
    }

    /// Opens the database in `dir` read-only, as a RocksDB secondary
    /// instance beside the primary that a writer process may hold: nothing
    /// is written in `dir`; what the secondary keeps of its own (its info
    /// log) goes into a private temporary directory that lives as long as
    /// the handle. It sees the database as of its last catch-up with the
    /// primary: at the open, on [`Meta::catch_up`], and by itself on reads
    /// at most every [`CATCH_UP_INTERVAL`]. Every write is refused with
    /// [`Error::ReadOnly`].
    pub fn open_secondary(dir: &Path) -> Result<Self> {
        if !dir.join("CURRENT").is_file() {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                reason: "no metadata database (CURRENT file missing)".into(),
            });
        }
        let tmp = tempfile::Builder::new()
            .prefix("modelvault-reader-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let (mut db_opts, cfs) = options(false);
        db_opts.create_missing_column_families(false);
        // A secondary must keep every table file open: the primary deletes
        // files its compactions made obsolete, and an open descriptor still
        // reads them (RocksDB's advice for secondaries).
        db_opts.set_max_open_files(-1);
        let db = DB::open_cf_descriptors_as_secondary(&db_opts, dir, tmp.path(), cfs)?;
        db.try_catch_up_with_primary()?;
        Ok(Meta {
            db,
            secondary: Some(Secondary {
                _dir: tmp,
                epoch: Instant::now(),
                last_ms: AtomicU64::new(0),
                generation: AtomicU64::new(0),
                view: RwLock::new(()),
                #[cfg(test)]
                auto: std::sync::atomic::AtomicBool::new(true),
            }),
            #[cfg(test)]
            durable: None,
            #[cfg(test)]
            reads: Default::default(),
        })
    }

    /// True for a read-only instance ([`Meta::open_secondary`]).
    pub fn is_read_only(&self) -> bool {
        self.secondary.is_some()
    }

    /// Catches a read-only instance up with the primary now (waiting for
    /// snapshots taken on this handle to end); nothing for a primary.
    pub fn catch_up(&self) -> Result<()> {
        if let Some(s) = &self.secondary {
            let _view = s.view.write();
            self.catch_up_locked(s)?;
        }
        Ok(())
    }

    /// [`Meta::catch_up`] for a read that found its view stale, unless a
    /// snapshot pins the view: one this thread holds (then at once), or one
    /// another thread holds for longer than [`CATCH_UP_WAIT`] (a `verify`).
    /// Then nothing, and false. A catch-up another thread is making (the
    /// blob reader's prefetch meeting the same gone pack) is waited for,
    /// then this one follows, so the view is at least as new as the writer
    /// was when this call began.
    pub fn try_catch_up(&self) -> Result<bool> {
        let Some(s) = &self.secondary else {
            return Ok(false);
        };
        if PinnedView::held_here(&s.view) {
            return Ok(false);
        }
        let Some(_view) = s.view.try_write_for(CATCH_UP_WAIT) else {
            return Ok(false);
        };
        self.catch_up_locked(s)?;
        Ok(true)
    }

    fn catch_up_locked(&self, s: &Secondary) -> Result<()> {
        s.last_ms
            .store(s.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.db.try_catch_up_with_primary()?;
        s.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// How many times a read-only instance has caught up since its open
    /// (always 0 for a primary): layers above refresh what they cache from
    /// the database when it changes.
    pub fn generation(&self) -> u64 {
        self.secondary
            .as_ref()
            .map_or(0, |s| s.generation.load(Ordering::Acquire))
    }

    /// On a read-only instance, catches up if the last catch-up is
    /// [`CATCH_UP_INTERVAL`] old or older (an error is logged, not
    /// returned: the read goes on with the view it has).
    #[inline]
    fn fresh(&self) {
        let Some(s) = &self.secondary else {
            return;
        };
        #[cfg(test)]
        if !s.auto.load(Ordering::Relaxed) {
            return;
        }
        let now = s.epoch.elapsed().as_millis() as u64;
        if now.saturating_sub(s.last_ms.load(Ordering::Relaxed))
            < CATCH_UP_INTERVAL.as_millis() as u64
        {
            return;
        }
        // Never waits: a catch-up in progress or a snapshot in the way
        // leaves the view as it is for this read.
        let Some(_view) = s.view.try_write() else {
            return;
        };
        if let Err(e) = self.catch_up_locked(s) {
            tracing::warn!(error = %e, "read-only store: catching up with the writer failed");
        }
    }

    /// Stops (or resumes) the catch-ups a read-only instance makes by itself
    /// on reads, so a test can hold a stale view for as long as it needs.
    /// Explicit catch-ups still happen.
    #[cfg(test)]
    pub(crate) fn set_auto_catch_up(&self, on: bool) {
        if let Some(s) = &self.secondary {
            s.auto.store(on, Ordering::Relaxed);
        }
    }

    /// Refuses a write on a read-only instance.
    fn writable(&self, what: &'static str) -> Result<()> {
        match self.secondary {
            Some(_) => Err(Error::ReadOnly { what }),
            None => Ok(()),
        }
    }
}

/// The longest a read-only store's reads go on with a view of the metadata
/// without catching up with the writer: a reader sees a commit at most this
/// long (plus the catch-up itself) after it was made, or at once after
/// `Store::catch_up`.
pub(crate) const CATCH_UP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// How long [`Meta::try_catch_up`] waits for snapshots of other threads
/// (and catch-ups in progress) to let the view move.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

thread_local! {
    /// The views (by the address of their lock) this thread's live
    /// snapshots pin: a catch-up on this thread would wait for itself.
    static PINNED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A snapshot's hold on a read-only view (shared, against catch-ups),
/// known to its thread (see [`Meta::try_catch_up`]). Not `Send`: the
/// guard inside is not either.
struct PinnedView<'a> {
    _guard: parking_lot::RwLockReadGuard<'a, ()>,
    at: usize,
}

impl<'a> PinnedView<'a> {
    fn new(view: &'a RwLock<()>) -> Self {
        let at = view as *const RwLock<()> as usize;
        let guard = view.read();
        PINNED.with(|p| p.borrow_mut().push(at));
        PinnedView { _guard: guard, at }
    }

    fn held_here(view: &RwLock<()>) -> bool {
        let at = view as *const RwLock<()> as usize;
        PINNED.with(|p| p.borrow().contains(&at))
    }
}

impl Drop for PinnedView<'_> {
    fn drop(&mut self) {
        PINNED.with(|p| {
            let mut p = p.borrow_mut();
            if let Some(i) = p.iter().rposition(|&a| a == self.at) {
                p.swap_remove(i);
            }
        });
    }
}

/// What a read-only (secondary) [`Meta`] keeps.
struct Secondary {
    /// The secondary instance's own directory (RocksDB's info log), outside
    /// the store; removed when the handle is dropped.
    _dir: tempfile::TempDir,
    epoch: Instant,
    /// When the last catch-up began, in ms since `epoch`.
    last_ms: AtomicU64,
    /// Catch-ups so far (see [`Meta::generation`]).
    generation: AtomicU64,
    /// Held shared by each [`Snapshot`], exclusively by a catch-up: a
    /// secondary has no RocksDB snapshots, but its view moves only when it
    /// catches up, so holding catch-ups off gives the same point in time.
    view: RwLock<()>,
    /// Whether reads catch up by themselves (tests turn it off).
    #[cfg(test)]
    auto: std::sync::atomic::AtomicBool,
}

/// The database and column family options of [`Meta::open`] (and of the
/// read-only open): one block cache for the column families that grow with
/// the bytes stored, one for the registry's.
fn options(create: bool) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let blob_cache = Cache::new_lru_cache(BLOB_CACHE_BYTES);
    let registry_cache = Cache::new_lru_cache(REGISTRY_CACHE_BYTES);
    let mut db_opts = Options::default();
    db_opts.create_if_missing(create);
    // A torn last record (a crash mid-write of an unsynced commit) is
    // dropped; damage anywhere else in the WAL, or a WAL the MANIFEST
    // knows of that is missing, fails the open instead of silently
    // losing acknowledged commits.
    db_opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    db_opts.set_track_and_verify_wals_in_manifest(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_background_jobs(2);
    db_opts.set_keep_log_file_num(4);
    db_opts.set_log_level(rocksdb::LogLevel::Warn);
    db_opts.set_max_total_wal_size(64 << 20);
    // Opening the table files of 15 column families with up to 16
    // threads each spawned some 240 threads per open (25 ms of a
    // 30 ms `modelvault versions`); the files are few and small.
    db_opts.set_max_file_opening_threads(1);
    // RocksDB keeps every table file open by default: bounded, so that
    // with the pack reader's handle cache (`pack::MAX_OPEN_PACKS`) a
    // store stays well under the usual limit of 1,024 descriptors.
    db_opts.set_max_open_files(MAX_OPEN_TABLE_FILES);
    let cfs = Cf::ALL.iter().map(|&cf| {
        let mut o = Options::default();
        let mut t = BlockBasedOptions::default();
        let blobs = cf.grows_with_blobs();
        t.set_block_cache(if blobs { &blob_cache } else { &registry_cache });
        t.set_bloom_filter(10.0, false);
        t.set_cache_index_and_filter_blocks(true);
        t.set_pin_l0_filter_and_index_blocks_in_cache(true);
        o.set_block_based_table_factory(&t);
        // Chunk ids and locations are random bytes: compression cannot help.
        o.set_compression_type(if cf == Cf::Chunks {
            DBCompressionType::None
        } else {
            DBCompressionType::Lz4
        });
        if blobs {
            o.set_write_buffer_size(BLOB_WRITE_BUFFER_BYTES);
            o.set_arena_block_size(BLOB_ARENA_BLOCK_BYTES);
        } else {
            o.set_write_buffer_size(REGISTRY_WRITE_BUFFER_BYTES);
        }
        ColumnFamilyDescriptor::new(cf.name(), o)
    });
    (db_opts, cfs.collect())
}

impl Meta {
    /// Test-only: records the database as it is now as what a power cut
    /// would leave (called at each point where everything written so far
    /// is durable).
    #[cfg(test)]
    fn durable_point(&self) -> Result<()> {
        match &self.durable {
            Some(r) => r.record(&self.db),
            None => Ok(()),
        }
    }

    /// Entries read from `cf` so far: one per point lookup (found or not),
    /// one per key of a batched lookup, one per entry a scan visits. Counted
    /// in test builds only (so tests can tell an index lookup from a scan);
    /// nothing is counted, at no cost, otherwise.
    #[cfg(test)]
    pub fn reads(&self, cf: Cf) -> u64 {
        self.reads[cf as usize].load(std::sync::atomic::Ordering::Relaxed)
    }

    #[inline]
    fn note_reads(&self, cf: Cf, n: usize) {
        #[cfg(test)]
        self.reads[cf as usize].fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(test))]
        let _ = (cf, n);
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.fresh();
        self.note_reads(cf, 1);
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Calls `f` with the value under `key`, if any, without copying it.
    pub fn with<T>(
        &self,
        cf: Cf,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        self.fresh();
        self.note_reads(cf, 1);
        match self.db.get_pinned_cf(self.cf(cf), key)? {
            Some(v) => f(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Applies `batch` atomically; with `sync`, the WAL is fsynced first.
    pub fn commit(&self, batch: Batch, sync: bool) -> Result<()> {
        self.writable("metadata commit")?;
        if !batch.deltas.is_empty() {
            return Err(Error::corrupt(
                "commit",
                "reference-count changes were not resolved (internal error)",
            ));
        }
        let mut wb = WriteBatch::default();
        for (cf, from, to) in &batch.ranges {
            wb.delete_range_cf(self.cf(*cf), from, to);
        }
        for (cf, k, v) in batch.writes() {
            match v {
                Some(v) => wb.put_cf(self.cf(cf), k, v),
                None => wb.delete_cf(self.cf(cf), k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo)?;
        #[cfg(test)]
        if sync {
            self.durable_point()?;
        }
        Ok(())
    }

    /// Key-value pairs with `prefix`, in key order, from `start` (inclusive,
    /// must itself start with `prefix`) on.
    pub fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
    ) -> impl Iterator<Item = Result<Pair>> + '_ {
        self.fresh();
        let prefix = prefix.to_vec();
        self.db
            .iterator_cf(self.cf(cf), IteratorMode::From(start, Direction::Forward))
            .map(|r| r.map_err(Error::from))
            .take_while(move |r| match r {
                Ok((k, _)) => k.starts_with(&prefix),
                Err(_) => true,
            })
            .inspect(move |_| self.note_reads(cf, 1))
    }

    /// Calls `f` with each key under `prefix` from `start` on, without
    /// copying, until `f` returns false.
    pub fn scan_keys(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        mut f: impl FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.fresh();
        let mut it = self.db.raw_iterator_cf(self.cf(cf));
        it.seek(start);
        while let Some(k) = it.key() {
            if !k.starts_with(prefix) {
                return Ok(());
            }
            self.note_reads(cf, 1);
            if !f(k)? {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The values of `keys` (sorted ascending), in one batched lookup.
    pub fn get_sorted(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.fresh();
        self.note_reads(cf, keys.len());
        self.db
            .batched_multi_get_cf(self.cf(cf), keys, true)
            .into_iter()
            .map(|r| Ok(r?.map(|v| v.to_vec())))
            .collect()
    }

    /// Which of `keys` (sorted ascending) exist.
    pub fn exist_sorted(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<bool>> {
        self.fresh();
        self.note_reads(cf, keys.len());
        self.db
            .batched_multi_get_cf(self.cf(cf), keys, true)
            .into_iter()
            .map(|r| Ok(r?.is_some()))
            .collect()
    }

    /// The last pair whose key is ≤ `key` and starts with `prefix`.
    pub fn floor(&self, cf: Cf, prefix: &[u8], key: &[u8]) -> Result<Option<Pair>> {
        self.fresh();
        self.note_reads(cf, 1);
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.cf(cf), ReadOptions::default());
        it.seek_for_prev(key);
        if !it.valid() {
            it.status()?;
            return Ok(None);
        }
        match (it.key(), it.value()) {
            (Some(k), Some(v)) if k.starts_with(prefix) => Ok(Some((k.into(), v.into()))),
            _ => Ok(None),
        }
    }

    /// Flushes every column family's memtable, so the write-ahead log they
    /// share can be deleted, and compacts the column families that grow
    /// with blob data, where `gc` leaves its deletions behind as tombstones:
    /// afterwards the metadata holds what the live entries need.
    pub fn compact(&self) -> Result<()> {
        self.writable("metadata compaction")?;
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf))?;
        }
        for &cf in Cf::ALL.iter().filter(|cf| cf.grows_with_blobs()) {
            self.db
                .compact_range_cf(self.cf(cf), None::<&[u8]>, None::<&[u8]>);
        }
        // The flush made the write-ahead log obsolete and RocksDB deleted it.
        // A read-only reader (a secondary instance) that had not replayed
        // its last records keeps, in each column family's memtable, values
        // older than the flushed tables, and reads them (they shadow the
        // tables) until a later record of that column family, in a newer
        // log, makes it seal and drop that memtable. This batch is such a
        // record for every column family: a delete of the empty key, which
        // no record uses.
        let mut wb = WriteBatch::default();
        for cf in Cf::ALL {
            wb.delete_cf(self.cf(cf), b"");
        }
        self.db.write_opt(wb, &WriteOptions::default())?;
        Ok(())
    }

    /// Forces the WAL to disk (makes earlier unsynced commits durable).
    pub fn sync_wal(&self) -> Result<()> {
        self.writable("metadata sync")?;
        self.db.flush_wal(true)?;
        #[cfg(test)]
        self.durable_point()?;
        Ok(())
    }

    /// The last key of a column family.
    pub fn last_key(&self, cf: Cf) -> Result<Option<Box<[u8]>>> {
        self.fresh();
        let mut it = self.db.raw_iterator_cf(self.cf(cf));
        it.seek_to_last();
        if !it.valid() {
            it.status()?;
            return Ok(None);
        }
        Ok(it.key().map(Into::into))
    }
}

/// Test-only model of a power cut under [`crate::Durability::Eventual`]:
/// commits written without a WAL fsync are lost, so after a power cut the
/// database is what it was at the last point where everything written was
/// durable (a commit with `sync`, or [`Meta::sync_wal`]). A test asks for
/// a metadata directory to be watched before opening it; from then on each
/// such point records a RocksDB checkpoint of the database (flushed to
/// tables, hard-linked) in `<copies>/last`. To cut the power, the test drops
/// the store and puts that copy in place of the metadata directory, keeping
/// the pack files as they are: pack data is fsynced by its own protocol,
/// and file deletions and truncations have happened.
///
/// This is the least a real power cut can leave (RocksDB may have made
/// more durable meanwhile, e.g. by flushing a full memtable), so code
/// that is safe under it is safe under any. With several threads writing
/// at once, a checkpoint may include commits made after the durable point
/// that triggered it: the tests using it write from one thread.
#[cfg(test)]
pub(crate) mod power_cut {
    use std::path::{Path, PathBuf};

    use parking_lot::Mutex;

    use crate::error::{Error, Result};

    /// Watched metadata directories and where their copies go.
    static WATCHED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

    /// From the next open of the database in `meta_dir` on, records its
    /// durable state in `copies` (see the module docs).
    pub(crate) fn watch(meta_dir: &Path, copies: &Path) {
        std::fs::create_dir_all(copies).unwrap();
        WATCHED
            .lock()
            .push((meta_dir.to_path_buf(), copies.to_path_buf()));
    }

    /// The last durable state recorded in `copies`.
    pub(crate) fn last_durable(copies: &Path) -> PathBuf {
        copies.join("last")
    }

    /// Cuts the power: replaces `meta_dir` (whose store must be closed)
    /// with the last durable state recorded in `copies`.
    pub(crate) fn cut(meta_dir: &Path, copies: &Path) {
        let last = last_durable(copies);
        assert!(last.exists(), "no durable state was recorded in {copies:?}");
        std::fs::remove_dir_all(meta_dir).unwrap();
        let tmp = copies.join("restoring");
        copy_dir(&last, &tmp);
        std::fs::rename(&tmp, meta_dir).unwrap();
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    pub(crate) fn recorder_for(meta_dir: &Path) -> Option<Recorder> {
        WATCHED
            .lock()
            .iter()
            .find(|(m, _)| m == meta_dir)
            .map(|(_, copies)| Recorder {
                copies: copies.clone(),
                busy: Mutex::new(()),
            })
    }

    pub(crate) struct Recorder {
        copies: PathBuf,
        busy: Mutex<()>,
    }

    impl Recorder {
        /// Replaces the recorded state with a checkpoint of `db` now.
        pub(crate) fn record(&self, db: &rocksdb::DB) -> Result<()> {
            let _one = self.busy.lock();
            let next = self.copies.join("next");
            let last = last_durable(&self.copies);
            let io = |p: &Path, e| Error::io(p, e);
            if next.exists() {
                std::fs::remove_dir_all(&next).map_err(|e| io(&next, e))?;
            }
            rocksdb::checkpoint::Checkpoint::new(db)?.create_checkpoint(&next)?;
            if last.exists() {
                std::fs::remove_dir_all(&last).map_err(|e| io(&last, e))?;
            }
            std::fs::rename(&next, &last).map_err(|e| io(&last, e))
        }
    }
}

/// A consistent point-in-time view of the database (a RocksDB snapshot):
/// reads through it see every batch committed before it was taken and none
/// after, so a long scan (`verify`) needs no lock against writers. Its
/// scans do not fill the block cache, which they would otherwise flush of
/// what writers and readers use.
///
/// A read-only (secondary) instance has no RocksDB snapshots; its view
/// moves only when it catches up, so its snapshot reads the database
/// itself and holds catch-ups off while it lives.
pub(crate) struct Snapshot<'a> {
    meta: &'a Meta,
    snap: Option<rocksdb::Snapshot<'a>>,
    _view: Option<PinnedView<'a>>,
}

impl Meta {
    /// A snapshot of the database as of now.
    pub fn snapshot(&self) -> Snapshot<'_> {
        self.fresh();
        match &self.secondary {
            Some(s) => Snapshot {
                meta: self,
                snap: None,
                _view: Some(PinnedView::new(&s.view)),
            },
            None => Snapshot {
                meta: self,
                snap: Some(self.db.snapshot()),
                _view: None,
            },
        }
    }
}

impl Snapshot<'_> {
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.meta.cf(cf);
        Ok(match &self.snap {
            Some(s) => s.get_cf(cf, key)?,
            None => self.meta.db.get_cf(cf, key)?,
        })
    }

    /// [`Meta::scan_prefix`], as of the snapshot.
    pub fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
    ) -> impl Iterator<Item = Result<Pair>> + '_ {
        let prefix = prefix.to_vec();
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        let mode = IteratorMode::From(start, Direction::Forward);
        match &self.snap {
            Some(s) => s.iterator_cf_opt(self.meta.cf(cf), ro, mode),
            None => self.meta.db.iterator_cf_opt(self.meta.cf(cf), ro, mode),
        }
        .map(|r| r.map_err(Error::from))
        .take_while(move |r| match r {
            Ok((k, _)) => k.starts_with(&prefix),
            Err(_) => true,
        })
    }
}

/// Prefix scans of the live database or of a snapshot, for code that runs
/// on either (index verification).
pub(crate) trait Scan {
    /// Key-value pairs with `prefix`, in key order, from `start` on.
    fn scan_prefix<'s>(
        &'s self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + 's>;
}

impl Scan for Meta {
    fn scan_prefix<'s>(
        &'s self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + 's> {
        Box::new(Meta::scan_prefix(self, cf, prefix, start))
    }
}

impl Scan for Snapshot<'_> {
    fn scan_prefix<'s>(
        &'s self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + 's> {
        Box::new(Snapshot::scan_prefix(self, cf, prefix, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_its_writes_in_order() {
        let mut b = Batch::default();
        let mut want: Vec<(Cf, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for i in 0..5_000usize {
            let cf = Cf::ALL[i % Cf::ALL.len()];
            // Empty, short and long keys and values: lengths of one, two and
            // three LEB128 bytes, a value larger than a block.
            let key = vec![i as u8; [0, 5, 200, 20_000][i % 4]];
            let value = match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(vec![7u8; 127]),
                3 => Some(vec![9u8; 128]),
                _ if i % 1000 == 4 => Some(vec![3u8; 100_000]),
                _ => Some(i.to_le_bytes().to_vec()),
            };
            match &value {
                Some(v) => b.put(cf, key.clone(), v.clone()),
                None => b.delete(cf, key.clone()),
            }
            want.push((cf, key, value));
        }
        let mut other = Batch::default();
        other.put(Cf::Gc, b"last".to_vec(), b"!".to_vec());
        b.extend(other);
        want.push((Cf::Gc, b"last".to_vec(), Some(b"!".to_vec())));
        let got: Vec<_> = b
            .writes()
            .map(|(cf, k, v)| (cf, k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        assert!(got == want, "{} writes back of {}", got.len(), want.len());
    }

    /// The sum of a per-column-family integer property.
    fn total(meta: &Meta, property: &str) -> u64 {
        Cf::ALL
            .iter()
            .map(|&cf| {
                meta.db
                    .property_int_value_cf(meta.cf(cf), property)
                    .unwrap()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// The blob column families' block cache usage (one cache for all).
    fn cache_usage(meta: &Meta) -> u64 {
        meta.db
            .property_int_value_cf(meta.cf(Cf::Chunks), "rocksdb.block-cache-usage")
            .unwrap()
            .unwrap_or(0)
    }

    /// RocksDB keeps at most `MAX_OPEN_TABLE_FILES` table files open (its
    /// default, -1, keeps every one open for the life of the database): the
    /// options it persists next to the database say so.
    #[test]
    fn open_table_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let _meta = Meta::open(dir.path(), true).unwrap();
        let options: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("OPTIONS-"))
            })
            .collect();
        assert!(!options.is_empty());
        for p in options {
            let text = std::fs::read_to_string(&p).unwrap();
            let line = format!("max_open_files={MAX_OPEN_TABLE_FILES}");
            assert!(
                text.lines().any(|l| l.trim() == line),
                "{} lacks {line}",
                p.display()
            );
        }
    }

    /// Writing and reading back several times the memory budget of chunk
    /// index entries keeps the memtables and the block cache within their
    /// bounds instead of growing with the entries: at most two memtables per
    /// column family written (two here), and the cache's capacity (blocks
    /// pinned by an iterator or for level-0 files may exceed it a little).
    #[test]
    fn memtables_and_block_cache_stay_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path(), true).unwrap();
        let key = |i: u64| blake3::hash(&i.to_le_bytes()).as_bytes().to_vec();
        // About 38 MiB of keys and values, in commits of 1,024 entries per column family.
        const N: u64 = 400_000;
        let (mut mem_peak, mut cache_peak) = (0, 0);
        for start in (0..N).step_by(1024) {
            let mut b = Batch::default();
            for i in start..(start + 1024).min(N) {
                b.put(Cf::Chunks, key(i), [7u8; 28]);
                b.put(Cf::Refs, key(i), [1u8; 8]);
            }
            meta.commit(b, false).unwrap();
            mem_peak = mem_peak.max(total(&meta, "rocksdb.size-all-mem-tables"));
            cache_peak = cache_peak.max(cache_usage(&meta));
        }
        for i in (0..N).step_by(97) {
            assert!(meta.get(Cf::Chunks, &key(i)).unwrap().is_some());
            cache_peak = cache_peak.max(cache_usage(&meta));
        }
        eprintln!(
            "memtables peak {} KiB, block cache peak {} KiB",
            mem_peak >> 10,
            cache_peak >> 10
        );
        let memtables_max = 2 * 2 * BLOB_WRITE_BUFFER_BYTES as u64 + (1 << 20);
        assert!(mem_peak <= memtables_max, "memtables {mem_peak} B");
        assert!(
            cache_peak <= BLOB_CACHE_BYTES as u64 + (1 << 20),
            "block cache {cache_peak} B"
        );
    }
}
