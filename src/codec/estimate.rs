//! The codec predictor: order-0 entropy of the byte classes `i % 4`.
//!
//! One pass fills four byte histograms (one per position modulo 4). Merging
//! them gives the histograms of 2-byte planes (classes {0,2} and {1,3}) and
//! of the plain byte stream, so one pass prices all three codecs. Planes are
//! a partition of positions, so the estimate does not depend on where values
//! start within the chunk: a chunk that begins mid-value only permutes the
//! planes.

use super::Codec;

/// Byte histograms of a chunk, one per position class `i % 4`.
pub struct Estimate {
    hist: [[u32; 256]; 4],
}

impl Estimate {
    /// Estimated entropy-coded size in bytes of plane `plane` of `width`.
    pub fn plane_bytes(&self, width: usize, plane: usize) -> f64 {
        let mut h = [0u32; 256];
        for class in (plane..4).step_by(width) {
            for (a, b) in h.iter_mut().zip(self.hist[class].iter()) {
                *a += *b;
            }
        }
        entropy_bytes(&h)
    }

    /// Estimated size of all planes of `width` together.
    pub fn total_bytes(&self, width: usize) -> f64 {
        (0..width).map(|p| self.plane_bytes(width, p)).sum()
    }
}

/// Order-0 entropy of a histogram, in bytes.
fn entropy_bytes(h: &[u32; 256]) -> f64 {
    let n: u64 = h.iter().map(|&c| c as u64).sum();
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let mut sum = 0.0;
    for &c in h {
        if c > 0 {
            let c = c as f64;
            sum += c * c.log2();
        }
    }
    (n * n.log2() - sum) / 8.0
}

/// Fills the four class histograms of `raw`.
pub(crate) fn estimate(raw: &[u8]) -> Estimate {
    let mut hist = [[0u32; 256]; 4];
    let mut quads = raw.chunks_exact(4);
    for q in &mut quads {
        hist[0][q[0] as usize] += 1;
        hist[1][q[1] as usize] += 1;
        hist[2][q[2] as usize] += 1;
        hist[3][q[3] as usize] += 1;
    }
    for (i, &b) in quads.remainder().iter().enumerate() {
        hist[i][b as usize] += 1;
    }
    Estimate { hist }
}

/// Picks a codec from the estimate: planes when they beat the plain stream
/// by 3% or more, zstd when the plain stream has exploitable redundancy, raw
/// otherwise (order-0 entropy within `min_saving` of 8 bits per byte).
pub fn choose(est: &Estimate, len: usize, min_saving: f64) -> Codec {
    let e1 = est.total_bytes(1);
    let e2 = est.total_bytes(2);
    let e4 = est.total_bytes(4);
    if e4 < 0.97 * e1.min(e2) && e4 < len as f64 * (1.0 - min_saving) {
        Codec::Planes { width: 4 }
    } else if e2 < 0.97 * e1 && e2 < len as f64 * (1.0 - min_saving) {
        Codec::Planes { width: 2 }
    } else if e1 < len as f64 * (1.0 - min_saving / 2.0) {
        Codec::Zstd
    } else {
        Codec::Raw
    }
}

/// True when a plane's estimate says compression would not pay.
pub(crate) fn plane_incompressible(est_bytes: f64, len: usize) -> bool {
    est_bytes > len as f64 * 0.985
}
