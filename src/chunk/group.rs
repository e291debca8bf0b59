//! Group commit: with immediate durability, commits share WAL fsyncs.
//!
//! A commit writes its batch under the commit lock *without* syncing the
//! write-ahead log and takes a ticket (commits are numbered in the order
//! they were written). With the commit lock let go, it waits until a WAL
//! fsync that began after its write has completed: the first waiter that
//! finds no fsync running becomes the leader, notes the last ticket written
//! so far and fsyncs the WAL, which makes every commit up to that ticket
//! durable (the WAL is one append-only log); the commits written meanwhile
//! wait for the next fsync and share it. So N committers pay about one
//! fsync per round instead of N, while each call still returns only when
//! its own commit is on disk (`Durability::Immediate` keeps its meaning).
//!
//! A commit is visible to readers in this process from its write on, a
//! little before it is durable; anything that depends on it commits later
//! in the same log, so a power cut can take the dependent commit back only
//! together with it. A failed fsync fails every waiter whose commit it was
//! to cover, and every later commit: the store's write path is poisoned (the
//! WAL's state is unknown), as after any failed metadata write.
//!
//! A committer alone (no other commit between its start and its return)
//! has nobody to share with: it writes its batch with the WAL fsync
//! included (RocksDB's synced write, one call instead of a write and then
//! an fsync) and needs no ticket, so one thread commits as fast as without
//! group commit.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::meta::Meta;

/// Commits written and made durable, and the fsync in flight.
#[derive(Default)]
struct State {
    /// Tickets handed out: the last commit written.
    written: u64,
    /// Every commit up to this ticket is durable.
    synced: u64,
    /// A leader is fsyncing the WAL.
    syncing: bool,
    /// WAL fsyncs begun (the one in flight, if `syncing`).
    round: u64,
    /// The last ticket the fsync in flight covers.
    covering: u64,
    /// Why an fsync failed (then nothing is durable any more).
    failed: Option<String>,
    /// WAL fsyncs completed (for tests).
    fsyncs: u64,
}

/// A test's stand-in for the start of a WAL fsync.
#[cfg(test)]
pub(crate) type FsyncFault = Box<dyn Fn() -> Result<()> + Send + Sync>;

/// The group-commit coordinator of one store (see the module docs).
#[derive(Default)]
pub(super) struct GroupSync {
    state: Mutex<State>,
    /// Waiters for fsync number `n` sleep on `done[n % 2]`: when an fsync
    /// completes it wakes the commits it covered, and one waiter of the
    /// next fsync to lead it; the others sleep on until theirs is done.
    done: [Condvar; 2],
    /// Commits between their start and their return.
    active: AtomicUsize,
    /// Test seam: runs in place of each WAL fsync's start (a delay, or an
    /// error the fsync then returns).
    #[cfg(test)]
    pub(super) fault: Mutex<Option<FsyncFault>>,
}

/// A commit in progress (see [`GroupSync::enter`]).
pub(super) struct Active<'a>(&'a GroupSync);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl GroupSync {
    /// Counts a commit in progress until the guard is dropped.
    pub fn enter(&self) -> Active<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// Whether the calling commit is the only one in progress: then it
    /// syncs its own write ([`GroupSync::synced_inline`]).
    pub fn alone(&self) -> bool {
        #[cfg(test)]
        if self.fault.lock().is_some() {
            return false; // tests of the seam go through the group path
        }
        self.active.load(Ordering::Relaxed) == 1
    }

    /// Called with the commit lock held, after a write with the WAL fsync
    /// included succeeded: every commit written so far is durable.
    pub fn synced_inline(&self) {
        let mut s = self.state.lock();
        s.written += 1;
        s.synced = s.written;
        s.fsyncs += 1;
        drop(s);
        self.wake_all();
    }

    fn wake_all(&self) {
        for cv in &self.done {
            cv.notify_all();
        }
    }

    /// Fails once an fsync has failed.
    pub fn check(&self) -> Result<()> {
        match &self.state.lock().failed {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Called with the commit lock held, right after a commit's batch was
    /// written: the commit's ticket for [`GroupSync::wait`].
    pub fn written(&self) -> u64 {
        let mut s = self.state.lock();
        s.written += 1;
        s.written
    }

    /// Returns once the commit with `ticket` is durable: after an fsync of
    /// `meta`'s WAL that began after it was written, led by this call or
    /// by another waiter.
    pub fn wait(&self, meta: &Meta, ticket: u64) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            if s.synced >= ticket {
                return Ok(());
            }
            if let Some(why) = &s.failed {
                return Err(Error::Poisoned(why.clone()));
            }
            if s.syncing {
                // Covered by the fsync in flight, or else by the next one.
                let round = s.round + u64::from(ticket > s.covering);
                self.done[(round % 2) as usize].wait(&mut s);
                continue;
            }
            // The leader: this fsync covers every commit written so far.
            s.syncing = true;
            s.round += 1;
            s.covering = s.written;
            let (round, target) = (s.round, s.written);
            let r = parking_lot::MutexGuard::unlocked(&mut s, || self.fsync(meta));
            s.syncing = false;
            match r {
                Ok(()) => {
                    s.synced = s.synced.max(target);
                    s.fsyncs += 1;
                }
                Err(e) => {
                    s.failed = Some(format!("a write-ahead log fsync failed: {e}"));
                    self.wake_all();
                    return Err(e);
                }
            }
            // The commits this fsync covered, and one waiter of the next.
            self.done[(round % 2) as usize].notify_all();
            self.done[((round + 1) % 2) as usize].notify_one();
        }
    }

    fn fsync(&self, meta: &Meta) -> Result<()> {
        #[cfg(test)]
        if let Some(f) = &*self.fault.lock() {
            f()?;
        }
        meta.sync_wal()
    }

    /// WAL fsyncs completed by group commit so far.
    #[cfg(test)]
    pub fn fsyncs(&self) -> u64 {
        self.state.lock().fsyncs
    }
}
