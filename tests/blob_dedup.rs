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
fn float_weights_compress_below_raw() {
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
}
