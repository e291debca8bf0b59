//! Reclaiming the packs that a rewrite has just emptied, without a
//! collection.
//!
//! A reverse delta replaces whole records with deltas, and the records it
//! replaced are dead. A collection finds dead bytes by scanning the whole
//! chunk index, a cost that grows with the store. Here the packs are known
//! (those that held the replaced records), and each one is sized up from
//! its own records ([`crate::chunk::Chunks::live_records`]: a read and a
//! lookup per record). A sealed pack under a threshold live is compacted
//! exactly as a collection compacts it (`collect::compact_pack`: every live
//! record verified, copied to the old lane, the moves committed, the file
//! deleted once that commit is durable). Upload packs hold one version's
//! whole records, so the usual case is a pack with nothing live, deleted
//! without copying.
//!
//! The threshold: a collection's default (half) for
//! [`crate::Store::reverse_delta`], whose caller may have written the newer
//! blob into the older one's pack (what stays live there then is the newer
//! blob's own whole records, which the next pass replaces: copying them
//! would only move them into the old lane to die). A model version's put
//! seals the upload pack before it writes (`Chunks::roll_upload_pack`), so
//! what stays live in the base's packs beside the replaced records is
//! chunks the versions share, data that has outlived a version and belongs
//! in the old lane anyway: copied once, at [`PUT_RECLAIM_BELOW`]. Left
//! there, the replaced records would stay dead bytes until a
//! `gc --compact-below` (on the corpus's human-models, a pack 85% live
//! held 9.6 MiB of them).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::collect::{compact_pack, unreadable, GcOptions, GcReport, SkippedPack};
use crate::blob::{Core, ReverseDeltaReport};
use crate::error::Result;
use crate::id::BlobId;

/// After a put's reverse passes, a pack they replaced records in is
/// compacted when its live bytes are under this fraction of its records
/// (see the module docs).
pub(crate) const PUT_RECLAIM_BELOW: f64 = 0.9;

impl Core {
    /// Re-encodes each `(older, newer)` pair's older blob against the newer
    /// ([`Core::reverse_delta_pass`]), then reclaims the packs the passes
    /// emptied, those under `below` live; returns the passes' counts
    /// summed, and what was reclaimed.
    ///
    /// # Errors
    /// As [`crate::Store::reverse_delta`]. An error ends the work there:
    /// what was re-encoded before stays re-encoded, and the dead records
    /// stay until a collection.
    pub(crate) fn reverse_deltas(
        self: &Arc<Self>,
        pairs: &[(BlobId, BlobId)],
        below: f64,
    ) -> Result<ReverseDeltaReport> {
        let mut report = ReverseDeltaReport::default();
        let mut emptied = BTreeSet::new();
        for (older, newer) in pairs {
            report.add(&self.reverse_delta_pass(older, newer, &mut emptied)?);
        }
        let r = self.reclaim_packs(&emptied, below)?;
        report.packs_reclaimed = r.packs_compacted + r.packs_deleted;
        report.bytes_copied = r.bytes_copied;
        report.bytes_reclaimed = r.bytes_reclaimed;
        Ok(report)
    }

    /// Compacts each pack of `packs` that is sealed and under `below` live
    /// (deletes it if nothing in it is live). Open packs, packs already
    /// gone and packs with an unreadable record are left as they are (the
    /// last listed in the report's `packs_skipped`); a collection meets
    /// them later.
    ///
    /// # Errors
    /// A read-only store; an I/O error writing, syncing or committing.
    pub(crate) fn reclaim_packs(
        self: &Arc<Self>,
        packs: &BTreeSet<u32>,
        below: f64,
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        if packs.is_empty() {
            return Ok(report);
        }
        self.chunks().writable("reclaim")?;
        let inner = &**self;
        let _one = inner.exclusive();
        let opts = GcOptions::default();
        let (sizes, generation) = inner.chunks().pack_sizes();
        // Asked after the sizes: a pack among them not open now is sealed.
        let open = inner.chunks().open_packs();
        for &pack in packs {
            if open.contains(&pack) || !sizes.contains_key(&pack) {
                continue;
            }
            let (entries, total) = match inner.chunks().live_records(pack) {
                Ok(found) => found,
                Err(e) if unreadable(&e) => {
                    report.packs_skipped.push(SkippedPack {
                        pack,
                        error: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let live: u64 = entries.iter().map(|(_, l)| l.end() - l.offset).sum();
            if entries.is_empty() || (live as f64) < below * total as f64 {
                compact_pack(inner, &opts, pack, entries, &generation, &mut report)?;
            }
        }
        tracing::debug!(?report, "reclaimed");
        Ok(report)
    }
}
