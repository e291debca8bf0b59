use std::io::{Read, Seek, SeekFrom, Write};

use crate::common::{get, noise, put, temp_store, weights};

#[test]
fn sizes_around_chunk_bounds_round_trip() {
    let (_d, store) = temp_store();
    let p = modelvault::chunking::CdcParams::default();
    let mut sizes = vec![0, 1, 2, 3, 4, 5, 4095, 4096];
    for b in [p.min, p.avg, p.max, 2 * p.max, 4 << 20] {
        sizes.extend([b - 1, b, b + 1]);
    }
    for (i, &n) in sizes.iter().enumerate() {
        let data = if i % 2 == 0 {
            noise(n, i as u64)
        } else {
            weights(n, i as u64)
        };
        let id = put(&store, &data);
        assert_eq!(
            id,
            modelvault::BlobId(modelvault::Hash32::of(&data)),
            "size {n}"
        );
        assert_eq!(get(&store, &id), data, "size {n}");
        assert_eq!(store.blob_reader(&id).unwrap().len(), n as u64);
    }
}

#[test]
fn a_few_hundred_megabytes_round_trip_in_odd_writes() {
    let (_d, store) = temp_store();
    // 300 MB: half weights, half noise, written in pieces of awkward sizes.
    let mut w = store.blob_writer();
    let mut h = blake3::Hasher::new();
    let mut total = 0usize;
    for i in 0..60u64 {
        let piece = if i % 2 == 0 {
            weights(5_000_017, i)
        } else {
            noise(4_999_999, i)
        };
        for part in piece.chunks(1_234_567) {
            w.write_all(part).unwrap();
        }
        h.update(&piece);
        total += piece.len();
    }
    let id = w.finish().unwrap();
    let mut r = store.blob_reader(&id).unwrap();
    let mut back = blake3::Hasher::new();
    let mut buf = vec![0u8; 3 << 20];
    let mut n_back = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        back.update(&buf[..n]);
        n_back += n;
    }
    assert_eq!(n_back, total);
    assert_eq!(back.finalize(), h.finalize());
    assert_eq!(id.0.as_bytes(), h.finalize().as_bytes());
}

#[test]
fn seeks_and_ranged_reads_return_the_right_bytes() {
    let (_d, store) = temp_store();
    let data = weights(70 << 20, 9); // spans more than one manifest segment
    let id = put(&store, &data);
    let mut r = store.blob_reader(&id).unwrap();
    let len = data.len() as u64;
    for &(from, n) in &[
        (0u64, 10usize),
        (len - 1, 1),
        (65_535, 3),
        (67_108_863, 100_000),
        (12_345_678, 1 << 20),
        (len - 5, 5),
    ] {
        r.seek(SeekFrom::Start(from)).unwrap();
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, &data[from as usize..from as usize + n], "at {from}");
    }
    assert_eq!(r.seek(SeekFrom::End(-3)).unwrap(), len - 3);
    r.seek(SeekFrom::Current(-10)).unwrap();
    let mut b = [0u8; 4];
    r.read_exact(&mut b).unwrap();
    assert_eq!(b, data[len as usize - 13..len as usize - 9]);
    assert!(r.seek(SeekFrom::Current(-(len as i64) - 1)).is_err());
    r.seek(SeekFrom::Start(len + 10)).unwrap();
    assert_eq!(r.read(&mut b).unwrap(), 0);
}

#[test]
fn unknown_blob_is_not_found() {
    let (_d, store) = temp_store();
    let err = store
        .blob_reader(&modelvault::BlobId(modelvault::Hash32::of(b"nope")))
        .err()
        .unwrap();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn dropped_writer_leaves_no_blob() {
    let (_d, store) = temp_store();
    let data = noise(3 << 20, 1);
    let mut w = store.blob_writer();
    w.write_all(&data).unwrap();
    drop(w);
    let id = modelvault::BlobId(modelvault::Hash32::of(&data));
    assert!(!store.contains_blob(&id).unwrap());
    assert_eq!(store.stats().blobs, 0);
}
