//! Reverse deltas: once a newer version of a file is stored whole, the
//! older version's chunks are re-encoded as deltas against the newer's, so
//! the newest version always reads without a base and older ones pay for
//! the chain instead (forward deltas, [`crate::BlobWriter::delta_base`], do
//! the opposite).
//!
//! Pairs are found like a forward delta's bases (`blob::base`), from the
//! older blob's side: chunk `k` of a float tensor of the older file pairs
//! with chunk `k` of the same tensor (same name, dtype, shape) in the newer
//! one; in a file that is not a container, a chunk pairs with the newer
//! chunk covering the same byte range (the newer upload was cut like the
//! older one: [`crate::BlobWriter::cut_like`]).
//!
//! A pair (X older, Y newer) is rebased when X and Y are both stored whole,
//! the delta is at least `delta_min_saving` smaller than X's record, and the
//! longest chain ending at X (its `height`) stays within `max_delta_depth`
//! once it runs on to Y. X gets a new record (a delta against Y, appended
//! and fsynced), and one commit moves X's index entry to it, counts one
//! reference on Y, and raises Y's height. X's old record is dead: the
//! packs that held such records are reclaimed at the end of the pass
//! (`gc::reclaim`, above this layer), and a collection reclaims any left.
//!
//! Concurrency: each batch holds the collection mutex, so no sweep or
//! compaction runs between reading X and Y and the commit (X and Y stay
//! indexed, the new records stay where they were written). The commit
//! re-checks every condition under the commit lock and the pending mutex,
//! and gives the batch up if a forward delta is being encoded or awaits its
//! commit: its chain was measured before ours would lengthen it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::base::DeltaBase;
use crate::blob::Core;
use crate::chunking::PlaneHint;
use crate::codec::{delta, Codec};
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId};
use crate::meta::tables::refs::{self, Count};
use crate::pack::{ChunkLoc, RecordHeader};

/// Chunk pairs per commit (and per hold of the collection mutex).
const BATCH: usize = 256;

/// What [`Store::reverse_delta`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReverseDeltaReport {
    /// Chunks of the older blob examined.
    pub chunks: u64,
    /// Of those, chunks with a counterpart in the newer blob that differs.
    pub paired: u64,
    /// Chunks re-encoded as deltas against the newer blob.
    pub rebased: u64,
    /// Stored bytes of the rebased chunks' records before (now dead,
    /// reclaimed by the next compaction).
    pub bytes_before: u64,
    /// Stored bytes of their delta records.
    pub bytes_after: u64,
    /// Pairs left as they were because a forward delta was in flight when
    /// their batch committed (their new records are dead bytes).
    pub busy: u64,
    /// Packs the replaced records emptied, compacted or deleted at the end
    /// of the pass (those left under half live; 90% in a model version's
    /// put).
    pub packs_reclaimed: u64,
    /// Live bytes those packs held, copied before they were deleted.
    pub bytes_copied: u64,
    /// Pack bytes given back to the file system (net of what was copied).
    pub bytes_reclaimed: u64,
}

impl ReverseDeltaReport {
    /// Adds `o`'s counts to these (the passes of several files).
    pub(crate) fn add(&mut self, o: &ReverseDeltaReport) {
        self.chunks += o.chunks;
        self.paired += o.paired;
        self.rebased += o.rebased;
        self.bytes_before += o.bytes_before;
        self.bytes_after += o.bytes_after;
        self.busy += o.busy;
        self.packs_reclaimed += o.packs_reclaimed;
        self.bytes_copied += o.bytes_copied;
        self.bytes_reclaimed += o.bytes_reclaimed;
    }
}

/// One pair ready to commit: X's entry as read, X's new delta record.
struct Rebased {
    x: ChunkId,
    y: ChunkId,
    old: ChunkLoc,
    new: ChunkLoc,
}

impl Core {
    /// One reverse pass ([`crate::Store::reverse_delta`] without the
    /// reclaim at its end): adds to `emptied` the packs that held records
    /// it replaced.
    pub(crate) fn reverse_delta_pass(
        self: &Arc<Self>,
        older: &BlobId,
        newer: &BlobId,
        emptied: &mut BTreeSet<u32>,
    ) -> Result<ReverseDeltaReport> {
        self.chunks().writable("reverse delta")?;
        let mut report = ReverseDeltaReport::default();
        let (old, new) = (DeltaBase::open(self, older)?, DeltaBase::open(self, newer)?);
        let (Some(mut old), Some(mut new)) = (old, new) else {
            return Ok(report);
        };
        if older == newer || self.opts().max_delta_depth == 0 {
            return Ok(report);
        }
        let layout = old.layout().cloned();
        let mut pairs = Vec::with_capacity(BATCH);
        let mut pos = 0u64;
        // (A damaged manifest ends the walk: no chunk of length 0 is followed.)
        while let Some((x, len)) = old.chunk_at(pos).filter(|&(_, len)| len > 0) {
            report.chunks += 1;
            if let Some(y) = new.chunk_for(layout.as_ref(), pos, len) {
                if y != x {
                    let hint = layout
                        .as_ref()
                        .and_then(|l| l.span_at(pos))
                        .map_or(PlaneHint::Estimate, |t| PlaneHint::of(t.dtype));
                    pairs.push((x, y, hint));
                }
            }
            pos += len as u64;
            if pairs.len() == BATCH {
                rebase_batch(self, &pairs, &mut report, emptied)?;
                pairs.clear();
            }
        }
        rebase_batch(self, &pairs, &mut report, emptied)?;
        Ok(report)
    }
}

/// One worker's reusable buffers.
#[derive(Default)]
struct Buffers {
    scratch: Vec<u8>,
    x: Vec<u8>,
    y: Vec<u8>,
    out: Vec<u8>,
}

/// Reads X and Y, encodes X against Y and appends the record, when the
/// pair qualifies as things stand (the commit checks again).
fn rebase_one(
    inner: &Core,
    x: &ChunkId,
    y: &ChunkId,
    hint: PlaneHint,
    b: &mut Buffers,
) -> Result<Option<Rebased>> {
    let Some(old) = inner.chunks().chunk_loc(x)? else {
        return Ok(None);
    };
    if old.base.is_some() || old.height >= inner.opts().max_delta_depth {
        return Ok(None);
    }
    if inner
        .chunks()
        .chunk_loc(y)?
        .is_none_or(|l| l.base.is_some())
    {
        return Ok(None);
    }
    for (id, raw) in [(x, &mut b.x), (y, &mut b.y)] {
        let object = || format!("chunk {id} (reverse delta)");
        if let Err(e) = inner
            .chunks()
            .read_chunk(id, &object, 0, &mut b.scratch, raw)
        {
            tracing::warn!(chunk = %x, error = %e, "not rebasing the chunk");
            return Ok(None);
        }
    }
    if delta::encode_delta(&b.x, &b.y, y, hint, &inner.opts().encode, &mut b.out).is_none() {
        return Ok(None);
    }
    if b.out.len() as f64 > old.stored_len as f64 * (1.0 - inner.opts().delta_min_saving) {
        return Ok(None);
    }
    let header = RecordHeader {
        codec: Codec::Delta { depth: 1 },
        raw_len: old.raw_len,
        stored_len: b.out.len() as u32,
        id: *x,
    };
    let new = ChunkLoc {
        base: Some(*y),
        ..inner.chunks().append_old(&header, &b.out)?
    };
    Ok(Some(Rebased {
        x: *x,
        y: *y,
        old,
        new,
    }))
}

/// Encodes, appends and commits one batch of pairs.
fn rebase_batch(
    inner: &Core,
    pairs: &[(ChunkId, ChunkId, PlaneHint)],
    report: &mut ReverseDeltaReport,
    emptied: &mut BTreeSet<u32>,
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    report.paired += pairs.len() as u64;
    let _collection = inner.exclusive();
    // Distinct X only: a chunk repeated in the older blob is rebased once.
    let mut seen = HashSet::new();
    let pairs: Vec<_> = pairs.iter().filter(|(x, ..)| seen.insert(*x)).collect();
    // Read, encode and append on the store's worker count of threads.
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<Rebased>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..inner.opts().threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut bufs = Buffers::default();
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((x, y, hint)) = pairs.get(i) else {
                            return Ok(done);
                        };
                        if let Some(r) = rebase_one(inner, x, y, *hint, &mut bufs)? {
                            done.push(r);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                // A worker that panicked is a bug: reported, not propagated.
                w.join().unwrap_or_else(|_| {
                    Err(Error::io(
                        "<reverse delta worker>",
                        std::io::Error::other("the worker thread panicked"),
                    ))
                })
            })
            .collect()
    });
    let mut done = Vec::new();
    for r in results {
        done.extend(r?);
    }
    if done.is_empty() {
        return Ok(());
    }
    inner.chunks().sync_packs()?;
    let busy = inner.chunks().commit_exclusive(|tx| {
        if tx.deltas_in_flight() {
            return Ok(None);
        }
        let max_depth = inner.opts().max_delta_depth;
        // Entries this commit rewrites, as they will be: bases with raised
        // heights, and chunks turned into deltas.
        let mut now: HashMap<ChunkId, ChunkLoc> = HashMap::new();
        for r in &done {
            let cur = |id: &ChunkId| -> Result<Option<ChunkLoc>> {
                match now.get(id) {
                    Some(l) => Ok(Some(*l)),
                    None => tx.chunk_loc(id),
                }
            };
            let (Some(x), Some(y)) = (cur(&r.x)?, cur(&r.y)?) else {
                continue;
            };
            // X still the whole record we encoded from, Y still whole, and the
            // longest chain through X, now running on to Y, within bounds.
            let same = (x.pack, x.offset) == (r.old.pack, r.old.offset);
            if !same || x.base.is_some() || y.base.is_some() || x.height >= max_depth {
                continue;
            }
            now.insert(
                r.y,
                ChunkLoc {
                    height: y.height.max(x.height + 1),
                    ..y
                },
            );
            now.insert(r.x, r.new);
            refs::change(tx.batch(), Count::Chunk(r.y), 1);
            tx.note_appended(&r.new);
            report.rebased += 1;
            emptied.insert(r.old.pack);
            report.bytes_before += u64::from(r.old.stored_len);
            report.bytes_after += u64::from(r.new.stored_len);
        }
        for (id, loc) in &now {
            tx.put_entry(id, loc);
        }
        Ok(Some(()))
    })?;
    if busy.is_none() {
        report.busy += done.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::meta::tables::chunks;
    use crate::meta::{Batch, Meta};
    use crate::{BlobId, Store};

    /// fp32 values, and the same values each moved by a few units in the
    /// last place: a raw array and its next step.
    fn step(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .flat_map(|i| {
                let x = 1.0f32 + (i.wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0;
                let jitter = i.wrapping_mul(seed.wrapping_mul(747_796_405) | 1) >> 28;
                f32::from_bits(x.to_bits() + jitter).to_le_bytes()
            })
            .collect()
    }

    fn put(store: &Store, data: &[u8], base: Option<&BlobId>) -> BlobId {
        let mut w = store.blob_writer();
        if let Some(b) = base {
            w = w.delta_base(b).unwrap();
        }
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    /// A store with forward chains, written before index entries kept chain
    /// heights, gets them at open: a reverse delta then respects the chains
    /// it would lengthen.
    #[test]
    fn a_store_written_before_chain_heights_gets_them_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault");
        let opts = || Store::options().max_delta_depth(2);
        let (v0, fresh) = {
            let store = opts().open(&path).unwrap();
            let v0 = put(&store, &step(400_000, 1), None);
            let v1 = put(&store, &step(400_000, 2), Some(&v0));
            put(&store, &step(400_000, 3), Some(&v1));
            let mut w = store.blob_writer().cut_like(&v0).unwrap();
            w.write_all(&step(400_000, 4)).unwrap();
            let fresh = w.finish().unwrap();
            (v0, fresh)
        };
        // Make it look like a store from before: no heights, no marker.
        let stripped = {
            let meta = Meta::open(&path.join("meta"), false).unwrap();
            let mut b = Batch::default();
            let mut n = 0;
            for e in chunks::all(&meta) {
                let (id, mut loc) = e.unwrap();
                if loc.height > 0 {
                    loc.height = 0;
                    chunks::put(&mut b, &id, &loc);
                    n += 1;
                }
            }
            crate::meta::tables::singletons::unmark_heights_built(&mut b);
            meta.commit(b, true).unwrap();
            n
        };
        assert!(stripped >= 5, "{stripped} chunks ended chains");
        let store = opts().open(&path).unwrap();
        let r = store.reverse_delta(&v0, &fresh).unwrap();
        assert!(r.paired >= 5 && r.rebased == 0, "{r:?}");
        // One more allowed, and it happens.
        drop(store);
        let store = Store::options().max_delta_depth(3).open(&path).unwrap();
        let r = store.reverse_delta(&v0, &fresh).unwrap();
        assert!(r.rebased >= 5, "{r:?}");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut store.blob_reader(&v0).unwrap(), &mut out).unwrap();
        assert_eq!(out, step(400_000, 1));
    }
}
