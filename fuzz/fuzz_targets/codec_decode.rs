//! `codec::decode` on hostile stored bytes.
//!
//! Input: `[selector, b1, raw_len u32 LE, stored…]`.
//! - `selector & 3` picks Raw / Zstd / Planes{2} / Planes{4}; with bit 2 set,
//!   `raw_len` is `stored.len()` (so Raw and planes directories line up
//!   often), else it is the u32 reduced to `0..=MAX_RAW_LEN` (1 MiB).
//! - `[selector, b1]` is also fed to `Codec::from_bytes`, which must
//!   round-trip through `to_bytes` when it accepts.
//!
//! Checked: `Ok` means exactly `raw_len` bytes; the output buffer's capacity
//! (at most `max(raw_len, 8)`) and the peak heap growth during the call (at
//! most `2 × raw_len + 4 KiB`: planar copy plus output) are bounded by
//! `raw_len`, never by lengths the payload claims; decoding into a non-empty
//! buffer gives the same result (the buffer is cleared first).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;
use modelvault::internals::codec::{decode, Codec};

const MAX_RAW_LEN: usize = 1 << 20;
/// Vec<u8>'s smallest non-zero capacity.
const MIN_CAP: usize = 8;
/// Heap slack for error messages and other small bookkeeping.
const SLACK: usize = 4096;

/// Tracks live and peak heap bytes of the Rust allocator (zstd's own C
/// allocations are not seen; its output buffer is ours).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (sel, b1) = (data[0], data[1]);
    if let Ok(c) = Codec::from_bytes([sel, b1]) {
        assert_eq!(c.to_bytes(), [sel, b1]);
        assert_eq!(Codec::from_bytes(c.to_bytes()).unwrap(), c);
    }
    let codec = match sel & 3 {
        0 => Codec::Raw,
        1 => Codec::Zstd,
        2 => Codec::Planes { width: 2 },
        _ => Codec::Planes { width: 4 },
    };
    let stored = &data[6..];
    let raw_len = if sel & 4 != 0 {
        stored.len()
    } else {
        u32::from_le_bytes([data[2], data[3], data[4], data[5]]) as usize % (MAX_RAW_LEN + 1)
    };

    let mut out = Vec::new();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let res = decode(codec, stored, raw_len, &mut out);
    let peak = PEAK.load(Relaxed) - base;

    if res.is_ok() {
        assert_eq!(out.len(), raw_len, "{codec:?}: Ok with a wrong length");
        if codec == Codec::Raw {
            assert_eq!(out, stored);
        }
    }
    assert!(
        out.capacity() <= raw_len.max(MIN_CAP),
        "{codec:?}: output capacity {} for raw_len {raw_len} ({} stored bytes)",
        out.capacity(),
        stored.len()
    );
    // Planes keep the planar copy and the output alive at once: 2 × raw_len.
    assert!(
        peak <= 2 * raw_len + SLACK,
        "{codec:?}: heap grew by {peak} bytes for raw_len {raw_len} ({} stored bytes)",
        stored.len()
    );

    // Same answer into a buffer that already holds bytes.
    let mut again = vec![0xA5u8; 16];
    let res2 = decode(codec, stored, raw_len, &mut again);
    assert_eq!(res.is_ok(), res2.is_ok(), "{codec:?}: decode is not deterministic");
    if res.is_ok() {
        assert_eq!(again, out, "{codec:?}: output depends on the buffer's old content");
    }
});
