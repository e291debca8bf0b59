//! What uploads in flight have claimed: pending chunk locations and holds.

use std::collections::HashMap;

use crate::id::ChunkId;
use crate::pack::ChunkLoc;

/// What uploads in flight have claimed, behind one mutex (in
/// [`super::Chunks`]).
///
/// A worker takes a hold on every chunk it ingests *before* looking it up in
/// the index, and the upload releases the hold only after the commit that
/// makes a manifest segment reference the chunk (or when it gives up).
/// Collection deletes a chunk's index entry only while holding this mutex,
/// only if nobody holds the chunk, and commits that deletion before letting
/// go: so a lookup that found the chunk indexed is always followed by a
/// commit that still finds it there. See docs/ARCHITECTURE.md, "GC".
#[derive(Default)]
pub(super) struct Pending {
    /// Chunks appended to a pack and not yet indexed: where they are.
    pub locs: HashMap<ChunkId, ChunkLoc>,
    /// Uploads in flight that hold each chunk.
    pub holds: HashMap<ChunkId, u32>,
    /// Delta encodings in flight: from the hold on the base (taken before
    /// the base's chain is measured) until the delta is published in `locs`
    /// or given up. A reverse delta, which lengthens chains, waits for none
    /// to be in flight or pending (see `blob::reverse`).
    pub deltas_encoding: usize,
}

impl Pending {
    /// Takes a hold on `id`.
    pub fn hold(&mut self, id: &ChunkId) {
        *self.holds.entry(*id).or_insert(0) += 1;
    }

    /// Takes a hold on `base` for a delta about to be encoded against it.
    pub fn begin_delta(&mut self, base: &ChunkId) {
        self.hold(base);
        self.deltas_encoding += 1;
    }

    /// Ends [`Pending::begin_delta`]: the delta was published, or given up.
    pub fn end_delta(&mut self, base: &ChunkId) {
        self.release([base]);
        self.deltas_encoding -= 1;
    }

    /// Whether a delta that has not been committed yet exists or is being
    /// encoded: its chain was measured against the index as it was.
    pub fn deltas_in_flight(&self) -> bool {
        self.deltas_encoding > 0 || self.locs.values().any(|l| l.base.is_some())
    }

    /// Releases one hold on each of `ids`. A chunk nobody holds any more
    /// that is still only pending was never committed: its bytes are dead.
    pub fn release<'a>(&mut self, ids: impl IntoIterator<Item = &'a ChunkId>) {
        for id in ids {
            match self.holds.get_mut(id) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    self.holds.remove(id);
                    self.locs.remove(id);
                }
                None => debug_assert!(false, "released a chunk that was not held"),
            }
        }
    }
}
