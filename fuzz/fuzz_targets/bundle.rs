//! `modelvault::fuzz_api::bundle`: hostile bytes into the bundle reader; a
//! bundle it accepts whole must write back to the same bytes (see
//! src/fuzz_api.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelvault::fuzz_api::bundle(data);
});
