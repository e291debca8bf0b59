use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{flip, get, noise, packs, put, temp_store, weights};

#[test]
fn sizes_around_chunk_bounds_round_trip() {
    let (_d, store) = temp_store();
    let p = modelvault::CdcParams::default();
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

/// Sequential runs long enough to start read-ahead, broken by seeks
/// backwards, forwards, into and past the window, with reads of odd sizes.
#[test]
fn reads_mixing_sequential_runs_and_seeks_return_the_right_bytes() {
    let (_d, store) = temp_store();
    let data = weights(24 << 20, 11);
    let id = put(&store, &data);
    let len = data.len() as u64;
    let mut r = store.blob_reader(&id).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut pos = 0u64;
    for step in 0..200 {
        match rnd(6) {
            // Just ahead: inside the current chunk or the read-ahead window.
            0 => pos = (pos + rnd(300_000)).min(len),
            // Anywhere, including backwards.
            1 | 2 => pos = rnd(len + 1),
            // Keep going where the last read stopped.
            _ => {}
        }
        r.seek(SeekFrom::Start(pos)).unwrap();
        let want = rnd(3 << 20) as usize + 1;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            let n = r.read(&mut buf[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let end = (pos as usize + got).min(data.len());
        assert_eq!(got, end - pos as usize, "step {step} at {pos}");
        assert!(
            buf[..got] == data[pos as usize..end],
            "step {step}: wrong bytes at {pos}"
        );
        pos = end as u64;
    }
}

/// Several readers advanced in turn on one thread share the read-ahead pool.
#[test]
fn interleaved_sequential_readers_each_get_their_own_bytes() {
    let (_d, store) = temp_store();
    let blobs: Vec<Vec<u8>> = (0..4)
        .map(|i| weights((6 << 20) + i * 977, 20 + i as u64))
        .collect();
    let ids: Vec<_> = blobs.iter().map(|b| put(&store, b)).collect();
    let mut readers: Vec<_> = ids
        .iter()
        .map(|id| store.blob_reader(id).unwrap())
        .collect();
    let mut back = vec![Vec::new(); blobs.len()];
    let mut buf = vec![0u8; 40_000];
    loop {
        let mut any = false;
        for (r, out) in readers.iter_mut().zip(&mut back) {
            let n = r.read(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            any |= n > 0;
        }
        if !any {
            break;
        }
    }
    assert!(back == blobs);
}

/// A damaged chunk in the middle of a sequential read fails at that chunk's
/// offset, after every byte before it, with the error a direct read of that
/// chunk gives; retrying fails the same way, and reading past it works.
#[test]
fn damage_found_by_read_ahead_surfaces_where_it_is() {
    // One ingest thread: the pack holds the chunks in blob order.
    let dir = tempfile::tempdir().unwrap();
    let store = modelvault::Store::options()
        .threads(1)
        .open(dir.path())
        .unwrap();
    let data = weights(8 << 20, 12);
    let id = put(&store, &data);
    let pack = packs(&store).remove(0);
    let at = std::fs::metadata(&pack).unwrap().len() * 3 / 5;
    flip(&pack, at);

    let mut r = store.blob_reader(&id).unwrap();
    let mut good = Vec::new();
    let mut buf = vec![0u8; 10_000];
    let err = loop {
        match r.read(&mut buf) {
            Ok(0) => panic!("damage at pack offset {at} not detected"),
            Ok(n) => good.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    let bad = good.len();
    assert!(bad > 1 << 20, "failed early, at {bad}");
    assert!(good == data[..bad], "wrong bytes before the damage");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&id.to_string()), "{msg}");
    assert!(msg.contains(&format!("at byte offset {bad}")), "{msg}");
    // The same error again on retry, and from a reader that goes straight there.
    assert_eq!(r.read(&mut buf).unwrap_err().to_string(), msg);
    let mut direct = store.blob_reader(&id).unwrap();
    direct.seek(SeekFrom::Start(bad as u64)).unwrap();
    assert_eq!(direct.read(&mut buf).unwrap_err().to_string(), msg);
    // Past the damaged chunk everything reads again.
    r.seek(SeekFrom::End(-(1 << 20))).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert!(tail == data[data.len() - (1 << 20)..]);
}

/// True if this process has the file `path` open. A store's lock is held by
/// its open lock file, so this is true as long as anything in the process
/// still holds the store.
fn open_here(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == path))
}

/// Opens the store at `path`, which this process no longer holds. A process
/// spawned by a concurrent test (the CLI tests) shares every descriptor of
/// this one from its fork to its exec, the lock file's included, so for that
/// moment the lock can still be taken: `Locked` is retried for up to 5 s.
fn reopen(path: &Path) -> modelvault::Result<modelvault::Store> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match modelvault::Store::open(path) {
            Err(modelvault::Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            r => return r,
        }
    }
}

/// Dropping a reader in the middle of a read-ahead leaves no pool thread
/// holding the store: once the reader and the store are dropped (in either
/// order) the process no longer has the store's lock file open, and the
/// store reopens. 200 rounds; in the second half two readers of another
/// store keep the shared pool busy, so that the dropped reader still has
/// jobs queued, not only running. With a job holding the store past the
/// reader's drop this fails within a few rounds.
#[test]
fn dropping_a_reader_mid_read_ahead_releases_the_store() {
    const ROUNDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let data = weights(16 << 20, 13);
    let id = put(&modelvault::Store::create(&path).unwrap(), &data);
    let lock = path.join("lock").canonicalize().unwrap();
    let (_busy_dir, busy_store) = temp_store();
    let busy_id = put(&busy_store, &weights(8 << 20, 14));
    let stop = AtomicBool::new(false);
    let mut buf = vec![0u8; 1 << 20];
    let mut round = |i: u64| {
        let store = reopen(&path).unwrap_or_else(|e| panic!("round {i}: open failed: {e}"));
        let mut r = store.blob_reader(&id).unwrap();
        let at = i * 77_777 % (data.len() as u64 - (1 << 20));
        r.seek(SeekFrom::Start(at)).unwrap();
        // Chunk-sized reads: sequential loads that open the window fully.
        r.read_exact(&mut buf).unwrap();
        assert!(buf[..] == data[at as usize..][..1 << 20], "round {i}");
        if i.is_multiple_of(2) {
            drop(r);
            drop(store);
        } else {
            drop(store);
            drop(r);
        }
        assert!(
            !open_here(&lock),
            "round {i}: the store is still open after its reader and handle were dropped"
        );
        drop(reopen(&path).unwrap_or_else(|e| panic!("round {i}: reopen failed: {e}")));
    };
    for i in 0..ROUNDS / 2 {
        round(i);
    }
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let mut r = busy_store.blob_reader(&busy_id).unwrap();
                    std::io::copy(&mut r, &mut std::io::sink()).unwrap();
                }
            });
        }
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for i in ROUNDS / 2..ROUNDS {
                round(i);
            }
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(p) = done {
            std::panic::resume_unwind(p);
        }
    });
}

#[test]
fn blob_reader_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<modelvault::BlobReader>();
}
