//! The `artifacts` column family: experiment id ‖ name ‖ 0 ‖ revision
//! (u32 BE) → [`ArtifactRecord`] (postcard).

use crate::error::{Error, Result};
use crate::meta::records::decode_postcard;
use crate::meta::registry_index::Key;
use crate::meta::registry_records::{ArtifactRecord, EntityId};
use crate::meta::{Batch, Cf, Meta};

use super::common::put_postcard;

/// Names the record in decode errors.
const RECORD: &str = "artifact";

fn prefix(id: &EntityId, name: &str) -> Vec<u8> {
    Key::plain().id(id).str(name).done()
}

fn key(id: &EntityId, name: &str, revision: u32) -> Vec<u8> {
    [prefix(id, name), revision.to_be_bytes().to_vec()].concat()
}

fn revision_of(k: &[u8]) -> Result<u32> {
    k.len()
        .checked_sub(4)
        .and_then(|s| k[s..].try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| Error::corrupt("artifact key", "too short"))
}

/// The highest revision of artifact `name` of experiment `id` (one read).
pub(crate) fn last_revision(meta: &Meta, id: &EntityId, name: &str) -> Result<Option<u32>> {
    meta.floor(Cf::Artifacts, &prefix(id, name), &key(id, name, u32::MAX))?
        .map(|(k, _)| revision_of(&k))
        .transpose()
}

/// Revision `revision` of artifact `name` of experiment `id` (`None`: the
/// highest), with its revision number, if stored (one read).
pub(crate) fn find(
    meta: &Meta,
    id: &EntityId,
    name: &str,
    revision: Option<u32>,
) -> Result<Option<(u32, ArtifactRecord)>> {
    let key = key(id, name, revision.unwrap_or(u32::MAX));
    let Some((k, v)) = meta
        .floor(Cf::Artifacts, &prefix(id, name), &key)?
        .filter(|(k, _)| revision.is_none() || k[..] == key[..])
    else {
        return Ok(None);
    };
    let rec = decode_postcard(RECORD, &v)?;
    Ok(Some((revision_of(&k)?, rec)))
}

/// Writes revision `revision` of artifact `name` of experiment `id`.
pub(crate) fn put(
    batch: &mut Batch,
    id: &EntityId,
    name: &str,
    revision: u32,
    rec: &ArtifactRecord,
) {
    put_postcard(batch, Cf::Artifacts, key(id, name, revision), rec);
}

/// Every artifact revision of experiment `id`: (name, revision, record),
/// by name then revision.
pub(crate) fn of<'m>(
    meta: &'m Meta,
    id: &EntityId,
) -> impl Iterator<Item = Result<(String, u32, ArtifactRecord)>> + 'm {
    meta.scan_prefix(Cf::Artifacts, &id.0, &id.0).map(|kv| {
        let (k, v) = kv?;
        let name = k
            .get(16..k.len().saturating_sub(5))
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| Error::corrupt("artifact key", "malformed"))?;
        let rec = decode_postcard(RECORD, &v)?;
        Ok((name.to_string(), revision_of(&k)?, rec))
    })
}

/// Deletes every artifact revision of experiment `id` in `batch`, and
/// returns their records (whose blobs the deletion releases).
pub(crate) fn delete_all(
    meta: &Meta,
    batch: &mut Batch,
    id: &EntityId,
) -> Result<Vec<ArtifactRecord>> {
    let mut out = Vec::new();
    for kv in meta.scan_prefix(Cf::Artifacts, &id.0, &id.0) {
        let (k, v) = kv?;
        out.push(decode_postcard(RECORD, &v)?);
        batch.delete(Cf::Artifacts, k.to_vec());
    }
    Ok(out)
}
