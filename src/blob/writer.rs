//! Streaming upload: `std::io::Write` in, a [`BlobId`] out of `finish`.
//!
//! The caller's thread hashes the whole stream (that hash is the blob id)
//! and finds content-defined cut points; chunks go to the store's worker
//! pool as ranges of shared 4 MiB input blocks. Results come back out of
//! order and are put back in order before they join the manifest. Every
//! 1024 chunks (about 64 MiB) a manifest segment is committed together with
//! the index entries of the new chunks it references, so neither the chunk
//! list nor the pending index entries grow with the file.
//!
//! Memory bound per writer: the input block being filled (4 MiB), at most
//! [`MAX_IN_FLIGHT`] chunks in the pool (each pinning at most one 4 MiB
//! block: ≤ 8 blocks in practice), one segment (≤ 40 KiB) and the reorder
//! buffer (≤ `MAX_IN_FLIGHT` entries). About 40 MiB worst case, 12 MiB
//! typical, whatever the file size.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::pipeline::{Done, Job};
use crate::chunking::Chunker;
use crate::error::{to_io, Error, Result};
use crate::gc::refs::put_segment;
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::records::{
    self, now_ms, BlobRecord, SegmentEntry, StatsRecord, UploadRecord, SEGMENT_MAX_ENTRIES,
};
use crate::meta::{keys, Batch, Cf, Meta};
use crate::pack::ChunkLoc;
use crate::store::Store;

/// Size of the input blocks chunks are cut from.
const BLOCK: usize = 4 << 20;
/// Chunks submitted to the pool and not yet returned, per writer.
pub const MAX_IN_FLIGHT: usize = 32;

/// A streaming blob upload. Write the content with [`std::io::Write`], then
/// call [`BlobWriter::finish`]. Dropping it without `finish` leaves no blob
/// visible (already-written chunks are unreferenced and collectable).
#[must_use = "a blob exists only once finish() returns its id"]
pub struct BlobWriter {
    store: Store,
    chunker: Chunker,
    hasher: blake3::Hasher,
    block: Vec<u8>,
    size: u64,
    next_seq: u64,
    next_emit: u64,
    reorder: BTreeMap<u64, Done>,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    manifest: u64,
    seg: Vec<SegmentEntry>,
    seg_start: u64,
    seg_new: Vec<(ChunkId, ChunkLoc)>,
    emitted: u64,
    chunks: u64,
    /// The first [`HEAD_LEN`] bytes, for format detection without a re-read.
    head: Vec<u8>,
    failed: Option<String>,
    /// When the upload session was first made durable, once it has been.
    session_ms: Option<u64>,
}

/// The id of an upload session: durable progress of a [`BlobWriter`] that
/// [`crate::Store::resume_upload`] continues after a crash or a
/// [`BlobWriter::suspend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadId(pub(crate) u64);

impl UploadId {
    /// The number behind the id (what the CLI prints).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for UploadId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(UploadId(n)),
            _ => Err(Error::invalid("upload id", s, "must be a positive integer")),
        }
    }
}

/// Bytes of a blob's start kept by the writer for format detection.
pub(crate) const HEAD_LEN: usize = crate::registry::detect::HEAD_LEN;

/// A blob whose bytes are written (and whose large-file segments may be
/// committed) but which is not visible until a commit takes it. See
/// [`BlobWriter::stage`].
#[must_use = "a staged blob is visible only once a commit takes it"]
pub struct StagedBlob {
    store: Store,
    id: BlobId,
    rec: BlobRecord,
    last_segment: Option<(u64, Vec<SegmentEntry>)>,
    pub(crate) chunks: Vec<(ChunkId, ChunkLoc)>,
    pub(crate) head: Vec<u8>,
    /// Whether earlier segments of the manifest are committed (an upload
    /// session exists).
    durable: bool,
    /// Set once a commit took this blob.
    committed: Cell<bool>,
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

    /// Adds this blob's records to a commit batch (under the commit lock).
    /// `seen` holds the blob ids already added to this batch, so the same
    /// content staged twice is recorded once. The caller adds the reference
    /// (or hold) that keeps the blob, and calls [`StagedBlob::committed`]
    /// once the batch is written.
    pub(crate) fn apply(
        &self,
        meta: &Meta,
        stats: &mut StatsRecord,
        batch: &mut Batch,
        seen: &mut HashSet<BlobId>,
    ) -> Result<()> {
        let m = self.rec.manifest;
        if self.durable {
            batch.delete(Cf::Uploads, keys::upload(m).to_vec());
        }
        if !seen.insert(self.id) || meta.get(Cf::Blobs, self.id.as_bytes())?.is_some() {
            // Same content stored before: our segments already committed are
            // released by the next collection; the last one is never written,
            // so the chunks only it would have referenced (indexed by this
            // commit) are candidates straight away.
            if self.durable {
                batch.put(Cf::Gc, keys::gc_manifest(m).to_vec(), Vec::new());
            }
            for (id, _) in &self.chunks {
                batch.put(Cf::Gc, keys::gc_chunk(id.as_bytes()).to_vec(), Vec::new());
            }
        } else {
            if let Some((start, seg)) = &self.last_segment {
                put_segment(batch, m, *start, seg);
            }
            batch.put(
                Cf::Blobs,
                self.id.as_bytes().to_vec(),
                records::encode_blob(&self.rec).to_vec(),
            );
            stats.blobs += 1;
        }
        Ok(())
    }

    /// Records that the batch `apply` wrote into was committed.
    pub(crate) fn committed(&self) {
        self.committed.set(true);
    }
}

impl Drop for StagedBlob {
    /// Releases the holds on the last segment's chunks; an uncommitted blob
    /// whose earlier segments are durable gives its upload session up.
    fn drop(&mut self) {
        let m = self.rec.manifest;
        if let Some((_, seg)) = &self.last_segment {
            self.store
                .inner
                .pending
                .lock()
                .release(seg.iter().map(|e| &e.id));
        }
        if !self.committed.get() && self.durable {
            abandon(&self.store, m);
        }
        self.store.inner.active_uploads.lock().remove(&m);
    }
}

/// Gives up an upload session: its committed segments become garbage. Best
/// effort: if this fails the session expires later instead.
fn abandon(store: &Store, manifest: u64) {
    let mut batch = Batch::default();
    batch.delete(Cf::Uploads, keys::upload(manifest).to_vec());
    batch.put(Cf::Gc, keys::gc_manifest(manifest).to_vec(), Vec::new());
    let _ = store.inner.commit(&[], batch, |_, _, _| Ok(()));
}

impl BlobWriter {
    pub(crate) fn new(store: Store) -> Self {
        let (tx, rx) = unbounded();
        let chunker = Chunker::new(store.inner.opts.cdc);
        BlobWriter {
            store,
            chunker,
            hasher: blake3::Hasher::new(),
            block: Vec::with_capacity(BLOCK),
            size: 0,
            next_seq: 0,
            next_emit: 0,
            reorder: BTreeMap::new(),
            tx,
            rx,
            manifest: 0,
            seg: Vec::with_capacity(SEGMENT_MAX_ENTRIES),
            seg_start: 0,
            seg_new: Vec::new(),
            emitted: 0,
            chunks: 0,
            head: Vec::new(),
            failed: None,
            session_ms: None,
        }
    }

    /// Continues the upload session `id` (see [`crate::Store::resume_upload`]).
    pub(crate) fn resume(store: Store, id: UploadId) -> Result<Self> {
        let m = id.0;
        if !store.inner.active_uploads.lock().insert(m) {
            return Err(Error::invalid(
                "upload id",
                m,
                "that upload is still open in this process",
            ));
        }
        let mut w = BlobWriter::new(store.clone());
        // From here on, dropping `w` deregisters (and, if it fails, abandons) it.
        w.manifest = m;
        let rec: UploadRecord = store
            .inner
            .meta
            .get(Cf::Uploads, &keys::upload(m))?
            .map(|b| records::decode_postcard("upload session", &b))
            .transpose()?
            .ok_or_else(|| Error::not_found("upload session", m))?;
        w.session_ms = Some(rec.created_ms);
        // Replay the durable prefix: its hash and first bytes, every chunk
        // verified, in bounded memory.
        let prefix = BlobRecord {
            size: rec.durable_bytes,
            chunks: rec.durable_chunks,
            manifest: m,
        };
        let mut r = super::BlobReader::new(store.clone(), BlobId(Hash32([0; 32])), prefix);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match io::Read::read(&mut r, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    w.manifest = 0;
                    store.inner.active_uploads.lock().remove(&m);
                    return Err(Error::corrupt(
                        format!("upload session {m}"),
                        format!("its durable prefix cannot be read back: {e}"),
                    ));
                }
            };
            if w.head.len() < HEAD_LEN {
                let take = (HEAD_LEN - w.head.len()).min(n);
                w.head.extend_from_slice(&buf[..take]);
            }
            w.hasher.update(&buf[..n]);
            w.size += n as u64;
        }
        if w.size != rec.durable_bytes {
            w.manifest = 0;
            store.inner.active_uploads.lock().remove(&m);
            return Err(Error::corrupt(
                format!("upload session {m}"),
                format!(
                    "records {} durable bytes but its segments hold {}",
                    rec.durable_bytes, w.size
                ),
            ));
        }
        w.emitted = w.size;
        w.seg_start = w.size;
        w.chunks = rec.durable_chunks;
        Ok(w)
    }

    /// The id of this upload's session, once some of it is durable (about
    /// every 64 MiB, and at [`BlobWriter::suspend`]).
    pub fn upload_id(&self) -> Option<UploadId> {
        self.session_ms.map(|_| UploadId(self.manifest))
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True if nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Stores the rest of the content and returns the blob id. When this
    /// returns `Ok`, the blob is durable: its chunks are fsynced in packs and
    /// its records committed with a synced WAL.
    ///
    /// The blob is *held*: it stays until [`crate::Store::release_blob`]
    /// drops the hold, whatever registry records refer to it. Content stored
    /// for a model version is better staged ([`BlobWriter::stage`]): then the
    /// version alone keeps it, and deleting the version frees it.
    ///
    /// # Errors
    /// Any I/O or metadata failure; nothing is visible then.
    pub fn finish(self) -> Result<BlobId> {
        let staged = self.stage()?;
        let store = staged.store.clone();
        store
            .inner
            .commit(&staged.chunks, Batch::default(), |meta, stats, batch| {
                staged.apply(meta, stats, batch, &mut HashSet::new())?;
                batch.count(keys::count(keys::refs::HOLD, staged.id.as_bytes()), 1);
                Ok(())
            })?;
        staged.committed();
        Ok(staged.id)
    }

    /// Writes the rest of the content like [`BlobWriter::finish`] but commits
    /// nothing: the blob becomes visible (and durable) with the commit that
    /// takes the returned [`StagedBlob`], e.g. [`crate::Model::add_version_staged`],
    /// so a version of many files costs one fsync pair instead of one per
    /// file. Dropping the staged blob leaves nothing visible.
    pub fn stage(mut self) -> Result<StagedBlob> {
        self.check()?;
        let r = self.stage_inner();
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn stage_inner(&mut self) -> Result<StagedBlob> {
        self.cut(true)?;
        while self.next_emit < self.next_seq {
            self.drain(true)?;
        }
        let manifest = std::mem::take(&mut self.manifest);
        Ok(StagedBlob {
            store: self.store.clone(),
            id: BlobId(Hash32(*self.hasher.finalize().as_bytes())),
            rec: BlobRecord {
                size: self.size,
                chunks: self.chunks,
                manifest,
            },
            // The staged blob takes over the holds on these entries.
            last_segment: (!self.seg.is_empty())
                .then(|| (self.seg_start, std::mem::take(&mut self.seg))),
            chunks: std::mem::take(&mut self.seg_new),
            head: std::mem::take(&mut self.head),
            durable: self.session_ms.is_some(),
            committed: Cell::new(false),
        })
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(Error::Poisoned(format!(
                "this upload failed earlier: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Cuts complete chunks off the current block and submits them.
    fn cut(&mut self, eof: bool) -> Result<()> {
        let mut ranges = Vec::new();
        let mut pos = 0;
        while let Some(n) = self.chunker.next_cut(&self.block[pos..], eof) {
            ranges.push(pos..pos + n);
            pos += n;
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let mut next = Vec::with_capacity(BLOCK);
        next.extend_from_slice(&self.block[pos..]);
        let block = Arc::new(std::mem::replace(&mut self.block, next));
        for range in ranges {
            while self.next_seq - self.next_emit >= MAX_IN_FLIGHT as u64 {
                self.drain(true)?;
            }
            if self.manifest == 0 {
                self.manifest = self.store.inner.new_manifest();
                self.store.inner.active_uploads.lock().insert(self.manifest);
            }
            self.store.inner.pool.submit(Job {
                inner: Arc::clone(&self.store.inner),
                block: Arc::clone(&block),
                range,
                seq: self.next_seq,
                reply: self.tx.clone(),
            });
            self.next_seq += 1;
        }
        Ok(())
    }

    /// Collects finished chunks (waiting for one if `block`) and appends
    /// those now in order to the manifest.
    fn drain(&mut self, block: bool) -> Result<()> {
        if block {
            let d = self
                .rx
                .recv()
                .map_err(|_| Error::Poisoned("ingest workers stopped".into()))?;
            self.reorder.insert(d.seq, d);
        }
        while let Ok(d) = self.rx.try_recv() {
            self.reorder.insert(d.seq, d);
        }
        while let Some(d) = self.reorder.remove(&self.next_emit) {
            self.next_emit += 1;
            let loc = match d.loc {
                Ok(loc) => loc,
                Err(e) => {
                    self.store.inner.pending.lock().release([&d.id]);
                    return Err(e);
                }
            };
            if let Some(loc) = loc {
                self.seg_new.push((d.id, loc));
            }
            self.seg.push(SegmentEntry {
                id: d.id,
                len: d.len,
            });
            self.emitted += d.len as u64;
            self.chunks += 1;
            if self.seg.len() == SEGMENT_MAX_ENTRIES {
                self.flush_segment()?;
            }
        }
        Ok(())
    }

    /// Commits the current segment, the index entries it needs and the
    /// upload session's progress; then releases the holds on its chunks
    /// (the committed references keep them from now on).
    fn flush_segment(&mut self) -> Result<()> {
        let mut batch = Batch::default();
        put_segment(&mut batch, self.manifest, self.seg_start, &self.seg);
        let created = self.put_session(&mut batch);
        let new = std::mem::take(&mut self.seg_new);
        self.store.inner.commit(&new, batch, |_, _, _| Ok(()))?;
        self.session_ms = Some(created);
        self.store
            .inner
            .pending
            .lock()
            .release(self.seg.iter().map(|e| &e.id));
        self.seg.clear();
        self.seg_start = self.emitted;
        Ok(())
    }

    /// Adds the session record (progress up to the emitted chunks) to
    /// `batch`; returns the session's creation time.
    fn put_session(&self, batch: &mut Batch) -> u64 {
        let now = now_ms();
        let session = UploadRecord {
            created_ms: self.session_ms.unwrap_or(now),
            updated_ms: now,
            durable_bytes: self.emitted,
            durable_chunks: self.chunks,
        };
        batch.put(
            Cf::Uploads,
            keys::upload(self.manifest).to_vec(),
            records::encode_postcard(&session),
        );
        session.created_ms
    }

    /// Makes what was written so far durable as far as the last complete
    /// chunk and closes the writer without finishing the blob. The returned
    /// session id continues it with [`crate::Store::resume_upload`] (here
    /// or after a restart), from byte [`BlobWriter::len`] of the resumed
    /// writer: bytes past the last chunk boundary are written again then.
    ///
    /// Sessions not resumed expire (see [`crate::GcOptions`]).
    pub fn suspend(mut self) -> Result<UploadId> {
        self.check()?;
        let r = self.suspend_inner();
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn suspend_inner(&mut self) -> Result<UploadId> {
        // Every complete chunk of the partial block too, not just full blocks.
        self.cut(false)?;
        while self.next_emit < self.next_seq {
            self.drain(true)?;
        }
        if self.manifest == 0 {
            self.manifest = self.store.inner.new_manifest();
            self.store.inner.active_uploads.lock().insert(self.manifest);
        }
        // An empty segment is not a valid record: record the session alone.
        if self.seg.is_empty() {
            let mut batch = Batch::default();
            let created = self.put_session(&mut batch);
            self.store.inner.commit(&[], batch, |_, _, _| Ok(()))?;
            self.session_ms = Some(created);
        } else {
            self.flush_segment()?;
        }
        let m = std::mem::take(&mut self.manifest);
        self.store.inner.active_uploads.lock().remove(&m);
        Ok(UploadId(m))
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        while !data.is_empty() {
            let room = BLOCK - self.block.len();
            let take = room.min(data.len());
            self.block.extend_from_slice(&data[..take]);
            self.hasher.update(&data[..take]);
            self.size += take as u64;
            data = &data[take..];
            if self.block.len() == BLOCK {
                self.cut(false)?;
                self.drain(false)?;
            }
        }
        Ok(())
    }
}

impl Drop for BlobWriter {
    /// Waits for this upload's chunks still in the worker pool (so that when
    /// the last handle on a store is dropped the store is closed, and its
    /// lock released, by then and not later on a worker thread), releases
    /// every hold the upload still has, and gives up its session if it had
    /// one and was neither staged nor suspended.
    fn drop(&mut self) {
        let mut received = self.next_emit + self.reorder.len() as u64;
        let mut late = Vec::new();
        while received < self.next_seq {
            match self.rx.recv() {
                Ok(d) => late.push(d.id),
                Err(_) => break,
            }
            received += 1;
        }
        self.store.inner.pending.lock().release(
            self.seg
                .iter()
                .map(|e| &e.id)
                .chain(self.reorder.values().map(|d| &d.id))
                .chain(late.iter()),
        );
        if self.manifest != 0 {
            if self.session_ms.is_some() {
                abandon(&self.store, self.manifest);
            }
            self.store
                .inner
                .active_uploads
                .lock()
                .remove(&self.manifest);
        }
    }
}

impl io::Write for BlobWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check().map_err(to_io)?;
        if let Err(e) = self.write_inner(data) {
            self.failed = Some(e.to_string());
            return Err(to_io(e));
        }
        Ok(data.len())
    }

    /// Data is made durable by [`BlobWriter::finish`]; `flush` only reports
    /// an earlier failure.
    fn flush(&mut self) -> io::Result<()> {
        self.check().map_err(to_io)
    }
}
