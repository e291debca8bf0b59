//! Async adapters for servers on tokio (feature `tokio`).
//!
//! - [`AsyncBlobReader`]: `tokio::io::AsyncRead + AsyncSeek` over a stored
//!   blob, and [`AsyncBlobReader::into_stream`], a [`BlobStream`] of
//!   [`bytes::Bytes`] for hyper and axum response bodies.
//! - [`AsyncBlobWriter`]: `tokio::io::AsyncWrite` into a new blob, then
//!   [`AsyncBlobWriter::finish`] (its id) or [`AsyncBlobWriter::stage`].
//!
//! The engine's I/O blocks (RocksDB, pack files, fsync), so each adapter
//! owns ONE worker thread that holds the blocking [`crate::BlobReader`] or
//! [`crate::BlobWriter`]; the runtime's threads only move [`bytes::Bytes`]
//! through bounded channels. A full channel makes the async side wait
//! (`Poll::Pending`), so memory per adapter is bounded whatever the blob's
//! size and however slow the other side is: [`READ_AHEAD`] pieces of
//! [`PIECE`] bytes for a reader, [`WRITE_QUEUE`] pieces plus the one being
//! filled for a writer. Dropping an adapter stops its worker (the worker
//! drops its reader, or its writer, keeping nothing of an unfinished
//! upload).
//!
//! Errors of the engine come back as `std::io::Error`s that wrap the
//! crate's [`crate::Error`] (its variant is kept: an integrity failure is
//! `InvalidData` wrapping `Error::ChecksumMismatch` or `Error::Corrupt`).

mod reader;
mod writer;

pub use reader::{AsyncBlobReader, BlobStream};
pub use writer::AsyncBlobWriter;

/// Bytes in one piece passed between a worker and the async side.
pub const PIECE: usize = 1 << 20;
/// Pieces a reader's worker reads ahead of the async side (at most).
pub const READ_AHEAD: usize = 4;
/// Pieces a writer queues for its worker before `poll_write` waits.
pub const WRITE_QUEUE: usize = 4;
