//! The object namespace's keys and records: buckets, objects, multipart
//! uploads and their parts (the `buckets`, `objects` and `multipart` column
//! families; docs/FORMAT.md has the layouts). Records are postcard structs
//! after the version byte, like the registry's; every decoder treats its
//! input as hostile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::records::{
    decode_postcard, decode_postcard_prefix, decode_postcard_tail, encode_postcard,
};

/// `buckets` value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BucketRecord {
    /// When the bucket was created (ms since the Unix epoch).
    pub created_ms: u64,
}

/// `objects` value: what an object is, the blob holding its bytes and what
/// the caller said about them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    /// The blob holding the object's bytes (a reference on it is counted).
    pub blob: [u8; 32],
    /// The object's length in bytes (the blob's).
    pub size: u64,
    /// The entity tag the caller gave.
    pub etag: String,
    /// The content type the caller gave, if any.
    pub content_type: Option<String>,
    /// User metadata, name → value.
    pub metadata: BTreeMap<String, String>,
    /// Checksums the caller gave, algorithm → value.
    pub checksums: BTreeMap<String, String>,
    /// When the object was written (ms since the Unix epoch).
    pub modified_ms: u64,
    /// The number of parts of a multipart upload it was completed from (0:
    /// stored in one piece).
    pub parts: u32,
    /// Standard HTTP headers kept with the object (lower-case name →
    /// value: `cache-control`, `content-disposition`, ...). Encoded after
    /// the struct, only when not empty ([`encode_object`]).
    #[serde(skip)]
    pub headers: BTreeMap<String, String>,
}

/// `multipart` upload value: an upload begun and not yet completed or
/// aborted, with what its object will be given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MultipartRecord {
    pub bucket: String,
    pub key: String,
    pub created_ms: u64,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Standard HTTP headers the object will have, encoded like
    /// [`ObjectRecord::headers`].
    #[serde(skip)]
    pub headers: BTreeMap<String, String>,
}

/// `multipart` part value: one uploaded part, held by a reference on its
/// blob until the upload completes or is aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub blob: [u8; 32],
    pub size: u64,
    pub etag: String,
    pub checksums: BTreeMap<String, String>,
    pub modified_ms: u64,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    encode_postcard(v)
}

pub(crate) fn decode_bucket(b: &[u8]) -> Result<BucketRecord> {
    decode_postcard("bucket record", b)
}

/// An object record: the version byte, the postcard struct, then, when the
/// object has standard headers, the postcard map of them. A record without
/// headers is byte for byte what builds before headers wrote.
pub(crate) fn encode_object(r: &ObjectRecord) -> Vec<u8> {
    with_headers(encode_postcard(r), &r.headers)
}

pub(crate) fn decode_object(b: &[u8]) -> Result<ObjectRecord> {
    let (mut r, headers) = decode_with_headers::<ObjectRecord>("object record", b)?;
    r.headers = headers;
    Ok(r)
}

/// A multipart upload record, laid out like an object record.
pub(crate) fn encode_multipart(r: &MultipartRecord) -> Vec<u8> {
    with_headers(encode_postcard(r), &r.headers)
}

pub(crate) fn decode_multipart(b: &[u8]) -> Result<MultipartRecord> {
    let (mut r, headers) = decode_with_headers::<MultipartRecord>("multipart upload record", b)?;
    r.headers = headers;
    Ok(r)
}

fn with_headers(mut b: Vec<u8>, headers: &BTreeMap<String, String>) -> Vec<u8> {
    if !headers.is_empty() {
        b.extend(postcard::to_stdvec(headers).expect("postcard encodes a map of strings"));
    }
    b
}

/// Decodes a record and the header map that may follow it. A map that is
/// there must be non-empty and end the record.
fn decode_with_headers<T: serde::de::DeserializeOwned>(
    what: &'static str,
    b: &[u8],
) -> Result<(T, BTreeMap<String, String>)> {
    let (r, rest) = decode_postcard_prefix::<T>(what, b)?;
    if rest.is_empty() {
        return Ok((r, BTreeMap::new()));
    }
    let headers: BTreeMap<String, String> = decode_postcard_tail(what, rest)?;
    if headers.is_empty() {
        return Err(Error::corrupt(what, "an empty header map is never written"));
    }
    Ok((r, headers))
}

pub(crate) fn decode_part(b: &[u8]) -> Result<PartRecord> {
    decode_postcard("multipart part record", b)
}

/// `objects` key of a whole bucket's objects: bucket name length u8 ‖ name.
/// The length byte keeps one bucket's keys from running into another's
/// (`ab` ‖ `c…` is not `abc` ‖ `…`).
/// Names are at most 63 bytes; a longer one (only from a damaged record)
/// gets the length byte 255, so its key is wrong but nothing panics.
pub(crate) fn object_prefix(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bucket.len() + 64);
    k.push(u8::try_from(bucket.len()).unwrap_or(u8::MAX));
    k.extend_from_slice(bucket.as_bytes());
    k
}

/// `objects` key: [`object_prefix`] ‖ object key bytes. Keys of one bucket
/// sort by their bytes, as S3 lists them.
pub(crate) fn object(bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut k = object_prefix(bucket);
    k.extend_from_slice(key);
    k
}

/// Parses an `objects` key into bucket and object key.
pub(crate) fn parse_object(k: &[u8]) -> Result<(String, String)> {
    let bad = |why: &str| Error::corrupt("objects key", format!("{} ({k:02x?})", why));
    let n = usize::from(*k.first().ok_or_else(|| bad("empty"))?);
    let bucket = k
        .get(1..1 + n)
        .ok_or_else(|| bad("shorter than its bucket name"))?;
    let key = &k[1 + n..];
    let bucket = std::str::from_utf8(bucket).map_err(|_| bad("bucket name is not UTF-8"))?;
    let key = std::str::from_utf8(key).map_err(|_| bad("object key is not UTF-8"))?;
    Ok((bucket.to_owned(), key.to_owned()))
}

/// `multipart` key tags.
pub(crate) mod tag {
    /// `u` ‖ upload id (16) → [`super::MultipartRecord`].
    pub const UPLOAD: u8 = b'u';
    /// `p` ‖ upload id (16) ‖ part number u32 BE → [`super::PartRecord`].
    pub const PART: u8 = b'p';
    /// `k` ‖ bucket length u8 ‖ bucket ‖ escaped key ‖ 00 00 ‖ upload id
    /// (16) → empty: the uploads of a bucket in key order.
    pub const BY_KEY: u8 = b'k';
}

/// Length of an upload id.
pub(crate) const UPLOAD_ID_LEN: usize = 16;

/// `multipart` key of an upload's record.
pub(crate) fn upload(id: &[u8; UPLOAD_ID_LEN]) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = tag::UPLOAD;
    k[1..].copy_from_slice(id);
    k
}

/// `multipart` key prefix of an upload's parts.
pub(crate) fn parts_prefix(id: &[u8; UPLOAD_ID_LEN]) -> [u8; 17] {
    let mut k = upload(id);
    k[0] = tag::PART;
    k
}

/// `multipart` key of part `n` of an upload.
pub(crate) fn part(id: &[u8; UPLOAD_ID_LEN], n: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[..17].copy_from_slice(&parts_prefix(id));
    k[17..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Parses a part key's number (the key starts with [`parts_prefix`]).
pub(crate) fn parse_part(k: &[u8]) -> Result<u32> {
    k.get(17..)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| {
            Error::corrupt(
                "multipart part key",
                format!("{} bytes, expected 21", k.len()),
            )
        })
}

/// `multipart` index prefix of a bucket's uploads.
pub(crate) fn by_key_prefix(bucket: &str) -> Vec<u8> {
    let mut k = vec![tag::BY_KEY];
    k.extend_from_slice(&object_prefix(bucket));
    k
}

/// `multipart` index key prefix of a bucket's uploads whose key is `key`
/// exactly. The key is escaped (00 → 00 FF) and ended by 00 00, so keys
/// sort as their bytes do and no key is a prefix of another's entry.
pub(crate) fn by_key_of(bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut k = by_key_prefix(bucket);
    for &b in key {
        k.push(b);
        if b == 0 {
            k.push(0xFF);
        }
    }
    k.extend_from_slice(&[0, 0]);
    k
}

/// `multipart` index key of an upload.
pub(crate) fn by_key(bucket: &str, key: &[u8], id: &[u8; UPLOAD_ID_LEN]) -> Vec<u8> {
    let mut k = by_key_of(bucket, key);
    k.extend_from_slice(id);
    k
}

/// The upload id at the end of an index key.
pub(crate) fn parse_by_key(k: &[u8]) -> Result<[u8; UPLOAD_ID_LEN]> {
    k.len()
        .checked_sub(UPLOAD_ID_LEN)
        .filter(|&at| at >= 2 && k[at - 2..at] == [0, 0])
        .and_then(|at| k[at..].try_into().ok())
        .ok_or_else(|| {
            Error::corrupt(
                "multipart index key",
                format!("{k:02x?} does not end in 00 00 and a 16-byte upload id"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_buckets_apart_and_sort_like_object_keys() {
        assert!(!object("abc", b"x").starts_with(&object_prefix("ab")));
        assert!(object("b", b"a") < object("b", b"a\0"));
        assert_eq!(
            parse_object(&object("b-1", "k/\0é".as_bytes())).unwrap(),
            ("b-1".to_string(), "k/\0é".to_string())
        );
        for bad in [&[][..], &[9, b'a'][..], &[1, b'a', 0xFF][..]] {
            assert!(parse_object(bad).unwrap_err().is_integrity());
        }
        let id = [7u8; 16];
        // Index entries sort by key bytes: "a" before "a\0" before "a\0\0" before "b".
        let keys: Vec<Vec<u8>> = [&b"a"[..], b"a\0", b"a\0\0", b"a\x01", b"b"]
            .iter()
            .map(|k| by_key("b", k, &id))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_by_key(&keys[2]).unwrap(), id);
        assert!(parse_by_key(&[1, 2, 3]).is_err());
        assert_eq!(parse_part(&part(&id, 9)).unwrap(), 9);
        assert!(parse_part(&[b'p'; 20]).is_err());
    }
}
