//! Experiments: create, find, list, lifecycle, progress, hyperparameters,
//! console, scalars, artifact listing and the models an experiment used.
//! Artifact bytes are in `files.rs`, the console stream in `follow.rs`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{json, run, typed, ApiError, JsonBody, Params, PathArgs, State};
use crate::meta::registry_records::{Artifact, ConsoleLine, EntityId, Status, Stream};
use crate::registry::experiment::{Experiment, ExperimentInfo, NewExperiment};
use crate::Store;

/// The largest page of a listing.
const MAX_LIMIT: usize = 1000;

/// Parses an experiment id from the path (400 if it is not one).
pub(super) fn entity(s: &str) -> Result<EntityId, ApiError> {
    Ok(s.parse::<EntityId>()?)
}

/// The experiment `id` (404 if there is none).
pub(super) fn experiment(store: &Store, id: EntityId) -> crate::Result<Experiment> {
    store.experiment(id)
}

/// What to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewExperimentBody {
    project: String,
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    kind: Option<String>,
}

#[utoipa::path(post, path = "/_api/v1/experiments", tag = "experiments",
    request_body = NewExperimentBody,
    responses((status = 201, body = ExperimentInfo), (status = 400, body = super::errors::ErrorBody)))]
pub(super) async fn create(
    axum::extract::State(st): axum::extract::State<State>,
    JsonBody(b): JsonBody<NewExperimentBody>,
) -> Result<Response, ApiError> {
    let info = run(&st, move |s| {
        let mut spec = NewExperiment::new(b.project, b.name).tags(b.tags);
        if let Some(k) = b.kind {
            spec = spec.kind(k);
        }
        s.create_experiment(spec)?.info()
    })
    .await?;
    Ok(json(StatusCode::CREATED, info))
}

/// Filters of a listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this project.
    project: Option<String>,
    /// Only names starting with this.
    name_prefix: Option<String>,
    /// Only this status (created, running, completed, failed, stopped).
    status: Option<String>,
    /// Only experiments with this tag.
    tag: Option<String>,
    /// Only experiments created at or after this time, Unix ms.
    created_from: Option<u64>,
    /// Only experiments created before this time, Unix ms.
    created_to: Option<u64>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Page size: default 100, at most 1000.
    limit: Option<usize>,
}

/// A page of experiments, in creation order.
#[derive(Serialize, ToSchema)]
pub(crate) struct ExperimentPage {
    items: Vec<ExperimentInfo>,
    /// The id to pass as `after` for the next page; `null` on the last.
    next: Option<EntityId>,
}

#[utoipa::path(get, path = "/_api/v1/experiments", tag = "experiments", params(ListParams),
    responses((status = 200, body = ExperimentPage), (status = 400, body = super::errors::ErrorBody)))]
pub(super) async fn list(
    axum::extract::State(st): axum::extract::State<State>,
    Params(p): Params<ListParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "InvalidInput",
            format!("limit {limit}: must be 1 to {MAX_LIMIT}"),
        ));
    }
    let status = p.status.as_deref().map(str::parse::<Status>).transpose()?;
    let after = p.after.as_deref().map(entity).transpose()?;
    let items = run(&st, move |s| {
        let mut q = s.experiments().limit(limit);
        if let Some(v) = p.project {
            q = q.project(v);
        }
        if let Some(v) = p.name_prefix {
            q = q.name_prefix(v);
        }
        if let Some(v) = status {
            q = q.status(v);
        }
        if let Some(v) = p.tag {
            q = q.tag(v);
        }
        if p.created_from.is_some() || p.created_to.is_some() {
            q = q.created_between(
                p.created_from.unwrap_or(0),
                p.created_to.unwrap_or(u64::MAX),
            );
        }
        if let Some(a) = after {
            q = q.after(a);
        }
        q.run()
    })
    .await?;
    let next = (items.len() == limit).then(|| items[items.len() - 1].id);
    Ok(json(StatusCode::OK, ExperimentPage { items, next }))
}

#[utoipa::path(get, path = "/_api/v1/experiments/by-name/{project}/{name}", tag = "experiments",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ExperimentInfo), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn by_name(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((project, name)): PathArgs<(String, String)>,
) -> Result<Response, ApiError> {
    let info = run(&st, move |s| s.experiment_by_name(&project, &name)?.info()).await?;
    Ok(json(StatusCode::OK, info))
}

/// Runs `f` on experiment `id` and answers with its info afterwards.
async fn then_info(
    st: &State,
    id: String,
    f: impl FnOnce(&Experiment) -> crate::Result<()> + Send + 'static,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let info = run(st, move |s| {
        let e = experiment(s, id)?;
        f(&e)?;
        e.info()
    })
    .await?;
    Ok(json(StatusCode::OK, info))
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}", tag = "experiments",
    params(("id" = String, Path, description = "experiment id (UUID)")),
    responses((status = 200, body = ExperimentInfo), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn show(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    then_info(&st, id, |_| Ok(())).await
}

#[utoipa::path(post, path = "/_api/v1/experiments/{id}/start", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ExperimentInfo), (status = 400, body = super::errors::ErrorBody)))]
pub(super) async fn start(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    then_info(&st, id, |e| e.start()).await
}

/// How an experiment ended.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishBody {
    /// `completed`, `failed` or `stopped` (`aborted` is taken as `stopped`).
    status: String,
}

#[utoipa::path(post, path = "/_api/v1/experiments/{id}/finish", tag = "experiments",
    params(("id" = String, Path)), request_body = FinishBody,
    responses((status = 200, body = ExperimentInfo), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn finish(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    JsonBody(b): JsonBody<FinishBody>,
) -> Result<Response, ApiError> {
    let status = match b.status.as_str() {
        "aborted" => Status::Stopped,
        s => s.parse::<Status>()?,
    };
    then_info(&st, id, move |e| e.finish(status)).await
}

/// An experiment's progress.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProgressView {
    /// 0..=100.
    progress: u8,
    status: Status,
}

/// New progress.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgressBody {
    /// 0..=100.
    progress: u8,
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/progress", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ProgressView), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn progress(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let i = run(&st, move |s| experiment(s, id)?.info()).await?;
    Ok(json(
        StatusCode::OK,
        ProgressView {
            progress: i.progress,
            status: i.status,
        },
    ))
}

#[utoipa::path(put, path = "/_api/v1/experiments/{id}/progress", tag = "experiments",
    params(("id" = String, Path)), request_body = ProgressBody,
    responses((status = 200, body = ProgressView), (status = 400, body = super::errors::ErrorBody)))]
pub(super) async fn set_progress(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    JsonBody(b): JsonBody<ProgressBody>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let i = run(&st, move |s| {
        let e = experiment(s, id)?;
        e.set_progress(b.progress)?;
        e.info()
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        ProgressView {
            progress: i.progress,
            status: i.status,
        },
    ))
}

/// The section hyperparameters without one are shown under.
const GENERAL: &str = "General";

/// Hyperparameters by section: `Section/key` is split at its first `/`;
/// a key without one is under `General`.
fn sectioned(
    params: BTreeMap<String, crate::query::Value>,
) -> BTreeMap<String, BTreeMap<String, crate::query::Value>> {
    let mut out: BTreeMap<String, BTreeMap<String, crate::query::Value>> = BTreeMap::new();
    for (k, v) in params {
        let (section, key) = k.split_once('/').unwrap_or((GENERAL, k.as_str()));
        out.entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), v);
    }
    out
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/params", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, description = "section -> key -> value", body = BTreeMap<String, BTreeMap<String, serde_json::Value>>)))]
pub(super) async fn params(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let i = run(&st, move |s| experiment(s, id)?.info()).await?;
    Ok(json(StatusCode::OK, sectioned(i.params)))
}

#[utoipa::path(put, path = "/_api/v1/experiments/{id}/params", tag = "experiments",
    params(("id" = String, Path)),
    request_body(content = BTreeMap<String, BTreeMap<String, serde_json::Value>>, description = "section -> key -> value; keys under General are stored without a section"),
    responses((status = 200, description = "all hyperparameters, by section", body = BTreeMap<String, BTreeMap<String, serde_json::Value>>)))]
pub(super) async fn set_params(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    JsonBody(b): JsonBody<BTreeMap<String, BTreeMap<String, serde_json::Value>>>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let mut flat = Vec::new();
    for (section, keys) in b {
        for (k, v) in keys {
            let key = if section == GENERAL {
                k
            } else {
                format!("{section}/{k}")
            };
            let v = typed(&key, v)?;
            flat.push((key, v));
        }
    }
    let i = run(&st, move |s| {
        let e = experiment(s, id)?;
        e.set_params(flat)?;
        e.info()
    })
    .await?;
    Ok(json(StatusCode::OK, sectioned(i.params)))
}

/// Console lines to append.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsoleBody {
    lines: Vec<NewLine>,
}

/// One console line to append.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewLine {
    stream: Stream,
    text: String,
}

/// Where appended lines start.
#[derive(Serialize, ToSchema)]
pub(crate) struct Appended {
    /// The sequence number of the first line appended.
    first: u64,
}

#[utoipa::path(post, path = "/_api/v1/experiments/{id}/console", tag = "experiments",
    params(("id" = String, Path)), request_body = ConsoleBody,
    responses((status = 200, body = Appended), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn log(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    JsonBody(b): JsonBody<ConsoleBody>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let first = run(&st, move |s| {
        experiment(s, id)?.log_lines(b.lines.iter().map(|l| (l.stream, l.text.as_str())))
    })
    .await?;
    Ok(json(StatusCode::OK, Appended { first }))
}

/// Which console lines.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsoleParams {
    /// First sequence number (default 0).
    from: Option<u64>,
    /// At most this many lines (default and most 1000).
    limit: Option<usize>,
}

/// A page of console lines.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsolePage {
    lines: Vec<ConsoleLine>,
    /// The `from` of the next page.
    next: u64,
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/console", tag = "experiments",
    params(("id" = String, Path), ConsoleParams),
    responses((status = 200, body = ConsolePage)))]
pub(super) async fn console(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    Params(p): Params<ConsoleParams>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let from = p.from.unwrap_or(0);
    let limit = p.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let lines = run(&st, move |s| experiment(s, id)?.console(from, limit)).await?;
    let next = lines.last().map_or(from, |l| l.seq + 1);
    Ok(json(StatusCode::OK, ConsolePage { lines, next }))
}

/// Scalars to report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScalarsBody {
    scalars: Vec<NewScalar>,
}

/// One scalar: `metric`/`variant` at `iteration`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewScalar {
    metric: String,
    variant: String,
    iteration: u64,
    value: f64,
}

#[utoipa::path(post, path = "/_api/v1/experiments/{id}/scalars", tag = "experiments",
    params(("id" = String, Path)), request_body = ScalarsBody,
    responses((status = 204), (status = 409, body = super::errors::ErrorBody)))]
pub(super) async fn report_scalars(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    JsonBody(b): JsonBody<ScalarsBody>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    // One commit: every point, or (one invalid) none.
    run(&st, move |s| {
        experiment(s, id)?.report_scalars(
            b.scalars
                .iter()
                .map(|p| (p.metric.as_str(), p.variant.as_str(), p.iteration, p.value)),
        )
    })
    .await?;
    Ok(super::empty(StatusCode::NO_CONTENT))
}

/// A metric's series.
#[derive(Serialize, ToSchema)]
pub(crate) struct Series {
    /// By variant, then iteration.
    points: Vec<Point>,
}

/// One point of a series.
#[derive(Serialize, ToSchema)]
pub(crate) struct Point {
    variant: String,
    iteration: u64,
    value: f64,
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/scalars/{metric}", tag = "experiments",
    params(("id" = String, Path), ("metric" = String, Path)),
    responses((status = 200, body = Series)))]
pub(super) async fn scalars(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs((id, metric)): PathArgs<(String, String)>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let points = run(&st, move |s| experiment(s, id)?.scalars(&metric)).await?;
    let points = points
        .into_iter()
        .map(|(variant, iteration, value)| Point {
            variant,
            iteration,
            value,
        })
        .collect();
    Ok(json(StatusCode::OK, Series { points }))
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/artifacts", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<Artifact>)))]
pub(super) async fn artifacts(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let list = run(&st, move |s| experiment(s, id)?.artifacts()).await?;
    Ok(json(StatusCode::OK, list))
}

/// A model version an experiment used.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsedModel {
    /// Anything that names a model: id, name, `NAME@VERSION`, URL.
    model: String,
    /// The version; default: the one `model` names, else the latest.
    version: Option<u32>,
}

#[utoipa::path(post, path = "/_api/v1/experiments/{id}/used-models", tag = "experiments",
    params(("id" = String, Path)), request_body = UsedModel,
    responses((status = 204), (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn use_model(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
    JsonBody(b): JsonBody<UsedModel>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    run(&st, move |s| {
        let e = experiment(s, id)?;
        let (model, named) = s.resolve_model(&b.model)?;
        let version = match b.version.or(named) {
            Some(v) => v,
            None => {
                let latest = model.info()?.latest;
                if latest == 0 {
                    return Err(crate::Error::not_found(
                        "version",
                        format!("any version of model {}", model.id()),
                    ));
                }
                latest
            }
        };
        e.use_model(model.id(), version)
    })
    .await?;
    Ok(super::empty(StatusCode::NO_CONTENT))
}
