//! The native store handle (`NativeStore`): opening a store, its identity,
//! and maintenance (catch-up, sync, stats, verify, gc, prune, releasing a
//! blob hold). Its registry, blob and object methods are in `experiment`,
//! `model`, `blobs` and `objects`.

use std::time::Duration;

use modelvault::{GcOptions, Retention, Store, VerifyOptions};
use pyo3::prelude::*;

use crate::convert::{blob_id, record};
use crate::errors::{map, InvalidInput, R};

/// The native store handle. One per store directory per process: the
/// Python side caches them (`modelvault.open`).
#[pyclass(module = "modelvault._modelvault", frozen, weakref)]
pub(crate) struct NativeStore {
    pub(crate) store: Store,
}

#[pymethods]
impl NativeStore {
    #[new]
    #[pyo3(signature = (path, create = true, read_only = false))]
    fn new(py: Python<'_>, path: std::path::PathBuf, create: bool, read_only: bool) -> R<Self> {
        let store = py.allow_threads(|| {
            if read_only {
                Store::open_read_only(&path)
            } else if create {
                Store::create(&path)
            } else {
                Store::open(&path)
            }
        });
        Ok(NativeStore { store: map(store)? })
    }

    /// True if `path` holds a store (its marker file); takes no lock.
    #[staticmethod]
    fn exists(path: std::path::PathBuf) -> bool {
        Store::exists(path)
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.store.path().to_path_buf()
    }

    #[getter]
    fn id(&self) -> String {
        self.store.id().to_string()
    }

    #[getter]
    fn read_only(&self) -> bool {
        self.store.is_read_only()
    }

    fn catch_up(&self, py: Python<'_>) -> R<()> {
        map(py.allow_threads(|| self.store.catch_up()))
    }

    fn sync(&self, py: Python<'_>) -> R<()> {
        map(py.allow_threads(|| self.store.sync()))
    }

    fn stats(&self, py: Python<'_>) -> R<PyObject> {
        let s = py.allow_threads(|| self.store.stats());
        record(py, &s)
    }

    #[pyo3(signature = (read_data = true))]
    fn verify(&self, py: Python<'_>, read_data: bool) -> R<PyObject> {
        let r =
            map(py.allow_threads(|| self.store.verify(VerifyOptions::new().read_data(read_data))))?;
        record(py, &r)
    }

    #[pyo3(signature = (compact_below = None, expire_uploads_after = None, compact_metadata = false))]
    fn gc(
        &self,
        py: Python<'_>,
        compact_below: Option<f64>,
        expire_uploads_after: Option<f64>,
        compact_metadata: bool,
    ) -> R<PyObject> {
        let mut opts = GcOptions::new().compact_metadata(compact_metadata);
        if let Some(f) = compact_below {
            opts = opts.compact_below(f);
        }
        if let Some(s) = expire_uploads_after {
            opts = opts.expire_uploads_after(seconds("expire_uploads_after", s)?);
        }
        let r = map(py.allow_threads(|| self.store.gc(&opts)))?;
        record(py, &r)
    }

    #[pyo3(signature = (keep_last = None, keep_within = None, dry_run = true, model = None))]
    fn prune(
        &self,
        py: Python<'_>,
        keep_last: Option<u32>,
        keep_within: Option<f64>,
        dry_run: bool,
        model: Option<&str>,
    ) -> R<PyObject> {
        let mut rule = Retention::new();
        if let Some(n) = keep_last {
            rule = rule.keep_last(n);
        }
        if let Some(s) = keep_within {
            rule = rule.keep_within(seconds("keep_within", s)?);
        }
        let r = map(py.allow_threads(|| match model {
            Some(spec) => self.store.resolve_model(spec)?.0.prune(&rule, dry_run),
            None => self.store.prune_all(&rule, dry_run),
        }))?;
        record(py, &r)
    }

    fn release_blob(&self, py: Python<'_>, blob: &str) -> R<()> {
        let id = blob_id(blob)?;
        map(py.allow_threads(|| self.store.release_blob(&id)))
    }
}

/// A duration given in seconds; a negative, NaN or infinite value is
/// rejected naming `what`.
fn seconds(what: &'static str, s: f64) -> R<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        InvalidInput::new_err(format!(
            "invalid {what} {s}: must be a non-negative number of seconds"
        ))
    })
}
