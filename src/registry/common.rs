//! Helpers shared by the registry's entity modules: time, validation, and
//! the read-modify-write of records.

use std::sync::Arc;

use std::collections::BTreeSet;

use crate::blob::Core;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::meta::records::StatsRecord;
use crate::meta::registry_records::EntityId;
use crate::meta::tables::index;
use crate::meta::{Batch, Meta};
use crate::pack::ChunkLoc;
use crate::query::{Value, MAX_VALUE_DEPTH};

pub(crate) use crate::meta::records::now_ms;

/// Free text used in keys (projects, experiment names, tags): 1..=`max`
/// bytes, no control characters (so never the 0x00 key separator).
pub(crate) fn check_label(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() || s.len() > max {
        return Err(Error::invalid(what, s, format!("must be 1 to {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(
            what,
            s,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Keys of hyperparameters, artifact metadata and aliases:
/// `[A-Za-z_][A-Za-z0-9_./-]*`, at most 128 bytes (`General/lr`).
pub(crate) fn check_key(what: &'static str, s: &str) -> Result<()> {
    let ok_first = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let ok_rest = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
    if !ok_first || !ok_rest || s.len() > 128 {
        return Err(Error::invalid(
            what,
            s,
            "must start with a letter or '_' and use only letters, digits, '_', '.', '/' and '-' (at most 128 bytes)",
        ));
    }
    Ok(())
}

/// A typed value given under `key` (a metadata entry, a hyperparameter, an
/// artifact's body) nests at most [`MAX_VALUE_DEPTH`] levels: a deeper one
/// would be written but refused when read back.
pub(crate) fn check_value(what: &'static str, key: &str, v: &Value) -> Result<()> {
    let depth = v.depth();
    if depth > MAX_VALUE_DEPTH {
        return Err(Error::invalid(
            what,
            key,
            format!("its value nests {depth} levels deep, at most {MAX_VALUE_DEPTH} are allowed"),
        ));
    }
    Ok(())
}

/// Model metadata keys: dot-separated identifiers (`[A-Za-z_][A-Za-z0-9_-]*`
/// each, e.g. `eval.top1`), at most 128 bytes, so that `metadata.<key>` is
/// always a field the query language can name.
pub(crate) fn check_metadata_key(s: &str) -> Result<()> {
    let ident = |p: &str| {
        p.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if s.len() > 128 || !s.split('.').all(ident) {
        return Err(Error::invalid(
            "metadata key",
            s,
            "must be dot-separated names, each a letter or '_' followed by letters, digits, '_' or '-' (at most 128 bytes)",
        ));
    }
    Ok(())
}

/// A registry record that is changed by read-modify-write: it knows its
/// table's accessors, the index keys it implies, and when it is frozen.
pub(crate) trait Entity: Sized {
    /// Name used in errors (`experiment`, `model`).
    const KIND: &'static str;
    /// The stored record of `id`, if any ([`Self::KIND`] names it in a
    /// decode error).
    fn load(meta: &Meta, id: &EntityId) -> Result<Option<Self>>;
    /// Writes the record of `id`.
    fn save(&self, batch: &mut Batch, id: &EntityId);
    /// Its secondary index keys.
    fn index_keys(&self, id: &EntityId) -> BTreeSet<Vec<u8>>;
    /// `Some(state)` once it refuses every change.
    fn frozen(&self) -> Option<String>;
    /// Records the time of a change.
    fn touch(&mut self, now_ms: u64);
}

/// The read-modify-write every registry change goes through, under the
/// commit lock: load, refuse if frozen, apply `f`, and commit the record with
/// its index difference (and the index entries of `chunks`) in one batch.
pub(crate) fn update_entity<E: Entity, T: Send>(
    store: &Arc<Core>,
    id: &EntityId,
    chunks: &[(ChunkId, ChunkLoc)],
    f: impl FnOnce(&Meta, &mut E, &mut Batch, &mut StatsRecord) -> Result<T> + Send,
) -> Result<T> {
    store
        .chunks()
        .commit(chunks, Batch::default(), |meta, stats, batch| {
            let mut rec = E::load(meta, id)?.ok_or_else(|| Error::not_found(E::KIND, id))?;
            if let Some(state) = rec.frozen() {
                return Err(Error::Immutable {
                    what: format!("{} {id}", E::KIND),
                    state,
                });
            }
            let old = rec.index_keys(id);
            let out = f(meta, &mut rec, batch, stats)?;
            rec.touch(now_ms());
            index::apply(batch, &old, &rec.index_keys(id));
            rec.save(batch, id);
            Ok(out)
        })
}
