//! `codec::encode` / `encode_with` then `decode` must give the input back.
//!
//! Input: `[level byte, min_saving byte, raw…]`: zstd level in -2..=5,
//! `min_saving` in 0..=0.5. The auto codec (what the store uses) is checked
//! first, then every codec forced through `encode_with`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::internals::codec::{decode, encode, encode_with, Codec, EncodeOptions};

fn round_trip(codec: Codec, stored: &[u8], raw: &[u8]) {
    assert_eq!(Codec::from_bytes(codec.to_bytes()).unwrap(), codec);
    let mut out = Vec::new();
    if let Err(e) = decode(codec, stored, raw.len(), &mut out) {
        panic!("{codec:?}: cannot decode its own encoding of {} bytes: {e}", raw.len());
    }
    assert!(out == raw, "{codec:?}: round trip changed the data");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let level = (data[0] % 8) as i32 - 2;
    let min_saving = data[1] as f64 / 255.0 * 0.5;
    let raw = &data[2..];
    let opts = EncodeOptions {
        level,
        plane_level: level,
        plane_min_match: 3 + (data[0] >> 3) as u32 % 5,
        min_saving,
    };

    let mut stored = Vec::new();
    let codec = encode(raw, &opts, &mut stored);
    if raw.is_empty() || codec == Codec::Raw {
        assert_eq!(codec, Codec::Raw);
        assert!(stored == raw, "a raw encoding must be the input itself");
    } else {
        assert!(
            stored.len() as f64 <= raw.len() as f64 * (1.0 - min_saving),
            "{codec:?} kept {} of {} bytes, saving less than {min_saving}",
            stored.len(),
            raw.len()
        );
    }
    round_trip(codec, &stored, raw);

    for codec in [
        Codec::Raw,
        Codec::Zstd,
        Codec::Planes { width: 2 },
        Codec::Planes { width: 4 },
    ] {
        if encode_with(raw, codec, &opts, &mut stored) {
            round_trip(codec, &stored, raw);
        }
    }
});
