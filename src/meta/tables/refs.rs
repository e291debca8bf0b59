//! The `refs` column family: reference counts, a tag and a 32-byte id →
//! a count record (u64). Absent means 0: a count that falls to 0 is
//! deleted. See `chunk::refs` for how counts change and what a count at 0
//! implies.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;

use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::keys::{self, refs as tag};
use crate::meta::records;
use crate::meta::{Batch, Cf, Meta, Pair, Scan};

use super::RawKey;

/// What a count counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Count {
    /// Manifest segment entries and delta records naming a chunk.
    Chunk(ChunkId),
    /// Registry records (version files, artifacts) naming a blob.
    Blob(BlobId),
    /// Holds taken on a blob by callers (`BlobWriter::finish`).
    Hold(BlobId),
}

impl Count {
    fn tag(self) -> u8 {
        match self {
            Count::Chunk(_) => tag::CHUNK,
            Count::Blob(_) => tag::BLOB,
            Count::Hold(_) => tag::HOLD,
        }
    }

    /// The id the count is of.
    pub(crate) fn id(&self) -> &[u8; 32] {
        match self {
            Count::Chunk(id) => id.as_bytes(),
            Count::Blob(id) | Count::Hold(id) => id.as_bytes(),
        }
    }

    /// The count's key as stored: a canonical encoding of the count (what
    /// `verify` fingerprints).
    pub(crate) fn key(self) -> [u8; 33] {
        keys::count(self.tag(), self.id())
    }

    /// The count a stored key names, if it is well formed.
    fn parse(k: &[u8]) -> Option<Count> {
        let id = Hash32::from_slice(k.get(1..)?)?;
        match k[0] {
            tag::CHUNK => Some(Count::Chunk(id)),
            tag::BLOB => Some(Count::Blob(BlobId(id))),
            tag::HOLD => Some(Count::Hold(BlobId(id))),
            _ => None,
        }
    }
}

/// Counts sort as their keys do (the order of a scan and of a batched
/// lookup).
impl Ord for Count {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Count {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The committed count `c` (0 when absent).
pub(crate) fn get(meta: &Meta, c: Count) -> Result<u64> {
    Ok(meta
        .with(Cf::Refs, &c.key(), records::decode_count)?
        .unwrap_or(0))
}

/// The committed counts of `cs` (sorted ascending), in one batched lookup.
pub(crate) fn get_sorted(meta: &Meta, cs: &[Count]) -> Result<Vec<u64>> {
    let keys: Vec<Vec<u8>> = cs.iter().map(|c| c.key().to_vec()).collect();
    meta.get_sorted(Cf::Refs, &keys)?
        .into_iter()
        .map(|v| v.map_or(Ok(0), |b| records::decode_count(&b)))
        .collect()
}

/// Writes count `c` as `n` (not 0: a count at 0 is deleted).
pub(crate) fn put(batch: &mut Batch, c: Count, n: u64) {
    batch.put(
        Cf::Refs,
        c.key().to_vec(),
        records::encode_count(n).to_vec(),
    );
}

/// Deletes count `c` (it fell to 0).
pub(crate) fn delete(batch: &mut Batch, c: Count) {
    batch.delete(Cf::Refs, c.key().to_vec());
}

/// Adds `delta` to count `c` when `batch` is committed (resolved under the
/// commit lock: see `chunk::refs::resolve`).
pub(crate) fn change(batch: &mut Batch, c: Count, delta: i64) {
    batch.count(c.key().to_vec(), delta);
}

/// Takes `batch`'s count changes out, summed per count, for resolution.
pub(crate) fn take_changes(batch: &mut Batch) -> Result<BTreeMap<Count, i64>> {
    let mut sum = BTreeMap::new();
    for (k, d) in batch.take_deltas() {
        let c = (k.len() == 33)
            .then(|| Count::parse(&k))
            .flatten()
            .ok_or_else(|| Error::corrupt("reference count key", format!("{k:02x?}")))?;
        *sum.entry(c).or_default() += d;
    }
    Ok(sum)
}

/// A record of the `refs` column family.
pub(crate) enum Stored {
    /// A count, or why its value does not decode.
    Count(Count, Result<u64>),
    /// A key that is not a tag (c, b or h) and a 32-byte id.
    Malformed(RawKey),
}

/// Every record, in key order.
pub(crate) fn all<'s>(r: &'s (impl Scan + ?Sized)) -> impl Iterator<Item = Result<Stored>> + 's {
    r.scan_prefix(Cf::Refs, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        Ok(match (k.len() == 33).then(|| Count::parse(&k)).flatten() {
            Some(c) => Stored::Count(c, records::decode_count(&v)),
            None => Stored::Malformed(RawKey::new(Cf::Refs, &k)),
        })
    })
}

/// The chunk counts, for lookups in ascending id order alongside another
/// id-ordered scan: a count, or an error if it does not decode.
pub(crate) fn chunk_counts<'s>(r: &'s (impl Scan + ?Sized)) -> Cursor<'s, Result<u64>> {
    Cursor::new(r, Cf::Refs, &[tag::CHUNK], records::decode_count)
}

/// The blob reference counts, as [`chunk_counts`].
pub(crate) fn blob_counts<'s>(r: &'s (impl Scan + ?Sized)) -> Cursor<'s, Result<u64>> {
    Cursor::new(r, Cf::Refs, &[tag::BLOB], records::decode_count)
}

/// The blob hold counts, as [`chunk_counts`].
pub(crate) fn hold_counts<'s>(r: &'s (impl Scan + ?Sized)) -> Cursor<'s, Result<u64>> {
    Cursor::new(r, Cf::Refs, &[tag::HOLD], records::decode_count)
}

/// Walks one id-ordered scan of keys `prefix ‖ id` alongside another
/// id-ordered scan: [`Cursor::find`] must be asked ids in ascending order.
pub(crate) struct Cursor<'s, T> {
    it: Peekable<Box<dyn Iterator<Item = Result<Pair>> + 's>>,
    skip: usize,
    value: fn(&[u8]) -> T,
}

impl<'s, T> Cursor<'s, T> {
    pub(super) fn new(
        r: &'s (impl Scan + ?Sized),
        cf: Cf,
        prefix: &[u8],
        value: fn(&[u8]) -> T,
    ) -> Self {
        Cursor {
            it: r.scan_prefix(cf, prefix, prefix).peekable(),
            skip: prefix.len(),
            value,
        }
    }

    /// The value stored for `id`, if any.
    pub(crate) fn find(&mut self, id: &Hash32) -> Result<Option<T>> {
        while let Some(head) = self.it.peek() {
            let Ok((k, _)) = head else {
                return Err(self.it.next().expect("peeked").expect_err("an error"));
            };
            match k[self.skip..].cmp(id.as_bytes()) {
                Ordering::Less => {
                    self.it.next();
                }
                Ordering::Equal => {
                    let (_, v) = self.it.next().expect("peeked")?;
                    return Ok(Some((self.value)(&v)));
                }
                Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// Deletes every count, and puts a value under a malformed key (tests that
/// make a store look like one written before reference counts, or damage
/// it).
#[cfg(test)]
pub(crate) mod damage {
    use super::*;

    /// Deletes every record of the column family.
    pub(crate) fn clear(meta: &Meta, batch: &mut Batch) {
        for kv in meta.scan_prefix(Cf::Refs, &[], &[]) {
            batch.delete(Cf::Refs, kv.unwrap().0.to_vec());
        }
    }

    /// Puts count `n` under `key`, whatever it is.
    pub(crate) fn put_raw(batch: &mut Batch, key: &[u8], n: u64) {
        batch.put(Cf::Refs, key.to_vec(), records::encode_count(n).to_vec());
    }

    /// Deletes the record under `key`, whatever it is.
    pub(crate) fn delete_raw(batch: &mut Batch, key: &[u8]) {
        batch.delete(Cf::Refs, key.to_vec());
    }
}
