//! Weight-aware cutting: content-defined chunks that never straddle a tensor
//! boundary, each tagged with the byte-plane width its codec should try.
//!
//! A [`Cutter`] wraps the content-defined [`Chunker`]. Given the
//! [`TensorLayout`] of a safetensors or GGUF stream it cuts at the end of the
//! header and at every tensor's start and end (absolute stream offsets).
//! Inside a region of floating-point elements (a [`PlaneHint::Width`]
//! region) it cuts on a fixed grid of the CDC maximum from the region's
//! start: values never move inside a tensor, and a grid makes chunk `k` of a
//! tensor cover the same elements in every version of the file, which is
//! what a delta against the previous checkpoint needs (one base chunk per
//! chunk). Inside any other region it cuts with CDC restarted at the
//! region's start, so an insert or a shift still resynchronises. Either way
//! an unchanged tensor gives the same chunks wherever it sits in the file,
//! and chunks are never longer than the CDC maximum. Each chunk gets a
//! [`PlaneHint`] from its region: the tensor's [`DType::plane_width`], or
//! "let the codec estimate" for the header, gaps and streams that are not
//! containers.
//!
//! # Streaming and determinism
//!
//! [`Cutter::next_cut`] follows [`Chunker::next_cut`]: the caller holds a
//! buffer whose first byte is at absolute offset `pos` (the start of the
//! next chunk) and gets the next chunk's length, or `None` when more bytes
//! are needed. Cuts depend only on the stream's content, never on how it was
//! split into buffers:
//!
//! * The layout is decided once, from exactly the first
//!   `min(probe window, stream length)` bytes, with [`probe`] called without
//!   a file length (so the same content gets the same layout whether or not
//!   its length was known). Until then no chunk is cut: at `pos == 0`,
//!   `next_cut` answers `None` until the buffer holds the whole probe window
//!   or the stream ends. A header longer than the window, or anything
//!   [`probe`] rejects, means plain CDC for the whole stream.
//! * A region boundary within the buffer is treated as an end of stream for
//!   CDC, whose decisions only depend on the bytes up to the cut.
//!
//! So a caller whose buffer can hold [`Cutter::lookahead`] bytes always gets
//! a cut from a full buffer (the blob writer's 4 MiB blocks do, with the
//! default window).
//!
//! # Small regions
//!
//! Cutting at every boundary can make tiny chunks: GGUF pads tensors to 32
//! bytes, and norms and biases are a few KiB. With a *minimum region*
//! (default: the CDC minimum; `0` cuts at every boundary) two rules apply,
//! both decided from the layout alone:
//!
//! * a gap between tensors shorter than it (alignment padding) joins the
//!   region before it;
//! * a boundary between two regions that are both shorter than it is not cut,
//!   so runs of small tensors share chunks (hint: theirs if they agree, else
//!   [`PlaneHint::Estimate`]).
//!
//! A large tensor therefore always starts and ends on a cut, and a hostile
//! header of thousands of one-byte tensors cannot make one chunk per tensor.
//!
//! All input is treated as hostile: nothing here panics on any bytes, any
//! layout passed to [`Cutter::set_layout`], or any `pos`.

use super::cdc::{CdcParams, Chunker};
use crate::formats::tensor::{probe, DType, Probe, TensorLayout};

/// The default probe window: the blob writer's input block (4 MiB). Container
/// headers longer than this are chunked as plain CDC.
pub const DEFAULT_PROBE_WINDOW: usize = 4 << 20;

/// What a chunk's element type says about how to compress it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaneHint {
    /// Nothing is known (a container header, bytes between or after tensors,
    /// a stream that is not a container): let the codec's estimator choose.
    Estimate,
    /// Elements of a type whose byte planes compress apart: try planes of
    /// this width (2 for fp16/bf16/i16, 4 for fp32/i32 and the 8-byte types).
    Width(u8),
    /// Elements with no plane structure worth splitting (one-byte, quantized
    /// and unknown types): plain zstd or raw.
    Flat,
}

impl PlaneHint {
    /// The hint for a tensor of `dtype`, from [`DType::plane_width`].
    pub fn of(dtype: DType) -> Self {
        match dtype.plane_width() {
            Some(w) => PlaneHint::Width(w),
            None => PlaneHint::Flat,
        }
    }
}

/// One chunk decided by [`Cutter::next_cut`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cut {
    /// Its length in bytes: `1..=` the CDC maximum.
    pub len: usize,
    /// How to compress it.
    pub hint: PlaneHint,
}

/// A run of the stream, from `start` to the next region's start (the last
/// region runs to the end of the stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    start: u64,
    hint: PlaneHint,
}

/// What the cutter knows about the stream.
#[derive(Clone, Debug)]
enum Mode {
    /// Waiting for the probe window (or the end of the stream) at offset 0.
    Probing,
    /// Plain content-defined chunking, no hints.
    Plain,
    /// A container: regions sorted by start, the first at offset 0, starts
    /// strictly increasing.
    Aware {
        layout: TensorLayout,
        regions: Vec<Region>,
    },
}

/// Cuts a stream into content-defined chunks that respect tensor boundaries.
/// See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Cutter {
    cdc: Chunker,
    window: usize,
    min_region: u64,
    mode: Mode,
}

impl Cutter {
    /// A cutter that probes the stream's first [`DEFAULT_PROBE_WINDOW`]
    /// bytes for a container layout, with a minimum region of `params.min`.
    ///
    /// # Panics
    /// If `params` are outside what [`Chunker::new`] accepts (check them with
    /// [`Chunker::check`]).
    pub fn new(params: CdcParams) -> Self {
        Self::from_chunker(Chunker::new(params))
    }

    /// Like [`Cutter::new`], from an existing chunker.
    pub fn from_chunker(cdc: Chunker) -> Self {
        let min_region = u64::try_from(cdc.params().min).unwrap_or(u64::MAX);
        Cutter {
            cdc,
            window: DEFAULT_PROBE_WINDOW,
            min_region,
            mode: Mode::Probing,
        }
    }

    /// A cutter that never probes: plain CDC, every hint
    /// [`PlaneHint::Estimate`] (the cuts of [`Chunker::next_cut`]).
    pub fn plain(params: CdcParams) -> Self {
        let mut c = Self::new(params);
        c.mode = Mode::Plain;
        c
    }

    /// Sets how many leading bytes are probed for a container header (at
    /// least 1). Headers longer than this are chunked as plain CDC. Every
    /// writer of one store must use the same window, or the same content may
    /// be cut differently. Call before the first [`Cutter::next_cut`].
    pub fn with_probe_window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(1);
        self
    }

    /// Sets the minimum region (see the module documentation); `0` cuts at
    /// every boundary. Call before the layout is known (it applies to
    /// layouts set or probed afterwards).
    pub fn with_min_region(mut self, bytes: usize) -> Self {
        self.min_region = u64::try_from(bytes).unwrap_or(u64::MAX);
        self
    }

    /// The CDC bounds.
    pub fn params(&self) -> CdcParams {
        self.cdc.params()
    }

    /// Uses `layout` (absolute offsets) from now on, instead of probing. For
    /// callers that run [`probe`] themselves; note that content probed with
    /// a different prefix or file length may get a different layout, hence
    /// different cuts, than the built-in probe gives it.
    pub fn set_layout(&mut self, layout: &TensorLayout) {
        self.mode = Mode::Aware {
            layout: layout.clone(),
            regions: build_regions(layout, self.min_region),
        };
    }

    /// Plain CDC from now on (no probing, no boundaries).
    pub fn set_plain(&mut self) {
        self.mode = Mode::Plain;
    }

    /// True until the layout is decided.
    pub fn is_probing(&self) -> bool {
        matches!(self.mode, Mode::Probing)
    }

    /// The container format once a layout is in use (`"safetensors"` or
    /// `"gguf"`), `None` while probing or for plain CDC.
    pub fn format(&self) -> Option<&'static str> {
        self.layout().map(|l| l.format)
    }

    /// The layout in use, once decided (`None` while probing or for plain
    /// CDC).
    pub fn layout(&self) -> Option<&TensorLayout> {
        match &self.mode {
            Mode::Aware { layout, .. } => Some(layout),
            _ => None,
        }
    }

    /// The number of cut regions of the layout in use (0 without one).
    pub fn region_count(&self) -> usize {
        match &self.mode {
            Mode::Aware { regions, .. } => regions.len(),
            _ => 0,
        }
    }

    /// A buffer of at least this many bytes always yields a cut: the CDC
    /// maximum, or the probe window while probing if that is larger.
    pub fn lookahead(&self) -> usize {
        let max = self.cdc.params().max;
        match self.mode {
            Mode::Probing => max.max(self.window),
            _ => max,
        }
    }

    /// The chunk that starts at `data[0]`, which is at absolute stream
    /// offset `pos`, or `None` when more bytes are needed to decide. With
    /// `eof` set, `data` runs to the end of the stream and a non-empty `data`
    /// always yields a cut. Returns `Some` whenever `data.len() >=
    /// self.lookahead()`.
    ///
    /// While probing, the first call must have `pos == 0` (the stream's
    /// start); a call at another offset gives up probing for plain CDC.
    pub fn next_cut(&mut self, pos: u64, data: &[u8], eof: bool) -> Option<Cut> {
        if data.is_empty() {
            return None;
        }
        if let Mode::Probing = self.mode {
            if pos != 0 {
                self.mode = Mode::Plain;
            } else if data.len() < self.window && !eof {
                return None;
            } else {
                let prefix = &data[..data.len().min(self.window)];
                match probe(prefix, None) {
                    Probe::Layout(l) => self.set_layout(&l),
                    Probe::NeedBytes(_) | Probe::NotContainer => self.mode = Mode::Plain,
                }
            }
        }
        let (hint, room) = match &self.mode {
            Mode::Probing | Mode::Plain => (PlaneHint::Estimate, None),
            Mode::Aware { regions, .. } => {
                // regions[0].start == 0 <= pos, so idx >= 1.
                let idx = regions.partition_point(|r| r.start <= pos);
                let hint = regions
                    .get(idx.wrapping_sub(1))
                    .map_or(PlaneHint::Estimate, |r| r.hint);
                // Bytes to the next boundary (> pos), if it is in `data`.
                let room = regions
                    .get(idx)
                    .and_then(|r| r.start.checked_sub(pos))
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0 && n <= data.len());
                (hint, room)
            }
        };
        let len = match (hint, room) {
            // Floats: a fixed grid from the region's start (every earlier
            // cut of the region was a whole grid step).
            (PlaneHint::Width(_), Some(n)) => n.min(self.cdc.params().max),
            (PlaneHint::Width(_), None) => {
                let grid = self.cdc.params().max;
                if data.len() < grid && !eof {
                    return None;
                }
                data.len().min(grid)
            }
            // A boundary in the buffer ends the region: everything up to it
            // is known, so CDC decides as at the end of a stream.
            (_, Some(n)) => self.cdc.next_cut(&data[..n], true)?,
            (_, None) => self.cdc.next_cut(data, eof)?,
        };
        Some(Cut { len, hint })
    }

    /// All chunks of a complete in-memory stream (cuts as
    /// [`Cutter::next_cut`] makes them, from offset 0).
    pub fn cuts(&mut self, data: &[u8]) -> Vec<Cut> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while let Some(c) = self.next_cut(pos as u64, &data[pos..], true) {
            out.push(c);
            pos += c.len;
        }
        out
    }
}

/// What a region holds, for the small-region rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Header,
    Gap,
    Tensor,
}

/// The cut regions of a layout: header, tensors and gaps, with small gaps
/// and runs of small regions merged (see the module documentation). Any
/// layout is accepted; one from [`probe`] is sorted and non-overlapping.
fn build_regions(layout: &TensorLayout, min_region: u64) -> Vec<Region> {
    let cap = layout
        .tensors
        .len()
        .saturating_mul(2)
        .saturating_add(2)
        .min(1 << 24);
    let mut raw: Vec<(u64, Kind, PlaneHint)> = Vec::with_capacity(cap);
    raw.push((0, Kind::Header, PlaneHint::Estimate));
    raw.push((layout.data_start, Kind::Gap, PlaneHint::Estimate));
    for t in &layout.tensors {
        // An empty (or, from a hostile layout, inverted) span still gives
        // boundaries, but no tensor region.
        let (kind, hint) = if t.end > t.start {
            (Kind::Tensor, PlaneHint::of(t.dtype))
        } else {
            (Kind::Gap, PlaneHint::Estimate)
        };
        raw.push((t.start, kind, hint));
        raw.push((t.end, Kind::Gap, PlaneHint::Estimate));
    }
    // One region per start: a tensor wins over a gap or the header there.
    raw.sort_by_key(|&(start, kind, _)| (start, kind));
    let mut uniq: Vec<(u64, Kind, PlaneHint)> = Vec::with_capacity(raw.len());
    for r in raw {
        match uniq.last_mut() {
            Some(last) if last.0 == r.0 => *last = r,
            _ => uniq.push(r),
        }
    }
    drop_small(uniq, min_region)
}

/// Applies the small-region rules to regions sorted by strictly increasing
/// start, the first at 0.
fn drop_small(uniq: Vec<(u64, Kind, PlaneHint)>, min_region: u64) -> Vec<Region> {
    let len_at = |v: &[(u64, Kind, PlaneHint)], i: usize| -> u64 {
        match v.get(i + 1) {
            Some(next) => next.0.saturating_sub(v[i].0),
            None => u64::MAX,
        }
    };
    // Small gaps (padding) join the region before them.
    let mut absorbed: Vec<(u64, Kind, PlaneHint)> = Vec::with_capacity(uniq.len());
    for i in 0..uniq.len() {
        let small_gap = uniq[i].1 == Kind::Gap && len_at(&uniq, i) < min_region;
        if i == 0 || !small_gap {
            absorbed.push(uniq[i]);
        }
    }
    // A boundary between two small regions is not cut.
    let mut out: Vec<Region> = Vec::with_capacity(absorbed.len());
    for i in 0..absorbed.len() {
        let (start, _, hint) = absorbed[i];
        let merge =
            i > 0 && len_at(&absorbed, i - 1) < min_region && len_at(&absorbed, i) < min_region;
        match out.last_mut() {
            Some(last) if merge => {
                if last.hint != hint {
                    last.hint = PlaneHint::Estimate;
                }
            }
            _ => out.push(Region { start, hint }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
}
