//! `modelvault._modelvault`: the native half of the `modelvault` Python
//! package. A thin layer over the engine's public API: every call that does
//! I/O or waits for a commit releases the GIL (`py.allow_threads`), every
//! engine error becomes an exception of the `modelvault.Error` hierarchy
//! carrying the engine's message unchanged, and records cross the boundary
//! as plain Python values (dicts, lists, str, int, float, bool). The
//! ClearML-like classes users see are written in Python on top of this
//! (`python/modelvault/__init__.py`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use modelvault::detect::Framework;
use modelvault::query::{parse as parse_query, Value};
use modelvault::{
    ArtifactBody, BlobId, BlobReader, BlobWriter, DeleteOptions, EntityId, Environment, Experiment,
    GcOptions, ListQuery, Model, NewExperiment, NewModel, ObjectMeta, Retention, RunInfo, Status,
    Store, Stream, VerifyOptions,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

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

/// Maps an engine error to the exception of its kind; the message is the
/// engine's own (`Display`), so the evidence (paths, digests, offsets,
/// the offending value) reaches Python unchanged.
fn to_py(e: modelvault::Error) -> PyErr {
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
fn io_to_py(what: &str, e: io::Error) -> PyErr {
    if e.get_ref().is_some_and(|r| r.is::<modelvault::Error>()) {
        let inner = e.into_inner().expect("checked above");
        return to_py(
            *inner
                .downcast::<modelvault::Error>()
                .expect("checked above"),
        );
    }
    to_py(modelvault::Error::io(what, e))
}

type R<T> = Result<T, PyErr>;

/// A tensor as `Store.tensors` lists it: name, dtype, shape, start, end.
type TensorRow = (String, String, Vec<u64>, u64, u64);

/// An object listing: (key, size) of each object, and the common prefixes.
type Listing = (Vec<(String, u64)>, Vec<String>);

fn map<T>(r: modelvault::Result<T>) -> R<T> {
    r.map_err(to_py)
}

fn entity(s: &str) -> R<EntityId> {
    map(EntityId::from_str(s))
}

fn blob_id(s: &str) -> R<BlobId> {
    map(BlobId::from_str(s))
}

fn framework(s: &str) -> R<Framework> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        InvalidInput::new_err(format!(
            "invalid framework {s:?}: expected one of pytorch, tensorflow, keras, onnx, \
             scikit_learn, xgboost, catboost, fastai, megengine, tfjs, gguf, ctranslate2, \
             safetensors, unknown"
        ))
    })
}

/// A Python value as a registry value: int, float, bool, str, or a list or
/// tuple of those. Anything else (a dict, None, an object) is a TypeError
/// naming the key it was given for.
fn to_value(key: &str, v: &Bound<'_, PyAny>) -> R<Value> {
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(Value::Int).map_err(|_| {
            InvalidInput::new_err(format!(
                "invalid value of {key:?}: integer out of the 64-bit range"
            ))
        });
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(v.extract()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Value::Str(v.extract()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in v.try_iter()? {
            out.push(to_value(key, &item?)?);
        }
        return Ok(Value::List(out));
    }
    // Other numbers (NumPy scalars, say) by the protocols int and float use.
    if v.hasattr("__index__")? {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::Int(i));
        }
    } else if v.hasattr("__float__")? {
        if let Ok(f) = v.extract::<f64>() {
            return Ok(Value::Float(f));
        }
    }
    Err(PyTypeError::new_err(format!(
        "value of {key:?} must be int, float, bool, str or a list of them, not {}",
        v.get_type().name()?
    )))
}

fn to_values(d: Option<&Bound<'_, PyDict>>) -> R<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("keys must be str"))?;
            let v = to_value(&k, &v)?;
            out.insert(k, v);
        }
    }
    Ok(out)
}

fn value_to_py(py: Python<'_>, v: &Value) -> R<PyObject> {
    Ok(match v {
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Str(s) => PyString::new(py, s).into_any().unbind(),
        Value::List(l) => {
            let items = l
                .iter()
                .map(|x| value_to_py(py, x))
                .collect::<R<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
    })
}

fn values_to_py(py: Python<'_>, m: &BTreeMap<String, Value>) -> R<PyObject> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d.into_any().unbind())
}

/// A serializable record as Python values, through its JSON form (the
/// records' human-readable serde forms are the ones the HTTP API uses).
fn record<T: serde::Serialize>(py: Python<'_>, v: &T) -> R<PyObject> {
    let s = serde_json::to_string(v).map_err(|e| Error::new_err(format!("internal error: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (s,))?.unbind())
}

/// The native store handle. One per store directory per process: the
/// Python side caches them (`modelvault.open`).
#[pyclass(module = "modelvault._modelvault", frozen, weakref)]
struct NativeStore {
    store: Store,
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

    // ---- experiments ----

    #[pyo3(signature = (project, name, tags = Vec::new(), kind = None))]
    fn create_experiment(
        &self,
        py: Python<'_>,
        project: &str,
        name: &str,
        tags: Vec<String>,
        kind: Option<String>,
    ) -> R<NativeExperiment> {
        let mut spec = NewExperiment::new(project, name).tags(tags);
        if let Some(k) = kind {
            spec = spec.kind(k);
        }
        let e = map(py.allow_threads(|| self.store.create_experiment(spec)))?;
        Ok(NativeExperiment {
            exp: e,
            store: self.store.clone(),
        })
    }

    fn experiment(&self, py: Python<'_>, id: &str) -> R<NativeExperiment> {
        let id = entity(id)?;
        let e = map(py.allow_threads(|| self.store.experiment(id)))?;
        Ok(NativeExperiment {
            exp: e,
            store: self.store.clone(),
        })
    }

    fn experiment_by_name(&self, py: Python<'_>, project: &str, name: &str) -> R<NativeExperiment> {
        let e = map(py.allow_threads(|| self.store.experiment_by_name(project, name)))?;
        Ok(NativeExperiment {
            exp: e,
            store: self.store.clone(),
        })
    }

    #[pyo3(signature = (project = None, name_prefix = None, status = None, tag = None, limit = None))]
    fn experiments(
        &self,
        py: Python<'_>,
        project: Option<String>,
        name_prefix: Option<String>,
        status: Option<&str>,
        tag: Option<String>,
        limit: Option<usize>,
    ) -> R<PyObject> {
        let mut q = self.store.experiments();
        if let Some(p) = project {
            q = q.project(p);
        }
        if let Some(p) = name_prefix {
            q = q.name_prefix(p);
        }
        if let Some(s) = status {
            q = q.status(map(Status::from_str(s))?);
        }
        if let Some(t) = tag {
            q = q.tag(t);
        }
        if let Some(n) = limit {
            q = q.limit(n);
        }
        let r = map(py.allow_threads(|| q.run()))?;
        record(py, &r)
    }

    // ---- models ----

    #[pyo3(signature = (name, project = None, framework = None, tags = Vec::new(),
        labels = None, metadata = None, comment = None, design = None, experiment = None,
        parent = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_model(
        &self,
        py: Python<'_>,
        name: &str,
        project: Option<String>,
        framework: Option<&str>,
        tags: Vec<String>,
        labels: Option<BTreeMap<String, i64>>,
        metadata: Option<&Bound<'_, PyDict>>,
        comment: Option<String>,
        design: Option<String>,
        experiment: Option<&str>,
        parent: Option<&str>,
    ) -> R<NativeModel> {
        let spec = new_model(
            name, project, framework, tags, labels, metadata, comment, design, experiment, parent,
        )?;
        let m = map(py.allow_threads(|| self.store.create_model(spec)))?;
        Ok(NativeModel {
            model: m,
            store: self.store.clone(),
        })
    }

    #[pyo3(signature = (name, url, checksum = None, project = None, framework = None,
        tags = Vec::new(), metadata = None, comment = None))]
    #[allow(clippy::too_many_arguments)]
    fn register_external_model(
        &self,
        py: Python<'_>,
        name: &str,
        url: &str,
        checksum: Option<&str>,
        project: Option<String>,
        framework: Option<&str>,
        tags: Vec<String>,
        metadata: Option<&Bound<'_, PyDict>>,
        comment: Option<String>,
    ) -> R<NativeModel> {
        let spec = new_model(
            name, project, framework, tags, None, metadata, comment, None, None, None,
        )?;
        let m = map(py.allow_threads(|| self.store.register_external_model(spec, url, checksum)))?;
        Ok(NativeModel {
            model: m,
            store: self.store.clone(),
        })
    }

    fn model(&self, py: Python<'_>, id: &str) -> R<NativeModel> {
        let id = entity(id)?;
        let m = map(py.allow_threads(|| self.store.model(id)))?;
        Ok(NativeModel {
            model: m,
            store: self.store.clone(),
        })
    }

    /// The most recently created model called `name`.
    fn model_by_name(&self, py: Python<'_>, name: &str) -> R<NativeModel> {
        let m = map(py.allow_threads(|| self.store.model_by_name(name)))?;
        Ok(NativeModel {
            model: m,
            store: self.store.clone(),
        })
    }

    /// A model id, name, `NAME@VERSION`, `NAME@ALIAS` or model URL: the
    /// model and the version meant (`None`: the latest).
    fn resolve_model(&self, py: Python<'_>, spec: &str) -> R<(NativeModel, Option<u32>)> {
        let (m, v) = map(py.allow_threads(|| self.store.resolve_model(spec)))?;
        Ok((
            NativeModel {
                model: m,
                store: self.store.clone(),
            },
            v,
        ))
    }

    fn find_models(&self, py: Python<'_>, query: &str) -> R<PyObject> {
        let q = map(parse_query(query).map_err(modelvault::Error::from))?;
        let r = map(py.allow_threads(|| self.store.find_models(&q)))?;
        record(py, &r)
    }

    fn models(&self, py: Python<'_>) -> R<PyObject> {
        let r = map(py.allow_threads(|| self.store.models()))?;
        record(py, &r)
    }

    /// Stores the local files `files` ((path in the version, local path)
    /// pairs) as the next version of the model called `name`, with the same
    /// policy as `modelvault put` (delta against the latest version's file
    /// of the same path). Returns the model and the version number.
    #[pyo3(signature = (name, files, project = None, experiment = None, base = None,
        create = true, reverse_delta = false))]
    #[allow(clippy::too_many_arguments)]
    fn put_version(
        &self,
        py: Python<'_>,
        name: &str,
        files: Vec<(String, std::path::PathBuf)>,
        project: Option<String>,
        experiment: Option<&str>,
        base: Option<String>,
        create: bool,
        reverse_delta: bool,
    ) -> R<(NativeModel, u32)> {
        let mut put = self
            .store
            .put_version(name)
            .create_if_missing(create)
            .reverse_delta(reverse_delta);
        if let Some(p) = project {
            put = put.project(p);
        }
        if let Some(e) = experiment {
            put = put.experiment(entity(e)?);
        }
        if let Some(b) = base {
            put = put.base(b);
        }
        let r = py.allow_threads(|| -> modelvault::Result<(Model, u32)> {
            let mut sizes = Vec::with_capacity(files.len());
            for (rel, local) in &files {
                let md = std::fs::metadata(local).map_err(|e| modelvault::Error::io(local, e))?;
                sizes.push((rel.as_str(), md.len()));
            }
            let mut vp = put.begin(sizes)?;
            for (rel, local) in &files {
                let f = File::open(local).map_err(|e| modelvault::Error::io(local, e))?;
                vp.add(rel, io::BufReader::with_capacity(1 << 20, f))?;
            }
            let report = vp.commit()?;
            Ok((self.store.model_by_name(name)?, report.version))
        });
        let (m, v) = map(r)?;
        Ok((
            NativeModel {
                model: m,
                store: self.store.clone(),
            },
            v,
        ))
    }

    // ---- blobs ----

    fn open_blob(&self, py: Python<'_>, blob: &str) -> R<NativeReader> {
        let id = blob_id(blob)?;
        let r = map(py.allow_threads(|| self.store.blob_reader(&id)))?;
        Ok(NativeReader::new(r))
    }

    /// Writes a stored blob into the local file `dest` (created or
    /// truncated) and fsyncs it; returns its size. All in Rust with the GIL
    /// released: no Python copy of the bytes.
    fn copy_blob_to_file(&self, py: Python<'_>, blob: &str, dest: std::path::PathBuf) -> R<u64> {
        let id = blob_id(blob)?;
        py.allow_threads(|| {
            let mut r = map(self.store.blob_reader(&id))?;
            let mut f = File::create(&dest).map_err(|e| to_py(modelvault::Error::io(&dest, e)))?;
            let n = io::copy(&mut r, &mut f).map_err(|e| io_to_py(&dest.to_string_lossy(), e))?;
            f.sync_all()
                .map_err(|e| to_py(modelvault::Error::io(&dest, e)))?;
            Ok(n)
        })
    }

    fn blob_writer(&self) -> NativeWriter {
        NativeWriter {
            w: Mutex::new(Some(self.store.blob_writer())),
        }
    }

    fn blob_size(&self, py: Python<'_>, blob: &str) -> R<Option<u64>> {
        let id = blob_id(blob)?;
        Ok(map(py.allow_threads(|| self.store.blob_info(&id)))?.map(|i| i.size))
    }

    /// The tensor names, dtypes, shapes and byte ranges of a stored
    /// safetensors or GGUF file; `None` for any other content.
    fn tensors(&self, py: Python<'_>, blob: &str) -> R<Option<Vec<TensorRow>>> {
        let id = blob_id(blob)?;
        let layout = map(py.allow_threads(|| self.store.tensor_layout(&id)))?;
        Ok(layout.map(|l| {
            l.tensors
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        dtype(t.dtype),
                        t.shape.clone(),
                        t.start,
                        t.end,
                    )
                })
                .collect()
        }))
    }

    /// One tensor's bytes, read and verified without reading the rest of
    /// the file: (dtype, shape, bytes).
    fn read_tensor(
        &self,
        py: Python<'_>,
        blob: &str,
        name: &str,
    ) -> R<(String, Vec<u64>, Py<PyBytes>)> {
        let id = blob_id(blob)?;
        let (span, data) = py.allow_threads(|| -> R<_> {
            let (span, mut r) = map(self.store.tensor_reader(&id, name))?;
            let mut buf = Vec::with_capacity((span.end - span.start) as usize);
            r.read_to_end(&mut buf)
                .map_err(|e| io_to_py(&format!("tensor {name}"), e))?;
            Ok((span, buf))
        })?;
        Ok((
            dtype(span.dtype),
            span.shape,
            PyBytes::new(py, &data).unbind(),
        ))
    }

    // ---- objects (the S3 namespace) ----

    fn ensure_bucket(&self, py: Python<'_>, bucket: &str) -> R<()> {
        map(py.allow_threads(|| {
            let o = self.store.objects();
            if !o.bucket_exists(bucket)? {
                match o.create_bucket(bucket) {
                    Ok(_) => {}
                    Err(modelvault::Error::Exists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }))
    }

    /// Stores a local file as object `key` of `bucket` (replacing any);
    /// returns its size.
    fn put_object_file(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        path: std::path::PathBuf,
    ) -> R<u64> {
        let info = map(py.allow_threads(|| {
            let f = File::open(&path).map_err(|e| modelvault::Error::io(&path, e))?;
            self.store.objects().put(
                bucket,
                key,
                io::BufReader::with_capacity(1 << 20, f),
                ObjectMeta::default(),
            )
        }))?;
        Ok(info.size)
    }

    fn put_object_bytes(&self, py: Python<'_>, bucket: &str, key: &str, data: Vec<u8>) -> R<u64> {
        let info = map(py.allow_threads(|| {
            self.store
                .objects()
                .put(bucket, key, &data[..], ObjectMeta::default())
        }))?;
        Ok(info.size)
    }

    fn open_object(&self, py: Python<'_>, bucket: &str, key: &str) -> R<NativeReader> {
        let (_, r) = map(py.allow_threads(|| self.store.objects().get(bucket, key)))?;
        Ok(NativeReader::new(r))
    }

    /// Copies object `key` of `bucket` into the local file `dest`
    /// (created or truncated); returns its size.
    fn get_object_file(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        dest: std::path::PathBuf,
    ) -> R<u64> {
        py.allow_threads(|| {
            let (_, mut r) = map(self.store.objects().get(bucket, key))?;
            let mut f = File::create(&dest).map_err(|e| to_py(modelvault::Error::io(&dest, e)))?;
            let n = io::copy(&mut r, &mut f).map_err(|e| io_to_py(&dest.to_string_lossy(), e))?;
            f.sync_all()
                .map_err(|e| to_py(modelvault::Error::io(&dest, e)))?;
            Ok(n)
        })
    }

    fn head_object(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
    ) -> R<Option<(u64, String, u64)>> {
        let h = map(py.allow_threads(|| self.store.objects().head(bucket, key)))?;
        Ok(h.map(|i| (i.size, i.blob.to_string(), i.modified_ms)))
    }

    fn delete_object(&self, py: Python<'_>, bucket: &str, key: &str) -> R<bool> {
        map(py.allow_threads(|| self.store.objects().delete(bucket, key)))
    }

    /// Every object under `prefix` (keys and sizes), and with a delimiter
    /// the common prefixes, following the pages to the end.
    #[pyo3(signature = (bucket, prefix = String::new(), delimiter = String::new()))]
    fn list_objects(
        &self,
        py: Python<'_>,
        bucket: &str,
        prefix: String,
        delimiter: String,
    ) -> R<Listing> {
        map(py.allow_threads(|| {
            let o = self.store.objects();
            let mut objects = Vec::new();
            let mut prefixes = Vec::new();
            let mut q = ListQuery {
                prefix,
                delimiter,
                ..ListQuery::default()
            };
            loop {
                let page = o.list(bucket, &q)?;
                objects.extend(page.objects.into_iter().map(|i| (i.key, i.size)));
                prefixes.extend(page.common_prefixes);
                match page.next_continuation_token {
                    Some(next) if page.is_truncated => q.continuation_token = Some(next),
                    _ => break,
                }
            }
            Ok((objects, prefixes))
        }))
    }
}

fn seconds(what: &'static str, s: f64) -> R<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        InvalidInput::new_err(format!(
            "invalid {what} {s}: must be a non-negative number of seconds"
        ))
    })
}

fn dtype(d: modelvault::DType) -> String {
    format!("{d:?}").to_lowercase()
}

#[allow(clippy::too_many_arguments)]
fn new_model(
    name: &str,
    project: Option<String>,
    framework: Option<&str>,
    tags: Vec<String>,
    labels: Option<BTreeMap<String, i64>>,
    metadata: Option<&Bound<'_, PyDict>>,
    comment: Option<String>,
    design: Option<String>,
    experiment: Option<&str>,
    parent: Option<&str>,
) -> R<NewModel> {
    let mut spec = NewModel::new(name).tags(tags);
    if let Some(p) = project {
        spec = spec.project(p);
    }
    if let Some(f) = framework {
        spec = spec.framework(self::framework(f)?);
    }
    if let Some(l) = labels {
        spec = spec.labels(l);
    }
    for (k, v) in to_values(metadata)? {
        spec = spec.metadata(k, v);
    }
    if let Some(c) = comment {
        spec = spec.comment(c);
    }
    if let Some(d) = design {
        spec = spec.design(d);
    }
    if let Some(e) = experiment {
        spec = spec.experiment(entity(e)?);
    }
    if let Some(p) = parent {
        spec = spec.parent(entity(p)?);
    }
    Ok(spec)
}

fn stream(s: &str) -> R<Stream> {
    match s {
        "stdout" => Ok(Stream::Stdout),
        "stderr" => Ok(Stream::Stderr),
        _ => Err(InvalidInput::new_err(format!(
            "invalid console stream {s:?}: expected stdout or stderr"
        ))),
    }
}

#[pyclass(module = "modelvault._modelvault", frozen)]
struct NativeExperiment {
    exp: Experiment,
    /// The store it is in (artifact uploads write through its blob writer).
    store: Store,
}

#[pymethods]
impl NativeExperiment {
    #[getter]
    fn id(&self) -> String {
        self.exp.id().to_string()
    }

    fn info(&self, py: Python<'_>) -> R<PyObject> {
        let i = map(py.allow_threads(|| self.exp.info()))?;
        let d = record(py, &i)?;
        // Values as stored (JSON has no NaN or infinities).
        d.bind(py)
            .set_item("params", values_to_py(py, &i.params)?)?;
        Ok(d)
    }

    fn start(&self, py: Python<'_>) -> R<()> {
        map(py.allow_threads(|| self.exp.start()))
    }

    fn finish(&self, py: Python<'_>, status: &str) -> R<()> {
        let s = map(Status::from_str(status))?;
        map(py.allow_threads(|| self.exp.finish(s)))
    }

    fn set_progress(&self, py: Python<'_>, percent: i64) -> R<()> {
        let p = u8::try_from(percent)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                InvalidInput::new_err(format!("invalid progress {percent}: must be 0 to 100"))
            })?;
        map(py.allow_threads(|| self.exp.set_progress(p)))
    }

    fn progress(&self, py: Python<'_>) -> R<u8> {
        map(py.allow_threads(|| self.exp.progress()))
    }

    fn set_params(&self, py: Python<'_>, params: &Bound<'_, PyDict>) -> R<()> {
        let p = to_values(Some(params))?;
        map(py.allow_threads(|| self.exp.set_params(p)))
    }

    fn params(&self, py: Python<'_>) -> R<PyObject> {
        let info = map(py.allow_threads(|| self.exp.info()))?;
        values_to_py(py, &info.params)
    }

    /// Appends console lines ((stream, text) pairs) in one commit; returns
    /// the sequence number of the first.
    fn log_lines(&self, py: Python<'_>, lines: Vec<(String, String)>) -> R<u64> {
        let lines = lines
            .into_iter()
            .map(|(s, t)| Ok((stream(&s)?, t)))
            .collect::<R<Vec<_>>>()?;
        map(py.allow_threads(|| {
            self.exp
                .log_lines(lines.iter().map(|(s, t)| (*s, t.as_str())))
        }))
    }

    #[pyo3(signature = (start = 0, limit = 1000))]
    fn console(&self, py: Python<'_>, start: u64, limit: usize) -> R<PyObject> {
        let r = map(py.allow_threads(|| self.exp.console(start, limit)))?;
        record(py, &r)
    }

    fn console_tail(&self, py: Python<'_>, n: usize) -> R<PyObject> {
        let r = map(py.allow_threads(|| self.exp.console_tail(n)))?;
        record(py, &r)
    }

    #[pyo3(signature = (name, path, metadata = None))]
    fn add_artifact_file(
        &self,
        py: Python<'_>,
        name: &str,
        path: std::path::PathBuf,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> R<u32> {
        let md = to_values(metadata)?;
        map(py.allow_threads(|| {
            let f = File::open(&path).map_err(|e| modelvault::Error::io(&path, e))?;
            let mut w = self.exp_store_writer();
            io::copy(&mut io::BufReader::with_capacity(1 << 20, f), &mut w)
                .map_err(|e| modelvault::Error::io(&path, e))?;
            self.exp.add_artifact_staged(name, w.stage()?, md)
        }))
    }

    #[pyo3(signature = (name, data, metadata = None))]
    fn add_artifact_bytes(
        &self,
        py: Python<'_>,
        name: &str,
        data: Vec<u8>,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> R<u32> {
        let md = to_values(metadata)?;
        map(py.allow_threads(|| {
            let mut w = self.exp_store_writer();
            w.write_all(&data)
                .map_err(|e| modelvault::Error::io(format!("artifact {name}"), e))?;
            self.exp.add_artifact_staged(name, w.stage()?, md)
        }))
    }

    #[pyo3(signature = (name, value, metadata = None))]
    fn add_artifact_value(
        &self,
        py: Python<'_>,
        name: &str,
        value: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> R<u32> {
        let v = to_value(name, value)?;
        let md = to_values(metadata)?;
        map(py.allow_threads(|| self.exp.add_artifact(name, ArtifactBody::Inline(v), md)))
    }

    #[pyo3(signature = (name, revision = None))]
    fn artifact(&self, py: Python<'_>, name: &str, revision: Option<u32>) -> R<PyObject> {
        let a = map(py.allow_threads(|| self.exp.artifact(name, revision)))?;
        artifact_to_py(py, &a)
    }

    fn artifacts(&self, py: Python<'_>) -> R<Vec<PyObject>> {
        let l = map(py.allow_threads(|| self.exp.artifacts()))?;
        l.iter().map(|a| artifact_to_py(py, a)).collect()
    }

    fn report_scalars(&self, py: Python<'_>, points: Vec<(String, String, u64, f64)>) -> R<()> {
        map(py.allow_threads(|| {
            self.exp.report_scalars(
                points
                    .iter()
                    .map(|(m, v, i, x)| (m.as_str(), v.as_str(), *i, *x)),
            )
        }))
    }

    fn scalars(&self, py: Python<'_>, metric: &str) -> R<Vec<(String, u64, f64)>> {
        map(py.allow_threads(|| self.exp.scalars(metric)))
    }

    fn use_model(&self, py: Python<'_>, model: &str, version: u32) -> R<()> {
        let id = entity(model)?;
        map(py.allow_threads(|| self.exp.use_model(id, version)))
    }

    fn set_environment(
        &self,
        py: Python<'_>,
        interpreter: String,
        packages: BTreeMap<String, String>,
        requirements: String,
    ) -> R<()> {
        let env = Environment {
            interpreter,
            packages,
            requirements,
        };
        map(py.allow_threads(|| self.exp.set_environment(env)))
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (host, user, command, working_dir, git_repo = None, git_commit = None, git_diff = None))]
    fn set_run_info(
        &self,
        py: Python<'_>,
        host: String,
        user: String,
        command: Vec<String>,
        working_dir: String,
        git_repo: Option<String>,
        git_commit: Option<String>,
        git_diff: Option<String>,
    ) -> R<()> {
        let run = RunInfo {
            host,
            user,
            command,
            working_dir,
            git_repo,
            git_commit,
            git_diff,
        };
        map(py.allow_threads(|| self.exp.set_run_info(run)))
    }

    #[pyo3(signature = (dry_run = false, with_models = false, force = false))]
    fn delete(&self, py: Python<'_>, dry_run: bool, with_models: bool, force: bool) -> R<PyObject> {
        let opts = DeleteOptions::new()
            .dry_run(dry_run)
            .with_models(with_models)
            .force(force);
        let r = map(py.allow_threads(|| self.exp.delete(opts)))?;
        record(py, &r)
    }
}

impl NativeExperiment {
    /// A blob writer of the experiment's store (for artifact uploads).
    fn exp_store_writer(&self) -> BlobWriter {
        self.store.blob_writer()
    }
}

fn artifact_to_py(py: Python<'_>, a: &modelvault::Artifact) -> R<PyObject> {
    let d = PyDict::new(py);
    d.set_item("name", &a.name)?;
    d.set_item("revision", a.revision)?;
    d.set_item("created_ms", a.created_ms)?;
    match &a.body {
        ArtifactBody::Blob { blob, size } => {
            d.set_item("blob", blob.to_string())?;
            d.set_item("size", size)?;
            d.set_item("value", py.None())?;
        }
        ArtifactBody::Inline(v) => {
            d.set_item("blob", py.None())?;
            d.set_item("size", py.None())?;
            d.set_item("value", value_to_py(py, v)?)?;
        }
    }
    let md = PyDict::new(py);
    for (k, v) in &a.metadata {
        md.set_item(k, value_to_py(py, v)?)?;
    }
    d.set_item("metadata", md)?;
    Ok(d.into_any().unbind())
}

#[pyclass(module = "modelvault._modelvault", frozen)]
struct NativeModel {
    model: Model,
    /// The store it is in (new versions are uploaded through it).
    store: Store,
}

#[pymethods]
impl NativeModel {
    #[getter]
    fn id(&self) -> String {
        self.model.id().to_string()
    }

    fn info(&self, py: Python<'_>) -> R<PyObject> {
        let i = map(py.allow_threads(|| self.model.info()))?;
        let d = record(py, &i)?;
        // Values as stored (JSON has no NaN or infinities).
        d.bind(py)
            .set_item("metadata", values_to_py(py, &i.metadata)?)?;
        Ok(d)
    }

    #[pyo3(signature = (version = None))]
    fn url(&self, version: Option<u32>) -> String {
        self.model.url(version)
    }

    fn set_metadata(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> R<()> {
        let v = to_value(key, value)?;
        map(py.allow_threads(|| self.model.set_metadata(key, v)))
    }

    fn remove_metadata(&self, py: Python<'_>, key: &str) -> R<()> {
        map(py.allow_threads(|| self.model.remove_metadata(key)))
    }

    fn add_tags(&self, py: Python<'_>, tags: Vec<String>) -> R<()> {
        map(py.allow_threads(|| self.model.add_tags(tags)))
    }

    fn remove_tag(&self, py: Python<'_>, tag: &str) -> R<()> {
        map(py.allow_threads(|| self.model.remove_tag(tag)))
    }

    fn set_labels(&self, py: Python<'_>, labels: BTreeMap<String, i64>) -> R<()> {
        map(py.allow_threads(|| self.model.set_labels(labels)))
    }

    fn set_alias(&self, py: Python<'_>, name: &str, version: u32) -> R<()> {
        map(py.allow_threads(|| self.model.set_alias(name, version)))
    }

    fn move_alias(&self, py: Python<'_>, name: &str, version: u32) -> R<()> {
        map(py.allow_threads(|| self.model.move_alias(name, version)))
    }

    fn remove_alias(&self, py: Python<'_>, name: &str) -> R<()> {
        map(py.allow_threads(|| self.model.remove_alias(name)))
    }

    fn finalize(&self, py: Python<'_>) -> R<()> {
        map(py.allow_threads(|| self.model.finalize()))
    }

    /// Stores the local files `files` ((path in the version, local path)
    /// pairs) as the next version of this model (by id, whatever other
    /// models share its name). Each file is stored as a delta against the
    /// latest version's file chosen as `modelvault put` chooses it (the
    /// same path, else the only unclaimed file of the same size). Returns
    /// the version number.
    #[pyo3(signature = (files, experiment = None))]
    fn add_version_files(
        &self,
        py: Python<'_>,
        files: Vec<(String, std::path::PathBuf)>,
        experiment: Option<&str>,
    ) -> R<u32> {
        let exp = experiment.map(entity).transpose()?;
        map(py.allow_threads(|| {
            let mut sizes = Vec::with_capacity(files.len());
            for (rel, local) in &files {
                let md = std::fs::metadata(local).map_err(|e| modelvault::Error::io(local, e))?;
                sizes.push((rel.as_str(), md.len()));
            }
            let bases = match self.model.version(None) {
                Ok(v) => v.delta_bases(&sizes),
                Err(e) if e.is_not_found() => vec![None; files.len()],
                Err(e) => return Err(e),
            };
            let mut upload = self.store.version_upload();
            for ((rel, local), base) in files.iter().zip(bases) {
                let mut w = self.store.blob_writer();
                if let Some(b) = base {
                    w = w.delta_base(&b)?;
                }
                let f = File::open(local).map_err(|e| modelvault::Error::io(local, e))?;
                io::copy(&mut io::BufReader::with_capacity(1 << 20, f), &mut w)
                    .map_err(|e| modelvault::Error::io(local, e))?;
                upload.add(rel.clone(), w.stage()?)?;
            }
            self.model.add_version_upload(upload, exp)
        }))
    }

    fn used_by(&self, py: Python<'_>) -> R<Vec<(String, u32)>> {
        let r = map(py.allow_threads(|| self.model.used_by()))?;
        Ok(r.into_iter().map(|(e, v)| (e.to_string(), v)).collect())
    }

    #[pyo3(signature = (version = None))]
    fn version(&self, py: Python<'_>, version: Option<u32>) -> R<PyObject> {
        let v = map(py.allow_threads(|| self.model.version(version)))?;
        record(py, &v)
    }

    fn versions(&self, py: Python<'_>) -> R<Vec<u32>> {
        map(py.allow_threads(|| self.model.versions()))
    }

    #[pyo3(signature = (version, dry_run = false, force = false))]
    fn delete_version(
        &self,
        py: Python<'_>,
        version: u32,
        dry_run: bool,
        force: bool,
    ) -> R<PyObject> {
        let opts = DeleteOptions::new().dry_run(dry_run).force(force);
        let r = map(py.allow_threads(|| self.model.delete_version(version, opts)))?;
        record(py, &r)
    }

    #[pyo3(signature = (dry_run = false, force = false))]
    fn delete(&self, py: Python<'_>, dry_run: bool, force: bool) -> R<PyObject> {
        let opts = DeleteOptions::new().dry_run(dry_run).force(force);
        let r = map(py.allow_threads(|| self.model.delete(opts)))?;
        record(py, &r)
    }
}

/// A stored blob as a positioned reader; `modelvault.BlobFile` (an
/// `io.RawIOBase`) wraps it.
#[pyclass(module = "modelvault._modelvault", frozen)]
struct NativeReader {
    /// The reader and the position as Python sees it (may be past the end,
    /// as a file's may; the reader itself then stays at the end).
    r: Mutex<(BlobReader, u64)>,
    len: u64,
}

impl NativeReader {
    fn new(r: BlobReader) -> Self {
        let len = r.len();
        NativeReader {
            r: Mutex::new((r, 0)),
            len,
        }
    }

    fn lock(&self) -> R<std::sync::MutexGuard<'_, (BlobReader, u64)>> {
        self.r
            .lock()
            .map_err(|_| Error::new_err("internal error: blob reader poisoned by a panic"))
    }
}

#[pymethods]
impl NativeReader {
    #[getter]
    fn size(&self) -> u64 {
        self.len
    }

    /// Reads up to `n` bytes at the current position (fewer only at the
    /// end); the GIL is released while chunks are read and verified.
    fn read(&self, py: Python<'_>, n: usize) -> R<Py<PyBytes>> {
        let buf = py.allow_threads(|| -> R<Vec<u8>> {
            let mut g = self.lock()?;
            let (r, pos) = &mut *g;
            let want = n.min(self.len.saturating_sub(*pos) as usize);
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                match r.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_to_py("blob", e)),
                }
            }
            buf.truncate(got);
            *pos += got as u64;
            Ok(buf)
        })?;
        Ok(PyBytes::new(py, &buf).unbind())
    }

    /// Moves the position as `io.IOBase.seek` does (whence 0, 1 or 2);
    /// returns the new position. Past the end is allowed (reads return
    /// nothing there); before the start is a ValueError.
    #[pyo3(signature = (offset, whence = 0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> R<u64> {
        // Without the GIL: another thread's read may hold the reader.
        py.allow_threads(|| {
            let mut g = self.lock()?;
            let (r, pos) = &mut *g;
            let base: i128 = match whence {
                0 => 0,
                1 => *pos as i128,
                2 => self.len as i128,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "invalid whence ({whence}, should be 0, 1 or 2)"
                    )))
                }
            };
            let target = base + offset as i128;
            if target < 0 {
                return Err(PyValueError::new_err(format!(
                    "negative seek position {target}"
                )));
            }
            let target = u64::try_from(target)
                .map_err(|_| PyValueError::new_err("seek position out of range"))?;
            r.seek(SeekFrom::Start(target.min(self.len)))
                .map_err(|e| io_to_py("blob", e))?;
            *pos = target;
            Ok(target)
        })
    }

    fn tell(&self, py: Python<'_>) -> R<u64> {
        py.allow_threads(|| Ok(self.lock()?.1))
    }
}

/// A streaming upload; `modelvault.BlobWriterFile` wraps it.
#[pyclass(module = "modelvault._modelvault", frozen)]
struct NativeWriter {
    w: Mutex<Option<BlobWriter>>,
}

#[pymethods]
impl NativeWriter {
    fn write(&self, py: Python<'_>, data: Vec<u8>) -> R<usize> {
        py.allow_threads(|| {
            let mut g = self.lock()?;
            let w = g
                .as_mut()
                .ok_or_else(|| PyValueError::new_err("write to a finished blob writer"))?;
            w.write_all(&data).map_err(|e| io_to_py("blob upload", e))?;
            Ok(data.len())
        })
    }

    #[getter]
    fn size(&self, py: Python<'_>) -> R<u64> {
        py.allow_threads(|| Ok(self.lock()?.as_ref().map_or(0, |w| w.len())))
    }

    /// Stores what was written and returns the blob id (a hold is taken on
    /// the blob: `Store.release_blob` drops it).
    fn finish(&self, py: Python<'_>) -> R<String> {
        let id = py.allow_threads(|| {
            let w = self
                .lock()?
                .take()
                .ok_or_else(|| PyValueError::new_err("blob writer already finished"))?;
            map(w.finish())
        })?;
        Ok(id.to_string())
    }

    /// Drops the upload: nothing of it becomes visible.
    fn abort(&self, py: Python<'_>) -> R<()> {
        py.allow_threads(|| {
            self.lock()?.take();
            Ok(())
        })
    }
}

impl NativeWriter {
    /// The writer, locked; the GIL must not be held while waiting (another
    /// thread's write may hold the lock without it).
    fn lock(&self) -> R<std::sync::MutexGuard<'_, Option<BlobWriter>>> {
        self.w
            .lock()
            .map_err(|_| Error::new_err("internal error: blob writer poisoned by a panic"))
    }
}

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
    m.add_class::<NativeStore>()?;
    m.add_class::<NativeExperiment>()?;
    m.add_class::<NativeModel>()?;
    m.add_class::<NativeReader>()?;
    m.add_class::<NativeWriter>()?;
    Ok(())
}
