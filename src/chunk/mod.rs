//! The chunk layer: owns chunks end to end, between `pack`/`meta` below and
//! `blob` above.
//!
//! [`Chunks`] holds the pack writer and reader, the holds and pending
//! locations of uploads in flight ([`pending`]), the chunk index lookups and
//! the read path through delta chains ([`read`]), manifest-id reservation
//! ([`manifest`]), reference counts ([`refs`]) and the commit state. Every
//! metadata write of an open store goes through its one commit door
//! ([`commit`]): [`Chunks::commit`] for records that reference chunks (or
//! none), [`Chunks::commit_exclusive`] for the writers that rewrite or delete
//! index entries themselves (collection, compaction, reverse deltas), which
//! get a lock-held [`commit::Txn`] with exactly the operations they need.
//!
//! Its fields are private: layers above see methods only.

mod combine;
mod commit;
mod group;
mod manifest;
mod pending;
mod read;
pub(crate) mod refs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub(crate) use read::chain_root;

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::meta::records::StatsRecord;
use crate::meta::Meta;
use crate::pack::{pack_file_name, ChunkLoc, Lane, PackReader, PackWriter, RecordHeader};
use commit::CommitState;
use pending::Pending;

/// The chunk layer of one open store (see the module docs).
pub(crate) struct Chunks {
    /// The store's `packs/` directory.
    packs_dir: PathBuf,
    meta: Meta,
    writer: PackWriter,
    reader: PackReader,
    /// Whether a commit fsyncs the metadata WAL before returning
    /// (`Durability::Immediate`).
    sync_commits: bool,
    /// Chunks appended to a pack but not yet in the committed index, and
    /// the holds uploads in flight keep on chunks (see [`Pending`]).
    pending: Mutex<Pending>,
    /// The commit lock, through which concurrent commits are combined.
    commit: combine::CommitLock,
    /// Commits waiting for a WAL fsync, and the one in flight.
    group: group::GroupSync,
    next_manifest: AtomicU64,
    /// Manifest ids below this are reserved in `meta/manifest_ids`: no
    /// later open allocates them again (see [`Chunks::new_manifest`]).
    manifest_reserved: Mutex<u64>,
    /// Read-only store: the metadata generation ([`Meta::generation`]) the
    /// counters and pack lengths were last reloaded at.
    seen: AtomicU64,
}

impl Chunks {
    /// The chunk layer over an opened (and recovered) store: `pack_len` are
    /// the committed lengths of its packs. Reads the counters and the
    /// manifest ids handed out so far from `meta`.
    pub fn open(
        meta: Meta,
        packs_dir: &Path,
        writer: PackWriter,
        reader: PackReader,
        pack_len: HashMap<u32, u64>,
        sync_commits: bool,
    ) -> Result<Chunks> {
        let stats = crate::meta::tables::singletons::stats(&meta)?;
        let next_manifest = manifest::first_free(&meta)?;
        Ok(Chunks {
            packs_dir: packs_dir.to_path_buf(),
            meta,
            writer,
            reader,
            sync_commits,
            pending: Mutex::new(Pending::default()),
            commit: combine::CommitLock::new(CommitState::new(stats, pack_len)),
            group: group::GroupSync::default(),
            next_manifest: AtomicU64::new(next_manifest),
            manifest_reserved: Mutex::new(next_manifest),
            seen: AtomicU64::new(0),
        })
    }

    /// Refuses `what` on a read-only store ([`Error::ReadOnly`]): the one
    /// check every write path of the layers above meets before it does
    /// anything (the commit door, pack appends, uploads, collection).
    pub fn writable(&self, what: &'static str) -> Result<()> {
        if self.meta.is_read_only() {
            return Err(Error::ReadOnly { what });
        }
        Ok(())
    }

    /// Read-only store: catches up with the writer now (see
    /// `Meta::catch_up`) and reloads the counters and pack lengths.
    pub fn catch_up(&self) -> Result<()> {
        self.meta.catch_up()?;
        self.reload()
    }

    /// Read-only store: reloads the counters and the packs' committed
    /// lengths if the metadata caught up since they were last loaded.
    fn refresh(&self) -> Result<()> {
        if self.meta.is_read_only() && self.meta.generation() != self.seen.load(Ordering::Acquire) {
            self.reload()?;
        }
        Ok(())
    }

    /// Read-only store: the counters and the packs' committed lengths as the
    /// metadata has them now. Packs the writer deleted are forgotten (their
    /// handles closed); the others' lengths only grow.
    fn reload(&self) -> Result<()> {
        if !self.meta.is_read_only() {
            return Ok(());
        }
        let generation = self.meta.generation();
        let stats = crate::meta::tables::singletons::stats(&self.meta)?;
        let mut lens = HashMap::new();
        for kv in crate::meta::tables::packs::all(&self.meta) {
            let (id, rec) = kv?;
            lens.insert(id, rec.committed_len);
        }
        let mut c = self.commit.lock();
        for pack in c.pack_len.keys() {
            if !lens.contains_key(pack) {
                self.reader.forget(*pack);
            }
        }
        for (&pack, &len) in &lens {
            self.reader.committed(pack, len);
        }
        c.stats = stats;
        c.pack_len = lens;
        self.seen.store(generation, Ordering::Release);
        Ok(())
    }

    /// The metadata database, for reads (writes go through the commit door).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Makes every commit so far durable (pack data and the metadata WAL).
    pub fn sync(&self) -> Result<()> {
        if self.meta.is_read_only() {
            // Nothing was written through this handle.
            return Ok(());
        }
        self.writer.sync()?;
        self.meta.sync_wal()
    }

    /// The committed counters, the bytes of all packs and the number of packs.
    pub fn stats(&self) -> (StatsRecord, u64, u64) {
        if let Err(e) = self.refresh() {
            tracing::warn!(error = %e, "read-only store: reloading the counters failed");
        }
        let c = self.commit.lock();
        (c.stats, c.pack_len.values().sum(), c.pack_len.len() as u64)
    }

    /// The committed length of every pack, and the index entries this
    /// process committed into each (compaction's generation check, see
    /// [`commit::Txn::pack_busy`]).
    pub fn pack_sizes(&self) -> (HashMap<u32, u64>, HashMap<u32, u64>) {
        let c = self.commit.lock();
        (c.pack_len.clone(), c.indexed.clone())
    }

    /// The packs the writer may still append to.
    pub fn open_packs(&self) -> Vec<u32> {
        self.writer.open_packs()
    }

    /// Reads the stored record (not decoded, not verified) of chunk `id` at
    /// `loc` into `scratch`; returns its payload.
    pub fn read_record<'a>(
        &self,
        id: &ChunkId,
        loc: &ChunkLoc,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        self.refresh()?;
        self.reader.read(id, loc, scratch)
    }

    /// Appends a record on [`Lane::Old`] (a reverse delta's, a compaction's
    /// copy), not published anywhere: the caller commits its index entry
    /// through [`Chunks::commit_exclusive`] after [`Chunks::sync_packs`].
    pub fn append_old(&self, header: &RecordHeader, payload: &[u8]) -> Result<ChunkLoc> {
        self.writable("pack rewrite")?;
        self.writer.append(Lane::Old, header, payload)
    }

    /// Seals the open pack uploads append to (if it holds a record), so the
    /// next upload's records start a pack of their own. A reverse-delta put
    /// does this first: the records the next version's pass replaces then
    /// share no pack with the records that stay, and their packs die whole.
    pub fn roll_upload_pack(&self) -> Result<()> {
        self.writable("pack roll")?;
        self.writer.roll_lane(Lane::New)
    }

    /// Makes the pack data appended so far durable (before a commit that
    /// indexes it).
    pub fn sync_packs(&self) -> Result<()> {
        self.writable("pack sync")?;
        self.writer.sync()
    }

    /// Takes a hold on chunk `id` for an upload (before looking it up), and
    /// returns where it is if another upload appended it and has not
    /// committed it yet.
    pub fn hold(&self, id: &ChunkId) -> Option<ChunkLoc> {
        let mut p = self.pending.lock();
        p.hold(id);
        p.locs.get(id).copied()
    }

    /// Releases one hold on each of `ids` (see [`Chunks::hold`]).
    pub fn release<'a>(&self, ids: impl IntoIterator<Item = &'a ChunkId>) {
        self.pending.lock().release(ids);
    }

    /// Takes a hold on `base` for a delta about to be encoded against it.
    pub fn begin_delta(&self, base: &ChunkId) {
        self.pending.lock().begin_delta(base);
    }

    /// Ends [`Chunks::begin_delta`]: the delta was published, or given up.
    pub fn end_delta(&self, base: &ChunkId) {
        self.pending.lock().end_delta(base);
    }

    /// Appends chunk `id`'s new record on [`Lane::New`] and publishes its
    /// location as pending (stored against `base` if that is `Some`), while
    /// the pack writer's lock is held, so compaction never sees a sealed
    /// pack with a record still unpublished. If another upload published
    /// the same chunk first, its location is returned and ours is dead
    /// bytes that compaction reclaims. A delta encoding begun with
    /// [`Chunks::begin_delta`] on `*delta_base` ends with the publication
    /// (`*delta_base` is then taken).
    pub fn append_pending(
        &self,
        id: &ChunkId,
        header: &RecordHeader,
        payload: &[u8],
        base: Option<ChunkId>,
        delta_base: &mut Option<ChunkId>,
    ) -> Result<ChunkLoc> {
        self.writable("blob upload")?;
        self.writer.append_with(Lane::New, header, payload, |loc| {
            let mut p = self.pending.lock();
            let loc = *p.locs.entry(*id).or_insert(ChunkLoc { base, ..loc });
            if let Some(b) = delta_base.take() {
                p.end_delta(&b);
            }
            loc
        })
    }

    /// Refuses every later commit, with `why`: the pack writer may be half
    /// way through a record. The first reason given is kept.
    pub fn poison(&self, why: String) {
        let mut c = self.commit.lock();
        if c.poisoned.is_none() {
            c.poisoned = Some(why);
        }
    }

    /// Deletes the file of `pack`, whose record a committed
    /// [`commit::Txn::drop_pack`] removed. The unlink cannot be undone: that commit
    /// and every one before it must be on disk first, whatever the
    /// durability mode, or a power cut could bring back an index naming the
    /// deleted pack (with immediate durability the commit synced the WAL
    /// already). A crash before the unlink leaves a pack without a record,
    /// which the next open deletes.
    pub fn delete_pack(&self, pack: u32) -> Result<()> {
        self.writable("pack deletion")?;
        if !self.sync_commits {
            self.meta.sync_wal()?;
        }
        self.reader.forget(pack);
        let path = self.packs_dir.join(pack_file_name(pack));
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        crate::pack::sync_dir(&self.packs_dir)
    }

    /// Test-only: runs `f` at the start of each group-commit WAL fsync
    /// (a delay, or an error the fsync returns instead); `None` removes it.
    #[cfg(test)]
    pub fn set_fsync_fault(&self, f: Option<group::FsyncFault>) {
        *self.group.fault.lock() = f;
    }

    /// Test-only: WAL fsyncs group commit has completed.
    #[cfg(test)]
    pub fn wal_fsyncs(&self) -> u64 {
        self.group.fsyncs()
    }

    /// Test-only: holds the commit lock until the guard is dropped (commits
    /// queue behind it, then one of them combines them all).
    #[cfg(test)]
    pub fn hold_commit_lock(&self) -> impl Drop + '_ {
        self.commit.lock()
    }

    /// Test-only: commits queued for the commit lock.
    #[cfg(test)]
    pub fn queued_commits(&self) -> usize {
        self.commit.queued()
    }

    /// Test-only: whether the commit lock is free right now.
    #[cfg(test)]
    pub fn commit_lock_free(&self) -> bool {
        self.commit.try_lock().is_some()
    }

    /// Test-only: the pack files the reader keeps open.
    #[cfg(test)]
    pub fn cached_packs(&self) -> Vec<u32> {
        self.reader.cached()
    }

    /// Test-only: chunks held, chunks pending, delta encodings in flight.
    #[cfg(test)]
    pub fn pending_counts(&self) -> (usize, usize, usize) {
        let p = self.pending.lock();
        (p.holds.len(), p.locs.len(), p.deltas_encoding)
    }
}
