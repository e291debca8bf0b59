//! Pack files: append-only files of chunk records, about 64 MiB each.
//!
//! Chunk bytes never go through RocksDB. A writer appends records to the
//! current pack and fsyncs it before any index entry pointing into it is
//! committed; readers fetch one record by position with `pread`.

mod format;
mod reader;
mod writer;

pub(crate) use format::MAX_RAW_CHUNK;
pub(crate) use format::{pack_file_name, parse_pack_file_name, PackHeader, RecordHeader};
pub use format::{ChunkLoc, PACK_HEADER_LEN};
pub(crate) use reader::PackReader;
pub(crate) use writer::{sync_dir, PackWriter};
