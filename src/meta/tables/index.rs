//! The `index` column family: the registry's secondary indexes. Their key
//! layouts, and the key sets each record implies, are in
//! [`crate::meta::registry_index`]; these read and write them.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::meta::keys::id_version;
use crate::meta::registry_index::{diff, tag, trailing_id, url_key, Key};
use crate::meta::registry_records::{EntityId, Status};
use crate::meta::{Batch, Cf, Meta, Pair, Scan};

/// Puts and deletes the entries that turn the key set `old` into `new`.
pub(crate) fn apply(batch: &mut Batch, old: &BTreeSet<Vec<u8>>, new: &BTreeSet<Vec<u8>>) {
    let (puts, dels) = diff(old, new);
    insert(batch, puts);
    for k in dels {
        batch.delete(Cf::Index, k);
    }
}

/// Puts the entries `keys` (empty values), moving each key into the batch.
pub(crate) fn insert(batch: &mut Batch, keys: impl IntoIterator<Item = Vec<u8>>) {
    for k in keys {
        batch.put(Cf::Index, k, Vec::new());
    }
}

/// The external model registered for `url`, if any.
pub(crate) fn model_by_url(meta: &Meta, url: &str) -> Result<Option<EntityId>> {
    meta.get(Cf::Index, &url_key(url))?
        .map(|v| EntityId::try_from_slice(&v))
        .transpose()
}

/// Records model `id` as the one registered for `url`.
pub(crate) fn put_url(batch: &mut Batch, url: &str, id: &EntityId) {
    batch.put(Cf::Index, url_key(url), id.0.to_vec());
}

/// Deletes the entry of `url`.
pub(crate) fn delete_url(batch: &mut Batch, url: &str) {
    batch.delete(Cf::Index, url_key(url));
}

/// The ids of the entries under `prefix` from `start` on (the id is a
/// key's last 16 bytes), in key order.
fn ids_from<'m>(
    meta: &'m Meta,
    prefix: &[u8],
    start: &[u8],
) -> impl Iterator<Item = Result<EntityId>> + 'm {
    meta.scan_prefix(Cf::Index, prefix, start).map(|kv| {
        let (k, _) = kv?;
        trailing_id(&k).ok_or_else(|| Error::corrupt("index", "key too short"))
    })
}

/// The ids of the entries under `prefix`, in key order.
fn ids_under(meta: &Meta, prefix: &[u8]) -> Result<Vec<EntityId>> {
    ids_from(meta, prefix, prefix).collect()
}

/// The models called `name`, ascending by id.
pub(crate) fn models_named(meta: &Meta, name: &str) -> Result<Vec<EntityId>> {
    ids_under(meta, &Key::new(tag::MODEL_NAME).str(name).done())
}

/// The experiments called `name` in `project`, ascending by id.
pub(crate) fn experiments_named(meta: &Meta, project: &str, name: &str) -> Result<Vec<EntityId>> {
    ids_under(meta, &Key::new(tag::EXP_NAME).str(project).str(name).done())
}

/// An experiment index that can drive a listing.
pub(crate) enum ExperimentsBy<'a> {
    /// The experiments with this tag.
    Tag(&'a str),
    /// The experiments in this status.
    Status(Status),
    /// The experiments of this project.
    Project(&'a str),
}

/// The experiments `by` selects, from id `lower` on, ascending.
pub(crate) fn experiments_by<'m>(
    meta: &'m Meta,
    by: &ExperimentsBy,
    lower: &EntityId,
) -> impl Iterator<Item = Result<EntityId>> + 'm {
    let prefix = match by {
        ExperimentsBy::Tag(t) => Key::new(tag::EXP_TAG).str(t),
        ExperimentsBy::Status(s) => Key::new(tag::EXP_STATUS).bytes(&[s.code()]),
        ExperimentsBy::Project(p) => Key::new(tag::EXP_PROJECT).str(p),
    }
    .done();
    ids_from(meta, &prefix, &[prefix.as_slice(), &lower.0].concat())
}

/// The models experiment `exp` created (the id is each entry's last 16
/// bytes).
pub(crate) fn models_created_by(meta: &Meta, exp: &EntityId) -> Result<Vec<EntityId>> {
    ids_under(meta, &Key::new(tag::EXP_CREATED).id(exp).done())
}

/// [`models_created_by`] for a deletion, stricter: an error for an entry
/// whose rest after the prefix is not exactly one id, so that a damaged
/// entry never has a model deleted by a misread id.
pub(crate) fn models_created_by_checked(meta: &Meta, exp: &EntityId) -> Result<Vec<EntityId>> {
    let prefix = Key::new(tag::EXP_CREATED).id(exp).done();
    meta.scan_prefix(Cf::Index, &prefix, &prefix)
        .map(|kv| EntityId::try_from_slice(&kv?.0[prefix.len()..]))
        .collect()
}

/// `(id, version)` pairs following `prefix` in each entry under it; `what`
/// names the key in parse errors.
fn id_versions(meta: &Meta, prefix: &[u8], what: &'static str) -> Result<Vec<(EntityId, u32)>> {
    meta.scan_prefix(Cf::Index, prefix, prefix)
        .map(|kv| id_version(&kv?.0[prefix.len()..], what))
        .collect()
}

/// The experiments that used model `model`: (experiment, version).
pub(crate) fn used_by(meta: &Meta, model: &EntityId) -> Result<Vec<(EntityId, u32)>> {
    let prefix = Key::new(tag::MODEL_USED_BY).id(model).done();
    id_versions(meta, &prefix, "model-used-by index key")
}

/// The model versions holding `blob`: (model, version).
pub(crate) fn versions_with_blob(meta: &Meta, blob: &BlobId) -> Result<Vec<(EntityId, u32)>> {
    let prefix = Key::new(tag::BLOB_MODEL).bytes(blob.as_bytes()).done();
    id_versions(meta, &prefix, "blob index key")
}

/// Which of `keys` (sorted ascending) are entries, in one batched lookup.
pub(crate) fn exist_sorted(meta: &Meta, keys: &[Vec<u8>]) -> Result<Vec<bool>> {
    meta.exist_sorted(Cf::Index, keys)
}

/// Calls `f` with each key under `prefix` from `start` on, without
/// copying, until `f` returns false.
pub(crate) fn scan_keys(
    meta: &Meta,
    prefix: &[u8],
    start: &[u8],
    f: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<()> {
    meta.scan_keys(Cf::Index, prefix, start, f)
}

/// Every entry (key and value), in key order: for the comparison with what
/// the records imply.
pub(crate) fn entries<'s>(s: &'s (impl Scan + ?Sized)) -> impl Iterator<Item = Result<Pair>> + 's {
    s.scan_prefix(Cf::Index, &[], &[])
}

/// Puts the entry `key` with `value` (a repair).
pub(crate) fn put_entry(batch: &mut Batch, key: Vec<u8>, value: Vec<u8>) {
    batch.put(Cf::Index, key, value);
}

/// Deletes the entry `key` (a repair).
pub(crate) fn delete_entry(batch: &mut Batch, key: Vec<u8>) {
    batch.delete(Cf::Index, key);
}

/// Index entries read so far (see [`Meta::reads`]; test builds only).
#[cfg(test)]
pub(crate) fn reads(meta: &Meta) -> u64 {
    meta.reads(Cf::Index)
}
