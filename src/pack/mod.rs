//! Pack files: append-only files of chunk records, about 64 MiB each.
//!
//! Chunk bytes never go through RocksDB. A writer appends records to the
//! current pack and fsyncs it before any index entry pointing into it is
//! committed; readers fetch one record by position with `pread`.

mod format;
#[cfg(feature = "store")]
pub(crate) mod io;
#[cfg(feature = "store")]
mod reader;
#[cfg(feature = "store")]
mod writer;

pub(crate) use format::ChunkLoc;
pub use format::PACK_HEADER_LEN;
#[cfg(feature = "store")]
pub(crate) use format::{pack_file_name, parse_pack_file_name};
pub(crate) use format::{PackHeader, RecordHeader, RECORD_HEADER_LEN};
pub(crate) use format::{MAX_RAW_CHUNK, MAX_STORED_CHUNK};
#[cfg(feature = "store")]
pub(crate) use reader::{PackReader, MAX_OPEN_PACKS};
#[cfg(feature = "store")]
pub(crate) use writer::{sync_dir, Lane, PackWriter};
