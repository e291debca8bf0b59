//! The `versions` column family: model id ‖ version (u32 BE) →
//! [`VersionRecord`] (postcard): the files of one model version.

use crate::error::Result;
use crate::meta::keys::id_version;
use crate::meta::records::decode_postcard;
use crate::meta::registry_index::Key;
use crate::meta::registry_records::{EntityId, VersionRecord};
use crate::meta::{Batch, Cf, Meta, Scan};

use super::common::{get_postcard, put_postcard};
use super::raw_key::RawKey;

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

/// Stores `value` as the record of version `v` of model `id`, unencoded
/// (tests that damage records).
#[cfg(test)]
pub(crate) fn put_raw(batch: &mut Batch, id: &EntityId, v: u32, value: Vec<u8>) {
    batch.put(Cf::Versions, key(id, v), value);
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

/// A stored version as read: its key, and its key's model id and version
/// and its record, each decoded or not.
pub(crate) type Entry = (RawKey, Result<(EntityId, u32)>, Result<VersionRecord>);

/// Every stored version, in key order, with a key or record that does not
/// decode given as a value (for checks that report it and go on).
pub(crate) fn entries<'s>(s: &'s (impl Scan + ?Sized)) -> impl Iterator<Item = Result<Entry>> + 's {
    s.scan_prefix(Cf::Versions, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let id = id_version(&k, KEY);
        Ok((
            RawKey::new(Cf::Versions, &k),
            id,
            decode_postcard(RECORD, &v),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::records::encode_postcard;

    /// A row whose key or record does not decode comes back as a value
    /// naming what is wrong, between the rows that decode.
    #[test]
    fn rows_that_do_not_decode_come_back_as_values() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path(), true).unwrap();
        let id = EntityId([1; 16]);
        let rec = VersionRecord {
            files: Vec::new(),
            created_ms: 7,
            experiment: None,
        };
        let mut b = Batch::default();
        put(&mut b, &id, 1, &rec);
        b.put(Cf::Versions, key(&id, 2), vec![0xff; 3]);
        b.put(Cf::Versions, b"short".to_vec(), encode_postcard(&rec));
        meta.commit(b, true).unwrap();

        let rows: Vec<Entry> = entries(&meta).map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        let (k, good, r) = &rows[0];
        assert_eq!(k.to_string(), hex::encode(key(&id, 1)));
        assert_eq!(good.as_ref().unwrap(), &(id, 1));
        assert_eq!(r.as_ref().unwrap(), &rec);
        let (_, good, r) = &rows[1];
        assert_eq!(good.as_ref().unwrap(), &(id, 2));
        assert!(r
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("version record"));
        let (k, bad, r) = &rows[2];
        assert_eq!(k.to_string(), hex::encode(b"short"));
        assert!(bad
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("versions key"));
        assert_eq!(r.as_ref().unwrap(), &rec);
    }
}
