//! Manifest-id reservation: ids (also upload session ids) are never handed
//! out twice, whatever the crashes and collections in between.

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::meta::tables::{gc_queue, manifests, singletons, uploads};
use crate::meta::{Batch, Meta};

use super::Chunks;

/// Manifest ids reserved per durable write.
const MANIFEST_RESERVATION: u64 = 1024;

impl Chunks {
    /// Allocates a manifest id (which is also the upload session id) for a
    /// new upload. Ids are reserved durably in blocks of
    /// [`MANIFEST_RESERVATION`] before they are handed out, so no id is ever
    /// allocated twice, whatever the crashes and collections in between.
    pub fn new_manifest(&self) -> Result<u64> {
        self.writable("upload")?;
        let id = self.next_manifest.fetch_add(1, Ordering::Relaxed);
        let mut reserved = self.manifest_reserved.lock();
        if id >= *reserved {
            let upto = id
                .checked_add(MANIFEST_RESERVATION)
                .ok_or_else(|| Error::corrupt("manifest ids", "manifest id overflow"))?;
            let mut batch = Batch::default();
            singletons::put_manifest_reservation(&mut batch, upto);
            self.meta.commit(batch, true)?;
            *reserved = upto;
        }
        Ok(id)
    }
}

/// The first manifest id this open may hand out. Ids are never reused, even
/// those whose every trace was collected: an upload id given out once must
/// not name another upload later.
pub(super) fn first_free(meta: &Meta) -> Result<u64> {
    Ok(next_manifest_id(meta)?
        .max(read_manifest_reservation(meta)?)
        .max(1))
}

fn read_manifest_reservation(meta: &Meta) -> Result<u64> {
    singletons::manifest_reservation(meta)
}

/// One past the highest manifest id that any record names: segments, upload
/// sessions and dead-manifest markers.
fn next_manifest_id(meta: &Meta) -> Result<u64> {
    let mut max = 0;
    if let Some(m) = manifests::last_id(meta)? {
        max = max.max(m);
    }
    if let Some(m) = uploads::last_id(meta)? {
        max = max.max(m);
    }
    if let Some(m) = gc_queue::last_manifest(meta)? {
        max = max.max(m);
    }
    max.checked_add(1)
        .ok_or_else(|| Error::corrupt("manifests column family", "manifest id overflow"))
}
