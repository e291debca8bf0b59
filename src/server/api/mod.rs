//! The registry's JSON/HTTP API, under `/_api/v1/` on the S3 endpoint's
//! listener (docs/ARCHITECTURE.md, "The registry API"). An underscore
//! never starts a bucket name, so the prefix never hides a bucket.
//!
//! `mod.rs` holds the router, the Basic authentication every route but
//! the OpenAPI document needs when the server has credentials, and the
//! helpers the handlers share: engine calls on blocking threads, JSON and
//! query extractors whose errors are the API's JSON errors. One file per
//! concern: `experiments.rs`, `models.rs`, `files.rs` (bytes in and out,
//! with ranges and entity tags), `follow.rs` (the console as server-sent
//! events), `export.rs` (bundles for `sync --from`), `errors.rs`,
//! `openapi.rs`.

mod errors;
mod experiments;
mod export;
mod files;
mod follow;
mod models;
mod openapi;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

pub(crate) use errors::ApiError;

use super::body::Limits;
use crate::Store;

/// The path prefix of every API route.
pub(crate) const PREFIX: &str = "/_api/";

/// What every handler shares.
pub(crate) struct Shared {
    store: Store,
    limits: Limits,
    /// The S3 endpoint's uploads bound: an API upload takes a slot too.
    uploads: Arc<Semaphore>,
    /// Becomes `true` when the server shuts down: open console streams
    /// end then.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// The handlers' state.
pub(crate) type State = Arc<Shared>;

/// The API: its router and the credentials requests must carry.
#[derive(Clone)]
pub(crate) struct Api {
    router: Router,
    credentials: Option<Arc<(String, String)>>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Api {
    pub(crate) fn new(
        store: Store,
        limits: Limits,
        uploads: Arc<Semaphore>,
        credentials: Option<(String, String)>,
    ) -> Api {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let state = Arc::new(Shared {
            store,
            limits,
            uploads,
            stopping,
        });
        Api {
            router: routes().with_state(state),
            credentials: credentials.map(Arc::new),
            stop: Arc::new(stop),
        }
    }

    /// Tells long-lived responses (console streams) that the server is
    /// shutting down, so that they end rather than hold the shutdown.
    pub(crate) fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Answers one request whose path starts with [`PREFIX`].
    pub(crate) async fn call(&self, req: Request) -> Response {
        if let Some(creds) = &self.credentials {
            let open = req.uri().path() == "/_api/v1/openapi.json";
            if !open {
                if let Err(e) = check_basic(req.headers(), creds) {
                    return e.into_response();
                }
            }
        }
        let mut router = self.router.clone();
        match tower_service::Service::call(&mut router, req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

fn routes() -> Router<State> {
    use experiments as e;
    use files as f;
    use models as m;
    let v1 = Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/experiments", post(e::create).get(e::list))
        .route("/experiments/by-name/{project}/{name}", get(e::by_name))
        .route("/experiments/{id}", get(e::show))
        .route("/experiments/{id}/start", post(e::start))
        .route("/experiments/{id}/finish", post(e::finish))
        .route(
            "/experiments/{id}/progress",
            get(e::progress).put(e::set_progress),
        )
        .route(
            "/experiments/{id}/params",
            get(e::params).put(e::set_params),
        )
        .route("/experiments/{id}/console", post(e::log).get(e::console))
        .route("/experiments/{id}/console/follow", get(follow::follow))
        .route("/experiments/{id}/scalars", post(e::report_scalars))
        .route("/experiments/{id}/scalars/{metric}", get(e::scalars))
        .route("/experiments/{id}/artifacts", get(e::artifacts))
        .route(
            "/experiments/{id}/artifacts/{name}",
            put(f::put_artifact).get(f::get_artifact),
        )
        .route("/experiments/{id}/used-models", post(e::use_model))
        .route("/models", post(m::create).get(m::list))
        .route("/models/external", post(m::create_external))
        .route("/models/{model}", get(m::show))
        .route(
            "/models/{model}/metadata/{key}",
            put(m::set_metadata).delete(m::remove_metadata),
        )
        .route("/models/{model}/tags", post(m::add_tags))
        .route(
            "/models/{model}/tags/{tag}",
            axum::routing::delete(m::remove_tag),
        )
        .route("/models/{model}/labels", put(m::set_labels))
        .route(
            "/models/{model}/aliases/{alias}",
            put(m::set_alias).delete(m::remove_alias),
        )
        .route("/models/{model}/finalize", post(m::finalize))
        .route(
            "/models/{model}/versions",
            get(m::versions).post(m::add_version),
        )
        .route("/models/{model}/versions/{version}", get(m::version))
        .route(
            "/models/{model}/versions/{version}/files/{*path}",
            get(f::version_file),
        )
        .route("/export", post(export::export))
        .route("/blobs", post(f::post_blob))
        .route("/blobs/{id}", get(f::get_blob).delete(f::delete_blob));
    Router::new()
        .nest("/_api/v1", v1)
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "NotFound",
                "no such route of the registry API (routes are under /_api/v1/, see /_api/v1/openapi.json)",
            )
        })
}

/// Checks HTTP Basic credentials against the server's key pair: user =
/// access key, password = secret key.
fn check_basic(headers: &HeaderMap, creds: &(String, String)) -> Result<(), ApiError> {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "this server needs credentials: HTTP Basic with the access key and the secret key",
        ));
    };
    let wrong = || ApiError::unauthorized("wrong credentials");
    let text = value.to_str().map_err(|_| wrong())?;
    let Some(encoded) = text
        .strip_prefix("Basic ")
        .or_else(|| text.strip_prefix("basic "))
    else {
        return Err(ApiError::unauthorized(
            "only HTTP Basic authentication is accepted here",
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| wrong())?;
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Err(wrong());
    };
    let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    // Both compared in full whatever the first gives: the time taken does
    // not tell which part was wrong, nor how much of it.
    let ok = same(user, creds.0.as_bytes()) & same(pass, creds.1.as_bytes());
    if ok {
        Ok(())
    } else {
        Err(wrong())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs `f` with the store on a blocking thread (engine calls block).
pub(crate) async fn run<T: Send + 'static>(
    st: &State,
    f: impl FnOnce(&Store) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = st.store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}

/// A JSON request body. Read whatever the Content-Type says (curl sends
/// form encoding by default); bad JSON is a 400 with serde's message.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            // 413 for a JSON body over axum's 2 MB default, 400 otherwise.
            let kind = if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                "TooLarge"
            } else {
                "BadBody"
            };
            ApiError::new(e.status(), kind, e.body_text())
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("BadJson", format!("bad JSON body: {e}")))
    }
}

/// Query-string parameters; a bad one is a 400 naming it.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::bad_request("BadParameter", e.body_text()))
    }
}

/// Path parameters; a bad one (not UTF-8, say) is a 400.
pub(crate) struct PathArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathArgs(p.0))
            .map_err(|e| ApiError::bad_request("BadPath", e.body_text()))
    }
}

/// A JSON answer with status `status`.
pub(crate) fn json<T: serde::Serialize>(status: axum::http::StatusCode, v: T) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A JSON value from a request as the engine's typed [`crate::query::Value`]:
/// numbers (integers stay integers), strings, booleans and lists of them.
/// `null` and objects have no typed counterpart: 400 naming the key.
pub(crate) fn typed(key: &str, v: serde_json::Value) -> Result<crate::query::Value, ApiError> {
    use crate::query::Value;
    Ok(match v {
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().ok_or_else(|| {
                ApiError::bad_request("InvalidInput", format!("{key}: number {n} out of range"))
            })?),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(a) => Value::List(
            a.into_iter()
                .map(|x| typed(key, x))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Null | serde_json::Value::Object(_) => {
            return Err(ApiError::bad_request(
                "InvalidInput",
                format!("{key}: a value is a number, a string, a boolean or a list of them"),
            ))
        }
    })
}

/// An empty answer with status `status`.
pub(crate) fn empty(status: axum::http::StatusCode) -> Response {
    (status, Body::empty()).into_response()
}
