//! Secondary indexes: one `index` column family, every key starting with a
//! one-byte index tag, values empty unless noted. Each primary record
//! derives its full set of index keys ([`experiment_keys`], [`model_keys`],
//! [`version_keys`]); a write computes the old and new sets and puts and
//! deletes the difference in the same batch as the record, so an index
//! entry never points at nothing and never goes missing. Rebuilding the
//! index from the primary records gives the same keys (that is the repair
//! path and the consistency check).
//!
//! Strings in keys are followed by a 0x00 terminator; names, projects, tags
//! and metadata keys are validated to contain no 0x00.

use std::collections::BTreeSet;

use super::index_key::index_key;
use super::registry_records::{EntityId, ExperimentRecord, ModelRecord, VersionRecord};
use crate::query::Value;

/// Index tags (first key byte).
pub(crate) mod tag {
    /// project ‖ 0 ‖ experiment id
    pub const EXP_PROJECT: u8 = 0x01;
    /// project ‖ 0 ‖ name ‖ 0 ‖ experiment id
    pub const EXP_NAME: u8 = 0x02;
    /// status code ‖ experiment id
    pub const EXP_STATUS: u8 = 0x03;
    /// tag ‖ 0 ‖ experiment id
    pub const EXP_TAG: u8 = 0x04;
    /// experiment id ‖ model id: models the experiment created
    pub const EXP_CREATED: u8 = 0x05;
    /// experiment id ‖ model id ‖ version: models the experiment used
    pub const EXP_INPUT: u8 = 0x06;
    /// model id ‖ experiment id ‖ version: experiments that used the model
    pub const MODEL_USED_BY: u8 = 0x07;
    /// project ‖ 0 ‖ model id
    pub const MODEL_PROJECT: u8 = 0x08;
    /// name ‖ 0 ‖ model id
    pub const MODEL_NAME: u8 = 0x09;
    /// tag ‖ 0 ‖ model id
    pub const MODEL_TAG: u8 = 0x0A;
    /// framework name ‖ 0 ‖ model id
    pub const MODEL_FRAMEWORK: u8 = 0x0B;
    /// metadata key ‖ 0 ‖ index_key(value) ‖ model id (one per element of a list)
    pub const MODEL_META: u8 = 0x0C;
    /// blob id ‖ model id ‖ version: which versions hold a blob
    pub const BLOB_MODEL: u8 = 0x0D;
    /// blake3(url) → model id (value): external models by URL
    pub const MODEL_URL: u8 = 0x0E;
    /// state (0 draft, 1 finalized) ‖ model id
    pub const MODEL_STATE: u8 = 0x0F;
}

/// `tag ‖ parts…`, where each string part is 0-terminated.
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub fn new(tag: u8) -> Self {
        Key(vec![tag])
    }
    /// A key with no tag, for primary column families.
    pub fn plain() -> Self {
        Key(Vec::new())
    }
    pub fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn id(self, id: &EntityId) -> Self {
        self.bytes(&id.0)
    }
    pub fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_be_bytes())
    }
    pub fn done(self) -> Vec<u8> {
        self.0
    }
}

/// Index keys derived from an experiment record.
pub(crate) fn experiment_keys(id: &EntityId, r: &ExperimentRecord) -> BTreeSet<Vec<u8>> {
    let mut k = BTreeSet::new();
    k.insert(Key::new(tag::EXP_PROJECT).str(&r.project).id(id).done());
    k.insert(
        Key::new(tag::EXP_NAME)
            .str(&r.project)
            .str(&r.name)
            .id(id)
            .done(),
    );
    k.insert(
        Key::new(tag::EXP_STATUS)
            .bytes(&[r.status.code()])
            .id(id)
            .done(),
    );
    for t in &r.tags {
        k.insert(Key::new(tag::EXP_TAG).str(t).id(id).done());
    }
    for (m, v) in &r.inputs {
        k.insert(Key::new(tag::EXP_INPUT).id(id).id(m).u32(*v).done());
        k.insert(Key::new(tag::MODEL_USED_BY).id(m).id(id).u32(*v).done());
    }
    k
}

/// Index keys derived from a model record.
pub(crate) fn model_keys(id: &EntityId, r: &ModelRecord) -> BTreeSet<Vec<u8>> {
    let mut k = BTreeSet::new();
    k.insert(Key::new(tag::MODEL_PROJECT).str(&r.project).id(id).done());
    k.insert(Key::new(tag::MODEL_NAME).str(&r.name).id(id).done());
    k.insert(
        Key::new(tag::MODEL_FRAMEWORK)
            .str(r.framework.name())
            .id(id)
            .done(),
    );
    k.insert(
        Key::new(tag::MODEL_STATE)
            .bytes(&[u8::from(r.finalized_ms.is_some())])
            .id(id)
            .done(),
    );
    for t in &r.tags {
        k.insert(Key::new(tag::MODEL_TAG).str(t).id(id).done());
    }
    for (key, v) in &r.metadata {
        // A list is indexed once per element: on a list, `=` means
        // "contains" and `<`/`>` mean "some element compares so".
        let items = match v {
            Value::List(items) => items.as_slice(),
            v => std::slice::from_ref(v),
        };
        for item in items {
            k.insert(
                Key::new(tag::MODEL_META)
                    .str(key)
                    .bytes(&index_key(item))
                    .id(id)
                    .done(),
            );
        }
    }
    if let Some(e) = &r.experiment {
        k.insert(Key::new(tag::EXP_CREATED).id(e).id(id).done());
    }
    k
}

/// Index keys derived from one model version.
pub(crate) fn version_keys(id: &EntityId, version: u32, r: &VersionRecord) -> BTreeSet<Vec<u8>> {
    r.files
        .iter()
        .map(|f| {
            Key::new(tag::BLOB_MODEL)
                .bytes(f.blob.as_bytes())
                .id(id)
                .u32(version)
                .done()
        })
        .collect()
}

/// The key of an external model's URL entry (its value is the model id).
pub(crate) fn url_key(url: &str) -> Vec<u8> {
    Key::new(tag::MODEL_URL)
        .bytes(blake3::hash(url.as_bytes()).as_bytes())
        .done()
}

/// Puts and deletes that turn the `old` key set into `new`.
pub(crate) fn diff(
    old: &BTreeSet<Vec<u8>>,
    new: &BTreeSet<Vec<u8>>,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        new.difference(old).cloned().collect(),
        old.difference(new).cloned().collect(),
    )
}

/// The last 16 bytes of an index key: the entity id it points at.
pub(crate) fn trailing_id(k: &[u8]) -> Option<EntityId> {
    let start = k.len().checked_sub(16)?;
    Some(EntityId(k[start..].try_into().ok()?))
}
