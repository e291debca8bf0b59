//! Collection tests that need the crate's insides: the broken-collector
//! switch, and exact space accounting.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::test_support::noise;
use crate::{BlobId, Durability, GcOptions, Store, VerifyOptions};

fn put(store: &Store, data: &[u8]) -> BlobId {
    let mut w = store.blob_writer();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn read(store: &Store, id: &BlobId) -> crate::Result<Vec<u8>> {
    let mut out = Vec::new();
    store
        .blob_reader(id)?
        .read_to_end(&mut out)
        .map_err(|e| crate::Error::io("<test read>", e))?;
    Ok(out)
}

fn open(dir: &std::path::Path) -> Store {
    Store::options()
        .pack_size(1 << 20)
        .durability(Durability::Eventual)
        .open(dir)
        .unwrap()
}

#[test]
fn released_blobs_are_collected_and_shared_chunks_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let shared = noise(1, 3 << 20);
    let a = [shared.clone(), noise(2, 2 << 20)].concat();
    let b = [shared, noise(3, 2 << 20)].concat();
    let (ia, ib) = (put(&store, &a), put(&store, &b));
    let before = store.stats();

    // Nothing is garbage yet.
    let r = store.gc(&GcOptions::new()).unwrap();
    assert_eq!(r.chunks_deleted, 0, "{r:?}");

    store.release_blob(&ia).unwrap();
    assert!(!store.contains_blob(&ia).unwrap());
    assert!(
        store.release_blob(&ia).is_err(),
        "a second release must fail"
    );
    let r = store.gc(&GcOptions::new()).unwrap();
    assert_eq!(r.manifests_released, 1);
    assert!(r.chunks_deleted > 0);
    // a's own 2 MiB went, the shared 3 MiB stayed (CDC resyncs within a chunk or two).
    let after = store.stats();
    let freed = before.unique_bytes - after.unique_bytes;
    assert!(
        (1 << 20..=(2 << 20) + (256 << 10)).contains(&freed),
        "freed {freed}"
    );
    assert_eq!(read(&store, &ib).unwrap(), b);
    assert!(store
        .verify(VerifyOptions::new().read_data(true))
        .unwrap()
        .is_clean());

    store.release_blob(&ib).unwrap();
    let r = store.gc(&GcOptions::new()).unwrap();
    assert!(r.packs_deleted + r.packs_compacted > 0, "{r:?}");
    let s = store.stats();
    assert_eq!((s.chunks, s.unique_bytes, s.blobs), (0, 0, 0), "{s:?}");
    // Only the packs being appended to (one per lane: uploads, and the
    // copies of the first compaction) may remain, and they hold nothing live.
    assert!(s.packs <= 2, "{s:?}");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.stats().chunks, 0);
    assert!(store.verify(VerifyOptions::new()).unwrap().is_clean());
}

/// Bytes of the files in `dir` whose name ends with `suffix`.
fn bytes_of(dir: &std::path::Path, suffix: &str) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn gc_leaves_the_metadata_flushed_and_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids: Vec<BlobId> = (0..6)
        .map(|i| put(&store, &noise(40 + i, 1 << 20)))
        .collect();
    for id in &ids[..4] {
        store.release_blob(id).unwrap();
    }
    let meta = dir.path().join("meta");
    let wal = bytes_of(&meta, ".log");
    assert!(
        wal > 4096,
        "the puts are in the write-ahead log: {wal} bytes"
    );
    let r = store.gc(&GcOptions::new()).unwrap();
    assert!(r.chunks_deleted > 0 && r.metadata_compacted, "{r:?}");
    let wal = bytes_of(&meta, ".log");
    assert!(wal < 4096, "write-ahead log after gc: {wal} bytes");
    for id in &ids[4..] {
        assert!(read(&store, id).is_ok());
    }
    drop(store);
    let store = open(dir.path());
    assert_eq!(read(&store, &ids[5]).unwrap(), noise(45, 1 << 20));
    assert!(store.verify(VerifyOptions::new()).unwrap().is_clean());
}

/// A collection that frees a small share of the index leaves the metadata
/// to RocksDB's own compactions: a full one rewrites every table, so its
/// cost grows with the store while this collection freed little.
#[test]
fn a_collection_that_frees_little_leaves_the_metadata_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids: Vec<BlobId> = (0..20)
        .map(|i| put(&store, &noise(60 + i, 1 << 20)))
        .collect();
    store.release_blob(&ids[0]).unwrap();
    let meta = dir.path().join("meta");
    let r = store.gc(&GcOptions::new()).unwrap();
    assert!(r.chunks_deleted > 0 && !r.metadata_compacted, "{r:?}");
    let wal = bytes_of(&meta, ".log");
    assert!(
        wal > 4096,
        "1 blob of 20 freed, yet the write-ahead log was flushed: {wal} bytes"
    );
    // Asked for, the compaction runs even when the collection frees nothing.
    let r = store.gc(&GcOptions::new().compact_metadata(true)).unwrap();
    assert!(r.chunks_deleted == 0 && r.metadata_compacted, "{r:?}");
    let wal = bytes_of(&meta, ".log");
    assert!(
        wal < 4096,
        "write-ahead log after gc --compact-metadata: {wal} bytes"
    );
    for (i, id) in ids.iter().enumerate().skip(1) {
        assert_eq!(read(&store, id).unwrap(), noise(60 + i as u64, 1 << 20));
    }
}

#[test]
fn compaction_rewrites_mostly_dead_packs_and_everything_live_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let blobs: Vec<(BlobId, Vec<u8>)> = (0..24)
        .map(|i| {
            let d = noise(100 + i, 700 << 10);
            (put(&store, &d), d)
        })
        .collect();
    store.sync().unwrap();
    let packs_before = store.stats().packs;
    for (id, _) in blobs
        .iter()
        .step_by(3)
        .chain(blobs.iter().skip(1).step_by(3))
    {
        store.release_blob(id).unwrap();
    }
    let r = store.gc(&GcOptions::new().compact_below(0.6)).unwrap();
    assert!(r.packs_compacted > 0, "{r:?}");
    assert!(r.bytes_reclaimed > 0, "{r:?}");
    let s = store.stats();
    assert!(s.packs < packs_before, "{} -> {}", packs_before, s.packs);
    for (id, d) in blobs.iter().skip(2).step_by(3) {
        assert_eq!(&read(&store, id).unwrap(), d);
    }
    drop(store);
    let store = open(dir.path());
    for (id, d) in blobs.iter().skip(2).step_by(3) {
        assert_eq!(&read(&store, id).unwrap(), d);
    }
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

#[test]
fn a_suspended_upload_resumes_after_reopen_and_an_abandoned_one_is_collected() {
    let dir = tempfile::tempdir().unwrap();
    let data = noise(7, 9 << 20);
    let store = open(dir.path());
    let mut w = store.blob_writer();
    w.write_all(&data[..6 << 20]).unwrap();
    let id = w.suspend().unwrap();
    assert_eq!(store.uploads().unwrap().len(), 1);
    drop(store);

    let store = open(dir.path());
    let mut w = store.resume_upload(id).unwrap();
    let at = w.len() as usize;
    assert!(
        at > (6 << 20) - (128 << 10) && at <= 6 << 20,
        "resumed at {at}"
    );
    assert!(store.resume_upload(id).is_err(), "open twice");
    w.write_all(&data[at..]).unwrap();
    let blob = w.finish().unwrap();
    assert_eq!(blob, BlobId(crate::Hash32::of(&data)));
    assert_eq!(read(&store, &blob).unwrap(), data);
    assert!(store.uploads().unwrap().is_empty());
    assert!(
        store.resume_upload(id).is_err(),
        "finished sessions are gone"
    );

    // Abandoned: suspended, never resumed, expired by gc.
    let other = noise(8, 3 << 20);
    let mut w = store.blob_writer();
    w.write_all(&other).unwrap();
    let sid = w.suspend().unwrap();
    let r = store.gc(&GcOptions::new()).unwrap();
    assert_eq!(r.uploads_expired, 0, "fresh sessions are kept");
    let r = store
        .gc(&GcOptions::new().expire_uploads_after(Duration::ZERO))
        .unwrap();
    assert_eq!(r.uploads_expired, 1);
    assert!(r.chunks_deleted > 0, "{r:?}");
    assert!(store.resume_upload(sid).is_err());
    assert_eq!(read(&store, &blob).unwrap(), data);
    assert!(store
        .verify(VerifyOptions::new().read_data(true))
        .unwrap()
        .is_clean());
}

/// A safetensors file of fp32 tensors `t0`, `t1`, …, with `family` and
/// `step` in its `__metadata__`, so that no two versions (and no two
/// families) share a header chunk: the only chunks two uploads of
/// [`delta_writer`] look up in common are then delta bases.
fn st_file(family: u64, step: u64, tensors: &[Vec<f32>]) -> Vec<u8> {
    let mut header = format!(r#"{{"__metadata__":{{"family":"{family}","step":"{step}"}}"#);
    let mut off = 0;
    for (i, t) in tensors.iter().enumerate() {
        let len = t.len() * 4;
        header.push_str(&format!(
            r#","t{i}":{{"dtype":"F32","shape":[{}],"data_offsets":[{off},{}]}}"#,
            t.len(),
            off + len
        ));
        off += len;
    }
    header.push('}');
    let mut h = header.into_bytes();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + h.len() + off);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for t in tensors {
        out.extend(t.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// Tensors and elements per tensor of a [`delta_writer`] checkpoint: 11 ×
/// 400 kB of fp32 (three 128 KiB grid chunks and a short one each), 4.2 MiB
/// in all, so its first 4 MiB block is cut and handed to the workers while
/// the upload is still being written.
const CKPT_TENSORS: usize = 11;
const CKPT_FLOATS: usize = 100_000;

/// The first checkpoint of `family`: small uniform weights, like a layer.
fn checkpoint0(family: u64) -> Vec<Vec<f32>> {
    (0..CKPT_TENSORS as u64)
        .map(|t| {
            noise(family * 97 + t + 7, CKPT_FLOATS * 4)
                .chunks_exact(4)
                .map(|b| {
                    let u = u32::from_le_bytes(b.try_into().unwrap());
                    ((u >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1
                })
                .collect()
        })
        .collect()
}

/// One optimizer step: every value times (1 + e), |e| < 1e-3.
fn nudge(tensors: &[Vec<f32>], seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    tensors
        .iter()
        .map(|t| {
            t.iter()
                .map(|v| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let e = ((x >> 40) as f32 / (1u32 << 24) as f32 - 0.5) * 2e-3;
                    v * (1.0 + e)
                })
                .collect()
        })
        .collect()
}

type Live = Arc<Mutex<Vec<(BlobId, Arc<Vec<u8>>)>>>;

/// Removes one entry of `id` from the shared list of live blobs.
fn unlive(live: &Live, id: &BlobId) {
    let mut l = live.lock();
    if let Some(p) = l.iter().position(|(x, _)| x == id) {
        l.swap_remove(p);
    }
}

/// Reads `id` back right after it was stored; a problem if it differs.
fn check_back(store: &Store, id: &BlobId, data: &[u8], problems: &Mutex<Vec<String>>) {
    match read(store, id) {
        Ok(back) if back == data => {}
        Ok(_) => problems.lock().push(format!("blob {id} read back wrong")),
        Err(e) => problems.lock().push(format!("blob {id} just stored: {e}")),
    }
}

/// Who writes beside the collector.
#[derive(Clone, Copy)]
struct Mix {
    /// Writers of small overlapping blobs from a shared pool of 24 (one
    /// chunk each), releasing all but their last 3.
    pool_writers: u64,
    /// Writers of [`delta_writer`] checkpoint chains.
    delta_writers: u64,
    /// Delta writers 2k and 2k+1 write the same chain (the same blobs, so
    /// their uploads race on the same new delta chunks).
    paired: bool,
}

/// What [`writers_beside_gc`] saw.
struct Outcome {
    problems: Vec<String>,
    /// Collections run while the writers ran.
    rounds: u64,
    /// Uploads with a delta base that finished.
    delta_puts: u64,
    /// Of those, uploads whose base (and every older version) was released
    /// after the upload's first block had gone to the workers.
    released_in_flight: u64,
    /// Unreferenced chunks collections left alone because of holds.
    chunks_held: u64,
    /// Chunk index entries that are deltas, at the end, before the final
    /// release.
    delta_entries: u64,
}

/// The file of version `step` of a checkpoint of `family`: a safetensors
/// file ([`st_file`]) for an even family, raw fp32 (not a container: a next
/// version is cut where its base was cut) for an odd one.
fn ckpt_file(family: u64, step: u64, tensors: &[Vec<f32>]) -> Vec<u8> {
    if family.is_multiple_of(2) {
        st_file(family, step, tensors)
    } else {
        tensors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect()
    }
}

/// A chain of checkpoints ([`ckpt_file`]) of `family`: version 0 stored whole, then each
/// version a [`nudge`] of the one before, uploaded with the previous version
/// as its delta base. Every third version, all older versions (the base
/// included) are released while the upload is in flight: after its first
/// 4 MiB block has been cut and handed to the workers (which hold, look up
/// and read the base's chunks and publish deltas against them), and the
/// upload then waits for two more collections (`rounds`) before it goes
/// on: so a collection releases the base's manifest and finds those base
/// chunks unreferenced while the deltas against them are held, pending or
/// being committed. Otherwise only the last 3 versions are kept. Returns
/// the versions still held.
#[allow(clippy::too_many_arguments)]
fn delta_writer(
    store: &Store,
    family: u64,
    live: &Live,
    problems: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    delta_puts: &AtomicU64,
    released_in_flight: &AtomicU64,
    rounds: &AtomicU64,
) -> Vec<(BlobId, Arc<Vec<u8>>)> {
    let mut tensors = checkpoint0(family);
    let data = Arc::new(ckpt_file(family, 0, &tensors));
    let id = put(store, &data);
    check_back(store, &id, &data, problems);
    live.lock().push((id, Arc::clone(&data)));
    let mut mine = std::collections::VecDeque::from([(id, data)]);
    let mut step = 0u64;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        tensors = nudge(&tensors, family << 32 | step);
        let data = Arc::new(ckpt_file(family, step, &tensors));
        let base = mine.back().unwrap().0;
        let early = step.is_multiple_of(3);
        let r = store.blob_writer().delta_base(&base).and_then(|mut w| {
            let io = |e| crate::Error::io("<test write>", e);
            let (head, tail) = data.split_at((4 << 20) + 4096);
            w.write_all(head).map_err(io)?;
            if early {
                for (old, _) in mine.drain(..) {
                    unlive(live, &old);
                    store.release_blob(&old)?;
                }
                let r0 = rounds.load(Ordering::Relaxed);
                while rounds.load(Ordering::Relaxed) < r0 + 2 && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            w.write_all(tail).map_err(io)?;
            w.finish()
        });
        let id = match r {
            Ok(id) => id,
            Err(e) => {
                problems
                    .lock()
                    .push(format!("family {family} step {step}: {e}"));
                break;
            }
        };
        delta_puts.fetch_add(1, Ordering::Relaxed);
        if early {
            released_in_flight.fetch_add(1, Ordering::Relaxed);
        }
        check_back(store, &id, &data, problems);
        live.lock().push((id, Arc::clone(&data)));
        mine.push_back((id, data));
        while mine.len() > 3 {
            let (old, _) = mine.pop_front().unwrap();
            unlive(live, &old);
            store.release_blob(&old).unwrap();
        }
    }
    mine.into()
}

/// Writers as `mix` says, 2 readers re-reading live blobs, and a collector
/// looping with `opts` for `run_for` (or until a problem is seen). At the
/// end every blob still held must read back exactly, `verify` with
/// read_data must be clean, and once everything is released a collection
/// must leave no chunk at all.
fn writers_beside_gc(opts: GcOptions, run_for: Duration, mix: Mix) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .pack_size(1 << 20)
        .durability(Durability::Eventual)
        .open(dir.path())
        .unwrap();
    let pool: Arc<Vec<Arc<Vec<u8>>>> = Arc::new(
        (0..24)
            .map(|i| Arc::new(noise(1000 + i, 12 << 10)))
            .collect(),
    );
    let live: Live = Arc::default();
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let delta_puts = Arc::new(AtomicU64::new(0));
    let released_in_flight = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..mix.pool_writers {
        let (store, pool, live, problems, stop) = (
            store.clone(),
            Arc::clone(&pool),
            Arc::clone(&live),
            Arc::clone(&problems),
            Arc::clone(&stop),
        );
        threads.push(std::thread::spawn(move || {
            let mut mine: Vec<(BlobId, Arc<Vec<u8>>)> = Vec::new();
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let data = &pool[(i >> 33) as usize % pool.len()];
                let id = put(&store, data);
                check_back(&store, &id, data, &problems);
                mine.push((id, Arc::clone(data)));
                live.lock().push((id, Arc::clone(data)));
                if mine.len() > 3 {
                    let (old, _) = mine.remove(0);
                    unlive(&live, &old);
                    store.release_blob(&old).unwrap();
                }
            }
            mine
        }));
    }
    for j in 0..mix.delta_writers {
        let family = if mix.paired { j / 2 } else { j };
        let (store, live, problems, stop, puts, early, rounds) = (
            store.clone(),
            Arc::clone(&live),
            Arc::clone(&problems),
            Arc::clone(&stop),
            Arc::clone(&delta_puts),
            Arc::clone(&released_in_flight),
            Arc::clone(&rounds),
        );
        threads.push(std::thread::spawn(move || {
            delta_writer(
                &store, family, &live, &problems, &stop, &puts, &early, &rounds,
            )
        }));
    }
    for r in 0..2u64 {
        let (store, live, problems, stop) = (
            store.clone(),
            Arc::clone(&live),
            Arc::clone(&problems),
            Arc::clone(&stop),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                // A blob listed as live may be released between the pick and
                // the read; only content that disagrees with it counts.
                let pick = {
                    let l = live.lock();
                    if l.is_empty() {
                        None
                    } else {
                        n += 1;
                        Some(l[n as usize % l.len()].clone())
                    }
                };
                if let Some((id, want)) = pick {
                    if let Ok(back) = read(&store, &id) {
                        if back != *want {
                            problems
                                .lock()
                                .push(format!("reader: blob {id} has wrong bytes"));
                        }
                    }
                }
            }
            Vec::new()
        }));
    }
    let start = Instant::now();
    let mut chunks_held = 0;
    // At least MIN_ROUNDS collections and, with delta writers, until
    // collections have met what the tests check they met (deltas, a base
    // released in flight, chunks held), however slow a shared machine
    // makes them (within a generous cap), so the outcome does not depend
    // on its load.
    let covered = |chunks_held: u64| {
        mix.delta_writers == 0
            || (delta_puts.load(Ordering::Relaxed) >= 3
                && released_in_flight.load(Ordering::Relaxed) >= 1
                && chunks_held > 0)
    };
    let running = |rounds: u64, chunks_held: u64| {
        let t = start.elapsed();
        (t < run_for || rounds < MIN_ROUNDS || !covered(chunks_held)) && t < run_for * 24
    };
    while running(rounds.load(Ordering::Relaxed), chunks_held) && problems.lock().is_empty() {
        // A broken collector may leave deltas whose base is gone, which
        // compaction then refuses to copy: a problem, not a panic.
        match store.gc(&opts) {
            Ok(r) => chunks_held += r.chunks_held,
            Err(e) => problems.lock().push(format!("gc: {e}")),
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    let kept: Vec<(BlobId, Arc<Vec<u8>>)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // Full reachability: every blob still held reads back exactly, and
    // verify is clean.
    let mut problems = std::mem::take(&mut *problems.lock());
    for (id, data) in &kept {
        match read(&store, id) {
            Ok(back) if back == **data => {}
            Ok(_) => problems.push(format!("held blob {id} reads back wrong")),
            Err(e) => problems.push(format!("held blob {id}: {e}")),
        }
    }
    if let Err(e) = store.gc(&GcOptions::new()) {
        problems.push(format!("final gc: {e}"));
    }
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    problems.extend(v.problems.iter().map(|p| format!("verify: {p:?}")));
    let delta_entries = delta_entries(&store);
    // Nothing leaks: with every hold released, one collection (cascading
    // through the delta chains) leaves no chunk and no blob.
    for (id, _) in &kept {
        if let Err(e) = store.release_blob(id) {
            problems.push(format!("release of held blob {id}: {e}"));
        }
    }
    match store.gc(&GcOptions::new()) {
        Ok(_) => {
            let s = store.stats();
            if (s.chunks, s.unique_bytes, s.blobs) != (0, 0, 0) {
                problems.push(format!("left after releasing everything: {s:?}"));
            }
        }
        Err(e) => problems.push(format!("gc after releasing everything: {e}")),
    }
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    problems.extend(
        v.problems
            .iter()
            .map(|p| format!("verify at the end: {p:?}")),
    );
    Outcome {
        problems,
        rounds: rounds.load(Ordering::Relaxed),
        delta_puts: delta_puts.load(Ordering::Relaxed),
        released_in_flight: released_in_flight.load(Ordering::Relaxed),
        chunks_held,
        delta_entries,
    }
}

/// Collections the concurrency tests run at least (within 24 × their time).
const MIN_ROUNDS: u64 = 20;

/// Chunk index entries stored as deltas.
fn delta_entries(store: &Store) -> u64 {
    crate::meta::tables::chunks::all(store.inner.chunks().meta())
        .filter(|e| e.as_ref().unwrap().1.base.is_some())
        .count() as u64
}

/// 5 pool writers, and 3 delta writers (a pair writing one safetensors
/// chain, one alone writing a raw one).
const MIXED: Mix = Mix {
    pool_writers: 5,
    delta_writers: 3,
    paired: true,
};

fn show(o: &Outcome) -> String {
    format!(
        "{} problems: {:?}; {} rounds, {} delta uploads ({} with the base released in flight), \
         {} chunks held, {} delta entries",
        o.problems.len(),
        &o.problems[..o.problems.len().min(5)],
        o.rounds,
        o.delta_puts,
        o.released_in_flight,
        o.chunks_held,
        o.delta_entries
    )
}

#[test]
fn gc_beside_eight_writers_and_two_readers_loses_nothing() {
    let o = writers_beside_gc(
        GcOptions::new().compact_below(0.9),
        Duration::from_secs(5),
        MIXED,
    );
    eprintln!("{}", show(&o));
    assert!(o.problems.is_empty(), "{}", show(&o));
    assert!(o.rounds >= MIN_ROUNDS, "collector barely ran: {}", show(&o));
    // Deltas happened, also against bases released in flight, and are
    // still in the index (the live versions are deltas).
    assert!(
        o.delta_puts >= 3 && o.released_in_flight >= 1 && o.delta_entries > 0,
        "{}",
        show(&o)
    );
}

/// Delta writers alone (two pairs, each pair writing one chain, safetensors
/// or raw): every
/// third upload has its base released in flight and waits for two
/// collections, which must keep the base chunks it holds or has deltas
/// pending against.
#[test]
fn gc_beside_delta_writers_keeps_every_base() {
    let o = writers_beside_gc(
        GcOptions::new().compact_below(0.9),
        Duration::from_secs(5),
        Mix {
            pool_writers: 0,
            delta_writers: 4,
            paired: true,
        },
    );
    eprintln!("{}", show(&o));
    assert!(o.problems.is_empty(), "{}", show(&o));
    assert!(o.rounds >= MIN_ROUNDS, "collector barely ran: {}", show(&o));
    // ... and collections met bases held or pending.
    assert!(
        o.delta_puts >= 3 && o.released_in_flight >= 1 && o.delta_entries > 0 && o.chunks_held > 0,
        "{}",
        show(&o)
    );
}

#[test]
fn a_collector_that_ignores_upload_holds_is_caught() {
    let mut broken = GcOptions::new().compact_below(0.9);
    broken.ignore_holds = true;
    let o = writers_beside_gc(broken, Duration::from_secs(20), MIXED);
    eprintln!("{}", show(&o));
    assert!(
        !o.problems.is_empty(),
        "the test did not notice a collector that deletes chunks uploads just found: {}",
        show(&o)
    );
}

/// Delta writers alone, each with its own chain (safetensors with headers
/// unique per version, or raw): no two uploads look up the same chunk
/// except as a delta base,
/// so a collector that ignores holds (on bases being read, and on bases of
/// deltas appended but not committed) can only be caught on that path.
#[test]
fn a_collector_that_ignores_delta_base_holds_is_caught() {
    let mut broken = GcOptions::new().compact_below(0.9);
    broken.ignore_holds = true;
    let o = writers_beside_gc(
        broken,
        Duration::from_secs(20),
        Mix {
            pool_writers: 0,
            delta_writers: 3,
            paired: false,
        },
    );
    eprintln!("{}", show(&o));
    assert!(
        !o.problems.is_empty(),
        "the test did not notice a collector that deletes delta bases uploads hold: {}",
        show(&o)
    );
    // Caught as a delta whose base is gone: when read, when verified, or
    // when the commit that would index it measures its chain.
    assert!(
        o.problems.iter().any(|p| p.contains("a base of chunk")
            || p.contains("chunk-base-missing")
            || p.contains("a delta base that is not in the chunk index")),
        "{}",
        show(&o)
    );
}

#[test]
fn a_store_written_before_reference_counts_gets_them_at_open() {
    use crate::meta::{Batch, Meta};
    let dir = tempfile::tempdir().unwrap();
    let kept = noise(50, 600 << 10);
    let held = noise(51, 300 << 10);
    let (held_id, m_id) = {
        let store = open(dir.path());
        let m = store.create_model(crate::NewModel::new("old")).unwrap();
        let mut w = store.blob_writer();
        w.write_all(&kept).unwrap();
        m.add_version_staged(vec![("w.bin".into(), w.stage().unwrap())], None)
            .unwrap();
        (put(&store, &held), m.id())
    };
    // Make it look like a store from before: no counts, no gc work, no marker.
    {
        let meta = Meta::open(&dir.path().join("meta"), false).unwrap();
        let mut b = Batch::default();
        crate::meta::tables::refs::damage::clear(&meta, &mut b);
        crate::meta::tables::gc_queue::clear(&meta, &mut b);
        crate::meta::tables::singletons::unmark_refcounts_built(&mut b);
        meta.commit(b, true).unwrap();
    }
    let store = open(dir.path());
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    // The standalone blob got a hold; the version's blob is kept by the version.
    store.release_blob(&held_id).unwrap();
    let m = store.model(m_id).unwrap();
    m.delete_version(1, crate::DeleteOptions::new()).unwrap();
    store.gc(&GcOptions::new()).unwrap();
    let s = store.stats();
    assert_eq!((s.chunks, s.blobs, s.versions), (0, 0, 0), "{s:?}");
}

// ---------------------------------------------------------------------------
// Power cuts under `Durability::Eventual` (see `meta::power_cut`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::meta::power_cut;

/// A store directory whose metadata's durable states are recorded, and
/// where they go.
fn watched() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    let copies = tmp.path().join("durable");
    power_cut::watch(&vault.join("meta"), &copies);
    (tmp, vault, copies)
}

/// Pack files in the store.
fn pack_files(vault: &Path) -> usize {
    std::fs::read_dir(vault.join("packs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pack")
        })
        .count()
}

/// 24 blobs of 700 KiB (a 1 MiB pack holds parts of two or three) and,
/// after the 12th, one of 3 MiB (its middle packs hold nothing else), all
/// made durable with `Store::sync`. Returns them, the 3 MiB one last.
fn durable_blobs(store: &Store) -> Vec<(BlobId, Vec<u8>)> {
    let mut blobs = Vec::new();
    for i in 0..24u64 {
        let d = noise(300 + i, 700 << 10);
        blobs.push((put(store, &d), d));
        if i == 11 {
            let big = noise(400, 3 << 20);
            blobs.push((put(store, &big), big));
        }
    }
    let big = blobs.remove(12);
    blobs.push(big);
    store.sync().unwrap();
    blobs
}

/// After a power cut: every blob that was durable reads back exactly,
/// unless it was released (then it is gone, or still reads back exactly:
/// the release was never made durable), and `verify --read-data` is clean.
fn check_after_power_cut(vault: &Path, blobs: &[(BlobId, Vec<u8>)], released: &HashSet<BlobId>) {
    let store = open(vault);
    for (id, d) in blobs {
        if released.contains(id) && !store.contains_blob(id).unwrap() {
            continue;
        }
        match read(&store, id) {
            Ok(back) => assert!(back == *d, "blob {id} reads back different bytes"),
            Err(e) => panic!("blob {id}, durable before the gc, is lost: {e}"),
        }
    }
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    // And the store goes on: a collection finishes whatever was left.
    store.gc(&GcOptions::new()).unwrap();
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

/// Releases two of every three small blobs and the large one (the last).
fn release_most(store: &Store, blobs: &[(BlobId, Vec<u8>)]) -> HashSet<BlobId> {
    let n = blobs.len() - 1;
    let released: HashSet<BlobId> = blobs[..n]
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(_, (id, _))| *id)
        .chain([blobs[n].0])
        .collect();
    for id in &released {
        store.release_blob(id).unwrap();
    }
    released
}

/// Compaction moves live entries and deletes whole-dead packs with
/// `Durability::Eventual`; the releases, sweeps and moves are written
/// without a WAL fsync. A power cut right after the collection must not
/// leave an index that names a deleted pack.
#[test]
fn a_power_cut_after_an_eventual_gc_loses_no_durable_blob() {
    let (_tmp, vault, copies) = watched();
    let store = open(&vault);
    let blobs = durable_blobs(&store);
    // Released after the sync: durable only if something syncs later.
    let released = release_most(&store, &blobs);
    let r = store.gc(&GcOptions::new().compact_below(0.6)).unwrap();
    assert!(r.packs_compacted > 0 && r.packs_deleted > 0, "{r:?}");
    drop(store);
    power_cut::cut(&vault.join("meta"), &copies);
    check_after_power_cut(&vault, &blobs, &released);
}

/// The same with compaction off: only packs with no live record left are
/// deleted, decided by sweeps written without a WAL fsync.
#[test]
fn a_power_cut_after_an_eventual_gc_deleting_dead_packs_loses_no_durable_blob() {
    let (_tmp, vault, copies) = watched();
    let store = open(&vault);
    let blobs = durable_blobs(&store);
    let big = blobs.last().unwrap().0;
    store.release_blob(&big).unwrap();
    let r = store.gc(&GcOptions::new().compact_below(0.0)).unwrap();
    assert!(r.packs_deleted > 0 && r.packs_compacted == 0, "{r:?}");
    drop(store);
    power_cut::cut(&vault.join("meta"), &copies);
    check_after_power_cut(&vault, &blobs, &HashSet::from([big]));
}

/// A crash between the commit that stops the index naming a pack and the
/// unlink leaves the pack for the next open to delete; that open decides
/// from commits that may not be durable yet, and a power cut after it must
/// not bring back an index naming the pack it deleted.
#[test]
fn a_power_cut_after_an_open_that_deleted_an_emptied_pack_loses_no_durable_blob() {
    let (_tmp, vault, copies) = watched();
    let store = open(&vault);
    let blobs = durable_blobs(&store);
    let released = release_most(&store, &blobs);
    let mut crash = GcOptions::new().compact_below(0.6);
    crash.crash_at = Some(super::CrashAt::BeforeUnlink);
    assert!(store.gc(&crash).is_err());
    // The process dies; the next one replays what its WAL holds.
    drop(store);
    let before = pack_files(&vault);
    drop(open(&vault));
    assert!(
        pack_files(&vault) < before,
        "the open deleted no pack: the test no longer tests that"
    );
    power_cut::cut(&vault.join("meta"), &copies);
    check_after_power_cut(&vault, &blobs, &released);
}

// ---------------------------------------------------------------------------
// Releasing dead manifests.

/// Chunks of at most 1 KiB, so a manifest has many segments cheaply.
fn tiny_chunks(dir: &Path, durability: Durability) -> Store {
    Store::options()
        .chunking(crate::chunking::CdcParams {
            min: 64,
            avg: 256,
            max: 1024,
        })
        .durability(durability)
        .open(dir)
        .unwrap()
}

/// Segments stored for the blob `id`'s manifest.
fn segments_of(store: &Store, id: &BlobId) -> usize {
    let m = store.blob_record(id).unwrap().unwrap().manifest;
    crate::meta::tables::manifests::segments(store.inner.chunks().meta(), m, None).count()
}

/// 24 MiB of zeros: 1 KiB chunks, one chunk id, 24 segments of 1,024
/// entries each; `mark` makes the first chunk (and the blob) differ.
fn zeros(mark: u8) -> Vec<u8> {
    let mut d = vec![0u8; 24 << 20];
    d[0] = mark;
    d
}

#[test]
fn releasing_a_large_manifest_holds_a_few_segments_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = tiny_chunks(dir.path(), Durability::Eventual);
    let id = put(&store, &zeros(1));
    let segments = segments_of(&store, &id);
    assert!(
        segments >= 3 * super::collect::SEGMENTS_PER_COMMIT,
        "only {segments} segments"
    );
    store.release_blob(&id).unwrap();
    super::collect::probe::take_most_segments_held();
    let r = store.gc(&GcOptions::new()).unwrap();
    let held = super::collect::probe::take_most_segments_held();
    assert_eq!(r.manifests_released, 1, "{r:?}");
    assert!(
        (1..=super::collect::SEGMENTS_PER_COMMIT).contains(&held),
        "releasing a manifest of {segments} segments held {held} of them at once"
    );
    let s = store.stats();
    assert_eq!((s.chunks, s.blobs), (0, 0), "{s:?}");
    assert!(store.verify(VerifyOptions::new()).unwrap().is_clean());
}

/// A collection cut short between two commits of a manifest's release
/// leaves the rest of it counted; the next one finishes it without
/// releasing any reference twice.
#[test]
fn a_release_cut_short_is_finished_by_the_next_gc_without_counting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (zeros(1), zeros(2));
    let (ia, ib) = {
        let store = tiny_chunks(dir.path(), Durability::Immediate);
        let (ia, ib) = (put(&store, &a), put(&store, &b));
        store.release_blob(&ia).unwrap();
        let mut crash = GcOptions::new();
        crash.crash_at = Some(super::CrashAt::ReleaseCommits(2));
        assert!(store.gc(&crash).is_err());
        assert!(segments_of_any(&store) > segments_of(&store, &ib));
        (ia, ib)
    };
    let store = tiny_chunks(dir.path(), Durability::Immediate);
    let v = store.verify(VerifyOptions::new()).unwrap();
    assert!(v.is_clean(), "partly released: {:?}", v.problems);
    let r = store.gc(&GcOptions::new()).unwrap();
    assert_eq!(r.manifests_released, 1, "{r:?}");
    assert!(!store.contains_blob(&ia).unwrap());
    assert_eq!(read(&store, &ib).unwrap(), b);
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    store.release_blob(&ib).unwrap();
    store.gc(&GcOptions::new()).unwrap();
    let s = store.stats();
    assert_eq!((s.chunks, s.blobs), (0, 0), "{s:?}");
    assert!(store.verify(VerifyOptions::new()).unwrap().is_clean());
}

/// Every manifest segment stored.
fn segments_of_any(store: &Store) -> usize {
    crate::meta::tables::manifests::all(store.inner.chunks().meta()).count()
}

// ---------------------------------------------------------------------------
// Damaged packs and a full disk.

/// Live record bytes per sealed pack, and pack sizes, as compaction counts
/// them: the packs a collection with `compact_below` would rewrite (some
/// live, below the fraction).
fn compactable(store: &Store, compact_below: f64) -> Vec<u32> {
    use std::collections::HashMap;
    let sizes = store.inner.chunks().pack_sizes().0;
    let open = store.inner.chunks().open_packs();
    let mut live: HashMap<u32, u64> = HashMap::new();
    for e in crate::meta::tables::chunks::all(store.inner.chunks().meta()) {
        let (_, loc) = e.unwrap();
        *live.entry(loc.pack).or_default() +=
            crate::pack::RECORD_HEADER_LEN as u64 + loc.stored_len as u64;
    }
    let mut out: Vec<u32> = sizes
        .iter()
        .filter(|(p, _)| !open.contains(p))
        .filter(|(p, &len)| {
            let l = live.get(p).copied().unwrap_or(0);
            l > 0 && (l as f64) < compact_below * (len - crate::pack::PACK_HEADER_LEN as u64) as f64
        })
        .map(|(p, _)| *p)
        .collect();
    out.sort_unstable();
    out
}

/// The index entries naming `pack`.
fn entries_in(store: &Store, pack: u32) -> Vec<(crate::ChunkId, crate::pack::ChunkLoc)> {
    crate::meta::tables::chunks::all(store.inner.chunks().meta())
        .map(|e| e.unwrap())
        .filter(|(_, loc)| loc.pack == pack)
        .collect()
}

/// Flips a byte in the payload of the first live record of `pack`.
fn damage_a_record(store: &Store, pack: u32) {
    let (_, loc) = entries_in(store, pack).into_iter().next().unwrap();
    let path = store
        .path()
        .join("packs")
        .join(crate::pack::pack_file_name(pack));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = loc.offset as usize + crate::pack::RECORD_HEADER_LEN + loc.stored_len as usize / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
}

/// Small blobs made mostly dead (two of three released): returns the ones
/// kept.
fn mostly_dead(store: &Store, seed: u64, n: u64) -> Vec<(BlobId, Vec<u8>)> {
    let blobs: Vec<(BlobId, Vec<u8>)> = (0..n)
        .map(|i| {
            let d = noise(seed + i, 700 << 10);
            (put(store, &d), d)
        })
        .collect();
    let mut kept = Vec::new();
    for (i, (id, d)) in blobs.into_iter().enumerate() {
        if i % 3 == 2 {
            kept.push((id, d));
        } else {
            store.release_blob(&id).unwrap();
        }
    }
    kept
}

#[test]
fn a_pack_with_an_unreadable_record_is_skipped_and_the_others_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let kept = mostly_dead(&store, 500, 24);
    // Sweep first, so the live bytes per pack are those compaction sees.
    store.gc(&GcOptions::new().compact_below(0.0)).unwrap();
    let chosen = compactable(&store, 0.6);
    assert!(chosen.len() >= 2, "compactable packs: {chosen:?}");
    let bad = chosen[0];
    damage_a_record(&store, bad);
    let bad_entries = entries_in(&store, bad);
    let bad_path = dir
        .path()
        .join("packs")
        .join(crate::pack::pack_file_name(bad));

    let r = store.gc(&GcOptions::new().compact_below(0.6)).unwrap();
    assert_eq!(r.packs_skipped.len(), 1, "{r:?}");
    assert_eq!(r.packs_skipped[0].pack, bad, "{r:?}");
    assert!(
        r.packs_skipped[0]
            .error
            .contains(&format!("pack {bad:08x}")),
        "{r:?}"
    );
    assert_eq!(r.packs_compacted, chosen.len() as u64 - 1, "{r:?}");
    assert!(bad_path.exists(), "the damaged pack was deleted");
    assert_eq!(entries_in(&store, bad), bad_entries, "its entries changed");
    assert!(compactable(&store, 0.6) == vec![bad]);

    // The next collection meets it again, and still reclaims the rest.
    let kept2 = mostly_dead(&store, 600, 12);
    let r = store.gc(&GcOptions::new().compact_below(0.6)).unwrap();
    assert_eq!(r.packs_skipped.len(), 1, "{r:?}");
    assert_eq!(r.packs_skipped[0].pack, bad, "{r:?}");
    assert!(r.packs_compacted > 0 && r.chunks_deleted > 0, "{r:?}");
    assert!(bad_path.exists());
    assert_eq!(entries_in(&store, bad), bad_entries);
    assert_eq!(compactable(&store, 0.6), vec![bad]);

    // Everything not in the damaged pack reads back.
    let damaged: HashSet<crate::ChunkId> = bad_entries.into_iter().map(|(k, _)| k).collect();
    for (id, d) in kept.iter().chain(&kept2) {
        match read(&store, id) {
            Ok(back) => assert!(back == *d, "blob {id} reads back different bytes"),
            Err(e) => {
                let m = store.blob_record(id).unwrap().unwrap().manifest;
                let uses_bad =
                    crate::meta::tables::manifests::segments(store.inner.chunks().meta(), m, None)
                        .flat_map(|seg| seg.unwrap().entries.unwrap())
                        .any(|e| damaged.contains(&e.id));
                assert!(uses_bad, "blob {id} is unreadable: {e}");
            }
        }
    }
}

/// The pack file layer on a disk that fills up: once `full` is set, the
/// writes (or, with `syncs_fail`, only the syncs) after the first `spare`
/// ones fail with ENOSPC, a write after writing half its buffer.
struct DiskFull {
    full: Arc<AtomicBool>,
    syncs_fail: bool,
    spare: u64,
    used: Arc<AtomicU64>,
}

struct DiskFullFile {
    file: std::fs::File,
    full: Arc<AtomicBool>,
    syncs_fail: bool,
    spare: u64,
    used: Arc<AtomicU64>,
}

fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(28)
}

impl DiskFullFile {
    fn fails(&self, is_sync: bool) -> bool {
        self.full.load(Ordering::SeqCst)
            && is_sync == self.syncs_fail
            && self.used.fetch_add(1, Ordering::SeqCst) >= self.spare
    }
}

impl crate::pack::io::PackIo for DiskFull {
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn crate::pack::io::PackFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(self.wrap(file))
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn crate::pack::io::PackFile>> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(self.wrap(file))
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

impl DiskFull {
    fn wrap(&self, file: std::fs::File) -> Arc<dyn crate::pack::io::PackFile> {
        Arc::new(DiskFullFile {
            file,
            full: Arc::clone(&self.full),
            syncs_fail: self.syncs_fail,
            spare: self.spare,
            used: Arc::clone(&self.used),
        })
    }
}

impl crate::pack::io::PackFile for DiskFullFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.fails(false) {
            FileExt::write_all_at(&self.file, &buf[..buf.len() / 2], offset)?;
            return Err(enospc());
        }
        FileExt::write_all_at(&self.file, buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if self.fails(true) {
            return Err(enospc());
        }
        self.file.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        if self.fails(true) {
            return Err(enospc());
        }
        self.file.sync_all()
    }
}

/// The disk fills up while compaction copies records (the first write or
/// sync that fails is the first, second or third of the collection, or
/// only syncs fail): the collection fails with an error saying so, every
/// blob still reads back, and once there is room again the store reopens
/// and a collection finishes the work.
#[test]
fn a_full_disk_during_compaction_fails_the_gc_and_loses_nothing() {
    for (syncs_fail, spare) in [(false, 0), (false, 1), (false, 2), (true, 0), (true, 1)] {
        let what = format!("syncs_fail {syncs_fail}, spare {spare}");
        let dir = tempfile::tempdir().unwrap();
        let full = Arc::new(AtomicBool::new(false));
        let layer = |full: &Arc<AtomicBool>| {
            Arc::new(DiskFull {
                full: Arc::clone(full),
                syncs_fail,
                spare,
                used: Arc::new(AtomicU64::new(0)),
            })
        };
        let mut opts = Store::options()
            .pack_size(1 << 20)
            .durability(Durability::Eventual);
        opts.pack_io = layer(&full);
        let store = opts.open(dir.path()).unwrap();
        let kept = mostly_dead(&store, 700, 24);
        // Sweep first: the collection below then only compacts.
        store.gc(&GcOptions::new().compact_below(0.0)).unwrap();
        store.sync().unwrap();
        assert!(compactable(&store, 0.6).len() >= 2);

        full.store(true, Ordering::SeqCst);
        let err = store
            .gc(&GcOptions::new().compact_below(0.6))
            .expect_err(&what);
        match &err {
            crate::Error::Io { path, source } => {
                assert_eq!(source.raw_os_error(), Some(28), "{what}: {err}");
                assert!(path.starts_with(dir.path().join("packs")), "{what}: {err}");
            }
            e => panic!("{what}: not an I/O error naming the pack: {e}"),
        }
        assert!(err.to_string().contains("No space left on device"), "{err}");
        for (id, d) in &kept {
            assert!(read(&store, id).unwrap() == *d, "{what}: blob {id}");
        }
        drop(store);

        // Room again: reopen, collect, everything reads back.
        full.store(false, Ordering::SeqCst);
        let mut opts = Store::options()
            .pack_size(1 << 20)
            .durability(Durability::Eventual);
        opts.pack_io = layer(&full);
        let store = opts.open(dir.path()).unwrap();
        let r = store.gc(&GcOptions::new().compact_below(0.6)).unwrap();
        assert!(r.packs_skipped.is_empty(), "{what}: {r:?}");
        assert!(compactable(&store, 0.6).is_empty(), "{what}: {r:?}");
        for (id, d) in &kept {
            assert!(read(&store, id).unwrap() == *d, "{what}: blob {id}");
        }
        let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
        assert!(v.is_clean(), "{what}: {:?}", v.problems);
    }
}
