//! Tensor layouts of model containers, read from a file's leading bytes.
//!
//! The chunker cuts chunks at tensor boundaries and picks a byte-plane width
//! per chunk from the tensor's element type; a reader fetches one tensor by
//! name with a ranged read; detection tells the containers apart. All need,
//! from the first bytes of a file, the list of tensors with their absolute
//! byte ranges and element types: [`probe`] answers it, with the
//! `safetensors` or `gguf` parser (each
//! module documents its checks and limits).
//!
//! Every input byte is treated as hostile: lengths and offsets are checked
//! with checked arithmetic before any slicing or allocation, counts are
//! bounded ([`MAX_TENSORS`], [`MAX_HEADER_BYTES`]), and [`probe`] never panics.
//! Whatever is malformed, inconsistent or beyond the limits is answered with
//! [`Probe::NotContainer`], so the caller falls back to plain
//! content-defined chunking for that file.

use std::collections::HashSet;

/// The largest container header parsed, in bytes: the safetensors JSON
/// header, or a GGUF header up to the end of its tensor infos. 100,000,000 is
/// the reference safetensors implementation's limit (`MAX_HEADER_SIZE`), so
/// every safetensors file that library loads is parsed here; GGUF defines no
/// limit and gets the same. A header beyond it makes [`probe`] answer
/// [`Probe::NotContainer`], so a [`Probe::NeedBytes`] never asks for more
/// than `MAX_HEADER_BYTES + 8`.
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// The largest number of tensors a container may declare; more makes
/// [`probe`] answer [`Probe::NotContainer`].
pub const MAX_TENSORS: usize = 1_000_000;

/// Bytes a prefix needs before the format can be told (GGUF's fixed header).
const PROBE_MIN: u64 = 24;

/// Element type of a tensor, as far as chunking cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// IEEE 754 double precision.
    F64,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean, one byte per element.
    Bool,
    /// Any one-byte float (safetensors `F8_E4M3`, `F8_E5M2`, `F8_E8M0`,
    /// `F8_E4M3FNUZ`, `F8_E5M2FNUZ`).
    F8,
    /// GGUF block-quantized types (packed nibbles, per-block scales, ...).
    Quantized,
    /// Anything else: unsigned 16/32/64-bit and complex safetensors types,
    /// sub-byte floats, and dtype names or GGML types this module does not
    /// know.
    Other,
}

impl DType {
    /// Bytes per element for plain types (8, 4, 2 or 1), `None` for
    /// [`DType::Quantized`] and [`DType::Other`].
    pub fn width(self) -> Option<u8> {
        match self {
            DType::F64 | DType::I64 => Some(8),
            DType::F32 | DType::I32 => Some(4),
            DType::F16 | DType::BF16 | DType::I16 => Some(2),
            DType::I8 | DType::U8 | DType::Bool | DType::F8 => Some(1),
            DType::Quantized | DType::Other => None,
        }
    }

    /// The byte-plane width to compress this dtype with (the codec supports
    /// planes of 2 and 4 bytes only).
    ///
    /// `Some(4)` for `F32`/`I32`, `Some(2)` for `F16`/`BF16`/`I16`, and
    /// `Some(4)` for the 8-byte types `F64`/`I64` too: 4 divides 8, so each
    /// plane still holds one fixed byte position per 4-byte word, and the
    /// high bytes of an element (sign and exponent of an `f64`, the usually
    /// constant sign extension of an `i64`) share a plane with one other
    /// byte position instead of three as with width 2. `None` (no plane
    /// split) for one-byte, quantized and unknown types.
    pub fn plane_width(self) -> Option<u8> {
        match self {
            DType::F64 | DType::I64 | DType::F32 | DType::I32 => Some(4),
            DType::F16 | DType::BF16 | DType::I16 => Some(2),
            DType::I8 | DType::U8 | DType::Bool | DType::F8 | DType::Quantized | DType::Other => {
                None
            }
        }
    }
}

/// One tensor's place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorSpan {
    /// The tensor's name (GGUF names that are not UTF-8 are converted
    /// lossily).
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape as the container lists it: outermost dimension first for
    /// safetensors, innermost first (ggml `ne` order) for GGUF.
    pub shape: Vec<u64>,
    /// Absolute file offset of its first byte.
    pub start: u64,
    /// Absolute file offset one past its last byte (exclusive).
    ///
    /// For a GGUF tensor of a type this module cannot size, this is the next
    /// tensor's start, else the file length, else (length unknown while
    /// streaming) `start`: its extent is then unknown until the file length
    /// is.
    pub end: u64,
}

/// The tensors of a container, sorted by start, non-overlapping, all within
/// the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorLayout {
    /// `"safetensors"` or `"gguf"`.
    pub format: &'static str,
    /// Absolute offset of the data section: the first byte after the header
    /// (and, for GGUF, the alignment padding). Every span starts at or after
    /// it.
    pub data_start: u64,
    /// The tensors, sorted by `(start, end, name)`; for each pair of
    /// neighbours `prev.end <= next.start`. There may be gaps between them
    /// (GGUF alignment padding, or unused bytes in a safetensors file).
    pub tensors: Vec<TensorSpan>,
}

impl TensorLayout {
    /// The tensor boundaries — sorted, deduplicated absolute offsets:
    /// `data_start` and each span's start and end. These are the cut points
    /// the chunker must honour.
    pub fn boundaries(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.tensors.len().saturating_mul(2).saturating_add(1));
        out.push(self.data_start);
        for t in &self.tensors {
            out.push(t.start);
            out.push(t.end);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The tensor called `name`, if any (a linear scan).
    pub fn find(&self, name: &str) -> Option<&TensorSpan> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The span containing offset `off` (`start <= off < end`), if any, by
    /// binary search. Empty tensors contain no offset.
    pub fn span_at(&self, off: u64) -> Option<&TensorSpan> {
        let idx = self.tensors.partition_point(|t| t.start <= off);
        let span = self.tensors.get(idx.checked_sub(1)?)?;
        (off < span.end).then_some(span)
    }
}

/// Result of looking at a file prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Not a container we parse — including a safetensors or GGUF file whose
    /// header is malformed, inconsistent with itself or with the file
    /// length, or beyond [`MAX_HEADER_BYTES`] / [`MAX_TENSORS`].
    NotContainer,
    /// A container whose header is longer than the prefix: call again with a
    /// prefix of at least this many bytes. Always more than the prefix given,
    /// at most `MAX_HEADER_BYTES + 8`, and at most the file length when it is
    /// known.
    NeedBytes(usize),
    /// Parsed.
    Layout(TensorLayout),
}

/// Parses a file's prefix.
///
/// `file_len` is the total file length when known (`None` while streaming an
/// upload of unknown length), used to validate spans; once the whole file is
/// in `prefix`, pass `Some(prefix.len())` so that a truncated header is
/// rejected instead of answered with [`Probe::NeedBytes`]. Bytes of `prefix`
/// beyond `file_len` are ignored.
///
/// A prefix shorter than 24 bytes (or than the file, if shorter) gets
/// `NeedBytes(24)` (or the file length). A prefix starting with `GGUF` is
/// parsed as GGUF, anything else as safetensors.
pub fn probe(prefix: &[u8], file_len: Option<u64>) -> Probe {
    let prefix = match file_len.and_then(|l| usize::try_from(l).ok()) {
        Some(l) => prefix.get(..l).unwrap_or(prefix),
        None => prefix,
    };
    let min = file_len.map_or(PROBE_MIN, |l| l.min(PROBE_MIN));
    if len64(prefix.len()) < min {
        return need(min);
    }
    if prefix.starts_with(b"GGUF") {
        super::gguf::probe(prefix, file_len)
    } else {
        super::safetensors::probe(prefix, file_len)
    }
}

/// `usize` to `u64`, saturating (lossless on every supported target).
pub(super) fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `NeedBytes(n)`, or `NotContainer` if `n` does not fit a `usize`.
pub(super) fn need(n: u64) -> Probe {
    usize::try_from(n).map_or(Probe::NotContainer, Probe::NeedBytes)
}

/// Product of the dimensions, `None` on overflow.
pub(super) fn elements(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Sorts the spans and checks the layout invariants; `NotContainer` if any
/// fails.
pub(super) fn finish(
    format: &'static str,
    data_start: u64,
    mut tensors: Vec<TensorSpan>,
    file_len: Option<u64>,
) -> Probe {
    if tensors.len() > MAX_TENSORS || file_len.is_some_and(|l| data_start > l) {
        return Probe::NotContainer;
    }
    {
        let mut names = HashSet::with_capacity(tensors.len());
        if !tensors.iter().all(|t| names.insert(t.name.as_str())) {
            return Probe::NotContainer;
        }
    }
    tensors.sort_unstable_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
    let mut prev_end = data_start;
    for t in &tensors {
        if t.start < prev_end || t.end < t.start || file_len.is_some_and(|l| t.end > l) {
            return Probe::NotContainer;
        }
        prev_end = t.end;
    }
    Probe::Layout(TensorLayout {
        format,
        data_start,
        tensors,
    })
}
