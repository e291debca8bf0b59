//! Experiments: one code execution session and everything it captured.
//!
//! Every change is a read-modify-write of the experiment record under the
//! store's commit lock, with its index keys updated in the same batch.
//! A final status (completed, failed, stopped) makes the experiment
//! immutable: later writes fail with [`Error::Immutable`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::common::{check_key, check_label, check_value, now_ms, update_entity, Entity};
use crate::blob::{check_same_store, Core, StagedBlob};
use crate::error::{Error, Result};
use crate::meta::registry_index as index_keys;
use crate::meta::registry_records::{
    Artifact, ArtifactBody, ArtifactRecord, ConsoleLine, ConsoleRecord, EntityId, Environment,
    ExperimentRecord, RunInfo, Status, Stream,
};
use crate::meta::tables::index::{self, ExperimentsBy};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{artifacts, blobs, console, experiments, scalars};
use crate::meta::{Batch, Meta};
use crate::query::Value;

/// What to create: [`Store::create_experiment`].
#[derive(Clone, Debug)]
#[must_use]
pub struct NewExperiment {
    project: String,
    name: String,
    tags: Vec<String>,
    kind: Option<String>,
}

impl NewExperiment {
    /// An experiment `name` in `project`.
    pub fn new(project: impl Into<String>, name: impl Into<String>) -> Self {
        NewExperiment {
            project: project.into(),
            name: name.into(),
            tags: Vec::new(),
            kind: None,
        }
    }

    /// Tags (deduplicated).
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// The experiment's type, e.g. `training` or `testing`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }
}

/// A snapshot of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ExperimentInfo {
    /// Unique id (UUID v7).
    pub id: EntityId,
    /// Project.
    pub project: String,
    /// Name (not unique).
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Type.
    pub kind: Option<String>,
    /// Lifecycle state.
    pub status: Status,
    /// 0..=100.
    pub progress: u8,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// When it started running.
    pub started_ms: Option<u64>,
    /// When it reached a final status.
    pub ended_ms: Option<u64>,
    /// Last change.
    pub updated_ms: u64,
    /// Environment capture.
    pub environment: Option<Environment>,
    /// Run information.
    pub run: Option<RunInfo>,
    /// Hyperparameters, `Section/key` → value.
    pub params: BTreeMap<String, Value>,
    /// Models it used: (model id, version).
    pub input_models: Vec<(EntityId, u32)>,
    /// Models it created.
    pub created_models: Vec<EntityId>,
    /// Console lines logged.
    pub console_lines: u64,
}

/// A handle on one experiment. Cheap; holds a store clone and the id.
#[derive(Clone)]
pub struct Experiment {
    pub(crate) store: Arc<Core>,
    pub(crate) id: EntityId,
}

impl Entity for ExperimentRecord {
    const KIND: &'static str = "experiment";
    fn load(meta: &Meta, id: &EntityId) -> Result<Option<Self>> {
        experiments::get_as(meta, id, Self::KIND)
    }
    fn save(&self, batch: &mut Batch, id: &EntityId) {
        experiments::put(batch, id, self);
    }
    fn index_keys(&self, id: &EntityId) -> BTreeSet<Vec<u8>> {
        index_keys::experiment_keys(id, self)
    }
    fn frozen(&self) -> Option<String> {
        self.status
            .is_final()
            .then(|| self.status.name().to_string())
    }
    fn touch(&mut self, now_ms: u64) {
        self.updated_ms = now_ms;
    }
}

/// Checks an experiment record from outside (a bundle) against the rules
/// a record written through the API meets.
pub(crate) fn check_experiment_record(r: &ExperimentRecord) -> Result<()> {
    check_label("project", &r.project, 256)?;
    check_label("experiment name", &r.name, 256)?;
    let mut tags = r.tags.clone();
    tags.sort();
    tags.dedup();
    if tags != r.tags {
        return Err(Error::invalid(
            "tags",
            r.tags.join(","),
            "are not sorted and distinct",
        ));
    }
    for t in &r.tags {
        check_label("tag", t, 128)?;
    }
    if let Some(k) = &r.kind {
        check_label("experiment type", k, 64)?;
    }
    if r.progress > 100 {
        return Err(Error::invalid("progress", r.progress, "must be 0 to 100"));
    }
    for (k, v) in &r.params {
        check_key("hyperparameter", k)?;
        check_value("hyperparameter", k, v)?;
    }
    Ok(())
}

/// Checks an artifact record from outside (a bundle), as
/// [`Experiment::add_artifact`] would.
pub(crate) fn check_artifact_record(name: &str, r: &ArtifactRecord) -> Result<()> {
    check_label("artifact name", name, 256)?;
    for (k, v) in &r.metadata {
        check_key("artifact metadata key", k)?;
        check_value("artifact metadata key", k, v)?;
    }
    if let ArtifactBody::Inline(v) = &r.body {
        check_value("inline artifact", name, v)?;
    }
    Ok(())
}

/// Checks a scalar from outside (a bundle), as [`Experiment::report_scalar`] would.
pub(crate) fn check_scalar(metric: &str, variant: &str) -> Result<()> {
    check_label("metric", metric, 128)?;
    check_label("variant", variant, 128)
}

fn what(id: &EntityId) -> String {
    format!("experiment {id}")
}

pub(crate) fn load_experiment(meta: &Meta, id: &EntityId) -> Result<ExperimentRecord> {
    experiments::get(meta, id)?.ok_or_else(|| Error::not_found("experiment", id))
}

impl Core {
    /// See [`crate::Store::create_experiment`].
    pub(crate) fn create_experiment(self: &Arc<Self>, spec: NewExperiment) -> Result<Experiment> {
        check_label("project", &spec.project, 256)?;
        check_label("experiment name", &spec.name, 256)?;
        let mut tags = spec.tags;
        tags.sort();
        tags.dedup();
        for t in &tags {
            check_label("tag", t, 128)?;
        }
        if let Some(k) = &spec.kind {
            check_label("experiment type", k, 64)?;
        }
        let id = EntityId::new_v7();
        let now = now_ms();
        let rec = ExperimentRecord {
            project: spec.project,
            name: spec.name,
            tags,
            kind: spec.kind,
            status: Status::Created,
            progress: 0,
            created_ms: now,
            started_ms: None,
            ended_ms: None,
            updated_ms: now,
            environment: None,
            run: None,
            params: BTreeMap::new(),
            inputs: Vec::new(),
            console_lines: 0,
        };
        self.chunks().commit(&[], Batch::default(), |_, _, batch| {
            index::apply(
                batch,
                &Default::default(),
                &index_keys::experiment_keys(&id, &rec),
            );
            experiments::put(batch, &id, &rec);
            Ok(())
        })?;
        Ok(Experiment {
            store: self.clone(),
            id,
        })
    }

    /// See [`crate::Store::experiment`].
    pub(crate) fn experiment(self: &Arc<Self>, id: EntityId) -> Result<Experiment> {
        load_experiment(self.chunks().meta(), &id)?;
        Ok(Experiment {
            store: self.clone(),
            id,
        })
    }

    /// See [`crate::Store::experiment_by_name`].
    pub(crate) fn experiment_by_name(
        self: &Arc<Self>,
        project: &str,
        name: &str,
    ) -> Result<Experiment> {
        check_label("project", project, 256)?;
        check_label("experiment name", name, 256)?;
        let id = index::experiments_named(self.chunks().meta(), project, name)?
            .into_iter()
            .max()
            .ok_or_else(|| Error::not_found("experiment", format!("{project}/{name}")))?;
        Ok(Experiment {
            store: self.clone(),
            id,
        })
    }

    /// See [`crate::Store::experiments`].
    pub(crate) fn experiments(self: &Arc<Self>) -> ExperimentQuery {
        ExperimentQuery {
            store: self.clone(),
            project: None,
            name_prefix: None,
            status: None,
            tag: None,
            from_ms: None,
            to_ms: None,
            after: None,
            limit: 100,
        }
    }
}

impl Experiment {
    /// The experiment's id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// A snapshot of the record and its links.
    pub fn info(&self) -> Result<ExperimentInfo> {
        let meta = self.store.chunks().meta();
        let r = load_experiment(meta, &self.id)?;
        let created_models = index::models_created_by(meta, &self.id)?;
        Ok(ExperimentInfo {
            id: self.id,
            project: r.project,
            name: r.name,
            tags: r.tags,
            kind: r.kind,
            status: r.status,
            progress: r.progress,
            created_ms: r.created_ms,
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
            updated_ms: r.updated_ms,
            environment: r.environment,
            run: r.run,
            params: r.params,
            input_models: r.inputs,
            created_models,
            console_lines: r.console_lines,
        })
    }

    /// Read-modify-write of the record, refused once the status is final.
    fn update<T: Send>(
        &self,
        f: impl FnOnce(&Meta, &mut ExperimentRecord, &mut Batch) -> Result<T> + Send,
    ) -> Result<T> {
        update_entity(&self.store, &self.id, &[], |meta, rec, batch, _| {
            f(meta, rec, batch)
        })
    }

    /// `created` → `running`.
    pub fn start(&self) -> Result<()> {
        self.update(|_, r, _| {
            if r.status != Status::Created {
                return Err(Error::invalid(
                    "status change",
                    "running",
                    format!("experiment is {}", r.status.name()),
                ));
            }
            r.status = Status::Running;
            r.started_ms = Some(now_ms());
            Ok(())
        })
    }

    /// Ends the experiment with a final status; it is immutable afterwards.
    pub fn finish(&self, status: Status) -> Result<()> {
        if !status.is_final() {
            return Err(Error::invalid(
                "final status",
                status.name(),
                "expected completed, failed or stopped",
            ));
        }
        self.update(|_, r, _| {
            r.status = status;
            r.ended_ms = Some(now_ms());
            if status == Status::Completed {
                r.progress = 100;
            }
            Ok(())
        })
    }

    /// Sets progress, 0..=100. Readable at once by any other reader.
    pub fn set_progress(&self, percent: u8) -> Result<()> {
        if percent > 100 {
            return Err(Error::invalid("progress", percent, "must be 0 to 100"));
        }
        self.update(|_, r, _| {
            r.progress = percent;
            Ok(())
        })
    }

    /// Current progress.
    pub fn progress(&self) -> Result<u8> {
        Ok(load_experiment(self.store.chunks().meta(), &self.id)?.progress)
    }

    /// Records the environment.
    pub fn set_environment(&self, env: Environment) -> Result<()> {
        self.update(|_, r, _| {
            r.environment = Some(env);
            Ok(())
        })
    }

    /// Records run information.
    pub fn set_run_info(&self, run: RunInfo) -> Result<()> {
        self.update(|_, r, _| {
            r.run = Some(run);
            Ok(())
        })
    }

    /// Sets hyperparameters (`Section/key` → value), replacing earlier values.
    pub fn set_params<I: IntoIterator<Item = (String, Value)>>(&self, params: I) -> Result<()> {
        let params: Vec<_> = params.into_iter().collect();
        for (k, v) in &params {
            check_key("hyperparameter", k)?;
            check_value("hyperparameter", k, v)?;
        }
        self.update(|_, r, _| {
            r.params.extend(params);
            Ok(())
        })
    }

    /// Sets one hyperparameter.
    pub fn set_param(&self, key: &str, value: Value) -> Result<()> {
        self.set_params([(key.to_string(), value)])
    }

    /// Appends console lines (timestamps taken now); returns the first
    /// line's sequence number.
    pub fn log_lines<'a, I: IntoIterator<Item = (Stream, &'a str)>>(
        &self,
        lines: I,
    ) -> Result<u64> {
        let lines: Vec<_> = lines.into_iter().collect();
        let id = self.id;
        self.update(|_, r, batch| {
            let first = r.console_lines;
            let ts_ms = now_ms();
            for (stream, text) in lines {
                console::put(
                    batch,
                    &id,
                    r.console_lines,
                    &ConsoleRecord {
                        ts_ms,
                        stream,
                        text: text.trim_end_matches('\n').to_string(),
                    },
                );
                r.console_lines += 1;
            }
            Ok(first)
        })
    }

    /// Appends one console line.
    pub fn log(&self, stream: Stream, text: &str) -> Result<u64> {
        self.log_lines([(stream, text)])
    }

    /// Console lines from `from` on, at most `limit`.
    pub fn console(&self, from: u64, limit: usize) -> Result<Vec<ConsoleLine>> {
        console::from(self.store.chunks().meta(), &self.id, from)
            .take(limit)
            .map(|line| {
                let (seq, rec) = line?;
                Ok(ConsoleLine {
                    seq,
                    ts_ms: rec.ts_ms,
                    stream: rec.stream,
                    text: rec.text,
                })
            })
            .collect()
    }

    /// The last `n` console lines.
    pub fn console_tail(&self, n: usize) -> Result<Vec<ConsoleLine>> {
        let total = load_experiment(self.store.chunks().meta(), &self.id)?.console_lines;
        self.console(total.saturating_sub(n as u64), n)
    }

    /// Stores an artifact revision under `name` (the next revision if the
    /// name exists: nothing is overwritten). Returns the revision.
    pub fn add_artifact(
        &self,
        name: &str,
        body: ArtifactBody,
        metadata: BTreeMap<String, Value>,
    ) -> Result<u32> {
        self.put_artifact(name, body, metadata, None)
    }

    /// [`Experiment::add_artifact`] of a staged blob
    /// ([`crate::BlobWriter::stage`]): the blob and the artifact record are
    /// committed together, in one commit; on error neither is visible.
    ///
    /// # Errors
    /// As [`Experiment::add_artifact`]; [`Error::WrongStore`] if another
    /// store handle staged the blob.
    pub fn add_artifact_staged(
        &self,
        name: &str,
        blob: StagedBlob,
        metadata: BTreeMap<String, Value>,
    ) -> Result<u32> {
        check_same_store(
            || format!("staged blob {}", blob.id()),
            blob.store(),
            &self.store,
        )?;
        let body = ArtifactBody::Blob {
            blob: blob.id(),
            size: blob.len(),
        };
        let revision = self.put_artifact(name, body, metadata, Some(&blob))?;
        blob.committed();
        Ok(revision)
    }

    /// Checks and commits an artifact record; a blob body's bytes are
    /// `staged` (committed here) or already stored.
    fn put_artifact(
        &self,
        name: &str,
        body: ArtifactBody,
        metadata: BTreeMap<String, Value>,
        staged: Option<&StagedBlob>,
    ) -> Result<u32> {
        check_label("artifact name", name, 256)?;
        for (k, v) in &metadata {
            check_key("artifact metadata key", k)?;
            check_value("artifact metadata key", k, v)?;
        }
        if let ArtifactBody::Inline(v) = &body {
            check_value("inline artifact", name, v)?;
        }
        let id = self.id;
        let chunks = staged.map_or(&[][..], |b| &b.chunks[..]);
        update_entity(
            &self.store,
            &id,
            chunks,
            |meta, _: &mut ExperimentRecord, batch, stats| {
                if let Some(b) = staged {
                    b.apply(meta, stats, batch, &mut HashSet::new(), |_| false)?;
                } else if let ArtifactBody::Blob { blob, size } = &body {
                    let rec =
                        blobs::get(meta, blob)?.ok_or_else(|| Error::not_found("blob", blob))?;
                    if rec.size != *size {
                        return Err(Error::invalid(
                            "artifact size",
                            size,
                            format!("blob {blob} holds {} bytes", rec.size),
                        ));
                    }
                }
                if let ArtifactBody::Blob { blob, .. } = &body {
                    refs::change(batch, Count::Blob(*blob), 1);
                }
                let revision = match artifacts::last_revision(meta, &id, name)? {
                    Some(r) => r + 1,
                    None => 1,
                };
                artifacts::put(
                    batch,
                    &id,
                    name,
                    revision,
                    &ArtifactRecord {
                        body,
                        metadata,
                        created_ms: now_ms(),
                    },
                );
                Ok(revision)
            },
        )
    }

    /// An artifact: the given revision, or the latest.
    pub fn artifact(&self, name: &str, revision: Option<u32>) -> Result<Artifact> {
        check_label("artifact name", name, 256)?;
        let (revision, rec) =
            artifacts::find(self.store.chunks().meta(), &self.id, name, revision)?.ok_or_else(
                || Error::not_found("artifact", format!("{name} of {}", what(&self.id))),
            )?;
        Ok(Artifact {
            name: name.to_string(),
            revision,
            body: rec.body,
            metadata: rec.metadata,
            created_ms: rec.created_ms,
        })
    }

    /// All artifact revisions, by name then revision.
    pub fn artifacts(&self) -> Result<Vec<Artifact>> {
        artifacts::of(self.store.chunks().meta(), &self.id)
            .map(|a| {
                let (name, revision, rec) = a?;
                Ok(Artifact {
                    name,
                    revision,
                    body: rec.body,
                    metadata: rec.metadata,
                    created_ms: rec.created_ms,
                })
            })
            .collect()
    }

    /// Reports one scalar: `metric`/`variant` at `iteration`.
    pub fn report_scalar(
        &self,
        metric: &str,
        variant: &str,
        iteration: u64,
        value: f64,
    ) -> Result<()> {
        self.report_scalars([(metric, variant, iteration, value)])
    }

    /// Reports many scalars, `(metric, variant, iteration, value)`, in one
    /// commit: all of them or, if one is invalid, none. A logger that
    /// gathers a step's metrics pays one commit for them.
    pub fn report_scalars<'a, I: IntoIterator<Item = (&'a str, &'a str, u64, f64)>>(
        &self,
        points: I,
    ) -> Result<()> {
        let points: Vec<_> = points.into_iter().collect();
        for (metric, variant, _, _) in &points {
            check_scalar(metric, variant)?;
        }
        let id = self.id;
        self.update(|_, _, batch| {
            for (metric, variant, iteration, value) in points {
                scalars::put(batch, &id, metric, variant, iteration, value);
            }
            Ok(())
        })
    }

    /// The series of one metric: (variant, iteration, value), by variant then iteration.
    pub fn scalars(&self, metric: &str) -> Result<Vec<(String, u64, f64)>> {
        check_label("metric", metric, 128)?;
        scalars::series(self.store.chunks().meta(), &self.id, metric)
    }

    /// Records that this experiment used `version` of `model` as an input.
    pub fn use_model(&self, model: EntityId, version: u32) -> Result<()> {
        self.update(|meta, r, _| {
            super::version::load_version(meta, &model, version)?;
            if !r.inputs.contains(&(model, version)) {
                r.inputs.push((model, version));
            }
            Ok(())
        })
    }
}

/// Filters over experiments. Results come in creation order (ids are UUID
/// v7), a page at a time: pass the last id of a page to
/// [`ExperimentQuery::after`] for the next.
#[must_use]
pub struct ExperimentQuery {
    store: Arc<Core>,
    project: Option<String>,
    name_prefix: Option<String>,
    status: Option<Status>,
    tag: Option<String>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    after: Option<EntityId>,
    limit: usize,
}

impl ExperimentQuery {
    /// Only this project.
    pub fn project(mut self, p: impl Into<String>) -> Self {
        self.project = Some(p.into());
        self
    }
    /// Only names starting with this.
    pub fn name_prefix(mut self, p: impl Into<String>) -> Self {
        self.name_prefix = Some(p.into());
        self
    }
    /// Only this status.
    pub fn status(mut self, s: Status) -> Self {
        self.status = Some(s);
        self
    }
    /// Only experiments with this tag.
    pub fn tag(mut self, t: impl Into<String>) -> Self {
        self.tag = Some(t.into());
        self
    }
    /// Only experiments created in `[from_ms, to_ms)`.
    pub fn created_between(mut self, from_ms: u64, to_ms: u64) -> Self {
        self.from_ms = Some(from_ms);
        self.to_ms = Some(to_ms);
        self
    }
    /// Start after this id (the last of the previous page).
    pub fn after(mut self, id: EntityId) -> Self {
        self.after = Some(id);
        self
    }
    /// Page size (default 100).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// Runs the query. One index drives the scan (tag, status, project, or
    /// the records themselves, in that order of preference), in id order
    /// from the cursor; the other filters are checked on each record.
    pub fn run(self) -> Result<Vec<ExperimentInfo>> {
        if self.limit == 0 {
            return Ok(Vec::new());
        }
        let meta = self.store.chunks().meta();
        let by = if let Some(t) = &self.tag {
            Some(ExperimentsBy::Tag(t))
        } else if let Some(s) = self.status {
            Some(ExperimentsBy::Status(s))
        } else {
            self.project.as_deref().map(ExperimentsBy::Project)
        };
        let mut lower = self
            .from_ms
            .map(EntityId::lower_bound_at)
            .unwrap_or(EntityId([0; 16]));
        if let Some(a) = self.after {
            // The smallest id greater than `a`.
            let mut next = a.0;
            for b in next.iter_mut().rev() {
                *b = b.wrapping_add(1);
                if *b != 0 {
                    break;
                }
            }
            lower = lower.max(EntityId(next));
        }
        let upper = self.to_ms.map(EntityId::lower_bound_at);
        let mut out = Vec::new();
        let mut consider = |id: EntityId| -> Result<bool> {
            if upper.is_some_and(|u| id >= u) {
                return Ok(false);
            }
            let exp = Experiment {
                store: self.store.clone(),
                id,
            };
            let r = load_experiment(meta, &id)?;
            let keep = self.project.as_ref().is_none_or(|p| &r.project == p)
                && self
                    .name_prefix
                    .as_ref()
                    .is_none_or(|p| r.name.starts_with(p.as_str()))
                && self.status.is_none_or(|s| r.status == s)
                && self.tag.as_ref().is_none_or(|t| r.tags.contains(t));
            if keep {
                out.push(exp.info()?);
            }
            Ok(out.len() < self.limit)
        };
        match by {
            Some(by) => {
                for id in index::experiments_by(meta, &by, &lower) {
                    if !consider(id?)? {
                        break;
                    }
                }
            }
            None => {
                for id in experiments::ids_from(meta, &lower) {
                    if !consider(id?)? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}
