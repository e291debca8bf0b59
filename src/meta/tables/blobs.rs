//! The `blobs` column family: blob id → [`BlobRecord`] (size, chunk count,
//! manifest id).

use crate::error::Result;
use crate::id::{BlobId, Hash32};
use crate::meta::records::{self, BlobRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::Entry;

/// The record of blob `id`, if stored.
pub(crate) fn get(meta: &Meta, id: &BlobId) -> Result<Option<BlobRecord>> {
    meta.with(Cf::Blobs, id.as_bytes(), records::decode_blob)
}

/// The record of blob `id` as of `r` (the database or a snapshot), if
/// stored, with a record that does not decode given as a value (for checks
/// that report it elsewhere and go on).
pub(crate) fn get_at(r: &impl super::Read, id: &BlobId) -> Result<Option<Result<BlobRecord>>> {
    Ok(r.get(Cf::Blobs, id.as_bytes())?
        .map(|b| records::decode_blob(&b)))
}

/// Whether blob `id` has a record (without decoding it).
pub(crate) fn exists(meta: &Meta, id: &BlobId) -> Result<bool> {
    Ok(meta.get(Cf::Blobs, id.as_bytes())?.is_some())
}

/// Writes the record of blob `id`.
pub(crate) fn put(batch: &mut Batch, id: &BlobId, rec: &BlobRecord) {
    batch.put(
        Cf::Blobs,
        id.as_bytes().to_vec(),
        records::encode_blob(rec).to_vec(),
    );
}

/// Deletes the record of blob `id`.
pub(crate) fn delete(batch: &mut Batch, id: &BlobId) {
    batch.delete(Cf::Blobs, id.as_bytes().to_vec());
}

/// Every blob record, in id order, key and value parsed apart (see
/// [`Entry`]).
pub(crate) fn entries<'s>(
    r: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<Entry<BlobId, BlobRecord>>> + 's {
    super::entries(
        r,
        Cf::Blobs,
        |k| Hash32::from_slice(k).map(BlobId),
        records::decode_blob,
    )
}
