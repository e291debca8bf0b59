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

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::pipeline::{Done, Job};
use crate::chunking::Chunker;
use crate::error::{to_io, Error, Result};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::records::{self, BlobRecord, SegmentEntry, StatsRecord, SEGMENT_MAX_ENTRIES};
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
    /// content staged twice is recorded once.
    pub(crate) fn apply(
        &self,
        meta: &Meta,
        stats: &mut StatsRecord,
        batch: &mut Batch,
        seen: &mut HashSet<BlobId>,
    ) -> Result<()> {
        let m = self.rec.manifest;
        if let Some((start, seg)) = &self.last_segment {
            batch.put(
                Cf::Manifests,
                keys::segment(m, *start).to_vec(),
                records::encode_segment(seg),
            );
        }
        if !seen.insert(self.id) || meta.get(Cf::Blobs, self.id.as_bytes())?.is_some() {
            // Same content stored before: drop our copy of the chunk list.
            if m != 0 {
                batch.delete_range(
                    Cf::Manifests,
                    keys::segment(m, 0).to_vec(),
                    keys::segment(m + 1, 0).to_vec(),
                );
            }
        } else {
            batch.put(
                Cf::Blobs,
                self.id.as_bytes().to_vec(),
                records::encode_blob(&self.rec).to_vec(),
            );
            stats.blobs += 1;
        }
        Ok(())
    }
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
        }
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
    /// # Errors
    /// Any I/O or metadata failure; nothing is visible then.
    pub fn finish(self) -> Result<BlobId> {
        let staged = self.stage()?;
        let store = staged.store.clone();
        store
            .inner
            .commit(&staged.chunks, Batch::default(), |meta, stats, batch| {
                staged.apply(meta, stats, batch, &mut HashSet::new())
            })?;
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
        Ok(StagedBlob {
            store: self.store.clone(),
            id: BlobId(Hash32(*self.hasher.finalize().as_bytes())),
            rec: BlobRecord {
                size: self.size,
                chunks: self.chunks,
                manifest: self.manifest,
            },
            last_segment: (!self.seg.is_empty())
                .then(|| (self.seg_start, std::mem::take(&mut self.seg))),
            chunks: std::mem::take(&mut self.seg_new),
            head: std::mem::take(&mut self.head),
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
            if let Some(loc) = d.loc? {
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

    /// Commits the current segment and the index entries it needs.
    fn flush_segment(&mut self) -> Result<()> {
        let mut batch = Batch::default();
        batch.put(
            Cf::Manifests,
            keys::segment(self.manifest, self.seg_start).to_vec(),
            records::encode_segment(&self.seg),
        );
        let new = std::mem::take(&mut self.seg_new);
        self.store.inner.commit(&new, batch, |_, _, _| Ok(()))?;
        self.seg.clear();
        self.seg_start = self.emitted;
        Ok(())
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
    /// Waits for this upload's chunks still in the worker pool, so that when
    /// the last handle on a store is dropped the store is closed (and its
    /// lock released) by then, not later on a worker thread.
    fn drop(&mut self) {
        let mut received = self.next_emit + self.reorder.len() as u64;
        while received < self.next_seq {
            if self.rx.recv().is_err() {
                break;
            }
            received += 1;
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
