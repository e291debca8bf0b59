//! Magnitude split of 32-bit integers: the payload of a delta whose image is
//! the zigzag difference of fp32 bit patterns (transform 4 of
//! [`super::delta`]).
//!
//! A value nudged by a small relative step moves its bit pattern by an
//! integer of some 13 to 16 bits whose low bits are noise. Byte planes cut
//! that integer at fixed byte boundaries, so the plane holding its leading
//! bits mixes values of different magnitudes and zstd's literal coding pays
//! for the mix. Here each integer `z` is split where its own leading one is:
//!
//! * a *symbol* byte: `z` itself when `z < 4`; else, with `L` the bit length
//!   of `z` (3 ..= 32), `4 + 4·(L − 3) + t`, `t` the two bits below the
//!   leading one (symbols 4 ..= 123);
//! * *tail bits*: the `L − 3` bits below those (none when `z < 4`).
//!
//! Symbols carry the magnitude and are entropy coded (zstd); tail bits are
//! close to uniform and stored as they are. On a training step's fp32 Adam
//! moments this costs 0.490 of their size against 0.493 for byte planes in
//! 128 KiB chunks (the information estimate is 0.487; `examples/delta_eval`).
//!
//! Layout, for `n` integers (all little-endian):
//!
//! ```text
//! 0..4      S: u32, length of the symbol frame
//! 4..4+S    zstd frame of the n symbol bytes
//! then      the tail bits of integer 0, 1, … n−1, each least significant bit
//!           first, packed from bit 0 of each byte on; the last byte's unused
//!           high bits are 0
//! ```
//!
//! The caller knows `n` and where the payload ends; [`decode`] reports how
//! many bytes it used.

use super::zstd_ctx;
use crate::error::{Error, Result};

/// Largest symbol: bit length 32, both bits below the leading one set.
const MAX_SYMBOL: u8 = 4 + 4 * 29 + 3;

/// Per symbol: the number of tail bits and the value without them.
const SYMBOLS: [(u32, u32); 256] = {
    let mut t = [(0u32, 0u32); 256];
    let mut sym = 0;
    while sym <= MAX_SYMBOL as usize {
        t[sym] = if sym < 4 {
            (0, sym as u32)
        } else {
            let len = (sym as u32 - 4) / 4 + 3;
            let top = (sym as u32 - 4) % 4;
            (len - 3, (1 << (len - 1)) | (top << (len - 3)))
        };
        sym += 1;
    }
    t
};

/// Symbol and tail-bit count of `z`.
fn split(z: u32) -> (u8, u32) {
    if z < 4 {
        return (z as u8, 0);
    }
    let len = 32 - z.leading_zeros();
    let top = (z >> (len - 3)) & 3;
    ((4 + 4 * (len - 3) + top) as u8, len - 3)
}

/// Appends the split of the little-endian u32s of `words` (a multiple of 4
/// bytes) to `out`. Returns false, `out` unchanged, if zstd fails.
pub(crate) fn encode(words: &[u8], tuning: zstd_ctx::Tuning, out: &mut Vec<u8>) -> bool {
    debug_assert_eq!(words.len() % 4, 0);
    let n = words.len() / 4;
    let mut symbols = Vec::with_capacity(n);
    let mut tail = Vec::with_capacity(n * 2);
    let (mut acc, mut bits) = (0u64, 0u32);
    for w in words.chunks_exact(4) {
        let z = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let (sym, k) = split(z);
        symbols.push(sym);
        acc |= u64::from(z & ((1u32 << k) - 1)) << bits;
        bits += k;
        if bits >= 32 {
            tail.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            bits -= 32;
        }
    }
    let rest = (bits as usize).div_ceil(8);
    tail.extend_from_slice(&acc.to_le_bytes()[..rest]);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if !zstd_ctx::compress(&symbols, tuning, out) {
        out.truncate(start);
        return false;
    }
    let s = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&s.to_le_bytes());
    out.extend_from_slice(&tail);
    true
}

/// Decodes `n` integers from the start of `stored`, appending their 4·n
/// bytes to `out`. Returns the number of bytes of `stored` used.
///
/// # Errors
/// [`Error::Corrupt`] for a short payload, a symbol frame that does not
/// decode to exactly `n` symbols, a symbol above 123, tail bits running past
/// the end, or unused bits of the last tail byte that are not 0.
pub(crate) fn decode(stored: &[u8], n: usize, out: &mut Vec<u8>) -> Result<usize> {
    let bad = |detail: String| Error::corrupt("split32 payload", detail);
    let Some((s, rest)) = stored.split_first_chunk::<4>() else {
        return Err(bad(format!(
            "{} bytes, shorter than its header",
            stored.len()
        )));
    };
    let s = u32::from_le_bytes(*s) as usize;
    if s > rest.len() {
        return Err(bad(format!(
            "symbol frame of {s} bytes, {} remain",
            rest.len()
        )));
    }
    let (frame, tail) = rest.split_at(s);
    let mut symbols = Vec::new();
    zstd_ctx::decompress(frame, n, &mut symbols).map_err(|e| bad(format!("symbols: {e}")))?;
    if symbols.len() != n {
        return Err(bad(format!("{} symbols, expected {n}", symbols.len())));
    }
    if let Some(&sym) = symbols.iter().find(|&&sym| sym > MAX_SYMBOL) {
        return Err(bad(format!("symbol {sym} is above {MAX_SYMBOL}")));
    }
    let start = out.len();
    out.resize(start + 4 * n, 0);
    let (mut acc, mut bits, mut used) = (0u64, 0u32, 0usize);
    for (dst, &sym) in out[start..].chunks_exact_mut(4).zip(&symbols) {
        let (k, lead) = SYMBOLS[sym as usize];
        if bits < k {
            // Refill: four bytes at once while they last, then byte by byte.
            if let Some(w) = tail.get(used..used + 4) {
                acc |= u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])) << bits;
                used += 4;
                bits += 32;
            } else {
                while bits < k {
                    let Some(&b) = tail.get(used) else {
                        out.truncate(start);
                        return Err(bad("tail bits run past the end".into()));
                    };
                    acc |= u64::from(b) << bits;
                    used += 1;
                    bits += 8;
                }
            }
        }
        let z = lead | (acc & ((1u64 << k) - 1)) as u32;
        acc >>= k;
        bits -= k;
        dst.copy_from_slice(&z.to_le_bytes());
    }
    // `acc` holds the rest of the last byte an element used (its unused
    // high bits, which must be 0), then whole bytes a four-byte refill read
    // ahead: those are not part of the tail.
    used -= (bits / 8) as usize;
    if acc & ((1u64 << (bits % 8)) - 1) != 0 {
        out.truncate(start);
        return Err(bad("unused tail bits are not 0".into()));
    }
    Ok(4 + s + used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TUNING: zstd_ctx::Tuning = zstd_ctx::Tuning {
        level: 1,
        min_match: Some(7),
    };

    fn words(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|z| z.to_le_bytes()).collect()
    }

    #[test]
    fn symbols_follow_the_documented_split() {
        assert_eq!(split(0), (0, 0));
        assert_eq!(split(3), (3, 0));
        // 4 = 0b100: length 3, top bits 00, no tail bits.
        assert_eq!(split(4), (4, 0));
        assert_eq!(split(7), (7, 0));
        // 0b1011_0110: length 8, top bits 01, 5 tail bits.
        assert_eq!(split(0b1011_0110), (4 + 4 * 5 + 1, 5));
        assert_eq!(split(u32::MAX), (MAX_SYMBOL, 29));
    }

    #[test]
    fn extremes_round_trip_and_trailing_bytes_are_not_used() {
        // Repeated: zstd does not take a frame that does not shrink.
        let v = words(&[0, 1, 3, 4, 5, 8, 1 << 13, 12345, u32::MAX, 1 << 31, 7].repeat(40));
        let mut enc = Vec::new();
        assert!(encode(&v, TUNING, &mut enc));
        let used = enc.len();
        enc.extend_from_slice(b"next");
        let mut dec = vec![9];
        assert_eq!(decode(&enc, v.len() / 4, &mut dec).unwrap(), used);
        assert_eq!(dec[1..], v[..]);
    }

    #[test]
    fn hostile_payloads_fail_cleanly() {
        let v = words(
            &(0..1000u32)
                .map(|i| (i * 2654435761) >> 16)
                .collect::<Vec<_>>(),
        );
        let mut enc = Vec::new();
        assert!(encode(&v, TUNING, &mut enc));
        let mut dec = Vec::new();
        // Too few tail bytes, a wrong count, a header only, nothing.
        assert!(decode(&enc[..enc.len() - 1], 1000, &mut dec).is_err());
        assert!(decode(&enc, 999, &mut dec).is_err());
        assert!(decode(&enc, 1001, &mut dec).is_err());
        assert!(decode(&enc[..4], 1000, &mut dec).is_err());
        assert!(decode(&[], 0, &mut dec).is_err());
        // A set unused bit in the last tail byte.
        let mut bad = enc.clone();
        let total_bits: u32 = v
            .chunks_exact(4)
            .map(|w| split(u32::from_le_bytes(w.try_into().unwrap())).1)
            .sum();
        if !total_bits.is_multiple_of(8) {
            *bad.last_mut().unwrap() |= 0x80;
            let err = decode(&bad, 1000, &mut dec).unwrap_err();
            assert!(err.to_string().contains("unused tail bits"), "{err}");
        }
        // A symbol above the largest: a frame of one symbol 124.
        let mut frame = Vec::new();
        assert!(zstd_ctx::compress(&[124u8; 64], TUNING, &mut frame));
        let mut p = (frame.len() as u32).to_le_bytes().to_vec();
        p.extend_from_slice(&frame);
        p.extend_from_slice(&[0xff; 300]);
        let err = decode(&p, 64, &mut dec).unwrap_err();
        assert!(err.to_string().contains("symbol 124"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trips(v in proptest::collection::vec(any::<u32>(), 0..600),
                       shift in 0u32..32) {
            // Shifted right, so that small magnitudes are common too.
            let v: Vec<u32> = v.iter().map(|z| z >> shift).collect();
            let w = words(&v);
            let mut enc = Vec::new();
            if encode(&w, TUNING, &mut enc) {
                let mut dec = Vec::new();
                prop_assert_eq!(decode(&enc, v.len(), &mut dec).unwrap(), enc.len());
                prop_assert_eq!(dec, w);
            }
        }
    }
}
