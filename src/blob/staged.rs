//! Staged blobs: content whose bytes are written (and whose large-file
//! segments may be committed) but which no record names yet, and the
//! commit-time steps that make one visible, give it up as a duplicate, or
//! hand its upload session to a version upload's group commit.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::blob::Core;
use crate::chunk::refs::put_segment;
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId};
use crate::meta::records::{now_ms, BlobRecord, SegmentEntry, StatsRecord, UploadRecord};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{blobs, gc_queue, uploads};
use crate::meta::{Batch, Meta};
use crate::pack::ChunkLoc;

/// A blob whose bytes are written (and whose large-file segments may be
/// committed) but which is not visible until a commit takes it. See
/// [`BlobWriter::stage`].
///
/// It belongs to the store handle that wrote it: only a commit of that
/// same open store takes it ([`Error::WrongStore`] otherwise).
#[must_use = "a staged blob is visible only once a commit takes it"]
pub struct StagedBlob {
    pub(super) store: Arc<Core>,
    pub(super) id: BlobId,
    pub(super) rec: BlobRecord,
    pub(super) last_segment: Option<(u64, Vec<SegmentEntry>)>,
    pub(crate) chunks: Vec<(ChunkId, ChunkLoc)>,
    /// The blob's first bytes (up to [`HEAD_LEN`](super::writer::HEAD_LEN)) until its format is
    /// detected; a version upload takes them then.
    pub(crate) head: Vec<u8>,
    /// The upload's manifest id (0 if it never allocated one), which its
    /// session record, if any, is keyed by.
    pub(super) session: u64,
    /// When the upload session was created, if it exists already.
    pub(super) session_ms: Option<u64>,
    /// The writer's label, for the session record.
    pub(super) label: Option<String>,
    /// Whether earlier segments of the manifest are committed (an upload
    /// session exists).
    pub(super) durable: bool,
    /// Set once a commit took this blob.
    pub(super) committed: AtomicBool,
}

/// A staged blob whose segments a group commit of a version upload wrote
/// (`crate::registry::version_upload`): its manifest is owned by its
/// upload session, which stays registered as open in this process (so no
/// collection expires it) until the version commit turns it into a blob
/// record, or the version upload gives it up.
/// (Its id is the key it is kept under.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupedBlob {
    rec: BlobRecord,
    /// The upload session that owns the manifest (0: none, for a blob
    /// without chunks).
    pub session: u64,
}

impl GroupedBlob {
    /// Adds to the version commit's batch (under the commit lock): the
    /// session of blob `id` gives way to its blob record, or, if the blob
    /// is stored already, the manifest becomes garbage. Each grouped blob
    /// is applied once: a group commit gave its duplicates up.
    pub(crate) fn apply(
        &self,
        id: &BlobId,
        meta: &Meta,
        stats: &mut StatsRecord,
        batch: &mut Batch,
    ) -> Result<()> {
        if self.session != 0 {
            uploads::delete(batch, self.session);
        }
        if blobs::exists(meta, id)? {
            if self.rec.manifest != 0 {
                gc_queue::mark_manifest(batch, self.rec.manifest);
            }
        } else {
            blobs::put(batch, id, &self.rec);
            stats.blobs += 1;
        }
        Ok(())
    }
}

/// Fails unless `owner` and `target` are the same open store: the same
/// handle's state (`Arc<Inner>`), not merely the same store id, which two
/// copies of one store directory share. Manifest ids, upload sessions and
/// pending chunk locations mean something only in the store that made them.
pub(crate) fn check_same_store(
    what: impl FnOnce() -> String,
    owner: &Arc<Core>,
    target: &Arc<Core>,
) -> Result<()> {
    if Arc::ptr_eq(owner, target) {
        return Ok(());
    }
    let describe = |s: &Arc<Core>| format!("store {} at {}", s.id(), s.path().display());
    Err(Error::WrongStore {
        what: what(),
        owner: describe(owner),
        target: describe(target),
    })
}

impl StagedBlob {
    /// The blob's id.
    pub fn id(&self) -> BlobId {
        self.id
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.rec.size
    }

    /// True for empty content.
    pub fn is_empty(&self) -> bool {
        self.rec.size == 0
    }

    /// Commits the blob on its own, with a hold on it, as
    /// [`crate::BlobWriter::finish`] does: it stays until
    /// [`crate::Store::release_blob`] drops the hold (and nothing else
    /// names it). For a server that staged a body to check it first.
    ///
    /// # Errors
    /// The commit's ([`Error::Poisoned`], I/O); nothing is visible then.
    pub fn commit(self) -> Result<BlobId> {
        let store = self.store.clone();
        store
            .chunks()
            .commit(&self.chunks, Batch::default(), |meta, stats, batch| {
                self.apply(meta, stats, batch, &mut HashSet::new(), |_| false)?;
                refs::change(batch, Count::Hold(self.id), 1);
                Ok(())
            })?;
        self.committed();
        Ok(self.id)
    }

    /// The store handle that wrote this blob.
    pub(crate) fn store(&self) -> &Arc<Core> {
        &self.store
    }

    /// Heap and inline bytes this staged blob keeps (for the version
    /// upload's memory bound).
    pub(crate) fn retained_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.head.capacity()
            + self.last_segment.as_ref().map_or(0, |(_, s)| {
                s.capacity() * std::mem::size_of::<SegmentEntry>()
            })
            + self.chunks.capacity() * std::mem::size_of::<(ChunkId, ChunkLoc)>()
    }

    /// Adds this blob's records to a commit batch (under the commit lock).
    /// `seen` holds the blob ids already added to this batch, so the same
    /// content staged twice is recorded once (`also_seen` says whether the
    /// batch has this id from elsewhere). The caller adds the reference
    /// (or hold) that keeps the blob, and calls [`StagedBlob::committed`]
    /// once the batch is written.
    pub(crate) fn apply(
        &self,
        meta: &Meta,
        stats: &mut StatsRecord,
        batch: &mut Batch,
        seen: &mut HashSet<BlobId>,
        also_seen: impl Fn(&BlobId) -> bool,
    ) -> Result<()> {
        if also_seen(&self.id) || !seen.insert(self.id) || blobs::exists(meta, &self.id)? {
            self.apply_duplicate(batch);
        } else {
            if self.durable {
                uploads::delete(batch, self.session);
            }
            if let Some((start, seg)) = &self.last_segment {
                put_segment(batch, self.session, *start, seg);
            }
            blobs::put(batch, &self.id, &self.rec);
            stats.blobs += 1;
        }
        Ok(())
    }

    /// Adds to a commit batch what gives this blob up in favour of the same
    /// content stored before (or earlier in the same commit): the segments
    /// already committed are released by the next collection; the last one
    /// is never written, so the chunks only it would have referenced
    /// (indexed by this commit) are candidates straight away. Call
    /// [`StagedBlob::committed`] once the batch is written.
    pub(crate) fn apply_duplicate(&self, batch: &mut Batch) {
        if self.durable {
            uploads::give_up(batch, self.session);
        }
        for (id, _) in &self.chunks {
            gc_queue::mark_chunk(batch, id);
        }
    }

    /// Adds to a group commit's batch this blob's last segment and its
    /// upload session record, complete (no blob record: see
    /// [`GroupedBlob`]). Once the batch is written, call
    /// [`StagedBlob::into_grouped`].
    pub(crate) fn apply_grouped(&self, batch: &mut Batch) {
        if let Some((start, seg)) = &self.last_segment {
            put_segment(batch, self.session, *start, seg);
        }
        if self.rec.chunks > 0 {
            let now = now_ms();
            let session = UploadRecord {
                created_ms: self.session_ms.unwrap_or(now),
                updated_ms: now,
                durable_bytes: self.rec.size,
                durable_chunks: self.rec.chunks,
            };
            uploads::put(batch, self.session, &session, self.label.as_deref());
        }
    }

    /// After the batch [`StagedBlob::apply_grouped`] wrote into was
    /// committed: what stays of this blob until the version commit. The
    /// holds on the last segment's chunks are released (the committed
    /// segment references them now); the session's registration as an open
    /// upload passes to the caller.
    pub(crate) fn into_grouped(mut self) -> GroupedBlob {
        self.committed.store(true, Ordering::Relaxed);
        let session = std::mem::take(&mut self.session);
        GroupedBlob {
            rec: self.rec,
            session: if session != 0 && (self.rec.chunks > 0 || self.durable) {
                session
            } else {
                // A session id never recorded: nothing to keep registered.
                self.store.active_uploads().lock().remove(&session);
                0
            },
        }
    }

    /// Records that the batch `apply` wrote into was committed.
    pub(crate) fn committed(&self) {
        self.committed.store(true, Ordering::Relaxed);
    }
}

/// Gives up upload sessions that a version upload registered as open:
/// their committed segments become garbage. A few thousand per commit.
/// Best effort: if a commit fails, those sessions expire later instead.
pub(crate) fn abandon_sessions(store: &Arc<Core>, sessions: &[u64]) {
    for group in sessions.chunks(4096) {
        let mut batch = Batch::default();
        for &m in group {
            uploads::give_up(&mut batch, m);
        }
        let _ = store.chunks().commit(&[], batch, |_, _, _| Ok(()));
        let mut open = store.active_uploads().lock();
        for m in group {
            open.remove(m);
        }
    }
}

impl Drop for StagedBlob {
    /// Releases the holds on the last segment's chunks; an uncommitted blob
    /// whose earlier segments are durable gives its upload session up.
    fn drop(&mut self) {
        let m = self.session;
        if let Some((_, seg)) = &self.last_segment {
            self.store.chunks().release(seg.iter().map(|e| &e.id));
        }
        if !self.committed.load(Ordering::Relaxed) && self.durable {
            abandon(&self.store, m);
        }
        self.store.active_uploads().lock().remove(&m);
    }
}

/// Gives up an upload session: its committed segments become garbage. Best
/// effort: if this fails the session expires later instead.
pub(super) fn abandon(store: &Arc<Core>, manifest: u64) {
    let mut batch = Batch::default();
    uploads::give_up(&mut batch, manifest);
    let _ = store.chunks().commit(&[], batch, |_, _, _| Ok(()));
}
