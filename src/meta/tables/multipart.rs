//! The `multipart` column family: multipart uploads of objects (upload id
//! → [`MultipartRecord`]), their parts ((upload id, part number) →
//! [`PartRecord`], each holding a reference on its blob), and an index of
//! each bucket's uploads in key order. Layouts in
//! [`crate::meta::object_records`].

use crate::error::{Error, Result};
use crate::id::{BlobId, Hash32};
use crate::meta::object_records::{self as rec, tag, MultipartRecord, PartRecord, UPLOAD_ID_LEN};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::objects::count_blob;
use super::references::{Found, Source};
use super::refs::Count;
use super::{RawKey, Read};

/// An upload id.
pub(crate) type UploadKey = [u8; UPLOAD_ID_LEN];

/// The record of upload `id`, if it exists.
pub(crate) fn get(r: &impl Read, id: &UploadKey) -> Result<Option<MultipartRecord>> {
    r.get(Cf::Multipart, &rec::upload(id))?
        .map(|v| rec::decode_multipart(&v))
        .transpose()
}

/// Writes the record of upload `id` and its index entry.
pub(crate) fn put(batch: &mut Batch, id: &UploadKey, r: &MultipartRecord) {
    batch.put(
        Cf::Multipart,
        rec::upload(id).to_vec(),
        rec::encode_multipart(r),
    );
    batch.put(
        Cf::Multipart,
        rec::by_key(&r.bucket, r.key.as_bytes(), id),
        Vec::new(),
    );
}

/// Deletes the record `r` of upload `id` and its index entry (not its parts).
pub(crate) fn delete(batch: &mut Batch, id: &UploadKey, r: &MultipartRecord) {
    batch.delete(Cf::Multipart, rec::upload(id).to_vec());
    batch.delete(Cf::Multipart, rec::by_key(&r.bucket, r.key.as_bytes(), id));
}

/// Part `n` of upload `id`, if uploaded.
pub(crate) fn get_part(r: &impl Read, id: &UploadKey, n: u32) -> Result<Option<PartRecord>> {
    r.get(Cf::Multipart, &rec::part(id, n))?
        .map(|v| rec::decode_part(&v))
        .transpose()
}

/// Writes part `n` of upload `id`, taking a reference on its blob and
/// releasing the one `old` (the part it replaces, if any) held.
pub(crate) fn put_part(
    batch: &mut Batch,
    id: &UploadKey,
    n: u32,
    r: &PartRecord,
    old: Option<&PartRecord>,
) {
    batch.put(Cf::Multipart, rec::part(id, n).to_vec(), rec::encode(r));
    count_blob(batch, &r.blob, 1);
    if let Some(old) = old {
        count_blob(batch, &old.blob, -1);
    }
}

/// Deletes part `n` (record `old`) of upload `id`, releasing its reference.
pub(crate) fn delete_part(batch: &mut Batch, id: &UploadKey, n: u32, old: &PartRecord) {
    batch.delete(Cf::Multipart, rec::part(id, n).to_vec());
    count_blob(batch, &old.blob, -1);
}

/// The parts of upload `id` numbered above `after`, in number order.
pub(crate) fn parts<'m>(
    meta: &'m Meta,
    id: &UploadKey,
    after: u32,
) -> impl Iterator<Item = Result<(u32, PartRecord)>> + 'm {
    let prefix = rec::parts_prefix(id);
    let start = match after.checked_add(1) {
        Some(n) => rec::part(id, n).to_vec(),
        // Nothing is numbered above u32::MAX: start past every part.
        None => {
            let mut s = prefix.to_vec();
            s.push(0xFF);
            s.extend_from_slice(&[0xFF; 4]);
            s
        }
    };
    meta.scan_prefix(Cf::Multipart, &prefix, &start).map(|kv| {
        let (k, v) = kv?;
        let n = rec::parse_part(&k)?;
        let r = rec::decode_part(&v).map_err(|e| Error::corrupt(format!("part {n}"), e))?;
        Ok((n, r))
    })
}

/// Where a listing of a bucket's uploads starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum After<'a> {
    /// At the first upload.
    Start,
    /// Past every upload of this key.
    Key(&'a str),
    /// Past this upload of this key (uploads of one key are in id order).
    Upload(&'a str, &'a UploadKey),
}

/// The ids of the uploads of `bucket` whose key starts with `prefix`,
/// from `after` on, in key order, then in id order.
pub(crate) fn in_bucket<'m>(
    meta: &'m Meta,
    bucket: &str,
    prefix: &str,
    after: After<'_>,
) -> impl Iterator<Item = Result<UploadKey>> + 'm {
    // The index's escaped keys end in 00 00: without it, a key's escaped
    // bytes are the prefix of every key that starts with it.
    let mut scan_prefix = rec::by_key_of(bucket, prefix.as_bytes());
    scan_prefix.truncate(scan_prefix.len() - 2);
    let from = match after {
        After::Start => Vec::new(),
        After::Key(k) => {
            // 00 01 sorts after the 00 00 that ends `k` and before the
            // 00 FF of a longer key's escaped 00.
            let mut f = rec::by_key_of(bucket, k.as_bytes());
            *f.last_mut().expect("ends in 00 00") = 1;
            f
        }
        After::Upload(k, id) => {
            let mut f = rec::by_key(bucket, k.as_bytes(), id);
            f.push(0);
            f
        }
    };
    let start = from.max(scan_prefix.clone());
    meta.scan_prefix(Cf::Multipart, &scan_prefix, &start)
        .map(|kv| rec::parse_by_key(&kv?.0))
}

/// The blob reference of every part record (see
/// [`super::objects::walk_refs`]).
pub(super) fn walk_refs(
    r: &(impl Scan + ?Sized),
    f: &mut dyn FnMut(Found) -> Result<()>,
) -> Result<()> {
    for kv in r.scan_prefix(Cf::Multipart, &[tag::PART], &[tag::PART]) {
        let (k, v) = kv?;
        match rec::decode_part(&v) {
            Ok(p) => f(Found::Reference(Count::Blob(BlobId(Hash32(p.blob)))))?,
            Err(error) => f(Found::Undecodable {
                source: Source::Part,
                key: RawKey::new(Cf::Multipart, &k),
                error,
            })?,
        }
    }
    Ok(())
}

/// Every upload (id and record), in id order: across buckets, oldest
/// first (ids are UUID v7).
pub(crate) fn all(meta: &Meta) -> impl Iterator<Item = Result<(UploadKey, MultipartRecord)>> + '_ {
    meta.scan_prefix(Cf::Multipart, &[tag::UPLOAD], &[tag::UPLOAD])
        .map(|kv| {
            let (k, v) = kv?;
            let id: UploadKey = k[1..].try_into().map_err(|_| {
                Error::corrupt(
                    "multipart upload key",
                    format!("{} bytes, expected 17", k.len()),
                )
            })?;
            Ok((id, rec::decode_multipart(&v)?))
        })
}

/// Stores `value` under `key` unchecked (tests that damage records).
#[cfg(test)]
pub(crate) fn put_raw(batch: &mut Batch, key: Vec<u8>, value: Vec<u8>) {
    batch.put(Cf::Multipart, key, value);
}
