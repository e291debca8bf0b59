//! Chunks stored as deltas against the previous version of a file
//! (`BlobWriter::delta_base`): smaller, byte-identical on read, kept alive
//! by the references deltas hold on their bases, bounded in depth, and
//! failing loudly when a base is damaged.

use std::io::Write;

use modelvault::{BlobId, GcOptions, Store, VerifyOptions};

use crate::common::{flip, get, noise, packs, put, safetensors, temp_store, weights};

/// A checkpoint: two fp32 tensors and a bf16 one (about 1.3 MB).
fn checkpoint(w1: &[u8], w2: &[u8], h: &[u8]) -> Vec<u8> {
    safetensors(&[
        ("layers.0.weight", "F32", w1.len() / 4, w1),
        ("layers.1.weight", "F32", w2.len() / 4, w2),
        ("embed", "BF16", h.len() / 2, h),
    ])
}

pub use crate::common::nudge_f32;

/// About one bf16 value in eight moves by one unit in the last place.
fn nudge_bf16(v: &[u8], seed: u64) -> Vec<u8> {
    let r = noise(v.len() / 2, seed);
    v.chunks_exact(2)
        .zip(r)
        .flat_map(|(x, n)| {
            let b = u16::from_le_bytes([x[0], x[1]]);
            (if n % 8 == 0 { b.wrapping_add(1) } else { b }).to_le_bytes()
        })
        .collect()
}

fn bf16_of(f32s: &[u8]) -> Vec<u8> {
    f32s.chunks_exact(4).flat_map(|q| [q[2], q[3]]).collect()
}

/// Versions 1..=n of a training run: each a step from the one before.
pub fn run(n: usize) -> Vec<Vec<u8>> {
    let (mut w1, mut w2) = (weights(4 * 200_000, 1), weights(4 * 60_000, 2));
    let mut h = bf16_of(&weights(4 * 50_000, 3));
    let mut out = vec![checkpoint(&w1, &w2, &h)];
    for step in 1..n as u64 {
        w1 = nudge_f32(&w1, 100 + step);
        w2 = nudge_f32(&w2, 200 + step);
        h = nudge_bf16(&h, 300 + step);
        out.push(checkpoint(&w1, &w2, &h));
    }
    out
}

fn put_on(store: &Store, data: &[u8], base: Option<&BlobId>) -> BlobId {
    let mut w = store.blob_writer();
    if let Some(b) = base {
        w = w.delta_base(b).unwrap();
    }
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// Pack bytes the store keeps.
pub fn stored(store: &Store) -> u64 {
    store.stats().stored_bytes
}

pub fn verify_clean(store: &Store) -> modelvault::VerifyReport {
    let r = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(r.is_clean(), "{:#?}", r.problems);
    r
}

#[test]
fn a_nudged_checkpoint_is_stored_as_deltas_and_reads_back() {
    let v = run(2);
    // The same two versions with and without a base.
    let (_a, plain) = temp_store();
    put_on(&plain, &v[0], None);
    let before = stored(&plain);
    put_on(&plain, &v[1], None);
    let plain_cost = stored(&plain) - before;

    let (_b, store) = temp_store();
    let b1 = put_on(&store, &v[0], None);
    let before = stored(&store);
    let b2 = put_on(&store, &v[1], Some(&b1));
    let delta_cost = stored(&store) - before;

    assert_eq!(get(&store, &b2), v[1]);
    assert_eq!(get(&store, &b1), v[0]);
    assert!(
        delta_cost * 10 < plain_cost * 8,
        "with a base the second version cost {delta_cost} bytes, without {plain_cost}"
    );
    let r = verify_clean(&store);
    // Every float chunk of the second version, and only those, is a delta.
    assert!(r.delta_chunks >= 10, "{} deltas", r.delta_chunks);
    assert_eq!(verify_clean(&plain).delta_chunks, 0);
    // Ranged reads inside a delta chunk.
    let mut rd = store.blob_reader(&b2).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = vec![0u8; 1000];
    rd.seek(SeekFrom::Start(300_001)).unwrap();
    rd.read_exact(&mut buf).unwrap();
    assert_eq!(buf, v[1][300_001..301_001]);
}

#[test]
fn a_base_that_is_not_a_container_or_unrelated_changes_nothing() {
    let v = run(1);
    let (_d, store) = temp_store();
    let junk = put(&store, &noise(300_000, 9));
    let other = put(
        &store,
        &safetensors(&[("x", "F32", 1000, &weights(4000, 5))]),
    );
    for base in [&junk, &other] {
        let id = put_on(&store, &v[0], Some(base));
        assert_eq!(get(&store, &id), v[0]);
    }
    assert_eq!(verify_clean(&store).delta_chunks, 0);
    // A base that is not stored is an error, before anything is written.
    let missing = BlobId(modelvault::Hash32([3; 32]));
    let err = store.blob_writer().delta_base(&missing).err().unwrap();
    assert!(err.is_not_found(), "{err}");
    // And so is setting one after writing.
    let mut w = store.blob_writer();
    w.write_all(b"abc").unwrap();
    assert!(w.delta_base(&junk).is_err());
}

#[test]
fn releasing_the_base_keeps_the_chunks_its_deltas_need() {
    let v = run(3);
    let (_d, store) = temp_store();
    let b1 = put_on(&store, &v[0], None);
    let b2 = put_on(&store, &v[1], Some(&b1));
    let b3 = put_on(&store, &v[2], Some(&b2));
    store.release_blob(&b1).unwrap();
    store.release_blob(&b2).unwrap();
    let gc = GcOptions::new().compact_below(0.99);
    store.gc(&gc).unwrap();
    assert!(!store.contains_blob(&b1).unwrap());
    assert_eq!(get(&store, &b3), v[2]);
    let r = verify_clean(&store);
    assert!(r.delta_chunks > 0);
    // Reopened, still whole.
    let dir = store.path().to_path_buf();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(get(&store, &b3), v[2]);
    // Releasing the last version frees everything, chains included.
    store.release_blob(&b3).unwrap();
    let report = store.gc(&gc).unwrap();
    assert!(report.chunks_deleted > 0);
    let s = store.stats();
    assert_eq!((s.chunks, s.blobs, s.unique_bytes), (0, 0, 0), "{s:?}");
    verify_clean(&store);
}

#[test]
fn chains_stop_at_the_configured_depth() {
    let v = run(7);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .max_delta_depth(2)
        .open(dir.path().join("vault"))
        .unwrap();
    let mut ids: Vec<BlobId> = Vec::new();
    let mut cost = Vec::new();
    for (i, data) in v.iter().enumerate() {
        let before = stored(&store);
        ids.push(put_on(&store, data, ids.last().filter(|_| i > 0)));
        cost.push(stored(&store) - before);
    }
    for (id, data) in ids.iter().zip(&v) {
        assert_eq!(&get(&store, id), data);
    }
    // Depths 0 1 2 0 1 2 0: versions 0, 3 and 6 are stored whole.
    for i in [1, 2, 4, 5] {
        for whole in [3, 6] {
            assert!(
                cost[i] * 10 < cost[whole] * 8,
                "version {i} cost {}, whole version {whole} {}: {cost:?}",
                cost[i],
                cost[whole]
            );
        }
    }
    verify_clean(&store);
    // Turning deltas off stores everything whole.
    let dir2 = tempfile::tempdir().unwrap();
    let off = Store::options()
        .max_delta_depth(0)
        .open(dir2.path().join("vault"))
        .unwrap();
    let a = put_on(&off, &v[0], None);
    put_on(&off, &v[1], Some(&a));
    assert_eq!(verify_clean(&off).delta_chunks, 0);
}

#[test]
fn a_damaged_base_fails_its_deltas_and_verify_names_them() {
    let v = run(2);
    let (_d, store) = temp_store();
    let b1 = put_on(&store, &v[0], None);
    let len_after_v1 = std::fs::read_dir(store.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum::<u64>();
    let b2 = put_on(&store, &v[1], Some(&b1));
    assert!(verify_clean(&store).delta_chunks > 0);
    // Flip a byte in the middle of the first version's records: inside a
    // float chunk that the second version's deltas are encoded against.
    flip(&packs(&store)[0], len_after_v1 / 2);
    for id in [&b1, &b2] {
        let mut out = Vec::new();
        let err =
            std::io::Read::read_to_end(&mut store.blob_reader(id).unwrap(), &mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains(&id.to_string()), "{err}");
    }
    let r = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    let affected: Vec<&String> = r.problems.iter().flat_map(|p| &p.affected).collect();
    for id in [&b1, &b2] {
        assert!(
            affected.iter().any(|a| a.contains(&id.to_string())),
            "verify does not name blob {id}: {:#?}",
            r.problems
        );
    }
}

#[test]
fn files_that_are_not_containers_follow_the_base_cuts() {
    // Raw fp32 arrays (an HDF5 or TensorFlow.js shard looks like this to
    // the store): the second version is cut where the first was cut.
    let v1 = weights(4 * 400_000, 11);
    let v2 = nudge_f32(&v1, 12);
    let (_d, store) = temp_store();
    let b1 = put_on(&store, &v1, None);
    let b2 = put_on(&store, &v2, Some(&b1));
    assert_eq!(get(&store, &b2), v2);
    let deltas = verify_clean(&store).delta_chunks;
    assert!(deltas >= 5, "{deltas} deltas");
    // Longer than the base, shifted by an insert, or identical: correct,
    // and the unchanged ranges are deduplicated against the base.
    let mut longer = v2.clone();
    longer.extend_from_slice(&noise(300_000, 13));
    let mut shifted = b"inserted".to_vec();
    shifted.extend_from_slice(&v2);
    for data in [&longer, &shifted, &v1] {
        let before = store.stats().unique_bytes;
        let id = put_on(&store, data, Some(&b1));
        assert_eq!(&get(&store, &id), data);
        if std::ptr::eq(data, &v1) {
            assert_eq!(
                store.stats().unique_bytes,
                before,
                "v1 again stored new chunks"
            );
        }
    }
    verify_clean(&store);
}

#[test]
fn delta_bases_match_by_path_then_by_a_unique_size() {
    let (_d, store) = temp_store();
    let blob = |n: usize, seed: u64| put(&store, &noise(n, seed));
    let (a, b, c, d) = (blob(10, 1), blob(20, 2), blob(20, 3), blob(30, 4));
    let file = |path: &str, blob: BlobId, size: u64| modelvault::FileEntry {
        path: path.into(),
        blob,
        size,
    };
    store
        .commit_version(
            "m",
            vec![
                file("a.bin", a, 10),
                file("b.bin", b, 20),
                file("c.bin", c, 20),
                file("old-name.bin", d, 30),
            ],
        )
        .unwrap();
    let (m, v) = store.resolve_model("m").unwrap();
    let v = m.version(v).unwrap();
    let got = v.delta_bases(&[
        ("a.bin", 99),        // same path, whatever the size
        ("x.bin", 10),        // a.bin is claimed by its own path
        ("y.bin", 20),        // two candidates: none
        ("new-name.bin", 30), // renamed: the only unclaimed file of that size
    ]);
    assert_eq!(got, vec![Some(a), None, None, Some(d)]);
}
