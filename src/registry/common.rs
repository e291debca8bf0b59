//! Helpers shared by the registry's entity modules: time, validation, and
//! typed access to records.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::meta::records::{decode_postcard, encode_postcard};
use crate::meta::{Batch, Cf, Meta};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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

/// Reads and decodes a postcard record.
pub(crate) fn load<T: DeserializeOwned>(
    meta: &Meta,
    cf: Cf,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>> {
    meta.with(cf, key, |b| decode_postcard(what, b))
}

/// Adds a postcard record to a batch.
pub(crate) fn save<T: serde::Serialize>(batch: &mut Batch, cf: Cf, key: impl Into<Vec<u8>>, v: &T) {
    batch.put(cf, key, encode_postcard(v));
}

/// Applies an index diff to a batch.
pub(crate) fn apply_index(
    batch: &mut Batch,
    old: &std::collections::BTreeSet<Vec<u8>>,
    new: &std::collections::BTreeSet<Vec<u8>>,
) {
    let (puts, dels) = super::index::diff(old, new);
    for k in puts {
        batch.put(Cf::Index, k, Vec::new());
    }
    for k in dels {
        batch.delete(Cf::Index, k);
    }
}
