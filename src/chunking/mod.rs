//! Chunking: where a byte stream is cut into chunks.
//!
//! Content-defined cut points (FastCDC) make a renamed, shifted or partly
//! changed file share most of its chunks with the original. [`tensors`] (the
//! formats layer's tensor layouts, re-exported) reads the tensor layout of
//! safetensors and GGUF files, so cuts can follow tensor boundaries; [`aware`]
//! does so: its [`Cutter`] cuts at tensor boundaries, uses CDC inside tensors,
//! and tags each chunk with a byte-plane hint for the codec.

pub mod aware;
mod cdc;

pub use aware::{Cut, Cutter, PlaneHint};
pub use cdc::{CdcParams, Chunker};

/// Tensor layouts of safetensors and GGUF files (the parsers live in the
/// formats layer; this path is kept for callers).
pub use crate::formats::tensor as tensors;
