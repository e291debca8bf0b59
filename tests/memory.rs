//! Bounded memory while streaming: a counting global allocator records the
//! peak of live heap bytes (Rust allocations; RocksDB's C++ heap is not
//! counted, its block cache and memtables are bounded by configuration).
//! Its own binary, with one test, so no other test's allocations interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

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

fn reset_peak() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

#[test]
fn streaming_a_large_blob_keeps_heap_bounded() {
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
