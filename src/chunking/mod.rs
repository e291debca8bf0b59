//! Chunking: where a byte stream is cut into chunks.
//!
//! Content-defined cut points (FastCDC) make a renamed, shifted or partly
//! changed file share most of its chunks with the original. [`tensors`] reads the
//! tensor layout of safetensors and GGUF files, so cuts can follow tensor boundaries.

mod cdc;
pub mod tensors;

pub use cdc::{CdcParams, Chunker};
