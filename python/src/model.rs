//! Models: the store's methods that create, register, find, list and
//! upload them, and the model handle (`NativeModel`): metadata, tags,
//! labels, aliases, finalizing, versions, lineage, deletion.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modelvault::detect::Framework;
use modelvault::query::parse as parse_query;
use modelvault::{DeleteOptions, Model, NewModel, Store};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::blobs::{copy_local_into, open_local};
use crate::convert::{entity, record, record_with_values, to_value, to_values};
use crate::errors::{map, InvalidInput, R};
use crate::store::NativeStore;

#[pymethods]
impl NativeStore {
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
        Ok(NativeModel::new(m, &self.store))
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
        Ok(NativeModel::new(m, &self.store))
    }

    fn model(&self, py: Python<'_>, id: &str) -> R<NativeModel> {
        let id = entity(id)?;
        let m = map(py.allow_threads(|| self.store.model(id)))?;
        Ok(NativeModel::new(m, &self.store))
    }

    /// The most recently created model called `name`.
    fn model_by_name(&self, py: Python<'_>, name: &str) -> R<NativeModel> {
        let m = map(py.allow_threads(|| self.store.model_by_name(name)))?;
        Ok(NativeModel::new(m, &self.store))
    }

    /// A model id, name, `NAME@VERSION`, `NAME@ALIAS` or model URL: the
    /// model and the version meant (`None`: the latest).
    fn resolve_model(&self, py: Python<'_>, spec: &str) -> R<(NativeModel, Option<u32>)> {
        let (m, v) = map(py.allow_threads(|| self.store.resolve_model(spec)))?;
        Ok((NativeModel::new(m, &self.store), v))
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
    /// policy as `modelvault put` (the latest version's file of the same
    /// path re-encoded as a delta against the new one, or, with
    /// `reverse_delta = False`, the new one stored as a delta against it).
    /// Returns the model and the version number.
    #[pyo3(signature = (name, files, project = None, experiment = None, base = None,
        create = true, reverse_delta = true))]
    #[allow(clippy::too_many_arguments)]
    fn put_version(
        &self,
        py: Python<'_>,
        name: &str,
        files: Vec<(String, PathBuf)>,
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
            let mut vp = put.begin(local_sizes(&files)?)?;
            for (rel, local) in &files {
                vp.add(rel, open_local(local)?)?;
            }
            let report = vp.commit()?;
            Ok((self.store.model_by_name(name)?, report.version))
        });
        let (m, v) = map(r)?;
        Ok((NativeModel::new(m, &self.store), v))
    }
}

#[pyclass(module = "modelvault._modelvault", frozen)]
pub(crate) struct NativeModel {
    model: Model,
    /// The store it is in (new versions are uploaded through it).
    store: Store,
}

impl NativeModel {
    fn new(model: Model, store: &Store) -> Self {
        NativeModel {
            model,
            store: store.clone(),
        }
    }
}

#[pymethods]
impl NativeModel {
    #[getter]
    fn id(&self) -> String {
        self.model.id().to_string()
    }

    fn info(&self, py: Python<'_>) -> R<PyObject> {
        let i = map(py.allow_threads(|| self.model.info()))?;
        record_with_values(py, &i, "metadata", &i.metadata)
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
        files: Vec<(String, PathBuf)>,
        experiment: Option<&str>,
    ) -> R<u32> {
        let exp = experiment.map(entity).transpose()?;
        map(py.allow_threads(|| {
            let sizes = local_sizes(&files)?;
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
                copy_local_into(local, &mut w)?;
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

/// The size of each local file of `files` ((path in the version, local
/// path) pairs), by its path in the version.
fn local_sizes(files: &[(String, PathBuf)]) -> modelvault::Result<Vec<(&str, u64)>> {
    files
        .iter()
        .map(|(rel, local)| {
            let md = std::fs::metadata(local).map_err(|e| modelvault::Error::io(local, e))?;
            Ok((rel.as_str(), md.len()))
        })
        .collect()
}

/// A new model's spec from the arguments `create_model` and
/// `register_external_model` share.
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

/// A framework by its serde name (`scikit_learn`, `pytorch`...).
fn framework(s: &str) -> R<Framework> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        InvalidInput::new_err(format!(
            "invalid framework {s:?}: expected one of pytorch, tensorflow, keras, onnx, \
             scikit_learn, xgboost, catboost, fastai, megengine, tfjs, gguf, ctranslate2, \
             safetensors, unknown"
        ))
    })
}
