use crate::common::{get, noise, put, temp_store, weights};

#[test]
fn same_content_twice_adds_no_chunk_and_no_bytes() {
    let (_d, store) = temp_store();
    let data = weights(8 << 20, 1);
    let a = put(&store, &data);
    let s1 = store.stats();
    let b = put(&store, &data);
    let s2 = store.stats();
    assert_eq!(a, b);
    assert_eq!(s1.chunks, s2.chunks);
    assert_eq!(s1.stored_bytes, s2.stored_bytes);
    assert_eq!(s1.blobs, s2.blobs);
    assert_eq!(get(&store, &b), data);
}

#[test]
fn one_byte_inserted_at_front_adds_only_a_few_chunks() {
    let (_d, store) = temp_store();
    let data = noise(16 << 20, 2);
    put(&store, &data);
    let before = store.stats();
    let mut shifted = vec![0xAB];
    shifted.extend_from_slice(&data);
    let id = put(&store, &shifted);
    let after = store.stats();
    let new_chunks = after.chunks - before.chunks;
    assert!(
        new_chunks <= 3,
        "{new_chunks} new chunks of {}",
        before.chunks
    );
    assert!(after.unique_bytes - before.unique_bytes < 400 << 10);
    assert_eq!(get(&store, &id), shifted);
}

#[test]
fn shared_chunks_dedup_across_blobs() {
    let (_d, store) = temp_store();
    let a = noise(6 << 20, 3);
    let b = noise(6 << 20, 4);
    put(&store, &a);
    put(&store, &b);
    let before = store.stats();
    let mut ab = a.clone();
    ab.extend_from_slice(&b);
    put(&store, &ab);
    let added = store.stats().unique_bytes - before.unique_bytes;
    assert!(added < 512 << 10, "concatenation added {added} bytes");
}

#[test]
fn float_weights_compress_below_raw_and_below_plain_zstd() {
    let (_d, store) = temp_store();
    let data = weights(16 << 20, 5);
    put(&store, &data);
    let s = store.stats();
    assert!(
        (s.stored_bytes as f64) < 0.9 * data.len() as f64,
        "stored {} of {}",
        s.stored_bytes,
        data.len()
    );
    // Byte planes must beat what plain zstd makes of the same bytes at the
    // store's zstd level: the whole 16 MiB as one frame (a larger window
    // than any chunk), against every stored byte including record headers.
    let level = modelvault::internals::codec::EncodeOptions::default().level;
    let zstd = zstd::bulk::compress(&data, level).unwrap().len() as u64;
    eprintln!(
        "fp32 weights: raw {}, plain zstd -{level} {zstd}, stored {} ({:.3} of zstd)",
        data.len(),
        s.stored_bytes,
        s.stored_bytes as f64 / zstd as f64
    );
    assert!(
        s.stored_bytes < zstd,
        "stored {} bytes, plain zstd -{level} of the same data {zstd}",
        s.stored_bytes
    );
}

#[test]
fn staged_blobs_are_invisible_until_the_version_commit_takes_them() {
    let (_d, store) = temp_store();
    let a = weights(2 << 20, 8);
    let stage = |data: &[u8]| {
        let mut w = store.blob_writer();
        std::io::Write::write_all(&mut w, data).unwrap();
        w.stage().unwrap()
    };
    let (sa, sa_again, sb) = (stage(&a), stage(&a), stage(b"tiny"));
    assert!(
        !store.contains_blob(&sa.id()).unwrap(),
        "staged blob visible before commit"
    );
    // A dropped staged blob never becomes visible.
    let dropped = stage(&noise(1 << 20, 9));
    let dropped_id = dropped.id();
    drop(dropped);
    let m = store.create_model(modelvault::NewModel::new("m")).unwrap();
    let v = m
        .add_version_staged(
            vec![
                ("a.bin".into(), sa),
                ("copy/a.bin".into(), sa_again),
                ("b".into(), sb),
            ],
            None,
        )
        .unwrap();
    assert_eq!(v, 1);
    let ver = m.version(None).unwrap();
    assert_eq!(get(&store, &ver.file("a.bin").unwrap().blob), a);
    assert_eq!(
        ver.file("a.bin").unwrap().blob,
        ver.file("copy/a.bin").unwrap().blob
    );
    assert_eq!(get(&store, &ver.file("b").unwrap().blob), b"tiny");
    assert!(!store.contains_blob(&dropped_id).unwrap());
    // Two staged copies of one content count as one blob.
    assert_eq!(store.stats().blobs, 2);
    assert!(store
        .verify(modelvault::VerifyOptions::new().read_data(true))
        .unwrap()
        .is_clean());
    // A failing version commit (duplicate path) leaves the staged blobs invisible.
    let c = stage(&noise(100_000, 10));
    let c_id = c.id();
    let c2 = stage(b"x");
    assert!(m
        .add_version_staged(vec![("p".into(), c), ("p".into(), c2)], None)
        .is_err());
    assert!(!store.contains_blob(&c_id).unwrap());
}

#[test]
fn same_content_twice_adds_nothing_with_large_chunk_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let params = modelvault::CdcParams {
        min: 64 << 10,
        avg: 256 << 10,
        max: 512 << 10,
    };
    let store = modelvault::Store::options()
        .chunking(params)
        .open(dir.path())
        .unwrap();
    let data = weights(20 << 20, 11);
    let a = put(&store, &data);
    let s1 = store.stats();
    let b = put(&store, &data);
    let s2 = store.stats();
    assert_eq!(a, b);
    assert_eq!((s1.chunks, s1.stored_bytes), (s2.chunks, s2.stored_bytes));
}
