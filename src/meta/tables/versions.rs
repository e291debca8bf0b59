//! The `versions` column family: model id ‖ version (u32 BE) →
//! [`VersionRecord`] (postcard): the files of one model version.

use crate::error::Result;
use crate::meta::keys::id_version;
use crate::meta::records::decode_postcard;
use crate::meta::registry_index::Key;
use crate::meta::registry_records::{EntityId, VersionRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::common::{get_postcard, put_postcard};
use super::RawKey;

/// Names the record in decode errors.
const RECORD: &str = "version record";
/// Names the key in parse errors.
const KEY: &str = "versions key";

fn key(id: &EntityId, v: u32) -> Vec<u8> {
    Key::plain().id(id).u32(v).done()
}

/// Version `v` of model `id`, if stored.
pub(crate) fn get(meta: &Meta, id: &EntityId, v: u32) -> Result<Option<VersionRecord>> {
    get_postcard(meta, Cf::Versions, &key(id, v), RECORD)
}

/// Writes version `v` of model `id`.
pub(crate) fn put(batch: &mut Batch, id: &EntityId, v: u32, rec: &VersionRecord) {
    put_postcard(batch, Cf::Versions, key(id, v), rec);
}

/// Deletes version `v` of model `id`.
pub(crate) fn delete(batch: &mut Batch, id: &EntityId, v: u32) {
    batch.delete(Cf::Versions, key(id, v));
}

/// The highest version number of model `id` still stored (one read).
pub(crate) fn newest(meta: &Meta, id: &EntityId) -> Result<Option<u32>> {
    meta.floor(Cf::Versions, &id.0, &key(id, u32::MAX))?
        .map(|(k, _)| Ok(id_version(&k, KEY)?.1))
        .transpose()
}

/// The version numbers of model `id`, ascending.
pub(crate) fn numbers<'m>(meta: &'m Meta, id: &EntityId) -> impl Iterator<Item = Result<u32>> + 'm {
    meta.scan_prefix(Cf::Versions, &id.0, &id.0)
        .map(|kv| Ok(id_version(&kv?.0, KEY)?.1))
}

/// The versions of model `id`, ascending.
pub(crate) fn of<'m>(
    meta: &'m Meta,
    id: &EntityId,
) -> impl Iterator<Item = Result<(u32, VersionRecord)>> + 'm {
    meta.scan_prefix(Cf::Versions, &id.0, &id.0).map(|kv| {
        let (k, v) = kv?;
        let (_, n) = id_version(&k, KEY)?;
        Ok((n, decode_postcard(RECORD, &v)?))
    })
}

/// Every stored version, in key order, with a key or record that does not
/// decode given as a value (for checks that report it and go on).
#[allow(clippy::type_complexity)]
pub(crate) fn entries<S: Scan>(
    s: &S,
) -> impl Iterator<Item = Result<(RawKey, Result<(EntityId, u32)>, Result<VersionRecord>)>> + '_ {
    s.scan_prefix(Cf::Versions, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let id = id_version(&k, KEY);
        Ok((RawKey(k), id, decode_postcard(RECORD, &v)))
    })
}

/// Every stored version, in key order; an error for a key or record that
/// does not decode.
pub(crate) fn all<S: Scan>(
    s: &S,
) -> impl Iterator<Item = Result<(EntityId, u32, VersionRecord)>> + '_ {
    entries(s).map(|e| {
        let (_, id, rec) = e?;
        let (id, v) = id?;
        Ok((id, v, rec?))
    })
}
