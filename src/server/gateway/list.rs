//! Listings: ListObjectsV2 and the older ListObjects (a marker instead of
//! a continuation token), over a bucket's objects or the registry bucket,
//! with keys percent-encoded when the client asks (`encoding-type=url`).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::{clamp, object_of, registry_object, Gateway};
use crate::objects::{ListQuery, MAX_LIST_KEYS};
use crate::server::registry_bucket;

pub(super) async fn list_objects_v2(
    g: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let max = clamp(input.max_keys, MAX_LIST_KEYS);
    let (contents, prefixes, next) = if g.is_registry(&input.bucket) {
        let after = input
            .continuation_token
            .clone()
            .or_else(|| input.start_after.clone());
        let (p, d) = (prefix.clone(), delimiter.clone());
        let page = g
            .run(move |s| registry_bucket::list(s, &p, &d, after.as_deref(), max))
            .await?;
        (
            page.entries.iter().map(registry_object).collect::<Vec<_>>(),
            page.prefixes,
            page.next,
        )
    } else {
        let q = ListQuery {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            start_after: input.start_after.clone(),
            continuation_token: input.continuation_token.clone(),
            max_keys: Some(max),
        };
        let b = input.bucket.clone();
        let page = g.run(move |s| s.objects().list(&b, &q)).await?;
        (
            page.objects.iter().map(object_of).collect(),
            page.common_prefixes,
            page.next_continuation_token,
        )
    };
    let count = (contents.len() + prefixes.len()) as i32;
    // Keys go back percent-encoded when the client asks (boto3 always
    // does, and decodes them: a raw `+` or `%` would come back changed).
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let contents = contents
        .into_iter()
        .map(|mut o| {
            o.key = o.key.map(enc);
            o
        })
        .collect();
    let prefixes: Vec<String> = prefixes.into_iter().map(enc).collect();
    let prefix = enc(prefix);
    let delimiter = enc(delimiter);
    let start_after = input.start_after.map(enc);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(prefix),
        delimiter: (!delimiter.is_empty()).then_some(delimiter),
        max_keys: Some(max as i32),
        key_count: Some(count),
        is_truncated: Some(next.is_some()),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        start_after,
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) async fn list_objects(
    g: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    // Version 1 of the listing: a marker (the last key of the previous
    // page) instead of a continuation token.
    let url = req
        .input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let marker = req
        .input
        .marker
        .clone()
        .map(|m| if url { url_encode(&m) } else { m });
    let v2 = req.map_input(|i| ListObjectsV2Input {
        bucket: i.bucket,
        delimiter: i.delimiter,
        encoding_type: i.encoding_type,
        max_keys: i.max_keys,
        prefix: i.prefix,
        start_after: i.marker,
        ..Default::default()
    });
    let out = list_objects_v2(g, v2).await?.output;
    let contents = out.contents.unwrap_or_default();
    let prefixes = out.common_prefixes.unwrap_or_default();
    let truncated = out.is_truncated.unwrap_or(false);
    // The next marker: the greatest key or prefix on this page.
    let last_key = contents.last().and_then(|o| o.key.clone());
    let last_prefix = prefixes.last().and_then(|p| p.prefix.clone());
    let next_marker = truncated.then(|| last_key.max(last_prefix)).flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: out.name,
        prefix: out.prefix,
        delimiter: out.delimiter,
        marker,
        max_keys: out.max_keys,
        is_truncated: Some(truncated),
        next_marker,
        encoding_type: out.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        ..Default::default()
    }))
}

/// `s` percent-encoded as S3 does for `encoding-type=url`: every byte but
/// the unreserved characters and `/`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_only_unreserved_characters_and_slashes() {
        assert_eq!(url_encode("a/b c+d%e"), "a/b%20c%2Bd%25e");
        assert_eq!(url_encode("ü"), "%C3%BC");
        assert_eq!(url_encode("A-Z_0.9~"), "A-Z_0.9~");
    }
}
