//! The engine's errors as S3 error codes. The object namespace names what
//! was wrong (`Error::InvalidInput { what, .. }`, `Error::NotFound { kind,
//! .. }`); this is the one place that turns those names into the codes S3
//! clients act on.

use s3s::{S3Error, S3ErrorCode};

use crate::error::Error;

/// The S3 error for an engine error, with the engine's message.
pub(crate) fn s3(e: Error) -> S3Error {
    let code = match &e {
        Error::NotFound { kind, .. } => match *kind {
            "bucket" => S3ErrorCode::NoSuchBucket,
            "multipart upload" => S3ErrorCode::NoSuchUpload,
            _ => S3ErrorCode::NoSuchKey,
        },
        Error::Exists { .. } => S3ErrorCode::BucketAlreadyOwnedByYou,
        Error::InvalidInput { what, value, .. } => match *what {
            "bucket name" => S3ErrorCode::InvalidBucketName,
            "object key" if value.len() > crate::objects::MAX_KEY_LEN => {
                S3ErrorCode::KeyTooLongError
            }
            "bucket to delete" => S3ErrorCode::BucketNotEmpty,
            "part order" => S3ErrorCode::InvalidPartOrder,
            "part" => S3ErrorCode::InvalidPart,
            "part list" => S3ErrorCode::MalformedXML,
            "user metadata" => S3ErrorCode::MetadataTooLarge,
            _ => S3ErrorCode::InvalidArgument,
        },
        Error::Locked { .. } | Error::Poisoned(_) => S3ErrorCode::ServiceUnavailable,
        _ => S3ErrorCode::InternalError,
    };
    if code == S3ErrorCode::InternalError {
        tracing::error!(error = %e, "request failed");
    }
    S3Error::with_message(code, e.to_string())
}

/// An engine call that runs on a blocking thread and failed to join (it
/// panicked): an internal error, logged.
pub(crate) fn joined(e: tokio::task::JoinError) -> S3Error {
    tracing::error!(error = %e, "a request's blocking task failed");
    S3Error::with_message(S3ErrorCode::InternalError, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_errors_become_the_codes_clients_act_on() {
        let cases = [
            (Error::not_found("bucket", "b"), S3ErrorCode::NoSuchBucket),
            (Error::not_found("object", "b/k"), S3ErrorCode::NoSuchKey),
            (
                Error::not_found("multipart upload", "u"),
                S3ErrorCode::NoSuchUpload,
            ),
            (
                Error::invalid("bucket name", "A", "upper case"),
                S3ErrorCode::InvalidBucketName,
            ),
            (
                Error::invalid("object key", "k".repeat(2000), "too long"),
                S3ErrorCode::KeyTooLongError,
            ),
            (
                Error::invalid("object key", "a\0b", "NUL"),
                S3ErrorCode::InvalidArgument,
            ),
            (
                Error::invalid("bucket to delete", "b", "not empty"),
                S3ErrorCode::BucketNotEmpty,
            ),
            (
                Error::invalid("part order", "2,1", "ascending"),
                S3ErrorCode::InvalidPartOrder,
            ),
            (
                Error::Exists {
                    what: "bucket b".into(),
                },
                S3ErrorCode::BucketAlreadyOwnedByYou,
            ),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            let got = s3(e);
            assert_eq!(*got.code(), want, "{text}");
            assert_eq!(got.message(), Some(text.as_str()));
        }
    }
}
