//! Store verification: structural checks of every record (fast), and with
//! `read_data` a re-read and re-hash of every chunk (or a subset).
//!
//! Every problem names the object it was found in and, for damaged chunks,
//! the blobs and model versions that contain them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::sync::Arc;

use serde::Serialize;

use crate::blob::Core;
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId};
use crate::meta::tables::{blobs, chunks, manifests, packs};
use crate::pack::{pack_file_name, ChunkLoc};

pub(crate) mod index;
mod refs;

pub use index::IndexReport;

/// What [`Store::verify`] checks.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct VerifyOptions {
    read_data: bool,
    subset: Option<(u64, u64)>,
    budgets: refs::Budgets,
}

impl VerifyOptions {
    /// Structural checks only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also read every chunk back, decode it and compare its blake3.
    pub fn read_data(mut self, yes: bool) -> Self {
        self.read_data = yes;
        self
    }

    /// With `read_data`, read only part `n` of `m` (1-based): the chunks
    /// whose id, as a number, is `n - 1` modulo `m`. Running parts 1..=m
    /// covers every chunk once.
    pub fn subset(mut self, n: u64, m: u64) -> Result<Self> {
        if m == 0 || n == 0 || n > m {
            return Err(Error::invalid(
                "subset",
                format!("{n}/{m}"),
                "expected N/M with 1 <= N <= M",
            ));
        }
        self.subset = Some((n, m));
        Ok(self)
    }

    /// Smaller memory budgets, so that tests take the many-pass paths.
    #[cfg(test)]
    pub(crate) fn budgets(mut self, budgets: refs::Budgets) -> Self {
        self.budgets = budgets;
        self
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Short kind, e.g. `chunk-damaged`, `chunk-missing`, `manifest-gap`.
    pub kind: &'static str,
    /// The object it was found in.
    pub object: String,
    /// What is wrong.
    pub detail: String,
    /// Blobs and model versions affected by it.
    pub affected: Vec<String>,
}

/// The result of [`Store::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Chunk index entries checked.
    pub chunks: u64,
    /// Of `chunks`, those stored as deltas against another chunk.
    pub delta_chunks: u64,
    /// Chunks read back and re-hashed.
    pub chunks_read: u64,
    /// Raw bytes re-hashed.
    pub bytes_read: u64,
    /// Blobs checked.
    pub blobs: u64,
    /// Model versions checked.
    pub versions: u64,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(kind: &'static str, object: impl Into<String>, detail: impl Into<String>) -> Problem {
    Problem {
        kind,
        object: object.into(),
        detail: detail.into(),
        affected: Vec::new(),
    }
}

impl Core {
    /// See [`crate::Store::verify`].
    #[tracing::instrument(name = "verify", level = "info", skip_all)]
    pub(crate) fn verify(self: &Arc<Self>, opts: VerifyOptions) -> Result<VerifyReport> {
        self.verify_reporting(opts, &|_| {})
    }

    /// [`Core::verify`], calling `progress` with the raw bytes re-read so
    /// far after each chunk `read_data` reads.
    pub(crate) fn verify_reporting(
        self: &Arc<Self>,
        opts: VerifyOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<VerifyReport> {
        let inner = &self;
        let snap = inner.chunks().meta().snapshot();
        let mut r = VerifyReport::default();
        let mut bad_chunks: BTreeMap<ChunkId, usize> = BTreeMap::new();
        pause::at(inner.path(), pause::Stage::Start);

        // Packs: the committed length is within the file. A collection may
        // have compacted and deleted a pack since the snapshot: it deletes
        // the pack's record before the file, so a missing file whose record
        // is still in the live database is missing indeed.
        let mut pack_len: HashMap<u32, u64> = HashMap::new();
        for e in packs::entries(&snap) {
            let (id, rec) = e?;
            let id = id.map_err(|_| Error::corrupt("packs column family", "bad key"))?;
            let committed = rec?.committed_len;
            let path = inner.path().join("packs").join(pack_file_name(id));
            match fs::metadata(&path) {
                Ok(m) if m.len() < committed => r.problems.push(problem(
                    "pack-truncated",
                    format!("pack {id:08x}"),
                    format!("file has {} bytes, {committed} are committed", m.len()),
                )),
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && !packs::exists(inner.chunks().meta(), id)? => {}
                Err(e) => r.problems.push(problem(
                    "pack-missing",
                    format!("pack {id:08x}"),
                    e.to_string(),
                )),
            }
            pack_len.insert(id, committed);
        }

        // Chunks: each index entry points inside its pack's committed range,
        // and with read_data, decodes to bytes with the right hash.
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let mut unique = 0u64;
        for e in chunks::entries(&snap) {
            let (id, loc) = e?;
            r.chunks += 1;
            let id = id.map_err(|_| Error::corrupt("chunks column family", "bad key"))?;
            let loc: ChunkLoc = match loc {
                Ok(l) => l,
                Err(e) => {
                    bad_chunks.insert(id, r.problems.len());
                    r.problems.push(problem(
                        "chunk-entry-corrupt",
                        format!("chunk {id}"),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            unique += loc.raw_len as u64;
            if let Some(base) = &loc.base {
                r.delta_chunks += 1;
                if !chunks::exists(&snap, base)? {
                    bad_chunks.insert(id, r.problems.len());
                    r.problems.push(problem(
                        "chunk-base-missing",
                        format!("chunk {id}"),
                        format!("a delta against chunk {base}, which is not in the chunk index"),
                    ));
                    continue;
                }
            }
            match pack_len.get(&loc.pack) {
                Some(&end) if loc.end() <= end => {}
                Some(&end) => {
                    bad_chunks.insert(id, r.problems.len());
                    r.problems.push(problem(
                        "chunk-out-of-range",
                        format!("chunk {id}"),
                        format!(
                            "record ends at {} in pack {:08x}, past its committed {end} bytes",
                            loc.end(),
                            loc.pack
                        ),
                    ));
                    continue;
                }
                None => {
                    bad_chunks.insert(id, r.problems.len());
                    r.problems.push(problem(
                        "chunk-pack-unknown",
                        format!("chunk {id}"),
                        format!("pack {:08x} has no record", loc.pack),
                    ));
                    continue;
                }
            }
            let wanted = match opts.subset {
                Some((n, m)) => {
                    u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")) % m == n - 1
                }
                None => true,
            };
            if opts.read_data && wanted {
                r.chunks_read += 1;
                r.bytes_read += loc.raw_len as u64;
                progress(r.bytes_read);
                let object = || format!("chunk {id}");
                // Read through the live index (where compaction may have
                // moved the record since the snapshot). A chunk a collection
                // deleted since the snapshot is gone from it: not damage.
                if let Err(e) = inner
                    .chunks()
                    .read_chunk(&id, &object, 0, &mut scratch, &mut out)
                {
                    if inner.chunks().chunk_loc(&id)?.is_some() {
                        bad_chunks.insert(id, r.problems.len());
                        r.problems.push(problem(
                            "chunk-damaged",
                            format!("chunk {id} (pack {:08x} offset {})", loc.pack, loc.offset),
                            e.to_string(),
                        ));
                    }
                }
            }
        }
        pause::at(inner.path(), pause::Stage::Chunks);

        // Blobs: segments tile [0, size), every chunk is indexed.
        let mut chunk_blobs: BTreeMap<ChunkId, BTreeSet<BlobId>> = BTreeMap::new();
        for e in blobs::entries(&snap) {
            let (blob, rec) = e?;
            r.blobs += 1;
            let blob = blob.map_err(|_| Error::corrupt("blobs column family", "bad key"))?;
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    r.problems.push(problem(
                        "blob-record-corrupt",
                        format!("blob {blob}"),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            if rec.size == 0 {
                continue;
            }
            let (mut expect, mut count) = (0u64, 0u64);
            for seg in manifests::segments(&snap, rec.manifest, None) {
                let seg = seg?;
                let start = seg.start();
                if start != Some(expect) {
                    r.problems.push(problem(
                        "manifest-gap",
                        format!("blob {blob}"),
                        format!("segment starts at {start:?}, expected {expect}"),
                    ));
                    break;
                }
                match seg.entries {
                    Ok(entries) => {
                        for e in entries {
                            expect += e.len as u64;
                            count += 1;
                            if bad_chunks.contains_key(&e.id) {
                                chunk_blobs.entry(e.id).or_default().insert(blob);
                            }
                            if !chunks::exists(&snap, &e.id)? {
                                r.problems.push(problem(
                                    "chunk-missing",
                                    format!("blob {blob}"),
                                    format!(
                                        "chunk {} at offset {} is not in the index",
                                        e.id,
                                        expect - e.len as u64
                                    ),
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        r.problems.push(problem(
                            "manifest-corrupt",
                            format!("blob {blob}"),
                            e.to_string(),
                        ));
                        break;
                    }
                }
            }
            if expect != rec.size || count != rec.chunks {
                r.problems.push(problem(
                    "blob-length",
                    format!("blob {blob}"),
                    format!("manifest covers {expect} bytes in {count} chunks, record says {} bytes in {}", rec.size, rec.chunks),
                ));
            }
        }

        // Versions and artifacts: every blob they name exists with that size.
        let mut logical = 0u64;
        for entry in crate::meta::tables::versions::entries(&snap) {
            let (key, id, vr) = entry?;
            r.versions += 1;
            let name = match id {
                Ok((id, v)) => format!("model {id}@{v}"),
                Err(e) => {
                    r.problems.push(problem(
                        "version-key-corrupt",
                        key.to_string(),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let vr = match vr {
                Ok(vr) => vr,
                Err(e) => {
                    r.problems
                        .push(problem("version-corrupt", name, e.to_string()));
                    continue;
                }
            };
            for f in &vr.files {
                logical += f.size;
                if let Err(e) = crate::meta::names::check_path(&f.path) {
                    r.problems
                        .push(problem("file-path", name.clone(), e.to_string()));
                }
                match crate::meta::tables::blobs::get_at(&snap, &f.blob)? {
                    Some(Ok(b)) if b.size == f.size => {}
                    Some(Err(_)) => {} // reported by the blob checks
                    Some(Ok(b)) => r.problems.push(problem(
                        "file-size",
                        name.clone(),
                        format!(
                            "{}: blob holds {} bytes, version says {}",
                            f.path, b.size, f.size
                        ),
                    )),
                    None => r.problems.push(problem(
                        "blob-missing",
                        name.clone(),
                        format!("{}: blob {} is not stored", f.path, f.blob),
                    )),
                }
            }
        }

        // Counters: the stats record committed with the records above.
        let stats = crate::meta::tables::singletons::stats(&snap)?;
        for (what, have, want) in [
            ("chunks", stats.chunks, r.chunks),
            ("unique_bytes", stats.unique_bytes, unique),
            ("blobs", stats.blobs, r.blobs),
            ("versions", stats.versions, r.versions),
            ("logical_bytes", stats.logical_bytes, logical),
        ] {
            if have != want {
                r.problems.push(problem(
                    "stats",
                    "stats record",
                    format!("{what} is {have}, the records add up to {want}"),
                ));
            }
        }

        // Objects and multipart parts: every blob they name is stored, with their size.
        crate::meta::tables::objects::check_blobs(&snap, &mut |kind, what, detail| {
            r.problems.push(problem(kind, what, detail))
        })?;

        // Reference counts and ownership.
        refs::check(&snap, inner.path(), opts.budgets, &mut r.problems)?;

        // Secondary indexes.
        let (idx, unreadable) = index::verify_index_at(&snap)?;
        // Versions that do not decode were reported by the version check.
        for u in unreadable
            .iter()
            .filter(|u| !u.kind.starts_with("version-"))
        {
            r.problems
                .push(problem(u.kind, u.object.clone(), u.error.to_string()));
        }
        for k in idx.missing {
            r.problems.push(problem("index-missing", "index", k));
        }
        for k in idx.extra {
            r.problems.push(problem("index-extra", "index", k));
        }
        drop(snap);

        // Name what the damaged chunks break (from the live index: this is
        // a description, not a check).
        for (chunk, at) in &bad_chunks {
            let mut affected = Vec::new();
            for blob in chunk_blobs.get(chunk).into_iter().flatten() {
                affected.push(format!("blob {blob}"));
                for (model, v) in self.versions_with_blob(blob)? {
                    affected.push(format!("model {model}@{v}"));
                }
            }
            r.problems[*at].affected = affected;
        }
        Ok(r)
    }
}

/// A seam for the tests: [`pause::at`] calls a test's function when a
/// verify of the store in a given folder reaches a given stage, so a test
/// can hold a verify mid-scan and act meanwhile. Outside tests it does nothing.
pub(crate) mod pause {
    use std::path::Path;

    /// Where a verify may be held.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Stage {
        /// Before anything is read.
        Start,
        /// After the scan of the chunk index, before the blobs.
        Chunks,
        /// In the middle of the reference-count checks.
        Refs,
    }

    #[cfg(test)]
    type Hook = (
        std::path::PathBuf,
        Stage,
        std::sync::Arc<dyn Fn() + Send + Sync>,
    );

    /// One function per store folder (tests run in parallel, each on its own store).
    #[cfg(test)]
    static HOOKS: parking_lot::Mutex<Vec<Hook>> = parking_lot::Mutex::new(Vec::new());

    /// Runs `f` whenever a verify of the store in `dir` reaches `stage`.
    #[cfg(test)]
    pub(crate) fn set(dir: &Path, stage: Stage, f: impl Fn() + Send + Sync + 'static) {
        let mut hooks = HOOKS.lock();
        hooks.retain(|(d, ..)| d != dir);
        hooks.push((dir.to_path_buf(), stage, std::sync::Arc::new(f)));
    }

    /// Removes the function set for `dir`.
    #[cfg(test)]
    pub(crate) fn clear(dir: &Path) {
        HOOKS.lock().retain(|(d, ..)| d != dir);
    }

    #[inline]
    pub(crate) fn at(dir: &Path, stage: Stage) {
        #[cfg(test)]
        {
            let f = HOOKS
                .lock()
                .iter()
                .find(|(d, s, _)| d == dir && *s == stage)
                .map(|(.., f)| f.clone());
            if let Some(f) = f {
                f();
            }
        }
        #[cfg(not(test))]
        let _ = (dir, stage);
    }
}

#[cfg(test)]
mod tests;
