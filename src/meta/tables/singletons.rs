//! The `meta` column family: store-wide singletons under fixed keys.
//!
//! | key             | value                                                     |
//! |-----------------|-----------------------------------------------------------|
//! | `format`        | store layout version, u32 LE                              |
//! | `store_id`      | 16 random bytes                                           |
//! | `cdc`           | chunking parameters: min, avg, max as u32 LE              |
//! | `stats`         | [`StatsRecord`], postcard                                 |
//! | `manifest_ids`  | manifest ids reserved up to (exclusive), a count record   |
//! | `old_lane_pack` | the pack the old lane wrote last, u32 LE (a hint)         |
//! | `refcounts`     | marker: reference counts were built                       |
//! | `delta_heights` | marker: delta-chain heights were built                    |

use crate::chunking::CdcParams;
use crate::error::{Error, Result};
use crate::meta::records::{self, StatsRecord};
use crate::meta::{Batch, Cf, Meta};

use super::Read;

const FORMAT: &[u8] = b"format";
const STORE_ID: &[u8] = b"store_id";
const CDC: &[u8] = b"cdc";
const STATS: &[u8] = b"stats";
const MANIFEST_IDS: &[u8] = b"manifest_ids";
const OLD_LANE_PACK: &[u8] = b"old_lane_pack";
const REFCOUNTS: &[u8] = b"refcounts";
const DELTA_HEIGHTS: &[u8] = b"delta_heights";

/// The store layout version, if the store has one yet.
pub(crate) fn format(meta: &Meta) -> Result<Option<u32>> {
    meta.get(Cf::Meta, FORMAT)?
        .map(|b| {
            <[u8; 4]>::try_from(b.as_slice())
                .map(u32::from_le_bytes)
                .map_err(|_| Error::corrupt("meta/format", "not a u32"))
        })
        .transpose()
}

/// The store id; an error if it is missing or malformed.
pub(crate) fn store_id(meta: &Meta) -> Result<[u8; 16]> {
    let id = meta
        .get(Cf::Meta, STORE_ID)?
        .ok_or_else(|| Error::corrupt("meta/store_id", "missing"))?;
    <[u8; 16]>::try_from(id.as_slice()).map_err(|_| Error::corrupt("meta/store_id", "not 16 bytes"))
}

/// The chunking parameters the store was created with; an error if they are
/// missing or not valid parameters.
pub(crate) fn cdc(meta: &Meta) -> Result<CdcParams> {
    match meta.get(Cf::Meta, CDC)? {
        Some(b) => decode_cdc(&b),
        None => Err(Error::corrupt("meta/cdc", "missing chunking parameters")),
    }
}

/// Writes the records a new store starts with: its format, id and chunking
/// parameters.
pub(crate) fn init(batch: &mut Batch, format: u32, store_id: &[u8; 16], cdc: &CdcParams) {
    batch.put(Cf::Meta, FORMAT.to_vec(), format.to_le_bytes().to_vec());
    batch.put(Cf::Meta, STORE_ID.to_vec(), store_id.to_vec());
    batch.put(Cf::Meta, CDC.to_vec(), encode_cdc(cdc));
}

/// `meta/cdc`: min, avg, max as u32 LE.
fn encode_cdc(p: &CdcParams) -> Vec<u8> {
    [p.min, p.avg, p.max]
        .iter()
        .flat_map(|&v| (v as u32).to_le_bytes())
        .collect()
}

fn decode_cdc(b: &[u8]) -> Result<CdcParams> {
    let bad = || Error::corrupt("meta/cdc", format!("{} bytes, expected three u32", b.len()));
    if b.len() != 12 {
        return Err(bad());
    }
    let v: Vec<usize> = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let p = CdcParams {
        min: v[0],
        avg: v[1],
        max: v[2],
    };
    crate::chunking::Chunker::check(&p).map_err(|e| Error::corrupt("meta/cdc", e))?;
    Ok(p)
}

/// The store's counters, committed with the records they count (zero for a
/// store that has none yet).
pub(crate) fn stats(r: &impl Read) -> Result<StatsRecord> {
    match r.get(Cf::Meta, STATS)? {
        Some(b) => records::decode_postcard("stats record", &b),
        None => Ok(StatsRecord::default()),
    }
}

/// Writes the store's counters.
pub(crate) fn put_stats(batch: &mut Batch, stats: &StatsRecord) {
    batch.put(Cf::Meta, STATS.to_vec(), records::encode_postcard(stats));
}

/// Manifest ids are reserved up to this one (exclusive); 0 if none were.
pub(crate) fn manifest_reservation(meta: &Meta) -> Result<u64> {
    Ok(meta
        .with(Cf::Meta, MANIFEST_IDS, records::decode_count)?
        .unwrap_or(0))
}

/// Reserves manifest ids up to `upto` (exclusive).
pub(crate) fn put_manifest_reservation(batch: &mut Batch, upto: u64) {
    batch.put(
        Cf::Meta,
        MANIFEST_IDS.to_vec(),
        records::encode_count(upto).to_vec(),
    );
}

/// The pack the old lane wrote last, if recorded. The key is only a
/// placement hint: a value of the wrong length is ignored (noted).
pub(crate) fn old_lane_pack(meta: &Meta) -> Result<Option<u32>> {
    Ok(
        match meta
            .get(Cf::Meta, OLD_LANE_PACK)?
            .as_deref()
            .map(<[u8; 4]>::try_from)
        {
            Some(Ok(b)) => Some(u32::from_le_bytes(b)),
            Some(Err(_)) => {
                tracing::warn!("ignored meta/old_lane_pack: not 4 bytes");
                None
            }
            None => None,
        },
    )
}

/// Records `pack` as the pack the old lane wrote last.
pub(crate) fn put_old_lane_pack(batch: &mut Batch, pack: u32) {
    batch.put(
        Cf::Meta,
        OLD_LANE_PACK.to_vec(),
        pack.to_le_bytes().to_vec(),
    );
}

/// Whether reference counts were built (the store has the `refcounts`
/// marker).
pub(crate) fn refcounts_built(meta: &Meta) -> Result<bool> {
    Ok(meta.get(Cf::Meta, REFCOUNTS)?.is_some())
}

/// Marks reference counts as built.
pub(crate) fn mark_refcounts_built(batch: &mut Batch) {
    batch.put(Cf::Meta, REFCOUNTS.to_vec(), vec![1]);
}

/// Removes the `refcounts` marker, so the next open rebuilds the counts
/// (tests of the migration).
#[cfg(test)]
pub(crate) fn unmark_refcounts_built(batch: &mut Batch) {
    batch.delete(Cf::Meta, REFCOUNTS.to_vec());
}

/// Whether delta-chain heights were built (the store has the
/// `delta_heights` marker).
pub(crate) fn heights_built(meta: &Meta) -> Result<bool> {
    Ok(meta.get(Cf::Meta, DELTA_HEIGHTS)?.is_some())
}

/// Marks delta-chain heights as built.
pub(crate) fn mark_heights_built(batch: &mut Batch) {
    batch.put(Cf::Meta, DELTA_HEIGHTS.to_vec(), Vec::new());
}

/// Removes the `delta_heights` marker, so the next open rebuilds the
/// heights (tests of the migration).
#[cfg(test)]
pub(crate) fn unmark_heights_built(batch: &mut Batch) {
    batch.delete(Cf::Meta, DELTA_HEIGHTS.to_vec());
}
