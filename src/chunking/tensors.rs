//! Tensor layouts of model containers, read from a file's leading bytes.
//!
//! The chunker cuts chunks at tensor boundaries and picks a byte-plane width
//! per chunk from the tensor's element type; a reader fetches one tensor by
//! name with a ranged read. Both need, from the first bytes of a file, the
//! list of tensors with their absolute byte ranges and element types. This
//! module parses two containers for that:
//!
//! * **safetensors**: a little-endian `u64` header length `N`, `N` bytes of
//!   JSON, then the data section (offsets in the JSON are relative to byte
//!   `8 + N`).
//! * **GGUF** v2 and v3: magic, version, counts, metadata key/value pairs,
//!   tensor infos, then the data section at the next multiple of
//!   `general.alignment`.
//!
//! Every input byte is treated as hostile: lengths and offsets are checked
//! with checked arithmetic before any slicing or allocation, counts are
//! bounded ([`MAX_TENSORS`], [`MAX_HEADER_BYTES`]), and [`probe`] never panics.
//! Whatever is malformed, inconsistent or beyond the limits is answered with
//! [`Probe::NotContainer`], so the caller falls back to plain
//! content-defined chunking for that file.
//!
//! Checked: safetensors headers must begin with `{`, name each tensor once,
//! have `begin <= end` and `end - begin == product(shape) × element size`
//! for every dtype whose size is known; GGUF headers must be v2 or v3, have
//! a power-of-two `general.alignment` (a `u32`), at most 8 dims per tensor,
//! element counts that are whole blocks of their ggml type, and unique
//! names. For both, spans must not overlap and must end within the file
//! when its length is known. Tolerated: gaps between spans, any JSON as
//! safetensors `__metadata__`, unknown fields in a tensor entry, unknown
//! safetensors dtypes ([`DType::Other`], size unchecked), and GGML types
//! this module cannot size (see [`TensorSpan::end`]).

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;

/// The largest container header parsed, in bytes: the safetensors JSON
/// header, or a GGUF header up to the end of its tensor infos. A header
/// beyond it makes [`probe`] answer [`Probe::NotContainer`], so a
/// [`Probe::NeedBytes`] never asks for more than `MAX_HEADER_BYTES + 8`.
pub const MAX_HEADER_BYTES: usize = 100 * 1024 * 1024;

/// The largest number of tensors a container may declare; more makes
/// [`probe`] answer [`Probe::NotContainer`].
pub const MAX_TENSORS: usize = 1_000_000;

/// The largest rank accepted for a safetensors tensor (numpy's limit).
const MAX_RANK: usize = 64;
/// The largest rank accepted for a GGUF tensor (ggml itself uses 4).
const GGUF_MAX_DIMS: u32 = 8;
/// How deep GGUF metadata arrays of arrays may nest.
const GGUF_MAX_ARRAY_DEPTH: u32 = 8;
/// GGUF's data alignment when `general.alignment` is absent.
const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// The least a GGUF [`Probe::NeedBytes`] asks for (within the file).
const GGUF_MIN_REQUEST: u64 = 64 * 1024;
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
        gguf::probe(prefix, file_len)
    } else {
        safetensors::probe(prefix, file_len)
    }
}

/// `usize` to `u64`, saturating (lossless on every supported target).
fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `NeedBytes(n)`, or `NotContainer` if `n` does not fit a `usize`.
fn need(n: u64) -> Probe {
    usize::try_from(n).map_or(Probe::NotContainer, Probe::NeedBytes)
}

/// Product of the dimensions, `None` on overflow.
fn elements(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Sorts the spans and checks the layout invariants; `NotContainer` if any
/// fails.
fn finish(
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

mod safetensors {
    //! safetensors: `u64` LE header length, JSON header, data.

    use super::*;

    /// One tensor entry of the JSON header, before validation.
    struct RawTensor {
        name: String,
        info: RawInfo,
    }

    /// The value of a tensor entry.
    #[derive(Deserialize)]
    struct RawInfo {
        dtype: String,
        #[serde(deserialize_with = "bounded_shape")]
        shape: Vec<u64>,
        data_offsets: (u64, u64),
    }

    /// The whole JSON header: `__metadata__` is skipped, every other key is
    /// a tensor.
    struct RawHeader(Vec<RawTensor>);

    impl<'de> Deserialize<'de> for RawHeader {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct HeaderVisitor;
            impl<'de> Visitor<'de> for HeaderVisitor {
                type Value = RawHeader;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a safetensors header object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                    let mut tensors = Vec::new();
                    while let Some(name) = map.next_key::<String>()? {
                        if name == "__metadata__" {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                        if tensors.len() >= MAX_TENSORS {
                            return Err(de::Error::custom("too many tensors"));
                        }
                        let info = map.next_value::<RawInfo>()?;
                        tensors.push(RawTensor { name, info });
                    }
                    Ok(RawHeader(tensors))
                }
            }
            d.deserialize_map(HeaderVisitor)
        }
    }

    /// A shape array of at most [`MAX_RANK`] non-negative integers.
    fn bounded_shape<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Vec<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a shape array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
                let mut shape = Vec::new();
                while let Some(d) = seq.next_element::<u64>()? {
                    if shape.len() >= MAX_RANK {
                        return Err(de::Error::custom("rank too large"));
                    }
                    shape.push(d);
                }
                Ok(shape)
            }
        }
        d.deserialize_seq(ShapeVisitor)
    }

    /// Our dtype and the element size in bits (`None`: unknown, unchecked).
    fn dtype(name: &str) -> (DType, Option<u64>) {
        match name {
            "F64" => (DType::F64, Some(64)),
            "F32" => (DType::F32, Some(32)),
            "F16" => (DType::F16, Some(16)),
            "BF16" => (DType::BF16, Some(16)),
            "I64" => (DType::I64, Some(64)),
            "I32" => (DType::I32, Some(32)),
            "I16" => (DType::I16, Some(16)),
            "I8" => (DType::I8, Some(8)),
            "U8" => (DType::U8, Some(8)),
            "BOOL" => (DType::Bool, Some(8)),
            "F8_E4M3" | "F8_E5M2" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => {
                (DType::F8, Some(8))
            }
            "U64" | "C64" => (DType::Other, Some(64)),
            "U32" => (DType::Other, Some(32)),
            "U16" => (DType::Other, Some(16)),
            "F6_E2M3" | "F6_E3M2" => (DType::Other, Some(6)),
            "F4" => (DType::Other, Some(4)),
            _ => (DType::Other, None),
        }
    }

    pub(super) fn probe(prefix: &[u8], file_len: Option<u64>) -> Probe {
        let Some(n) = prefix
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
        else {
            return Probe::NotContainer;
        };
        // The smallest header is `{}`.
        if !(2..=len64(MAX_HEADER_BYTES)).contains(&n) {
            return Probe::NotContainer;
        }
        let Some(header_end) = n.checked_add(8) else {
            return Probe::NotContainer;
        };
        if file_len.is_some_and(|l| header_end > l) {
            return Probe::NotContainer;
        }
        // The format requires the header to begin with `{`.
        if prefix.get(8).is_some_and(|&b| b != b'{') {
            return Probe::NotContainer;
        }
        let Ok(header_end_us) = usize::try_from(header_end) else {
            return Probe::NotContainer;
        };
        let Some(header) = prefix.get(8..header_end_us) else {
            return need(header_end);
        };
        let Ok(RawHeader(raw)) = serde_json::from_slice::<RawHeader>(header) else {
            return Probe::NotContainer;
        };
        let data_start = header_end;
        let mut spans = Vec::with_capacity(raw.len());
        for RawTensor { name, info } in raw {
            let (begin, end) = info.data_offsets;
            if end < begin {
                return Probe::NotContainer;
            }
            let (dtype, bits) = dtype(&info.dtype);
            if let Some(bits) = bits {
                let Some(nbits) = elements(&info.shape).and_then(|e| e.checked_mul(bits)) else {
                    return Probe::NotContainer;
                };
                if nbits % 8 != 0 || nbits / 8 != end - begin {
                    return Probe::NotContainer;
                }
            }
            let (Some(start), Some(end)) =
                (data_start.checked_add(begin), data_start.checked_add(end))
            else {
                return Probe::NotContainer;
            };
            spans.push(TensorSpan {
                name,
                dtype,
                shape: info.shape,
                start,
                end,
            });
        }
        finish("safetensors", data_start, spans, file_len)
    }
}

mod gguf {
    //! GGUF v2/v3: magic, version, counts, metadata, tensor infos, data.

    use super::*;

    /// Why parsing stopped.
    enum Stop {
        /// Malformed, or needing bytes beyond the header limit or the file.
        Invalid,
        /// The prefix ends inside the header; this many bytes are needed at
        /// least.
        Short(u64),
    }

    /// A bounds-checked reader over the prefix.
    struct Cursor<'a> {
        buf: &'a [u8],
        pos: usize,
        /// No header byte may lie at or beyond this offset.
        cap: u64,
    }

    impl<'a> Cursor<'a> {
        fn pos(&self) -> u64 {
            len64(self.pos)
        }

        /// Fails `Invalid` unless `count` items of at least `min` bytes each
        /// can still fit in the header.
        fn fits(&self, count: u64, min: u64) -> Result<(), Stop> {
            let end = count
                .checked_mul(min)
                .and_then(|b| b.checked_add(self.pos()))
                .ok_or(Stop::Invalid)?;
            if end > self.cap {
                return Err(Stop::Invalid);
            }
            Ok(())
        }

        fn take(&mut self, n: u64) -> Result<&'a [u8], Stop> {
            let end = self.pos().checked_add(n).ok_or(Stop::Invalid)?;
            if end > self.cap {
                return Err(Stop::Invalid);
            }
            let end_us = usize::try_from(end).map_err(|_| Stop::Invalid)?;
            let bytes = self.buf.get(self.pos..end_us).ok_or(Stop::Short(end))?;
            self.pos = end_us;
            Ok(bytes)
        }

        fn u32(&mut self) -> Result<u32, Stop> {
            let b = self.take(4)?;
            <[u8; 4]>::try_from(b)
                .map(u32::from_le_bytes)
                .map_err(|_| Stop::Invalid)
        }

        fn u64(&mut self) -> Result<u64, Stop> {
            let b = self.take(8)?;
            <[u8; 8]>::try_from(b)
                .map(u64::from_le_bytes)
                .map_err(|_| Stop::Invalid)
        }

        fn string(&mut self) -> Result<&'a [u8], Stop> {
            let n = self.u64()?;
            self.take(n)
        }

        /// Skips a metadata value of type `ty`.
        fn skip_value(&mut self, ty: u32, depth: u32) -> Result<(), Stop> {
            if let Some(size) = scalar_size(ty) {
                self.take(size)?;
                return Ok(());
            }
            match ty {
                GGUF_STRING => {
                    self.string()?;
                }
                GGUF_ARRAY => {
                    if depth >= GGUF_MAX_ARRAY_DEPTH {
                        return Err(Stop::Invalid);
                    }
                    let elem = self.u32()?;
                    let count = self.u64()?;
                    if let Some(size) = scalar_size(elem) {
                        let bytes = count.checked_mul(size).ok_or(Stop::Invalid)?;
                        self.take(bytes)?;
                    } else if elem == GGUF_STRING {
                        // Each string is at least its 8-byte length.
                        self.fits(count, 8)?;
                        for _ in 0..count {
                            self.string()?;
                        }
                    } else if elem == GGUF_ARRAY {
                        // Each inner array is at least its type and count.
                        self.fits(count, 12)?;
                        for _ in 0..count {
                            self.skip_value(GGUF_ARRAY, depth + 1)?;
                        }
                    } else {
                        return Err(Stop::Invalid);
                    }
                }
                _ => return Err(Stop::Invalid),
            }
            Ok(())
        }
    }

    const GGUF_UINT32: u32 = 4;
    const GGUF_STRING: u32 = 8;
    const GGUF_ARRAY: u32 = 9;

    /// Byte size of a fixed-size GGUF metadata value type.
    fn scalar_size(ty: u32) -> Option<u64> {
        match ty {
            0 | 1 | 7 => Some(1), // u8, i8, bool
            2 | 3 => Some(2),     // u16, i16
            4..=6 => Some(4),     // u32, i32, f32
            10..=12 => Some(8),   // u64, i64, f64
            _ => None,
        }
    }

    /// Our dtype, elements per block and bytes per block of a ggml type
    /// (`None`: a type this module cannot size).
    fn ggml_type(ty: u32) -> Option<(DType, u64, u64)> {
        let q = DType::Quantized;
        Some(match ty {
            0 => (DType::F32, 1, 4),
            1 => (DType::F16, 1, 2),
            2 => (q, 32, 18),    // Q4_0
            3 => (q, 32, 20),    // Q4_1
            6 => (q, 32, 22),    // Q5_0
            7 => (q, 32, 24),    // Q5_1
            8 => (q, 32, 34),    // Q8_0
            9 => (q, 32, 36),    // Q8_1
            10 => (q, 256, 84),  // Q2_K
            11 => (q, 256, 110), // Q3_K
            12 => (q, 256, 144), // Q4_K
            13 => (q, 256, 176), // Q5_K
            14 => (q, 256, 210), // Q6_K
            15 => (q, 256, 292), // Q8_K
            16 => (q, 256, 66),  // IQ2_XXS
            17 => (q, 256, 74),  // IQ2_XS
            18 => (q, 256, 98),  // IQ3_XXS
            19 => (q, 256, 50),  // IQ1_S
            20 => (q, 32, 18),   // IQ4_NL
            21 => (q, 256, 110), // IQ3_S
            22 => (q, 256, 82),  // IQ2_S
            23 => (q, 256, 136), // IQ4_XS
            24 => (DType::I8, 1, 1),
            25 => (DType::I16, 1, 2),
            26 => (DType::I32, 1, 4),
            27 => (DType::I64, 1, 8),
            28 => (DType::F64, 1, 8),
            29 => (q, 256, 56), // IQ1_M
            30 => (DType::BF16, 1, 2),
            34 => (q, 256, 54), // TQ1_0
            35 => (q, 256, 66), // TQ2_0
            39 => (q, 32, 17),  // MXFP4
            40 => (q, 64, 36),  // NVFP4
            _ => return None,
        })
    }

    /// A tensor info as read, before its extent is known.
    struct RawTensor {
        name: String,
        shape: Vec<u64>,
        ty: u32,
        offset: u64,
    }

    /// The header fields the layout needs.
    struct Header {
        tensors: Vec<RawTensor>,
        /// Offset just past the tensor infos.
        infos_end: u64,
        alignment: u64,
    }

    fn parse(c: &mut Cursor) -> Result<Header, Stop> {
        if c.take(4)? != b"GGUF" {
            return Err(Stop::Invalid);
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Stop::Invalid);
        }
        let tensor_count = c.u64()?;
        let kv_count = c.u64()?;
        if tensor_count > len64(MAX_TENSORS) {
            return Err(Stop::Invalid);
        }
        // A pair is at least an 8-byte key length, a type and one byte; a
        // tensor info at least a name length, n_dims, type and offset.
        c.fits(kv_count, 13)?;
        c.fits(tensor_count, 24)?;

        let mut alignment = None;
        for _ in 0..kv_count {
            let key = c.string()?;
            let ty = c.u32()?;
            if key == b"general.alignment" {
                if ty != GGUF_UINT32 || alignment.is_some() {
                    return Err(Stop::Invalid);
                }
                let a = c.u32()?;
                if !a.is_power_of_two() {
                    return Err(Stop::Invalid);
                }
                alignment = Some(u64::from(a));
            } else {
                c.skip_value(ty, 0)?;
            }
        }

        let remaining = c.cap.saturating_sub(c.pos()) / 24;
        let capacity = usize::try_from(tensor_count.min(remaining)).unwrap_or(0);
        let mut tensors = Vec::with_capacity(capacity);
        for _ in 0..tensor_count {
            let name = String::from_utf8_lossy(c.string()?).into_owned();
            let n_dims = c.u32()?;
            if n_dims > GGUF_MAX_DIMS {
                return Err(Stop::Invalid);
            }
            let mut shape = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                shape.push(c.u64()?);
            }
            let ty = c.u32()?;
            let offset = c.u64()?;
            tensors.push(RawTensor {
                name,
                shape,
                ty,
                offset,
            });
        }
        Ok(Header {
            tensors,
            infos_end: c.pos(),
            alignment: alignment.unwrap_or(GGUF_DEFAULT_ALIGNMENT),
        })
    }

    pub(super) fn probe(prefix: &[u8], file_len: Option<u64>) -> Probe {
        let cap = file_len.map_or(len64(MAX_HEADER_BYTES), |l| l.min(len64(MAX_HEADER_BYTES)));
        let mut c = Cursor {
            buf: prefix,
            pos: 0,
            cap,
        };
        let header = match parse(&mut c) {
            Ok(h) => h,
            Err(Stop::Invalid) => return Probe::NotContainer,
            Err(Stop::Short(n)) => {
                // Ask for at least what is known to be missing, and at least
                // double the prefix (and 64 KiB) so a long header takes few
                // rounds.
                let doubled = len64(prefix.len())
                    .saturating_mul(2)
                    .max(GGUF_MIN_REQUEST)
                    .min(cap);
                return need(n.max(doubled));
            }
        };

        // Round up to the alignment (a power of two).
        let mask = header.alignment - 1;
        let Some(mut data_start) = header.infos_end.checked_add(mask).map(|v| v & !mask) else {
            return Probe::NotContainer;
        };
        if header.tensors.is_empty() {
            // Metadata-only files may end without the padding.
            if let Some(l) = file_len {
                data_start = data_start.min(l);
            }
        }

        // Spans with `end: None` for types we cannot size.
        let mut spans: Vec<(TensorSpan, bool)> = Vec::with_capacity(header.tensors.len());
        for t in header.tensors {
            let Some(elems) = elements(&t.shape) else {
                return Probe::NotContainer;
            };
            let Some(start) = data_start.checked_add(t.offset) else {
                return Probe::NotContainer;
            };
            let (dtype, end, known) = match ggml_type(t.ty) {
                Some((dtype, block, size)) => {
                    if elems % block != 0 {
                        return Probe::NotContainer;
                    }
                    let Some(end) = (elems / block)
                        .checked_mul(size)
                        .and_then(|b| start.checked_add(b))
                    else {
                        return Probe::NotContainer;
                    };
                    (dtype, end, true)
                }
                None => (DType::Other, start, false),
            };
            spans.push((
                TensorSpan {
                    name: t.name,
                    dtype,
                    shape: t.shape,
                    start,
                    end,
                },
                known,
            ));
        }

        // An unsized tensor runs to the next tensor's start, else to the end
        // of the file, else (length unknown) stays empty.
        spans.sort_unstable_by(|a, b| (a.0.start, &a.0.name).cmp(&(b.0.start, &b.0.name)));
        let mut next_start = file_len;
        for (span, known) in spans.iter_mut().rev() {
            if !*known {
                // A start past the end of the file gives `end < start`,
                // which `finish` rejects.
                span.end = next_start.unwrap_or(span.start);
            }
            next_start = Some(span.start);
        }
        let spans = spans.into_iter().map(|(s, _)| s).collect();
        finish("gguf", data_start, spans, file_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
}
