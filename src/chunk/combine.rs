//! The commit lock, with commits combined: a thread that holds it runs the
//! commits queued by the others, one after another.
//!
//! Many threads committing small records at once used to form a convoy on
//! the commit lock: each holder was a thread just woken from its wait (cold
//! caches, an idle CPU to wake), and every hand-over cost one more sleep and
//! wake-up, serially. Now a committer queues its commit (a closure over the
//! [`CommitState`]) and tries the lock; the thread that gets it drains the
//! queue and runs every commit in it in queue order, each written as its
//! own RocksDB write batch exactly as if its owner held the lock (so each
//! sees the ones before it, and one that fails fails alone). With immediate
//! durability it then lets the lock go and waits for one WAL fsync covering
//! the whole round ([`group`](super::group)) before it tells the owners
//! their commits are done: an owner sleeps once and wakes once, to a commit
//! already durable, while the next round is already being written.
//!
//! Whoever lets the lock go (a combiner, an exclusive commit, a reader of
//! the counters) wakes the first queued committer to try it: a queued
//! commit is never left without somebody to run it.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::Result;

use super::commit::CommitState;

/// One commit, run with the commit lock held: writes the commit and returns
/// its group-commit ticket (`None`: nothing to wait for).
pub(super) type Job<'a> = Box<dyn FnOnce(&mut CommitState) -> Result<Option<u64>> + Send + 'a>;

/// What running a job gave: its result, or the payload of its panic (which
/// is raised again on the owner's thread).
type Outcome = std::thread::Result<Result<Option<u64>>>;

/// A queued commit and its owner's wait.
struct Slot {
    inner: Mutex<SlotInner>,
    wake: Condvar,
}

struct SlotInner {
    /// The commit, until a combiner takes it.
    job: Option<Job<'static>>,
    /// Set when the lock was let go while this commit was queued: the owner
    /// should try to take it.
    nudged: bool,
    /// Set once the job ran and its round is settled.
    done: Option<Outcome>,
}

impl Slot {
    fn finish(&self, outcome: Outcome) {
        self.inner.lock().done = Some(outcome);
        self.wake.notify_one();
    }
}

/// The commit lock and the queue of commits waiting for it.
pub(super) struct CommitLock {
    state: Mutex<CommitState>,
    queue: Mutex<VecDeque<Arc<Slot>>>,
}

/// The commit lock held. Letting it go wakes the first queued committer.
pub(super) struct CommitGuard<'a> {
    lock: &'a CommitLock,
    state: Option<MutexGuard<'a, CommitState>>,
}

impl Deref for CommitGuard<'_> {
    type Target = CommitState;
    fn deref(&self) -> &CommitState {
        self.state.as_ref().expect("held until dropped")
    }
}

impl DerefMut for CommitGuard<'_> {
    fn deref_mut(&mut self) -> &mut CommitState {
        self.state.as_mut().expect("held until dropped")
    }
}

impl Drop for CommitGuard<'_> {
    fn drop(&mut self) {
        // Released first, then the queue looked at: a committer that queued
        // after this look finds the lock free when it tries it.
        drop(self.state.take());
        if let Some(first) = self.lock.queue.lock().front() {
            first.inner.lock().nudged = true;
            first.wake.notify_one();
        }
    }
}

impl CommitLock {
    pub fn new(state: CommitState) -> CommitLock {
        CommitLock {
            state: Mutex::new(state),
            queue: Mutex::new(VecDeque::new()),
        }
    }

    /// Commits queued, not yet taken by a combiner.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.lock().len()
    }

    /// Takes the lock, waiting for it.
    pub fn lock(&self) -> CommitGuard<'_> {
        CommitGuard {
            lock: self,
            state: Some(self.state.lock()),
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<CommitGuard<'_>> {
        self.state.try_lock().map(|g| CommitGuard {
            lock: self,
            state: Some(g),
        })
    }

    /// Runs `job` with the lock held, on this thread or on the combiner's,
    /// and returns once it ran and, if this thread combined a round,
    /// `settle` was called with the round's last ticket (the WAL fsync that
    /// makes the round durable; its failure is the owners' to find when they
    /// wait for their tickets).
    pub fn run(&self, job: Job<'_>, settle: &dyn Fn(u64)) -> Result<Option<u64>> {
        // SAFETY: only the lifetime changes (same layout). The job borrows
        // from the caller's frame; it is run (or dropped) by a combiner
        // while the caller waits below, and this function returns only once
        // `done` is set, which happens after the job was taken and run.
        #[allow(unsafe_code)]
        let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(job) };
        let slot = Arc::new(Slot {
            inner: Mutex::new(SlotInner {
                job: Some(job),
                nudged: false,
                done: None,
            }),
            wake: Condvar::new(),
        });
        self.queue.lock().push_back(slot.clone());
        loop {
            if let Some(guard) = self.try_lock() {
                self.combine(guard, settle);
            }
            let mut inner = slot.inner.lock();
            while inner.done.is_none() && !inner.nudged {
                slot.wake.wait(&mut inner);
            }
            if let Some(outcome) = inner.done.take() {
                return match outcome {
                    Ok(result) => result,
                    Err(payload) => panic::resume_unwind(payload),
                };
            }
            inner.nudged = false;
        }
    }

    /// With the lock held: runs every queued commit, lets the lock go,
    /// settles the round and tells the owners.
    fn combine(&self, mut guard: CommitGuard<'_>, settle: &dyn Fn(u64)) {
        let round: Vec<Arc<Slot>> = self.queue.lock().drain(..).collect();
        let mut outcomes = Vec::with_capacity(round.len());
        let mut last = None;
        for slot in &round {
            let job = slot.inner.lock().job.take();
            let outcome: Outcome = match job {
                Some(job) => panic::catch_unwind(AssertUnwindSafe(|| job(&mut guard))),
                None => Ok(Ok(None)), // unreachable: a slot is drained once
            };
            if let Ok(Ok(Some(ticket))) = &outcome {
                last = Some(last.map_or(*ticket, |l: u64| l.max(*ticket)));
            }
            outcomes.push(outcome);
        }
        drop(guard);
        if let Some(ticket) = last {
            settle(ticket);
        }
        for (slot, outcome) in round.iter().zip(outcomes) {
            slot.finish(outcome);
        }
    }
}
