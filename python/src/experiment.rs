//! Experiments: the store's methods that create, find and list them, and
//! the experiment handle (`NativeExperiment`): status, progress, params,
//! console, artifacts, scalars, lineage, environment, run info, deletion.

use std::collections::BTreeMap;
use std::io::Write;
use std::str::FromStr;

use modelvault::{
    ArtifactBody, DeleteOptions, Environment, Experiment, NewExperiment, RunInfo, Status, Store,
    Stream,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::blobs::copy_local_into;
use crate::convert::{
    entity, record, record_with_values, to_value, to_values, value_to_py, values_to_py,
};
use crate::errors::{map, InvalidInput, R};
use crate::store::NativeStore;

#[pymethods]
impl NativeStore {
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
        Ok(NativeExperiment::new(e, &self.store))
    }

    fn experiment(&self, py: Python<'_>, id: &str) -> R<NativeExperiment> {
        let id = entity(id)?;
        let e = map(py.allow_threads(|| self.store.experiment(id)))?;
        Ok(NativeExperiment::new(e, &self.store))
    }

    fn experiment_by_name(&self, py: Python<'_>, project: &str, name: &str) -> R<NativeExperiment> {
        let e = map(py.allow_threads(|| self.store.experiment_by_name(project, name)))?;
        Ok(NativeExperiment::new(e, &self.store))
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
}

#[pyclass(module = "modelvault._modelvault", frozen)]
pub(crate) struct NativeExperiment {
    exp: Experiment,
    /// The store it is in (artifact uploads write through its blob writer).
    store: Store,
}

impl NativeExperiment {
    fn new(exp: Experiment, store: &Store) -> Self {
        NativeExperiment {
            exp,
            store: store.clone(),
        }
    }
}

#[pymethods]
impl NativeExperiment {
    #[getter]
    fn id(&self) -> String {
        self.exp.id().to_string()
    }

    fn info(&self, py: Python<'_>) -> R<PyObject> {
        let i = map(py.allow_threads(|| self.exp.info()))?;
        record_with_values(py, &i, "params", &i.params)
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
            let mut w = self.store.blob_writer();
            copy_local_into(&path, &mut w)?;
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
            let mut w = self.store.blob_writer();
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

/// A console stream by name: stdout or stderr.
fn stream(s: &str) -> R<Stream> {
    match s {
        "stdout" => Ok(Stream::Stdout),
        "stderr" => Ok(Stream::Stderr),
        _ => Err(InvalidInput::new_err(format!(
            "invalid console stream {s:?}: expected stdout or stderr"
        ))),
    }
}

/// An artifact as a dict: name, revision, created_ms, and either its blob
/// and size or its inline value, and its metadata.
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
    d.set_item("metadata", values_to_py(py, &a.metadata)?)?;
    Ok(d.into_any().unbind())
}
