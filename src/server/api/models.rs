//! Models: create (stored or external), query, show, metadata, tags,
//! labels, aliases, finalize, versions. `{model}` is anything
//! [`Store::resolve_model`] accepts (id, name, `NAME@VERSION`,
//! `NAME@ALIAS`, `ID@VERSION`, a model URL, percent-encoded).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::experiments::entity;
use super::{json, run, typed, ApiError, JsonBody, Params, PathArgs, State};
use crate::formats::detect::Framework;
use crate::meta::records::FileEntry;
use crate::registry::model::{Model, ModelInfo, ModelSummary, NewModel};
use crate::registry::version::ModelVersion;
use crate::Store;

/// A model and the version its spec named (`None`: none named).
fn resolve(store: &Store, spec: &str) -> crate::Result<(Model, Option<u32>)> {
    store.resolve_model(spec)
}

/// The version `spec` names in `model`: a number, `latest`, or an alias.
pub(super) fn version_of(model: &Model, spec: &str) -> crate::Result<u32> {
    let info = model.info()?;
    let missing = || crate::Error::not_found("version", format!("{spec} of model {}", info.id));
    if spec == "latest" {
        return if info.latest > 0 {
            Ok(info.latest)
        } else {
            Err(missing())
        };
    }
    if let Ok(n) = spec.parse::<u32>() {
        return if n >= 1 && n <= info.latest {
            Ok(n)
        } else {
            Err(missing())
        };
    }
    info.aliases.get(spec).copied().ok_or_else(missing)
}

/// What to create (`POST /models`); `POST /models/external` adds `url`
/// and `checksum`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewModelBody {
    name: String,
    project: Option<String>,
    framework: Option<Framework>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, i64>,
    design: Option<String>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, serde_json::Value>)]
    metadata: BTreeMap<String, serde_json::Value>,
    comment: Option<String>,
    /// The creating experiment's id.
    experiment: Option<String>,
    /// The parent model's id.
    parent: Option<String>,
    /// External models only: where the bytes are.
    url: Option<String>,
    /// External models only: the checksum as given, e.g. `sha256:…`.
    checksum: Option<String>,
}

impl NewModelBody {
    fn spec(self) -> Result<(NewModel, Option<String>, Option<String>), ApiError> {
        let mut s = NewModel::new(self.name).tags(self.tags).labels(self.labels);
        if let Some(p) = self.project {
            s = s.project(p);
        }
        if let Some(f) = self.framework {
            s = s.framework(f);
        }
        if let Some(d) = self.design {
            s = s.design(d);
        }
        if let Some(c) = self.comment {
            s = s.comment(c);
        }
        for (k, v) in self.metadata {
            let v = typed(&k, v)?;
            s = s.metadata(k, v);
        }
        if let Some(e) = self.experiment {
            s = s.experiment(entity(&e)?);
        }
        if let Some(p) = self.parent {
            s = s.parent(entity(&p)?);
        }
        Ok((s, self.url, self.checksum))
    }
}

/// A model, with the URL of its latest version.
#[derive(Serialize, ToSchema)]
pub(crate) struct ModelView {
    #[serde(flatten)]
    info: ModelInfo,
    /// `modelvault://STORE/models/ID` (the latest version when resolved).
    url: String,
}

fn view(m: &Model) -> crate::Result<ModelView> {
    Ok(ModelView {
        info: m.info()?,
        url: m.url(None),
    })
}

#[utoipa::path(post, path = "/_api/v1/models", tag = "models", request_body = NewModelBody,
    responses((status = 201, body = ModelView), (status = 400, body = super::errors::ErrorBody)))]
pub(super) async fn create(
    axum::extract::State(st): axum::extract::State<State>,
    JsonBody(b): JsonBody<NewModelBody>,
) -> Result<Response, ApiError> {
    let (spec, url, _) = b.spec()?;
    if url.is_some() {
        return Err(ApiError::bad_request(
            "InvalidInput",
            "url: a model registered by URL is created with POST /_api/v1/models/external",
        ));
    }
    let v = run(&st, move |s| view(&s.create_model(spec)?)).await?;
    Ok(json(StatusCode::CREATED, v))
}

#[utoipa::path(post, path = "/_api/v1/models/external", tag = "models", request_body = NewModelBody,
    responses((status = 201, body = ModelView), (status = 400, body = super::errors::ErrorBody)))]
pub(super) async fn create_external(
    axum::extract::State(st): axum::extract::State<State>,
    JsonBody(b): JsonBody<NewModelBody>,
) -> Result<Response, ApiError> {
    let (spec, url, checksum) = b.spec()?;
    let Some(url) = url else {
        return Err(ApiError::bad_request(
            "InvalidInput",
            "url: an external model needs the URL of its bytes",
        ));
    };
    let v = run(&st, move |s| {
        view(&s.register_external_model(spec, &url, checksum.as_deref())?)
    })
    .await?;
    Ok(json(StatusCode::CREATED, v))
}

/// A model query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ModelQuery {
    /// In the query language (`framework = pytorch AND tag = prod`);
    /// without it, every model (summaries).
    query: Option<String>,
}

/// Models matching a query (full records), or every model (summaries).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ModelList {
    /// The answer to `?query=`.
    Found { items: Vec<ModelInfo> },
    /// Every model, without a query.
    All { items: Vec<ModelSummary> },
}

#[utoipa::path(get, path = "/_api/v1/models", tag = "models", params(ModelQuery),
    responses((status = 200, body = ModelList), (status = 400, description = "a malformed query: message and byte offset", body = super::errors::ErrorBody)))]
pub(super) async fn list(
    axum::extract::State(st): axum::extract::State<State>,
    Params(p): Params<ModelQuery>,
) -> Result<Response, ApiError> {
    let out = match p.query {
        Some(text) => {
            let q = crate::query::parse(&text).map_err(crate::Error::from)?;
            ModelList::Found {
                items: run(&st, move |s| s.find_models(&q)).await?,
            }
        }
        None => ModelList::All {
            items: run(&st, |s| s.models()).await?,
        },
    };
    Ok(json(StatusCode::OK, out))
}

/// Runs `f` on the model `spec` names and answers with the model afterwards.
async fn then_view(
    st: &State,
    spec: String,
    f: impl FnOnce(&Model) -> crate::Result<()> + Send + 'static,
) -> Result<Response, ApiError> {
    let v = run(st, move |s| {
        let (m, _) = resolve(s, &spec)?;
        f(&m)?;
        view(&m)
    })
    .await?;
    Ok(json(StatusCode::OK, v))
}

#[utoipa::path(get, path = "/_api/v1/models/{model}", tag = "models",
    params(("model" = String, Path, description = "id, name, NAME@VERSION, NAME@ALIAS, ID@VERSION or URL")),
    responses((status = 200, body = ModelView), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn show(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(spec): PathArgs<String>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, |_| Ok(())).await
}

#[utoipa::path(put, path = "/_api/v1/models/{model}/metadata/{key}", tag = "models",
    params(("model" = String, Path), ("key" = String, Path)),
    request_body(content = serde_json::Value, description = "a number, string, boolean or list of them"),
    responses((status = 200, body = ModelView), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn set_metadata(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((spec, key)): PathArgs<(String, String)>,
    JsonBody(v): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let v = typed(&key, v)?;
    then_view(&st, spec, move |m| m.set_metadata(&key, v)).await
}

#[utoipa::path(delete, path = "/_api/v1/models/{model}/metadata/{key}", tag = "models",
    params(("model" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = ModelView), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn remove_metadata(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((spec, key)): PathArgs<(String, String)>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, move |m| m.remove_metadata(&key)).await
}

/// Tags to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsBody {
    tags: Vec<String>,
}

#[utoipa::path(post, path = "/_api/v1/models/{model}/tags", tag = "models",
    params(("model" = String, Path)), request_body = TagsBody,
    responses((status = 200, body = ModelView), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn add_tags(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(spec): PathArgs<String>,
    JsonBody(b): JsonBody<TagsBody>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, move |m| m.add_tags(b.tags)).await
}

#[utoipa::path(delete, path = "/_api/v1/models/{model}/tags/{tag}", tag = "models",
    params(("model" = String, Path), ("tag" = String, Path)),
    responses((status = 200, body = ModelView), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn remove_tag(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((spec, tag)): PathArgs<(String, String)>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, move |m| m.remove_tag(&tag)).await
}

#[utoipa::path(put, path = "/_api/v1/models/{model}/labels", tag = "models",
    params(("model" = String, Path)),
    request_body(content = BTreeMap<String, i64>, description = "class label -> index; replaces the labels"),
    responses((status = 200, body = ModelView), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn set_labels(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(spec): PathArgs<String>,
    JsonBody(labels): JsonBody<BTreeMap<String, i64>>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, move |m| m.set_labels(labels)).await
}

/// Where an alias points.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AliasBody {
    version: u32,
}

#[utoipa::path(put, path = "/_api/v1/models/{model}/aliases/{alias}", tag = "models",
    params(("model" = String, Path), ("alias" = String, Path)), request_body = AliasBody,
    responses((status = 200, description = "the alias now points at the version (created or moved)", body = ModelView), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn set_alias(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((spec, alias)): PathArgs<(String, String)>,
    JsonBody(b): JsonBody<AliasBody>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, move |m| m.move_alias(&alias, b.version)).await
}

#[utoipa::path(delete, path = "/_api/v1/models/{model}/aliases/{alias}", tag = "models",
    params(("model" = String, Path), ("alias" = String, Path)),
    responses((status = 200, body = ModelView), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn remove_alias(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((spec, alias)): PathArgs<(String, String)>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, move |m| m.remove_alias(&alias)).await
}

#[utoipa::path(post, path = "/_api/v1/models/{model}/finalize", tag = "models",
    params(("model" = String, Path)),
    responses((status = 200, body = ModelView), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn finalize(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(spec): PathArgs<String>,
) -> Result<Response, ApiError> {
    then_view(&st, spec, |m| m.finalize()).await
}

/// A model's version numbers.
#[derive(Serialize, ToSchema)]
pub(crate) struct Versions {
    versions: Vec<u32>,
}

#[utoipa::path(get, path = "/_api/v1/models/{model}/versions", tag = "models",
    params(("model" = String, Path)),
    responses((status = 200, body = Versions), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn versions(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(spec): PathArgs<String>,
) -> Result<Response, ApiError> {
    let versions = run(&st, move |s| resolve(s, &spec)?.0.versions()).await?;
    Ok(json(StatusCode::OK, Versions { versions }))
}

/// A new version's files, their blobs uploaded first (`POST /blobs`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewVersionBody {
    files: Vec<FileEntry>,
}

/// The number of a version just added.
#[derive(Serialize, ToSchema)]
pub(crate) struct NewVersion {
    version: u32,
}

#[utoipa::path(post, path = "/_api/v1/models/{model}/versions", tag = "models",
    params(("model" = String, Path)), request_body = NewVersionBody,
    responses((status = 201, body = NewVersion), (status = 404, description = "no such model or blob", body = super::errors::ErrorBody),
        (status = 409, description = "the model is finalized", body = super::errors::ErrorBody)))]
pub(super) async fn add_version(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(spec): PathArgs<String>,
    JsonBody(b): JsonBody<NewVersionBody>,
) -> Result<Response, ApiError> {
    let version = run(&st, move |s| resolve(s, &spec)?.0.add_version(b.files)).await?;
    Ok(json(StatusCode::CREATED, NewVersion { version }))
}

/// The version `version` (number, alias or `latest`) of model `spec`.
pub(super) fn find_version(
    store: &Store,
    spec: &str,
    version: &str,
) -> crate::Result<ModelVersion> {
    let (m, _) = resolve(store, spec)?;
    let n = version_of(&m, version)?;
    m.version(Some(n))
}

#[utoipa::path(get, path = "/_api/v1/models/{model}/versions/{version}", tag = "models",
    params(("model" = String, Path), ("version" = String, Path, description = "a number, an alias or latest")),
    responses((status = 200, body = ModelVersion), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn version(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((spec, version)): PathArgs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = run(&st, move |s| find_version(s, &spec, &version)).await?;
    Ok(json(StatusCode::OK, v))
}
