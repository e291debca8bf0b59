//! The upload worker pool: hashing, dedup lookup, compression and pack
//! appends run here, off the caller's thread, for all uploads of a store.

use std::ops::Range;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::chunking::PlaneHint;
use crate::codec::{self, delta, Codec};
use crate::error::Result;
use crate::id::{ChunkId, Hash32};
use crate::pack::{ChunkLoc, Lane, RecordHeader};
use crate::store::Inner;

/// One chunk to ingest: a range of a shared input block, with the cutter's
/// hint on how to compress it.
pub(crate) struct Job {
    pub inner: Arc<Inner>,
    pub block: Arc<Vec<u8>>,
    pub range: Range<usize>,
    pub hint: PlaneHint,
    /// A chunk of the upload's base (the same elements of the previous
    /// version) to try a delta against, if any.
    pub base: Option<ChunkId>,
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

/// A worker's reusable buffers.
#[derive(Default)]
struct Buffers {
    out: Vec<u8>,
    delta: Vec<u8>,
    base: Vec<u8>,
    scratch: Vec<u8>,
}

fn worker(rx: Receiver<Job>) {
    let mut bufs = Buffers::default();
    while let Ok(job) = rx.recv() {
        let data = &job.block[job.range.clone()];
        let id = Hash32::of(data);
        let loc = ingest(&job.inner, &id, data, job.hint, job.base, &mut bufs);
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
/// is compressed (as `hint` suggests, see [`codec::encode_hinted`], or as a
/// delta against `base`, see [`encode`]) and appended. The chunk is held
/// (see `store::Pending`) before the lookup, whatever the outcome: the
/// upload releases the hold once a committed segment references the chunk,
/// or when it gives up.
fn ingest(
    inner: &Inner,
    id: &ChunkId,
    data: &[u8],
    hint: PlaneHint,
    base: Option<ChunkId>,
    bufs: &mut Buffers,
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
    let base = base.filter(|b| b != id && inner.opts.max_delta_depth > 0);
    if let Some(b) = &base {
        // Held until the delta's location is published (the base then
        // counts as held through it, until the commit that references it).
        inner.pending.lock().begin_delta(b);
    }
    let (codec, base) = encode(inner, data, hint, base, bufs);
    let payload = if base.is_some() {
        &bufs.delta
    } else {
        &bufs.out
    };
    let header = RecordHeader {
        codec,
        raw_len: data.len() as u32,
        stored_len: payload.len() as u32,
        id: *id,
    };
    // Published while the pack writer's lock is held, so compaction never
    // sees a sealed pack with a record still unpublished. Another upload may
    // have raced us to the same chunk: keep the first copy; ours becomes
    // unreferenced bytes that compaction reclaims.
    let appended = inner.packs.append_with(Lane::New, &header, payload, |loc| {
        let mut p = inner.pending.lock();
        let loc = *p.locs.entry(*id).or_insert(ChunkLoc { base, ..loc });
        if let Some(b) = &base {
            p.end_delta(b);
        }
        loc
    });
    if appended.is_err() {
        if let Some(b) = &base {
            inner.pending.lock().end_delta(b);
        }
    }
    Ok(Some(appended?))
}

/// Encodes a new chunk: as a delta against `base` into `bufs.delta` when
/// that is possible and saves `delta_min_saving` over the chunk alone, else
/// alone into `bufs.out`. Returns the codec and the base actually used. A
/// base that cannot be used (gone from the index, too deep, unreadable) is
/// not an error: the chunk is stored whole. Releases the hold on a base it
/// does not use.
fn encode(
    inner: &Inner,
    data: &[u8],
    hint: PlaneHint,
    base: Option<ChunkId>,
    bufs: &mut Buffers,
) -> (Codec, Option<ChunkId>) {
    if let Some(b) = base {
        match try_delta(inner, data, hint, &b, bufs) {
            Some(codec) => return (codec, Some(b)),
            None => inner.pending.lock().end_delta(&b),
        }
    }
    let codec = codec::encode_hinted(data, hint, &inner.opts.encode, &mut bufs.out);
    (codec, None)
}

fn try_delta(
    inner: &Inner,
    data: &[u8],
    hint: PlaneHint,
    base: &ChunkId,
    bufs: &mut Buffers,
) -> Option<Codec> {
    // Looked up after the hold was taken: found now, it stays (see GC).
    let loc = inner.chunk_loc(base).ok()??;
    // The chain below the base as it is now (a reverse delta may have made
    // it longer than the base's record says).
    let below = match loc.base {
        None => 0,
        Some(_) => inner.chain_root(base).ok()??.2,
    };
    let depth = below + 1;
    if depth > inner.opts.max_delta_depth {
        return None;
    }
    let object = || format!("base chunk {base}");
    if let Err(e) = inner.read_chunk(base, &object, 0, &mut bufs.scratch, &mut bufs.base) {
        crate::store::tracing_note(&format!(
            "storing a chunk whole: its delta base is unreadable: {e}"
        ));
        return None;
    }
    let opts = &inner.opts.encode;
    delta::encode_delta(data, &bufs.base, base, hint, opts, &mut bufs.delta)?;
    // Skip encoding the chunk alone when the delta clearly wins: under half
    // the raw size (beats any plain encoding of floats by far), or well
    // under the base's own record when the base is stored whole (the same
    // elements one version earlier, which compress about alike). Otherwise
    // compare with the chunk stored alone.
    let d = bufs.delta.len() as f64;
    let clear_margin = 1.0 - inner.opts.delta_min_saving - 0.1;
    let beats_base = loc.base.is_none()
        && loc.raw_len as usize == data.len()
        && d <= clear_margin * loc.stored_len as f64;
    if bufs.delta.len() * 2 > data.len() && !beats_base {
        codec::encode_hinted(data, hint, opts, &mut bufs.out);
        let limit = bufs.out.len() as f64 * (1.0 - inner.opts.delta_min_saving);
        if bufs.delta.len() as f64 > limit {
            return None;
        }
    }
    Some(Codec::Delta { depth })
}
