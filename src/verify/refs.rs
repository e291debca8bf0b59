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
use crate::meta::tables::references::{self, Found, Source};
use crate::meta::tables::refs::{self, Count, Stored};
use crate::meta::tables::{blobs, chunks, gc_queue, manifests, uploads, IdOrKey};
use crate::meta::Snapshot;

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

/// The bucket of a count, by its id.
fn bucket(c: &Count) -> usize {
    let id = c.id();
    usize::from(u16::from_be_bytes([id[0], id[1]]))
}

/// What a count counts, for problem reports.
fn describe(c: Count) -> String {
    match c {
        Count::Chunk(id) => format!("chunk {id}"),
        Count::Blob(id) => format!("blob {id}"),
        Count::Hold(id) => format!("hold on blob {id}"),
    }
}

/// Calls `f` with every reference the snapshot's records make, once per
/// reference, that `want(bucket)` accepts. Records that do not decode add
/// nothing (the other checks report them; the counts they would have added
/// then show up as differences); undecodable artifacts are passed to `bad`,
/// as no other check reads them.
fn references(
    snap: &Snapshot,
    dir: &std::path::Path,
    want: &dyn Fn(usize) -> bool,
    f: &mut dyn FnMut(Count),
    bad: &mut dyn FnMut(Problem),
) -> Result<()> {
    references::walk(snap, &mut |found| {
        match found {
            Found::Reference(c) => {
                if want(bucket(&c)) {
                    f(c);
                }
            }
            Found::SegmentsDone => pause::at(dir, pause::Stage::Refs),
            Found::Undecodable {
                source: Source::Artifact,
                key,
                error,
            } => bad(problem(
                "artifact-corrupt",
                key.to_string(),
                error.to_string(),
            )),
            Found::Undecodable {
                source: Source::Object | Source::Part,
                key,
                error,
            } => bad(problem(
                "object-corrupt",
                key.to_string(),
                error.to_string(),
            )),
            Found::Segment(_) | Found::Undecodable { .. } => {}
        }
        Ok(())
    })
}

/// Calls `f` with every chunk or blob count in `refs` (count, value) whose
/// bucket `want` accepts; malformed keys and values go to `bad` (when
/// `report` is set: the first pass reports, later passes skip them).
fn counts(
    snap: &Snapshot,
    want: &dyn Fn(usize) -> bool,
    report: bool,
    f: &mut dyn FnMut(Count, u64),
    bad: &mut dyn FnMut(Problem),
) -> Result<()> {
    for stored in refs::all(snap) {
        let (c, n) = match stored? {
            Stored::Malformed(key) => {
                if report {
                    bad(problem(
                        "refs-key-corrupt",
                        key.to_string(),
                        "not a tag (c, b or h) and a 32-byte id",
                    ));
                }
                continue;
            }
            Stored::Count(c, n) => (c, n),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                if report {
                    bad(problem("refs-value-corrupt", describe(c), e.to_string()));
                }
                continue;
            }
        };
        if !matches!(c, Count::Hold(_)) && want(bucket(&c)) {
            f(c, n);
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

    fn of(&self, c: Count) -> u128 {
        let h = blake3::keyed_hash(&self.0, &c.key());
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
    for key in gc_queue::malformed(snap) {
        out.push(problem(
            "key-corrupt",
            format!("gc key {}", key?),
            "neither a chunk candidate nor a dead manifest marker",
        ));
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
        &mut |c| {
            let b = bucket(&c);
            want[b] = want[b].wrapping_add(fp.of(c));
            size[b] += 1;
        },
        &mut |p| out.push(p),
    )?;
    counts(
        snap,
        &all,
        true,
        &mut |c, n| {
            let b = bucket(&c);
            have[b] = have[b].wrapping_add(fp.of(c).wrapping_mul(u128::from(n)));
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
        // Count → (references made, count stored).
        let mut exact: HashMap<Count, (u64, u64)> = HashMap::new();
        references(
            snap,
            std::path::Path::new(""),
            &chosen,
            &mut |c| exact.entry(c).or_default().0 += 1,
            &mut |_| {},
        )?;
        counts(
            snap,
            &chosen,
            false,
            &mut |c, n| exact.entry(c).or_default().1 = n,
            &mut |_| {},
        )?;
        let mut wrong: Vec<_> = exact.into_iter().filter(|(_, (w, h))| w != h).collect();
        wrong.sort_unstable();
        for (c, (w, h)) in wrong {
            out.push(problem(
                "refcount",
                describe(c),
                format!("count is {h}, the records reference it {w} times"),
            ));
        }
    }
    Ok(())
}

/// A count found by a cursor; an undecodable one (reported with the
/// counts) is taken as non-zero, so it is not reported a second time here.
fn count_of(v: Option<Result<u64>>) -> u64 {
    v.map_or(0, |n| n.unwrap_or(1))
}

/// Every blob is kept by a reference or a hold.
fn check_kept_blobs(snap: &Snapshot, out: &mut Vec<Problem>) -> Result<()> {
    let mut referenced = refs::blob_counts(snap);
    let mut held = refs::hold_counts(snap);
    for e in blobs::entries(snap) {
        let id = match e?.0 {
            Ok(id) => id,
            Err(key) => {
                out.push(problem(
                    "blob-key-corrupt",
                    key.to_string(),
                    "not a 32-byte blob id",
                ));
                continue;
            }
        };
        let kept = count_of(referenced.find(&id.0)?).saturating_add(count_of(held.find(&id.0)?));
        if kept == 0 {
            out.push(problem(
                "refcount",
                format!("blob {id}"),
                "stored, but nothing references or holds it",
            ));
        }
    }
    Ok(())
}

/// An indexed chunk nothing references must be queued for collection.
fn check_leaked_chunks(snap: &Snapshot, out: &mut Vec<Problem>) -> Result<()> {
    let mut referenced = refs::chunk_counts(snap);
    let mut candidate = gc_queue::candidates(snap);
    for e in chunks::entries(snap) {
        // A malformed key fails the chunk checks; a value is not read here.
        let Ok(id) = e?.0 else {
            continue;
        };
        if count_of(referenced.find(&id)?) == 0 && candidate.find(&id)?.is_none() {
            out.push(problem(
                "chunk-leaked",
                format!("chunk {id}"),
                "indexed, unreferenced, and not a collection candidate",
            ));
        }
    }
    Ok(())
}

/// Manifest ids, ascending and distinct, from a scan of one table's keys
/// over a range of ids (malformed keys are reported).
struct Ids<'s> {
    it: Box<dyn Iterator<Item = Result<IdOrKey>> + 's>,
    what: &'static str,
    prev: Option<u64>,
}

impl<'s> Ids<'s> {
    fn new(it: impl Iterator<Item = Result<IdOrKey>> + 's, what: &'static str) -> Self {
        Ids {
            it: Box::new(it),
            what,
            prev: None,
        }
    }

    fn next(&mut self, out: &mut Vec<Problem>) -> Result<Option<u64>> {
        for id in self.it.by_ref() {
            match id? {
                Ok(m) if Some(m) == self.prev => {}
                Ok(m) => {
                    self.prev = Some(m);
                    return Ok(Some(m));
                }
                Err(key) => out.push(problem(
                    "key-corrupt",
                    format!("{} key {key}", self.what),
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
        for e in blobs::entries(snap) {
            let Ok(rec) = e?.1 else {
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
    let mut uploads = Ids::new(uploads::ids_in(snap, lo, hi), "uploads");
    let mut dead = Ids::new(gc_queue::manifests_in(snap, lo, hi), "gc");
    let mut segments = Ids::new(manifests::ids_in(snap, lo, hi), "manifests");
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
