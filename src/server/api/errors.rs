//! The engine's errors as HTTP statuses and JSON bodies:
//! `{"error": "<Kind>", "message": "<the engine's message>"}`, plus
//! `"offset"` (a byte offset into the query text) for a query that did not
//! parse. This is the one place that decides which status an error gets.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// An error answer of the registry API.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What kind of error, e.g. `NotFound`, `InvalidInput`, `Query`,
    /// `Immutable`, `BadJson`, `Unauthorized`.
    pub error: &'static str,
    /// What was wrong, in words.
    pub message: String,
    /// For a query that did not parse: the byte offset into the query
    /// text where the parser stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
                offset: None,
            },
        }
    }

    /// 400: a request the server cannot read (bad JSON, a bad parameter).
    pub(crate) fn bad_request(error: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error, message)
    }

    /// 401 with the challenge that makes clients send Basic credentials.
    pub(crate) fn unauthorized(message: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match &e {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            Error::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "InvalidInput"),
            Error::Query(q) => {
                let mut a = ApiError::new(StatusCode::BAD_REQUEST, "Query", e.to_string());
                a.body.offset = Some(q.at);
                return a;
            }
            Error::Immutable { .. } => (StatusCode::CONFLICT, "Immutable"),
            Error::Exists { .. } => (StatusCode::CONFLICT, "Exists"),
            Error::ReadOnly { .. } => (StatusCode::CONFLICT, "ReadOnly"),
            Error::Locked { .. } => (StatusCode::SERVICE_UNAVAILABLE, "Locked"),
            Error::Poisoned(_) => (StatusCode::SERVICE_UNAVAILABLE, "Poisoned"),
            Error::ChecksumMismatch { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "ChecksumMismatch")
            }
            Error::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "Corrupt"),
            Error::WrongStore { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "WrongStore"),
            Error::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "Io"),
            Error::Db(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Db"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "registry API request failed");
        }
        ApiError::new(status, kind, e.to_string())
    }
}

/// An S3 error from the shared body code (`super::super::body`): a body
/// too large, broken off, or an engine failure while storing it.
impl From<s3s::S3Error> for ApiError {
    fn from(e: s3s::S3Error) -> Self {
        let message = e
            .message()
            .map_or_else(|| e.code().as_str().to_owned(), str::to_owned);
        match e.code() {
            s3s::S3ErrorCode::EntityTooLarge => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "TooLarge", message)
            }
            s3s::S3ErrorCode::IncompleteBody => ApiError::bad_request("IncompleteBody", message),
            s3s::S3ErrorCode::ServiceUnavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", message)
            }
            s3s::S3ErrorCode::NoSuchKey | s3s::S3ErrorCode::NoSuchBucket => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
            }
            s3s::S3ErrorCode::InvalidArgument => ApiError::bad_request("InvalidInput", message),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", message),
        }
    }
}

/// A blocking task that failed to join (it panicked): an internal error.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "a registry API request's blocking task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if unauthorized {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"modelvault\""),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_get_the_designed_statuses() {
        let q = crate::query::parse("name = ").unwrap_err();
        let at = q.at;
        let cases = [
            (Error::not_found("model", "m"), StatusCode::NOT_FOUND),
            (Error::invalid("tag", "", "empty"), StatusCode::BAD_REQUEST),
            (Error::Query(q), StatusCode::BAD_REQUEST),
            (
                Error::Immutable {
                    what: "model m".into(),
                    state: "finalized".into(),
                },
                StatusCode::CONFLICT,
            ),
            (
                Error::Exists {
                    what: "alias a".into(),
                },
                StatusCode::CONFLICT,
            ),
            (Error::ReadOnly { what: "gc" }, StatusCode::CONFLICT),
            (
                Error::Locked {
                    path: "/x".into(),
                    holder: "pid 1".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::corrupt("pack 1", "bad"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::Internal("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            let is_query = matches!(e, Error::Query(_));
            let got = ApiError::from(e);
            assert_eq!(got.status, want, "{text}");
            assert_eq!(got.body.message, text);
            assert_eq!(got.body.offset, is_query.then_some(at), "{text}");
        }
    }
}
