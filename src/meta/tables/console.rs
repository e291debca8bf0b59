//! The `console` column family: experiment id ‖ sequence number (u64 BE) →
//! [`ConsoleRecord`] (postcard): one console line.

use crate::error::{Error, Result};
use crate::meta::records::decode_postcard;
use crate::meta::registry_records::{ConsoleRecord, EntityId};
use crate::meta::{Batch, Cf, Meta};

use super::common::{delete_rows_of, put_postcard};

fn key(id: &EntityId, seq: u64) -> Vec<u8> {
    [&id.0[..], &seq.to_be_bytes()].concat()
}

/// Writes line `seq` of experiment `id`.
pub(crate) fn put(batch: &mut Batch, id: &EntityId, seq: u64, rec: &ConsoleRecord) {
    put_postcard(batch, Cf::Console, key(id, seq), rec);
}

/// The lines of experiment `id` from `seq` on, with their sequence
/// numbers, in order.
pub(crate) fn from<'m>(
    meta: &'m Meta,
    id: &EntityId,
    seq: u64,
) -> impl Iterator<Item = Result<(u64, ConsoleRecord)>> + 'm {
    meta.scan_prefix(Cf::Console, &id.0, &key(id, seq))
        .map(|kv| {
            let (k, v) = kv?;
            let seq = k
                .get(16..24)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::corrupt("console key", "wrong length"))?;
            Ok((seq, decode_postcard("console line", &v)?))
        })
}

/// Deletes every line of experiment `id`.
pub(crate) fn delete_all(batch: &mut Batch, id: &EntityId) {
    delete_rows_of(batch, Cf::Console, id);
}
