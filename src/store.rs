//! The store handle: opening, locking and recovery at open. Every write
//! goes through the chunk layer's commit door (`crate::chunk`).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::blob::{BlobReader, BlobWriter, Pool};
use crate::chunk::{chain_root, Chunks, HEIGHTS_MARKER, OLD_LANE_KEY};
use crate::chunking::CdcParams;
use crate::codec::delta::MAX_DELTA_DEPTH;
use crate::codec::EncodeOptions;
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::records::{self, BlobRecord};
use crate::meta::{keys, Batch, Cf, Meta};
use crate::pack::{
    pack_file_name, parse_pack_file_name, ChunkLoc, Lane, PackHeader, PackReader, PackWriter,
    PACK_HEADER_LEN,
};

/// Name of the marker file that identifies a store directory.
const MARKER: &str = "MODELVAULT";
/// First line of the marker file.
const MARKER_MAGIC: &str = "modelvault store";
/// Store layout version, in the marker file and the `meta` column family.
pub(crate) const STORE_FORMAT: u32 = 1;
const LOCK: &str = "lock";
/// How long an open waits for a lock that another holder may be releasing.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);
const META_DIR: &str = "meta";
const PACKS_DIR: &str = "packs";

/// Tuning for [`Store`]; every setting has a default.
#[derive(Clone, Debug)]
#[must_use]
pub struct Options {
    pub(crate) pack_size: u64,
    pub(crate) cdc: CdcParams,
    pub(crate) encode: EncodeOptions,
    pub(crate) threads: usize,
    pub(crate) create: bool,
    pub(crate) durability: Durability,
    pub(crate) max_delta_depth: u8,
    pub(crate) delta_min_saving: f64,
    /// File operations of the pack writer (a fault-injecting layer in tests).
    pub(crate) pack_io: Arc<dyn crate::pack::io::PackIo>,
    /// Most pack files the reader keeps open (see `pack::reader`).
    pub(crate) max_open_packs: usize,
}

impl std::fmt::Debug for dyn crate::pack::io::PackIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackIo")
    }
}

/// When a commit's metadata reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit fsyncs the RocksDB WAL before returning (the default):
    /// what a call acknowledged survives a crash.
    #[default]
    Immediate,
    /// Commits write the WAL without fsyncing it; [`Store::sync`] or the next
    /// `Immediate` commit makes them durable. A crash may lose the newest
    /// commits, as a whole and in order, never corrupt the store: pack data
    /// is still fsynced before any index entry that points at it is written.
    Eventual,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pack_size: 64 << 20,
            cdc: CdcParams::default(),
            encode: EncodeOptions::default(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            create: true,
            durability: Durability::Immediate,
            max_delta_depth: 3,
            delta_min_saving: 0.03,
            pack_io: Arc::new(crate::pack::io::OsIo),
            max_open_packs: crate::pack::MAX_OPEN_PACKS,
        }
    }
}

impl Options {
    /// Target pack file size. Default 64 MiB; range 1 MiB ..= 4 GiB.
    pub fn pack_size(mut self, bytes: u64) -> Self {
        self.pack_size = bytes.clamp(1 << 20, 4 << 30);
        self
    }

    /// Content-defined chunking bounds for a new store. Default 16 / 64 /
    /// 128 KiB. An existing store keeps the bounds it was created with.
    pub fn chunking(mut self, params: CdcParams) -> Self {
        self.cdc = params;
        self
    }

    /// zstd level for whole-chunk payloads (byte-plane payloads have their
    /// own tuning, see [`EncodeOptions`]). Default 3; range 1 ..= 19.
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.encode.level = level.clamp(1, 19);
        self
    }

    /// Worker threads for hashing and compression. Default: one per core.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.clamp(1, 256);
        self
    }

    /// Whether [`Options::open`] may create a new store. Default true.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Durability of commits. Default [`Durability::Immediate`].
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// The longest delta chain an upload with a base
    /// ([`BlobWriter::delta_base`]) may create: a chunk is stored as a delta
    /// against its base chunk only while the base is fewer than `depth`
    /// deltas deep, else whole, so a read decodes at most `depth + 1`
    /// records. Default 3 (a whole chunk at least every 4 versions of a
    /// tensor); 0 turns deltas off; at most
    /// [`crate::codec::delta::MAX_DELTA_DEPTH`].
    pub fn max_delta_depth(mut self, depth: u8) -> Self {
        self.max_delta_depth = depth.min(MAX_DELTA_DEPTH);
        self
    }

    /// A chunk is stored as a delta only if that is at least this fraction
    /// smaller than storing it alone: a delta costs a second record read on
    /// every restore. Default 0.03 (on the corpus's HDF5 and TensorFlow.js
    /// version pairs, 0.1 kept a third of the deltas and 2.0 of the 5.7 MB
    /// they save; 0.03 keeps 5.5 MB). Range 0 ..= 1.
    pub fn delta_min_saving(mut self, fraction: f64) -> Self {
        self.delta_min_saving = if fraction.is_nan() {
            0.03
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Opens (or, if allowed, creates) the store in `dir`.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir.as_ref(), self)
    }
}

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

    fn open_with(dir: &Path, opts: Options) -> Result<Store> {
        crate::chunking::Chunker::check(&opts.cdc)
            .map_err(|e| Error::invalid("chunking bounds", format!("{:?}", opts.cdc), e))?;
        prepare_dir(dir, opts.create)?;
        let lock = acquire_lock(dir)?;
        // A file where a folder belongs is refused before RocksDB opens (and
        // rewrites its files in recovery); its own error would name neither
        // the store nor the file.
        for sub in [META_DIR, PACKS_DIR] {
            let p = dir.join(sub);
            if p.exists() && !p.is_dir() {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: format!("{sub} is not a directory"),
                });
            }
        }
        // Metadata is created only where there is none at all, and appears
        // complete or not at all (see `create_meta`); an existing `meta/`
        // that RocksDB cannot open is an error, never replaced.
        let meta_dir = dir.join(META_DIR);
        if !meta_dir.exists() {
            create_meta(dir, opts.cdc)?;
        }
        let meta = Meta::open(&meta_dir, false)?;
        let (store_id, cdc) = load_or_init_meta(&meta, dir, opts.cdc)?;
        // Chunking is fixed when a store is created: cutting the same content
        // differently later would defeat dedup.
        let mut opts = opts;
        opts.cdc = cdc;
        crate::gc::recount::migrate_if_needed(&meta)?;
        migrate_heights(&meta)?;
        let packs_dir = dir.join(PACKS_DIR);
        let (pack_len, next_pack, resume) =
            recover_packs(&meta, &packs_dir, &store_id, opts.pack_size)?;
        let resume = match resume {
            Some((id, len)) => Some((id, len, resume_lane(&meta, id)?)),
            None => None,
        };
        let packs = PackWriter::open(
            Arc::clone(&opts.pack_io),
            &packs_dir,
            store_id,
            opts.pack_size,
            next_pack,
            resume,
        )?;
        let pool = Pool::new(opts.threads)?;
        // Chunking bounds passed `Chunker::check`: the maximum fits a u32.
        let max_chunk = u32::try_from(opts.cdc.max).unwrap_or(u32::MAX);
        let reader = PackReader::new(&packs_dir, max_chunk, &pack_len, opts.max_open_packs);
        let sync_commits = opts.durability == Durability::Immediate;
        let chunks = Chunks::open(meta, &packs_dir, packs, reader, pack_len, sync_commits)?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                store_id,
                chunks: Arc::new(chunks),
                active_uploads: Mutex::new(HashSet::new()),
                pool,
                gc: Mutex::new(()),
                opts,
                _lock: lock,
            }),
        })
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

/// Gives a store written before chunk heights were kept the heights of the
/// delta chains it has: one scan of the chunk index at the first open.
/// Runs before anything else can write; a new store just gets the marker.
fn migrate_heights(meta: &Meta) -> Result<()> {
    if meta.get(Cf::Meta, HEIGHTS_MARKER)?.is_some() {
        return Ok(());
    }
    let mut roots: HashMap<ChunkId, ChunkLoc> = HashMap::new();
    for kv in meta.scan_prefix(Cf::Chunks, &[], &[]) {
        let (k, v) = kv?;
        let id = Hash32::from_slice(&k)
            .ok_or_else(|| Error::corrupt("chunks column family", "key of the wrong length"))?;
        if records::decode_chunk_loc(&v)?.base.is_none() {
            continue;
        }
        if let Some((root, loc, depth)) = chain_root(meta, &id)? {
            let e = roots.entry(root).or_insert(loc);
            e.height = e.height.max(depth);
        }
    }
    let mut batch = Batch::default();
    for (root, loc) in &roots {
        batch.put(
            Cf::Chunks,
            root.as_bytes().to_vec(),
            records::encode_chunk_loc(loc),
        );
    }
    batch.put(Cf::Meta, HEIGHTS_MARKER.to_vec(), Vec::new());
    meta.commit(batch, true)
}

/// Makes sure `dir` is a store directory, creating one if allowed.
fn prepare_dir(dir: &Path, create: bool) -> Result<()> {
    let marker = dir.join(MARKER);
    match fs::read_to_string(&marker) {
        Ok(text) => return check_marker(dir, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&marker, e)),
    }
    let not_store = |reason: &str| Error::NotAStore {
        path: dir.to_path_buf(),
        reason: reason.to_string(),
    };
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(not_store(
                    "the directory is not empty and has no MODELVAULT marker",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(not_store("not a directory"))
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    if !create {
        return Err(not_store(
            "no store here (create one with `modelvault init` or Store::create)",
        ));
    }
    fs::create_dir_all(dir.join(PACKS_DIR)).map_err(|e| Error::io(dir, e))?;
    // The marker goes in last, atomically: a crash before it leaves a
    // directory that the next create simply completes.
    let tmp = dir.join(format!("{MARKER}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    writeln!(f, "{MARKER_MAGIC}\nformat {STORE_FORMAT}")
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &marker).map_err(|e| Error::io(&marker, e))?;
    crate::pack::sync_dir(dir)
}

fn check_marker(dir: &Path, text: &str) -> Result<()> {
    let mut lines = text.lines();
    if lines.next() != Some(MARKER_MAGIC) {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            reason: "MODELVAULT marker file has the wrong contents".into(),
        });
    }
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("format "))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| Error::NotAStore {
            path: dir.to_path_buf(),
            reason: "MODELVAULT marker file has no format line".into(),
        })?;
    if version != STORE_FORMAT {
        return Err(Error::UnsupportedVersion {
            what: "store",
            found: version,
            supported: STORE_FORMAT,
        });
    }
    Ok(())
}

/// Takes the exclusive lock, writing who holds it into the lock file.
fn acquire_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // A lock released a moment ago may still be held through a copy of its
    // descriptor in a child process this process is spawning (between fork
    // and exec): give such a copy a moment to go away.
    let mut waited = std::time::Duration::ZERO;
    let locked = loop {
        match f.try_lock() {
            Err(fs::TryLockError::WouldBlock) if waited < LOCK_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                waited += std::time::Duration::from_millis(10);
            }
            r => break r,
        }
    };
    match locked {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::Locked {
                path: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "holder unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let me = format!("pid {} on host {}", std::process::id(), host.trim());
    f.set_len(0)
        .and_then(|_| f.write_all(me.as_bytes()))
        .map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

/// Reads the store id and format from the `meta` column family, writing
/// them on first open.
/// Creates the metadata database of a new store in `meta.init/`, writes its
/// identity records, closes it and renames it to `meta/`: a crash part way
/// leaves either no `meta/` (the next open starts over, removing the
/// leftover) or a complete one, never a `meta/` without its `CURRENT` file.
fn create_meta(dir: &Path, cdc: CdcParams) -> Result<()> {
    // Packs are written only once metadata exists: packs without it mean the
    // metadata was lost, and a fresh database would disown their chunks.
    let packs = dir.join(PACKS_DIR);
    if let Ok(entries) = fs::read_dir(&packs) {
        let has_pack = entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".pack"));
        if has_pack {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                reason: "pack files but no meta/ directory: the metadata is lost".into(),
            });
        }
    }
    let tmp = dir.join(format!("{META_DIR}.init"));
    match fs::remove_dir_all(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, e)),
    }
    {
        let meta = Meta::open(&tmp, true)?;
        load_or_init_meta(&meta, dir, cdc)?;
    }
    let meta_dir = dir.join(META_DIR);
    fs::rename(&tmp, &meta_dir).map_err(|e| Error::io(&meta_dir, e))?;
    crate::pack::sync_dir(dir)
}

fn load_or_init_meta(meta: &Meta, dir: &Path, cdc: CdcParams) -> Result<([u8; 16], CdcParams)> {
    match meta.get(Cf::Meta, b"format")? {
        Some(b) => {
            let v = <[u8; 4]>::try_from(b.as_slice())
                .map(u32::from_le_bytes)
                .map_err(|_| Error::corrupt("meta/format", "not a u32"))?;
            if v != STORE_FORMAT {
                return Err(Error::UnsupportedVersion {
                    what: "store",
                    found: v,
                    supported: STORE_FORMAT,
                });
            }
            let id = meta
                .get(Cf::Meta, b"store_id")?
                .ok_or_else(|| Error::corrupt("meta/store_id", "missing"))?;
            let id = <[u8; 16]>::try_from(id.as_slice())
                .map_err(|_| Error::corrupt("meta/store_id", "not 16 bytes"))?;
            let cdc = match meta.get(Cf::Meta, b"cdc")? {
                Some(b) => decode_cdc(&b)?,
                None => return Err(Error::corrupt("meta/cdc", "missing chunking parameters")),
            };
            Ok((id, cdc))
        }
        None => {
            if meta.last_key(Cf::Chunks)?.is_some() {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: "metadata has chunks but no format record".into(),
                });
            }
            let id = *uuid::Uuid::new_v4().as_bytes();
            let mut b = Batch::default();
            b.put(
                Cf::Meta,
                b"format".to_vec(),
                STORE_FORMAT.to_le_bytes().to_vec(),
            );
            b.put(Cf::Meta, b"store_id".to_vec(), id.to_vec());
            b.put(Cf::Meta, b"cdc".to_vec(), encode_cdc(&cdc));
            meta.commit(b, true)?;
            Ok((id, cdc))
        }
    }
}

/// `meta/cdc`: min, avg, max as u32 LE.
fn encode_cdc(p: &CdcParams) -> Vec<u8> {
    [p.min, p.avg, p.max]
        .iter()
        .flat_map(|&v| (v as u32).to_le_bytes())
        .collect()
}

fn decode_cdc(b: &[u8]) -> Result<CdcParams> {
    let bad = || Error::corrupt("meta/cdc", format!("{} bytes, expected three u32", b.len()));
    if b.len() != 12 {
        return Err(bad());
    }
    let v: Vec<usize> = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let p = CdcParams {
        min: v[0],
        avg: v[1],
        max: v[2],
    };
    crate::chunking::Chunker::check(&p).map_err(|e| Error::corrupt("meta/cdc", e))?;
    Ok(p)
}

type Recovered = (HashMap<u32, u64>, u32, Option<(u32, u64)>);

/// Brings pack files in line with the committed index: a tail past the
/// committed length (an interrupted append) is truncated. Returns committed
/// lengths, the next free pack id, and the pack to keep appending to.
fn recover_packs(meta: &Meta, dir: &Path, store_id: &[u8; 16], target: u64) -> Result<Recovered> {
    let mut committed = HashMap::new();
    for kv in meta.scan_prefix(Cf::Packs, &[], &[]) {
        let (k, v) = kv?;
        let id = keys::parse_pack(&k)
            .ok_or_else(|| Error::corrupt("packs column family", "key of the wrong length"))?;
        committed.insert(id, records::decode_pack(&v)?.committed_len);
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut max_id = committed.keys().copied().max();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_pack_file_name) else {
            continue;
        };
        max_id = Some(max_id.map_or(id, |m| m.max(id)));
        files.push(id);
    }
    files.sort_unstable();
    // Deleting or truncating a pack cannot be undone, and the committed
    // lengths decided here may come from commits the WAL has not made
    // durable yet (written with `Durability::Eventual` by a process that
    // died): those are synced before the first such change, so that a power
    // cut cannot bring back a record naming what was deleted.
    let mut synced = false;
    let mut make_durable = || -> Result<()> {
        if !synced {
            meta.sync_wal()?;
            synced = true;
        }
        Ok(())
    };
    let mut last_ok = None;
    for id in files {
        let path = dir.join(pack_file_name(id));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        let keep = committed
            .get(&id)
            .copied()
            .unwrap_or(PACK_HEADER_LEN as u64);
        if !committed.contains_key(&id) && Some(id) != max_id {
            // No record and not the newest: nothing committed ever named it
            // (appends that never committed before the writer moved on, or a
            // pack that compaction emptied and a crash kept from deleting).
            drop(f);
            make_durable()?;
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            tracing_note(&format!("deleted pack {id:08x}: no committed record"));
            continue;
        }
        if len < PACK_HEADER_LEN as u64 {
            // Created but its header never made it: nothing can reference it.
            if !committed.contains_key(&id) {
                drop(f);
                make_durable()?;
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
        } else {
            let mut hb = [0u8; PACK_HEADER_LEN];
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut hb, 0)
                .map_err(|e| Error::io(&path, e))?;
            let h = PackHeader::decode(&hb, &format!("pack {id:08x}"))?;
            if h.id != id || h.store_id != *store_id {
                return Err(Error::corrupt(
                    format!("pack {id:08x}"),
                    "header names another pack or another store",
                ));
            }
        }
        if len > keep {
            make_durable()?;
            f.set_len(keep)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            tracing_note(&format!(
                "truncated uncommitted tail of pack {id:08x}: {len} -> {keep} bytes"
            ));
        }
        if len >= keep {
            last_ok = Some((id, keep));
        }
    }
    let next = max_id.map_or(Ok(0), |m| {
        m.checked_add(1)
            .ok_or_else(|| Error::corrupt("pack ids", "exhausted the 32-bit pack id space"))
    })?;
    // Keep appending to the newest pack if it is the last one and has room.
    let resume = last_ok.filter(|&(id, len)| Some(id) == max_id && len < target);
    Ok((committed, next, resume))
}

/// The lane a resumed pack continues: [`Lane::Old`] if that lane wrote it
/// last, else [`Lane::New`]. The key is only a placement hint: a value of the
/// wrong length is ignored (noted), never a reason to refuse the store.
fn resume_lane(meta: &Meta, pack: u32) -> Result<Lane> {
    let old = meta.get(Cf::Meta, OLD_LANE_KEY)?;
    Ok(match old.as_deref().map(<[u8; 4]>::try_from) {
        Some(Ok(b)) if u32::from_le_bytes(b) == pack => Lane::Old,
        Some(Err(_)) => {
            tracing_note("ignored meta/old_lane_pack: not 4 bytes");
            Lane::New
        }
        _ => Lane::New,
    })
}
pub(crate) fn tracing_note(msg: &str) {
    if std::env::var_os("MODELVAULT_LOG").is_some() {
        eprintln!("modelvault: {msg}");
    }
}
