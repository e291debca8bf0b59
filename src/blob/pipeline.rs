//! The upload worker pool: hashing, dedup lookup, compression and pack
//! appends run here, off the caller's thread, for all uploads of a store.
//!
//! Every job is answered exactly once, whatever happens to it: a panic
//! while ingesting a chunk is caught on the worker thread (which goes on
//! serving the queue), what the job was in the middle of is undone, and the
//! upload gets [`Error::Internal`] for that chunk; a job dropped unanswered
//! (a worker thread lost some other way) answers from its `Drop`. So an
//! upload never waits forever for a chunk.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::blob::Core;
use crate::chunking::PlaneHint;
use crate::codec::{self, delta, Codec};
use crate::error::{Error, Result};
use crate::id::{ChunkId, Hash32};
use crate::pack::{ChunkLoc, RecordHeader};

/// One chunk to ingest: a range of a shared input block, with the cutter's
/// hint on how to compress it.
pub(crate) struct Job {
    /// Declared first, so dropped first: a job dropped unanswered lets go
    /// of the store before its [`Reply`] answers (see [`worker`]).
    pub inner: Arc<Core>,
    pub block: Arc<Vec<u8>>,
    pub range: Range<usize>,
    pub hint: PlaneHint,
    /// A chunk of the upload's base (the same elements of the previous
    /// version) to try a delta against, if any.
    pub base: Option<ChunkId>,
    pub reply: Reply,
}

/// The result of ingesting one chunk.
pub(crate) struct Done {
    pub seq: u64,
    pub id: ChunkId,
    pub len: u32,
    /// Whether the chunk is held for the upload, which must then release
    /// the hold (always, except for a job that failed before taking it).
    pub held: bool,
    /// `Some` when the chunk is not in the committed index yet: the upload
    /// must commit this location with whatever references the chunk.
    pub loc: Result<Option<ChunkLoc>>,
}

/// Where a job's answer goes. Sent once, by [`Reply::send`]; a reply
/// dropped unsent (its job lost) sends an error instead, so the upload
/// waiting for it never blocks forever.
pub(crate) struct Reply {
    tx: Sender<Done>,
    seq: u64,
    sent: bool,
}

impl Reply {
    pub fn new(tx: Sender<Done>, seq: u64) -> Self {
        Reply {
            tx,
            seq,
            sent: false,
        }
    }

    fn send(mut self, done: Done) {
        self.sent = true;
        // The upload may be gone (dropped after an error): nobody to tell.
        let _ = self.tx.send(done);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.tx.send(Done {
                seq: self.seq,
                id: Hash32([0; 32]),
                len: 0,
                held: false,
                loc: Err(Error::Internal(
                    "an ingest worker stopped before answering for a chunk".into(),
                )),
            });
        }
    }
}

/// Jobs the pool's queue holds before `submit` waits: a job is small (the
/// chunk's bytes stay in the writer's input block).
const QUEUE_JOBS: usize = 1024;

/// Input bytes of the jobs submitted and not yet run, across every writer
/// of the store. Each writer bounds its own run-ahead
/// (`MAX_IN_FLIGHT_BYTES`, 16 MiB: a 4 MiB block filling and up to 6 more
/// pinned), so one upload is never held back; ten at once (an S3 client's
/// multipart parts) would pin ten times that without this bound.
pub(super) const POOL_IN_FLIGHT_BYTES: u64 = 64 << 20;

/// A fixed set of worker threads fed through a bounded queue. Threads exit
/// when the pool (the queue's sender) is dropped; they are not joined, so a
/// store dropped from a worker thread cannot deadlock.
pub(crate) struct Pool {
    tx: Sender<(Job, Credit)>,
    /// Worker threads running (counted down when one exits).
    live: Arc<AtomicUsize>,
    budget: Arc<Budget>,
}

/// The bytes of the jobs in flight, against [`POOL_IN_FLIGHT_BYTES`].
#[derive(Default)]
struct Budget {
    used: parking_lot::Mutex<u64>,
    freed: parking_lot::Condvar,
}

impl Budget {
    /// Takes `n` bytes, waiting while that would pass the bound (unless
    /// nothing is in flight: a job larger than the bound still runs).
    /// Waiting cannot deadlock: credits come back as workers finish jobs,
    /// and workers never wait for a writer.
    fn take(self: &Arc<Self>, n: u64) -> Credit {
        let mut used = self.used.lock();
        while *used > 0 && *used + n > POOL_IN_FLIGHT_BYTES {
            self.freed.wait(&mut used);
        }
        *used += n;
        Credit(Arc::clone(self), n)
    }
}

/// Bytes of one job in flight, given back when it is dropped (the job run,
/// or dropped unrun).
struct Credit(Arc<Budget>, u64);

impl Drop for Credit {
    fn drop(&mut self) {
        *self.0.used.lock() -= self.1;
        self.0.freed.notify_all();
    }
}

/// Counts a worker thread as live until it exits, by whatever path.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    pub fn new(threads: usize) -> Result<Self> {
        // Each writer bounds its own jobs in flight (`MAX_IN_FLIGHT`, by
        // bytes too); the queue only has to hold what a few writers at a
        // time run ahead, so that submitting seldom waits.
        let (tx, rx) = bounded::<(Job, Credit)>(QUEUE_JOBS);
        let live = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let rx: Receiver<(Job, Credit)> = rx.clone();
            live.fetch_add(1, Ordering::SeqCst);
            let alive = Alive(Arc::clone(&live));
            thread::Builder::new()
                .name(format!("modelvault-ingest-{i}"))
                .spawn(move || {
                    let _alive = alive;
                    worker(rx)
                })
                .map_err(|e| Error::io("<ingest thread>", e))?;
        }
        Ok(Pool {
            tx,
            live,
            budget: Arc::default(),
        })
    }

    /// Queues `job`, first waiting while the jobs in flight hold
    /// [`POOL_IN_FLIGHT_BYTES`] of input.
    pub fn submit(&self, job: Job) {
        let credit = self.budget.take(job.range.len() as u64);
        // The receivers live as long as the pool, so this cannot fail.
        let _ = self.tx.send((job, credit));
    }

    /// Input bytes of the jobs in flight now.
    #[cfg(test)]
    pub fn bytes_in_flight(&self) -> u64 {
        *self.budget.used.lock()
    }

    /// Worker threads running now.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn live_threads(&self) -> usize {
        self.live.load(Ordering::SeqCst)
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

/// How far [`ingest`] got with a chunk, so that a panic can be undone.
#[derive(Default)]
struct Progress {
    /// The hold on the chunk was taken (the upload releases it).
    held: bool,
    /// The hold on this delta base is taken and not yet released.
    delta_base: Option<ChunkId>,
    /// Inside the pack writer's append: its state is unknown after a panic.
    appending: bool,
}

fn worker(rx: Receiver<(Job, Credit)>) {
    let mut bufs = Buffers::default();
    while let Ok((job, credit)) = rx.recv() {
        run(job, &mut bufs);
        drop(credit);
    }
}

/// Ingests one chunk and answers for it. A panic is caught here: the
/// thread lives on, the holds the job took on delta bases are released,
/// and the upload gets an error for the chunk (it releases the chunk's own
/// hold, as for any failed chunk). A panic inside a pack append poisons the
/// store's commits, since the pack writer may be half way through a record.
fn run(job: Job, bufs: &mut Buffers) {
    let Job {
        inner,
        block,
        range,
        hint,
        base,
        reply,
    } = job;
    let data = &block[range];
    let id = Hash32::of(data);
    let mut progress = Progress::default();
    let loc = match catch_unwind(AssertUnwindSafe(|| {
        ingest(&inner, &id, data, hint, base, bufs, &mut progress)
    })) {
        Ok(loc) => loc,
        Err(panic) => {
            let why = panic_message(&*panic);
            *bufs = Buffers::default();
            if let Some(b) = progress.delta_base.take() {
                inner.chunks().end_delta(&b);
            }
            if progress.appending {
                inner
                    .chunks()
                    .poison(format!("an ingest worker panicked in a pack append: {why}"));
            }
            Err(Error::Internal(format!(
                "an ingest worker panicked on chunk {id} ({} bytes): {why}",
                data.len()
            )))
        }
    };
    let done = Done {
        seq: reply.seq,
        id,
        len: data.len() as u32,
        held: progress.held,
        loc,
    };
    // Release the store before replying: the uploader may drop the last
    // handle as soon as it has its answer.
    drop(inner);
    reply.send(done);
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// Dedup lookup first (pending uploads, then the index); only a new chunk
/// is compressed (as `hint` suggests, see [`codec::encode_hinted`], or as a
/// delta against `base`, see [`encode`]) and appended. The chunk is held
/// (see `chunk::Pending`) before the lookup, whatever the outcome: the
/// upload releases the hold once a committed segment references the chunk,
/// or when it gives up. `progress` records the holds taken, for [`run`].
fn ingest(
    inner: &Core,
    id: &ChunkId,
    data: &[u8],
    hint: PlaneHint,
    base: Option<ChunkId>,
    bufs: &mut Buffers,
    progress: &mut Progress,
) -> Result<Option<ChunkLoc>> {
    let pending = inner.chunks().hold(id);
    progress.held = true;
    if let Some(loc) = pending {
        return Ok(Some(loc));
    }
    if inner.chunks().chunk_loc(id)?.is_some() {
        return Ok(None);
    }
    let base = base.filter(|b| b != id && inner.opts().max_delta_depth > 0);
    if let Some(b) = &base {
        // Held until the delta's location is published (the base then
        // counts as held through it, until the commit that references it).
        inner.chunks().begin_delta(b);
        progress.delta_base = Some(*b);
    }
    let (codec, base) = encode(inner, data, hint, base, bufs);
    if base.is_none() {
        // Not a delta after all: the base's hold goes now.
        if let Some(b) = progress.delta_base.take() {
            inner.chunks().end_delta(&b);
        }
    }
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
    progress.appending = true;
    let appended =
        inner
            .chunks()
            .append_pending(id, &header, payload, base, &mut progress.delta_base);
    progress.appending = false;
    // Not published (the append failed): the base's hold goes now.
    if let Some(b) = progress.delta_base.take() {
        inner.chunks().end_delta(&b);
    }
    Ok(Some(appended?))
}

/// Encodes a new chunk: as a delta against `base` into `bufs.delta` when
/// that is possible and saves `delta_min_saving` over the chunk alone, else
/// alone into `bufs.out`. Returns the codec and the base actually used. A
/// base that cannot be used (gone from the index, too deep, unreadable) is
/// not an error: the chunk is stored whole.
fn encode(
    inner: &Core,
    data: &[u8],
    hint: PlaneHint,
    base: Option<ChunkId>,
    bufs: &mut Buffers,
) -> (Codec, Option<ChunkId>) {
    #[cfg(test)]
    if data.starts_with(tests::PANIC_MARKER) {
        panic!("injected panic while encoding a chunk");
    }
    if let Some(b) = base {
        if let Some(codec) = try_delta(inner, data, hint, &b, bufs) {
            return (codec, Some(b));
        }
    }
    let codec = codec::encode_hinted(data, hint, &inner.opts().encode, &mut bufs.out);
    (codec, None)
}

fn try_delta(
    inner: &Core,
    data: &[u8],
    hint: PlaneHint,
    base: &ChunkId,
    bufs: &mut Buffers,
) -> Option<Codec> {
    // Looked up after the hold was taken: found now, it stays (see GC).
    let loc = inner.chunks().chunk_loc(base).ok()??;
    // The chain below the base as it is now (a reverse delta may have made
    // it longer than the base's record says).
    let below = match loc.base {
        None => 0,
        Some(_) => inner.chunks().chain_root(base).ok()??.2,
    };
    let depth = below + 1;
    if depth > inner.opts().max_delta_depth {
        return None;
    }
    let object = || format!("base chunk {base}");
    if let Err(e) = inner
        .chunks()
        .read_chunk(base, &object, 0, &mut bufs.scratch, &mut bufs.base)
    {
        tracing::warn!(%base, error = %e, "storing a chunk whole: its delta base is unreadable");
        return None;
    }
    let opts = &inner.opts().encode;
    delta::encode_delta(data, &bufs.base, base, hint, opts, &mut bufs.delta)?;
    // Skip encoding the chunk alone when the delta clearly wins: under half
    // the raw size (beats any plain encoding of floats by far), or well
    // under the base's own record when the base is stored whole (the same
    // elements one version earlier, which compress about alike). Otherwise
    // compare with the chunk stored alone.
    let d = bufs.delta.len() as f64;
    let clear_margin = 1.0 - inner.opts().delta_min_saving - 0.1;
    let beats_base = loc.base.is_none()
        && loc.raw_len as usize == data.len()
        && d <= clear_margin * loc.stored_len as f64;
    if bufs.delta.len() * 2 > data.len() && !beats_base {
        codec::encode_hinted(data, hint, opts, &mut bufs.out);
        let limit = bufs.out.len() as f64 * (1.0 - inner.opts().delta_min_saving);
        if bufs.delta.len() as f64 > limit {
            return None;
        }
    }
    Some(Codec::Delta { depth })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::{BlobId, GcOptions, Store};

    /// A chunk whose bytes start with this makes the worker ingesting it
    /// panic while encoding it, after it took its holds (test-only fault).
    pub(crate) const PANIC_MARKER: &[u8] = b"\0modelvault test: panic in an ingest worker\0";

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// Runs `f` on a thread of its own and returns its result; a hang (no
    /// answer within minutes, whatever the machine's load) fails the test
    /// instead of blocking it forever.
    fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| panic!("{what} never returned: the upload hangs"))
    }

    fn upload(store: &Store, data: &[u8], base: Option<BlobId>) -> crate::Result<BlobId> {
        let mut w = store.blob_writer();
        if let Some(b) = base {
            w = w.delta_base(&b)?;
        }
        w.write_all(data)
            .map_err(|e| crate::Error::io("<test upload>", e))?;
        w.finish()
    }

    /// Nothing is held, pending or being delta-encoded any more.
    fn assert_released(store: &Store, after: &str) {
        let (holds, locs, deltas_encoding) = store.inner.chunks().pending_counts();
        assert!(holds == 0, "{after}: {holds} chunk holds left");
        assert!(locs == 0, "{after}: {locs} pending chunks left");
        assert_eq!(deltas_encoding, 0, "{after}: delta base holds left");
    }

    #[test]
    fn a_panicking_worker_fails_the_upload_and_leaves_the_pool_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::options().threads(2).open(dir.path()).unwrap();
        // The first chunk of a 3 MiB upload panics; the ~45 others do not.
        let mut bad = PANIC_MARKER.to_vec();
        bad.extend(noise(3 << 20, 1));
        let s = store.clone();
        let r = bounded("an upload with a panicking chunk", move || {
            upload(&s, &bad, None)
        });
        let e = r.expect_err("an upload whose worker panicked succeeded");
        assert!(matches!(e, crate::Error::Internal(_)), "{e}");
        assert!(e.to_string().contains("panicked"), "{e}");
        assert_released(&store, "after the failed upload");

        // The same with a delta base: the panic comes after the hold on the
        // base chunk was taken, and that hold is released too.
        let base_data = noise(1 << 20, 2);
        let base = upload(&store, &base_data, None).unwrap();
        let mut next = base_data.clone();
        next[..PANIC_MARKER.len()].copy_from_slice(PANIC_MARKER);
        let s = store.clone();
        let r = bounded("a delta upload with a panicking chunk", move || {
            upload(&s, &next, Some(base))
        });
        assert!(r.is_err(), "a delta upload whose worker panicked succeeded");
        assert_released(&store, "after the failed delta upload");

        // Collection finds nothing held, and every pool thread is alive.
        let report = store.gc(&GcOptions::new()).unwrap();
        assert_eq!(report.chunks_held, 0);
        assert_eq!(store.inner.pool().live_threads(), 2);

        // The next uploads succeed and read back.
        for seed in 3..6 {
            let data = noise(4 << 20, seed);
            let s = store.clone();
            let d = data.clone();
            let id = bounded("an upload after a worker panic", move || {
                upload(&s, &d, None)
            })
            .unwrap();
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut store.blob_reader(&id).unwrap(), &mut back).unwrap();
            assert!(back == data, "blob read back differs");
        }
        assert_released(&store, "after the later uploads");
        assert!(store
            .verify(crate::VerifyOptions::new().read_data(true))
            .unwrap()
            .is_clean());
    }
}
