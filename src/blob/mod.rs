//! Blobs: a file's content as an ordered list of chunks, streamed in through
//! [`BlobWriter`] (`std::io::Write`) and out through [`BlobReader`]
//! (`std::io::Read + Seek`).

mod base;
mod concat;
mod core;
mod pipeline;
mod prefetch;
mod reader;
mod reverse;
mod staged;
mod tensor;
mod writer;
#[cfg(test)]
mod writer_tests;

pub(crate) use concat::apply_concat;
pub(crate) use core::{copy_into, Config, Core};
pub(crate) use pipeline::Pool;
pub use reader::BlobReader;
pub use reverse::ReverseDeltaReport;
pub use staged::StagedBlob;
pub(crate) use staged::{abandon_sessions, check_same_store, GroupedBlob};
pub use writer::{BlobWriter, UploadId};
