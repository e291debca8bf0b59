//! The upload worker pool: hashing, dedup lookup, compression and pack
//! appends run here, off the caller's thread, for all uploads of a store.

use std::ops::Range;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::chunking::PlaneHint;
use crate::codec::{self, Codec};
use crate::error::Result;
use crate::id::{ChunkId, Hash32};
use crate::pack::{ChunkLoc, RecordHeader};
use crate::store::Inner;

/// One chunk to ingest: a range of a shared input block, with the cutter's
/// hint on how to compress it.
pub(crate) struct Job {
    pub inner: Arc<Inner>,
    pub block: Arc<Vec<u8>>,
    pub range: Range<usize>,
    pub hint: PlaneHint,
    pub seq: u64,
    pub reply: Sender<Done>,
}

/// The result of ingesting one chunk. Whatever `loc` says, the chunk is
/// held for the upload until it releases it.
pub(crate) struct Done {
    pub seq: u64,
    pub id: ChunkId,
    pub len: u32,
    /// `Some` when the chunk is not in the committed index yet: the upload
    /// must commit this location with whatever references the chunk.
    pub loc: Result<Option<ChunkLoc>>,
}

/// A fixed set of worker threads fed through a bounded queue. Threads exit
/// when the pool (the queue's sender) is dropped; they are not joined, so a
/// store dropped from a worker thread cannot deadlock.
pub(crate) struct Pool {
    tx: Sender<Job>,
}

impl Pool {
    pub fn new(threads: usize) -> crate::error::Result<Self> {
        let (tx, rx) = bounded::<Job>(threads * 4);
        for i in 0..threads {
            let rx: Receiver<Job> = rx.clone();
            thread::Builder::new()
                .name(format!("modelvault-ingest-{i}"))
                .spawn(move || worker(rx))
                .map_err(|e| crate::error::Error::io("<ingest thread>", e))?;
        }
        Ok(Pool { tx })
    }

    pub fn submit(&self, job: Job) {
        // The receivers live as long as the pool, so this cannot fail.
        let _ = self.tx.send(job);
    }
}

fn worker(rx: Receiver<Job>) {
    let mut out = Vec::new();
    while let Ok(job) = rx.recv() {
        let data = &job.block[job.range.clone()];
        let id = Hash32::of(data);
        let loc = ingest(&job.inner, &id, data, job.hint, &mut out);
        let done = Done {
            seq: job.seq,
            id,
            len: data.len() as u32,
            loc,
        };
        let Job { inner, reply, .. } = job;
        // Release the store before replying: the uploader may drop the last
        // handle as soon as it has its answer.
        drop(inner);
        let _ = reply.send(done);
    }
}

/// Dedup lookup first (pending uploads, then the index); only a new chunk
/// is compressed (as `hint` suggests, see [`codec::encode_hinted`]) and
/// appended. The chunk is held (see `store::Pending`) before the lookup,
/// whatever the outcome: the upload releases the hold once a committed
/// segment references the chunk, or when it gives up.
fn ingest(
    inner: &Inner,
    id: &ChunkId,
    data: &[u8],
    hint: PlaneHint,
    out: &mut Vec<u8>,
) -> Result<Option<ChunkLoc>> {
    {
        let mut p = inner.pending.lock();
        p.hold(id);
        if let Some(loc) = p.locs.get(id) {
            return Ok(Some(*loc));
        }
    }
    if inner.chunk_loc(id)?.is_some() {
        return Ok(None);
    }
    let codec: Codec = codec::encode_hinted(data, hint, &inner.opts.encode, out);
    let header = RecordHeader {
        codec,
        raw_len: data.len() as u32,
        stored_len: out.len() as u32,
        id: *id,
    };
    // Published while the pack writer's lock is held, so compaction never
    // sees a sealed pack with a record still unpublished. Another upload may
    // have raced us to the same chunk: keep the first copy; ours becomes
    // unreferenced bytes that compaction reclaims.
    let loc = inner.packs.append_with(&header, out, |loc| {
        *inner.pending.lock().locs.entry(*id).or_insert(loc)
    })?;
    Ok(Some(loc))
}
