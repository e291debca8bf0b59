//! Byte-plane transform: byte `i` of a chunk goes to plane `i % width`; each
//! plane is stored as its own zstd frame, or raw when it would not shrink.
//!
//! Stored layout (all integers little-endian):
//!
//! ```text
//! width × { mode: u8 (0 = raw, 1 = zstd), len: u32 }   plane directory
//! plane 0 payload (len bytes) … plane width-1 payload
//! ```
//!
//! Plane `p` of a chunk of `n` bytes holds `n / width + (p < n % width)` bytes.

use super::estimate::{plane_incompressible, Estimate};
use super::zstd_ctx;
use crate::error::{Error, Result};

const DIR_ENTRY: usize = 5;
const MODE_RAW: u8 = 0;
const MODE_ZSTD: u8 = 1;

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
    for p in 0..width {
        let plane = &planar[s[p]..s[p + 1]];
        let before = out.len();
        let mode = if !plane_incompressible(est.plane_bytes(width, p), plane.len())
            && zstd_ctx::compress(plane, tuning, out)
        {
            MODE_ZSTD
        } else {
            out.extend_from_slice(plane);
            MODE_RAW
        };
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
                zstd_ctx::decompress(payload, want, &mut planes)?;
                if planes.len() - start != want {
                    return Err(bad(format!(
                        "plane {p} decoded to {} bytes, expected {want}",
                        planes.len() - start
                    )));
                }
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
