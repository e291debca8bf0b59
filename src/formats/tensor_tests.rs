//! Tests of the safetensors and GGUF layout parsers through [`probe`].

use super::safetensors::MAX_RANK;
use super::tensor::*;
use proptest::prelude::*;
use std::collections::HashSet;

/// Checks every promise of `probe`'s answer.
fn check_invariants(prefix: &[u8], file_len: Option<u64>, p: &Probe) {
    let avail = file_len.map_or(len64(prefix.len()), |l| l.min(len64(prefix.len())));
    match p {
        Probe::NotContainer => {}
        Probe::NeedBytes(n) => {
            let n = len64(*n);
            assert!(n > avail, "NeedBytes({n}) not more than the {avail} given");
            assert!(
                n <= len64(MAX_HEADER_BYTES) + 8,
                "NeedBytes({n}) beyond the limit"
            );
            if let Some(l) = file_len {
                assert!(n <= l, "NeedBytes({n}) beyond the file length {l}");
            }
        }
        Probe::Layout(layout) => {
            assert!(layout.format == "safetensors" || layout.format == "gguf");
            let mut prev = layout.data_start;
            let mut names = HashSet::new();
            for t in &layout.tensors {
                assert!(t.start >= prev && t.end >= t.start, "{layout:?}");
                if let Some(l) = file_len {
                    assert!(t.end <= l);
                }
                assert!(names.insert(&t.name));
                prev = t.end;
            }
            if let Some(l) = file_len {
                assert!(layout.data_start <= l);
            }
            let b = layout.boundaries();
            assert!(b.windows(2).all(|w| w[0] < w[1]));
            for t in &layout.tensors {
                if t.end > t.start {
                    assert_eq!(layout.span_at(t.start), Some(t));
                    assert_eq!(layout.span_at(t.end - 1), Some(t));
                }
            }
        }
    }
}

fn probe_checked(prefix: &[u8], file_len: Option<u64>) -> Probe {
    let p = probe(prefix, file_len);
    check_invariants(prefix, file_len, &p);
    p
}

fn layout(p: Probe) -> TensorLayout {
    match p {
        Probe::Layout(l) => l,
        other => panic!("expected a layout, got {other:?}"),
    }
}

/// A safetensors file: length, the JSON header as given, `data` zero
/// bytes.
fn st_file(header: &str, data: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(header.len() as u64).to_le_bytes());
    f.extend_from_slice(header.as_bytes());
    f.resize(f.len() + data, 0);
    f
}

const ST_HEADER: &str = concat!(
    r#"{"__metadata__":{"format":"pt"},"#,
    r#""b.bias":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"#,
    r#""a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"#,
    r#""c.ids":{"dtype":"I8","shape":[5],"data_offsets":[32,37]}}  "#
);

fn st_valid() -> Vec<u8> {
    st_file(ST_HEADER, 37)
}

#[test]
fn safetensors_spans_and_lookups() {
    let f = st_valid();
    let ds = 8 + ST_HEADER.len() as u64;
    let l = layout(probe_checked(&f, Some(f.len() as u64)));
    assert_eq!(l.format, "safetensors");
    assert_eq!(l.data_start, ds);
    let got: Vec<_> = l
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.shape.clone(), t.start, t.end))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a.weight", DType::F32, vec![2, 3], ds, ds + 24),
            ("b.bias", DType::BF16, vec![4], ds + 24, ds + 32),
            ("c.ids", DType::I8, vec![5], ds + 32, ds + 37),
        ]
    );
    assert_eq!(l.boundaries(), vec![ds, ds + 24, ds + 32, ds + 37]);
    assert_eq!(l.find("b.bias").map(|t| t.start), Some(ds + 24));
    assert!(l.find("__metadata__").is_none());
    assert!(l.find("nope").is_none());
    assert!(l.span_at(ds - 1).is_none());
    assert_eq!(l.span_at(ds).map(|t| t.name.as_str()), Some("a.weight"));
    assert_eq!(
        l.span_at(ds + 23).map(|t| t.name.as_str()),
        Some("a.weight")
    );
    assert_eq!(l.span_at(ds + 24).map(|t| t.name.as_str()), Some("b.bias"));
    assert_eq!(l.span_at(ds + 36).map(|t| t.name.as_str()), Some("c.ids"));
    assert!(l.span_at(ds + 37).is_none());
    assert!(l.span_at(u64::MAX).is_none());
    // The same layout while streaming, with the data not yet there.
    let header_only = &f[..8 + ST_HEADER.len()];
    assert_eq!(layout(probe_checked(header_only, None)), l);
}

#[test]
fn safetensors_short_prefix_needs_bytes() {
    let f = st_valid();
    let header_end = 8 + ST_HEADER.len();
    assert_eq!(probe_checked(&f[..40], None), Probe::NeedBytes(header_end));
    assert_eq!(
        probe_checked(&f[..header_end - 1], Some(f.len() as u64)),
        Probe::NeedBytes(header_end)
    );
    assert_eq!(probe_checked(&f[..5], None), Probe::NeedBytes(24));
    assert_eq!(probe_checked(&[], Some(10)), Probe::NeedBytes(10));
    // The whole (truncated) file is given: no more bytes will come.
    assert_eq!(probe_checked(&f[..40], Some(40)), Probe::NotContainer);
}

#[test]
fn safetensors_rejections_are_not_container() {
    let nc = |f: &[u8]| probe_checked(f, Some(f.len() as u64));
    let t = |dtype: &str, shape: &str, offs: &str| {
        format!(r#"{{"x":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offs}}}}}"#)
    };
    // Sanity: the template itself parses.
    assert!(matches!(
        nc(&st_file(&t("F32", "[2]", "[0,8]"), 8)),
        Probe::Layout(_)
    ));
    // Header length beyond the file.
    let mut f = st_valid();
    let len = f.len() as u64;
    f[..8].copy_from_slice(&len.to_le_bytes());
    assert_eq!(nc(&f), Probe::NotContainer);
    // Header length shorter than the JSON: trailing bytes are not JSON.
    let mut f = st_valid();
    f[..8].copy_from_slice(&(ST_HEADER.len() as u64 - 10).to_le_bytes());
    assert_eq!(nc(&f), Probe::NotContainer);
    // Header length beyond the limit, even while streaming.
    let mut f = st_valid();
    f[..8].copy_from_slice(&(MAX_HEADER_BYTES as u64 + 1).to_le_bytes());
    assert_eq!(probe_checked(&f, None), Probe::NotContainer);
    // Span past the end of the file.
    assert_eq!(
        nc(&st_file(&t("F32", "[2]", "[0,8]"), 7)),
        Probe::NotContainer
    );
    // Size does not match shape × width.
    assert_eq!(
        nc(&st_file(&t("F32", "[3]", "[0,8]"), 8)),
        Probe::NotContainer
    );
    assert_eq!(
        nc(&st_file(&t("F16", "[2]", "[0,8]"), 8)),
        Probe::NotContainer
    );
    // end < begin.
    assert_eq!(
        nc(&st_file(&t("U8", "[0]", "[8,0]"), 8)),
        Probe::NotContainer
    );
    // Shape product overflows.
    let big = t("F32", "[4294967296,4294967296]", "[0,8]");
    assert_eq!(nc(&st_file(&big, 8)), Probe::NotContainer);
    // Offset overflows the file offset space.
    let far = t("U8", "[1]", "[18446744073709551614,18446744073709551615]");
    assert_eq!(probe_checked(&st_file(&far, 0), None), Probe::NotContainer);
    // Negative and fractional numbers, missing fields, wrong kinds.
    assert_eq!(
        nc(&st_file(&t("F32", "[-2]", "[0,8]"), 8)),
        Probe::NotContainer
    );
    assert_eq!(
        nc(&st_file(&t("F32", "[2.0]", "[0,8]"), 8)),
        Probe::NotContainer
    );
    assert_eq!(
        nc(&st_file(r#"{"x":{"dtype":"F32","shape":[2]}}"#, 8)),
        Probe::NotContainer
    );
    assert_eq!(nc(&st_file(r#"{"x":[1,2]}"#, 8)), Probe::NotContainer);
    // Overlapping spans.
    let overlap = concat!(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#,
        r#""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
    );
    assert_eq!(nc(&st_file(overlap, 12)), Probe::NotContainer);
    // An empty tensor inside another one would cut it.
    let inside = concat!(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#,
        r#""b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#
    );
    assert_eq!(nc(&st_file(inside, 8)), Probe::NotContainer);
    // Duplicate names.
    let dup = concat!(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#,
        r#""a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#
    );
    assert_eq!(nc(&st_file(dup, 16)), Probe::NotContainer);
    // Not JSON, not an object, not UTF-8, not starting with `{`.
    assert_eq!(nc(&st_file("{not json at all}", 0)), Probe::NotContainer);
    assert_eq!(nc(&st_file("[1,2,3]", 0)), Probe::NotContainer);
    assert_eq!(nc(&st_file(" {}", 0)), Probe::NotContainer);
    let mut f = st_file(r#"{"\u00e9":1}"#, 0);
    f[9] = 0xff;
    assert_eq!(nc(&f), Probe::NotContainer);
    // Rank beyond the bound.
    let shape = format!("[{}]", vec!["1"; MAX_RANK + 1].join(","));
    assert_eq!(
        nc(&st_file(&t("U8", &shape, "[0,1]"), 1)),
        Probe::NotContainer
    );
    // Too short to hold a header.
    assert_eq!(nc(&[1, 0, 0, 0, 0, 0, 0, 0, b'{']), Probe::NotContainer);
    // Random non-container bytes.
    assert_eq!(
        nc(b"hello, this is a text file and not a model"),
        Probe::NotContainer
    );
}

#[test]
fn safetensors_lenient_cases() {
    let h = concat!(
        r#"{"__metadata__":{"nested":{"ok":[1,2]}},"#,
        r#""u":{"dtype":"U32","shape":[2],"data_offsets":[16,24],"extra":true},"#,
        r#""e":{"dtype":"F64","shape":[0,7],"data_offsets":[0,0]},"#,
        r#""q":{"dtype":"NEWTYPE","shape":[3],"data_offsets":[24,27]},"#,
        r#""f":{"dtype":"F8_E4M3","shape":[],"data_offsets":[0,1]}}"#
    );
    let f = st_file(h, 27);
    let l = layout(probe_checked(&f, Some(f.len() as u64)));
    let ds = l.data_start;
    let got: Vec<_> = l
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.start - ds, t.end - ds))
        .collect();
    // Sorted by (start, end); gaps (1..16) allowed; unknown dtypes are Other.
    assert_eq!(
        got,
        vec![
            ("e", DType::F64, 0, 0),
            ("f", DType::F8, 0, 1),
            ("u", DType::Other, 16, 24),
            ("q", DType::Other, 24, 27),
        ]
    );
    assert_eq!(l.boundaries(), vec![ds, ds + 1, ds + 16, ds + 24, ds + 27]);
    assert!(l.span_at(ds + 5).is_none());
    assert_eq!(l.span_at(ds).map(|t| t.name.as_str()), Some("f"));
    let deep = format!(
        r#"{{"__metadata__":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // Deep nesting in the metadata is skipped without recursion, and
    // where a tensor entry is expected it hits serde_json's depth limit;
    // neither overflows the stack.
    let f = st_file(&deep, 0);
    let l = layout(probe_checked(&f, Some(f.len() as u64)));
    assert!(l.tensors.is_empty());
    let f = st_file(&deep.replace("__metadata__", "x"), 0);
    assert_eq!(probe_checked(&f, Some(f.len() as u64)), Probe::NotContainer);
    // An empty header is an empty container.
    let f = st_file("{}", 0);
    assert_eq!(layout(probe_checked(&f, Some(10))).tensors, vec![]);
}

#[test]
fn dtype_widths() {
    use DType::*;
    let all = [
        F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool, F8, Quantized, Other,
    ];
    let w: Vec<_> = all.iter().map(|d| d.width()).collect();
    let p: Vec<_> = all.iter().map(|d| d.plane_width()).collect();
    let (s8, s4, s2, s1) = (Some(8), Some(4), Some(2), Some(1));
    assert_eq!(
        w,
        vec![s8, s4, s2, s2, s8, s4, s2, s1, s1, s1, s1, None, None]
    );
    assert_eq!(
        p,
        vec![s4, s4, s2, s2, s4, s4, s2, None, None, None, None, None, None]
    );
}

// ---- GGUF ----

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// A GGUF tensor info: name, dims, ggml type, relative offset.
type Info<'a> = (&'a str, &'a [u64], u32, u64);

/// A GGUF v3 header with a few metadata pairs (the alignment pair only
/// when `alignment` is given), then the tensor infos; returns the bytes
/// up to the end of the infos.
fn gguf_header(version: u32, alignment: Option<u32>, infos: &[Info]) -> Vec<u8> {
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&(infos.len() as u64).to_le_bytes());
    h.extend_from_slice(&(4 + u64::from(alignment.is_some())).to_le_bytes());
    // general.architecture: string
    put_str(&mut h, b"general.architecture");
    h.extend_from_slice(&8u32.to_le_bytes());
    put_str(&mut h, b"llama");
    // tokenizer.ggml.tokens: array of strings
    put_str(&mut h, b"tokenizer.ggml.tokens");
    h.extend_from_slice(&9u32.to_le_bytes());
    h.extend_from_slice(&8u32.to_le_bytes());
    h.extend_from_slice(&3u64.to_le_bytes());
    for tok in [&b"<s>"[..], b"hello", b""] {
        put_str(&mut h, tok);
    }
    // tokenizer.ggml.scores: array of f32
    put_str(&mut h, b"tokenizer.ggml.scores");
    h.extend_from_slice(&9u32.to_le_bytes());
    h.extend_from_slice(&6u32.to_le_bytes());
    h.extend_from_slice(&3u64.to_le_bytes());
    for x in [0.0f32, -1.5, 2.25] {
        h.extend_from_slice(&x.to_le_bytes());
    }
    if let Some(a) = alignment {
        put_str(&mut h, b"general.alignment");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&a.to_le_bytes());
    }
    // llama.block_count: u64
    put_str(&mut h, b"llama.block_count");
    h.extend_from_slice(&10u32.to_le_bytes());
    h.extend_from_slice(&30u64.to_le_bytes());
    for (name, dims, ty, off) in infos {
        put_str(&mut h, name.as_bytes());
        h.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in *dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&off.to_le_bytes());
    }
    h
}

/// `header` padded to `align`, then `data` bytes of 0x55.
fn gguf_file(header: &[u8], align: usize, data: usize) -> Vec<u8> {
    let mut f = header.to_vec();
    f.resize(f.len().div_ceil(align) * align, 0);
    f.resize(f.len() + data, 0x55);
    f
}

// F32 [4,2] = 32 B at 0; F16 [8] = 16 B at 64; Q4_1 [64,2] = 4 blocks × 20 B at 128.
const GGUF_INFOS: &[Info<'static>] = &[
    ("output_norm.weight", &[8], 1, 64),
    ("token_embd.weight", &[4, 2], 0, 0),
    ("blk.0.attn_q.weight", &[64, 2], 3, 128),
];

fn gguf_valid() -> (Vec<u8>, Vec<u8>) {
    let h = gguf_header(3, Some(256), GGUF_INFOS);
    let f = gguf_file(&h, 256, 208);
    (h, f)
}

#[test]
fn gguf_spans_and_alignment() {
    let (h, f) = gguf_valid();
    let l = layout(probe_checked(&f, Some(f.len() as u64)));
    assert_eq!(l.format, "gguf");
    let ds = (h.len() as u64).div_ceil(256) * 256;
    let ds32 = (h.len() as u64).div_ceil(32) * 32;
    assert_ne!(
        ds, ds32,
        "the test must tell the alignment from the default"
    );
    assert!(ds > h.len() as u64, "the test header should need padding");
    assert_eq!(l.data_start, ds);
    assert_eq!(ds % 256, 0);
    let got: Vec<_> = l
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.dtype,
                t.shape.clone(),
                t.start - ds,
                t.end - ds,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("token_embd.weight", DType::F32, vec![4, 2], 0, 32),
            ("output_norm.weight", DType::F16, vec![8], 64, 80),
            (
                "blk.0.attn_q.weight",
                DType::Quantized,
                vec![64, 2],
                128,
                208
            ),
        ]
    );
    assert_eq!(
        l.boundaries(),
        vec![ds, ds + 32, ds + 64, ds + 80, ds + 128, ds + 208]
    );
    assert_eq!(
        l.find("output_norm.weight").map(|t| t.end - t.start),
        Some(16)
    );
    assert!(l.span_at(ds + 40).is_none(), "padding belongs to no tensor");
    assert_eq!(l.span_at(ds + 207).map(|t| t.dtype), Some(DType::Quantized));
    // Only the header is needed, and v2 reads the same.
    assert_eq!(layout(probe_checked(&h, None)), l);
    let mut v2 = f.clone();
    v2[4] = 2;
    assert_eq!(layout(probe_checked(&v2, Some(f.len() as u64))), l);
    // Without general.alignment the default is 32.
    let h32 = gguf_header(3, None, GGUF_INFOS);
    let l32 = layout(probe_checked(&gguf_file(&h32, 32, 208), None));
    assert_eq!(l32.data_start, (h32.len() as u64).div_ceil(32) * 32);
}

#[test]
fn gguf_type_sizes_follow_the_block_layouts() {
    // (ggml type, elements per block, bytes per block written as the
    // sum of the block struct's fields; QK_K = 256).
    const K: u64 = 256;
    let table: &[(u32, u64, u64)] = &[
        (0, 1, 4),
        (1, 1, 2),
        (2, 32, 2 + 16),                              // Q4_0
        (3, 32, 2 + 2 + 16),                          // Q4_1
        (6, 32, 2 + 4 + 16),                          // Q5_0
        (7, 32, 2 + 2 + 4 + 16),                      // Q5_1
        (8, 32, 2 + 32),                              // Q8_0
        (9, 32, 2 + 2 + 32),                          // Q8_1
        (10, K, K / 16 + K / 4 + 2 + 2),              // Q2_K
        (11, K, K / 8 + K / 4 + 12 + 2),              // Q3_K
        (12, K, 2 + 2 + 12 + K / 2),                  // Q4_K
        (13, K, 2 + 2 + 12 + K / 8 + K / 2),          // Q5_K
        (14, K, K / 2 + K / 4 + K / 16 + 2),          // Q6_K
        (15, K, 4 + K + K / 16 * 2),                  // Q8_K
        (16, K, 2 + K / 8 * 2),                       // IQ2_XXS
        (17, K, 2 + K / 8 * 2 + K / 32),              // IQ2_XS
        (18, K, 2 + 3 * K / 8),                       // IQ3_XXS
        (19, K, 2 + K / 8 + K / 32 * 2),              // IQ1_S
        (20, 32, 2 + 16),                             // IQ4_NL
        (21, K, 2 + K / 4 + K / 32 + K / 8 + K / 64), // IQ3_S
        (22, K, 2 + K / 4 + K / 32 + K / 32),         // IQ2_S
        (23, K, 2 + 2 + K / 64 + K / 2),              // IQ4_XS
        (24, 1, 1),
        (25, 1, 2),
        (26, 1, 4),
        (27, 1, 8),
        (28, 1, 8),
        (29, K, K / 8 + K / 16 + K / 32), // IQ1_M
        (30, 1, 2),
        (34, K, (K - 4 * K / 64) / 5 + K / 64 + 2), // TQ1_0
        (35, K, K / 4 + 2),                         // TQ2_0
        (39, 32, 1 + 16),                           // MXFP4
        (40, 64, 4 + 32),                           // NVFP4
    ];
    let elems = 2 * K;
    for &(ty, block, bytes) in table {
        let h = gguf_header(3, None, &[("t", &[elems], ty, 0), ("next", &[0], 0, 4096)]);
        let l = layout(probe_checked(&h, None));
        let t = l.find("t").unwrap();
        assert_eq!(t.end - t.start, elems / block * bytes, "ggml type {ty}");
        let plain = [0, 1, 24, 25, 26, 27, 28, 30].contains(&ty);
        assert_eq!(t.dtype == DType::Quantized, !plain, "ggml type {ty}");
        if plain {
            assert_eq!(
                t.dtype.width().map(u64::from),
                Some(bytes),
                "ggml type {ty}"
            );
        }
    }
    // Removed and future types are not sized: they run to the next tensor.
    for ty in [4, 5, 31, 36, 41, 1000] {
        let h = gguf_header(3, None, &[("t", &[elems], ty, 0), ("next", &[0], 0, 4096)]);
        let l = layout(probe_checked(&h, None));
        let t = l.find("t").unwrap();
        assert_eq!(
            (t.dtype, t.end - t.start),
            (DType::Other, 4096),
            "ggml type {ty}"
        );
    }
}

#[test]
fn gguf_truncations_need_bytes_or_reject() {
    let (h, f) = gguf_valid();
    let full = layout(probe_checked(&f, Some(f.len() as u64)));
    for cut in 0..h.len() {
        match probe_checked(&f[..cut], None) {
            Probe::NeedBytes(n) => assert!(n > cut),
            other => panic!("cut {cut}: {other:?}"),
        }
        // The whole file is this short: nothing more will come.
        let p = probe_checked(&f[..cut], Some(cut as u64));
        if cut >= 24 {
            assert_eq!(p, Probe::NotContainer, "cut {cut}");
        }
    }
    // A streaming caller growing its prefix as asked reaches the layout.
    let mut n = 0;
    let mut rounds = 0;
    let l = loop {
        rounds += 1;
        assert!(rounds < 64);
        match probe_checked(&f[..n.min(f.len())], None) {
            Probe::NeedBytes(m) => {
                assert!(m > n);
                n = m;
            }
            Probe::Layout(l) => break l,
            Probe::NotContainer => panic!("rejected at {n}"),
        }
    };
    assert_eq!(l, full);
    // A file cut inside the data section: the last tensor runs past it.
    let short = &f[..f.len() - 1];
    assert_eq!(
        probe_checked(short, Some(short.len() as u64)),
        Probe::NotContainer
    );
}

#[test]
fn gguf_unknown_types_run_to_the_next_tensor() {
    let infos: &[Info] = &[
        ("a", &[4], 0, 0),         // F32, 16 B
        ("weird", &[100], 99, 32), // unknown type
        ("b", &[8], 1, 96),        // F16, 16 B
        ("tail", &[3], 1234, 128), // unknown, last
    ];
    let h = gguf_header(3, Some(32), infos);
    let f = gguf_file(&h, 32, 150);
    let l = layout(probe_checked(&f, Some(f.len() as u64)));
    let ds = l.data_start;
    let got: Vec<_> = l
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.start - ds, t.end - ds))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", DType::F32, 0, 16),
            ("weird", DType::Other, 32, 96),
            ("b", DType::F16, 96, 112),
            ("tail", DType::Other, 128, 150),
        ]
    );
    // Streaming: the last one's extent is unknown, so it is empty.
    let l = layout(probe_checked(&h, None));
    assert_eq!(
        l.find("tail").map(|t| (t.start - ds, t.end - ds)),
        Some((128, 128))
    );
    assert_eq!(l.find("weird").map(|t| t.end - ds), Some(96));
}

#[test]
fn gguf_rejections_are_not_container() {
    let nc = |h: &[u8]| probe_checked(h, None);
    // Version 1 and unknown versions.
    for v in [0u32, 1, 4, 0x0300_0000] {
        assert_eq!(
            nc(&gguf_header(v, Some(32), GGUF_INFOS)),
            Probe::NotContainer,
            "v{v}"
        );
    }
    // Alignment zero or not a power of two.
    for a in [0u32, 3, 48] {
        assert_eq!(
            nc(&gguf_header(3, Some(a), GGUF_INFOS)),
            Probe::NotContainer,
            "align {a}"
        );
    }
    // Too many dims; elements not a whole number of blocks; overlap;
    // duplicate names; element count overflow; offset overflow.
    let bad: [&[Info]; 6] = [
        &[("x", &[1; 9], 0, 0)],
        &[("x", &[33], 3, 0)],
        &[("x", &[8], 0, 0), ("y", &[8], 0, 16)],
        &[("x", &[8], 0, 0), ("x", &[8], 0, 32)],
        &[("x", &[1 << 32, 1 << 32], 0, 0)],
        &[("x", &[8], 0, u64::MAX - 8)],
    ];
    for infos in bad {
        assert_eq!(
            nc(&gguf_header(3, None, infos)),
            Probe::NotContainer,
            "{infos:?}"
        );
    }
    // Tensor past the end of a file of known length.
    let h = gguf_header(3, None, &[("x", &[8], 0, 0)]);
    let f = gguf_file(&h, 32, 31);
    assert_eq!(probe_checked(&f, Some(f.len() as u64)), Probe::NotContainer);
    // Counts that cannot fit in the header limit.
    let mut h = gguf_header(3, None, &[]);
    h[8..16].copy_from_slice(&(MAX_TENSORS as u64 + 1).to_le_bytes());
    assert_eq!(nc(&h), Probe::NotContainer);
    let mut h = gguf_header(3, None, &[]);
    h[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(nc(&h), Probe::NotContainer);
    // A string array claiming 2^40 elements; a u8 array of 2^62 bytes;
    // an unknown value type; arrays nested too deep.
    let kv = |value: &[u8]| {
        let mut h = b"GGUF".to_vec();
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&1u64.to_le_bytes());
        put_str(&mut h, b"k");
        h.extend_from_slice(value);
        h.resize(h.len() + 64, 0);
        h
    };
    let arr = |elem: u32, count: u64| {
        let mut v = 9u32.to_le_bytes().to_vec();
        v.extend_from_slice(&elem.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        v
    };
    assert_eq!(nc(&kv(&arr(8, 1 << 40))), Probe::NotContainer);
    assert_eq!(nc(&kv(&arr(0, 1 << 62))), Probe::NotContainer);
    assert_eq!(nc(&kv(&arr(12, u64::MAX))), Probe::NotContainer);
    assert_eq!(nc(&kv(&13u32.to_le_bytes())), Probe::NotContainer);
    assert_eq!(nc(&kv(&arr(13, 1))), Probe::NotContainer);
    let mut deep = Vec::new();
    for _ in 0..20 {
        deep.extend_from_slice(&arr(9, 1)[4..]);
    }
    let mut v = 9u32.to_le_bytes().to_vec();
    v.extend_from_slice(&deep);
    assert_eq!(nc(&kv(&v)), Probe::NotContainer);
    // Shallow nesting is fine: [[u8; 2]] then no tensors.
    let mut v = arr(9, 1);
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&2u64.to_le_bytes());
    v.extend_from_slice(&[7, 7]);
    let f = kv(&v);
    assert!(
        matches!(probe_checked(&f, Some(f.len() as u64)), Probe::Layout(l) if l.tensors.is_empty())
    );
    // A string length pointing far beyond the header limit.
    let mut v = 8u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(MAX_HEADER_BYTES as u64).to_le_bytes());
    assert_eq!(nc(&kv(&v)), Probe::NotContainer);
}

#[test]
fn gguf_huge_string_array_asks_for_more_then_parses() {
    // 50,000 tokens: the header outgrows a small prefix.
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    put_str(&mut h, b"tokenizer.ggml.tokens");
    h.extend_from_slice(&9u32.to_le_bytes());
    h.extend_from_slice(&8u32.to_le_bytes());
    h.extend_from_slice(&50_000u64.to_le_bytes());
    for i in 0..50_000u32 {
        put_str(&mut h, format!("tok{i}").as_bytes());
    }
    put_str(&mut h, b"w");
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&4u64.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    let f = gguf_file(&h, 32, 16);
    let Probe::NeedBytes(n) = probe_checked(&f[..4096], None) else {
        panic!("expected NeedBytes")
    };
    assert!(n >= 8192);
    let l = layout(probe_checked(&f, Some(f.len() as u64)));
    assert_eq!(l.tensors.len(), 1);
    assert_eq!(l.tensors[0].end, f.len() as u64);
}

/// Deterministic fuzzing: every truncation and every single-bit flip of
/// the valid headers, under both streaming and known-length calls.
#[test]
fn truncations_and_bit_flips_never_panic() {
    let (gh, gf) = gguf_valid();
    let sf = st_valid();
    for (file, hlen) in [(&gf, gh.len()), (&sf, 8 + ST_HEADER.len())] {
        for cut in 0..=file.len() {
            probe_checked(&file[..cut], None);
            probe_checked(&file[..cut], Some(cut as u64));
            probe_checked(&file[..cut], Some(file.len() as u64));
        }
        for bit in 0..hlen * 8 {
            let mut m = file.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            probe_checked(&m, None);
            probe_checked(&m, Some(m.len() as u64));
        }
    }
}

fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        // Plausible starts, to get past the first checks.
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|mut v| {
            let mut f = b"GGUF\x03\0\0\0".to_vec();
            f.append(&mut v);
            f
        }),
        (0u64..600, prop::collection::vec(any::<u8>(), 0..512)).prop_map(|(n, mut v)| {
            let mut f = n.to_le_bytes().to_vec();
            f.push(b'{');
            f.append(&mut v);
            f
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in hostile_bytes(), extra in 0u64..1024, known in any::<bool>()) {
        let len = (bytes.len() as u64).saturating_add(if known { 0 } else { extra });
        probe_checked(&bytes, Some(len));
        probe_checked(&bytes, None);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        which in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        known in any::<bool>(),
    ) {
        let mut f = if which { gguf_valid().1 } else { st_valid() };
        for (at, x) in flips {
            let i = at.index(f.len());
            f[i] ^= x;
        }
        let cut = cut.index(f.len() + 1);
        let file_len = known.then_some(f.len() as u64);
        probe_checked(&f[..cut], file_len);
        probe_checked(&f, file_len);
    }
}
