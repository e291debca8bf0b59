//! Conditional requests (RFC 9110, section 13, as S3 applies them to GET
//! and HEAD): If-Match and If-Unmodified-Since fail with 412 Precondition
//! Failed; If-None-Match and If-Modified-Since answer 304 Not Modified.
//! If-Match takes precedence over If-Unmodified-Since, and If-None-Match
//! over If-Modified-Since.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{s3_error, S3Result};

/// The conditions a request asked for.
#[derive(Default)]
pub(crate) struct Asked<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Checks `asked` against an object with entity tag `etag`, modified at
/// `modified_ms` (Unix milliseconds).
pub(crate) fn check(etag: &str, modified_ms: u64, asked: Asked<'_>) -> S3Result<()> {
    // HTTP dates have whole seconds.
    let modified = (modified_ms / 1000) as i64;
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    };
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    match asked.if_match {
        Some(c) if !matches(c) => {
            return Err(s3_error!(PreconditionFailed, "If-Match does not match"))
        }
        Some(_) => {}
        None => {
            if asked
                .if_unmodified_since
                .is_some_and(|t| modified > secs(t))
            {
                return Err(s3_error!(
                    PreconditionFailed,
                    "the object was modified since If-Unmodified-Since"
                ));
            }
        }
    }
    match asked.if_none_match {
        Some(c) if matches(c) => Err(s3_error!(NotModified)),
        Some(_) => Ok(()),
        None => {
            if asked.if_modified_since.is_some_and(|t| modified <= secs(t)) {
                Err(s3_error!(NotModified))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;
    use s3s::S3ErrorCode;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn code(r: S3Result<()>) -> Option<S3ErrorCode> {
        r.err().map(|e| e.code().clone())
    }

    #[test]
    fn conditions_answer_as_s3_does() {
        let tag = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("xyz".into()));
        let (early, late) = (at(1_000), at(3_000));
        let m = 2_000_500; // modified at 2,000.5 s
        let ask = |a: Asked<'_>| code(check("abc", m, a));
        assert_eq!(ask(Asked::default()), None);
        assert_eq!(
            ask(Asked {
                if_match: Some(&tag),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            ask(Asked {
                if_match: Some(&other),
                ..Default::default()
            }),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(
            ask(Asked {
                if_none_match: Some(&tag),
                ..Default::default()
            }),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            ask(Asked {
                if_none_match: Some(&ETagCondition::Any),
                ..Default::default()
            }),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            ask(Asked {
                if_none_match: Some(&other),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            ask(Asked {
                if_modified_since: Some(&late),
                ..Default::default()
            }),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            ask(Asked {
                if_modified_since: Some(&early),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            ask(Asked {
                if_unmodified_since: Some(&early),
                ..Default::default()
            }),
            Some(S3ErrorCode::PreconditionFailed)
        );
        // If-Match that holds overrides If-Unmodified-Since; If-None-Match
        // overrides If-Modified-Since.
        assert_eq!(
            ask(Asked {
                if_match: Some(&tag),
                if_unmodified_since: Some(&early),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            ask(Asked {
                if_none_match: Some(&other),
                if_modified_since: Some(&late),
                ..Default::default()
            }),
            None
        );
    }
}
