//! Collection tests that need the crate's insides: the broken-collector
//! switch, and exact space accounting.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::{BlobId, Durability, GcOptions, Store, VerifyOptions};

/// Deterministic bytes that compress poorly (so packs fill).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

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
    // Only the pack being appended to may remain, and it holds nothing live.
    assert!(s.packs <= 1, "{s:?}");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.stats().chunks, 0);
    assert!(store.verify(VerifyOptions::new()).unwrap().is_clean());
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

/// 8 writers store overlapping small blobs (one chunk each, drawn from a
/// small pool) and release them again, 2 readers re-read live ones, and a
/// collector loops. Returns the problems seen.
fn writers_beside_gc(opts: GcOptions, run_for: Duration) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .pack_size(1 << 20)
        .durability(Durability::Eventual)
        .open(dir.path())
        .unwrap();
    let pool: Arc<Vec<Vec<u8>>> = Arc::new((0..24).map(|i| noise(1000 + i, 12 << 10)).collect());
    let live: Arc<Mutex<Vec<BlobId>>> = Arc::default();
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..8u64 {
        let (store, pool, live, problems, stop) = (
            store.clone(),
            Arc::clone(&pool),
            Arc::clone(&live),
            Arc::clone(&problems),
            Arc::clone(&stop),
        );
        threads.push(std::thread::spawn(move || {
            let mut mine: Vec<BlobId> = Vec::new();
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let data = &pool[(i >> 33) as usize % pool.len()];
                let id = put(&store, data);
                match read(&store, &id) {
                    Ok(back) if &back == data => {}
                    Ok(_) => problems.lock().push(format!("blob {id} read back wrong")),
                    Err(e) => problems.lock().push(format!("blob {id} just stored: {e}")),
                }
                mine.push(id);
                live.lock().push(id);
                if mine.len() > 3 {
                    let old = mine.remove(0);
                    let mut l = live.lock();
                    if let Some(p) = l.iter().position(|x| *x == old) {
                        l.swap_remove(p);
                    }
                    drop(l);
                    store.release_blob(&old).unwrap();
                }
            }
            mine
        }));
    }
    for r in 0..2u64 {
        let (store, live, problems, stop, pool) = (
            store.clone(),
            Arc::clone(&live),
            Arc::clone(&problems),
            Arc::clone(&stop),
            Arc::clone(&pool),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                // A blob listed as live may be released between the pick and
                // the read; only content that disagrees with the pool counts.
                let pick = {
                    let l = live.lock();
                    if l.is_empty() {
                        None
                    } else {
                        n += 1;
                        Some(l[n as usize % l.len()])
                    }
                };
                if let Some(id) = pick {
                    if let Ok(back) = read(&store, &id) {
                        if !pool.contains(&back) {
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
    while start.elapsed() < run_for && problems.lock().is_empty() {
        store.gc(&opts).unwrap();
        rounds.fetch_add(1, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    let kept: Vec<BlobId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // Full reachability: every blob still held reads back, and verify is clean.
    let mut problems = std::mem::take(&mut *problems.lock());
    for id in &kept {
        if let Err(e) = read(&store, id) {
            problems.push(format!("held blob {id}: {e}"));
        }
    }
    store.gc(&GcOptions::new()).unwrap();
    let v = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    problems.extend(v.problems.iter().map(|p| format!("verify: {p:?}")));
    assert!(rounds.load(Ordering::Relaxed) > 10, "collector barely ran");
    problems
}

#[test]
fn gc_beside_eight_writers_and_two_readers_loses_nothing() {
    let problems = writers_beside_gc(GcOptions::new().compact_below(0.9), Duration::from_secs(4));
    assert!(
        problems.is_empty(),
        "{} problems: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
}

#[test]
fn a_collector_that_ignores_upload_holds_is_caught() {
    let mut broken = GcOptions::new().compact_below(0.9);
    broken.ignore_holds = true;
    let problems = writers_beside_gc(broken, Duration::from_secs(20));
    assert!(
        !problems.is_empty(),
        "the test did not notice a collector that deletes chunks uploads just found"
    );
}

#[test]
fn a_store_written_before_reference_counts_gets_them_at_open() {
    use crate::meta::{Batch, Cf, Meta};
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
        for cf in [Cf::Refs, Cf::Gc] {
            for kv in meta.scan_prefix(cf, &[], &[]) {
                b.delete(cf, kv.unwrap().0.to_vec());
            }
        }
        b.delete(Cf::Meta, b"refcounts".to_vec());
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
