//! The `uploads` column family: manifest id (u64 BE) → [`UploadRecord`]
//! (postcard), one per open upload session, until the upload's blob is
//! committed or the session expires.

use crate::error::{Error, Result};
use crate::meta::records::{self, UploadRecord};
use crate::meta::{keys, Batch, Cf, Meta, Scan};

use super::{gc_queue, IdOrKey};

/// Writes the session record of the upload whose manifest is `manifest`.
pub(crate) fn put(batch: &mut Batch, manifest: u64, rec: &UploadRecord) {
    batch.put(
        Cf::Uploads,
        keys::upload(manifest).to_vec(),
        records::encode_postcard(rec),
    );
}

/// Deletes the session record of `manifest` (its blob was committed).
pub(crate) fn delete(batch: &mut Batch, manifest: u64) {
    batch.delete(Cf::Uploads, keys::upload(manifest).to_vec());
}

/// Gives the session of `manifest` up: deletes its record and queues the
/// manifest for collection, so its committed segments become garbage.
pub(crate) fn give_up(batch: &mut Batch, manifest: u64) {
    delete(batch, manifest);
    gc_queue::mark_manifest(batch, manifest);
}

/// The session record of `manifest`, if it has one.
pub(crate) fn get(meta: &Meta, manifest: u64) -> Result<Option<UploadRecord>> {
    meta.get(Cf::Uploads, &keys::upload(manifest))?
        .map(|b| records::decode_postcard("upload session", &b))
        .transpose()
}

/// Every session, in manifest id order.
pub(crate) fn all(meta: &Meta) -> impl Iterator<Item = Result<(u64, UploadRecord)>> + '_ {
    meta.scan_prefix(Cf::Uploads, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let id = keys::parse_u64(&k)
            .ok_or_else(|| Error::corrupt("uploads column family", "key of the wrong length"))?;
        Ok((id, records::decode_postcard("upload session", &v)?))
    })
}

/// The highest manifest id that has a session record.
pub(crate) fn last_id(meta: &Meta) -> Result<Option<u64>> {
    super::last_id(meta, Cf::Uploads, "uploads column family", keys::parse_u64)
}

/// The manifest ids of the session records in `[lo, hi]`, ascending; a
/// malformed key in that range comes as its [`RawKey`].
pub(crate) fn ids_in<'s>(
    r: &'s (impl Scan + ?Sized),
    lo: u64,
    hi: u64,
) -> impl Iterator<Item = Result<IdOrKey>> + 's {
    super::ids_in(
        r,
        Cf::Uploads,
        &[],
        &keys::upload(lo),
        keys::upload(hi).to_vec(),
        keys::parse_u64,
    )
}
