//! `chunking::tensors::probe(prefix, file_len)` (the safetensors and GGUF
//! parsers of src/formats/, which detection uses too) on hostile prefixes:
//! it must never panic, and every answer must keep its documented promises:
//!
//! - `NeedBytes(n)`: `n` is more than the usable prefix (`prefix` cut to
//!   `file_len`), at most `MAX_HEADER_BYTES + 8`, at most `file_len`.
//! - `Layout`: format is safetensors or gguf; spans sorted by
//!   `(start, end, name)`, `data_start <= start <= end`, non-overlapping,
//!   within `file_len` when given; names unique; at most `MAX_TENSORS`;
//!   plain dtypes span `elements × width` bytes; `boundaries()` strictly
//!   increasing; `span_at`/`find` agree with the spans.
//!
//! Input: `[mode, prefix…]`; `mode` picks `file_len`: unknown, the prefix
//! length (the whole file is given), a bit longer, or a bit shorter.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use modelvault::internals::chunking::tensors::{probe, Probe, MAX_HEADER_BYTES, MAX_TENSORS};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, prefix)) = data.split_first() else { return };
    let n = prefix.len() as u64;
    let file_len = match mode & 3 {
        0 => None,
        1 => Some(n),
        2 => Some(n + u64::from(mode >> 2) * 4096 + u64::from(mode >> 2)),
        _ => Some(n.saturating_sub(u64::from(mode >> 2))),
    };
    let avail = file_len.map_or(n, |l| l.min(n));

    match probe(prefix, file_len) {
        Probe::NotContainer => {}
        Probe::NeedBytes(need) => {
            let need = need as u64;
            assert!(need > avail, "NeedBytes({need}) with {avail} bytes given");
            assert!(need <= MAX_HEADER_BYTES as u64 + 8, "NeedBytes({need}) beyond the limit");
            if let Some(l) = file_len {
                assert!(need <= l, "NeedBytes({need}) beyond the file length {l}");
            }
        }
        Probe::Layout(layout) => {
            assert!(layout.format == "safetensors" || layout.format == "gguf");
            assert!(layout.tensors.len() <= MAX_TENSORS);
            if let Some(l) = file_len {
                assert!(layout.data_start <= l, "data_start {} past file length {l}", layout.data_start);
            }
            let mut prev_end = layout.data_start;
            let mut prev_key = None;
            let mut names = HashSet::new();
            for t in &layout.tensors {
                assert!(t.start >= prev_end, "overlap or before data_start: {layout:?}");
                assert!(t.end >= t.start, "negative span: {t:?}");
                if let Some(l) = file_len {
                    assert!(t.end <= l, "span {t:?} past file length {l}");
                }
                let key = (t.start, t.end, t.name.clone());
                assert!(prev_key.as_ref().is_none_or(|p| *p <= key), "spans not sorted");
                prev_key = Some(key);
                assert!(names.insert(t.name.as_str()), "duplicate name {:?}", t.name);
                if let Some(w) = t.dtype.width() {
                    let elems = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
                    let bytes = elems.and_then(|e| e.checked_mul(u64::from(w)));
                    assert_eq!(bytes, Some(t.end - t.start), "{t:?}: size disagrees with shape");
                }
                prev_end = t.end;
            }
            let b = layout.boundaries();
            assert!(b.windows(2).all(|w| w[0] < w[1]), "boundaries not increasing");
            assert_eq!(b.first(), Some(&layout.data_start), "data_start is the first boundary");
            for t in &layout.tensors {
                assert_eq!(layout.find(&t.name), Some(t));
                if t.end > t.start {
                    assert_eq!(layout.span_at(t.start), Some(t));
                    assert_eq!(layout.span_at(t.end - 1), Some(t));
                }
            }
        }
    }
});
