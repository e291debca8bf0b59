//! Reference counts and manifest ownership, checked from a snapshot in
//! memory that does not grow with the store (docs/ARCHITECTURE.md, "Verify").
//!
//! - Counts: every reference the records make (manifest segment entries and
//!   delta records → chunks; version files and artifacts → blobs) and every
//!   count in `refs` are summed per bucket of ids (the first 16 bits, 65,536
//!   buckets) as keyed-hash fingerprints: Σ H(key) over the references, Σ
//!   count × H(key) over the counts, wrapping `u128` arithmetic, `H` a
//!   blake3 keyed hash with a fresh random key per verify. The two sums of a
//!   bucket are equal when its counts are right, and differ with probability
//!   at least 1 − 2⁻⁶⁴ when any of them is wrong. Only the buckets that
//!   differ are then counted exactly, a bounded number of keys per pass.
//! - Which blobs are kept and which chunks are leaked: merge-joins of scans
//!   that are all in id order (blob records or chunk index against `refs`
//!   and `gc` keys).
//! - Manifest ownership: blob records name their manifests in blob-id order,
//!   so they are read in passes, each collecting the next [`Budgets::owners`]
//!   smallest manifest ids, merged with the id-ordered scans of upload
//!   sessions, dead markers and manifest segments over the same range.

use std::collections::{BTreeMap, HashMap};

use crate::error::Result;
use crate::id::Hash32;
use crate::meta::keys::{self, refs as tag};
use crate::meta::records;
use crate::meta::registry_records::{ArtifactBody, ArtifactRecord, VersionRecord};
use crate::meta::{Cf, Pair, Snapshot};

use super::{pause, problem, Problem};

/// Fingerprint buckets: ids are hashes, so each holds about 1/65,536 of the keys.
const BUCKETS: usize = 1 << 16;

/// How much [`check`] keeps in memory at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budgets {
    /// Keys counted exactly per pass over the buckets whose fingerprints
    /// differ (a single bucket larger than this is counted alone).
    pub localize: u64,
    /// Distinct manifest ids of blob records collected per ownership pass.
    pub owners: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            // About 65 bytes per key in the hash map: some 8.5 MiB.
            localize: 1 << 17,
            // About 20 bytes per id in the B-tree: some 5 MiB.
            owners: 1 << 18,
        }
    }
}

/// The bucket of a 32-byte id.
fn bucket(id: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([id[0], id[1]]))
}

/// An id as problem reports show it (hex).
fn show_id(id: &[u8]) -> String {
    Hash32::from_slice(id).map_or_else(|| hex::encode(id), |h| h.to_string())
}

/// What a `refs` key names, for problem reports.
fn describe(k: &[u8]) -> String {
    let id = show_id(&k[1..]);
    match k[0] {
        tag::CHUNK => format!("chunk {id}"),
        tag::BLOB => format!("blob {id}"),
        _ => format!("hold on blob {id}"),
    }
}

/// Calls `f` with the `refs` key of every reference the snapshot's records
/// make, once per reference, that `want(bucket)` accepts. Records that do
/// not decode add nothing (the other checks report them; the counts they
/// would have added then show up as differences); undecodable artifacts are
/// passed to `bad`, as no other check reads them.
fn references(
    snap: &Snapshot,
    dir: &std::path::Path,
    want: &dyn Fn(usize) -> bool,
    f: &mut dyn FnMut(&[u8; 33]),
    bad: &mut dyn FnMut(Problem),
) -> Result<()> {
    let mut add = |t: u8, id: &[u8; 32]| {
        if want(bucket(id)) {
            f(&keys::count(t, id));
        }
    };
    for kv in snap.scan_prefix(Cf::Manifests, &[], &[]) {
        let (_, v) = kv?;
        if let Ok(seg) = records::decode_segment(&v) {
            seg.iter().for_each(|e| add(tag::CHUNK, e.id.as_bytes()));
        }
    }
    pause::at(dir, pause::Stage::Refs);
    // A delta record references its base chunk.
    for kv in snap.scan_prefix(Cf::Chunks, &[], &[]) {
        let (_, v) = kv?;
        if let Ok(loc) = records::decode_chunk_loc(&v) {
            if let Some(base) = loc.base {
                add(tag::CHUNK, base.as_bytes());
            }
        }
    }
    for kv in snap.scan_prefix(Cf::Versions, &[], &[]) {
        let (_, v) = kv?;
        if let Ok(vr) = records::decode_postcard::<VersionRecord>("version record", &v) {
            vr.files
                .iter()
                .for_each(|f| add(tag::BLOB, f.blob.as_bytes()));
        }
    }
    for kv in snap.scan_prefix(Cf::Artifacts, &[], &[]) {
        let (k, v) = kv?;
        match records::decode_postcard::<ArtifactRecord>("artifact", &v) {
            Ok(a) => {
                if let ArtifactBody::Blob { blob, .. } = a.body {
                    add(tag::BLOB, blob.as_bytes());
                }
            }
            Err(e) => bad(problem("artifact-corrupt", hex::encode(&k), e.to_string())),
        }
    }
    let mut obj = |b: &crate::id::BlobId| add(tag::BLOB, b.as_bytes());
    let mut obj_bad = |k: String, e: crate::Error| bad(problem("object-corrupt", k, e.to_string()));
    crate::meta::tables::objects::blob_refs(snap, &mut obj, &mut obj_bad)?;
    Ok(())
}

/// Calls `f` with every chunk or blob count in `refs` (key, count) whose
/// bucket `want` accepts; malformed keys and values go to `bad` (when
/// `report` is set: the first pass reports, later passes skip them).
fn counts(
    snap: &Snapshot,
    want: &dyn Fn(usize) -> bool,
    report: bool,
    f: &mut dyn FnMut(&[u8], u64),
    bad: &mut dyn FnMut(Problem),
) -> Result<()> {
    for kv in snap.scan_prefix(Cf::Refs, &[], &[]) {
        let (k, v) = kv?;
        if k.len() != 33 || ![tag::CHUNK, tag::BLOB, tag::HOLD].contains(&k[0]) {
            if report {
                bad(problem(
                    "refs-key-corrupt",
                    hex::encode(&k),
                    "not a tag (c, b or h) and a 32-byte id",
                ));
            }
            continue;
        }
        let n = match records::decode_count(&v) {
            Ok(n) => n,
            Err(e) => {
                if report {
                    bad(problem("refs-value-corrupt", describe(&k), e.to_string()));
                }
                continue;
            }
        };
        if k[0] != tag::HOLD && want(bucket(&k[1..])) {
            f(&k, n);
        }
    }
    Ok(())
}

/// A keyed hash of a `refs` key, the unit of the fingerprints.
struct Fingerprint([u8; 32]);

impl Fingerprint {
    fn new() -> Self {
        // A fresh random key per verify: no damage can be shaped to cancel out.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Fingerprint(key)
    }

    fn of(&self, k: &[u8]) -> u128 {
        let h = blake3::keyed_hash(&self.0, k);
        u128::from_le_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
    }
}

/// Checks reference counts, kept blobs, leaked chunks and manifest
/// ownership as of `snap`, adding what is wrong to `out`.
pub(crate) fn check(
    snap: &Snapshot,
    dir: &std::path::Path,
    budgets: Budgets,
    out: &mut Vec<Problem>,
) -> Result<()> {
    check_counts(snap, dir, budgets, out)?;
    check_kept_blobs(snap, out)?;
    check_leaked_chunks(snap, out)?;
    check_gc_keys(snap, out)?;
    check_owners(snap, budgets, out)
}

/// Every `gc` key is a chunk candidate or a dead manifest marker.
fn check_gc_keys(snap: &Snapshot, out: &mut Vec<Problem>) -> Result<()> {
    for kv in snap.scan_prefix(Cf::Gc, &[], &[]) {
        let (k, _) = kv?;
        match (k.first(), k.len()) {
            (Some(&keys::gc::CHUNK), 33) | (Some(&keys::gc::MANIFEST), 9) => {}
            _ => out.push(problem(
                "key-corrupt",
                format!("gc key {}", hex::encode(&k)),
                "neither a chunk candidate nor a dead manifest marker",
            )),
        }
    }
    Ok(())
}

fn check_counts(
    snap: &Snapshot,
    dir: &std::path::Path,
    budgets: Budgets,
    out: &mut Vec<Problem>,
) -> Result<()> {
    let fp = Fingerprint::new();
    let mut want = vec![0u128; BUCKETS];
    let mut have = vec![0u128; BUCKETS];
    // Per bucket, references made and counts stored: an upper bound of the
    // keys an exact count of the bucket holds.
    let mut size = vec![0u64; BUCKETS];
    let all = |_: usize| true;
    references(
        snap,
        dir,
        &all,
        &mut |k| {
            let b = bucket(&k[1..]);
            want[b] = want[b].wrapping_add(fp.of(k));
            size[b] += 1;
        },
        &mut |p| out.push(p),
    )?;
    counts(
        snap,
        &all,
        true,
        &mut |k, n| {
            let b = bucket(&k[1..]);
            have[b] = have[b].wrapping_add(fp.of(k).wrapping_mul(u128::from(n)));
            size[b] += 1;
        },
        &mut |p| out.push(p),
    )?;
    let differ: Vec<usize> = (0..BUCKETS).filter(|&b| want[b] != have[b]).collect();
    drop((want, have));
    // Count the differing buckets exactly, as many per pass as the budget allows.
    let mut at = 0;
    while at < differ.len() {
        let mut chosen = vec![false; BUCKETS];
        let mut planned = 0u64;
        while at < differ.len() && (planned == 0 || planned + size[differ[at]] <= budgets.localize)
        {
            chosen[differ[at]] = true;
            planned += size[differ[at]];
            at += 1;
        }
        let chosen = |b: usize| chosen[b];
        // Key → (references made, count stored).
        let mut exact: HashMap<[u8; 33], (u64, u64)> = HashMap::new();
        references(
            snap,
            std::path::Path::new(""),
            &chosen,
            &mut |k| exact.entry(*k).or_default().0 += 1,
            &mut |_| {},
        )?;
        counts(
            snap,
            &chosen,
            false,
            &mut |k, n| {
                let k: [u8; 33] = k.try_into().expect("33-byte key");
                exact.entry(k).or_default().1 = n;
            },
            &mut |_| {},
        )?;
        let mut wrong: Vec<_> = exact.into_iter().filter(|(_, (w, h))| w != h).collect();
        wrong.sort_unstable();
        for (k, (w, h)) in wrong {
            out.push(problem(
                "refcount",
                describe(&k),
                format!("count is {h}, the records reference it {w} times"),
            ));
        }
    }
    Ok(())
}

/// Walks one id-ordered scan of keys `prefix ‖ id` alongside another
/// id-ordered scan: [`Cursor::find`] must be asked ids in ascending order.
struct Cursor<'s> {
    it: std::iter::Peekable<Box<dyn Iterator<Item = Result<Pair>> + 's>>,
    skip: usize,
}

impl<'s> Cursor<'s> {
    fn new(snap: &'s Snapshot, cf: Cf, prefix: &[u8]) -> Self {
        let it: Box<dyn Iterator<Item = Result<Pair>> + 's> =
            Box::new(snap.scan_prefix(cf, prefix, prefix));
        Cursor {
            it: it.peekable(),
            skip: prefix.len(),
        }
    }

    /// The value stored for `id`, if any.
    fn find(&mut self, id: &[u8]) -> Result<Option<Box<[u8]>>> {
        while let Some(head) = self.it.peek() {
            let Ok((k, _)) = head else {
                return Err(self.it.next().expect("peeked").expect_err("an error"));
            };
            match k[self.skip..].cmp(id) {
                std::cmp::Ordering::Less => {
                    self.it.next();
                }
                std::cmp::Ordering::Equal => {
                    let (_, v) = self.it.next().expect("peeked")?;
                    return Ok(Some(v));
                }
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// A count found by a [`Cursor`]; an undecodable one (reported with the
/// counts) is taken as non-zero, so it is not reported a second time here.
fn count_of(v: Option<Box<[u8]>>) -> u64 {
    v.map_or(0, |v| records::decode_count(&v).unwrap_or(1))
}

/// Every blob is kept by a reference or a hold.
fn check_kept_blobs(snap: &Snapshot, out: &mut Vec<Problem>) -> Result<()> {
    let mut referenced = Cursor::new(snap, Cf::Refs, &[tag::BLOB]);
    let mut held = Cursor::new(snap, Cf::Refs, &[tag::HOLD]);
    for kv in snap.scan_prefix(Cf::Blobs, &[], &[]) {
        let (k, _) = kv?;
        if k.len() != 32 {
            out.push(problem(
                "blob-key-corrupt",
                hex::encode(&k),
                "not a 32-byte blob id",
            ));
            continue;
        }
        let kept = count_of(referenced.find(&k)?).saturating_add(count_of(held.find(&k)?));
        if kept == 0 {
            out.push(problem(
                "refcount",
                format!("blob {}", show_id(&k)),
                "stored, but nothing references or holds it",
            ));
        }
    }
    Ok(())
}

/// An indexed chunk nothing references must be queued for collection.
fn check_leaked_chunks(snap: &Snapshot, out: &mut Vec<Problem>) -> Result<()> {
    let mut referenced = Cursor::new(snap, Cf::Refs, &[tag::CHUNK]);
    let mut candidate = Cursor::new(snap, Cf::Gc, &[keys::gc::CHUNK]);
    for kv in snap.scan_prefix(Cf::Chunks, &[], &[]) {
        let (k, _) = kv?;
        if count_of(referenced.find(&k)?) == 0 && candidate.find(&k)?.is_none() {
            out.push(problem(
                "chunk-leaked",
                format!("chunk {}", show_id(&k)),
                "indexed, unreferenced, and not a collection candidate",
            ));
        }
    }
    Ok(())
}

/// Manifest ids, ascending and distinct, from a scan of keys up to `last`
/// (in byte order); `id` parses a key (`None`: malformed, reported).
struct Ids<'s> {
    it: Box<dyn Iterator<Item = Result<Pair>> + 's>,
    last: Vec<u8>,
    id: fn(&[u8]) -> Option<u64>,
    what: &'static str,
    prev: Option<u64>,
}

impl Ids<'_> {
    fn next(&mut self, out: &mut Vec<Problem>) -> Result<Option<u64>> {
        for kv in self.it.by_ref() {
            let (k, _) = kv?;
            if k[..] > self.last[..] {
                return Ok(None);
            }
            match (self.id)(&k) {
                Some(m) if Some(m) == self.prev => {}
                Some(m) => {
                    self.prev = Some(m);
                    return Ok(Some(m));
                }
                None => out.push(problem(
                    "key-corrupt",
                    format!("{} key {}", self.what, hex::encode(&k)),
                    "malformed key",
                )),
            }
        }
        Ok(None)
    }
}

/// Every manifest has at most one owner (a blob, an upload session or a
/// dead marker), and every manifest with segments has one.
fn check_owners(snap: &Snapshot, budgets: Budgets, out: &mut Vec<Problem>) -> Result<()> {
    let budget = budgets.owners.max(1);
    let mut lo = 0u64;
    loop {
        // The `budget` smallest distinct manifest ids ≥ lo that blob records
        // name, with how many name each. Once full, an id above the largest
        // kept is left for a later pass and a smaller one replaces the
        // largest, so at the end the map is exact for [lo, its largest].
        let mut named: BTreeMap<u64, u64> = BTreeMap::new();
        let mut full = false;
        for kv in snap.scan_prefix(Cf::Blobs, &[], &[]) {
            let (_, v) = kv?;
            let Ok(rec) = records::decode_blob(&v) else {
                continue; // reported by the blob checks
            };
            let m = rec.manifest;
            if m == 0 || m < lo {
                continue;
            }
            if let Some(n) = named.get_mut(&m) {
                *n += 1;
                continue;
            }
            if named.len() == budget {
                full = true;
                if named.last_key_value().is_some_and(|(&max, _)| m > max) {
                    continue;
                }
                named.pop_last();
            }
            named.insert(m, 1);
        }
        let hi = match named.last_key_value() {
            Some((&max, _)) if full => max,
            _ => u64::MAX,
        };
        owners_in(snap, lo, hi, &named, out)?;
        if hi == u64::MAX {
            return Ok(());
        }
        lo = hi + 1;
    }
}

/// [`check_owners`] for manifest ids in `[lo, hi]`, `named` holding the
/// blob records' ids in that range.
fn owners_in(
    snap: &Snapshot,
    lo: u64,
    hi: u64,
    named: &BTreeMap<u64, u64>,
    out: &mut Vec<Problem>,
) -> Result<()> {
    let mut uploads = Ids {
        it: Box::new(snap.scan_prefix(Cf::Uploads, &[], &keys::upload(lo))),
        last: keys::upload(hi).to_vec(),
        id: keys::parse_u64,
        what: "uploads",
        prev: None,
    };
    let mut dead = Ids {
        it: Box::new(snap.scan_prefix(Cf::Gc, &[keys::gc::MANIFEST], &keys::gc_manifest(lo))),
        last: keys::gc_manifest(hi).to_vec(),
        id: |k| keys::parse_u64(&k[1..]),
        what: "gc",
        prev: None,
    };
    let mut segments = Ids {
        it: Box::new(snap.scan_prefix(Cf::Manifests, &[], &keys::segment(lo, 0))),
        last: keys::segment(hi, u64::MAX).to_vec(),
        id: |k| keys::parse_segment(k).map(|(m, _)| m),
        what: "manifests",
        prev: None,
    };
    let mut blobs = named.iter().map(|(&m, &n)| (m, n));
    let mut b = blobs.next();
    let mut u = uploads.next(out)?;
    let mut d = dead.next(out)?;
    let mut s = segments.next(out)?;
    while let Some(m) = [b.map(|(m, _)| m), u, d, s].into_iter().flatten().min() {
        let mut owners = 0u64;
        if let Some((_, n)) = b.filter(|&(x, _)| x == m) {
            owners += n;
            b = blobs.next();
        }
        if u == Some(m) {
            owners += 1;
            u = uploads.next(out)?;
        }
        if d == Some(m) {
            owners += 1;
            d = dead.next(out)?;
        }
        let has_segments = s == Some(m);
        if has_segments {
            s = segments.next(out)?;
        }
        if owners > 1 {
            out.push(problem(
                "manifest-owners",
                format!("manifest {m}"),
                format!("{owners} owners (blobs, upload sessions, dead markers)"),
            ));
        }
        if has_segments && owners == 0 {
            out.push(problem(
                "manifest-orphan",
                format!("manifest {m}"),
                "has segments but no blob, upload session or dead marker owns it",
            ));
        }
    }
    Ok(())
}
