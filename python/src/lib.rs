//! `modelvault._modelvault`: the native half of the `modelvault` Python
//! package. A thin layer over the engine's public API: every call that does
//! I/O or waits for a commit releases the GIL (`py.allow_threads`), every
//! engine error becomes an exception of the `modelvault.Error` hierarchy
//! carrying the engine's message unchanged, and records cross the boundary
//! as plain Python values (dicts, lists, str, int, float, bool). The
//! ClearML-like classes users see are written in Python on top of this
//! (`python/modelvault/__init__.py`).
//!
//! Where things are:
//! - `errors`: the exception hierarchy and the mapping of engine errors.
//! - `convert`: Python values <-> registry values, records, ids.
//! - `store`: `NativeStore`, opening a store and its maintenance.
//! - `experiment`, `model`: the registry (the store's methods that create
//!   and find them, and their handles).
//! - `blobs`: blob and tensor reads, the blob reader and writer objects.
//! - `objects`: the S3 object namespace.
//!
//! `NativeStore`'s Python methods are spread over these modules by area
//! (PyO3's `multiple-pymethods`); each module adds its own `#[pymethods]`.

mod blobs;
mod convert;
mod errors;
mod experiment;
mod model;
mod objects;
mod store;

use pyo3::prelude::*;

use errors::{
    AlreadyExists, Error, Immutable, IntegrityError, InvalidInput, Locked, NotFound, ReadOnly,
};

#[pymodule]
fn _modelvault(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Immutable", py.get_type::<Immutable>())?;
    m.add("Locked", py.get_type::<Locked>())?;
    m.add("ReadOnly", py.get_type::<ReadOnly>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add_class::<store::NativeStore>()?;
    m.add_class::<experiment::NativeExperiment>()?;
    m.add_class::<model::NativeModel>()?;
    m.add_class::<blobs::NativeReader>()?;
    m.add_class::<blobs::NativeWriter>()?;
    Ok(())
}
