//! Bounded memory while streaming: a counting global allocator records the
//! peak of live heap bytes (Rust allocations; RocksDB's C++ heap is not
//! counted, its block cache and memtables are bounded by configuration).
//! Its own binary, whose tests run one at a time (`ONE_AT_A_TIME`), so no
//! other test's allocations interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Held by each test for its whole run: the peak is process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn reset_peak() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

#[test]
fn streaming_a_large_blob_keeps_heap_bounded() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = modelvault::Store::create(dir.path()).unwrap();
    const TOTAL: usize = 512 << 20;
    let piece: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();

    let base = reset_peak();
    let mut w = store.blob_writer();
    let mut i = 0u32;
    while (i as usize) * piece.len() < TOTAL {
        // Vary every piece so nothing dedups and the pipeline works for real.
        let mut p = piece.clone();
        p[..4].copy_from_slice(&i.to_le_bytes());
        w.write_all(&p).unwrap();
        i += 1;
    }
    let id = w.finish().unwrap();
    let write_peak = PEAK.load(Ordering::Relaxed) - base;

    let base = reset_peak();
    let mut r = store.blob_reader(&id).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        n += k;
    }
    let read_peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(n, TOTAL);
    eprintln!(
        "peak heap: write {} MiB, read {} MiB for a {} MiB blob",
        write_peak >> 20,
        read_peak >> 20,
        TOTAL >> 20
    );
    assert!(
        write_peak < 64 << 20,
        "writer peak {} MiB",
        write_peak >> 20
    );
    assert!(read_peak < 16 << 20, "reader peak {} MiB", read_peak >> 20);
}

/// A version of many small files, as `put` stores a directory, costs about
/// what its version record holds per file (path, blob id, size, format),
/// and the version commit's batch, on top of one writer: nothing else of a
/// file stays in memory once it is added to the version upload. Before,
/// every staged blob kept its first bytes (up to 64 KiB) and a whole
/// segment's capacity (37 KiB) until the version commit: 20,000 files
/// needed more than 700 MiB, 100,000 files 3.5 GiB.
#[test]
fn a_version_of_many_small_files_keeps_heap_bounded() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = modelvault::Store::create(dir.path()).unwrap();
    let m = store
        .create_model(modelvault::NewModel::new("many"))
        .unwrap();
    let file = |i: usize, tag: u8| -> Vec<u8> {
        let mut v = format!("{tag} file {i}\n").into_bytes();
        v.extend((0..(500 + i % 500)).map(|k| (k.wrapping_mul(2654435761) >> 7) as u8 ^ tag));
        v
    };
    let stage = |data: &[u8]| {
        let mut w = store.blob_writer();
        w.write_all(data).unwrap();
        w.stage().unwrap()
    };

    // The library path for a version of a few files: the caller holds
    // every staged blob (and its first bytes, the whole of a small file)
    // until the version commit, which then takes them in groups.
    const STAGED: usize = 20_000;
    let base = reset_peak();
    let staged: Vec<_> = (0..STAGED)
        .map(|i| (format!("a/{i:05}.bin"), stage(&file(i, 1))))
        .collect();
    let v1 = m.add_version_staged(staged, None).unwrap();
    let staged_peak = PEAK.load(Ordering::Relaxed) - base;

    // `put`'s path: each staged blob goes to the version upload at once.
    const UPLOADED: usize = 100_000;
    let base = reset_peak();
    let mut up = store.version_upload();
    for i in 0..UPLOADED {
        up.add(format!("b/{i:06}.bin"), stage(&file(i, 2))).unwrap();
    }
    let v2 = m.add_version_upload(up, None).unwrap();
    let upload_peak = PEAK.load(Ordering::Relaxed) - base;

    for (v, n, name) in [
        (
            v1,
            STAGED,
            (|i| format!("a/{i:05}.bin")) as fn(usize) -> String,
        ),
        (v2, UPLOADED, |i| format!("b/{i:06}.bin")),
    ] {
        let ver = m.version(Some(v)).unwrap();
        assert_eq!(ver.files.len(), n);
        let tag = if v == v1 { 1 } else { 2 };
        for i in [0, 777, 4096, n - 1] {
            let f = ver.file(&name(i)).unwrap();
            let mut back = Vec::new();
            store
                .blob_reader(&f.blob)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == file(i, tag), "version {v} file {i}");
        }
    }
    assert_eq!(store.stats().blobs, (STAGED + UPLOADED) as u64);
    eprintln!(
        "peak heap: {} MiB for a version of {STAGED} small files staged by the caller, \
         {} MiB for {UPLOADED} through a version upload",
        staged_peak >> 20,
        upload_peak >> 20
    );
    // The bound of one large blob's upload (the test above).
    assert!(
        staged_peak < 64 << 20,
        "add_version_staged peak {} MiB",
        staged_peak >> 20
    );
    assert!(
        upload_peak < 64 << 20,
        "version upload peak {} MiB",
        upload_peak >> 20
    );
}
