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
mod tests;
