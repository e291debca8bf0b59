//! The `experiments` column family: experiment id → [`ExperimentRecord`]
//! (postcard).

use crate::error::{Error, Result};
use crate::meta::records::decode_postcard;
use crate::meta::registry_records::{EntityId, ExperimentRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::common::{get_postcard, put_postcard};

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

/// Every experiment, ascending by id.
pub(crate) fn all<'s>(
    s: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<(EntityId, ExperimentRecord)>> + 's {
    s.scan_prefix(Cf::Experiments, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let id = EntityId::try_from_slice(&k)?;
        Ok((id, decode_postcard(RECORD, &v)?))
    })
}
