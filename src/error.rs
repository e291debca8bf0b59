//! The crate's one error type.
//!
//! Every variant carries the context a user needs to act on it: the path for
//! I/O errors, the object and position for integrity errors, the offending
//! value for invalid input. Integrity errors carry evidence (expected and
//! actual digests, pack and offset), never just a message.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::id::Hash32;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in modelvault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the file it happened on.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The metadata database (RocksDB) reported an error.
    #[error("metadata database error: {0}")]
    Db(String),

    /// The directory is not a modelvault store.
    #[error("{path} is not a modelvault store: {reason}")]
    NotAStore {
        /// The directory that was opened.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },

    /// Another process (or another handle in this process) holds the store.
    #[error("store {path} is locked by another process ({holder})")]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// What the lock file says about its holder (pid, host), if anything.
        holder: String,
    },

    /// A write was asked of a store opened with `Store::open_read_only`
    /// (beside the writer that holds it): refused, nothing changed.
    #[error("the store is open read-only: {what} refused (open it normally, once no other process holds it, to write)")]
    ReadOnly {
        /// The operation refused, e.g. `blob upload` or `gc`.
        what: &'static str,
    },

    /// The store was written by a newer (or unknown) format version.
    #[error("unsupported {what} format version {found} (this build reads up to {supported})")]
    UnsupportedVersion {
        /// Which record or file.
        what: &'static str,
        /// The version found on disk.
        found: u32,
        /// The highest version this build understands.
        supported: u32,
    },

    /// Bytes read back do not hash to the address they were stored under.
    #[error(
        "checksum mismatch in {object} at byte offset {offset}: chunk expected {expected}, \
         got {actual} (pack {pack}, pack offset {pack_offset})"
    )]
    ChecksumMismatch {
        /// What was being read (e.g. `blob 3fa2…`).
        object: String,
        /// The logical byte offset within that object where the bad chunk starts.
        offset: u64,
        /// The chunk address that was expected.
        expected: Hash32,
        /// The hash of the bytes actually decoded.
        actual: Hash32,
        /// The pack file holding the chunk.
        pack: u32,
        /// The byte offset of the chunk record within the pack.
        pack_offset: u64,
    },

    /// A record or file on disk does not have the shape it must have.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which structure (e.g. `pack 00000003 record at 4096`).
        what: String,
        /// What exactly is wrong with it.
        detail: String,
    },

    /// A named object does not exist.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// The kind of object (`model`, `blob`, `version`, `file`...).
        kind: &'static str,
        /// The name or id asked for.
        name: String,
    },

    /// A caller-supplied value was rejected.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// What kind of value (e.g. `model name`, `path`).
        what: &'static str,
        /// The value, as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A query did not parse.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),

    /// The object is final (a finalized model, a finished experiment) and
    /// refuses every change.
    #[error("{what} is {state}: it can no longer be changed")]
    Immutable {
        /// The object, e.g. `experiment 0190…`.
        what: String,
        /// Its state, e.g. `completed` or `finalized`.
        state: String,
    },

    /// The object already exists where a new one was asked for.
    #[error("{what} already exists")]
    Exists {
        /// What, e.g. `alias champion of model 0190…`.
        what: String,
    },

    /// An earlier write failure left the store in a state where further
    /// writes could lose data; reopen the store to recover.
    #[error("store is poisoned by an earlier write failure ({0}); reopen it")]
    Poisoned(String),

    /// A bug in modelvault, caught where it happened (a worker thread's
    /// panic, say): the operation failed and changed nothing visible.
    #[error("internal error: {0}")]
    Internal(String),

    /// An object bound to one open store (a staged blob, a version upload)
    /// was handed to another; it belongs to the store it was made by.
    #[error("{what} belongs to {owner}, not to {target}")]
    WrongStore {
        /// The object, e.g. `staged blob 3fa2…`.
        what: String,
        /// The store that made it (id and directory).
        owner: String,
        /// The store it was handed to (id and directory).
        target: String,
    },
}

impl Error {
    /// The inverse of the `io::Error`s blob readers and writers return from
    /// their `Read`/`Write`/`Seek` methods: the crate error one carries, or
    /// else an I/O error on `what`.
    pub fn from_io(what: &str, e: io::Error) -> Error {
        match e.downcast::<Error>() {
            Ok(inner) => inner,
            Err(e) => Error::io(what, e),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl fmt::Display, detail: impl fmt::Display) -> Self {
        Error::Corrupt {
            what: what.to_string(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn invalid(
        what: &'static str,
        value: impl fmt::Display,
        reason: impl fmt::Display,
    ) -> Self {
        Error::InvalidInput {
            what,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl fmt::Display) -> Self {
        Error::NotFound {
            kind,
            name: name.to_string(),
        }
    }

    /// True if this error reports damaged or inconsistent stored data.
    pub fn is_integrity(&self) -> bool {
        matches!(self, Error::ChecksumMismatch { .. } | Error::Corrupt { .. })
    }

    /// True if the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

#[cfg(feature = "store")]
impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Db(e.into_string())
    }
}

/// Turns an [`Error`] into an [`io::Error`] for the `Read`/`Write`/`Seek`
/// trait methods, keeping the original as the inner error.
pub(crate) fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::Interrupted => source,
        e => {
            let kind = match &e {
                Error::ChecksumMismatch { .. } | Error::Corrupt { .. } => {
                    io::ErrorKind::InvalidData
                }
                Error::NotFound { .. } => io::ErrorKind::NotFound,
                Error::InvalidInput { .. } => io::ErrorKind::InvalidInput,
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, e)
        }
    }
}
