//! The `models` column family: model id → [`ModelRecord`] (postcard).

use crate::error::Result;
use crate::meta::records::decode_postcard;
use crate::meta::registry_records::{EntityId, ModelRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::common::{get_postcard, put_postcard};
use super::raw_key::RawKey;

/// Names the record in decode errors.
const RECORD: &str = "model record";

/// The record of model `id`, if stored.
pub(crate) fn get(meta: &Meta, id: &EntityId) -> Result<Option<ModelRecord>> {
    get_as(meta, id, RECORD)
}

/// [`get`], naming the record `what` in a decode error.
pub(crate) fn get_as(
    meta: &Meta,
    id: &EntityId,
    what: &'static str,
) -> Result<Option<ModelRecord>> {
    get_postcard(meta, Cf::Models, &id.0, what)
}

/// Writes the record of model `id`.
pub(crate) fn put(batch: &mut Batch, id: &EntityId, rec: &ModelRecord) {
    put_postcard(batch, Cf::Models, id.0.to_vec(), rec);
}

/// Stores `value` as the record of model `id`, unencoded (tests that damage
/// records).
#[cfg(test)]
pub(crate) fn put_raw(batch: &mut Batch, id: &EntityId, value: Vec<u8>) {
    batch.put(Cf::Models, id.0.to_vec(), value);
}

/// Deletes the record of model `id`.
pub(crate) fn delete(batch: &mut Batch, id: &EntityId) {
    batch.delete(Cf::Models, id.0.to_vec());
}

/// Every model id, ascending (creation order).
pub(crate) fn ids(meta: &Meta) -> impl Iterator<Item = Result<EntityId>> + '_ {
    meta.scan_prefix(Cf::Models, &[], &[])
        .map(|kv| EntityId::try_from_slice(&kv?.0))
}

/// A stored model as read: its key, and its key's id and its record, each
/// decoded or not.
pub(crate) type Entry = (RawKey, Result<EntityId>, Result<ModelRecord>);

/// Every stored model, ascending by id, with a key or record that does not
/// decode given as a value (for checks that report it and go on).
pub(crate) fn entries<'s>(s: &'s (impl Scan + ?Sized)) -> impl Iterator<Item = Result<Entry>> + 's {
    s.scan_prefix(Cf::Models, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        Ok((
            RawKey::new(Cf::Models, &k),
            EntityId::try_from_slice(&k),
            decode_postcard(RECORD, &v),
        ))
    })
}

/// Every model, ascending by id; an error for a key or record that does
/// not decode.
pub(crate) fn all<'s>(
    s: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<(EntityId, ModelRecord)>> + 's {
    entries(s).map(|e| {
        let (_, id, rec) = e?;
        Ok((id?, rec?))
    })
}

/// Model records read so far (see [`Meta::reads`]; test builds only).
#[cfg(test)]
pub(crate) fn reads(meta: &Meta) -> u64 {
    meta.reads(Cf::Models)
}
