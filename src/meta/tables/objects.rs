//! The `objects` column family: (bucket, key) → [`ObjectRecord`]. Writing
//! or deleting a record adds or releases, in the same batch, the reference
//! its blob is kept by (a `refs` blob count, as registry records hold).

use crate::error::{Error, Result};
use crate::id::{BlobId, Hash32};
use crate::meta::keys::{self, refs};
use crate::meta::object_records::{self as rec, ObjectRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::{multipart, Read};

/// Adds `delta` to the references of blob `blob` (object and part records
/// hold one each).
pub(super) fn count_blob(batch: &mut Batch, blob: &[u8; 32], delta: i64) {
    batch.count(keys::count(refs::BLOB, blob), delta);
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
        rec::encode(r),
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

/// Calls `f` with the blob of every reference object and multipart part
/// records hold (one per record), as of `r`. A record that does not decode
/// adds nothing and is passed to `bad` (its key, shown, and the error).
pub(crate) fn blob_refs(
    r: &(impl Scan + ?Sized),
    f: &mut dyn FnMut(&BlobId),
    bad: &mut dyn FnMut(String, Error),
) -> Result<()> {
    for kv in r.scan_prefix(Cf::Objects, &[], &[]) {
        let (k, v) = kv?;
        match rec::decode_object(&v) {
            Ok(o) => f(&BlobId(Hash32(o.blob))),
            Err(e) => bad(format!("objects key {}", hex::encode(&k)), e),
        }
    }
    multipart::blob_refs(r, f, bad)
}
