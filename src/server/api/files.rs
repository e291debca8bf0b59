//! Bytes in and out: blobs (`POST /blobs`, `GET /blobs/{id}`), model
//! version files and experiment artifacts. Uploads stream into a blob
//! writer and downloads out of a blob reader through `super::super::body`
//! (bounded memory whatever the size). Downloads answer ranges (206, 416),
//! carry a strong entity tag (the blob id, quoted), and honour If-Match,
//! If-None-Match, If-Modified-Since, If-Unmodified-Since (as
//! `super::super::conditions` decides) and If-Range; HEAD answers the
//! headers alone.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::experiments::{entity, experiment};
use super::models::find_version;
use super::{json, run, ApiError, Params, PathArgs, State};
use crate::blob::StagedBlob;
use crate::id::BlobId;
use crate::meta::registry_records::ArtifactBody;
use crate::server::body;
use crate::server::conditions::{self, Asked};

/// Reads a request body into a staged blob, under the server's uploads
/// bound and its size limit (413 beyond it, declared or not).
async fn receive(st: &State, headers: &HeaderMap, req: Body) -> Result<StagedBlob, ApiError> {
    let max = st.limits.body();
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if n > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TooLarge",
                format!("{n} bytes is more than this server accepts in one request ({max} bytes)"),
            ));
        }
    }
    let _permit = st.uploads.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the server is shutting down",
        )
    })?;
    let blob = s3s::dto::StreamingBlob::from(s3s::Body::http_body_unsync(req));
    let got = body::receive(&st.store, blob, Default::default(), st.limits).await?;
    Ok(got.staged)
}

/// A blob just stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct Stored {
    /// Its id (64 hex digits).
    blob: BlobId,
    /// Its length in bytes.
    size: u64,
}

#[utoipa::path(post, path = "/_api/v1/blobs", tag = "blobs",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored (and held: see the docs)", body = Stored),
        (status = 413, body = super::errors::ErrorBody)))]
pub(super) async fn post_blob(
    axum::extract::State(st): axum::extract::State<State>,
    headers: HeaderMap,
    req: Body,
) -> Result<Response, ApiError> {
    let staged = receive(&st, &headers, req).await?;
    let size = staged.len();
    // Held, as `BlobWriter::finish` holds: until `DELETE /blobs/{id}`.
    let blob = tokio::task::spawn_blocking(move || staged.commit()).await??;
    Ok(json(StatusCode::CREATED, Stored { blob, size }))
}

#[utoipa::path(get, path = "/_api/v1/blobs/{id}", tag = "blobs",
    params(("id" = String, Path, description = "blob id, 64 hex digits"),
        ("Range" = Option<String>, Header), ("If-None-Match" = Option<String>, Header), ("If-Range" = Option<String>, Header)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked for"), (status = 304), (status = 416),
        (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn get_blob(
    axum::extract::State(st): axum::extract::State<State>,
    method: Method,
    headers: HeaderMap,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let blob: BlobId = id.parse()?;
    let info = run(&st, move |s| {
        s.blob_info(&blob)?
            .ok_or_else(|| crate::Error::not_found("blob", blob))
    })
    .await?;
    send(&st, &method, &headers, blob, info.size, None).await
}

#[utoipa::path(delete, path = "/_api/v1/blobs/{id}", tag = "blobs",
    params(("id" = String, Path, description = "blob id, 64 hex digits")),
    responses((status = 204, description = "one hold released: the blob stays while versions, artifacts or objects refer to it, or other holds remain"),
        (status = 400, description = "the blob has no hold left", body = super::errors::ErrorBody),
        (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn delete_blob(
    axum::extract::State(st): axum::extract::State<State>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let blob: BlobId = id.parse()?;
    // Releases the hold `POST /blobs` took (one per upload of the same
    // content); with no hold and no reference left, gc frees its chunks.
    run(&st, move |s| s.release_blob(&blob)).await?;
    Ok(super::empty(StatusCode::NO_CONTENT))
}

#[utoipa::path(get, path = "/_api/v1/models/{model}/versions/{version}/files/{path}", tag = "models",
    params(("model" = String, Path), ("version" = String, Path, description = "a number, an alias or latest"),
        ("path" = String, Path, description = "the file's path in the version, slashes and all"),
        ("Range" = Option<String>, Header), ("If-None-Match" = Option<String>, Header), ("If-Range" = Option<String>, Header)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked for"), (status = 304), (status = 416),
        (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn version_file(
    axum::extract::State(st): axum::extract::State<State>,
    method: Method,
    headers: HeaderMap,
    PathArgs((spec, version, path)): PathArgs<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (file, created_ms) = run(&st, move |s| {
        let v = find_version(s, &spec, &version)?;
        let f = v.file(&path).cloned().ok_or_else(|| {
            crate::Error::not_found(
                "file",
                format!("{path} of {} version {}", v.name, v.version),
            )
        })?;
        Ok((f, v.created_ms))
    })
    .await?;
    send(
        &st,
        &method,
        &headers,
        file.blob,
        file.size,
        Some(created_ms),
    )
    .await
}

/// Which artifact revision.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Revision {
    /// The revision (default: the latest).
    revision: Option<u32>,
}

/// The revision an upload became.
#[derive(Serialize, ToSchema)]
pub(crate) struct NewRevision {
    revision: u32,
}

#[utoipa::path(put, path = "/_api/v1/experiments/{id}/artifacts/{name}", tag = "experiments",
    params(("id" = String, Path), ("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = NewRevision), (status = 409, description = "the experiment is finished", body = super::errors::ErrorBody)))]
pub(super) async fn put_artifact(
    axum::extract::State(st): axum::extract::State<State>,
    headers: HeaderMap,
    PathArgs((id, name)): PathArgs<(String, String)>,
    req: Body,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    // Refused before the body is read: an upload to a finished (or
    // unknown) experiment stores nothing.
    run(&st, move |s| {
        let i = experiment(s, id)?.info()?;
        if i.status.is_final() {
            return Err(crate::Error::Immutable {
                what: format!("experiment {id}"),
                state: i.status.name().to_owned(),
            });
        }
        Ok(())
    })
    .await?;
    let staged = receive(&st, &headers, req).await?;
    // The blob and the artifact record in one commit: on error, neither.
    let revision = run(&st, move |s| {
        experiment(s, id)?.add_artifact_staged(&name, staged, Default::default())
    })
    .await?;
    Ok(json(StatusCode::CREATED, NewRevision { revision }))
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/artifacts/{name}", tag = "experiments",
    params(("id" = String, Path), ("name" = String, Path), Revision,
        ("Range" = Option<String>, Header), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, description = "the bytes (an inline artifact: its JSON value)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked for"), (status = 304), (status = 416),
        (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn get_artifact(
    axum::extract::State(st): axum::extract::State<State>,
    method: Method,
    headers: HeaderMap,
    PathArgs((id, name)): PathArgs<(String, String)>,
    Params(r): Params<Revision>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let a = run(&st, move |s| experiment(s, id)?.artifact(&name, r.revision)).await?;
    match a.body {
        ArtifactBody::Blob { blob, size } => {
            send(&st, &method, &headers, blob, size, Some(a.created_ms)).await
        }
        ArtifactBody::Inline(v) => Ok(json(StatusCode::OK, v)),
    }
}

/// A header's value as text, if it is there and is text.
fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Answers a GET or HEAD of `size` bytes of `blob`: the conditions, the
/// range, then the bytes streamed from a blob reader.
async fn send(
    st: &State,
    method: &Method,
    headers: &HeaderMap,
    blob: BlobId,
    size: u64,
    modified_ms: Option<u64>,
) -> Result<Response, ApiError> {
    use s3s::dto::{ETagCondition, Timestamp, TimestampFormat};
    let tag = blob.to_string();
    let quoted = format!("\"{tag}\"");
    let etag_of = |name| {
        text(headers, name).and_then(|v| ETagCondition::parse_http_header(v.as_bytes()).ok())
    };
    let date_of = |name| {
        text(headers, name).and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok())
    };
    let (if_match, if_none_match) = (etag_of(header::IF_MATCH), etag_of(header::IF_NONE_MATCH));
    // Dates mean something only where the content has a time.
    let (if_modified_since, if_unmodified_since) = match modified_ms {
        Some(_) => (
            date_of(header::IF_MODIFIED_SINCE),
            date_of(header::IF_UNMODIFIED_SINCE),
        ),
        None => (None, None),
    };
    let asked = Asked {
        if_match: if_match.as_ref(),
        if_none_match: if_none_match.as_ref(),
        if_modified_since: if_modified_since.as_ref(),
        if_unmodified_since: if_unmodified_since.as_ref(),
    };
    let mut r = Response::builder()
        .header(header::ETAG, quoted.as_str())
        .header(header::ACCEPT_RANGES, "bytes");
    if let Err(e) = conditions::check(&tag, modified_ms.unwrap_or(0), asked) {
        let status = if *e.code() == s3s::S3ErrorCode::NotModified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::PRECONDITION_FAILED
        };
        return Ok(r.status(status).body(Body::empty()).unwrap_or_default());
    }
    // If-Range: the range holds only for the same content.
    let range_applies = match text(headers, header::IF_RANGE) {
        Some(v) => v == quoted,
        None => true,
    };
    // A Range header that does not parse is ignored (RFC 9110, 14.2).
    let range = text(headers, header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| s3s::dto::Range::parse(v).ok());
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(rg) => match rg.check(size) {
            Ok(x) => {
                r = r.header(
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{size}", x.start, x.end.saturating_sub(1)),
                );
                (StatusCode::PARTIAL_CONTENT, x.start, x.end - x.start)
            }
            Err(_) => {
                let mut resp = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "InvalidRange",
                    format!("the range is outside the content ({size} bytes)"),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
    };
    r = r
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len);
    let body = if method == Method::HEAD || len == 0 {
        Body::empty()
    } else {
        let reader = run(st, move |s| s.blob_reader(&blob)).await?;
        Body::from_stream(body::send(reader, start, len))
    };
    Ok(r.body(body).unwrap_or_default())
}
