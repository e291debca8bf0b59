//! The `scalars` column family: experiment id ‖ metric ‖ 0 ‖ variant ‖ 0 ‖
//! iteration (u64 BE) → value (f64 LE).

use crate::error::{Error, Result};
use crate::meta::registry_index::Key;
use crate::meta::registry_records::EntityId;
use crate::meta::{Batch, Cf, Meta};

use super::common::delete_rows_of;

/// Writes `metric`/`variant` at `iteration` of experiment `id`.
pub(crate) fn put(
    batch: &mut Batch,
    id: &EntityId,
    metric: &str,
    variant: &str,
    iteration: u64,
    value: f64,
) {
    let key = Key::plain()
        .id(id)
        .str(metric)
        .str(variant)
        .bytes(&iteration.to_be_bytes())
        .done();
    batch.put(Cf::Scalars, key, value.to_le_bytes().to_vec());
}

/// The series of `metric` of experiment `id`: (variant, iteration, value),
/// by variant then iteration.
pub(crate) fn series(meta: &Meta, id: &EntityId, metric: &str) -> Result<Vec<(String, u64, f64)>> {
    let prefix = Key::plain().id(id).str(metric).done();
    let mut out = Vec::new();
    for kv in meta.scan_prefix(Cf::Scalars, &prefix, &prefix) {
        let (k, v) = kv?;
        let rest = &k[prefix.len()..];
        let bad = || Error::corrupt("scalar record", "malformed");
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let variant = std::str::from_utf8(&rest[..nul]).map_err(|_| bad())?;
        let it = rest
            .get(nul + 1..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .ok_or_else(bad)?;
        let val = <[u8; 8]>::try_from(&v[..]).map_err(|_| bad())?;
        out.push((
            variant.to_string(),
            u64::from_be_bytes(it),
            f64::from_le_bytes(val),
        ));
    }
    Ok(out)
}

/// Every scalar of experiment `id`: (metric, variant, iteration, value), by
/// metric, variant, then iteration.
pub(crate) fn of<'m>(
    meta: &'m Meta,
    id: &EntityId,
) -> impl Iterator<Item = Result<(String, String, u64, f64)>> + 'm {
    meta.scan_prefix(Cf::Scalars, &id.0, &id.0).map(|kv| {
        let (k, v) = kv?;
        let bad = || Error::corrupt("scalar record", "malformed");
        let rest = k.get(16..).ok_or_else(bad)?;
        let m = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let rest2 = &rest[m + 1..];
        let n = rest2.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| bad())
        };
        let it = <[u8; 8]>::try_from(&rest2[n + 1..]).map_err(|_| bad())?;
        let val = <[u8; 8]>::try_from(&v[..]).map_err(|_| bad())?;
        Ok((
            text(&rest[..m])?,
            text(&rest2[..n])?,
            u64::from_be_bytes(it),
            f64::from_le_bytes(val),
        ))
    })
}

/// Deletes every scalar of experiment `id`.
pub(crate) fn delete_all(batch: &mut Batch, id: &EntityId) {
    delete_rows_of(batch, Cf::Scalars, id);
}
