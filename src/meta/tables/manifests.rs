//! The `manifests` column family: a blob's (or an upload's) chunk list, in
//! segments. Key: manifest id (u64 BE) ‖ the logical offset the segment
//! starts at (u64 BE); value: the segment's entries ([`SegmentEntry`]s).

use crate::error::Result;
use crate::meta::records::{self, SegmentEntry};
use crate::meta::{keys, Batch, Cf, Meta, Scan};

use super::{IdOrKey, RawKey};

/// One stored segment.
pub(crate) struct Segment {
    /// Its key, to delete it or report it.
    pub key: RawKey,
    /// Its manifest id and start offset (`None`: a malformed key).
    pub at: Option<(u64, u64)>,
    /// Its entries, or why they do not decode.
    pub entries: Result<Vec<SegmentEntry>>,
}

impl Segment {
    fn read(k: &[u8], v: &[u8]) -> Segment {
        Segment {
            key: RawKey::new(Cf::Manifests, k),
            at: keys::parse_segment(k),
            entries: records::decode_segment(v),
        }
    }

    /// The offset the segment starts at (`None`: a malformed key).
    pub fn start(&self) -> Option<u64> {
        self.at.map(|(_, s)| s)
    }
}

/// Writes a segment of manifest `m` starting at offset `start`.
pub(crate) fn put(batch: &mut Batch, m: u64, start: u64, entries: &[SegmentEntry]) {
    batch.put(
        Cf::Manifests,
        keys::segment(m, start).to_vec(),
        records::encode_segment(entries),
    );
}

/// The segment of manifest `m` that starts at or before `pos` (the one that
/// covers `pos`, if any does), if `m` has one.
pub(crate) fn floor(meta: &Meta, m: u64, pos: u64) -> Result<Option<Segment>> {
    Ok(meta
        .floor(Cf::Manifests, &m.to_be_bytes(), &keys::segment(m, pos))?
        .map(|(k, v)| Segment::read(&k, &v)))
}

/// The segments of manifest `m` in offset order, after the one under
/// `after` (from the first if `None`).
pub(crate) fn segments<'s>(
    r: &'s (impl Scan + ?Sized),
    m: u64,
    after: Option<&RawKey>,
) -> impl Iterator<Item = Result<Segment>> + 's {
    let prefix = m.to_be_bytes();
    let from = match after {
        Some(k) => [k.bytes(), &[0]].concat(),
        None => prefix.to_vec(),
    };
    r.scan_prefix(Cf::Manifests, &prefix, &from).map(|kv| {
        let (k, v) = kv?;
        Ok(Segment::read(&k, &v))
    })
}

/// Every stored segment, in (manifest id, offset) order.
pub(crate) fn all<'s>(r: &'s (impl Scan + ?Sized)) -> impl Iterator<Item = Result<Segment>> + 's {
    r.scan_prefix(Cf::Manifests, &[], &[]).map(|kv| {
        let (k, v) = kv?;
        Ok(Segment::read(&k, &v))
    })
}

/// The highest manifest id that has segments.
pub(crate) fn last_id(meta: &Meta) -> Result<Option<u64>> {
    super::last_id(meta, Cf::Manifests, "manifests column family", |k| {
        keys::parse_segment(k).map(|(m, _)| m)
    })
}

/// The manifest ids of the segments in manifests `[lo, hi]`, one per
/// segment, ascending; a malformed key in that range comes as its
/// [`RawKey`].
pub(crate) fn ids_in<'s>(
    r: &'s (impl Scan + ?Sized),
    lo: u64,
    hi: u64,
) -> impl Iterator<Item = Result<IdOrKey>> + 's {
    super::ids_in(
        r,
        Cf::Manifests,
        &[],
        &keys::segment(lo, 0),
        keys::segment(hi, u64::MAX).to_vec(),
        |k| keys::parse_segment(k).map(|(m, _)| m),
    )
}
