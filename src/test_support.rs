//! Deterministic test data shared by the unit tests of several layers.
//! Outside the layer order (like `fault_tests`): it uses nothing of the
//! crate.

/// `len` pseudo-random bytes from `seed` (xorshift64): incompressible, and
/// the same on every run.
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `n` little-endian f32 values from `seed` (xorshift32), small and
/// centred on 0 like trained weights, so their exponent bytes compress.
pub(crate) fn floats(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n * 4);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let f = ((x as f32) / (u32::MAX as f32) - 0.5) * 0.02;
        v.extend_from_slice(&f.to_le_bytes());
    }
    v
}
