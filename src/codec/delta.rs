//! Delta against a base: a chunk stored as the XOR of its bytes with the same
//! byte range of another version of the file, then
//! compressed like any chunk (byte planes or zstd).
//!
//! Successive checkpoints of one model keep most of each value's sign,
//! exponent and upper mantissa bits, and a bf16 weight often does not change
//! at all: the XOR image is mostly zero bytes in the high planes and costs far
//! less than the chunk itself. The base is supplied by the caller (the store
//! decides which version and offsets; this module only transforms bytes), and
//! the chunk's blake3 id verifies the result, so a wrong base is caught the
//! same way as a damaged record.
//!
//! # The transform, precisely
//!
//! For a chunk `raw` of `n` bytes and a base `base` of any length, the
//! *XOR image* `d` has `n` bytes:
//!
//! ```text
//! d[i] = raw[i] ^ base[i]   for i < min(n, base.len())
//! d[i] = raw[i]             for base.len() <= i < n   (base padded with zeros)
//! ```
//!
//! Base bytes past `n` are ignored. The transform is its own inverse:
//! [`xor_base`] applied to `d` with the same base gives `raw` back.
//!
//! A chunk of 2- or 4-byte elements (the hint says bf16/fp16 or fp32) is
//! stored as the *difference image* instead: each whole little-endian
//! element `r` that the base also covers becomes `zigzag(r - b)` (wrapping
//! subtraction of the bit patterns; zigzag maps 0, -1, 1, -2 … to 0, 1, 2,
//! 3 …), and the bytes after the last such element are XORed as above. A
//! float nudged by a small relative step moves its bit pattern by a small
//! integer, which the difference keeps in the low bits, where a borrow
//! would flip a run of bits of the XOR: on a training step's fp32 Adam
//! moments the compressed difference is about 9% smaller.
//!
//! The difference image of 4-byte elements can instead be stored as a
//! *magnitude split* (`codec/split.rs`: each element's bit length and top
//! bits entropy coded, the bits below stored as they are): transform 4,
//! chosen when it beats the byte planes on the chunk's first 16 KiB. On the
//! synthetic training run's moments the split is 0.6% smaller, and faster
//! to encode and decode than the planes; on differences with a flatter
//! spread the planes win.
//!
//! # Stored layout
//!
//! ```text
//! transform: u8 (1 = XOR, 2 = difference of u16 elements, 3 = of u32
//!            elements, 4 = of u32 elements, split by magnitude)
//! inner codec: [u8; 2] (Codec::to_bytes of the image's codec: zstd or planes;
//!              zstd for transform 4)
//! base: [u8; 32] (the base chunk's id: blake3 of its raw bytes)
//! payload: the image encoded with the inner codec; for transform 4, the
//!          split of its n whole elements (n = min(raw, base length) / 4, see
//!          `split.rs`), then the image bytes after them as they are
//! ```
//!
//! The record naming its base makes a pack self-describing; the store keeps
//! the same id in the chunk's index entry (for reference counting without
//! reading packs) and checks that the two agree on every read.
//!
//! An inner [`Codec::Raw`] is never written ([`encode_delta`] gives up
//! instead: a delta that does not compress is worth nothing) and is refused
//! when read. Decoding treats the stored bytes as hostile, like
//! [`super::decode`]: the output never exceeds `raw_len` bytes.

use super::{decode, encode_hinted, Codec, EncodeOptions};
use crate::chunking::PlaneHint;
use crate::error::{Error, Result};
use crate::id::{ChunkId, Hash32};

/// The transform byte of an XOR delta.
const XOR: u8 = 1;
/// The transform byte of a difference of 16-bit elements (bf16, fp16).
const SUB16: u8 = 2;
/// The transform byte of a difference of 32-bit elements (fp32).
const SUB32: u8 = 3;
/// The transform byte of a difference of 32-bit elements stored as a
/// magnitude split ([`super::split`]) instead of through an inner codec.
const SPLIT32: u8 = 4;
/// Transform byte + inner codec pair + base id.
pub const DELTA_HEADER_LEN: usize = 1 + 2 + 32;
/// The longest delta chain a reader follows (the depth in
/// [`Codec::Delta`]). Writers bound their chains far below this (see
/// `Options::delta_chain` of the store); a record claiming more is refused.
pub const MAX_DELTA_DEPTH: u8 = 16;

/// XORs `base` into `data` in place over their common prefix (the base is
/// treated as padded with zeros past its end; base bytes past `data`'s end are
/// ignored). Applying it twice with the same base restores `data`.
pub fn xor_base(data: &mut [u8], base: &[u8]) {
    // `zip` stops at the shorter slice; the loop vectorises.
    for (x, y) in data.iter_mut().zip(base) {
        *x ^= *y;
    }
}

/// The transform for a chunk with compression hint `hint`: the difference
/// of elements for 2- and 4-byte elements (a float nudged by a small relative
/// step moves by a small integer in its bit pattern; a borrow across bits
/// costs the XOR several bits, the difference one), else XOR.
fn transform_for(hint: PlaneHint) -> u8 {
    match hint {
        PlaneHint::Width(2) => SUB16,
        PlaneHint::Width(4) => SUB32,
        _ => XOR,
    }
}

/// Applies `transform` to `image` (`raw` on the way in, the stored image on
/// the way out) against `base`: XOR bytes, or for `SUB16`/`SUB32` replace
/// each whole little-endian element that `base` also covers by the zigzag
/// of `raw - base` (wrapping), or back (`inverse`). Bytes past the last
/// such element are XORed with the base padded with zeros, like [`xor_base`].
fn apply(transform: u8, image: &mut [u8], base: &[u8], inverse: bool) {
    let whole = |w: usize| image.len().min(base.len()) / w * w;
    match transform {
        SUB16 => {
            let n = whole(2);
            for (x, b) in image[..n].chunks_exact_mut(2).zip(base.chunks_exact(2)) {
                let (v, b) = (
                    u16::from_le_bytes([x[0], x[1]]),
                    u16::from_le_bytes([b[0], b[1]]),
                );
                let r = if inverse {
                    b.wrapping_add((v >> 1) ^ (v & 1).wrapping_neg())
                } else {
                    let d = v.wrapping_sub(b);
                    (d << 1) ^ ((d as i16) >> 15) as u16
                };
                x.copy_from_slice(&r.to_le_bytes());
            }
            xor_base(&mut image[n..], base.get(n..).unwrap_or_default());
        }
        SUB32 => {
            let n = whole(4);
            for (x, b) in image[..n].chunks_exact_mut(4).zip(base.chunks_exact(4)) {
                let v = u32::from_le_bytes([x[0], x[1], x[2], x[3]]);
                let b = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let r = if inverse {
                    b.wrapping_add((v >> 1) ^ (v & 1).wrapping_neg())
                } else {
                    let d = v.wrapping_sub(b);
                    (d << 1) ^ ((d as i32) >> 31) as u32
                };
                x.copy_from_slice(&r.to_le_bytes());
            }
            xor_base(&mut image[n..], base.get(n..).unwrap_or_default());
        }
        _ => xor_base(image, base),
    }
}

/// Bytes of the difference image that decide between the magnitude split
/// and byte planes (the chunk's first ones): both are encoded on this much,
/// and the winner on the whole chunk.
const SPLIT_SAMPLE: usize = 16 * 1024;

/// Whether the magnitude split of the whole elements `words` of a difference
/// image is smaller than its byte planes, judged on their first
/// [`SPLIT_SAMPLE`] bytes. On the synthetic run's fp32 moments the split is
/// 0.6% smaller; on differences with a flat spread the planes are. Deciding
/// on a sample keeps the encoding cost near one encoding's (the split alone
/// is faster than the planes).
fn split_pays(words: &[u8], hint: PlaneHint, opts: &EncodeOptions) -> bool {
    let sample = &words[..words.len().min(SPLIT_SAMPLE)];
    let (mut split, mut planes) = (Vec::new(), Vec::new());
    if !super::split::encode(sample, opts.planes(), &mut split) {
        return false;
    }
    let inner = encode_hinted(sample, hint, opts, &mut planes);
    inner == Codec::Raw || split.len() < planes.len()
}

/// Encodes `raw` as its XOR against `base` (see the
/// [module documentation](self)), compressed by [`encode_hinted`] with
/// `hint`, into `out` (cleared first). Returns the codec of the XOR image, or
/// `None` — `out` left empty — when a delta is pointless: `raw` or `base` is
/// empty, or the XOR image would not save `opts.min_saving` of `raw`'s size.
///
/// The caller compares the result with the plain encoding of `raw` and keeps
/// the smaller: a delta against an unrelated base is usually larger.
pub fn encode_delta(
    raw: &[u8],
    base: &[u8],
    base_id: &ChunkId,
    hint: PlaneHint,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Option<Codec> {
    out.clear();
    if raw.is_empty() || base.is_empty() {
        return None;
    }
    let mut transform = transform_for(hint);
    let mut image = raw.to_vec();
    apply(transform, &mut image, base, false);
    let mut payload = Vec::new();
    let mut inner = Codec::Raw;
    let whole = raw.len().min(base.len()) / 4 * 4;
    if transform == SUB32 && split_pays(&image[..whole], hint, opts) {
        // The image split by magnitude, with the bytes after its elements.
        let limit = raw.len() as f64 * (1.0 - opts.min_saving);
        if super::split::encode(&image[..whole], opts.planes(), &mut payload)
            && ((payload.len() + raw.len() - whole) as f64) < limit
        {
            payload.extend_from_slice(&image[whole..]);
            (transform, inner) = (SPLIT32, Codec::Zstd);
        } else {
            payload.clear();
        }
    }
    if inner == Codec::Raw {
        inner = encode_hinted(&image, hint, opts, &mut payload);
    }
    if inner == Codec::Raw {
        return None;
    }
    out.reserve_exact(DELTA_HEADER_LEN + payload.len());
    out.push(transform);
    out.extend_from_slice(&inner.to_bytes());
    out.extend_from_slice(base_id.as_bytes());
    out.extend_from_slice(&payload);
    Some(inner)
}

/// The header of a stored delta: its inner codec and base, and the
/// compressed XOR image after it.
fn parse(stored: &[u8]) -> Result<(u8, Codec, ChunkId, &[u8])> {
    let Some((header, payload)) = stored.split_first_chunk::<DELTA_HEADER_LEN>() else {
        return Err(Error::corrupt(
            "delta chunk",
            format!("{} bytes, shorter than its header", stored.len()),
        ));
    };
    if ![XOR, SUB16, SUB32, SPLIT32].contains(&header[0]) {
        return Err(Error::corrupt(
            "delta chunk",
            format!("unknown transform {}", header[0]),
        ));
    }
    let inner = Codec::from_bytes([header[1], header[2]])?;
    if header[0] == SPLIT32 && inner != Codec::Zstd {
        return Err(Error::corrupt(
            "delta chunk",
            format!("a split image names inner codec {}, not zstd", inner.name()),
        ));
    }
    if !matches!(inner, Codec::Zstd | Codec::Planes { .. }) {
        return Err(Error::corrupt(
            "delta chunk",
            format!("inner codec {} is not zstd or planes", inner.name()),
        ));
    }
    let base = Hash32::from_slice(&header[3..]).expect("32 bytes");
    Ok((header[0], inner, base, payload))
}

/// The id of the chunk a stored delta was encoded against.
///
/// # Errors
///
/// [`Error::Corrupt`] when `stored` does not start with a valid delta header.
pub fn delta_base(stored: &[u8]) -> Result<ChunkId> {
    parse(stored).map(|(_, _, base, _)| base)
}

/// Decodes a delta written by [`encode_delta`] against `base` (the bytes of
/// the chunk [`delta_base`] names) into `out` (cleared first), which ends up
/// exactly `raw_len` bytes long or the call fails. Never allocates more than
/// `raw_len` bytes of output, whatever `stored` contains. Returns the inner
/// codec.
///
/// # Errors
///
/// [`Error::Corrupt`] for a payload shorter than its header, an unknown
/// transform, an unknown or raw inner codec, or a payload that does not
/// decode to exactly `raw_len` bytes. A wrong `base` is not detected here
/// (the output is simply different): callers check the chunk's digest.
pub fn decode_delta(
    stored: &[u8],
    base: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
) -> Result<Codec> {
    out.clear();
    let (transform, inner, _, payload) = parse(stored)?;
    if transform == SPLIT32 {
        let whole = raw_len.min(base.len()) / 4 * 4;
        out.reserve_exact(raw_len);
        let used = super::split::decode(payload, whole / 4, out)?;
        if payload.len() - used != raw_len - whole {
            out.clear();
            return Err(Error::corrupt(
                "delta chunk",
                format!(
                    "{} bytes after the split image, expected {}",
                    payload.len() - used,
                    raw_len - whole
                ),
            ));
        }
        out.extend_from_slice(&payload[used..]);
        apply(SUB32, out, base, true);
    } else {
        decode(inner, payload, raw_len, out)?;
        apply(transform, out, base, true);
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: ChunkId = Hash32([7; 32]);

    /// `n` bf16 values and a "next step" of them where about one in `every`
    /// values moved by one unit in the last place.
    fn bf16_pair(n: usize, every: u32) -> (Vec<u8>, Vec<u8>) {
        let f32s = crate::test_support::floats(n, 11);
        let old: Vec<u8> = f32s.chunks_exact(4).flat_map(|q| [q[2], q[3]]).collect();
        let mut new = old.clone();
        let mut x = 0x9e37_79b9u32;
        for v in new.chunks_exact_mut(2) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x.is_multiple_of(every) {
                let b = u16::from_le_bytes([v[0], v[1]]).wrapping_add(1);
                v.copy_from_slice(&b.to_le_bytes());
            }
        }
        (old, new)
    }

    fn round_trip(raw: &[u8], base: &[u8], hint: PlaneHint) -> Option<usize> {
        let mut enc = Vec::new();
        let base_id = Hash32::of(base);
        let codec = encode_delta(
            raw,
            base,
            &base_id,
            hint,
            &EncodeOptions::default(),
            &mut enc,
        )?;
        assert_eq!(delta_base(&enc).unwrap(), base_id);
        let mut dec = Vec::new();
        assert_eq!(
            decode_delta(&enc, base, raw.len(), &mut dec).unwrap(),
            codec
        );
        assert_eq!(dec, raw, "{codec:?} {hint:?}");
        Some(enc.len())
    }

    #[test]
    fn xor_is_its_own_inverse_and_pads_the_base_with_zeros() {
        let mut d = vec![1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let orig = d.clone();
        xor_base(&mut d, &[0xff; 4]);
        assert_eq!(d[..4], [0xfe, 0xfd, 0xfc, 0xfb]);
        assert_eq!(d[4..], orig[4..]);
        xor_base(&mut d, &[0xff; 4]);
        assert_eq!(d, orig);
        let long: Vec<u8> = (0..64).collect();
        xor_base(&mut d, &long);
        let want: Vec<u8> = orig.iter().zip(&long).map(|(a, b)| a ^ b).collect();
        assert_eq!(d, want);
    }

    #[test]
    fn differences_invert_with_short_bases_and_partial_elements() {
        let raw: Vec<u8> = (0..103u32).map(|i| (i * 37 % 251) as u8).collect();
        let base: Vec<u8> = (0..61u32).map(|i| (i * 91 % 253) as u8).collect();
        for t in [XOR, SUB16, SUB32] {
            for b in [&base[..], &base[..0], &base[..3], &raw[..]] {
                let mut img = raw.clone();
                apply(t, &mut img, b, false);
                if t != XOR && b.len() >= 4 {
                    assert_ne!(img[..4], raw[..4], "transform {t} changed nothing");
                }
                apply(t, &mut img, b, true);
                assert_eq!(img, raw, "transform {t}, base of {}", b.len());
            }
        }
        // A value one unit up or down: the zigzag of +1 is 2, of -1 is 1.
        let mut img = 0x3f80_0001u32.to_le_bytes().to_vec();
        apply(SUB32, &mut img, &0x3f80_0000u32.to_le_bytes(), false);
        assert_eq!(img, [2, 0, 0, 0]);
        let mut img = 0x3f7fu16.to_le_bytes().to_vec();
        apply(SUB16, &mut img, &0x3f80u16.to_le_bytes(), false);
        assert_eq!(img, [1, 0]);
    }

    #[test]
    fn differences_beat_xor_on_nudged_fp32() {
        // Every value times (1 + e), |e| < 1e-3: one optimizer step.
        let old = crate::test_support::floats(32 * 1024, 5);
        let mut x = 0x2545_f491u32;
        let new: Vec<u8> = old
            .chunks_exact(4)
            .flat_map(|q| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let e = (x as f32 / u32::MAX as f32 - 0.5) * 2e-3;
                (f32::from_le_bytes(q.try_into().unwrap()) * (1.0 + e)).to_le_bytes()
            })
            .collect();
        let sub = round_trip(&new, &old, PlaneHint::Width(4)).unwrap();
        let xor = round_trip(&new, &old, PlaneHint::Estimate).unwrap();
        assert!(sub * 100 < xor * 97, "difference {sub} bytes, XOR {xor}");

        // With a bell-shaped step (a sum of four uniforms, standard deviation
        // 1e-3, like a gradient step's spread) the difference is split by
        // magnitude, smaller than its byte planes.
        let new: Vec<u8> = old
            .chunks_exact(4)
            .flat_map(|q| {
                let mut e = 0.0f32;
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    e += x as f32 / u32::MAX as f32 - 0.5;
                }
                (f32::from_le_bytes(q.try_into().unwrap()) * (1.0 + e * 1.73e-3)).to_le_bytes()
            })
            .collect();
        let mut enc = Vec::new();
        let opts = EncodeOptions::default();
        encode_delta(&new, &old, &ID, PlaneHint::Width(4), &opts, &mut enc).unwrap();
        assert_eq!(enc[0], SPLIT32);
        let mut image = new.clone();
        apply(SUB32, &mut image, &old, false);
        let mut planes = Vec::new();
        encode_hinted(&image, PlaneHint::Width(4), &opts, &mut planes);
        assert!(
            enc.len() < planes.len() + DELTA_HEADER_LEN,
            "split {} bytes, planes {}",
            enc.len(),
            planes.len() + DELTA_HEADER_LEN
        );
        // A trailing partial element; a base covering half the chunk (the
        // rest of the image is stored as is, so the planes may win: either
        // way it reads back).
        for (raw, base) in [
            (&new[..new.len() - 3], &old[..]),
            (&new[..], &old[..old.len() / 2 + 2]),
        ] {
            let mut enc = Vec::new();
            encode_delta(raw, base, &ID, PlaneHint::Width(4), &opts, &mut enc).unwrap();
            let mut dec = Vec::new();
            decode_delta(&enc, base, raw.len(), &mut dec).unwrap();
            assert_eq!(dec, raw);
            if base.len() < raw.len() {
                continue;
            }
            assert_eq!(enc[0], SPLIT32);
            // A payload one byte short or long, and another inner codec.
            assert!(decode_delta(&enc[..enc.len() - 1], base, raw.len(), &mut dec).is_err());
            let mut long = enc.clone();
            long.push(0);
            assert!(decode_delta(&long, base, raw.len(), &mut dec).is_err());
            let mut other = enc.clone();
            other[1..3].copy_from_slice(&Codec::Planes { width: 4 }.to_bytes());
            let err = decode_delta(&other, base, raw.len(), &mut dec).unwrap_err();
            assert!(err.to_string().contains("not zstd"), "{err}");
        }
    }

    #[test]
    fn the_fuzz_seed_written_from_the_documented_split_layout_decodes() {
        // fuzz/seeds/make_seeds.py builds this record in Python from the
        // layout in `split.rs`: [raw_len / 16 u16, split, base | stored].
        let seed = include_bytes!("../../fuzz/seeds/delta_decode/split32");
        let raw_len = u16::from_le_bytes([seed[0], seed[1]]) as usize * 16;
        let (base, stored) = seed[3..].split_at(128);
        assert_eq!(stored[0], SPLIT32);
        let mut out = Vec::new();
        decode_delta(stored, base, raw_len, &mut out).unwrap();
        // The seed's values are the base's, nudged by at most 3e-3.
        for (r, b) in out.chunks_exact(4).zip(base.chunks_exact(4)) {
            let (r, b) = (
                f32::from_le_bytes(r.try_into().unwrap()),
                f32::from_le_bytes(b.try_into().unwrap()),
            );
            assert!((r - b).abs() <= b.abs() * 3.1e-3, "{r} vs {b}");
        }
    }

    #[test]
    fn a_small_step_costs_far_less_than_the_chunk() {
        let (old, new) = bf16_pair(32 * 1024, 8);
        let mut plain = Vec::new();
        encode_hinted(
            &new,
            PlaneHint::Width(2),
            &EncodeOptions::default(),
            &mut plain,
        );
        for hint in [PlaneHint::Width(2), PlaneHint::Estimate, PlaneHint::Flat] {
            let d = round_trip(&new, &old, hint).unwrap();
            assert!(
                d * 4 < plain.len(),
                "{hint:?}: delta {d}, plain {}",
                plain.len()
            );
        }
        // Identical chunks: a few dozen bytes.
        assert!(round_trip(&new, &new, PlaneHint::Width(2)).unwrap() < 100);
    }

    #[test]
    fn bases_shorter_longer_and_unrelated() {
        let (old, new) = bf16_pair(8 * 1024, 4);
        let n = new.len();
        round_trip(&new, &old[..n / 3], PlaneHint::Width(2)).unwrap();
        round_trip(&new[..n - 3], &old, PlaneHint::Width(2)).unwrap();
        round_trip(&new[1..], &old[1..], PlaneHint::Estimate).unwrap();
        // Empty raw or base: nothing to gain.
        let mut enc = vec![9];
        let opts = EncodeOptions::default();
        assert_eq!(
            encode_delta(&new, &[], &ID, PlaneHint::Width(2), &opts, &mut enc),
            None
        );
        assert!(enc.is_empty());
        assert_eq!(
            encode_delta(&[], &old, &ID, PlaneHint::Width(2), &opts, &mut enc),
            None
        );
        // Noise against noise does not compress: no delta.
        let noise = |seed: u64| -> Vec<u8> {
            let mut x = seed;
            (0..65536)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 33) as u8
                })
                .collect()
        };
        assert_eq!(round_trip(&noise(1), &noise(2), PlaneHint::Estimate), None);
    }

    #[test]
    fn hostile_payloads_fail_cleanly() {
        let (old, new) = bf16_pair(8 * 1024, 4);
        let mut enc = Vec::new();
        encode_delta(
            &new,
            &old,
            &ID,
            PlaneHint::Width(2),
            &EncodeOptions::default(),
            &mut enc,
        )
        .unwrap();
        let mut out = Vec::new();
        let err = |r: Result<Codec>| assert!(r.unwrap_err().is_integrity());
        err(decode_delta(&[], &old, new.len(), &mut out));
        err(decode_delta(&enc[..2], &old, new.len(), &mut out));
        err(decode_delta(
            &enc[..enc.len() - 1],
            &old,
            new.len(),
            &mut out,
        ));
        err(decode_delta(&enc, &old, new.len() + 1, &mut out));
        err(decode_delta(&enc, &old, new.len() - 1, &mut out));
        let mut bad = enc.clone();
        bad[0] = 4;
        err(decode_delta(&bad, &old, new.len(), &mut out));
        let mut bad = enc.clone();
        bad[1..3].copy_from_slice(&[7, 0]);
        err(decode_delta(&bad, &old, new.len(), &mut out));
        // A raw (or delta) inner codec is never written, so never accepted.
        for inner in [[0u8, 0], [3, 1]] {
            let mut raw = vec![XOR, inner[0], inner[1]];
            raw.extend_from_slice(&[0; 32]);
            raw.extend_from_slice(&new);
            err(decode_delta(&raw, &old, new.len(), &mut out));
            assert!(delta_base(&raw).unwrap_err().is_integrity());
        }
        // A zstd bomb inside a delta is bounded by raw_len.
        let mut bomb = vec![XOR, 1, 0];
        bomb.extend_from_slice(&[0; 32]);
        bomb.extend(zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap());
        err(decode_delta(&bomb, &old, 1024, &mut out));
        assert!(out.capacity() < 64 * 1024, "allocated {}", out.capacity());
        // A wrong base decodes to different bytes (the chunk digest catches it).
        decode_delta(&enc, &new, new.len(), &mut out).unwrap();
        assert_ne!(out, new);
    }

    fn hint() -> impl Strategy<Value = PlaneHint> {
        prop_oneof![
            Just(PlaneHint::Estimate),
            Just(PlaneHint::Flat),
            Just(PlaneHint::Width(2)),
            Just(PlaneHint::Width(4)),
            Just(PlaneHint::Width(3)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the lengths and contents, a delta that is written decodes
        /// back to the chunk; a base made from the chunk by sparse edits
        /// always gives one.
        #[test]
        fn delta_round_trips(
            raw in proptest::collection::vec(any::<u8>(), 0..3000),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..20),
            cut in any::<usize>(),
            tail in proptest::collection::vec(any::<u8>(), 0..50),
            hint in hint(),
        ) {
            let mut base = raw.clone();
            for (i, b) in &edits {
                if !base.is_empty() {
                    let n = base.len();
                    base[i % n] ^= b;
                }
            }
            base.truncate(cut % (raw.len() + 1));
            base.extend_from_slice(&tail);
            let got = round_trip(&raw, &base, hint);
            if raw.len() >= 512 && base.len() == raw.len() {
                prop_assert!(got.is_some());
            }
        }

        /// Arbitrary stored bytes never panic and never produce more than
        /// `raw_len` bytes.
        #[test]
        fn arbitrary_payloads_are_bounded(
            stored in proptest::collection::vec(any::<u8>(), 0..200),
            transform in 0u8..5,
            kind in 0u8..4,
            width in 0u8..6,
            base in proptest::collection::vec(any::<u8>(), 0..100),
            raw_len in 0usize..5000,
        ) {
            let mut s = vec![transform, kind, width];
            s.extend_from_slice(&[0; 32]);
            s.extend_from_slice(&stored);
            let mut out = Vec::new();
            for p in [&s[..], &stored[..]] {
                match decode_delta(p, &base, raw_len, &mut out) {
                    Ok(_) => prop_assert_eq!(out.len(), raw_len),
                    Err(e) => prop_assert!(e.is_integrity()),
                }
            }
        }
    }
}
