//! Read-ahead for [`BlobReader`](super::BlobReader): a process-wide pool of
//! threads that fetch, decode and verify chunks ahead of a sequential reader,
//! and the per-reader [`Window`] that hands their results back in blob order.
//!
//! - **Pool.** Created on first use, one thread per core (at least 2, at most
//!   [`MAX_THREADS`]), shared by every reader of every store in the process.
//!   Its threads live as long as the process and hold nothing between jobs
//!   but one record buffer each; no reader ever starts or joins a thread.
//! - **Jobs** name one chunk (manifest entry and blob offset) and reply on
//!   their reader's channel with the decoded, verified bytes or the error
//!   that [`fetch`] gave, exactly as a read on the reader's thread would.
//!   A job holds no reference to the store at all: its reader's [`Ctl`]
//!   keeps a `Weak` one, and the only way to reach the store is
//!   [`Ctl::run`], which upgrades it inside the span in which the job is
//!   counted as running and drops it before the count goes down.
//! - **Claims.** A job runs once: on a pool thread, or on the reader's own
//!   thread when the reader needs its chunk before any pool thread has
//!   started on it (all busy with other work). So a reader never sits idle
//!   behind queued work.
//! - **Generations.** Cancelling a window (a seek away from it, an error, the
//!   reader's drop) advances the reader's generation: queued jobs of an older
//!   generation are skipped unread, and replies from them are dropped.
//! - **Dropping a reader** ([`Ctl::close`]) marks it closed and waits until
//!   none of its jobs is running. Under the one mutex, `run` admits a job
//!   only if its generation is current (never once the reader is closed)
//!   and counts it; `close` sets the generation to [`CLOSED`] and then
//!   waits for the count to reach zero. So after `close` returns, every job of the reader is either
//!   finished (its strong reference dropped before its count was) or will
//!   never be admitted: no pool thread holds the store or can take it, and
//!   the last `Store` handle is released, with the store's lock, on the
//!   caller's thread. Queued jobs of a closed reader are skipped unread
//!   when a pool thread reaches them. The wait is at most one chunk per
//!   pool thread; a job never waits on its reader, so it cannot deadlock.
//!
//! **Memory.** Per reader, chunk data fetched ahead (queued, being decoded,
//! decoded and not yet read, or cancelled and not yet replied) is at most
//! [`WINDOW_CHUNKS`] chunks and [`WINDOW_BYTES`] raw bytes. The pool's
//! threads each keep one record buffer (the largest stored record they
//! have read) for all readers, and a job decoding a delta holds its bases'
//! buffers while it runs.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread;

use crossbeam_channel::{unbounded, Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use super::reader::fetch;
use crate::blob::Core;
use crate::error::Result;
use crate::id::BlobId;
use crate::meta::records::SegmentEntry;

/// Most chunks one reader has fetched ahead (in flight or decoded and not
/// yet read, including cancelled ones whose jobs have not replied yet).
pub(crate) const WINDOW_CHUNKS: usize = 8;

/// Most raw bytes one reader has fetched ahead, counted like
/// [`WINDOW_CHUNKS`]. Chunks are at most 16 MiB, so the first chunk of the
/// window always fits.
pub(crate) const WINDOW_BYTES: u64 = 16 << 20;

/// Read-ahead starts once this many chunk loads in a row each began where
/// the previous one ended. The window then doubles from 2 chunks with every
/// further sequential load, up to [`WINDOW_CHUNKS`]: small ranged reads
/// never prefetch, a short sequential run prefetches little.
pub(crate) const SEQUENTIAL_LOADS: u32 = 2;

/// Decode buffers a reader keeps for reuse: in steady state each chunk the
/// reader moves past frees one buffer and the next job takes it.
const SPARE_BUFFERS: usize = 2;

/// Largest buffer kept for reuse (twice the default largest chunk): a
/// job's buffer is at most this much larger than the chunk it holds.
const SPARE_MAX: usize = 256 << 10;

/// Upper bound on the pool's threads.
const MAX_THREADS: usize = 8;

/// One chunk to fetch, decode and verify.
struct Job {
    ctl: Arc<Ctl>,
    blob: BlobId,
    entry: SegmentEntry,
    start: u64,
    gen: u64,
    seq: u64,
    /// Set by whoever runs the job: a pool thread, or the reader itself
    /// when it needs the chunk before any pool thread started on it.
    claim: Arc<AtomicBool>,
    out: Vec<u8>,
    reply: Sender<Reply>,
}

struct Reply {
    gen: u64,
    seq: u64,
    len: u64,
    outcome: Outcome,
}

enum Outcome {
    /// The chunk's bytes, verified, or the error reading them gave.
    Done(Result<Vec<u8>>),
    /// Not run: the job's generation was cancelled, the reader claimed it,
    /// or the store is gone.
    Skipped(Vec<u8>),
    /// The fetch panicked; the reader repeats it on its own thread.
    Panicked,
}

/// The sending side of the pool, or `None` if no thread could be started
/// (reads then stay on the reader's thread).
fn pool() -> Option<&'static Sender<Job>> {
    static POOL: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, MAX_THREADS);
        let (tx, rx) = unbounded::<Job>();
        let mut started = 0;
        for i in 0..n {
            let rx = rx.clone();
            let spawned = thread::Builder::new()
                .name(format!("modelvault-read-{i}"))
                .spawn(move || worker(rx));
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

fn worker(rx: Receiver<Job>) {
    let mut scratch = Vec::new();
    while let Ok(job) = rx.recv() {
        let Job {
            ctl,
            blob,
            entry,
            start,
            gen,
            seq,
            claim,
            mut out,
            reply,
        } = job;
        // Claimed first: once the reader sees the claim taken it waits for
        // this job's reply, which comes whatever happens below.
        let outcome = if claim.swap(true, Ordering::AcqRel) {
            Outcome::Skipped(out)
        } else {
            let r = ctl.run(gen, |inner| {
                catch_unwind(AssertUnwindSafe(|| {
                    fetch(inner, blob, &entry, start, &mut scratch, &mut out)
                }))
            });
            match r {
                None => Outcome::Skipped(out),
                Some(Ok(Ok(()))) => Outcome::Done(Ok(out)),
                Some(Ok(Err(e))) => Outcome::Done(Err(e)),
                Some(Err(_)) => {
                    scratch = Vec::new();
                    Outcome::Panicked
                }
            }
        };
        // The job no longer runs and holds nothing of the store: a closing
        // reader does not wait for this send (the reply is dropped unread).
        let _ = reply.send(Reply {
            gen,
            seq,
            len: u64::from(entry.len),
            outcome,
        });
    }
}

/// A reader's store, generation and count of running jobs, shared with
/// its jobs. The store is reachable only through [`Ctl::run`].
struct Ctl {
    store: Weak<Core>,
    state: Mutex<CtlState>,
    idle: Condvar,
}

struct CtlState {
    gen: u64,
    running: usize,
}

/// The generation of a closed reader: no job runs any more.
const CLOSED: u64 = u64::MAX;

impl Ctl {
    /// Runs `f` on the store for a job of generation `gen`, unless that
    /// generation is over (cancelled, or the reader closed) or the store is
    /// gone. The job counts as running for the whole call, and the strong
    /// reference to the store exists only inside it: taken after the count
    /// went up, dropped before it goes down (also if `f` unwinds, as locals
    /// drop in reverse order). This is the only place a pool thread gets
    /// hold of the store.
    fn run<R>(&self, gen: u64, f: impl FnOnce(&Core) -> R) -> Option<R> {
        let _running = {
            let mut s = self.state.lock();
            if s.gen != gen {
                return None;
            }
            s.running += 1;
            RunningJob(self)
        };
        let store = self.store.upgrade()?;
        let r = f(&store);
        drop(store);
        Some(r)
    }

    /// Starts a new generation; jobs of the old one that have not started
    /// will not run. Returns the new generation.
    fn advance(&self) -> u64 {
        let mut s = self.state.lock();
        if s.gen != CLOSED {
            s.gen += 1;
        }
        s.gen
    }

    /// Ends all generations and waits for the running jobs to finish: after
    /// this no job of the reader holds the store, and none will take it.
    fn close(&self) {
        let mut s = self.state.lock();
        s.gen = CLOSED;
        while s.running > 0 {
            self.idle.wait(&mut s);
        }
    }
}

struct RunningJob<'a>(&'a Ctl);

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.running -= 1;
        if s.running == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// One chunk fetched ahead.
struct Slot {
    entry: SegmentEntry,
    start: u64,
    state: SlotState,
    claim: Arc<AtomicBool>,
}

impl Slot {
    fn len(&self) -> u64 {
        u64::from(self.entry.len)
    }
}

enum SlotState {
    Pending,
    Ready(Result<Vec<u8>>),
    /// The job was not run or panicked: the reader reads this chunk itself.
    Retry,
}

/// What [`Window::take`] found for a position.
pub(crate) enum Taken {
    /// The chunk starting here: its verified bytes, or the error reading it gave.
    Ready(u64, Result<Vec<u8>>),
    /// The chunk covering the position, which the caller must read itself
    /// (no pool thread had started on it).
    Run(SegmentEntry, u64),
    /// The window does not cover the position (and is now cancelled).
    Miss,
}

/// A reader's read-ahead: the chunks after the current one, in blob order,
/// each pending on the pool or decoded. Holds at most [`WINDOW_CHUNKS`]
/// chunks and [`WINDOW_BYTES`] raw bytes, counting cancelled jobs that have
/// not replied yet.
pub(crate) struct Window {
    ctl: Arc<Ctl>,
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    gen: u64,
    /// `slots[i]` is the job with sequence number `first_seq + i`.
    slots: VecDeque<Slot>,
    first_seq: u64,
    next_seq: u64,
    slot_bytes: u64,
    /// Jobs dropped from the window whose replies are still to come.
    stale: usize,
    stale_bytes: u64,
    /// Decode buffers to reuse.
    free: Vec<Vec<u8>>,
    /// Chunk loads in a row that began where the previous one ended.
    streak: u32,
    last_end: Option<u64>,
}

impl Window {
    /// An empty window for a reader of `store`. It keeps only a `Weak`
    /// reference, for its jobs (see [`Ctl::run`]).
    pub fn new(store: &Arc<Core>) -> Self {
        let (tx, rx) = unbounded();
        Window {
            ctl: Arc::new(Ctl {
                store: Arc::downgrade(store),
                state: Mutex::new(CtlState { gen: 0, running: 0 }),
                idle: Condvar::new(),
            }),
            tx,
            rx,
            gen: 0,
            slots: VecDeque::new(),
            first_seq: 0,
            next_seq: 0,
            slot_bytes: 0,
            stale: 0,
            stale_bytes: 0,
            free: Vec::new(),
            streak: 0,
            last_end: None,
        }
    }

    /// Records that the chunk `start..end` was loaded (from the window or not).
    pub fn loaded(&mut self, start: u64, end: u64) {
        self.streak = if self.last_end == Some(start) {
            self.streak.saturating_add(1)
        } else {
            0
        };
        self.last_end = Some(end);
    }

    /// Forgets the access pattern and cancels everything fetched ahead (after
    /// an error, so that a retry reads on the reader's thread).
    pub fn reset(&mut self) {
        self.cancel();
        self.streak = 0;
        self.last_end = None;
    }

    /// True if `pos` lies in a chunk fetched ahead.
    pub fn covers(&self, pos: u64) -> bool {
        match (self.slots.front(), self.slots.back()) {
            (Some(f), Some(b)) => pos >= f.start && pos < b.start + b.len(),
            _ => false,
        }
    }

    /// Drops every chunk fetched ahead; pending jobs are skipped if they have
    /// not started.
    pub fn cancel(&mut self) {
        if self
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Pending))
        {
            self.gen = self.ctl.advance();
        }
        while let Some(s) = self.pop_front() {
            if let SlotState::Ready(Ok(buf)) = s.state {
                self.recycle(buf);
            }
        }
    }

    /// Removes the first slot. Its job, if still pending, becomes stale: it
    /// counts against the window until its reply comes.
    fn pop_front(&mut self) -> Option<Slot> {
        let s = self.slots.pop_front()?;
        self.first_seq += 1;
        self.slot_bytes -= s.len();
        if matches!(s.state, SlotState::Pending) {
            self.stale += 1;
            self.stale_bytes += s.len();
        }
        Some(s)
    }

    /// Keeps a chunk buffer the reader no longer needs for a later job: at
    /// most [`SPARE_BUFFERS`], none larger than [`SPARE_MAX`].
    pub fn recycle(&mut self, buf: Vec<u8>) {
        let fits = buf.capacity() > 0 && buf.capacity() <= SPARE_MAX;
        if fits && self.free.len() < SPARE_BUFFERS {
            self.free.push(buf);
        }
    }

    /// The chunk covering `pos`, if the window holds it; chunks before it are
    /// dropped. Waits for its job if a pool thread is running it; if none
    /// has started on it yet, the caller gets to read it itself.
    pub fn take(&mut self, pos: u64) -> Taken {
        if !self.covers(pos) {
            self.cancel();
            return Taken::Miss;
        }
        while self.slots.front().is_some_and(|f| pos >= f.start + f.len()) {
            if let Some(Slot {
                state: SlotState::Ready(Ok(buf)),
                ..
            }) = self.pop_front()
            {
                self.recycle(buf);
            }
        }
        loop {
            let Some(front) = self.slots.front() else {
                return Taken::Miss; // not reached: the window covers `pos`
            };
            match front.state {
                SlotState::Pending if !front.claim.swap(true, Ordering::AcqRel) => break,
                SlotState::Pending => {
                    let r = self.rx.recv().expect("the window holds a sender");
                    self.receive(r);
                }
                _ => break,
            }
        }
        let Some(s) = self.pop_front() else {
            return Taken::Miss; // not reached: the loop saw a front slot
        };
        match s.state {
            SlotState::Ready(Ok(buf)) => Taken::Ready(s.start, Ok(buf)),
            SlotState::Ready(Err(e)) => {
                self.reset();
                Taken::Ready(s.start, Err(e))
            }
            SlotState::Pending | SlotState::Retry => Taken::Run(s.entry, s.start),
        }
    }

    fn receive(&mut self, r: Reply) {
        if r.gen != self.gen || r.seq < self.first_seq {
            self.stale -= 1;
            self.stale_bytes -= r.len;
            if let Outcome::Done(Ok(buf)) | Outcome::Skipped(buf) = r.outcome {
                self.recycle(buf);
            }
            return;
        }
        let slot = &mut self.slots[(r.seq - self.first_seq) as usize];
        slot.state = match r.outcome {
            Outcome::Done(res) => SlotState::Ready(res),
            Outcome::Skipped(_) | Outcome::Panicked => SlotState::Retry,
        };
    }

    /// Where the next chunk to fetch ahead starts, if the access pattern and
    /// the bounds call for one. `end` is the end of the reader's current
    /// chunk, `size` the blob's length.
    pub fn wants(&mut self, end: u64, size: u64) -> Option<u64> {
        while let Ok(r) = self.rx.try_recv() {
            self.receive(r);
        }
        if self.streak < SEQUENTIAL_LOADS {
            return None;
        }
        let ramp = (self.streak - SEQUENTIAL_LOADS + 1).min(8);
        let target = WINDOW_CHUNKS.min(1 << ramp);
        if self.slots.len() + self.stale >= target {
            return None;
        }
        let next = self.slots.back().map_or(end, |b| b.start + b.len());
        (next < size).then_some(next)
    }

    /// Queues the chunk `entry` at `start` (as named by [`Window::wants`]).
    /// False if it would exceed [`WINDOW_BYTES`] or there is no pool.
    pub fn submit(&mut self, blob: BlobId, entry: SegmentEntry, start: u64) -> bool {
        let len = u64::from(entry.len);
        let busy = !self.slots.is_empty() || self.stale > 0;
        if busy && self.slot_bytes + self.stale_bytes + len > WINDOW_BYTES {
            return false;
        }
        let Some(pool) = pool() else {
            return false;
        };
        let claim = Arc::new(AtomicBool::new(false));
        let job = Job {
            ctl: Arc::clone(&self.ctl),
            blob,
            entry,
            start,
            gen: self.gen,
            seq: self.next_seq,
            claim: Arc::clone(&claim),
            out: self.free.pop().unwrap_or_default(),
            reply: self.tx.clone(),
        };
        if pool.send(job).is_err() {
            return false;
        }
        self.next_seq += 1;
        self.slots.push_back(Slot {
            entry,
            start,
            state: SlotState::Pending,
            claim,
        });
        self.slot_bytes += len;
        true
    }

    /// Cancels everything and waits for this reader's running jobs: after
    /// this no pool thread holds the store for this reader.
    pub fn close(&mut self) {
        self.cancel();
        self.ctl.close();
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.close();
    }
}
