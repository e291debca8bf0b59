//! Opening a store: the directory and its marker, the lock, metadata
//! set-up and migrations, then recovery (`super::recovery`) and the layers.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::blob::{Config, Core, Pool};
use crate::chunk::{chain_root, Chunks};
use crate::chunking::CdcParams;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::meta::tables::{chunks, singletons};
use crate::meta::{Batch, Meta};
use crate::pack::{ChunkLoc, PackReader, PackWriter};

use super::recovery::{recover_packs, resume_lane};
use super::{Durability, Options, Store};

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

impl Store {
    pub(super) fn open_with(dir: &Path, opts: Options) -> Result<Store> {
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
        let config = Config {
            cdc: opts.cdc,
            encode: opts.encode,
            threads: opts.threads,
            max_delta_depth: opts.max_delta_depth,
            delta_min_saving: opts.delta_min_saving,
        };
        let core = Core::new(dir, store_id, chunks, config, pool, Some(lock));
        Ok(Store {
            inner: Arc::new(core),
        })
    }
}

impl Store {
    /// See [`Store::open_read_only`]: the marker is checked, no lock is
    /// taken, the metadata is opened as a RocksDB secondary (its own files
    /// in a private temporary directory), and neither recovery nor
    /// migrations run; the pack writer exists but is never used (every
    /// write path is refused by `Chunks::writable`), and creates nothing.
    pub(super) fn open_read_only_at(dir: &Path) -> Result<Store> {
        let marker = dir.join(MARKER);
        match fs::read_to_string(&marker) {
            Ok(text) => check_marker(dir, &text)?,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: "no store here (no MODELVAULT marker)".into(),
                })
            }
            Err(e) => return Err(Error::io(&marker, e)),
        }
        for sub in [META_DIR, PACKS_DIR] {
            if !dir.join(sub).is_dir() {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: format!("{sub} is missing or not a directory"),
                });
            }
        }
        let meta = Meta::open_secondary(&dir.join(META_DIR))?;
        match singletons::format(&meta)? {
            Some(STORE_FORMAT) => {}
            Some(found) => {
                return Err(Error::UnsupportedVersion {
                    what: "store",
                    found,
                    supported: STORE_FORMAT,
                })
            }
            None => {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: "the metadata has no format record".into(),
                })
            }
        }
        let store_id = singletons::store_id(&meta)?;
        let opts = Options::default();
        let cdc = singletons::cdc(&meta)?;
        let mut pack_len = HashMap::new();
        for kv in crate::meta::tables::packs::all(&meta) {
            let (id, rec) = kv?;
            pack_len.insert(id, rec.committed_len);
        }
        let packs_dir = dir.join(PACKS_DIR);
        let packs = PackWriter::open(
            Arc::clone(&opts.pack_io),
            &packs_dir,
            store_id,
            opts.pack_size,
            0,
            None,
        )?;
        let pool = Pool::new(opts.threads)?;
        let max_chunk = u32::try_from(cdc.max).unwrap_or(u32::MAX);
        let reader = PackReader::new(&packs_dir, max_chunk, &pack_len, opts.max_open_packs);
        let chunks = Chunks::open(meta, &packs_dir, packs, reader, pack_len, false)?;
        let config = Config {
            cdc,
            encode: opts.encode,
            threads: opts.threads,
            max_delta_depth: opts.max_delta_depth,
            delta_min_saving: opts.delta_min_saving,
        };
        let core = Core::new(dir, store_id, chunks, config, pool, None);
        Ok(Store {
            inner: Arc::new(core),
        })
    }
}

/// Gives a store written before chunk heights were kept the heights of the
/// delta chains it has: one scan of the chunk index at the first open.
/// Runs before anything else can write; a new store just gets the marker.
fn migrate_heights(meta: &Meta) -> Result<()> {
    if singletons::heights_built(meta)? {
        return Ok(());
    }
    let mut roots: HashMap<ChunkId, ChunkLoc> = HashMap::new();
    for e in chunks::all(meta) {
        let (id, loc) = e?;
        if loc.base.is_none() {
            continue;
        }
        if let Some((root, loc, depth)) = chain_root(meta, &id)? {
            let e = roots.entry(root).or_insert(loc);
            e.height = e.height.max(depth);
        }
    }
    let mut batch = Batch::default();
    for (root, loc) in &roots {
        chunks::put(&mut batch, root, loc);
    }
    singletons::mark_heights_built(&mut batch);
    meta.commit(batch, true)
}

/// Makes sure `dir` is a store directory, creating one if allowed.
/// True if `dir` has a store marker (anything of that name).
pub(super) fn has_marker(dir: &Path) -> bool {
    dir.join(MARKER).exists()
}

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
    match singletons::format(meta)? {
        Some(v) => {
            if v != STORE_FORMAT {
                return Err(Error::UnsupportedVersion {
                    what: "store",
                    found: v,
                    supported: STORE_FORMAT,
                });
            }
            Ok((singletons::store_id(meta)?, singletons::cdc(meta)?))
        }
        None => {
            if crate::meta::tables::chunks::any(meta)? {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: "metadata has chunks but no format record".into(),
                });
            }
            let id = *uuid::Uuid::new_v4().as_bytes();
            let mut b = Batch::default();
            singletons::init(&mut b, STORE_FORMAT, &id, &cdc);
            meta.commit(b, true)?;
            Ok((id, cdc))
        }
    }
}
