//! GGUF (llama.cpp): magic `GGUF`, version, tensor and metadata counts,
//! metadata key/value pairs, tensor infos, then the data section at the next
//! multiple of `general.alignment`.
//!
//! One parser serves format detection, the tensor-aware cutter and the
//! tensor reader, with one set of limits:
//!
//! * versions 2 and 3, little-endian: what llama.cpp's reader accepts on
//!   the little-endian machines models are made on (it refuses version 1,
//!   whose counts and lengths are 32-bit, and byte-swapped files); such
//!   files are plain content here;
//! * the header up to the end of the tensor infos is at most
//!   [`MAX_HEADER_BYTES`], the bound safetensors headers have (GGUF sets
//!   none; the largest vocabularies take a few MB);
//! * at most [`MAX_TENSORS`] tensors, [`GGUF_MAX_DIMS`] dimensions each,
//!   metadata arrays nested at most [`GGUF_MAX_ARRAY_DEPTH`] deep; every
//!   count must fit in the header limit before anything is allocated;
//! * a power-of-two `general.alignment` (a `u32`), element counts that are
//!   whole blocks of their ggml type, unique names, spans that do not
//!   overlap and end within the file when its length is known.
//!
//! Tolerated: ggml types this parser cannot size (see
//! [`TensorSpan::end`](super::tensor::TensorSpan::end)).

use super::tensor::{
    elements, finish, len64, need, DType, Probe, TensorSpan, MAX_HEADER_BYTES, MAX_TENSORS,
};

/// The largest rank accepted for a tensor (ggml itself uses 4).
const GGUF_MAX_DIMS: u32 = 8;
/// How deep metadata arrays of arrays may nest.
const GGUF_MAX_ARRAY_DEPTH: u32 = 8;
/// The data alignment when `general.alignment` is absent.
const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// The least a [`Probe::NeedBytes`] asks for (within the file).
const GGUF_MIN_REQUEST: u64 = 64 * 1024;

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

/// Parses a GGUF prefix; see [`super::tensor::probe`] for the meaning of
/// `file_len` and the answer.
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

/// Whether `head` (a file's first bytes; the file is `len` bytes long) is a
/// GGUF file, for format detection: the magic and an accepted version are
/// shown, and [`probe`] accepts the file or its header runs past `head` and
/// is well formed as far as it goes.
pub(super) fn detect(head: &[u8], len: u64) -> bool {
    head.len() >= 8
        && head.starts_with(b"GGUF")
        && !matches!(probe(head, Some(len)), Probe::NotContainer)
}
