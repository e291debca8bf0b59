//! Deleting model versions, models and experiments, and retention rules.
//!
//! A deletion removes records and their index keys and releases the blob
//! references they held, in one commit; blobs left with no reference or
//! hold go in that commit too, and their chunks are freed by the next
//! [`crate::Store::gc`]. Every deletion can be a dry run, which reports the
//! same figures and changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::common::now_ms;
use super::experiment::{load_experiment, Experiment};
use super::model::{load_model, Model};
use super::version::load_version;
use crate::blob::Core;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::meta::records::StatsRecord;
use crate::meta::registry_index as index_keys;
use crate::meta::registry_records::{ArtifactBody, EntityId, ModelRecord, VersionRecord};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{artifacts, console, experiments, index, models, scalars, versions};
use crate::meta::{Batch, Meta};

/// How a deletion behaves. Default: refuse finalized models, keep models an
/// experiment created, really delete.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct DeleteOptions {
    force: bool,
    dry_run: bool,
    with_models: bool,
}

impl DeleteOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delete finalized models (and their versions) too.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }

    /// Report what would be deleted and freed; change nothing.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Deleting an experiment also deletes the models it created.
    pub fn with_models(mut self, yes: bool) -> Self {
        self.with_models = yes;
        self
    }
}

/// Which versions a retention rule keeps. A version is kept if any rule
/// keeps it; versions of finalized models and versions an alias names are
/// always kept. At least one rule must be set.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct Retention {
    keep_last: Option<u32>,
    keep_within: Option<Duration>,
}

impl Retention {
    /// No rule yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the newest `n` versions.
    pub fn keep_last(mut self, n: u32) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Keep versions created less than `d` ago (older unfinalized,
    /// unaliased versions go).
    pub fn keep_within(mut self, d: Duration) -> Self {
        self.keep_within = Some(d);
        self
    }
}

/// What a deletion removed or, for a dry run, would remove.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeleteReport {
    /// True if nothing was changed.
    pub dry_run: bool,
    /// Experiments deleted.
    pub experiments: Vec<EntityId>,
    /// Models deleted.
    pub models: Vec<EntityId>,
    /// Versions deleted, as (model, version).
    pub versions: Vec<(EntityId, u32)>,
    /// Blobs left with no reference or hold, deleted with the records.
    pub blobs_freed: u64,
    /// Pack bytes of the chunks no longer referenced: what the next
    /// `gc` reclaims (with compaction).
    pub bytes_freed: u64,
}

/// The writes of one deletion, collected before anything is committed.
#[derive(Default)]
struct Plan {
    batch: Batch,
    drops: BTreeMap<BlobId, u64>,
    report: DeleteReport,
    versions: u64,
    logical: u64,
}

impl Plan {
    fn release(&mut self, blob: BlobId) {
        *self.drops.entry(blob).or_insert(0) += 1;
    }

    /// Deletes one version; `rec` loses the aliases naming it.
    fn version(&mut self, id: &EntityId, rec: &mut ModelRecord, v: u32, vr: &VersionRecord) {
        versions::delete(&mut self.batch, id, v);
        index::apply(
            &mut self.batch,
            &index_keys::version_keys(id, v, vr),
            &BTreeSet::new(),
        );
        for f in &vr.files {
            self.release(f.blob);
            self.logical += f.size;
        }
        rec.aliases.retain(|_, to| *to != v);
        self.versions += 1;
        self.report.versions.push((*id, v));
    }

    /// Deletes a model with all its versions.
    fn model(&mut self, meta: &Meta, id: &EntityId, force: bool) -> Result<()> {
        let mut rec = load_model(meta, id)?;
        if rec.finalized_ms.is_some() && !force {
            return Err(Error::Immutable {
                what: format!("model {} ({id})", rec.name),
                state: "finalized (force the deletion to delete it anyway)".into(),
            });
        }
        let old_keys = index_keys::model_keys(id, &rec);
        for (v, vr) in versions_of(meta, id)? {
            self.version(id, &mut rec, v, &vr);
        }
        index::apply(&mut self.batch, &old_keys, &BTreeSet::new());
        if let Some(ext) = &rec.external {
            index::delete_url(&mut self.batch, &ext.url);
        }
        models::delete(&mut self.batch, id);
        self.report.models.push(*id);
        Ok(())
    }

    /// Deletes an experiment with its console, scalars and artifacts (and,
    /// if asked, the models it created).
    fn experiment(&mut self, meta: &Meta, id: &EntityId, opts: &DeleteOptions) -> Result<()> {
        let rec = load_experiment(meta, id)?;
        index::apply(
            &mut self.batch,
            &index_keys::experiment_keys(id, &rec),
            &BTreeSet::new(),
        );
        console::delete_all(&mut self.batch, id);
        scalars::delete_all(&mut self.batch, id);
        for a in artifacts::delete_all(meta, &mut self.batch, id)? {
            if let ArtifactBody::Blob { blob, .. } = a.body {
                self.release(blob);
            }
        }
        experiments::delete(&mut self.batch, id);
        self.report.experiments.push(*id);
        if opts.with_models {
            for m in index::models_created_by_checked(meta, id)? {
                self.model(meta, &m, opts.force)?;
            }
        }
        Ok(())
    }

    /// Fills in the freed figures (from the committed counts) and, unless a
    /// dry run, moves the writes into `batch`.
    fn finish(
        mut self,
        meta: &Meta,
        stats: &mut StatsRecord,
        batch: &mut Batch,
        dry_run: bool,
    ) -> Result<DeleteReport> {
        let (blobs, bytes) = crate::gc::estimate::freed_by(meta, &self.drops)?;
        self.report.blobs_freed = blobs;
        self.report.bytes_freed = bytes;
        self.report.dry_run = dry_run;
        if !dry_run {
            for (blob, n) in &self.drops {
                refs::change(&mut self.batch, Count::Blob(*blob), -(*n as i64));
            }
            batch.extend(self.batch);
            stats.versions = stats.versions.saturating_sub(self.versions);
            stats.logical_bytes = stats.logical_bytes.saturating_sub(self.logical);
        }
        Ok(self.report)
    }
}

fn versions_of(meta: &Meta, id: &EntityId) -> Result<Vec<(u32, VersionRecord)>> {
    versions::of(meta, id).collect()
}

/// Runs `plan` under the commit lock and commits it (unless a dry run).
fn run(
    store: &Arc<Core>,
    dry_run: bool,
    plan: impl FnOnce(&Meta, &mut Plan) -> Result<()> + Send,
) -> Result<DeleteReport> {
    if dry_run {
        let meta = store.chunks().meta();
        let mut p = Plan::default();
        plan(meta, &mut p)?;
        let mut stats = StatsRecord::default();
        return p.finish(meta, &mut stats, &mut Batch::default(), true);
    }
    store
        .chunks()
        .commit(&[], Batch::default(), |meta, stats, batch| {
            let mut p = Plan::default();
            plan(meta, &mut p)?;
            p.finish(meta, stats, batch, false)
        })
}

/// Saves `rec` after version deletions changed it.
fn save_model(batch: &mut Batch, id: &EntityId, old: &ModelRecord, rec: &mut ModelRecord) {
    rec.updated_ms = now_ms();
    index::apply(
        batch,
        &index_keys::model_keys(id, old),
        &index_keys::model_keys(id, rec),
    );
    models::put(batch, id, rec);
}

impl Model {
    /// Deletes version `v`. Aliases naming it go with it; version numbers are
    /// never reused.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a version that does not exist;
    /// [`Error::Immutable`] if the model is finalized and not forced.
    pub fn delete_version(&self, v: u32, opts: DeleteOptions) -> Result<DeleteReport> {
        let id = self.id;
        run(&self.store, opts.dry_run, |meta, p| {
            let old = load_model(meta, &id)?;
            if old.finalized_ms.is_some() && !opts.force {
                return Err(Error::Immutable {
                    what: format!("model {} ({id})", old.name),
                    state: "finalized (force the deletion to delete it anyway)".into(),
                });
            }
            let vr = load_version(meta, &id, v)?;
            let mut rec = old.clone();
            p.version(&id, &mut rec, v, &vr);
            save_model(&mut p.batch, &id, &old, &mut rec);
            Ok(())
        })
    }

    /// Deletes the model and all its versions.
    ///
    /// # Errors
    /// [`Error::Immutable`] if the model is finalized and not forced.
    pub fn delete(&self, opts: DeleteOptions) -> Result<DeleteReport> {
        let id = self.id;
        run(&self.store, opts.dry_run, |meta, p| {
            p.model(meta, &id, opts.force)
        })
    }

    /// Deletes the versions `rule` does not keep (see [`Retention`]). A
    /// finalized model keeps everything.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the rule keeps nothing explicitly (no rule set).
    pub fn prune(&self, rule: &Retention, dry_run: bool) -> Result<DeleteReport> {
        check_rule(rule)?;
        let (id, rule) = (self.id, *rule);
        run(&self.store, dry_run, |meta, p| {
            prune_plan(meta, p, &id, &rule)
        })
    }
}

fn check_rule(rule: &Retention) -> Result<()> {
    if rule.keep_last.is_none() && rule.keep_within.is_none() {
        return Err(Error::invalid(
            "retention rule",
            "(none)",
            "set keep-last and/or keep-within",
        ));
    }
    Ok(())
}

/// Adds to `p` the versions of model `id` that `rule` does not keep.
fn prune_plan(meta: &Meta, p: &mut Plan, id: &EntityId, rule: &Retention) -> Result<()> {
    let old = load_model(meta, id)?;
    if old.finalized_ms.is_some() {
        return Ok(());
    }
    let all = versions_of(meta, id)?;
    let aliased: BTreeSet<u32> = old.aliases.values().copied().collect();
    let newest: BTreeSet<u32> = all
        .iter()
        .rev()
        .take(rule.keep_last.unwrap_or(0) as usize)
        .map(|(v, _)| *v)
        .collect();
    let cutoff = rule
        .keep_within
        .map(|d| now_ms().saturating_sub(d.as_millis() as u64));
    let mut rec = old.clone();
    let before = p.report.versions.len();
    for (v, vr) in &all {
        let recent = cutoff.is_some_and(|c| vr.created_ms >= c);
        if !(aliased.contains(v) || newest.contains(v) || recent) {
            p.version(id, &mut rec, *v, vr);
        }
    }
    if p.report.versions.len() > before {
        save_model(&mut p.batch, id, &old, &mut rec);
    }
    Ok(())
}

impl Core {
    /// See [`crate::Store::prune_all`].
    pub(crate) fn prune_all(
        self: &Arc<Self>,
        rule: &Retention,
        dry_run: bool,
    ) -> Result<DeleteReport> {
        check_rule(rule)?;
        let rule = *rule;
        run(self, dry_run, |meta, p| {
            let ids = models::ids(meta).collect::<Result<Vec<_>>>()?;
            for id in &ids {
                prune_plan(meta, p, id, &rule)?;
            }
            Ok(())
        })
    }
}

impl Experiment {
    /// Deletes the experiment: its record, console, scalars and artifacts,
    /// and with [`DeleteOptions::with_models`] the models it created.
    /// Models it only used are untouched.
    ///
    /// # Errors
    /// [`Error::Immutable`] if a model it created is finalized and the
    /// deletion is not forced.
    pub fn delete(&self, opts: DeleteOptions) -> Result<DeleteReport> {
        let id = self.id;
        run(&self.store, opts.dry_run, |meta, p| {
            p.experiment(meta, &id, &opts)
        })
    }
}
