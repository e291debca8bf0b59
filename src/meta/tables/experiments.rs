//! The `experiments` column family: experiment id → [`ExperimentRecord`]
//! (postcard).

use crate::error::{Error, Result};
use crate::meta::records::decode_postcard;
use crate::meta::registry_records::{EntityId, ExperimentRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::common::{get_postcard, put_postcard};
use super::raw_key::RawKey;

/// Names the record in decode errors.
const RECORD: &str = "experiment record";

/// The record of experiment `id`, if stored.
pub(crate) fn get(meta: &Meta, id: &EntityId) -> Result<Option<ExperimentRecord>> {
    get_as(meta, id, RECORD)
}

/// [`get`], naming the record `what` in a decode error.
pub(crate) fn get_as(
    meta: &Meta,
    id: &EntityId,
    what: &'static str,
) -> Result<Option<ExperimentRecord>> {
    get_postcard(meta, Cf::Experiments, &id.0, what)
}

/// Writes the record of experiment `id`.
pub(crate) fn put(batch: &mut Batch, id: &EntityId, rec: &ExperimentRecord) {
    put_postcard(batch, Cf::Experiments, id.0.to_vec(), rec);
}

/// Stores `value` as the record of experiment `id`, unencoded (tests that
/// damage records).
#[cfg(test)]
pub(crate) fn put_raw(batch: &mut Batch, id: &EntityId, value: Vec<u8>) {
    batch.put(Cf::Experiments, id.0.to_vec(), value);
}

/// Deletes the record of experiment `id`.
pub(crate) fn delete(batch: &mut Batch, id: &EntityId) {
    batch.delete(Cf::Experiments, id.0.to_vec());
}

/// The experiment ids from `lower` on, ascending (creation order).
pub(crate) fn ids_from<'m>(
    meta: &'m Meta,
    lower: &EntityId,
) -> impl Iterator<Item = Result<EntityId>> + 'm {
    meta.scan_prefix(Cf::Experiments, &[], &lower.0).map(|kv| {
        let (k, _) = kv?;
        Ok(EntityId(k[..].try_into().map_err(|_| {
            Error::corrupt("experiments key", "not 16 bytes")
        })?))
    })
}

/// A stored experiment as read: its key, and its key's id and its record, each
/// decoded or not.
pub(crate) type Entry = (RawKey, Result<EntityId>, Result<ExperimentRecord>);

/// Every stored experiment, ascending by id, with a key or record that does not
/// decode given as a value (for checks that report it and go on).
pub(crate) fn entries<'s>(s: &'s (impl Scan + ?Sized)) -> impl Iterator<Item = Result<Entry>> + 's {
    s.scan_prefix(Cf::Experiments, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        Ok((
            RawKey::new(Cf::Experiments, &k),
            EntityId::try_from_slice(&k),
            decode_postcard(RECORD, &v),
        ))
    })
}
