//! `chunking::Chunker`: for any valid bounds and data, the cuts of
//! `cuts()` cover the data exactly, each is within `[min, max]` except the
//! last (which is `1..=max`), and feeding the same data in arbitrary pieces
//! through `next_cut(.., false)` (as the blob writer does) gives the same
//! cuts.
//!
//! Input: `[min, avg, max, piece]` bytes choosing bounds within FastCDC's
//! limits (kept small so that fuzz-sized inputs get many cuts) and a piece
//! size of 16..=4096 bytes for the streaming check, then data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::internals::chunking::{CdcParams, Chunker};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // min 64..=1087, avg max(min, 256)..+4095, max max(avg, 1024)..+8191.
    let min = 64 + (data[0] as usize) * 4;
    let avg = min.max(256) + (data[1] as usize) * 16;
    let max = avg.max(1024) + (data[2] as usize) * 32;
    let piece = 16 + data[3] as usize * 16;
    let data = &data[4..];
    let p = CdcParams { min, avg, max };
    let c = Chunker::new(p);
    assert_eq!(c.params(), p);

    let cuts = c.cuts(data);
    assert_eq!(cuts.iter().sum::<usize>(), data.len(), "cuts do not cover the data");
    if let Some((last, rest)) = cuts.split_last() {
        for &n in rest {
            assert!(n >= min && n <= max, "chunk of {n} outside {p:?}");
        }
        assert!(*last >= 1 && *last <= max, "last chunk of {last} with {p:?}");
    }
    if !data.is_empty() {
        assert!(c.next_cut(data, true).is_some(), "no cut at the end of a non-empty stream");
    }

    // Streaming in pieces agrees with the whole buffer.
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(n) = c.next_cut(&buf, false) {
            assert!(n >= 1 && n <= buf.len());
            got.push(n);
            buf.drain(..n);
        }
    }
    while let Some(n) = c.next_cut(&buf, true) {
        got.push(n);
        buf.drain(..n);
    }
    assert_eq!(got, cuts, "streaming in pieces of {piece} disagrees with the whole buffer");
});
