//! Tests of the weight-aware cutter.

use super::*;
use crate::formats::tensor::TensorSpan;
use proptest::prelude::*;

/// Small bounds so that short test streams get many cuts.
const P: CdcParams = CdcParams {
    min: 64,
    avg: 256,
    max: 1024,
};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A safetensors file: `(name, dtype, element count)` in order, no
/// gaps, `pad` spaces of header padding, data from `seed`.
fn st_file(tensors: &[(&str, &str, usize)], pad: usize, seed: u64) -> Vec<u8> {
    let size = |dt: &str| match dt {
        "F64" | "I64" => 8,
        "F32" | "I32" => 4,
        "F16" | "BF16" | "I16" => 2,
        _ => 1,
    };
    let mut off = 0;
    let mut entries = vec![r#""__metadata__":{"format":"pt"}"#.to_string()];
    for &(name, dt, n) in tensors {
        let end = off + n * size(dt);
        entries.push(format!(
            r#""{name}":{{"dtype":"{dt}","shape":[{n}],"data_offsets":[{off},{end}]}}"#
        ));
        off = end;
    }
    let mut header = format!("{{{}}}", entries.join(","));
    header.push_str(&" ".repeat(pad));
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(&noise(off, seed));
    f
}

fn layout_of(f: &[u8]) -> TensorLayout {
    match probe(f, None) {
        Probe::Layout(l) => l,
        other => panic!("{other:?}"),
    }
}

/// Feeds `data` in blocks of the given sizes (cycled) as the blob writer
/// does: append, cut while possible, then cut to the end at eof.
fn streamed(mut c: Cutter, data: &[u8], blocks: &[usize]) -> Vec<Cut> {
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0u64;
    let mut out = Vec::new();
    let mut fed = 0;
    let mut i = 0;
    while fed < data.len() {
        let n = blocks[i % blocks.len()].max(1).min(data.len() - fed);
        i += 1;
        buf.extend_from_slice(&data[fed..fed + n]);
        fed += n;
        let mut at = 0;
        while let Some(cut) = c.next_cut(pos, &buf[at..], false) {
            assert!(cut.len >= 1 && cut.len <= buf.len() - at);
            out.push(cut);
            at += cut.len;
            pos += cut.len as u64;
        }
        buf.drain(..at);
        assert!(buf.len() < c.lookahead(), "full buffer without a cut");
    }
    while let Some(cut) = c.next_cut(pos, &buf, true) {
        out.push(cut);
        buf.drain(..cut.len);
        pos += cut.len as u64;
    }
    assert!(buf.is_empty());
    out
}

fn offsets(cuts: &[Cut]) -> Vec<u64> {
    let mut off = 0;
    cuts.iter()
        .map(|c| {
            off += c.len as u64;
            off
        })
        .collect()
}

fn check_cover(cuts: &[Cut], len: usize, max: usize) {
    assert_eq!(cuts.iter().map(|c| c.len).sum::<usize>(), len);
    assert!(cuts.iter().all(|c| c.len >= 1 && c.len <= max));
}

const MIXED: &[(&str, &str, usize)] = &[
    ("a.bf16", "BF16", 3000),
    ("b.f32", "F32", 1500),
    ("c.norm", "F32", 7),
    ("d.f16", "F16", 2500),
    ("e.i8", "I8", 5000),
    ("f.u8", "U8", 33),
    ("g.f64", "F64", 900),
    ("h.empty", "F32", 0),
    ("i.bool", "BOOL", 1200),
];

#[test]
fn cuts_at_every_boundary_with_dtype_hints() {
    let f = st_file(MIXED, 0, 1);
    let l = layout_of(&f);
    let cuts = Cutter::new(P).with_min_region(0).cuts(&f);
    check_cover(&cuts, f.len(), P.max);
    let ends = offsets(&cuts);
    for b in l.boundaries() {
        assert!(
            b == 0 || b >= f.len() as u64 || ends.contains(&b),
            "no cut at {b}"
        );
    }
    // Every chunk lies in one region and carries its hint.
    let mut start = 0u64;
    for c in &cuts {
        let want = match l.span_at(start) {
            Some(t) => {
                assert!(start + c.len as u64 <= t.end, "chunk crosses {}", t.name);
                PlaneHint::of(t.dtype)
            }
            None => PlaneHint::Estimate,
        };
        assert_eq!(c.hint, want, "chunk at {start}");
        start += c.len as u64;
    }
    // The expected hints by dtype.
    let hint = |name: &str| {
        let t = l.find(name).unwrap();
        let mut s = 0u64;
        cuts.iter()
            .find(|c| {
                let here = s;
                s += c.len as u64;
                here == t.start
            })
            .map(|c| c.hint)
    };
    assert_eq!(hint("a.bf16"), Some(PlaneHint::Width(2)));
    assert_eq!(hint("b.f32"), Some(PlaneHint::Width(4)));
    assert_eq!(hint("d.f16"), Some(PlaneHint::Width(2)));
    assert_eq!(hint("e.i8"), Some(PlaneHint::Flat));
    assert_eq!(hint("f.u8"), Some(PlaneHint::Flat));
    assert_eq!(hint("g.f64"), Some(PlaneHint::Width(4)));
    assert_eq!(hint("i.bool"), Some(PlaneHint::Flat));
    assert_eq!(cuts[0].hint, PlaneHint::Estimate, "header");
}

/// The chunks from the data section on.
fn after_data_start(f: &[u8], cuts: &[Cut]) -> Vec<usize> {
    let ds = layout_of(f).data_start;
    let ends = offsets(cuts);
    let i = ends
        .iter()
        .position(|&e| e == ds)
        .expect("a cut at the data start");
    cuts[i + 1..].iter().map(|c| c.len).collect()
}

/// The data-section cuts of a file holding `t`, which must be the same
/// in the same file with a longer header; and the file.
fn shifted_alike(t: &[(&str, &str, usize)]) -> (Vec<usize>, Vec<u8>) {
    let a = st_file(t, 0, 7);
    let b = st_file(t, 13, 7);
    let ca = Cutter::new(P).cuts(&a);
    let cb = Cutter::new(P).cuts(&b);
    check_cover(&ca, a.len(), P.max);
    let data_a = after_data_start(&a, &ca);
    assert_eq!(data_a, after_data_start(&b, &cb));
    (data_a, a)
}

#[test]
fn float_tensors_are_cut_on_a_grid_wherever_they_sit() {
    // One big fp32 tensor, then the same file with a longer header: the
    // tensor's chunks are identical, shifted, and on a grid of the CDC
    // maximum from the tensor's start.
    let (data_a, _) = shifted_alike(&[("w", "F32", 20_000)]);
    let n = 20_000 * 4;
    let mut want = vec![P.max; n / P.max];
    if n % P.max != 0 {
        want.push(n % P.max);
    }
    assert_eq!(data_a, want);
}

#[test]
fn other_tensors_use_cdc_inside_and_resynchronise() {
    let (data_a, a) = shifted_alike(&[("q", "I8", 80_000)]);
    assert!(data_a.len() > 20, "CDC inside the tensor");
    // Inside the tensor the cuts are CDC's own, restarted at its start.
    let ds = layout_of(&a).data_start as usize;
    assert_eq!(data_a, Chunker::new(P).cuts(&a[ds..]));
}

#[test]
fn max_length_is_respected_whatever_the_layout() {
    for min_region in [0, 64, 5000] {
        let f = st_file(MIXED, 100, 3);
        let cuts = Cutter::new(P).with_min_region(min_region).cuts(&f);
        check_cover(&cuts, f.len(), P.max);
    }
    // A layout claiming regions far beyond the stream.
    let mut c = Cutter::new(P);
    c.set_layout(&TensorLayout {
        format: "safetensors",
        data_start: 10,
        tensors: vec![TensorSpan {
            name: "x".into(),
            dtype: DType::BF16,
            shape: vec![],
            start: 10,
            end: u64::MAX,
        }],
    });
    let data = noise(50_000, 4);
    check_cover(&c.cuts(&data), data.len(), P.max);
}

#[test]
fn small_regions_merge_and_padding_joins_its_tensor() {
    // header | big a (F32) | 8 B gap | big b (F16) | tiny c, d (F32) | big e (I8)
    let l = TensorLayout {
        format: "gguf",
        data_start: 100,
        tensors: vec![
            span("a", DType::F32, 100, 3000),
            span("b", DType::F16, 3008, 6000),
            span("c", DType::F32, 6000, 6010),
            span("d", DType::F32, 6010, 6030),
            span("e", DType::I8, 6030, 9000),
        ],
    };
    let r = build_regions(&l, 64);
    let got: Vec<_> = r.iter().map(|r| (r.start, r.hint)).collect();
    use PlaneHint::*;
    assert_eq!(
        got,
        vec![
            (0, Estimate),
            (100, Width(4)),
            (3008, Width(2)),
            (6000, Width(4)),
            (6030, Flat),
            (9000, Estimate),
        ]
    );
    // With different dtypes the merged run is estimated.
    let mut l2 = l.clone();
    l2.tensors[3].dtype = DType::BF16;
    assert_eq!(
        build_regions(&l2, 64)[3],
        Region {
            start: 6000,
            hint: Estimate
        }
    );
    // Without a minimum every boundary is a region.
    let all: Vec<_> = build_regions(&l, 0).iter().map(|r| r.start).collect();
    assert_eq!(all, vec![0, 100, 3000, 3008, 6000, 6010, 6030, 9000]);
    // A small header before a big tensor keeps its own chunk; before a
    // small one it shares it.
    assert!(build_regions(&l, 2000).iter().any(|r| r.start == 100));
    assert!(!build_regions(&l, 4000).iter().any(|r| r.start == 100));
}

fn span(name: &str, dtype: DType, start: u64, end: u64) -> TensorSpan {
    TensorSpan {
        name: name.into(),
        dtype,
        shape: vec![],
        start,
        end,
    }
}

#[test]
fn gguf_quantized_is_flat() {
    let l = TensorLayout {
        format: "gguf",
        data_start: 64,
        tensors: vec![
            span("q", DType::Quantized, 64, 5000),
            span("n", DType::F32, 5024, 9024),
        ],
    };
    let mut c = Cutter::new(P);
    c.set_layout(&l);
    assert_eq!(c.format(), Some("gguf"));
    let data = noise(9100, 9);
    let cuts = c.cuts(&data);
    check_cover(&cuts, data.len(), P.max);
    let mut s = 0u64;
    for cut in &cuts {
        let want = if s < 64 {
            PlaneHint::Estimate
        } else if s < 5024 {
            PlaneHint::Flat // padding 5000..5024 joins q
        } else if s < 9024 {
            PlaneHint::Width(4)
        } else {
            PlaneHint::Estimate
        };
        assert_eq!(cut.hint, want, "at {s}");
        s += cut.len as u64;
    }
    assert!(offsets(&cuts).contains(&5024));
}

#[test]
fn malformed_headers_fall_back_to_plain_cdc() {
    let good = st_file(MIXED, 0, 5);
    let mut cases = Vec::new();
    // Broken JSON, a header length past the end, a dtype size mismatch,
    // random bytes, a truncated header, an empty stream.
    let mut bad_json = good.clone();
    bad_json[9] = b'!';
    cases.push(bad_json);
    let mut long = good.clone();
    long[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    cases.push(long);
    let mut mismatch = good.clone();
    let text = String::from_utf8_lossy(&mismatch[8..]).replace("[3000]", "[3001]");
    mismatch.truncate(8);
    mismatch.extend_from_slice(text.as_bytes());
    cases.push(mismatch);
    cases.push(noise(30_000, 6));
    cases.push(good[..200].to_vec());
    for data in &cases {
        let mut c = Cutter::new(P);
        let cuts = c.cuts(data);
        assert_eq!(c.format(), None);
        assert!(!c.is_probing());
        let lens: Vec<_> = cuts.iter().map(|c| c.len).collect();
        assert_eq!(lens, Chunker::new(P).cuts(data));
        assert!(cuts.iter().all(|c| c.hint == PlaneHint::Estimate));
    }
    assert!(Cutter::new(P).cuts(&[]).is_empty());
    // The good one is recognised.
    let mut c = Cutter::new(P);
    c.cuts(&good);
    assert_eq!(c.format(), Some("safetensors"));
}

#[test]
fn header_beyond_the_window_is_plain() {
    let f = st_file(MIXED, 5000, 8);
    let mut c = Cutter::new(P).with_probe_window(4096);
    assert_eq!(c.lookahead(), 4096);
    // Not decided before the window is full.
    assert_eq!(c.next_cut(0, &f[..4095], false), None);
    assert!(c.is_probing());
    let cut = c.next_cut(0, &f[..4096], false).unwrap();
    assert_eq!(c.format(), None);
    assert_eq!(cut.len, Chunker::new(P).next_cut(&f, false).unwrap());
    // With a larger window it is a container.
    let mut c = Cutter::new(P).with_probe_window(1 << 20);
    c.cuts(&f);
    assert_eq!(c.format(), Some("safetensors"));
}

#[test]
fn probing_elsewhere_than_the_start_gives_up() {
    let f = st_file(MIXED, 0, 2);
    let mut c = Cutter::new(P);
    assert!(c.next_cut(5, &f[5..], true).is_some());
    assert_eq!(c.format(), None);
    assert!(!c.is_probing());
    let mut p = Cutter::plain(P);
    let lens: Vec<_> = p.cuts(&f).iter().map(|c| c.len).collect();
    assert_eq!(lens, Chunker::new(P).cuts(&f));
}

fn dtype_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "F32", "F16", "BF16", "I8", "U8", "F64", "I64", "I32", "BOOL",
    ])
}

prop_compose! {
    fn st_stream()(
        tensors in prop::collection::vec((dtype_name(), 0usize..1500), 0..12),
        pad in 0usize..600,
        seed in any::<u64>(),
        tail in 0usize..3000,
    ) -> Vec<u8> {
        let named: Vec<(String, &str, usize)> = tensors
            .iter()
            .enumerate()
            .map(|(i, &(dt, n))| (format!("t{i}"), dt, n))
            .collect();
        let refs: Vec<(&str, &str, usize)> =
            named.iter().map(|(n, d, c)| (n.as_str(), *d, *c)).collect();
        let mut f = st_file(&refs, pad, seed);
        f.extend_from_slice(&noise(tail, seed ^ 1));
        f
    }
}

fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => st_stream(),
        // Mutated containers and plain noise.
        2 => (st_stream(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6))
            .prop_map(|(mut f, flips)| {
                for (at, x) in flips {
                    let i = at.index(f.len());
                    f[i] ^= x;
                }
                f
            }),
        1 => (any::<u64>(), 0usize..20_000).prop_map(|(s, n)| noise(n, s)),
        1 => (st_stream(), any::<prop::sample::Index>()).prop_map(|(f, cut)| {
            let n = cut.index(f.len() + 1);
            f[..n].to_vec()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The same stream fed in random block sizes gives the same cuts and
    /// hints as the whole buffer, and every chunk is within bounds.
    #[test]
    fn cuts_do_not_depend_on_block_sizes(
        data in any_stream(),
        blocks in prop::collection::vec(1usize..5000, 1..8),
        window in prop::sample::select(vec![24usize, 700, 2048, 1 << 20]),
        min_region in prop::sample::select(vec![0usize, 64, 700]),
    ) {
        let make = || Cutter::new(P).with_probe_window(window).with_min_region(min_region);
        let whole = make().cuts(&data);
        check_cover(&whole, data.len(), P.max);
        let got = streamed(make(), &data, &blocks);
        prop_assert_eq!(got, whole);
    }

    /// Any layout, however inconsistent, gives covering cuts within
    /// bounds that include every boundary inside the stream.
    #[test]
    fn hostile_layouts_never_panic(
        data_start in 0u64..3000,
        spans in prop::collection::vec((0u64..4000, 0u64..4000), 0..20),
        len in 0usize..5000,
    ) {
        let l = TensorLayout {
            format: "safetensors",
            data_start,
            tensors: spans
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| span(&format!("t{i}"), DType::F32, a, b))
                .collect(),
        };
        let data = noise(len, data_start);
        let mut c = Cutter::new(P).with_min_region(0);
        c.set_layout(&l);
        let cuts = c.cuts(&data);
        check_cover(&cuts, data.len(), P.max);
        let ends = offsets(&cuts);
        for b in l.boundaries() {
            prop_assert!(b == 0 || b >= len as u64 || ends.contains(&b), "no cut at {}", b);
        }
    }
}
