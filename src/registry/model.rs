//! Models: independent entities with their own ids, numbered immutable
//! versions (each a set of path → blob), typed metadata, aliases and URLs.
//!
//! A model may be created by an experiment (its `experiment` link) and
//! used by others (their inputs). Finalizing a model makes every later
//! change an error. File formats are detected from content when a version is
//! added, and the framework is guessed from them unless the caller set it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::common::{
    check_key, check_label, check_metadata_key, check_value, now_ms, update_entity, Entity,
};
use super::experiment::load_experiment;
use super::version::{load_version, ModelVersion};
use crate::blob::Core;
use crate::error::{Error, Result};
use crate::formats::detect::Framework;
use crate::id::ChunkId;
use crate::meta::names::check_name;
use crate::meta::records::{FileEntry, StatsRecord};
use crate::meta::registry_index as index_keys;
use crate::meta::registry_records::{EntityId, External, ModelRecord};
use crate::meta::tables::{index, models};
use crate::meta::{Batch, Meta};
use crate::pack::ChunkLoc;
use crate::query::{Query, Value};

/// URL scheme of model URLs: `modelvault://<store id>/models/<model id>@<version>`.
pub const URL_SCHEME: &str = "modelvault://";

/// What to create: [`Store::create_model`].
#[derive(Clone, Debug)]
#[must_use]
pub struct NewModel {
    name: String,
    project: String,
    framework: Option<Framework>,
    tags: Vec<String>,
    labels: BTreeMap<String, i64>,
    design: Option<String>,
    metadata: BTreeMap<String, Value>,
    comment: Option<String>,
    experiment: Option<EntityId>,
    parent: Option<EntityId>,
}

impl NewModel {
    /// A model called `name` (see [`check_name`]) in the default project.
    pub fn new(name: impl Into<String>) -> Self {
        NewModel {
            name: name.into(),
            project: "default".into(),
            framework: None,
            tags: Vec::new(),
            labels: BTreeMap::new(),
            design: None,
            metadata: BTreeMap::new(),
            comment: None,
            experiment: None,
            parent: None,
        }
    }
    /// Project (default `default`).
    pub fn project(mut self, p: impl Into<String>) -> Self {
        self.project = p.into();
        self
    }
    /// Framework; when not set, it is guessed from the files of each version.
    pub fn framework(mut self, f: Framework) -> Self {
        self.framework = Some(f);
        self
    }
    /// Tags.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
    /// Class labels: name → index.
    pub fn labels(mut self, labels: BTreeMap<String, i64>) -> Self {
        self.labels = labels;
        self
    }
    /// Design / configuration text.
    pub fn design(mut self, d: impl Into<String>) -> Self {
        self.design = Some(d.into());
        self
    }
    /// One typed metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, v: Value) -> Self {
        self.metadata.insert(key.into(), v);
        self
    }
    /// Comment.
    pub fn comment(mut self, c: impl Into<String>) -> Self {
        self.comment = Some(c.into());
        self
    }
    /// The experiment that creates this model.
    pub fn experiment(mut self, id: EntityId) -> Self {
        self.experiment = Some(id);
        self
    }
    /// The model this one derives from (a base model, a previous checkpoint).
    pub fn parent(mut self, id: EntityId) -> Self {
        self.parent = Some(id);
        self
    }
}

/// A snapshot of a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ModelInfo {
    /// Unique id (UUID v7).
    pub id: EntityId,
    /// Name.
    pub name: String,
    /// Project.
    pub project: String,
    /// Framework (set or guessed).
    pub framework: Framework,
    /// Tags.
    pub tags: Vec<String>,
    /// Class labels.
    pub labels: BTreeMap<String, i64>,
    /// Design text.
    pub design: Option<String>,
    /// Typed metadata.
    pub metadata: BTreeMap<String, Value>,
    /// Comment.
    pub comment: Option<String>,
    /// The experiment that created it.
    pub experiment: Option<EntityId>,
    /// Parent model.
    pub parent: Option<EntityId>,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Last change, Unix ms.
    pub updated_ms: u64,
    /// When it was finalized (published), if it was.
    pub finalized_ms: Option<u64>,
    /// Latest version number (0: none yet).
    pub latest: u32,
    /// Aliases → versions.
    pub aliases: BTreeMap<String, u32>,
    /// Where the bytes live, for a model registered by URL.
    pub external: Option<External>,
}

/// A model and its latest version (for listings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ModelSummary {
    /// Id.
    pub id: EntityId,
    /// Name.
    pub name: String,
    /// Latest version.
    pub latest: u32,
}

/// A handle on one model.
#[derive(Clone)]
pub struct Model {
    pub(crate) store: Arc<Core>,
    pub(crate) id: EntityId,
}

impl Entity for ModelRecord {
    const KIND: &'static str = "model";
    fn load(meta: &Meta, id: &EntityId) -> Result<Option<Self>> {
        models::get_as(meta, id, Self::KIND)
    }
    fn save(&self, batch: &mut Batch, id: &EntityId) {
        models::put(batch, id, self);
    }
    fn index_keys(&self, id: &EntityId) -> BTreeSet<Vec<u8>> {
        index_keys::model_keys(id, self)
    }
    fn frozen(&self) -> Option<String> {
        self.finalized_ms.map(|_| "finalized".to_string())
    }
    fn touch(&mut self, now_ms: u64) {
        self.updated_ms = now_ms;
    }
}

pub(crate) fn load_model(meta: &Meta, id: &EntityId) -> Result<ModelRecord> {
    models::get(meta, id)?.ok_or_else(|| Error::not_found("model", id))
}

/// Checks a model record from outside (a bundle) against the rules a
/// record written through the API meets.
pub(crate) fn check_model_record(r: &ModelRecord) -> Result<()> {
    check_name(&r.name)?;
    check_label("project", &r.project, 256)?;
    let mut tags = r.tags.clone();
    check_tags(&mut tags)?;
    if tags != r.tags {
        return Err(Error::invalid(
            "tags",
            r.tags.join(","),
            "are not sorted and distinct",
        ));
    }
    check_metadata(&r.metadata)?;
    for k in r.labels.keys() {
        check_label("label", k, 256)?;
    }
    if let Some(ext) = &r.external {
        check_label("model URL", &ext.url, 4096)?;
    }
    for (alias, &v) in &r.aliases {
        check_key("alias", alias)?;
        if v == 0 || v > r.latest {
            return Err(Error::invalid(
                "alias",
                alias,
                format!("points at version {v}, past the latest ({})", r.latest),
            ));
        }
    }
    Ok(())
}

fn check_tags(tags: &mut Vec<String>) -> Result<()> {
    tags.sort();
    tags.dedup();
    tags.iter().try_for_each(|t| check_label("tag", t, 128))
}

fn check_metadata(m: &BTreeMap<String, Value>) -> Result<()> {
    m.iter().try_for_each(|(k, v)| {
        check_metadata_key(k)?;
        check_value("metadata key", k, v)
    })
}

impl Core {
    /// See [`crate::Store::create_model`].
    pub(crate) fn create_model(self: &Arc<Self>, spec: NewModel) -> Result<Model> {
        let id = EntityId::new_v7();
        self.insert_model(id, spec, None)?;
        Ok(Model {
            store: self.clone(),
            id,
        })
    }

    /// See [`crate::Store::register_external_model`].
    pub(crate) fn register_external_model(
        self: &Arc<Self>,
        spec: NewModel,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<Model> {
        check_label("model URL", url, 4096)?;
        let ext = External {
            url: url.to_string(),
            checksum: checksum.map(str::to_string),
        };
        let id = EntityId::new_v7();
        let id = self.insert_model(id, spec, Some(ext))?;
        Ok(Model {
            store: self.clone(),
            id,
        })
    }

    fn insert_model(
        &self,
        id: EntityId,
        mut spec: NewModel,
        external: Option<External>,
    ) -> Result<EntityId> {
        check_name(&spec.name)?;
        check_label("project", &spec.project, 256)?;
        check_tags(&mut spec.tags)?;
        check_metadata(&spec.metadata)?;
        for k in spec.labels.keys() {
            check_label("label", k, 256)?;
        }
        let now = now_ms();
        let rec = ModelRecord {
            name: spec.name,
            project: spec.project,
            framework: spec.framework.unwrap_or(Framework::Unknown),
            framework_set: spec.framework.is_some(),
            tags: spec.tags,
            labels: spec.labels,
            design: spec.design,
            metadata: spec.metadata,
            comment: spec.comment,
            experiment: spec.experiment,
            parent: spec.parent,
            created_ms: now,
            updated_ms: now,
            finalized_ms: None,
            latest: 0,
            aliases: BTreeMap::new(),
            external,
        };
        self.chunks()
            .commit(&[], Batch::default(), |meta, _, batch| {
                if let Some(ext) = &rec.external {
                    if let Some(existing) = index::model_by_url(meta, &ext.url)? {
                        return Ok(existing);
                    }
                    index::put_url(batch, &ext.url, &id);
                }
                if let Some(e) = &rec.experiment {
                    let exp = load_experiment(meta, e)?;
                    if exp.status.is_final() {
                        return Err(Error::Immutable {
                            what: format!("experiment {e}"),
                            state: exp.status.name().into(),
                        });
                    }
                }
                if let Some(p) = &rec.parent {
                    load_model(meta, p)?;
                }
                index::apply(batch, &BTreeSet::new(), &index_keys::model_keys(&id, &rec));
                models::put(batch, &id, &rec);
                Ok(id)
            })
    }

    /// See [`crate::Store::model`].
    pub(crate) fn model(self: &Arc<Self>, id: EntityId) -> Result<Model> {
        load_model(self.chunks().meta(), &id)?;
        Ok(Model {
            store: self.clone(),
            id,
        })
    }

    /// See [`crate::Store::model_by_name`].
    pub(crate) fn model_by_name(self: &Arc<Self>, name: &str) -> Result<Model> {
        check_name(name)?;
        let id = index::models_named(self.chunks().meta(), name)?
            .into_iter()
            .max()
            .ok_or_else(|| Error::not_found("model", name))?;
        Ok(Model {
            store: self.clone(),
            id,
        })
    }

    /// See [`crate::Store::resolve_model`].
    pub(crate) fn resolve_model(self: &Arc<Self>, spec: &str) -> Result<(Model, Option<u32>)> {
        if let Some(rest) = spec.strip_prefix(URL_SCHEME) {
            let (store, path) = rest.split_once('/').ok_or_else(|| {
                Error::invalid(
                    "model URL",
                    spec,
                    "expected modelvault://STORE/models/ID[@VERSION]",
                )
            })?;
            if store != self.id().to_string() {
                return Err(Error::invalid(
                    "model URL",
                    spec,
                    format!("names store {store}, this is {}", self.id()),
                ));
            }
            let target = path
                .strip_prefix("models/")
                .ok_or_else(|| Error::invalid("model URL", spec, "expected a models/ path"))?;
            return self.resolve_model(target);
        }
        let (head, sel) = match spec.rsplit_once('@') {
            Some((h, s)) => (h, Some(s)),
            None => (spec, None),
        };
        let model = match head.parse::<EntityId>() {
            Ok(id) => self.model(id)?,
            Err(_) => self.model_by_name(head)?,
        };
        let version = match sel {
            None => None,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => return Err(Error::invalid("version", s, "versions are numbered from 1")),
                Ok(v) => Some(v),
                Err(_) => {
                    let info = model.info()?;
                    Some(
                        *info.aliases.get(s).ok_or_else(|| {
                            Error::not_found("alias", format!("{s} of model {head}"))
                        })?,
                    )
                }
            },
        };
        Ok((model, version))
    }

    /// See [`crate::Store::find_models`].
    pub(crate) fn find_models(self: &Arc<Self>, q: &Query) -> Result<Vec<ModelInfo>> {
        let ids = super::search::candidates(self.chunks().meta(), q)?;
        let mut out = Vec::new();
        let mut check = |id: EntityId| -> Result<()> {
            let m = Model {
                store: self.clone(),
                id,
            };
            let info = m.info()?;
            if q.matches(&super::search::ModelFields(&info)) {
                out.push(info);
            }
            Ok(())
        };
        match ids {
            Some(ids) => ids.into_iter().try_for_each(&mut check)?,
            None => {
                for id in models::ids(self.chunks().meta()) {
                    check(id?)?;
                }
            }
        }
        Ok(out)
    }

    /// See [`crate::Store::models`].
    pub(crate) fn models(self: &Arc<Self>) -> Result<Vec<ModelSummary>> {
        models::all(self.chunks().meta())
            .map(|m| {
                let (id, rec) = m?;
                Ok(ModelSummary {
                    id,
                    name: rec.name,
                    latest: rec.latest,
                })
            })
            .collect()
    }

    /// See [`crate::Store::versions_with_blob`].
    pub(crate) fn versions_with_blob(
        self: &Arc<Self>,
        blob: &crate::id::BlobId,
    ) -> Result<Vec<(EntityId, u32)>> {
        index::versions_with_blob(self.chunks().meta(), blob)
    }

    /// See [`crate::Store::commit_version`].
    pub(crate) fn commit_version(
        self: &Arc<Self>,
        name: &str,
        files: Vec<FileEntry>,
    ) -> Result<u32> {
        let model = match self.model_by_name(name) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => self.create_model(NewModel::new(name))?,
            Err(e) => return Err(e),
        };
        model.add_version(files)
    }

    /// See [`crate::Store::version`].
    pub(crate) fn version(
        self: &Arc<Self>,
        name: &str,
        version: Option<u32>,
    ) -> Result<ModelVersion> {
        self.model_by_name(name)?.version(version)
    }

    /// See [`crate::Store::versions`].
    pub(crate) fn versions(self: &Arc<Self>, name: &str) -> Result<Vec<u32>> {
        self.model_by_name(name)?.versions()
    }
}

impl Model {
    /// The model's id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// A snapshot of the record.
    pub fn info(&self) -> Result<ModelInfo> {
        let r = load_model(self.store.chunks().meta(), &self.id)?;
        Ok(ModelInfo {
            id: self.id,
            name: r.name,
            project: r.project,
            framework: r.framework,
            tags: r.tags,
            labels: r.labels,
            design: r.design,
            metadata: r.metadata,
            comment: r.comment,
            experiment: r.experiment,
            parent: r.parent,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            finalized_ms: r.finalized_ms,
            latest: r.latest,
            aliases: r.aliases,
            external: r.external,
        })
    }

    /// The stable URL of a version (`None`: latest at resolution time).
    pub fn url(&self, version: Option<u32>) -> String {
        let base = format!("{URL_SCHEME}{}/models/{}", self.store.id(), self.id);
        match version {
            Some(v) => format!("{base}@{v}"),
            None => base,
        }
    }

    fn update<T: Send>(
        &self,
        f: impl FnOnce(&Meta, &mut ModelRecord, &mut Batch, &mut StatsRecord) -> Result<T> + Send,
    ) -> Result<T> {
        self.update_with(&[], f)
    }

    /// [`Model::update`] in a commit that also indexes `chunks`.
    pub(super) fn update_with<T: Send>(
        &self,
        chunks: &[(ChunkId, ChunkLoc)],
        f: impl FnOnce(&Meta, &mut ModelRecord, &mut Batch, &mut StatsRecord) -> Result<T> + Send,
    ) -> Result<T> {
        update_entity(&self.store, &self.id, chunks, f)
    }

    /// Sets (or replaces) one metadata entry.
    pub fn set_metadata(&self, key: &str, value: Value) -> Result<()> {
        check_metadata_key(key)?;
        check_value("metadata key", key, &value)?;
        self.update(|_, r, _, _| {
            r.metadata.insert(key.to_string(), value);
            Ok(())
        })
    }

    /// Removes a metadata entry (no error if absent).
    pub fn remove_metadata(&self, key: &str) -> Result<()> {
        self.update(|_, r, _, _| {
            r.metadata.remove(key);
            Ok(())
        })
    }

    /// Adds tags.
    pub fn add_tags<I: IntoIterator<Item = S>, S: Into<String>>(&self, tags: I) -> Result<()> {
        let mut tags: Vec<String> = tags.into_iter().map(Into::into).collect();
        check_tags(&mut tags)?;
        self.update(|_, r, _, _| {
            r.tags.extend(tags);
            r.tags.sort();
            r.tags.dedup();
            Ok(())
        })
    }

    /// Removes a tag.
    pub fn remove_tag(&self, tag: &str) -> Result<()> {
        self.update(|_, r, _, _| {
            r.tags.retain(|t| t != tag);
            Ok(())
        })
    }

    /// Replaces the class labels.
    pub fn set_labels(&self, labels: BTreeMap<String, i64>) -> Result<()> {
        labels
            .keys()
            .try_for_each(|k| check_label("label", k, 256))?;
        self.update(|_, r, _, _| {
            r.labels = labels;
            Ok(())
        })
    }

    /// Sets design text, comment and framework in one change; `None` keeps a field.
    pub fn describe(
        &self,
        design: Option<String>,
        comment: Option<String>,
        framework: Option<Framework>,
    ) -> Result<()> {
        self.update(|_, r, _, _| {
            if design.is_some() {
                r.design = design;
            }
            if comment.is_some() {
                r.comment = comment;
            }
            if let Some(f) = framework {
                r.framework = f;
                r.framework_set = true;
            }
            Ok(())
        })
    }

    /// Creates alias `name` → `version`.
    ///
    /// # Errors
    /// [`Error::Exists`] if the alias exists (use [`Model::move_alias`]).
    pub fn set_alias(&self, name: &str, version: u32) -> Result<()> {
        self.alias(name, version, false)
    }

    /// Points an existing or new alias at `version`.
    pub fn move_alias(&self, name: &str, version: u32) -> Result<()> {
        self.alias(name, version, true)
    }

    fn alias(&self, name: &str, version: u32, may_move: bool) -> Result<()> {
        check_key("alias", name)?;
        if name.parse::<u32>().is_ok() || name == "latest" {
            return Err(Error::invalid(
                "alias",
                name,
                "must not be a number or 'latest'",
            ));
        }
        let id = self.id;
        self.update(|meta, r, _, _| {
            load_version(meta, &id, version)?;
            if !may_move && r.aliases.contains_key(name) {
                return Err(Error::Exists {
                    what: format!("alias {name} of model {id}"),
                });
            }
            r.aliases.insert(name.to_string(), version);
            Ok(())
        })
    }

    /// Removes an alias.
    pub fn remove_alias(&self, name: &str) -> Result<()> {
        let id = self.id;
        self.update(|_, r, _, _| {
            r.aliases
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| Error::not_found("alias", format!("{name} of model {id}")))
        })
    }

    /// Finalizes (publishes) the model: every later change is an error.
    pub fn finalize(&self) -> Result<()> {
        self.update(|_, r, _, _| {
            r.finalized_ms = Some(now_ms());
            Ok(())
        })
    }

    /// Experiments that used this model: (experiment, version).
    pub fn used_by(&self) -> Result<Vec<(EntityId, u32)>> {
        index::used_by(self.store.chunks().meta(), &self.id)
    }
}
