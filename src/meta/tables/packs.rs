//! The `packs` column family: pack id (u32 BE) → [`PackRecord`] (the
//! committed length of its file).

use crate::error::{Error, Result};
use crate::meta::records::{self, PackRecord};
use crate::meta::{keys, Batch, Cf, Meta};

/// Writes the record of pack `id`.
pub(crate) fn put(batch: &mut Batch, id: u32, rec: &PackRecord) {
    batch.put(
        Cf::Packs,
        keys::pack(id).to_vec(),
        records::encode_pack(rec).to_vec(),
    );
}

/// Deletes the record of pack `id`.
pub(crate) fn delete(batch: &mut Batch, id: u32) {
    batch.delete(Cf::Packs, keys::pack(id).to_vec());
}

/// Every pack record, in pack id order.
pub(crate) fn all(meta: &Meta) -> impl Iterator<Item = Result<(u32, PackRecord)>> + '_ {
    meta.scan_prefix(Cf::Packs, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let id = keys::parse_pack(&k)
            .ok_or_else(|| Error::corrupt("packs column family", "key of the wrong length"))?;
        Ok((id, records::decode_pack(&v)?))
    })
}
