//! Byte-plane transform: byte `i` of a chunk goes to plane `i % width`; each
//! plane is stored as its own zstd frame, or raw when it would not shrink, or
//! as a zstd frame of its *bit planes*.
//!
//! Stored layout (all integers little-endian):
//!
//! ```text
//! width × { mode: u8 (0 = raw, 1 = zstd, 2 = bits), len: u32 }   plane directory
//! plane 0 payload (len bytes) … plane width-1 payload
//! ```
//!
//! Plane `p` of a chunk of `n` bytes holds `n / width + (p < n % width)` bytes.
//!
//! # Bit planes
//!
//! zstd codes each literal byte with at least one bit, so a plane that is
//! nearly all one value (the low byte of a bf16 weight's difference between
//! two training steps: mostly 0, sometimes 1 or 2) costs about a bit per
//! byte, where its information is a fraction of that. Transposing the plane
//! into bit planes turns those rare values into sparse bits that zstd packs
//! eight to a literal. A plane of `m` bytes is cut into `g = m / 8` groups of
//! 8 bytes and a tail of `m % 8` bytes; the *bit image* (also `m` bytes) is
//!
//! ```text
//! 8 × g bytes: bit plane k (k = 0 … 7) is g bytes; bit j of its byte i is
//!              bit k of plane byte 8i + j
//! m % 8 bytes: the tail, as is
//! ```
//!
//! and mode 2 stores one zstd frame of it. The encoder tries it only for
//! planes whose order-0 entropy is under 2 bits per byte (anything denser
//! gains nothing: zstd's Huffman literals are then near the entropy), and
//! keeps it only when its frame is smaller than the byte plane's.

use super::estimate::{plane_incompressible, Estimate};
use super::zstd_ctx;
use crate::error::{Error, Result};

const DIR_ENTRY: usize = 5;
const MODE_RAW: u8 = 0;
const MODE_ZSTD: u8 = 1;
const MODE_BITS: u8 = 2;
/// Bit planes are tried for planes estimated below this many bytes per byte
/// (2 bits).
const BITS_BELOW: f64 = 0.25;

/// Transposes the 8×8 bit matrix held in `x`, byte `i` being row `i` and bit
/// `j` of it column `j`: bit `j` of byte `i` moves to bit `i` of byte `j`.
/// Its own inverse. (Three rounds of delta swaps: within 2×2, 4×4 and 8×8
/// blocks.)
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// The bit image of `plane` (see the module documentation), `plane.len()`
/// bytes, into `dst` (cleared first).
fn to_bits(plane: &[u8], dst: &mut Vec<u8>) {
    let g = plane.len() / 8;
    dst.clear();
    dst.resize(plane.len(), 0);
    for (i, q) in plane.chunks_exact(8).enumerate() {
        let mut group = [0u8; 8];
        group.copy_from_slice(q);
        let t = transpose8(u64::from_le_bytes(group)).to_le_bytes();
        for (k, b) in t.into_iter().enumerate() {
            dst[k * g + i] = b;
        }
    }
    dst[8 * g..].copy_from_slice(&plane[8 * g..]);
}

/// The inverse of [`to_bits`]: appends the plane whose bit image is `bits`
/// to `out`.
fn from_bits(bits: &[u8], out: &mut Vec<u8>) {
    let g = bits.len() / 8;
    let start = out.len();
    out.resize(start + bits.len(), 0);
    let dst = &mut out[start..];
    for (i, q) in dst.chunks_exact_mut(8).enumerate() {
        let mut t = [0u8; 8];
        for (k, b) in t.iter_mut().enumerate() {
            *b = bits[k * g + i];
        }
        q.copy_from_slice(&transpose8(u64::from_le_bytes(t)).to_le_bytes());
    }
    dst[8 * g..].copy_from_slice(&bits[8 * g..]);
}

/// Number of bytes in plane `p` of a chunk of `n` bytes.
fn plane_len(n: usize, width: usize, p: usize) -> usize {
    n / width + usize::from(p < n % width)
}

/// Start offsets of each plane in the planar layout, plus the end.
fn plane_starts(n: usize, width: usize) -> [usize; 5] {
    let mut s = [0usize; 5];
    for p in 0..width {
        s[p + 1] = s[p] + plane_len(n, width, p);
    }
    s
}

/// Writes `raw` in planar order into `dst` (same length): plane 0, plane 1, …
fn split(raw: &[u8], width: usize, dst: &mut [u8]) {
    let s = plane_starts(raw.len(), width);
    let groups = raw.chunks_exact(width);
    let tail = groups.remainder();
    match width {
        4 => {
            let (d0, rest) = dst.split_at_mut(s[1]);
            let (d1, rest) = rest.split_at_mut(s[2] - s[1]);
            let (d2, d3) = rest.split_at_mut(s[3] - s[2]);
            for (i, q) in groups.enumerate() {
                d0[i] = q[0];
                d1[i] = q[1];
                d2[i] = q[2];
                d3[i] = q[3];
            }
        }
        _ => {
            for (i, q) in groups.enumerate() {
                for p in 0..width {
                    dst[s[p] + i] = q[p];
                }
            }
        }
    }
    let full = raw.len() / width;
    for (p, &b) in tail.iter().enumerate() {
        dst[s[p] + full] = b;
    }
}

/// The inverse of [`split`].
fn merge(planar: &[u8], width: usize, out: &mut [u8]) {
    let s = plane_starts(out.len(), width);
    let full = out.len() / width;
    let (groups, tail) = out.split_at_mut(full * width);
    match width {
        4 => {
            let (d0, d1, d2, d3) = (
                &planar[..s[1]],
                &planar[s[1]..s[2]],
                &planar[s[2]..s[3]],
                &planar[s[3]..s[4]],
            );
            for (i, q) in groups.chunks_exact_mut(4).enumerate() {
                q[0] = d0[i];
                q[1] = d1[i];
                q[2] = d2[i];
                q[3] = d3[i];
            }
        }
        _ => {
            for (i, q) in groups.chunks_exact_mut(width).enumerate() {
                for p in 0..width {
                    q[p] = planar[s[p] + i];
                }
            }
        }
    }
    for (p, b) in tail.iter_mut().enumerate() {
        *b = planar[s[p] + full];
    }
}

/// Appends the encoding of `raw` to `out`. Always succeeds (a plane that
/// does not shrink is stored raw); returns true for symmetry with zstd.
pub(crate) fn encode(
    raw: &[u8],
    width: usize,
    est: &Estimate,
    tuning: zstd_ctx::Tuning,
    out: &mut Vec<u8>,
) -> bool {
    let dir_start = out.len();
    out.resize(dir_start + DIR_ENTRY * width, 0);
    let mut planar = vec![0u8; raw.len()];
    split(raw, width, &mut planar);
    let s = plane_starts(raw.len(), width);
    let (mut bits, mut frame) = (Vec::new(), Vec::new());
    for p in 0..width {
        let plane = &planar[s[p]..s[p + 1]];
        let before = out.len();
        let est_p = est.plane_bytes(width, p);
        let mut mode = if !plane_incompressible(est_p, plane.len())
            && zstd_ctx::compress(plane, tuning, out)
        {
            MODE_ZSTD
        } else {
            out.extend_from_slice(plane);
            MODE_RAW
        };
        if est_p < plane.len() as f64 * BITS_BELOW {
            to_bits(plane, &mut bits);
            frame.clear();
            if zstd_ctx::compress(&bits, tuning, &mut frame) && frame.len() < out.len() - before {
                out.truncate(before);
                out.extend_from_slice(&frame);
                mode = MODE_BITS;
            }
        }
        let len = (out.len() - before) as u32;
        let e = dir_start + p * DIR_ENTRY;
        out[e] = mode;
        out[e + 1..e + 5].copy_from_slice(&len.to_le_bytes());
    }
    true
}

/// Decodes a planes payload into `out`, which ends up `raw_len` bytes long.
pub(crate) fn decode(stored: &[u8], width: usize, raw_len: usize, out: &mut Vec<u8>) -> Result<()> {
    let bad = |detail: String| Error::corrupt(format!("planes{width} chunk"), detail);
    let dir_len = DIR_ENTRY * width;
    if stored.len() < dir_len {
        return Err(bad(format!(
            "{} bytes, shorter than its plane directory",
            stored.len()
        )));
    }
    let (dir, mut body) = stored.split_at(dir_len);
    let mut planes = Vec::with_capacity(raw_len);
    // `out` is the scratch of bit planes until the planes are merged into it.
    out.clear();
    out.reserve_exact(raw_len);
    for p in 0..width {
        let e = &dir[p * DIR_ENTRY..(p + 1) * DIR_ENTRY];
        let len = u32::from_le_bytes([e[1], e[2], e[3], e[4]]) as usize;
        if len > body.len() {
            return Err(bad(format!(
                "plane {p} claims {len} bytes, {} remain",
                body.len()
            )));
        }
        let (payload, rest) = body.split_at(len);
        body = rest;
        let want = plane_len(raw_len, width, p);
        let start = planes.len();
        match e[0] {
            MODE_RAW if len == want => planes.extend_from_slice(payload),
            MODE_RAW => {
                return Err(bad(format!(
                    "raw plane {p} has {len} bytes, expected {want}"
                )))
            }
            MODE_ZSTD => {
                zstd_ctx::decompress(payload, want, &mut planes)
                    .map_err(|e| bad(format!("plane {p}: {e}")))?;
                if planes.len() - start != want {
                    return Err(bad(format!(
                        "plane {p} decoded to {} bytes, expected {want}",
                        planes.len() - start
                    )));
                }
            }
            MODE_BITS => {
                out.clear();
                zstd_ctx::decompress(payload, want, out)
                    .map_err(|e| bad(format!("bit planes of plane {p}: {e}")))?;
                if out.len() != want {
                    return Err(bad(format!(
                        "bit planes of plane {p} decoded to {} bytes, expected {want}",
                        out.len()
                    )));
                }
                from_bits(out, &mut planes);
            }
            m => return Err(bad(format!("plane {p} has unknown mode {m}"))),
        }
    }
    if !body.is_empty() {
        return Err(bad(format!(
            "{} trailing bytes after the last plane",
            body.len()
        )));
    }
    out.clear();
    out.resize(raw_len, 0);
    merge(&planes, width, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::estimate::estimate;

    const TUNING: zstd_ctx::Tuning = zstd_ctx::Tuning {
        level: 1,
        min_match: Some(7),
    };

    #[test]
    fn plane_lengths_partition_the_chunk() {
        for n in 0..20 {
            for w in [2, 4] {
                assert_eq!((0..w).map(|p| plane_len(n, w, p)).sum::<usize>(), n);
            }
        }
    }

    #[test]
    fn round_trip_every_small_length() {
        for n in 0..64usize {
            let raw: Vec<u8> = (0..n).map(|i| (i * 7 % 5) as u8).collect();
            for w in [2, 4] {
                let mut enc = Vec::new();
                encode(&raw, w, &estimate(&raw), TUNING, &mut enc);
                let mut dec = Vec::new();
                decode(&enc, w, n, &mut dec).unwrap();
                assert_eq!(dec, raw);
            }
        }
    }

    /// `n` bytes of 2-byte elements whose low bytes are mostly 0, one in
    /// about `every` being 1 or 2 (a bf16 training step's difference), and
    /// whose high bytes are 0.
    fn sparse_pairs(n: usize, every: u32) -> Vec<u8> {
        let mut x = 0x9e37_79b9u32;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 2 == 0 && x.is_multiple_of(every) {
                    1 + (x >> 16) as u8 % 2
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn transpose8_moves_bit_j_of_byte_i_to_bit_i_of_byte_j() {
        assert_eq!(transpose8(0xff), 0x0101_0101_0101_0101);
        assert_eq!(transpose8(1 << (8 * 3 + 5)), 1 << (8 * 5 + 3));
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..1000 {
            x = x.rotate_left(13).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let t = transpose8(x);
            assert_eq!(transpose8(t), x);
            for (i, j) in [(0, 7), (2, 3), (6, 1), (4, 4)] {
                assert_eq!(x >> (8 * i + j) & 1, t >> (8 * j + i) & 1);
            }
        }
    }

    #[test]
    fn bit_images_round_trip_at_every_small_length() {
        let mut bits = Vec::new();
        // The documented layout: bit plane k, then group i; the tail as is.
        let mut plane = [0u8; 17];
        (plane[0], plane[9], plane[16]) = (1, 2, 5);
        to_bits(&plane, &mut bits);
        let mut want = [0u8; 17];
        (want[0], want[3], want[16]) = (1, 2, 5);
        assert_eq!(bits, want);
        for n in 0..70usize {
            let plane: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            to_bits(&plane, &mut bits);
            assert_eq!(bits.len(), n);
            if n >= 8 {
                assert_ne!(bits, plane, "length {n}: nothing transposed");
            }
            let mut back = vec![9u8];
            from_bits(&bits, &mut back);
            assert_eq!(back[1..], plane[..], "length {n}");
        }
    }

    #[test]
    fn sparse_planes_are_stored_as_bits_and_shrink() {
        let raw = sparse_pairs(64 * 1024, 8);
        let mut enc = Vec::new();
        encode(&raw, 2, &estimate(&raw), TUNING, &mut enc);
        assert_eq!(enc[0], MODE_BITS, "the sparse low plane");
        // The byte plane's own frame, which the bits must beat.
        let plane: Vec<u8> = raw.iter().step_by(2).copied().collect();
        let mut frame = Vec::new();
        assert!(zstd_ctx::compress(&plane, TUNING, &mut frame));
        let bits_len = u32::from_le_bytes(enc[1..5].try_into().unwrap()) as usize;
        assert!(
            bits_len * 10 < frame.len() * 8,
            "bits {bits_len} B, byte plane {} B",
            frame.len()
        );
        let mut dec = Vec::new();
        decode(&enc, 2, raw.len(), &mut dec).unwrap();
        assert_eq!(dec, raw);
    }

    #[test]
    fn round_trip_every_small_length_of_sparse_data() {
        for n in 0..200usize {
            let raw = sparse_pairs(n, 3);
            for w in [2, 4] {
                let mut enc = Vec::new();
                encode(&raw, w, &estimate(&raw), TUNING, &mut enc);
                let mut dec = vec![1, 2, 3];
                decode(&enc, w, n, &mut dec).unwrap();
                assert_eq!(dec, raw, "length {n}, width {w}");
            }
        }
    }

    #[test]
    fn rejects_bit_planes_of_the_wrong_length() {
        let raw = sparse_pairs(4096, 8);
        let mut enc = Vec::new();
        encode(&raw, 2, &estimate(&raw), TUNING, &mut enc);
        assert_eq!(enc[0], MODE_BITS);
        let mut dec = Vec::new();
        // A raw length two bytes shorter: plane 0 is one byte shorter than
        // its bit image.
        let err = decode(&enc, 2, raw.len() - 2, &mut dec).unwrap_err();
        assert!(err.to_string().contains("plane 0"), "{err}");
        // An unknown mode is named.
        enc[0] = 3;
        let err = decode(&enc, 2, raw.len(), &mut dec).unwrap_err();
        assert!(err.to_string().contains("unknown mode 3"), "{err}");
    }

    #[test]
    fn rejects_truncated_and_padded_payloads() {
        let raw: Vec<u8> = (0..4096u32)
            .flat_map(|i| (i as f32).to_le_bytes())
            .collect();
        let mut enc = Vec::new();
        encode(&raw, 4, &estimate(&raw), TUNING, &mut enc);
        let mut dec = Vec::new();
        assert!(decode(&enc[..enc.len() - 1], 4, raw.len(), &mut dec).is_err());
        let mut padded = enc.clone();
        padded.push(0);
        assert!(decode(&padded, 4, raw.len(), &mut dec).is_err());
        assert!(decode(&enc, 4, raw.len() + 1, &mut dec).is_err());
        assert!(decode(&enc[..3], 4, raw.len(), &mut dec).is_err());
    }
}
