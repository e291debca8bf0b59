//! Verify beside writers (held mid-scan through [`super::pause`]), and
//! damage it must still find.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;

use super::pause::{self, Stage};
use crate::test_support::noise;
use crate::{
    BlobId, DeleteOptions, Durability, FileEntry, GcOptions, NewModel, Store, VerifyOptions,
};

fn put(store: &Store, data: &[u8]) -> BlobId {
    let mut w = store.blob_writer();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn open(dir: &std::path::Path) -> Store {
    Store::options()
        .pack_size(1 << 20)
        .durability(Durability::Eventual)
        .open(dir)
        .unwrap()
}

/// Adds a version of model `name` holding one file of `data`, dropping the
/// caller's hold so that only the version keeps the blob.
fn version(store: &Store, name: &str, data: &[u8]) -> u32 {
    let blob = put(store, data);
    let m = match store.model_by_name(name) {
        Ok(m) => m,
        Err(_) => store.create_model(NewModel::new(name)).unwrap(),
    };
    let v = m
        .add_version(vec![FileEntry {
            path: "w.bin".into(),
            blob,
            size: data.len() as u64,
        }])
        .unwrap();
    store.release_blob(&blob).unwrap();
    v
}

/// A store with a few versions sharing chunks, a delta-free history to verify.
fn populated(dir: &std::path::Path) -> Store {
    let store = open(dir);
    let base = noise(1, 600_000);
    for i in 0..4u64 {
        let mut data = base.clone();
        data.extend(noise(10 + i, 200_000));
        version(&store, "m", &data);
    }
    store
}

enum Msg {
    Paused,
    Done(crate::Result<crate::VerifyReport>),
}

/// Starts a verify of `store` on another thread, held at `stage` until the
/// returned sender sends. The receiver gets `Paused` when it is held and
/// `Done` with the report when it returns.
fn held_verify(
    store: &Store,
    stage: Stage,
    opts: VerifyOptions,
) -> (
    mpsc::Receiver<Msg>,
    mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let paused = tx.clone();
    pause::set(store.inner.path(), stage, move || {
        let _ = paused.send(Msg::Paused);
        let _ = go_rx.lock().recv();
    });
    let s = store.clone();
    let h = std::thread::spawn(move || {
        let r = s.verify(opts);
        let _ = tx.send(Msg::Done(r));
    });
    (rx, go_tx, h)
}

/// A writer thread commits (blobs, versions, a deletion) while a verify is
/// held in the middle of its reference-count scan: verify does not take the
/// commit lock, so the commits complete; the verify then finishes clean.
#[test]
fn commits_complete_while_a_verify_is_held_mid_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path());
    let (rx, go, h) = held_verify(&store, Stage::Refs, VerifyOptions::new());
    assert!(
        matches!(rx.recv().unwrap(), Msg::Paused),
        "verify never reached its reference-count scan"
    );
    // If verify held the commit lock here, the writer below would wait for
    // it forever: check first, so that such a failure is reported, not hung.
    let lock_free = store.inner.chunks().commit_lock_free();
    let mut committed = 0;
    if lock_free {
        let s = store.clone();
        committed = std::thread::spawn(move || {
            let mut n = 0;
            for i in 0..3u64 {
                version(&s, "w", &noise(100 + i, 150_000));
                n += 1;
            }
            s.model_by_name("m")
                .unwrap()
                .delete_version(1, DeleteOptions::new())
                .unwrap();
            n + 1
        })
        .join()
        .unwrap();
    }
    go.send(()).unwrap();
    let report = match rx.recv().unwrap() {
        Msg::Done(r) => r.unwrap(),
        Msg::Paused => panic!("paused twice"),
    };
    h.join().unwrap();
    pause::clear(store.inner.path());
    assert!(
        lock_free,
        "verify holds the commit lock during its scan: every writer waits for it"
    );
    assert_eq!(committed, 4);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(store.verify(VerifyOptions::new()).unwrap().is_clean());
}

/// Commits of every kind, and a collection that compacts packs, made while
/// a verify is held (before it reads anything, after the chunk scan, and
/// mid reference-count scan) cause no false problems: verify reads one
/// consistent point in time.
#[test]
fn commits_during_a_verify_cause_no_false_problems() {
    for (i, stage) in [Stage::Chunks, Stage::Start, Stage::Refs]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let store = populated(dir.path());
        let held = put(&store, &noise(50, 300_000));
        let (rx, go, h) = held_verify(&store, stage, VerifyOptions::new().read_data(true));
        assert!(matches!(rx.recv().unwrap(), Msg::Paused), "{stage:?}");
        // Only commit when verify lets writers through (the test above
        // reports a verify that does not).
        if store.inner.chunks().commit_lock_free() {
            version(&store, "m", &noise(60 + i as u64, 400_000));
            version(&store, "n", &noise(70 + i as u64, 100_000));
            let m = store.model_by_name("m").unwrap();
            m.delete_version(2, DeleteOptions::new()).unwrap();
            store.release_blob(&held).unwrap();
            store.gc(&GcOptions::new().compact_below(0.9)).unwrap();
        }
        go.send(()).unwrap();
        let report = match rx.recv().unwrap() {
            Msg::Done(r) => r.unwrap(),
            Msg::Paused => panic!("paused twice"),
        };
        h.join().unwrap();
        pause::clear(store.inner.path());
        assert!(
            report.is_clean(),
            "held at {stage:?}: false problems {:#?}",
            report.problems
        );
        assert!(store
            .verify(VerifyOptions::new().read_data(true))
            .unwrap()
            .is_clean());
    }
}

/// Verifies (with and without reading the data) run again and again beside
/// writers, deleters and collections, and find nothing wrong.
#[test]
fn verify_beside_writers_deleters_and_collections_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (s, stop, commits) = (store.clone(), stop.clone(), commits.clone());
        threads.push(std::thread::spawn(move || {
            let name = format!("w{t}");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut data = noise(1, 300_000);
                data.extend(noise(1000 * t + i, 100_000));
                let v = version(&s, &name, &data);
                if v > 2 {
                    s.model_by_name(&name)
                        .unwrap()
                        .delete_version(v - 2, DeleteOptions::new())
                        .unwrap();
                }
                commits.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    {
        let (s, stop) = (store.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                s.gc(&GcOptions::new().compact_below(0.9)).unwrap();
            }
        }));
    }
    let mut problems = Vec::new();
    for round in 0..8 {
        // Let the writers make progress between two verifies.
        let seen = commits.load(Ordering::Relaxed);
        while commits.load(Ordering::Relaxed) < seen + 2 && !threads.iter().any(|t| t.is_finished())
        {
            std::thread::yield_now();
        }
        let r = store
            .verify(VerifyOptions::new().read_data(round % 2 == 1))
            .unwrap();
        problems.extend(r.problems);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(problems.is_empty(), "false problems: {problems:#?}");
    assert!(store
        .verify(VerifyOptions::new().read_data(true))
        .unwrap()
        .is_clean());
}

/// The problems of a verify with the default budgets and with budgets of
/// one (a pass per differing bucket, a pass per manifest id): the same.
fn problems_with_any_budget(store: &Store) -> Vec<(String, String)> {
    let key = |r: crate::VerifyReport| {
        let mut v: Vec<(String, String)> = r
            .problems
            .into_iter()
            .map(|p| (p.kind.to_string(), p.object))
            .collect();
        v.sort();
        v
    };
    let default = key(store.verify(VerifyOptions::new()).unwrap());
    let tiny = super::refs::Budgets {
        localize: 1,
        owners: 1,
    };
    let small = key(store.verify(VerifyOptions::new().budgets(tiny)).unwrap());
    assert_eq!(default, small, "the budgets changed what verify found");
    default
}

/// Reference counts, kept blobs, leaked chunks and manifest ownership
/// broken by hand (one at a time, then undone) are each found, naming what
/// is wrong, whatever the memory budgets.
#[test]
fn broken_counts_and_ownership_are_found_whatever_the_budgets() {
    use crate::meta::tables::refs::{self, Count, Stored};
    use crate::meta::tables::{blobs, chunks, uploads};
    use crate::meta::Batch;
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path());
    // An upload session that owns a manifest with segments.
    let mut w = store.blob_writer();
    w.write_all(&noise(90, 3 << 20)).unwrap();
    w.suspend().unwrap();
    assert!(problems_with_any_budget(&store).is_empty());

    let meta = store.inner.chunks().meta();
    // The stored counts of one kind, in key order.
    let counts = |blob: bool| -> Vec<(Count, u64)> {
        refs::all(meta)
            .filter_map(|s| match s.unwrap() {
                Stored::Count(c @ Count::Chunk(_), n) if !blob => Some((c, n.unwrap())),
                Stored::Count(c @ Count::Blob(_), n) if blob => Some((c, n.unwrap())),
                _ => None,
            })
            .collect()
    };
    let chunk_counts = counts(false);
    let id_of = |c: &Count| crate::Hash32(*c.id()).to_string();
    // Each case: the writes that break the store, and a (kind, object) it must report.
    let mut cases: Vec<(&str, Batch, Batch, (String, String))> = Vec::new();

    // A count one too high.
    let (k, v) = chunk_counts[0];
    let mut bad = Batch::default();
    refs::put(&mut bad, k, v + 1);
    let mut undo = Batch::default();
    refs::put(&mut undo, k, v);
    cases.push((
        "count +1",
        bad,
        undo,
        ("refcount".into(), format!("chunk {}", id_of(&k))),
    ));

    // Two counts swapped: the sums stay equal, the fingerprints do not.
    let (k1, v1) = *chunk_counts.iter().find(|(_, v)| *v > 1).unwrap();
    let (k2, v2) = *chunk_counts.iter().find(|(_, v)| *v == 1).unwrap();
    let mut bad = Batch::default();
    refs::put(&mut bad, k1, v2);
    refs::put(&mut bad, k2, v1);
    let mut undo = Batch::default();
    refs::put(&mut undo, k1, v1);
    refs::put(&mut undo, k2, v2);
    cases.push((
        "swapped",
        bad,
        undo,
        ("refcount".into(), format!("chunk {}", id_of(&k2))),
    ));

    // One reference moved to an id in the same bucket: the bucket's count
    // total is unchanged, its fingerprint is not.
    let (k, v) = *chunk_counts.iter().find(|(_, v)| *v > 1).unwrap();
    let mut near = *k.id();
    near[31] ^= 0xff;
    let near = Count::Chunk(crate::Hash32(near));
    let mut bad = Batch::default();
    refs::put(&mut bad, k, v - 1);
    refs::put(&mut bad, near, 1);
    let mut undo = Batch::default();
    refs::put(&mut undo, k, v);
    refs::delete(&mut undo, near);
    cases.push((
        "moved within a bucket",
        bad,
        undo,
        ("refcount".into(), format!("chunk {}", id_of(&k))),
    ));

    // A blob's reference count lost: wrong, and the blob is kept by nothing.
    let (bk, bv) = counts(true).remove(0);
    let mut bad = Batch::default();
    refs::delete(&mut bad, bk);
    let mut undo = Batch::default();
    refs::put(&mut undo, bk, bv);
    cases.push((
        "blob count lost",
        bad,
        undo,
        ("refcount".into(), format!("blob {}", id_of(&bk))),
    ));

    // A count for a chunk that nothing references (and that does not exist).
    let ghost = Count::Chunk(crate::Hash32([0xab; 32]));
    let mut bad = Batch::default();
    refs::put(&mut bad, ghost, 5);
    let mut undo = Batch::default();
    refs::delete(&mut undo, ghost);
    cases.push((
        "ghost count",
        bad,
        undo,
        ("refcount".into(), format!("chunk {}", id_of(&ghost))),
    ));

    // A malformed `refs` key.
    let mut bad = Batch::default();
    refs::damage::put_raw(&mut bad, b"c-short", 1);
    let mut undo = Batch::default();
    refs::damage::delete_raw(&mut undo, b"c-short");
    cases.push((
        "bad key",
        bad,
        undo,
        ("refs-key-corrupt".into(), hex::encode(b"c-short")),
    ));

    // An indexed chunk that nothing references and that is no candidate.
    let (_, loc) = chunks::all(meta).next().unwrap().unwrap();
    let leaked = crate::Hash32([0x01u8; 32]);
    let mut bad = Batch::default();
    chunks::put(&mut bad, &leaked, &loc);
    let mut undo = Batch::default();
    chunks::delete(&mut undo, &leaked);
    cases.push((
        "leaked",
        bad,
        undo,
        ("chunk-leaked".into(), format!("chunk {leaked}")),
    ));

    // A second blob record naming a blob's manifest.
    let (_, blob_rec) = blobs::entries(meta).next().unwrap().unwrap();
    let blob_rec = blob_rec.unwrap();
    let manifest = blob_rec.manifest;
    let twin = crate::BlobId(crate::Hash32([0x02u8; 32]));
    let mut bad = Batch::default();
    blobs::put(&mut bad, &twin, &blob_rec);
    let mut undo = Batch::default();
    blobs::delete(&mut undo, &twin);
    cases.push((
        "two owners",
        bad,
        undo,
        ("manifest-owners".into(), format!("manifest {manifest}")),
    ));

    // The upload session's record lost: its manifest's segments are orphans.
    let (session, rec) = uploads::all(meta).next().unwrap().unwrap();
    let mut bad = Batch::default();
    uploads::delete(&mut bad, session);
    let mut undo = Batch::default();
    uploads::put(&mut undo, session, &rec, None);
    cases.push((
        "orphan",
        bad,
        undo,
        ("manifest-orphan".into(), format!("manifest {session}")),
    ));

    for (name, bad, undo, want) in cases {
        meta.commit(bad, true).unwrap();
        let found = problems_with_any_budget(&store);
        assert!(found.contains(&want), "{name}: {want:?} not in {found:#?}");
        meta.commit(undo, true).unwrap();
        let left = problems_with_any_budget(&store);
        assert!(left.is_empty(), "{name} undone: {left:#?}");
    }
}

/// Version records that name a missing blob or a blob of another size are
/// each reported, naming the version.
#[test]
fn versions_naming_missing_or_resized_blobs_are_found() {
    use crate::meta::registry_records::{VersionFile, VersionRecord};
    use crate::meta::tables::versions;
    use crate::meta::Batch;
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path());
    let model = store.model_by_name("m").unwrap();
    let stored = model.version(Some(1)).unwrap().files.remove(0);
    let rec = VersionRecord {
        files: vec![
            VersionFile {
                path: "gone.bin".into(),
                blob: BlobId(crate::Hash32::of(b"a blob never stored")),
                size: 5,
                format: stored.format,
            },
            VersionFile {
                size: stored.size + 1,
                ..stored.clone()
            },
        ],
        created_ms: 0,
        experiment: None,
    };
    let id = model.id();
    let mut bad = Batch::default();
    versions::put(&mut bad, &id, 90, &rec);
    store.inner.chunks().meta().commit(bad, true).unwrap();

    let found = problems_with_any_budget(&store);
    for kind in ["blob-missing", "file-size"] {
        let want = (kind.to_string(), format!("model {id}@90"));
        assert!(found.contains(&want), "{want:?} not in {found:#?}");
    }
}

/// A model, experiment or version record that does not decode is a problem
/// `verify` reports beside the others, not an error that throws the whole
/// report away; the index repair refuses to run on top of it (the entries
/// such a record implies are unknown) and changes nothing.
#[test]
fn undecodable_registry_records_are_reported_and_block_the_index_repair() {
    use crate::meta::tables::{experiments, models, versions};
    use crate::meta::Batch;
    use crate::NewExperiment;
    let dir = tempfile::tempdir().unwrap();
    let store = populated(dir.path());
    let exp = store
        .create_experiment(NewExperiment::new("p", "run"))
        .unwrap();
    let model = store.model_by_name("m").unwrap().id();
    let meta = store.inner.chunks().meta();
    let garbage = vec![0xff; 7];
    let mut bad = Batch::default();
    models::put_raw(&mut bad, &model, garbage.clone());
    experiments::put_raw(&mut bad, &exp.id(), garbage.clone());
    versions::put_raw(&mut bad, &model, 2, garbage);
    // Another kind of damage, to show the report still carries it.
    let leaked = crate::Hash32::of(b"an index entry for nothing");
    crate::meta::tables::chunks::put(
        &mut bad,
        &leaked,
        &crate::meta::tables::chunks::all(meta)
            .next()
            .unwrap()
            .unwrap()
            .1,
    );
    meta.commit(bad, true).unwrap();

    let found = problems_with_any_budget(&store);
    for (kind, object) in [
        ("model-corrupt", format!("model {model}")),
        ("experiment-corrupt", format!("experiment {}", exp.id())),
        ("version-corrupt", format!("model {model}@2")),
    ] {
        let want = (kind.to_string(), object);
        assert!(found.contains(&want), "{want:?} not in {found:#?}");
    }
    assert!(
        found.iter().any(|(k, _)| k == "chunk-leaked"),
        "the other damage is reported too: {found:#?}"
    );

    let index_before: Vec<_> = crate::meta::tables::index::entries(meta)
        .map(|e| e.unwrap())
        .collect();
    let err = store.rebuild_index().unwrap_err().to_string();
    // The first record that does not decode, in scan order, is named.
    assert!(err.contains("experiment record"), "{err}");
    let index_after: Vec<_> = crate::meta::tables::index::entries(meta)
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(
        index_before, index_after,
        "a refused repair changes nothing"
    );
}
