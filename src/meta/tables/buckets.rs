//! The `buckets` column family: bucket name → [`BucketRecord`].

use crate::error::{Error, Result};
use crate::meta::object_records::{self as rec, BucketRecord};
use crate::meta::{Batch, Cf, Meta};

use super::Read;

/// The record of bucket `name`, if it exists.
pub(crate) fn get(r: &impl Read, name: &str) -> Result<Option<BucketRecord>> {
    r.get(Cf::Buckets, name.as_bytes())?
        .map(|v| rec::decode_bucket(&v))
        .transpose()
}

/// Writes the record of bucket `name`.
pub(crate) fn put(batch: &mut Batch, name: &str, r: &BucketRecord) {
    batch.put(Cf::Buckets, name.as_bytes().to_vec(), rec::encode(r));
}

/// Deletes the record of bucket `name`.
pub(crate) fn delete(batch: &mut Batch, name: &str) {
    batch.delete(Cf::Buckets, name.as_bytes().to_vec());
}

/// Every bucket, in name order.
pub(crate) fn all(meta: &Meta) -> impl Iterator<Item = Result<(String, BucketRecord)>> + '_ {
    meta.scan_prefix(Cf::Buckets, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let name = String::from_utf8(k.into_vec()).map_err(|e| {
            Error::corrupt("buckets key", format!("{:02x?} is not UTF-8", e.as_bytes()))
        })?;
        Ok((name, rec::decode_bucket(&v)?))
    })
}

/// Stores `value` under `key` unchecked (tests that damage records).
#[cfg(test)]
pub(crate) fn put_raw(batch: &mut Batch, key: Vec<u8>, value: Vec<u8>) {
    batch.put(Cf::Buckets, key, value);
}
