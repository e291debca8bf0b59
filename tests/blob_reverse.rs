//! Reverse deltas (`Store::reverse_delta`): once a newer version of a file
//! is stored whole, the older version's chunks become deltas against it.
//! Every version still reads back byte-identical, the newest needs no base,
//! chains stay within the configured depth whatever mix of forward and
//! reverse deltas made them, and each pass reclaims the packs its replaced
//! records emptied.

use std::io::Write;

use modelvault::{BlobId, GcOptions, Store};

use crate::blob_delta::{nudge_f32, run, stored, verify_clean};
use crate::common::{get, noise, put, temp_store, weights};

/// Stores `data` cut like `older` (if any), then rebases `older` onto it.
fn put_reverse(
    store: &Store,
    data: &[u8],
    older: Option<&BlobId>,
) -> (BlobId, modelvault::ReverseDeltaReport) {
    let mut w = store.blob_writer();
    if let Some(o) = older {
        w = w.cut_like(o).unwrap();
    }
    w.write_all(data).unwrap();
    let id = w.finish().unwrap();
    let report = match older {
        Some(o) => store.reverse_delta(o, &id).unwrap(),
        None => Default::default(),
    };
    (id, report)
}

fn store_with_depth(depth: u8) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .max_delta_depth(depth)
        .open(dir.path().join("vault"))
        .unwrap();
    (dir, store)
}

#[test]
fn older_versions_become_deltas_and_everything_reads_back() {
    let v = run(4);
    // Small packs, so that the replaced records are in sealed packs.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .pack_size(1 << 20)
        .open(dir.path().join("vault"))
        .unwrap();
    let mut ids: Vec<BlobId> = Vec::new();
    for data in &v {
        let (id, r) = put_reverse(&store, data, ids.last());
        if !ids.is_empty() {
            // Every float chunk of the older version pairs and shrinks.
            assert!(r.rebased >= 10 && r.rebased == r.paired, "{r:?}");
            assert!(r.bytes_after * 10 < r.bytes_before * 8, "{r:?}");
            assert_eq!(r.busy, 0);
        }
        ids.push(id);
    }
    for (id, data) in ids.iter().zip(&v) {
        assert_eq!(&get(&store, id), data);
    }
    assert!(verify_clean(&store).delta_chunks >= 30);
    // The replaced records are dead bytes until compaction.
    let before = stored(&store);
    let gc = store.gc(&GcOptions::new().compact_below(0.99)).unwrap();
    assert!(gc.bytes_reclaimed > 0, "{gc:?}");
    assert!(stored(&store) < before);
    for (id, data) in ids.iter().zip(&v) {
        assert_eq!(&get(&store, id), data);
    }
    verify_clean(&store);
    // Releasing every older version leaves only whole chunks: the newest
    // never depended on them.
    for id in &ids[..3] {
        store.release_blob(id).unwrap();
    }
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(verify_clean(&store).delta_chunks, 0);
    assert_eq!(get(&store, &ids[3]), v[3]);
}

#[test]
fn the_newest_version_can_go_first_its_chunks_stay_as_bases() {
    let v = run(3);
    let (_d, store) = temp_store();
    let (a, _) = put_reverse(&store, &v[0], None);
    let (b, _) = put_reverse(&store, &v[1], Some(&a));
    let (c, r) = put_reverse(&store, &v[2], Some(&b));
    assert!(r.rebased > 0);
    // Deleting the newest and then the middle: their chunks are still the
    // bases of the older versions' deltas.
    store.release_blob(&c).unwrap();
    store.release_blob(&b).unwrap();
    store.gc(&GcOptions::new().compact_below(0.99)).unwrap();
    assert!(!store.contains_blob(&c).unwrap());
    assert_eq!(get(&store, &a), v[0]);
    assert!(verify_clean(&store).delta_chunks > 0);
    // Reopened, the same.
    let dir = store.path().to_path_buf();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(get(&store, &a), v[0]);
    store.release_blob(&a).unwrap();
    store.gc(&GcOptions::new()).unwrap();
    let s = store.stats();
    assert_eq!((s.chunks, s.blobs), (0, 0), "{s:?}");
}

#[test]
fn chains_stay_within_the_configured_depth() {
    let v = run(6);
    let (_d, store) = store_with_depth(2);
    let mut ids: Vec<BlobId> = Vec::new();
    let mut rebased = Vec::new();
    for data in &v {
        let (id, r) = put_reverse(&store, data, ids.last());
        rebased.push(r.rebased);
        ids.push(id);
    }
    // v0 -> v1 -> v2 is as long as depth 2 allows: v2 stays whole when v3
    // arrives, and the next chain starts at v3.
    assert!(rebased[1] > 0 && rebased[2] > 0, "{rebased:?}");
    assert_eq!(rebased[3], 0, "{rebased:?}");
    assert!(rebased[4] > 0 && rebased[5] > 0, "{rebased:?}");
    for (id, data) in ids.iter().zip(&v) {
        assert_eq!(&get(&store, id), data);
    }
    verify_clean(&store);
}

#[test]
fn forward_chains_count_against_the_depth_of_a_reverse_delta() {
    // v0 <- v1 <- v2 as forward deltas: v0's chunks end chains of 2.
    let v = run(5);
    let (_d, store) = store_with_depth(2);
    let mut prev: Option<BlobId> = None;
    let mut ids = Vec::new();
    for data in &v[..3] {
        let mut w = store.blob_writer();
        if let Some(p) = &prev {
            w = w.delta_base(p).unwrap();
        }
        w.write_all(data).unwrap();
        let id = w.finish().unwrap();
        ids.push(id);
        prev = Some(id);
    }
    assert!(verify_clean(&store).delta_chunks >= 20);
    // Rebasing v0 onto a new whole version would make those chains 3 long.
    let (fresh, _) = put_reverse(&store, &v[3], None);
    let r = store.reverse_delta(&ids[0], &fresh).unwrap();
    assert!(r.paired > 0 && r.rebased == 0, "{r:?}");
    // v2's chunks are deltas themselves: never rebased.
    let r = store.reverse_delta(&ids[2], &fresh).unwrap();
    assert_eq!(r.rebased, 0, "{r:?}");
    // With room for one more, v0 is rebased, and everything reads back.
    let dir = store.path().to_path_buf();
    drop(store);
    let store = Store::options().max_delta_depth(3).open(&dir).unwrap();
    let r = store.reverse_delta(&ids[0], &fresh).unwrap();
    assert!(r.rebased > 0, "{r:?}");
    for (id, data) in ids.iter().zip(&v[..3]) {
        assert_eq!(&get(&store, id), data);
    }
    verify_clean(&store);
    // ... and a forward delta onto v2, whose chain is now 3 long although
    // its records say 2, has no room left: stored whole.
    let deltas = verify_clean(&store).delta_chunks;
    let mut w = store.blob_writer().delta_base(&ids[2]).unwrap();
    w.write_all(&v[4]).unwrap();
    let id = w.finish().unwrap();
    assert_eq!(get(&store, &id), v[4]);
    assert_eq!(verify_clean(&store).delta_chunks, deltas);
}

#[test]
fn files_that_are_not_containers_pair_by_byte_range() {
    let v1 = weights(4 * 400_000, 21);
    let v2 = nudge_f32(&v1, 22);
    let (_d, store) = temp_store();
    let (a, _) = put_reverse(&store, &v1, None);
    let (b, r) = put_reverse(&store, &v2, Some(&a));
    assert!(r.rebased >= 5, "{r:?}");
    assert_eq!(get(&store, &a), v1);
    assert_eq!(get(&store, &b), v2);
    verify_clean(&store);
}

#[test]
fn unrelated_missing_or_identical_blobs_change_nothing() {
    let (_d, store) = temp_store();
    let a = put(&store, &noise(300_000, 1));
    let b = put(&store, &noise(300_000, 2));
    let before = stored(&store);
    // Incompressible against each other: nothing is smaller as a delta.
    let r = store.reverse_delta(&a, &b).unwrap();
    assert_eq!(r.rebased, 0, "{r:?}");
    assert_eq!(store.reverse_delta(&a, &a).unwrap().rebased, 0);
    let missing = BlobId(modelvault::Hash32([7; 32]));
    assert!(store
        .reverse_delta(&a, &missing)
        .unwrap_err()
        .is_not_found());
    assert!(store
        .reverse_delta(&missing, &a)
        .unwrap_err()
        .is_not_found());
    assert_eq!(get(&store, &a), noise(300_000, 1));
    assert!(stored(&store) >= before);
    assert_eq!(verify_clean(&store).delta_chunks, 0);
}

/// The newest version's whole records and the reverse deltas that replace
/// the previous version go to different packs (pack lanes), also across
/// reopens: once the whole records die, their packs die whole, and each
/// reverse pass deletes the sealed ones it emptied instead of copying
/// deltas forward, so no collection is needed to get the space back.
#[test]
fn replaced_whole_records_leave_packs_the_pass_deletes_without_copying() {
    let v = run(6);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let open = || {
        Store::options()
            .pack_size(1 << 20)
            .max_delta_depth(8)
            .open(&path)
            .unwrap()
    };
    let mut ids: Vec<BlobId> = Vec::new();
    let (mut reclaimed, mut copied, mut packs) = (0, 0, 0);
    for data in &v {
        // A fresh handle per version, like one CLI `put` each.
        let store = open();
        let (id, r) = put_reverse(&store, data, ids.last());
        if !ids.is_empty() {
            assert!(r.rebased >= 10, "{r:?}");
        }
        reclaimed += r.bytes_reclaimed;
        copied += r.bytes_copied;
        packs += r.packs_reclaimed;
        ids.push(id);
    }
    assert!(
        packs > 0 && reclaimed > 0,
        "{packs} packs, {reclaimed} bytes reclaimed"
    );
    assert!(
        copied * 20 < reclaimed,
        "the passes copied {copied} bytes to reclaim {reclaimed}"
    );
    // What a collection still finds is little next to what the passes freed.
    let store = open();
    let r = store.gc(&GcOptions::new().compact_below(0.9)).unwrap();
    assert!(
        r.bytes_reclaimed * 4 < reclaimed,
        "gc reclaimed {} after the passes reclaimed {reclaimed}",
        r.bytes_reclaimed
    );
    for (id, data) in ids.iter().zip(&v) {
        assert_eq!(&get(&store, id), data);
    }
    verify_clean(&store);
}
