//! Content-defined chunking over a streaming buffer, on top of `fastcdc`'s
//! 2020 Gear-hash cut function.

use fastcdc::v2020::{self, Normalization};

/// Chunk size bounds for content-defined chunking (see
/// `Options::chunking`).
///
/// Deliberately exhaustive: the three bounds are all FastCDC takes, and
/// users set them with a struct literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CdcParams {
    /// No chunk is shorter than this, except the last one of a stream.
    pub min: usize,
    /// The target average.
    pub avg: usize,
    /// No chunk is longer than this.
    pub max: usize,
}

impl Default for CdcParams {
    /// 16 KiB / 64 KiB / 128 KiB.
    fn default() -> Self {
        CdcParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 128 * 1024,
        }
    }
}

/// Finds content-defined cut points.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: CdcParams,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// A chunker with the given bounds.
    ///
    /// # Panics
    /// If the bounds are outside what FastCDC supports (min 64 B..=1 MiB,
    /// avg 256 B..=4 MiB, max 1 KiB..=16 MiB, min ≤ avg ≤ max).
    pub fn new(params: CdcParams) -> Self {
        if let Err(e) = Self::check(&params) {
            panic!("{e}");
        }
        let (mask_s, mask_l) = v2020::select_masks(params.avg, Normalization::Level1);
        Chunker {
            params,
            mask_s,
            mask_l,
        }
    }

    /// Checks bounds against what FastCDC supports (even sizes; min 64 B..=1
    /// MiB, avg 256 B..=4 MiB, max 1 KiB..=16 MiB, min ≤ avg ≤ max).
    pub fn check(params: &CdcParams) -> Result<(), String> {
        let ok = (64..=1 << 20).contains(&params.min)
            && (256..=4 << 20).contains(&params.avg)
            && (1024..=16 << 20).contains(&params.max)
            && params.min <= params.avg
            && params.avg <= params.max
            && params.min.is_multiple_of(2)
            && params.avg.is_multiple_of(2)
            && params.max.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(format!("chunk size bounds out of range: {params:?}"))
        }
    }

    /// The bounds this chunker cuts with.
    pub fn params(&self) -> CdcParams {
        self.params
    }

    /// The length of the chunk that starts at `data[0]`, or `None` when more
    /// bytes are needed to decide. With `eof` set, the data is the end of the
    /// stream and a non-empty `data` always yields a cut.
    pub fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let window = &data[..data.len().min(self.params.max)];
        let (_, len) = v2020::cut(
            window,
            self.params.min,
            self.params.avg,
            self.params.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        let len = len.clamp(1, window.len());
        // A cut at the very end of a short window only means "ran out of
        // data": it is real only at the end of the stream or at `max`.
        if len == data.len() && len < self.params.max && !eof {
            return None;
        }
        Some(len)
    }

    /// All chunk lengths of a complete in-memory buffer.
    pub fn cuts(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(n) = self.next_cut(data, true) {
            out.push(n);
            data = &data[n..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn cuts_respect_bounds_and_cover_input() {
        let c = Chunker::new(CdcParams::default());
        let data = noise(3 << 20, 1);
        let cuts = c.cuts(&data);
        assert_eq!(cuts.iter().sum::<usize>(), data.len());
        let p = c.params();
        for &n in &cuts[..cuts.len() - 1] {
            assert!(n >= p.min && n <= p.max, "chunk of {n}");
        }
        let avg = data.len() / cuts.len();
        assert!(avg > 32 * 1024 && avg < 110 * 1024, "average {avg}");
    }

    #[test]
    fn streaming_agrees_with_whole_buffer() {
        let c = Chunker::new(CdcParams::default());
        let data = noise(1 << 20, 2);
        let whole = c.cuts(&data);
        // Feed in odd-sized pieces, as a writer would.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for piece in data.chunks(7777) {
            buf.extend_from_slice(piece);
            while let Some(n) = c.next_cut(&buf, false) {
                got.push(n);
                buf.drain(..n);
            }
        }
        while let Some(n) = c.next_cut(&buf, true) {
            got.push(n);
            buf.drain(..n);
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn insertion_at_front_resynchronises() {
        let c = Chunker::new(CdcParams::default());
        let a = noise(2 << 20, 3);
        let mut b = vec![0x55];
        b.extend_from_slice(&a);
        let set = |d: &[u8]| {
            let mut off = 0;
            c.cuts(d)
                .into_iter()
                .map(|n| {
                    off += n;
                    blake3::hash(&d[off - n..off])
                })
                .collect::<std::collections::HashSet<_>>()
        };
        let (sa, sb) = (set(&a), set(&b));
        let new = sb.difference(&sa).count();
        assert!(new <= 3, "{new} new chunks after a one-byte insert");
    }
}
