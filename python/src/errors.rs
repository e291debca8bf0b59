//! The `modelvault.Error` exception hierarchy and the mapping of engine
//! errors (and the `io::Error`s of blob readers and writers) onto it.

use std::io;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _modelvault,
    Error,
    PyException,
    "Base class of every modelvault error."
);
create_exception!(
    _modelvault,
    NotFound,
    Error,
    "The model, experiment, version, file, blob, object or tensor asked for does not exist."
);
create_exception!(
    _modelvault,
    Immutable,
    Error,
    "The object is final (a finalized model, a finished experiment) and refuses every change."
);
create_exception!(
    _modelvault,
    Locked,
    Error,
    "Another process (or another handle in this process) holds the store."
);
create_exception!(
    _modelvault,
    ReadOnly,
    Error,
    "A write was asked of a store opened read-only."
);
create_exception!(
    _modelvault,
    IntegrityError,
    Error,
    "Stored data failed verification (checksum mismatch or a corrupt record)."
);
create_exception!(
    _modelvault,
    InvalidInput,
    Error,
    "A value given by the caller was rejected (bad name, path, query, status...)."
);
create_exception!(
    _modelvault,
    AlreadyExists,
    Error,
    "The object already exists where a new one was asked for."
);

/// The result of every binding: an exception on failure.
pub(crate) type R<T> = Result<T, PyErr>;

/// Maps an engine error to the exception of its kind; the message is the
/// engine's own (`Display`), so the evidence (paths, digests, offsets,
/// the offending value) reaches Python unchanged.
pub(crate) fn to_py(e: modelvault::Error) -> PyErr {
    use modelvault::Error as E;
    let msg = e.to_string();
    match e {
        E::NotFound { .. } => NotFound::new_err(msg),
        E::Immutable { .. } => Immutable::new_err(msg),
        E::Locked { .. } => Locked::new_err(msg),
        E::ReadOnly { .. } => ReadOnly::new_err(msg),
        E::ChecksumMismatch { .. } | E::Corrupt { .. } => IntegrityError::new_err(msg),
        E::InvalidInput { .. } | E::Query(_) => InvalidInput::new_err(msg),
        E::Exists { .. } => AlreadyExists::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// An `io::Error` from a blob reader or writer: the engine error inside it
/// when there is one (so a checksum mismatch stays an `IntegrityError`),
/// else a plain I/O error naming `what`.
pub(crate) fn io_to_py(what: &str, e: io::Error) -> PyErr {
    to_py(modelvault::Error::from_io(what, e))
}

/// An engine result as a binding result.
pub(crate) fn map<T>(r: modelvault::Result<T>) -> R<T> {
    r.map_err(to_py)
}
