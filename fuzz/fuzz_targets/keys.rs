//! `modelvault::fuzz_api::keys`: hostile bytes into the decoder; whatever it
//! accepts must re-encode to the same value (see src/fuzz_api.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelvault::fuzz_api::keys(data);
});
