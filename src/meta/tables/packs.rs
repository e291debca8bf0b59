//! The `packs` column family: pack id (u32 BE) → [`PackRecord`] (the
//! committed length of its file).

use crate::error::Result;
use crate::meta::records::{self, PackRecord};
use crate::meta::{keys, Batch, Cf, Meta, Scan};

use super::Entry;

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

/// Whether pack `id` has a record.
pub(crate) fn exists(meta: &Meta, id: u32) -> Result<bool> {
    Ok(meta.get(Cf::Packs, &keys::pack(id))?.is_some())
}

/// Every pack record, in pack id order, key and value parsed apart (see
/// [`Entry`]).
pub(crate) fn entries<'s>(
    r: &'s (impl Scan + ?Sized),
) -> impl Iterator<Item = Result<Entry<u32, PackRecord>>> + 's {
    super::entries(r, Cf::Packs, keys::parse_pack, records::decode_pack)
}

/// Every pack record, in pack id order; a malformed key or an undecodable
/// value is an error.
pub(crate) fn all(meta: &Meta) -> impl Iterator<Item = Result<(u32, PackRecord)>> + '_ {
    super::strict("packs column family", entries(meta))
}
