//! The commit door: every metadata write of an open store goes through
//! here.
//!
//! Protocol (see docs/ARCHITECTURE.md): chunk records are appended to a
//! pack; before any index entry naming them is written, the pack is
//! fsynced; then, under the commit lock, one RocksDB write batch adds the
//! index entries, the packs' new committed lengths, the resolved reference
//! counts, the counters and whatever records the caller is committing; with
//! immediate durability the call then lets the lock go and waits for a WAL
//! fsync that began after its write, shared with the commits beside it
//! (`group.rs`). Only then does the call return. A metadata write or fsync
//! that fails poisons the store: every later commit is refused.
//!
//! Two forms, one write path ([`Chunks::write_locked`]):
//! * [`Chunks::commit`]: records that reference chunks uploads appended
//!   (pending), or none; the door indexes the pending chunks itself.
//! * [`Chunks::commit_exclusive`]: for collection, compaction and reverse
//!   deltas, which decide what to write from the holds of uploads in flight
//!   and the current index: their closure runs with the commit lock *and*
//!   the pending mutex held, through a [`Txn`], and what it gathered is
//!   committed before either is let go.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::meta::records::{PackRecord, StatsRecord};
use crate::meta::tables::refs::{self as counts, Count};
use crate::meta::tables::{chunks, packs, singletons};
use crate::meta::{Batch, Meta};
use crate::pack::{ChunkLoc, PACK_HEADER_LEN};

use super::combine::Job;
use super::pending::Pending;
use super::{refs, Chunks};

/// What the commit lock guards.
pub(super) struct CommitState {
    pub stats: StatsRecord,
    pub pack_len: HashMap<u32, u64>,
    pub poisoned: Option<String>,
    /// Index entries committed into each pack by this process: compaction
    /// checks that none appeared in a pack while it was copying it.
    pub indexed: HashMap<u32, u64>,
}

impl CommitState {
    pub fn new(stats: StatsRecord, pack_len: HashMap<u32, u64>) -> CommitState {
        CommitState {
            stats,
            pack_len,
            poisoned: None,
            indexed: HashMap::new(),
        }
    }

    /// Fails once a metadata write has failed: the store must be reopened.
    fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }
}

impl Chunks {
    /// Commits `batch`. `chunks` are the not-yet-indexed chunks that the
    /// records in `batch` reference (their pack data is synced first, and
    /// their index entries are added unless another upload indexed them
    /// already); `f` may add to the batch while the commit lock is held (it
    /// sees the committed metadata and the counters, and may update them).
    pub fn commit<T: Send>(
        &self,
        chunks: &[(ChunkId, ChunkLoc)],
        batch: Batch,
        f: impl FnOnce(&Meta, &mut StatsRecord, &mut Batch) -> Result<T> + Send,
    ) -> Result<T> {
        self.writable("commit")?;
        let _active = self.group.enter();
        if !chunks.is_empty() {
            // 1. Pack data durable before anything points at it.
            self.writer.sync()?;
        }
        let mut out = None;
        let job: Job<'_> = Box::new(|c: &mut CommitState| {
            let (value, ticket) = self.commit_locked(c, chunks, batch, f)?;
            out = Some(value);
            Ok(ticket)
        });
        // 2. Written under the commit lock, by this thread or by the one
        // combining the commits queued at the same time (`combine.rs`),
        // which also waits for the fsync that makes its round durable.
        let ticket = self.commit.run(job, &|last| {
            // A failure is every owner's to find in its own wait below.
            let _ = self.group.wait(&self.meta, last);
        })?;
        // 3. Durable: already, if a combiner settled the round.
        self.durable(ticket)?;
        Ok(out.expect("a job that returned Ok set its value"))
    }

    /// Step 2 of [`Chunks::commit`], with the commit lock held: indexes the
    /// pending chunks the commit names, runs `f` and writes the batch.
    /// Returns `f`'s value and the commit's ticket.
    fn commit_locked<T>(
        &self,
        c: &mut CommitState,
        chunks: &[(ChunkId, ChunkLoc)],
        mut batch: Batch,
        f: impl FnOnce(&Meta, &mut StatsRecord, &mut Batch) -> Result<T>,
    ) -> Result<(T, Option<u64>)> {
        c.check()?;
        self.group.check()?;
        let mut stats = c.stats;
        let mut pack_len: HashMap<u32, u64> = HashMap::new();
        let mut mine = HashSet::new();
        // Roots whose height this commit raises: their entry, new height.
        let mut roots: HashMap<ChunkId, ChunkLoc> = HashMap::new();
        {
            let pending = self.pending.lock();
            for (id, loc) in chunks {
                // Absent from `pending` means another upload committed it
                // already (removal happens under this lock, after its write).
                // Absent or already taken: a chunk can repeat within one batch.
                if pending.locs.get(id) != Some(loc) || mine.contains(id) {
                    continue;
                }
                mine.insert(*id);
                // An upload that looked the chunk up just before another one
                // committed it wrote a second copy: keep the indexed one. All
                // index writes happen under this lock, so the check is exact.
                if self.chunk_loc(id)?.is_none() {
                    chunks::put(&mut batch, id, loc);
                    // A delta keeps its base: one reference per delta entry.
                    if let Some(base) = &loc.base {
                        counts::change(&mut batch, Count::Chunk(*base), 1);
                        self.raise_root(base, &mut roots)?;
                    }
                    stats.unique_bytes += loc.raw_len as u64;
                    stats.chunks += 1;
                    let end = pack_len.entry(loc.pack).or_insert(0);
                    *end = (*end).max(loc.end());
                    *c.indexed.entry(loc.pack).or_insert(0) += 1;
                }
            }
        }
        for (root, loc) in &roots {
            chunks::put(&mut batch, root, loc);
        }
        let out = f(&self.meta, &mut stats, &mut batch)?;
        let ticket = self.write_locked(c, batch, stats, pack_len)?;
        let mut pending = self.pending.lock();
        for id in mine {
            pending.locs.remove(&id);
        }
        Ok((out, ticket))
    }

    /// The door for writers that rewrite or delete index entries
    /// themselves: runs `f` with the commit lock and the pending mutex held
    /// (so no upload can look a chunk up, publish one or commit in
    /// between), then commits what `f` gathered in the [`Txn`] before
    /// letting go of either. `f` returning `Ok(None)` gives the commit up:
    /// nothing is written. Records appended for it ([`Chunks::append_old`])
    /// must be synced ([`Chunks::sync_packs`]) before this is called.
    pub fn commit_exclusive<T>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        self.writable("commit")?;
        let _active = self.group.enter();
        let mut c = self.commit.lock();
        c.check()?;
        self.group.check()?;
        let pending = self.pending.lock();
        let stats = c.stats;
        let mut tx = Txn {
            chunks: self,
            state: &mut c,
            pending: &pending,
            pending_bases: OnceCell::new(),
            batch: Batch::default(),
            stats,
            ends: HashMap::new(),
            dropped: Vec::new(),
        };
        let Some(out) = f(&mut tx)? else {
            return Ok(None);
        };
        let Txn {
            mut batch,
            stats,
            ends,
            dropped,
            ..
        } = tx;
        // Records moved to the old lane: the newest pack it wrote resumes
        // that lane at the next open.
        if let Some(&pack) = ends.keys().max() {
            singletons::put_old_lane_pack(&mut batch, pack);
        }
        let ticket = self.write_locked(&mut c, batch, stats, ends)?;
        for pack in dropped {
            c.pack_len.remove(&pack);
        }
        // Written before the pending mutex is released; durable before
        // this returns (a caller may then delete the packs it dropped).
        drop((pending, c));
        self.durable(ticket)?;
        Ok(Some(out))
    }

    /// Records, in `roots` (the entries a commit will rewrite), that a new
    /// delta against `base` ends a chain at `base`'s root one longer than
    /// `base`'s depth. With the commit lock held, so the chain is current.
    fn raise_root(&self, base: &ChunkId, roots: &mut HashMap<ChunkId, ChunkLoc>) -> Result<()> {
        let (root, loc, depth) = self.chain_root(base)?.ok_or_else(|| {
            Error::corrupt(
                format!("chunk {base}"),
                "a delta base that is not in the chunk index",
            )
        })?;
        let entry = roots.entry(root).or_insert(loc);
        entry.height = entry.height.max(depth + 1);
        if roots[&root].height == loc.height {
            roots.remove(&root);
        }
        Ok(())
    }

    /// Step 2 of every commit, with the commit lock held: records the new
    /// committed ends of `pack_len`'s packs, resolves reference counts,
    /// writes the counters and writes the batch, without a WAL fsync. With
    /// immediate durability, returns the commit's group-commit ticket: the
    /// caller lets the locks go and then waits for it
    /// ([`Chunks::durable`]); a committer alone writes with the fsync
    /// included instead, and gets no ticket. A metadata write failure
    /// poisons the store.
    fn write_locked(
        &self,
        c: &mut CommitState,
        mut batch: Batch,
        mut stats: StatsRecord,
        mut pack_len: HashMap<u32, u64>,
    ) -> Result<Option<u64>> {
        for (pack, end) in pack_len.iter_mut() {
            let old = c
                .pack_len
                .get(pack)
                .copied()
                .unwrap_or(PACK_HEADER_LEN as u64);
            *end = (*end).max(old);
            packs::put(
                &mut batch,
                *pack,
                &PackRecord {
                    committed_len: *end,
                },
            );
        }
        refs::resolve(&self.meta, &mut batch, &mut stats)?;
        singletons::put_stats(&mut batch, &stats);
        // Readers must know the new lengths before they can see an index
        // entry that needs them (more than committed if the write fails:
        // the store is poisoned then, and the bytes are synced anyway).
        for (&pack, &end) in &pack_len {
            self.reader.committed(pack, end);
        }
        // A committer alone syncs its own write; others share fsyncs.
        let inline = self.sync_commits && self.group.alone();
        if let Err(e) = self.meta.commit(batch, inline) {
            c.poisoned = Some(e.to_string());
            return Err(e);
        }
        c.stats = stats;
        c.pack_len.extend(pack_len);
        if inline {
            self.group.synced_inline();
            return Ok(None);
        }
        Ok(self.sync_commits.then(|| self.group.written()))
    }

    /// Step 3: waits until the commit with `ticket` (from
    /// [`Chunks::write_locked`]) is durable, sharing the WAL fsync with the
    /// commits written beside it (see `group.rs`). Nothing to wait for with
    /// eventual durability (`None`).
    fn durable(&self, ticket: Option<u64>) -> Result<()> {
        match ticket {
            Some(t) => self.group.wait(&self.meta, t),
            None => Ok(()),
        }
    }
}

/// A commit in the making inside [`Chunks::commit_exclusive`], with the
/// commit lock and the pending mutex held: what the index and the holds say
/// now stays so until the commit is written.
pub(crate) struct Txn<'a> {
    chunks: &'a Chunks,
    state: &'a mut CommitState,
    pending: &'a Pending,
    /// Bases of the deltas appended by uploads in flight (computed once).
    pending_bases: OnceCell<HashSet<ChunkId>>,
    batch: Batch,
    stats: StatsRecord,
    /// New committed ends of the packs records were appended to.
    ends: HashMap<u32, u64>,
    /// Packs whose record this commit deletes.
    dropped: Vec<u32>,
}

impl Txn<'_> {
    /// The batch this commit writes.
    pub fn batch(&mut self) -> &mut Batch {
        &mut self.batch
    }

    /// The counters this commit writes (the committed ones to start with).
    pub fn stats(&mut self) -> &mut StatsRecord {
        &mut self.stats
    }

    /// Where a committed chunk lives (see [`Chunks::chunk_loc`]).
    pub fn chunk_loc(&self, id: &ChunkId) -> Result<Option<ChunkLoc>> {
        self.chunks.chunk_loc(id)
    }

    /// The committed count `c` (0 when absent).
    pub fn ref_count(&self, c: Count) -> Result<u64> {
        counts::get(&self.chunks.meta, c)
    }

    /// Whether an upload in flight holds `id`, or appended a delta against
    /// it that it will reference once committed.
    pub fn held(&self, id: &ChunkId) -> bool {
        self.pending.holds.contains_key(id)
            || self
                .pending_bases
                .get_or_init(|| self.pending.locs.values().filter_map(|l| l.base).collect())
                .contains(id)
    }

    /// Whether a delta that has not been committed yet exists or is being
    /// encoded: its chain was measured against the index as it was.
    pub fn deltas_in_flight(&self) -> bool {
        self.pending.deltas_in_flight()
    }

    /// Whether an upload has a pending record in `pack`, or this process
    /// committed index entries into it since `generation` (from
    /// [`Chunks::pack_sizes`]) was taken.
    pub fn pack_busy(&self, pack: u32, generation: &HashMap<u32, u64>) -> bool {
        self.pending.locs.values().any(|l| l.pack == pack)
            || self.state.indexed.get(&pack) != generation.get(&pack)
    }

    /// Writes `id`'s index entry.
    pub fn put_entry(&mut self, id: &ChunkId, loc: &ChunkLoc) {
        chunks::put(&mut self.batch, id, loc);
    }

    /// Notes that this commit indexes the record at `loc`, appended with
    /// [`Chunks::append_old`]: its pack's committed end moves past it.
    pub fn note_appended(&mut self, loc: &ChunkLoc) {
        let e = self.ends.entry(loc.pack).or_insert(0);
        *e = (*e).max(loc.end());
        *self.state.indexed.entry(loc.pack).or_insert(0) += 1;
    }

    /// Deletes `pack`'s record (its file goes after the commit, with
    /// [`Chunks::delete_pack`]); returns its committed length.
    pub fn drop_pack(&mut self, pack: u32) -> u64 {
        packs::delete(&mut self.batch, pack);
        self.dropped.push(pack);
        self.state.pack_len.get(&pack).copied().unwrap_or(0)
    }
}
