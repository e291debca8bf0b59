//! The chunking and codec layers as they are inside the store, for the
//! benchmarks (`benches/`), the evaluation examples (`examples/`), the fuzz
//! targets (`fuzz/`) and integration tests that exercise cut points and
//! codecs directly. Hidden from the documentation and NOT part of the stable
//! API: anything here may change or go away in any release, because it is
//! the on-disk format's machinery (codec ids, byte-plane layouts, cut
//! rules), not something a user of [`crate::Store`] needs.
//!
//! What users do need from these layers is re-exported at the crate root:
//! [`crate::CdcParams`] (for [`crate::Options::chunking`]) and the tensor
//! types [`crate::TensorLayout`], [`crate::TensorSpan`], [`crate::DType`].

/// Content-defined chunking and the tensor-aware cutter (`src/chunking/`).
pub mod chunking {
    pub use crate::chunking::*;
}

/// The per-chunk codecs and the chunk-level delta (`src/codec/`).
pub mod codec {
    pub use crate::codec::*;
}
