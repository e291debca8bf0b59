//! The `objects` column family: (bucket, key) → [`ObjectRecord`]. Writing
//! or deleting a record adds or releases, in the same batch, the reference
//! its blob is kept by (a `refs` blob count, as registry records hold).

use crate::error::{Error, Result};
use crate::id::{BlobId, Hash32};
use crate::meta::object_records::{self as rec, ObjectRecord};
use crate::meta::records;
use crate::meta::{Batch, Cf, Meta, Scan, Snapshot};

use super::references::{Found, Source};
use super::refs::Count;
use super::{multipart, RawKey, Read};

/// Adds `delta` to the references of blob `blob` (object and part records
/// hold one each).
pub(super) fn count_blob(batch: &mut Batch, blob: &[u8; 32], delta: i64) {
    super::refs::change(batch, Count::Blob(BlobId(Hash32(*blob))), delta);
}

/// The record of `key` in `bucket`, if any.
pub(crate) fn get(r: &impl Read, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
    r.get(Cf::Objects, &rec::object(bucket, key.as_bytes()))?
        .map(|v| rec::decode_object(&v))
        .transpose()
}

/// Writes the record of `key` in `bucket`, taking a reference on its blob
/// and releasing the one `old` (the record it replaces, if any) held.
pub(crate) fn put(
    batch: &mut Batch,
    bucket: &str,
    key: &str,
    r: &ObjectRecord,
    old: Option<&ObjectRecord>,
) {
    batch.put(
        Cf::Objects,
        rec::object(bucket, key.as_bytes()),
        rec::encode_object(r),
    );
    count_blob(batch, &r.blob, 1);
    if let Some(old) = old {
        count_blob(batch, &old.blob, -1);
    }
}

/// Deletes the record `old` of `key` in `bucket`, releasing its reference.
pub(crate) fn delete(batch: &mut Batch, bucket: &str, key: &str, old: &ObjectRecord) {
    batch.delete(Cf::Objects, rec::object(bucket, key.as_bytes()));
    count_blob(batch, &old.blob, -1);
}

/// Whether `bucket` holds any object (one seek).
pub(crate) fn any_in(meta: &Meta, bucket: &str) -> Result<bool> {
    let prefix = rec::object_prefix(bucket);
    Ok(meta
        .scan_prefix(Cf::Objects, &prefix, &prefix)
        .next()
        .transpose()?
        .is_some())
}

/// The objects of `bucket` whose key bytes are ≥ `from`, in key order.
pub(crate) fn scan<'m>(
    meta: &'m Meta,
    bucket: &str,
    from: &[u8],
) -> impl Iterator<Item = Result<(String, ObjectRecord)>> + 'm {
    let prefix = rec::object_prefix(bucket);
    let mut start = prefix.clone();
    start.extend_from_slice(from);
    meta.scan_prefix(Cf::Objects, &prefix, &start).map(|kv| {
        let (k, v) = kv?;
        let (_, key) = rec::parse_object(&k)?;
        let r = rec::decode_object(&v).map_err(|e| Error::corrupt(format!("object {key:?}"), e))?;
        Ok((key, r))
    })
}

/// The (bucket, key) of every object whose record names blob `blob`: a
/// scan of every object (there is no index by blob), for `Store::blob_users`.
pub(crate) fn naming_blob(meta: &Meta, blob: &BlobId) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for kv in meta.scan_prefix(Cf::Objects, &[], &[]) {
        let (k, v) = kv?;
        if rec::decode_object(&v)?.blob == *blob.as_bytes() {
            out.push(rec::parse_object(&k)?);
        }
    }
    Ok(out)
}

/// The blob references object records and multipart part records hold
/// (one per record), for [`super::references::walk`]; a record that does
/// not decode adds nothing and is passed on as undecodable.
pub(super) fn walk_refs(
    r: &(impl Scan + ?Sized),
    f: &mut dyn FnMut(Found) -> Result<()>,
) -> Result<()> {
    for kv in r.scan_prefix(Cf::Objects, &[], &[]) {
        let (k, v) = kv?;
        match rec::decode_object(&v) {
            Ok(o) => f(Found::Reference(Count::Blob(BlobId(Hash32(o.blob)))))?,
            Err(error) => f(Found::Undecodable {
                source: Source::Object,
                key: RawKey::new(Cf::Objects, &k),
                error,
            })?,
        }
    }
    multipart::walk_refs(r, f)
}

/// Checks, as of `snap`, that every blob an object or multipart part
/// record names is stored, with the record's size; calls `bad` with a
/// problem kind (`blob-missing`, `object-size`), what it is found in and
/// what is wrong. Records that do not decode are skipped (the reference walk
/// reports them).
pub(crate) fn check_blobs(
    snap: &Snapshot,
    bad: &mut dyn FnMut(&'static str, String, String),
) -> Result<()> {
    let mut check = |what: String, blob: &[u8; 32], size: u64| -> Result<()> {
        let id = BlobId(Hash32(*blob));
        match snap.get(Cf::Blobs, blob)?.map(|b| records::decode_blob(&b)) {
            Some(Ok(b)) if b.size == size => {}
            Some(Err(_)) => {} // reported by the blob checks
            Some(Ok(b)) => bad(
                "object-size",
                what,
                format!("blob {id} holds {} bytes, the record says {size}", b.size),
            ),
            None => bad("blob-missing", what, format!("blob {id} is not stored")),
        }
        Ok(())
    };
    for kv in snap.scan_prefix(Cf::Objects, &[], &[]) {
        let (k, v) = kv?;
        if let Ok(o) = rec::decode_object(&v) {
            let what = match rec::parse_object(&k) {
                Ok((b, key)) => format!("object {b}/{key}"),
                Err(_) => format!("objects key {}", hex::encode(&k)),
            };
            check(what, &o.blob, o.size)?;
        }
    }
    for kv in snap.scan_prefix(Cf::Multipart, &[rec::tag::PART], &[rec::tag::PART]) {
        let (k, v) = kv?;
        if let Ok(p) = rec::decode_part(&v) {
            check(
                format!("multipart part {}", hex::encode(&k[1..])),
                &p.blob,
                p.size,
            )?;
        }
    }
    Ok(())
}

/// Stores `value` under `key` unchecked (tests that damage records).
#[cfg(test)]
pub(crate) fn put_raw(batch: &mut Batch, key: Vec<u8>, value: Vec<u8>) {
    batch.put(Cf::Objects, key, value);
}

/// Object records read so far (see [`Meta::reads`]; test builds only).
#[cfg(test)]
pub(crate) fn reads(meta: &Meta) -> u64 {
    meta.reads(Cf::Objects)
}
