//! Per-chunk codecs: how a chunk's raw bytes become the bytes stored in a
//! pack, and back.
//!
//! Three codecs exist: [`Codec::Raw`], plain [`Codec::Zstd`], and
//! [`Codec::Planes`], which splits the chunk into byte planes (byte `i` goes
//! to plane `i % width`) and compresses each plane on its own, so that the
//! low-entropy exponent bytes of floats get their own entropy tables instead
//! of being mixed with near-random mantissa bytes. The choice is made per
//! chunk by a cheap predictor (`codec/estimate.rs`), not by trial compression.
//!
//! Decoding treats the stored bytes as hostile: the output can never exceed
//! the recorded raw length, whatever the payload claims.

pub mod delta;
mod estimate;
mod planes;
mod split;
mod zstd_ctx;

pub use estimate::{choose, Estimate};

use crate::chunking::PlaneHint;
use crate::error::{Error, Result};

/// How a chunk is encoded on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Stored as is.
    Raw,
    /// One zstd frame over the whole chunk.
    Zstd,
    /// Byte planes of `width` bytes (2 or 4), each a zstd frame or raw.
    Planes {
        /// Bytes per value: 2 (fp16/bf16) or 4 (fp32).
        width: u8,
    },
    /// The XOR against another chunk (its *base*, named in the payload),
    /// compressed like a chunk: see [`delta`]. Never chosen by [`encode`];
    /// the store writes it, and decodes it after decoding the base.
    Delta {
        /// Length of the chain of deltas ending here: 1 when the base is
        /// stored whole, else one more than the base's depth. At most
        /// [`delta::MAX_DELTA_DEPTH`].
        depth: u8,
    },
}

impl Codec {
    /// The (kind, parameter) byte pair stored in chunk headers and index entries.
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            Codec::Raw => [0, 0],
            Codec::Zstd => [1, 0],
            Codec::Planes { width } => [2, width],
            Codec::Delta { depth } => [3, depth],
        }
    }

    /// Parses the byte pair written by [`Codec::to_bytes`].
    pub fn from_bytes(b: [u8; 2]) -> Result<Self> {
        match b {
            [0, 0] => Ok(Codec::Raw),
            [1, 0] => Ok(Codec::Zstd),
            [2, w @ (2 | 4)] => Ok(Codec::Planes { width: w }),
            [3, d @ 1..=delta::MAX_DELTA_DEPTH] => Ok(Codec::Delta { depth: d }),
            _ => Err(Error::corrupt(
                "codec id",
                format!("unknown codec kind {} with parameter {}", b[0], b[1]),
            )),
        }
    }

    /// A short name for statistics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
            Codec::Planes { width: 2 } => "planes2",
            Codec::Planes { .. } => "planes4",
            Codec::Delta { .. } => "delta",
        }
    }

    /// The delta depth: 0 for a chunk stored whole.
    pub fn depth(self) -> u8 {
        match self {
            Codec::Delta { depth } => depth,
            _ => 0,
        }
    }
}

/// Tuning for the encoder.
#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions {
    /// zstd level of whole-chunk frames (default 3).
    pub level: i32,
    /// zstd level of byte-plane frames (default 1). Planes are mostly
    /// literals: a faster level with long minimum matches compresses them
    /// better than a higher one (on the real corpus, level 1 with 7-byte
    /// minimum matches stores 0.65% less than level 3, and level 9 gains
    /// nothing over 3).
    pub plane_level: i32,
    /// Shortest match zstd looks for in plane frames (default 7, range 3..=7):
    /// short matches in noisy mantissa planes cost more than they save.
    pub plane_min_match: u32,
    /// Store raw when the encoding would save less than this fraction
    /// (default 0.01: on the corpus's GGUF, CTranslate2 and safetensors
    /// sets, 0.05 stored 2.5 MB more, as raw chunks that compress by a few
    /// percent).
    pub min_saving: f64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            level: 3,
            plane_level: 1,
            plane_min_match: 7,
            min_saving: 0.01,
        }
    }
}

/// Encodes `raw` with the codec the predictor picks, appending the stored
/// bytes to `out` (cleared first). Falls back to [`Codec::Raw`] when the
/// result would not save `opts.min_saving`.
pub fn encode(raw: &[u8], opts: &EncodeOptions, out: &mut Vec<u8>) -> Codec {
    out.clear();
    if raw.is_empty() {
        return Codec::Raw;
    }
    let est = estimate::estimate(raw);
    let codec = estimate::choose(&est, raw.len(), opts.min_saving);
    let ok = match codec {
        Codec::Zstd => zstd_ctx::compress(raw, opts.whole(), out),
        Codec::Planes { width } => planes::encode(raw, width as usize, &est, opts.planes(), out),
        // The predictor never picks a delta.
        Codec::Raw | Codec::Delta { .. } => false,
    };
    let limit = raw.len() as f64 * (1.0 - opts.min_saving);
    if !ok || out.len() as f64 > limit {
        out.clear();
        out.extend_from_slice(raw);
        return Codec::Raw;
    }
    codec
}

/// Encodes `raw` guided by what the chunker knows of its element type,
/// appending the stored bytes to `out` (cleared first), without running the
/// codec predictor:
///
/// * [`PlaneHint::Width`] of 2 or 4: byte planes of that width (the plane
///   estimate still decides which planes are stored raw);
/// * [`PlaneHint::Flat`]: plain zstd;
/// * [`PlaneHint::Estimate`] (or any other width): exactly [`encode`].
///
/// Falls back to [`Codec::Raw`] when the result would not save
/// `opts.min_saving`, like [`encode`]. The hint only changes how well and
/// how fast a chunk is compressed, never what it decodes to.
///
/// Trying plain zstd as well for width hints (keeping the smaller) was
/// measured with `examples/cutter_eval.rs`: it won 14 of 16,819 float chunks
/// by a few bytes each and cost about a third of the encoding speed.
pub fn encode_hinted(
    raw: &[u8],
    hint: PlaneHint,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Codec {
    let codec = match hint {
        PlaneHint::Width(w @ (2 | 4)) => Codec::Planes { width: w },
        PlaneHint::Flat => Codec::Zstd,
        _ => return encode(raw, opts, out),
    };
    out.clear();
    if raw.is_empty() {
        return Codec::Raw;
    }
    let ok = encode_with(raw, codec, opts, out);
    let limit = raw.len() as f64 * (1.0 - opts.min_saving);
    if !ok || out.len() as f64 > limit {
        out.clear();
        out.extend_from_slice(raw);
        return Codec::Raw;
    }
    codec
}

impl EncodeOptions {
    fn whole(&self) -> zstd_ctx::Tuning {
        zstd_ctx::Tuning {
            level: self.level,
            min_match: None,
        }
    }

    pub(crate) fn planes(&self) -> zstd_ctx::Tuning {
        zstd_ctx::Tuning {
            level: self.plane_level,
            min_match: Some(self.plane_min_match.clamp(3, 7)),
        }
    }
}

/// Encodes `raw` with a codec chosen by the caller (tests and benchmarks).
/// Returns false if the codec could not represent it (output would grow).
pub fn encode_with(raw: &[u8], codec: Codec, opts: &EncodeOptions, out: &mut Vec<u8>) -> bool {
    out.clear();
    match codec {
        Codec::Raw => {
            out.extend_from_slice(raw);
            true
        }
        Codec::Zstd => zstd_ctx::compress(raw, opts.whole(), out),
        Codec::Planes { width } => {
            let est = estimate::estimate(raw);
            planes::encode(raw, width as usize, &est, opts.planes(), out)
        }
        // A delta needs its base: see `delta::encode_delta`.
        Codec::Delta { .. } => false,
    }
}

/// Decodes `stored` into `out` (cleared first), which ends up exactly
/// `raw_len` bytes long or the call fails. Never allocates more than
/// `raw_len` bytes of output, whatever `stored` contains.
pub fn decode(codec: Codec, stored: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    match codec {
        Codec::Raw => {
            if stored.len() != raw_len {
                return Err(Error::corrupt(
                    "raw chunk",
                    format!("{} stored bytes for {raw_len} raw bytes", stored.len()),
                ));
            }
            out.extend_from_slice(stored);
        }
        Codec::Zstd => {
            out.reserve_exact(raw_len);
            zstd_ctx::decompress(stored, raw_len, out)?;
        }
        Codec::Planes { width } => planes::decode(stored, width as usize, raw_len, out)?,
        Codec::Delta { .. } => {
            return Err(Error::corrupt(
                "delta chunk",
                "a delta is decoded against its base (delta::decode_delta)",
            ))
        }
    }
    if out.len() != raw_len {
        return Err(Error::corrupt(
            format!("{} chunk", codec.name()),
            format!("decoded to {} bytes, expected {raw_len}", out.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::floats;

    fn round_trip(raw: &[u8]) -> Codec {
        let mut enc = Vec::new();
        let codec = encode(raw, &EncodeOptions::default(), &mut enc);
        let mut dec = Vec::new();
        decode(codec, &enc, raw.len(), &mut dec).unwrap();
        assert_eq!(dec, raw, "codec {codec:?}");
        codec
    }

    #[test]
    fn floats_pick_planes_and_round_trip() {
        let raw = floats(16 * 1024, 7);
        assert_eq!(round_trip(&raw), Codec::Planes { width: 4 });
        // An odd length and a mid-value start still round-trip.
        round_trip(&raw[3..raw.len() - 1]);
    }

    #[test]
    fn zeros_and_text_pick_zstd_random_picks_raw() {
        assert_eq!(round_trip(&vec![0u8; 65536]), Codec::Zstd);
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(1000);
        assert_eq!(round_trip(text.as_bytes()), Codec::Zstd);
        let mut x = 1u64;
        let rnd: Vec<u8> = (0..65536)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u8
            })
            .collect();
        assert_eq!(round_trip(&rnd), Codec::Raw);
        round_trip(&[]);
        round_trip(&[1]);
    }

    #[test]
    fn decoding_never_exceeds_raw_len() {
        // A zstd frame of 1 MiB of zeros, presented as a 1 KiB chunk.
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
        let mut out = Vec::new();
        let err = decode(Codec::Zstd, &bomb, 1024, &mut out).unwrap_err();
        assert!(err.is_integrity(), "{err}");
        assert!(out.capacity() < 64 * 1024, "allocated {}", out.capacity());
        // The same frame as plane 0 of a 2 KiB planes2 chunk (planes of 1 KiB).
        let mut p = vec![1u8];
        p.extend_from_slice(&(bomb.len() as u32).to_le_bytes());
        p.extend_from_slice(&[0, 0, 4, 0, 0]);
        p.extend_from_slice(&bomb);
        p.extend_from_slice(&[0u8; 1024]);
        let err = decode(Codec::Planes { width: 2 }, &p, 2048, &mut out).unwrap_err();
        assert!(err.is_integrity(), "{err}");
    }

    fn hinted_round_trip(raw: &[u8], hint: PlaneHint) -> (Codec, usize) {
        let mut enc = Vec::new();
        let codec = encode_hinted(raw, hint, &EncodeOptions::default(), &mut enc);
        let mut dec = Vec::new();
        decode(codec, &enc, raw.len(), &mut dec).unwrap();
        assert_eq!(dec, raw, "codec {codec:?} for {hint:?}");
        if codec != Codec::Raw {
            assert!(enc.len() as f64 <= raw.len() as f64 * 0.95, "{codec:?}");
        }
        (codec, enc.len())
    }

    #[test]
    fn hinted_encoding_follows_the_hint() {
        let f32s = floats(16 * 1024, 3);
        let (c, n4) = hinted_round_trip(&f32s, PlaneHint::Width(4));
        assert_eq!(c, Codec::Planes { width: 4 });
        // Not worse than what the predictor picks.
        let mut enc = Vec::new();
        encode(&f32s, &EncodeOptions::default(), &mut enc);
        assert!(n4 <= enc.len());
        // bf16: the high halves of the floats.
        let bf16: Vec<u8> = f32s.chunks_exact(4).flat_map(|q| [q[2], q[3]]).collect();
        assert_eq!(
            hinted_round_trip(&bf16, PlaneHint::Width(2)).0,
            Codec::Planes { width: 2 }
        );
        // Zeros still compress as planes; flat data never gets planes.
        let (c, n) = hinted_round_trip(&[0u8; 65536], PlaneHint::Width(4));
        assert_eq!((c, n < 200), (Codec::Planes { width: 4 }, true));
        assert!(!matches!(
            hinted_round_trip(&f32s, PlaneHint::Flat).0,
            Codec::Planes { .. }
        ));
        let text = "weights and biases ".repeat(2000);
        assert_eq!(
            hinted_round_trip(text.as_bytes(), PlaneHint::Flat).0,
            Codec::Zstd
        );
        // Noise, odd lengths and empty input round-trip under every hint;
        // an unsupported width means "estimate".
        let rnd: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ (i as u8).rotate_left(3))
            .collect();
        for hint in [
            PlaneHint::Width(2),
            PlaneHint::Width(4),
            PlaneHint::Flat,
            PlaneHint::Estimate,
            PlaneHint::Width(3),
        ] {
            hinted_round_trip(&rnd, hint);
            hinted_round_trip(&f32s[1..f32s.len() - 2], hint);
            hinted_round_trip(&[], hint);
            hinted_round_trip(&[7], hint);
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        let ca = encode_hinted(
            &f32s,
            PlaneHint::Width(3),
            &EncodeOptions::default(),
            &mut a,
        );
        let cb = encode(&f32s, &EncodeOptions::default(), &mut b);
        assert_eq!((ca, a), (cb, b));
    }

    #[test]
    fn codec_bytes_round_trip_and_reject_unknown() {
        for c in [
            Codec::Raw,
            Codec::Zstd,
            Codec::Planes { width: 2 },
            Codec::Planes { width: 4 },
        ] {
            assert_eq!(Codec::from_bytes(c.to_bytes()).unwrap(), c);
        }
        assert!(Codec::from_bytes([2, 3]).is_err());
        assert!(Codec::from_bytes([9, 0]).is_err());
        assert!(Codec::from_bytes([0, 1]).is_err());
    }
}
