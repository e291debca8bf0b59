//! Chunking: where a byte stream is cut into chunks.
//!
//! Content-defined cut points (FastCDC) make a renamed, shifted or partly
//! changed file share most of its chunks with the original.

mod cdc;

pub use cdc::{CdcParams, Chunker};
