//! Lengths and offsets that come from metadata are checked before they are
//! used. Index entries, manifest segments, blob records and registry
//! records are rewritten with the raw RocksDB API (the store closed) to hold
//! hostile values: a stored length of 4 GiB, a chunk longer than the store
//! cuts, a record past its pack's committed length or at an offset that
//! overflows, segments whose lengths sum past the blob, typed values nested
//! a million levels deep. Each gives a clean integrity error naming what is
//! wrong: never a huge allocation, a wrong byte, a panic or a stack overflow.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use modelvault::query::{Value, MAX_VALUE_DEPTH};
use modelvault::{ArtifactBody, BlobId, Error, NewExperiment, NewModel, Store, VerifyOptions};

use crate::common::{noise, put};

/// The store's RocksDB, opened directly (the store must be closed).
fn raw_db(store: &Path) -> rocksdb::DB {
    let meta = store.join("meta");
    let o = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&o, &meta).unwrap();
    let cfs = cfs
        .iter()
        .map(|n| rocksdb::ColumnFamilyDescriptor::new(n, o.clone()));
    rocksdb::DB::open_cf_descriptors(&o, &meta, cfs).unwrap()
}

fn put_raw(db: &rocksdb::DB, cf: &str, k: &[u8], v: &[u8]) {
    db.put_cf(db.cf_handle(cf).unwrap(), k, v).unwrap();
    db.flush_wal(true).unwrap();
}

fn get_raw(db: &rocksdb::DB, cf: &str, k: &[u8]) -> Vec<u8> {
    db.get_cf(db.cf_handle(cf).unwrap(), k).unwrap().unwrap()
}

/// A store holding one blob of several chunks (about 300 KB of noise, so
/// every chunk is stored raw); returns the store's directory and the blob.
fn one_blob(tmp: &Path) -> (std::path::PathBuf, BlobId, Vec<u8>) {
    let dir = tmp.join("store");
    let data = noise(300_000, 11);
    let store = Store::create(&dir).unwrap();
    let blob = put(&store, &data);
    (dir, blob, data)
}

/// The blob record's manifest id, and the first segment's first chunk id.
fn first_chunk(db: &rocksdb::DB, blob: &BlobId) -> (u64, [u8; 32]) {
    let rec = get_raw(db, "blobs", blob.as_bytes());
    let manifest = u64::from_le_bytes(rec[17..25].try_into().unwrap());
    let seg = get_raw(
        db,
        "manifests",
        &[manifest.to_be_bytes(), 0u64.to_be_bytes()].concat(),
    );
    (manifest, seg[5..37].try_into().unwrap())
}

/// Rewrites the index entry of the blob's first chunk with `f`.
fn forge_first_entry(dir: &Path, blob: &BlobId, f: impl FnOnce(&mut Vec<u8>)) {
    let db = raw_db(dir);
    let (_, chunk) = first_chunk(&db, blob);
    let mut entry = get_raw(&db, "chunks", &chunk);
    f(&mut entry);
    put_raw(&db, "chunks", &chunk, &entry);
}

fn read_all(store: &Store, id: &BlobId) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.blob_reader(id).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

/// Reading the blob fails with an integrity error whose message holds every
/// one of `want`, and verify with `--read-data` reports a problem saying
/// the same.
fn refused(dir: &Path, blob: &BlobId, want: &[&str]) {
    let store = Store::open(dir).unwrap();
    let e = read_all(&store, blob).expect_err("a forged entry was read");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    let msg = e.to_string();
    for w in want {
        assert!(msg.contains(w), "{w:?} not in: {msg}");
    }
    let r = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| want.iter().all(|w| p.detail.contains(w))),
        "{:?}",
        r.problems
    );
}

#[test]
fn an_index_entry_with_a_4_gib_stored_length_is_refused_before_any_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, blob, _) = one_blob(tmp.path());
    forge_first_entry(&dir, &blob, |e| {
        e[13..17].copy_from_slice(&u32::MAX.to_le_bytes())
    });
    refused(&dir, &blob, &["chunk index entry", "stored_len 4294967295"]);
}

#[test]
fn an_index_entry_longer_than_the_store_cuts_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, blob, _) = one_blob(tmp.path());
    // Within the format's limit (16 MiB), far above this store's 128 KiB.
    forge_first_entry(&dir, &blob, |e| {
        e[17..21].copy_from_slice(&(16u32 << 20).to_le_bytes())
    });
    refused(&dir, &blob, &["raw_len 16777216", "chunk maximum"]);
}

#[test]
fn an_index_entry_at_an_overflowing_offset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, blob, _) = one_blob(tmp.path());
    forge_first_entry(&dir, &blob, |e| {
        e[5..13].copy_from_slice(&(u64::MAX - 10).to_le_bytes())
    });
    refused(&dir, &blob, &["chunk index entry", "overflows"]);
}

#[test]
fn an_index_entry_past_its_packs_committed_length_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, blob, data) = one_blob(tmp.path());
    // Move the first chunk's entry to the pack's committed end, and make the
    // pack file long enough to hold a copy of the record there: only the
    // committed length says it is not part of the store.
    let db = raw_db(&dir);
    let (_, chunk) = first_chunk(&db, &blob);
    let mut entry = get_raw(&db, "chunks", &chunk);
    let pack = u32::from_le_bytes(entry[1..5].try_into().unwrap());
    let offset = u64::from_le_bytes(entry[5..13].try_into().unwrap());
    let stored = u32::from_le_bytes(entry[13..17].try_into().unwrap()) as u64;
    let committed = u64::from_le_bytes(
        get_raw(&db, "packs", &pack.to_be_bytes())[1..9]
            .try_into()
            .unwrap(),
    );
    let path = dir.join("packs").join(format!("{pack:08x}.pack"));
    let bytes = std::fs::read(&path).unwrap();
    let mut grown = bytes[..committed as usize].to_vec();
    grown.extend_from_slice(&bytes[offset as usize..(offset + 52 + stored) as usize]);
    entry[5..13].copy_from_slice(&committed.to_le_bytes());
    put_raw(&db, "chunks", &chunk, &entry);
    drop(db);
    // The open truncates a pack to its committed length: append the copy
    // only once the store is open.
    let store = Store::open(&dir).unwrap();
    std::fs::write(&path, &grown).unwrap();
    let e = read_all(&store, &blob).expect_err("a record past the committed length was read");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("committed"), "{e}");
    // Nothing else was harmed: the rest of the blob reads.
    let mut r = store.blob_reader(&blob).unwrap();
    r.seek(SeekFrom::Start(200_000)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, data[200_000..]);
}

#[test]
fn a_manifest_segment_whose_lengths_sum_past_the_blob_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, blob, data) = one_blob(tmp.path());
    {
        let db = raw_db(&dir);
        let (manifest, chunk) = first_chunk(&db, &blob);
        // The blob now claims the whole u64 range; a segment starts 10
        // bytes before its end with a chunk of 100 bytes: offset + length
        // overflows.
        let mut rec = get_raw(&db, "blobs", blob.as_bytes());
        rec[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        put_raw(&db, "blobs", blob.as_bytes(), &rec);
        let mut seg = vec![1u8];
        seg.extend_from_slice(&1u32.to_le_bytes());
        seg.extend_from_slice(&chunk);
        seg.extend_from_slice(&100u32.to_le_bytes());
        let key = [manifest.to_be_bytes(), (u64::MAX - 10).to_be_bytes()].concat();
        put_raw(&db, "manifests", &key, &seg);
    }
    let store = Store::open(&dir).unwrap();
    let mut r = store.blob_reader(&blob).unwrap();
    r.seek(SeekFrom::Start(u64::MAX - 5)).unwrap();
    let e = r
        .read(&mut [0u8; 16])
        .expect_err("read inside a forged segment");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("runs past the blob"), "{e}");
    // The real segments still read.
    let mut r = store.blob_reader(&blob).unwrap();
    let mut head = vec![0u8; 1000];
    r.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..1000]);
}

/// A value nested `depth` levels: lists of one element around `Int(7)`.
fn nested(depth: usize) -> Value {
    let mut v = Value::Int(7);
    for _ in 1..depth {
        v = Value::List(vec![v]);
    }
    v
}

/// postcard bytes of `nested(depth)`.
fn nested_bytes(depth: usize) -> Vec<u8> {
    let mut b = [4u8, 1].repeat(depth - 1);
    b.extend_from_slice(&[0, 14]);
    b
}

/// Replaces the one occurrence of `nested_bytes(MAX_VALUE_DEPTH)` in every
/// record of `cf` that has one by a value a million levels deep; returns
/// how many records were rewritten.
fn deepen(db: &rocksdb::DB, cf: &str) -> usize {
    let pat = nested_bytes(MAX_VALUE_DEPTH);
    let deep = nested_bytes(1_000_000);
    let h = db.cf_handle(cf).unwrap();
    let recs: Vec<_> = db
        .iterator_cf(h, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap())
        .collect();
    let mut n = 0;
    for (k, v) in recs {
        let Some(at) = v.windows(pat.len()).position(|w| w == pat) else {
            continue;
        };
        let v = [&v[..at], &deep[..], &v[at + pat.len()..]].concat();
        db.put_cf(h, &k, v).unwrap();
        n += 1;
    }
    db.flush_wal(true).unwrap();
    n
}

fn deeply_refused<T: std::fmt::Debug>(r: Result<T, Error>) {
    let e = r.expect_err("a value nested a million deep was decoded");
    assert!(e.is_integrity(), "{e}");
    assert!(e.to_string().contains("nested deeper than 64"), "{e}");
}

#[test]
fn typed_values_nested_a_million_deep_are_refused_when_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let exp_id;
    {
        let store = Store::create(&dir).unwrap();
        store
            .create_model(NewModel::new("m").metadata("deep", nested(MAX_VALUE_DEPTH)))
            .unwrap();
        let exp = store
            .create_experiment(NewExperiment::new("p", "e"))
            .unwrap();
        exp.set_param("General/deep", nested(MAX_VALUE_DEPTH))
            .unwrap();
        exp.add_artifact(
            "a",
            ArtifactBody::Inline(nested(MAX_VALUE_DEPTH)),
            BTreeMap::new(),
        )
        .unwrap();
        exp_id = exp.id();
        // At the limit, values are written and read back.
        let m = store.model_by_name("m").unwrap().info().unwrap();
        assert_eq!(m.metadata["deep"], nested(MAX_VALUE_DEPTH));
    }
    {
        let db = raw_db(&dir);
        assert_eq!(deepen(&db, "models"), 1);
        assert_eq!(deepen(&db, "experiments"), 1);
        assert_eq!(deepen(&db, "artifacts"), 1);
    }
    let store = Store::open(&dir).unwrap();
    deeply_refused(store.model_by_name("m").and_then(|m| m.info()));
    deeply_refused(store.models());
    deeply_refused(store.experiment(exp_id).and_then(|e| e.info()));
    let exp = store.experiment(exp_id);
    if let Ok(exp) = exp {
        deeply_refused(exp.artifact("a", None));
    }
    match store.verify(VerifyOptions::new()) {
        Ok(r) => assert!(!r.problems.is_empty()),
        Err(e) => assert!(e.is_integrity(), "{e}"),
    }
}

#[test]
fn typed_values_nested_deeper_than_the_limit_are_refused_when_written() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("store")).unwrap();
    let too_deep = nested(MAX_VALUE_DEPTH + 1);
    assert_eq!(too_deep.depth(), MAX_VALUE_DEPTH + 1);
    let invalid = |r: Result<(), Error>| {
        let e = r.expect_err("a value nested too deep was written");
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        assert!(e.to_string().contains("65 levels"), "{e}");
    };
    invalid(
        store
            .create_model(NewModel::new("m").metadata("x", too_deep.clone()))
            .map(|_| ()),
    );
    let m = store.create_model(NewModel::new("m")).unwrap();
    invalid(m.set_metadata("x", too_deep.clone()));
    let exp = store
        .create_experiment(NewExperiment::new("p", "e"))
        .unwrap();
    invalid(exp.set_param("General/x", too_deep.clone()));
    invalid(
        exp.add_artifact("a", ArtifactBody::Inline(too_deep.clone()), BTreeMap::new())
            .map(|_| ()),
    );
    invalid(
        exp.add_artifact(
            "a",
            ArtifactBody::Inline(Value::Int(1)),
            BTreeMap::from([("k".to_string(), too_deep)]),
        )
        .map(|_| ()),
    );
    // Nothing was written.
    assert!(m.info().unwrap().metadata.is_empty());
    assert!(exp.artifact("a", None).is_err());
    // At the limit, they are.
    m.set_metadata("x", nested(MAX_VALUE_DEPTH)).unwrap();
    assert_eq!(m.info().unwrap().metadata["x"], nested(MAX_VALUE_DEPTH));
}
