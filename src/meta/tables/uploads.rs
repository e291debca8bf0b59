//! The `uploads` column family: manifest id (u64 BE) → [`UploadRecord`]
//! (postcard), one per open upload session, until the upload's blob is
//! committed or the session expires.

use crate::error::{Error, Result};
use crate::meta::records::{self, UploadRecord};
use crate::meta::{keys, Batch, Cf, Meta, Scan};

use super::{gc_queue, IdOrKey};

/// The record version of a session record followed by its label: v1's
/// layout, then the label (postcard string, non-empty). A build that knows
/// only v1 refuses it as an unsupported version instead of misreading it.
const LABELLED: u8 = 2;

/// Longest label stored, in bytes (a longer one is cut at a character
/// boundary).
pub(crate) const MAX_LABEL: usize = 1024;

/// Writes the session record of the upload whose manifest is `manifest`,
/// with what the upload is for (`label`; none or empty: a v1 record).
pub(crate) fn put(batch: &mut Batch, manifest: u64, rec: &UploadRecord, label: Option<&str>) {
    batch.put(
        Cf::Uploads,
        keys::upload(manifest).to_vec(),
        encode(rec, label),
    );
}

/// A session record: v1, or v2 with a non-empty label.
fn encode(rec: &UploadRecord, label: Option<&str>) -> Vec<u8> {
    let mut b = records::encode_postcard(rec);
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        let mut end = l.len().min(MAX_LABEL);
        while !l.is_char_boundary(end) {
            end -= 1;
        }
        b[0] = LABELLED;
        b.extend(postcard::to_stdvec(&l[..end]).expect("postcard encodes a string"));
    }
    b
}

/// A session record and its label (v2), or a v1 record.
fn decode(b: &[u8]) -> Result<(UploadRecord, Option<String>)> {
    const WHAT: &str = "upload session";
    if b.first() != Some(&LABELLED) {
        return Ok((records::decode_postcard(WHAT, b)?, None));
    }
    // v2 is v1's record with the label after it.
    let mut v1 = b.to_vec();
    v1[0] = records::RECORD_VERSION;
    let (rec, rest) = records::decode_postcard_prefix::<UploadRecord>(WHAT, &v1)?;
    let label: String = records::decode_postcard_tail(WHAT, rest)?;
    if label.is_empty() || label.len() > MAX_LABEL {
        return Err(Error::corrupt(
            WHAT,
            format!("a label of {} bytes is never written", label.len()),
        ));
    }
    Ok((rec, Some(label)))
}

/// Deletes the session record of `manifest` (its blob was committed).
pub(crate) fn delete(batch: &mut Batch, manifest: u64) {
    batch.delete(Cf::Uploads, keys::upload(manifest).to_vec());
}

/// Gives the session of `manifest` up: deletes its record and queues the
/// manifest for collection, so its committed segments become garbage.
pub(crate) fn give_up(batch: &mut Batch, manifest: u64) {
    delete(batch, manifest);
    gc_queue::mark_manifest(batch, manifest);
}

/// The session record of `manifest` and its label, if it has one.
pub(crate) fn get(meta: &Meta, manifest: u64) -> Result<Option<(UploadRecord, Option<String>)>> {
    meta.get(Cf::Uploads, &keys::upload(manifest))?
        .map(|b| decode(&b))
        .transpose()
}

/// Every session, in manifest id order.
pub(crate) fn all(meta: &Meta) -> impl Iterator<Item = Result<(u64, UploadRecord)>> + '_ {
    all_labelled(meta).map(|r| r.map(|(id, rec, _)| (id, rec)))
}

/// Every session with its label, in manifest id order.
pub(crate) fn all_labelled(
    meta: &Meta,
) -> impl Iterator<Item = Result<(u64, UploadRecord, Option<String>)>> + '_ {
    meta.scan_prefix(Cf::Uploads, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        let id = keys::parse_u64(&k)
            .ok_or_else(|| Error::corrupt("uploads column family", "key of the wrong length"))?;
        let (rec, label) = decode(&v)?;
        Ok((id, rec, label))
    })
}

/// The highest manifest id that has a session record.
pub(crate) fn last_id(meta: &Meta) -> Result<Option<u64>> {
    super::last_id(meta, Cf::Uploads, "uploads column family", keys::parse_u64)
}

/// The manifest ids of the session records in `[lo, hi]`, ascending; a
/// malformed key in that range comes as its [`RawKey`].
pub(crate) fn ids_in<'s>(
    r: &'s (impl Scan + ?Sized),
    lo: u64,
    hi: u64,
) -> impl Iterator<Item = Result<IdOrKey>> + 's {
    super::ids_in(
        r,
        Cf::Uploads,
        &[],
        &keys::upload(lo),
        keys::upload(hi).to_vec(),
        keys::parse_u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> UploadRecord {
        UploadRecord {
            created_ms: 1,
            updated_ms: 2,
            durable_bytes: 3,
            durable_chunks: 4,
        }
    }

    fn encoded(label: Option<&str>) -> Vec<u8> {
        encode(&rec(), label)
    }

    /// No label: byte for byte the v1 record; a label: v2, read back; a
    /// long one cut at a character boundary; hostile v2 tails refused.
    #[test]
    fn labels_round_trip_and_v1_is_unchanged() {
        assert_eq!(encoded(None), records::encode_postcard(&rec()));
        assert_eq!(encoded(Some("")), records::encode_postcard(&rec()));
        let b = encoded(Some("put m@2: w.bin"));
        assert_eq!(b[0], LABELLED);
        assert_eq!(decode(&b).unwrap(), (rec(), Some("put m@2: w.bin".into())));
        assert_eq!(decode(&encoded(None)).unwrap(), (rec(), None));
        let long = "é".repeat(MAX_LABEL);
        let (_, l) = decode(&encoded(Some(&long))).unwrap();
        let l = l.unwrap();
        assert!(l.len() <= MAX_LABEL && long.starts_with(&l), "{}", l.len());
        // A v2 record without its label, with an empty one, with bytes after it.
        let mut bare = records::encode_postcard(&rec());
        bare[0] = LABELLED;
        assert!(decode(&bare).is_err());
        let mut empty = bare.clone();
        empty.push(0);
        assert!(decode(&empty).is_err());
        let mut trailing = b.clone();
        trailing.push(1);
        assert!(decode(&trailing).is_err());
        // An unknown version is refused as such.
        let mut v3 = b;
        v3[0] = 3;
        assert!(matches!(decode(&v3), Err(Error::UnsupportedVersion { .. })));
    }
}
