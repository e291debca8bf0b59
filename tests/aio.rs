//! `modelvault::aio`: the async reader, its stream of `Bytes`, the async
//! writer, and `examples/axum_blobs.rs` (an axum server over them) run as a
//! process.

use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use modelvault::aio::{AsyncBlobReader, AsyncBlobWriter, PIECE};
use modelvault::{BlobId, Error, GcOptions, Store};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::common::{flip, get, noise, packs, put, temp_store, weights};

/// A runtime with one thread: a task that blocked it would stop every other.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// xorshift: deterministic offsets and lengths.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed | 1;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// A task on `rt` counting how often it gets to run (a tick every
/// millisecond at most; the first tick is immediate): the count moves only
/// while the runtime's thread is free.
fn ticker() -> (Arc<AtomicU64>, impl std::future::Future<Output = ()>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let task = async move {
        let mut every = tokio::time::interval(Duration::from_millis(1));
        loop {
            every.tick().await;
            t.fetch_add(1, Ordering::Relaxed);
        }
    };
    (ticks, task)
}

#[test]
fn aio_read_all_returns_the_blob_and_a_missing_blob_is_not_found() {
    let (_d, store) = temp_store();
    let data = weights((5 << 20) + 12_345, 1);
    let id = put(&store, &data);
    current_thread().block_on(async {
        let mut r = AsyncBlobReader::open(&store, id).await.unwrap();
        assert_eq!((r.id(), r.len()), (id, data.len() as u64));
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        assert!(back == data, "the bytes read differ");
        // From an open blocking reader too, continuing from its position.
        let mut sync = store.blob_reader(&id).unwrap();
        let mut skip = vec![0u8; 1000];
        sync.read_exact(&mut skip).unwrap();
        let mut r = AsyncBlobReader::from(sync);
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        assert!(back == data[1000..], "the bytes read after 1000 differ");

        let missing = BlobId(modelvault::Hash32::of(b"never stored"));
        let err = AsyncBlobReader::open(&store, missing).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    });
}

#[test]
fn aio_reads_at_random_offsets_after_seeks_return_the_right_bytes() {
    let (_d, store) = temp_store();
    let data = weights(9 << 20, 2);
    let id = put(&store, &data);
    let len = data.len() as u64;
    let mut rnd = rng(0x9E37_79B9_7F4A_7C15);
    current_thread().block_on(async {
        let mut r = AsyncBlobReader::open(&store, id).await.unwrap();
        let mut pos = 0u64;
        for step in 0..300 {
            // Mostly jumps anywhere; sometimes a short hop (within or just
            // past the current piece), sometimes from the end.
            let to = match rnd(4) {
                0 => r.seek(std::io::SeekFrom::Start(rnd(len))).await.unwrap(),
                1 => {
                    let hop = rnd(2 * PIECE as u64) as i64 - PIECE as i64 / 2;
                    let hop = hop.clamp(-(pos as i64), (len - pos) as i64);
                    r.seek(std::io::SeekFrom::Current(hop)).await.unwrap()
                }
                2 => {
                    let back = rnd(len) as i64 + 1;
                    r.seek(std::io::SeekFrom::End(-back)).await.unwrap()
                }
                _ => pos, // no seek: carry on from where the last read ended
            };
            let n = (1 + rnd(3 * PIECE as u64)).min(len - to) as usize;
            let mut buf = vec![0u8; n];
            r.read_exact(&mut buf).await.unwrap();
            assert!(
                buf[..] == data[to as usize..to as usize + n],
                "step {step}: {n} bytes at {to} differ"
            );
            pos = to + n as u64;
        }
        // Past the end: no bytes, no error. Before the start: an error.
        r.seek(std::io::SeekFrom::Start(len + 10)).await.unwrap();
        assert_eq!(r.read(&mut [0u8; 8]).await.unwrap(), 0);
        assert!(r
            .seek(std::io::SeekFrom::Current(-(len as i64) - 11))
            .await
            .is_err());
    });
}

#[test]
fn aio_stream_of_a_range_yields_exactly_its_bytes() {
    let (_d, store) = temp_store();
    let data = weights((6 << 20) + 777, 3);
    let id = put(&store, &data);
    let len = data.len() as u64;
    let piece = PIECE as u64;
    current_thread().block_on(async {
        for range in [
            0..len,
            0..0,
            len..len,
            5..6,
            piece - 1..piece + 1,
            123_456..len - 1,
            3 * piece..4 * piece,
            len - 777..len,
        ] {
            let r = AsyncBlobReader::open(&store, id).await.unwrap();
            let mut s = r.into_stream(range.clone());
            assert_eq!(s.remaining(), range.end - range.start);
            let mut got = Vec::new();
            while let Some(b) = s.next().await {
                let b = b.unwrap();
                assert!(
                    !b.is_empty() && b.len() <= PIECE,
                    "{range:?}: a piece of {}",
                    b.len()
                );
                got.extend_from_slice(&b);
            }
            assert!(
                got[..] == data[range.start as usize..range.end as usize],
                "{range:?}: {} bytes differ",
                got.len()
            );
        }
        // Not within the blob: one InvalidInput error, then the end.
        #[allow(clippy::reversed_empty_ranges)]
        for range in [0..len + 1, 10..5, len + 1..len + 2] {
            let r = AsyncBlobReader::open(&store, id).await.unwrap();
            let items: Vec<_> = r.into_stream(range.clone()).collect().await;
            assert_eq!(items.len(), 1, "{range:?}");
            let err = items.into_iter().next().unwrap().unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{range:?}: {err}"
            );
        }
    });
}

/// Several writers on one current_thread runtime, each writing its own
/// blob in odd-sized pieces, while a ticker task counts its turns: the
/// ticker runs during the transfer, so nothing blocked the runtime's only
/// thread; then the blobs are read back the same way.
#[test]
fn aio_writers_and_readers_on_a_current_thread_runtime_never_block_it() {
    let (_d, store) = temp_store();
    let blobs: Vec<Vec<u8>> = (0..3)
        .map(|i| weights((7 << 20) + i * 1001, 10 + i as u64))
        .collect();
    let rt = current_thread();
    let (ticks, tick_task) = ticker();
    rt.spawn(tick_task);
    let ids = rt.block_on(async {
        let before = ticks.load(Ordering::Relaxed);
        let mut tasks = Vec::new();
        for (i, data) in blobs.iter().cloned().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut w = AsyncBlobWriter::new(&store);
                let sizes = [1usize, 4099, 65_537, 7, 300_001, 1 << 20, 12_345];
                let (mut at, mut k) = (0, i);
                while at < data.len() {
                    let n = sizes[k % sizes.len()].min(data.len() - at);
                    w.write_all(&data[at..at + n]).await.unwrap();
                    at += n;
                    k += 1;
                }
                assert_eq!(w.len(), data.len() as u64);
                w.finish().await.unwrap()
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        let during = ticks.load(Ordering::Relaxed) - before;
        assert!(
            during > 0,
            "the ticker never ran while the blobs were written"
        );
        ids
    });
    for (id, data) in ids.iter().zip(&blobs) {
        assert!(
            get(&store, id) == *data,
            "blob {id} reads back different bytes"
        );
        assert_eq!(*id, BlobId(modelvault::Hash32::of(data)));
    }
    rt.block_on(async {
        let before = ticks.load(Ordering::Relaxed);
        let mut tasks = Vec::new();
        for (id, data) in ids.iter().copied().zip(blobs.iter().cloned()) {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut r = AsyncBlobReader::open(&store, id).await.unwrap();
                let mut back = Vec::new();
                r.read_to_end(&mut back).await.unwrap();
                assert!(back == data, "blob {id} reads back different bytes");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let during = ticks.load(Ordering::Relaxed) - before;
        assert!(during > 0, "the ticker never ran while the blobs were read");
    });
}

/// Bounded-time polling (only so a broken build fails instead of hanging:
/// nothing is asserted about time).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn aio_dropped_writer_keeps_nothing_and_a_staged_blob_is_not_visible() {
    let (_d, store) = temp_store();
    let data = noise(3 << 20, 4);
    let id = BlobId(modelvault::Hash32::of(&data));
    current_thread().block_on(async {
        let mut w = AsyncBlobWriter::new(&store);
        w.write_all(&data).await.unwrap();
        w.flush().await.unwrap();
        drop(w);
    });
    assert!(!store.contains_blob(&id).unwrap());
    assert_eq!(store.stats().blobs, 0);
    // Once its worker has let go, a gc finds the chunks written unheld and
    // deletes them.
    eventually("the dropped upload's chunks to be collected", || {
        let r = store.gc(&GcOptions::default()).unwrap();
        r.chunks_held == 0 && store.stats().chunks == 0
    });
    assert!(!store.contains_blob(&id).unwrap());

    // Staged: the id is known, the blob is not visible (and dropping the
    // staged blob keeps nothing either).
    let staged = current_thread().block_on(async {
        let mut w = AsyncBlobWriter::new(&store);
        w.write_all(&data).await.unwrap();
        w.stage().await.unwrap()
    });
    assert_eq!((staged.id(), staged.len()), (id, data.len() as u64));
    assert!(!store.contains_blob(&id).unwrap());
    drop(staged);
    assert!(!store.contains_blob(&id).unwrap());
    assert_eq!(store.stats().blobs, 0);
}

#[test]
fn aio_writer_errors_come_back_as_the_crates_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let _writer = Store::create(&dir).unwrap();
    let reader = Store::open_read_only(&dir).unwrap();
    let err = current_thread().block_on(async {
        let mut w = AsyncBlobWriter::new(&reader);
        // A failure may surface on a write, a flush or the finish.
        match w.write_all(&noise(5 << 20, 5)).await {
            Ok(()) => match w.flush().await {
                Ok(()) => w.finish().await.unwrap_err(),
                Err(e) => into_error(e),
            },
            Err(e) => into_error(e),
        }
    });
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
}

/// The crate's error inside an `io::Error` from the adapters.
fn into_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|b| b.downcast::<Error>()) {
        Some(Ok(e)) => *e,
        other => panic!("not the crate's error: {other:?}"),
    }
}

#[test]
fn aio_corrupted_chunk_gives_an_error_never_wrong_bytes() {
    let (_d, store) = temp_store();
    let data = weights(4 << 20, 6);
    let id = put(&store, &data);
    let pack = &packs(&store)[0];
    let len = std::fs::metadata(pack).unwrap().len();
    flip(pack, len / 2);
    current_thread().block_on(async {
        let mut r = AsyncBlobReader::open(&store, id).await.unwrap();
        let err = r.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        let inner = into_error(err);
        assert!(inner.is_integrity(), "{inner}");

        let r = AsyncBlobReader::open(&store, id).await.unwrap();
        let mut s = r.into_stream(0..data.len() as u64);
        let mut got = Vec::new();
        let mut failed = None;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => {
                    assert!(failed.is_none(), "bytes after the error");
                    got.extend_from_slice(&b);
                }
                Err(e) => failed = Some(e),
            }
        }
        let err = failed.expect("the stream of a damaged blob ended without an error");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert!(got.len() < data.len());
        assert!(
            got[..] == data[..got.len()],
            "the stream yielded wrong bytes"
        );
    });
}

/// `examples/axum_blobs.rs`, built next to this test binary (`make test`
/// builds it first), as a process: PUT a blob, GET it whole, in ranges,
/// and an unsatisfiable range; then stdin closed stops it.
#[test]
fn aio_axum_example_serves_blobs_with_ranges() {
    let built = crate::common::built_example("axum_blobs");
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&built)
        .arg(tmp.path().join("vault"))
        .arg("0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    // Kills the server if the test fails half way.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut child = Kill(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().expect("the server printed nothing").unwrap();
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();

    let data = weights((3 << 20) + 4321, 7);
    let len = data.len();
    let http = reqwest::blocking::Client::new();
    let put = http
        .put(format!("{base}/blobs"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    let id = put.text().unwrap();
    assert_eq!(id.trim(), BlobId(modelvault::Hash32::of(&data)).to_string());
    let url = format!("{base}/blobs/{}", id.trim());

    let whole = http.get(&url).send().unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(
        whole.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", id.trim())
    );
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert!(
        whole.bytes().unwrap()[..] == data[..],
        "the whole blob differs"
    );

    for (header, start, end) in [
        ("bytes=0-0".to_string(), 0, 0),
        ("bytes=1000-2000000".to_string(), 1000, 2_000_000),
        (format!("bytes={}-", len - 10), len - 10, len - 1),
        ("bytes=-4321".to_string(), len - 4321, len - 1),
        (format!("bytes=5-{}", len + 100), 5, len - 1),
    ] {
        let r = http.get(&url).header("range", &header).send().unwrap();
        assert_eq!(r.status(), 206, "{header}");
        assert_eq!(
            r.headers()["content-range"].to_str().unwrap(),
            format!("bytes {start}-{end}/{len}"),
            "{header}"
        );
        assert!(
            r.bytes().unwrap()[..] == data[start..=end],
            "{header}: the bytes differ"
        );
    }
    for header in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 9),
        "bytes=-0".into(),
    ] {
        let r = http.get(&url).header("range", &header).send().unwrap();
        assert_eq!(r.status(), 416, "{header}");
        assert_eq!(
            r.headers()["content-range"].to_str().unwrap(),
            format!("bytes */{len}"),
            "{header}"
        );
    }
    let missing = BlobId(modelvault::Hash32::of(b"never stored"));
    let r = http.get(format!("{base}/blobs/{missing}")).send().unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{base}/blobs/not-an-id")).send().unwrap();
    assert_eq!(r.status(), 400);

    // Closing its stdin stops it, cleanly.
    drop(stdin);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "the server exited with {status}");
}
