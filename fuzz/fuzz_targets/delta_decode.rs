//! `codec::delta::decode_delta` and `delta_base` on arbitrary stored bytes and
//! bases: never a panic, never more output than `raw_len`, an Ok result is
//! exactly `raw_len` bytes, and the result does not depend on the output
//! buffer's old content. Inputs that are valid deltas round-trip: a delta
//! encoded from the input decodes back to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::internals::chunking::PlaneHint;
use modelvault::internals::codec::delta::{decode_delta, delta_base, encode_delta};
use modelvault::internals::codec::EncodeOptions;
use modelvault::Hash32;

const MAX_RAW_LEN: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let raw_len = u16::from_le_bytes([data[0], data[1]]) as usize * 16 % (MAX_RAW_LEN + 1);
    let split = (data[2] as usize * data.len() / 256).max(3);
    let (base, stored) = data[3..].split_at((split - 3).min(data.len() - 3));

    let mut out = Vec::new();
    let res = decode_delta(stored, base, raw_len, &mut out);
    if res.is_ok() {
        assert_eq!(out.len(), raw_len);
        assert!(delta_base(stored).is_ok(), "decoded without a valid header");
    } else {
        assert!(res.as_ref().unwrap_err().is_integrity());
    }
    assert!(out.capacity() <= raw_len.max(8) + 4096, "capacity {}", out.capacity());
    let mut again = vec![0x5Au8; 32];
    let res2 = decode_delta(stored, base, raw_len, &mut again);
    assert_eq!(res.is_ok(), res2.is_ok());
    if res.is_ok() {
        assert_eq!(again, out);
    }

    // The input as a chunk against the base: whatever is written decodes back.
    let raw = stored;
    let hint = match data[2] & 3 {
        0 => PlaneHint::Estimate,
        1 => PlaneHint::Flat,
        2 => PlaneHint::Width(2),
        _ => PlaneHint::Width(4),
    };
    let id = Hash32([data[0]; 32]);
    let mut enc = Vec::new();
    if encode_delta(raw, base, &id, hint, &EncodeOptions::default(), &mut enc).is_some() {
        assert_eq!(delta_base(&enc).unwrap(), id);
        let mut back = Vec::new();
        decode_delta(&enc, base, raw.len(), &mut back).unwrap();
        assert_eq!(back, raw);
    }
});
