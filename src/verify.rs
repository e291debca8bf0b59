//! Store verification: structural checks of every record (fast), and with
//! `read_data` a re-read and re-hash of every chunk (or a subset).
//!
//! Every problem names the object it was found in and, for damaged chunks,
//! the blobs and model versions that contain them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::records::{self, StatsRecord};
use crate::meta::{keys, Cf};
use crate::pack::{pack_file_name, ChunkLoc};
use crate::store::Store;

/// What [`Store::verify`] checks.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct VerifyOptions {
    read_data: bool,
    subset: Option<(u64, u64)>,
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

impl Store {
    /// Checks the store. Problems are reported, not returned as errors; an
    /// `Err` means verification itself could not run (e.g. I/O on the
    /// metadata database).
    pub fn verify(&self, opts: VerifyOptions) -> Result<VerifyReport> {
        let inner = &self.inner;
        let meta = &inner.meta;
        let mut r = VerifyReport::default();
        let mut bad_chunks: BTreeMap<ChunkId, usize> = BTreeMap::new();

        // Packs: the committed length is within the file.
        let mut pack_len: HashMap<u32, u64> = HashMap::new();
        for kv in meta.scan_prefix(Cf::Packs, &[], &[]) {
            let (k, v) = kv?;
            let id = keys::parse_pack(&k)
                .ok_or_else(|| Error::corrupt("packs column family", "bad key"))?;
            let committed = records::decode_pack(&v)?.committed_len;
            let path = inner.dir.join("packs").join(pack_file_name(id));
            match fs::metadata(&path) {
                Ok(m) if m.len() < committed => r.problems.push(problem(
                    "pack-truncated",
                    format!("pack {id:08x}"),
                    format!("file has {} bytes, {committed} are committed", m.len()),
                )),
                Ok(_) => {}
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
        for kv in meta.scan_prefix(Cf::Chunks, &[], &[]) {
            let (k, v) = kv?;
            r.chunks += 1;
            let id = Hash32::from_slice(&k)
                .ok_or_else(|| Error::corrupt("chunks column family", "bad key"))?;
            let loc: ChunkLoc = match records::decode_chunk_loc(&v) {
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
                if meta.get(Cf::Chunks, base.as_bytes())?.is_none() {
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
                let object = || format!("chunk {id}");
                if let Err(e) = inner.read_chunk(&id, &object, 0, &mut scratch, &mut out) {
                    bad_chunks.insert(id, r.problems.len());
                    r.problems.push(problem(
                        "chunk-damaged",
                        format!("chunk {id} (pack {:08x} offset {})", loc.pack, loc.offset),
                        e.to_string(),
                    ));
                }
            }
        }

        // Blobs: segments tile [0, size), every chunk is indexed.
        let mut chunk_blobs: BTreeMap<ChunkId, BTreeSet<BlobId>> = BTreeMap::new();
        let mut blob_count = 0u64;
        for kv in meta.scan_prefix(Cf::Blobs, &[], &[]) {
            let (k, v) = kv?;
            r.blobs += 1;
            blob_count += 1;
            let blob = BlobId(
                Hash32::from_slice(&k)
                    .ok_or_else(|| Error::corrupt("blobs column family", "bad key"))?,
            );
            let rec = match records::decode_blob(&v) {
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
            let prefix = rec.manifest.to_be_bytes();
            let (mut expect, mut count) = (0u64, 0u64);
            for kv in meta.scan_prefix(Cf::Manifests, &prefix, &prefix) {
                let (k, v) = kv?;
                let start = keys::parse_segment(&k).map(|(_, s)| s);
                if start != Some(expect) {
                    r.problems.push(problem(
                        "manifest-gap",
                        format!("blob {blob}"),
                        format!("segment starts at {start:?}, expected {expect}"),
                    ));
                    break;
                }
                match records::decode_segment(&v) {
                    Ok(entries) => {
                        for e in entries {
                            expect += e.len as u64;
                            count += 1;
                            if bad_chunks.contains_key(&e.id) {
                                chunk_blobs.entry(e.id).or_default().insert(blob);
                            }
                            if meta.get(Cf::Chunks, e.id.as_bytes())?.is_none() {
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
        let mut versions = 0u64;
        for kv in meta.scan_prefix(Cf::Versions, &[], &[]) {
            let (k, v) = kv?;
            r.versions += 1;
            versions += 1;
            let name = match crate::registry::index::id_version(&k, "versions key") {
                Ok((id, v)) => format!("model {id}@{v}"),
                Err(e) => {
                    r.problems.push(problem(
                        "version-key-corrupt",
                        hex::encode(&k),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let vr: crate::registry::records::VersionRecord =
                match records::decode_postcard("version record", &v) {
                    Ok(vr) => vr,
                    Err(e) => {
                        r.problems
                            .push(problem("version-corrupt", name, e.to_string()));
                        continue;
                    }
                };
            for f in &vr.files {
                logical += f.size;
                if let Err(e) = crate::registry::check_path(&f.path) {
                    r.problems
                        .push(problem("file-path", name.clone(), e.to_string()));
                }
                match self.blob_record(&f.blob)? {
                    Some(b) if b.size == f.size => {}
                    Some(b) => r.problems.push(problem(
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

        // Counters.
        let stats: StatsRecord = inner.commit.lock().stats;
        for (what, have, want) in [
            ("chunks", stats.chunks, r.chunks),
            ("unique_bytes", stats.unique_bytes, unique),
            ("blobs", stats.blobs, blob_count),
            ("versions", stats.versions, versions),
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

        // Reference counts and ownership.
        self.verify_refs(&mut r)?;

        // Secondary indexes.
        let idx = self.verify_index()?;
        for k in idx.missing {
            r.problems.push(problem("index-missing", "index", k));
        }
        for k in idx.extra {
            r.problems.push(problem("index-extra", "index", k));
        }

        // Name what the damaged chunks break.
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

    /// Recounts every reference from the primary records and compares with
    /// the `refs` column family; checks that each manifest has exactly one
    /// owner and that every unreferenced chunk is a collection candidate.
    /// Holds the commit lock (counts change only in commits), so writers
    /// wait for this part.
    fn verify_refs(&self, r: &mut VerifyReport) -> Result<()> {
        use crate::meta::keys::refs as tag;
        let inner = &self.inner;
        let meta = &inner.meta;
        let _commits = inner.commit.lock();
        let bad = |what: &'static str| Error::corrupt(what, "key of the wrong length");
        let crate::gc::recount::Expected {
            counts: want,
            manifests: seg_manifests,
            undecodable,
        } = crate::gc::recount::expected(meta)?;
        for (cf, k) in undecodable {
            if cf == Cf::Artifacts {
                r.problems.push(problem(
                    "artifact-corrupt",
                    hex::encode(&k),
                    "undecodable record",
                ));
            }
        }
        let mut have: HashMap<Vec<u8>, u64> = HashMap::new();
        for kv in meta.scan_prefix(Cf::Refs, &[], &[]) {
            let (k, v) = kv?;
            if k.len() != 33 {
                return Err(bad("refs"));
            }
            have.insert(k.to_vec(), records::decode_count(&v)?);
        }
        let describe = |k: &[u8]| {
            let id = Hash32::from_slice(&k[1..]).map_or_else(String::new, |h| h.to_string());
            match k[0] {
                tag::CHUNK => format!("chunk {id}"),
                _ => format!("blob {id}"),
            }
        };
        let mut keys_all: BTreeSet<&Vec<u8>> = want.keys().collect();
        keys_all.extend(have.keys().filter(|k| k[0] != tag::HOLD));
        for k in keys_all {
            let (w, h) = (
                want.get(k).copied().unwrap_or(0),
                have.get(k).copied().unwrap_or(0),
            );
            if w != h {
                r.problems.push(problem(
                    "refcount",
                    describe(k),
                    format!("count is {h}, the records reference it {w} times"),
                ));
            }
        }
        // Every blob is kept by a reference or a hold; every manifest has
        // exactly one owner: a blob, an upload session or a dead marker.
        let mut owners: HashMap<u64, u32> = HashMap::new();
        for kv in meta.scan_prefix(Cf::Blobs, &[], &[]) {
            let (k, v) = kv?;
            let Ok(rec) = records::decode_blob(&v) else {
                continue; // reported by the blob checks
            };
            let id = <[u8; 32]>::try_from(k.as_ref()).map_err(|_| bad("blobs"))?;
            let kept = have
                .get(keys::count(tag::BLOB, &id).as_slice())
                .copied()
                .unwrap_or(0)
                + have
                    .get(keys::count(tag::HOLD, &id).as_slice())
                    .copied()
                    .unwrap_or(0);
            if kept == 0 {
                r.problems.push(problem(
                    "refcount",
                    format!("blob {}", Hash32(id)),
                    "stored, but nothing references or holds it",
                ));
            }
            if rec.manifest != 0 {
                *owners.entry(rec.manifest).or_insert(0) += 1;
            }
        }
        for kv in meta.scan_prefix(Cf::Uploads, &[], &[]) {
            let (k, _) = kv?;
            *owners
                .entry(keys::parse_u64(&k).ok_or_else(|| bad("uploads"))?)
                .or_insert(0) += 1;
        }
        let mut candidates = BTreeSet::new();
        for kv in meta.scan_prefix(Cf::Gc, &[], &[]) {
            let (k, _) = kv?;
            match (k.first(), k.len()) {
                (Some(&keys::gc::MANIFEST), 9) => {
                    *owners
                        .entry(keys::parse_u64(&k[1..]).ok_or_else(|| bad("gc"))?)
                        .or_insert(0) += 1;
                }
                (Some(&keys::gc::CHUNK), 33) => {
                    candidates.insert(k[1..].to_vec());
                }
                _ => return Err(bad("gc")),
            }
        }
        for (m, n) in &owners {
            if *n > 1 {
                r.problems.push(problem(
                    "manifest-owners",
                    format!("manifest {m}"),
                    format!("{n} owners (blobs, upload sessions, dead markers)"),
                ));
            }
        }
        for m in seg_manifests.iter().filter(|m| !owners.contains_key(m)) {
            r.problems.push(problem(
                "manifest-orphan",
                format!("manifest {m}"),
                "has segments but no blob, upload session or dead marker owns it",
            ));
        }
        // An indexed chunk nothing references must be queued for collection.
        for kv in meta.scan_prefix(Cf::Chunks, &[], &[]) {
            let (k, _) = kv?;
            let ck = [&[tag::CHUNK][..], &k].concat();
            if !have.contains_key(&ck) && !candidates.contains(k.as_ref()) {
                r.problems.push(problem(
                    "chunk-leaked",
                    format!(
                        "chunk {}",
                        Hash32::from_slice(&k).map_or_else(String::new, |h| h.to_string())
                    ),
                    "indexed, unreferenced, and not a collection candidate",
                ));
            }
        }
        Ok(())
    }
}
