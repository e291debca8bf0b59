//! Typed accessors, one module per table: the only code that names a column
//! family or builds a key. Layers above read and write through these with
//! ids and records; the byte layouts stay in [`super::keys`] and
//! [`super::records`].

pub(crate) mod artifacts;
pub(crate) mod blobs;
pub(crate) mod buckets;
pub(crate) mod chunks;
mod common;
pub(crate) mod console;
pub(crate) mod experiments;
pub(crate) mod gc_queue;
pub(crate) mod index;
pub(crate) mod manifests;
pub(crate) mod models;
pub(crate) mod multipart;
pub(crate) mod objects;
pub(crate) mod packs;
mod raw_key;
pub(crate) mod references;
pub(crate) mod refs;
pub(crate) mod scalars;
pub(crate) mod singletons;
pub(crate) mod uploads;
pub(crate) mod versions;

pub(crate) use raw_key::RawKey;

use crate::error::{Error, Result};

use super::{Cf, Meta, Scan, Snapshot};

/// Point reads from the live database or from a snapshot, for accessors
/// used on either.
pub(crate) trait Read {
    /// The value under `key` in `cf`, if any.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

impl Read for Meta {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Meta::get(self, cf, key)
    }
}

impl Read for Snapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Snapshot::get(self, cf, key)
    }
}

/// A scanned record of `cf` whose key and value are parsed separately, so
/// that a caller can report (or skip) a malformed key or an undecodable
/// value and carry on: the parsed key, or the raw one if it does not parse,
/// and the decoded value or why it does not decode.
pub(crate) type Entry<K, V> = (std::result::Result<K, RawKey>, Result<V>);

/// Every record of `cf`, in key order, as [`Entry`]s.
fn entries<'s, K: 's, V: 's>(
    r: &'s (impl Scan + ?Sized),
    cf: Cf,
    key: fn(&[u8]) -> Option<K>,
    value: fn(&[u8]) -> Result<V>,
) -> impl Iterator<Item = Result<Entry<K, V>>> + 's {
    r.scan_prefix(cf, &[], &[]).map(move |kv| {
        let (k, v) = kv?;
        Ok((key(&k).ok_or_else(|| RawKey::new(cf, &k)), value(&v)))
    })
}

/// [`Entry`]s made strict: a malformed key is an error (`what: key of the
/// wrong length`), then an undecodable value is.
fn strict<K, V>(
    what: &'static str,
    entries: impl Iterator<Item = Result<Entry<K, V>>>,
) -> impl Iterator<Item = Result<(K, V)>> {
    entries.map(move |e| {
        let (k, v) = e?;
        let k = k.map_err(|_| Error::corrupt(what, "key of the wrong length"))?;
        Ok((k, v?))
    })
}

/// A manifest id parsed from a key, or the key if it does not parse.
pub(crate) type IdOrKey = std::result::Result<u64, RawKey>;

/// The highest manifest id the keys of `cf` name (`parse` reads one from
/// the last key; a key it cannot read is an error, `what: key of the wrong
/// length`).
fn last_id(
    meta: &Meta,
    cf: Cf,
    what: &'static str,
    parse: fn(&[u8]) -> Option<u64>,
) -> Result<Option<u64>> {
    meta.last_key(cf)?
        .map(|k| parse(&k).ok_or_else(|| Error::corrupt(what, "key of the wrong length")))
        .transpose()
}

/// Ids parsed from the keys of `cf` from `from` up to `last` (inclusive, in
/// byte order), one per key; a key that does not parse comes as its
/// [`RawKey`].
fn ids_in<'s>(
    r: &'s (impl Scan + ?Sized),
    cf: Cf,
    prefix: &[u8],
    from: &[u8],
    last: Vec<u8>,
    id: fn(&[u8]) -> Option<u64>,
) -> impl Iterator<Item = Result<IdOrKey>> + 's {
    r.scan_prefix(cf, prefix, from)
        .take_while(move |kv| match kv {
            Ok((k, _)) => k[..] <= last[..],
            Err(_) => true,
        })
        .map(move |kv| {
            let (k, _) = kv?;
            Ok(id(&k).ok_or_else(|| RawKey::new(cf, &k)))
        })
}
