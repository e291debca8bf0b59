//! Streaming upload: `std::io::Write` in, a [`BlobId`] out of `finish`.
//!
//! The caller's thread hashes the whole stream (that hash is the blob id)
//! and finds cut points with the weight-aware [`Cutter`] (tensor boundaries
//! of safetensors and GGUF files, content-defined cuts inside tensors and in
//! other streams); chunks go to the store's worker pool as ranges of shared
//! 4 MiB input blocks, each with the cutter's
//! [`PlaneHint`](crate::chunking::PlaneHint) for the codec. Results come
//! back out of order and are put back in order before they join the
//! manifest. Every 1024 chunks (about 64 MiB) a manifest segment is
//! committed together with the index entries of the new chunks it
//! references, so neither the chunk list nor the pending index entries grow
//! with the file.
//!
//! Cuts are made on full blocks only (and at the end or a suspend), and the
//! cutter decides from the bytes alone, so they do not depend on how the
//! caller split its writes. A resumed upload shows the cutter the stream's
//! first bytes again before cutting, so it continues with the cuts (and
//! hints) of an uninterrupted upload.
//!
//! The caller's thread runs up to [`MAX_IN_FLIGHT_BYTES`] of input (and at
//! most [`MAX_IN_FLIGHT`] chunks) ahead of the oldest chunk not yet back, so
//! the workers always have queued work while it reads, hashes and cuts the
//! next block: with less than a block of run-ahead they went idle at every
//! block and ingest used little more than one core of two.
//!
//! Memory bound per writer: the input block being filled (4 MiB), the chunks
//! in the pool (a contiguous span of at most [`MAX_IN_FLIGHT_BYTES`] plus a
//! chunk, so they pin at most 6 blocks: 24 MiB), one segment (≤ 40 KiB) and
//! the reorder buffer (≤ `MAX_IN_FLIGHT` entries). About 30 MiB worst case,
//! whatever the file size. (Blocks are larger only for a store
//! whose chunk maximum exceeds 4 MiB: a block always holds
//! [`Cutter::lookahead`] bytes, so a full block always yields a cut. A
//! resumed upload also keeps up to 4 MiB of the stream's start until the
//! cutter has seen it.)

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::base::DeltaBase;
use super::pipeline::{Done, Job, Reply};
use super::staged::{abandon, StagedBlob};
use crate::blob::Core;
use crate::chunk::refs::put_segment;
use crate::chunking::aware::DEFAULT_PROBE_WINDOW;
use crate::chunking::{Cut, Cutter};
use crate::error::{to_io, Error, Result};
use crate::formats::tensor::{probe, Probe};
use crate::id::{BlobId, ChunkId, Hash32};
use crate::meta::records::{now_ms, BlobRecord, SegmentEntry, UploadRecord, SEGMENT_MAX_ENTRIES};
use crate::meta::tables::uploads;
use crate::meta::Batch;
use crate::pack::ChunkLoc;

/// Size of the input blocks chunks are cut from (at least; see
/// [`BlobWriter::block_cap`]).
const BLOCK: usize = 4 << 20;
/// Chunks submitted to the pool and not yet returned, per writer.
pub const MAX_IN_FLIGHT: usize = 256;
/// Input bytes of the chunks submitted to the pool and not yet returned,
/// per writer (see the module docs).
pub const MAX_IN_FLIGHT_BYTES: u64 = 16 << 20;

/// A streaming blob upload. Write the content with [`std::io::Write`], then
/// call [`BlobWriter::finish`]. Dropping it without `finish` leaves no blob
/// visible (already-written chunks are unreferenced and collectable).
#[must_use = "a blob exists only once finish() returns its id"]
pub struct BlobWriter {
    /// The `put` span every write of this upload runs in.
    span: tracing::Span,
    store: Arc<Core>,
    cutter: Cutter,
    hasher: blake3::Hasher,
    /// Input bytes from stream offset `size - block.len()` on, not yet cut.
    block: Vec<u8>,
    /// Bytes a block is filled to before it is cut: [`BLOCK`], or the
    /// cutter's lookahead if larger, so a full block always yields a cut.
    block_cap: usize,
    /// After a resume whose durable prefix is shorter than the cutter's
    /// probe window: that prefix, until the cutter has seen the stream's
    /// first window bytes (see [`BlobWriter::show_start`]). Empty otherwise.
    probe_head: Vec<u8>,
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
    /// Set by [`BlobWriter::finish_input`]: the last chunks are cut.
    input_ended: bool,
    /// When the upload session was first made durable, once it has been.
    session_ms: Option<u64>,
    /// What the upload is for, kept in its session record (see
    /// [`BlobWriter::label`]).
    label: Option<String>,
    /// The previous version this upload is stored as a delta against.
    delta: Option<DeltaBase>,
    /// Whether chunks are encoded as deltas against `delta` (else it only
    /// guides the cuts: see [`BlobWriter::cut_like`]).
    delta_forward: bool,
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
pub(crate) const HEAD_LEN: usize = crate::formats::detect::HEAD_LEN;

impl BlobWriter {
    pub(crate) fn new(store: Arc<Core>) -> Self {
        let (tx, rx) = unbounded();
        let cutter = Cutter::new(store.opts().cdc);
        let block_cap = BLOCK.max(cutter.lookahead());
        BlobWriter {
            span: tracing::info_span!("put", blob = tracing::field::Empty),
            store,
            cutter,
            hasher: blake3::Hasher::new(),
            block: Vec::with_capacity(block_cap),
            block_cap,
            probe_head: Vec::new(),
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
            input_ended: false,
            session_ms: None,
            label: None,
            delta: None,
            delta_forward: false,
        }
    }

    /// Stores this upload's chunks as deltas against the matching chunks of
    /// `base`, the previous version of the same file (the last checkpoint of
    /// a training run, or the model a fine-tune started from), wherever that
    /// is smaller by the store's `delta_min_saving`. Only float tensors of a
    /// safetensors or GGUF file present in `base` with the same name, dtype
    /// and shape are matched (see [`crate::Options::max_delta_depth`] for the
    /// chain bound); everything else is stored as without a base. What the
    /// blob reads back is the same either way, and deleting `base` later is
    /// safe: chunks keep the chunks they are deltas of.
    ///
    /// Call before writing. A base that is empty, not a tensor container or
    /// unreadable is ignored. A resumed upload ([`crate::Store::resume_upload`])
    /// has no base.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `base` is not stored; [`Error::InvalidInput`]
    /// if bytes were written already.
    pub fn delta_base(mut self, base: &BlobId) -> Result<Self> {
        if self.size > 0 {
            return Err(Error::invalid(
                "delta base",
                base,
                "must be set before the first byte is written",
            ));
        }
        self.delta = DeltaBase::open(&self.store, base)?;
        self.delta_forward = true;
        Ok(self)
    }

    /// Cuts this upload like `base`, the previous version of the same file,
    /// without encoding anything against it: each chunk of a float tensor
    /// (or, in a file that is not a tensor container, each byte range) that
    /// changed lines up with one chunk of `base`. This is the first half of
    /// a reverse delta: once this blob is stored, [`crate::Store::reverse_delta`]
    /// re-encodes `base`'s chunks against it, so the newest version reads
    /// without a base. Same rules as [`BlobWriter::delta_base`].
    ///
    /// # Errors
    /// As [`BlobWriter::delta_base`].
    pub fn cut_like(self, base: &BlobId) -> Result<Self> {
        let mut w = self.delta_base(base)?;
        w.delta_forward = false;
        Ok(w)
    }

    /// Continues the upload session `id` (see [`crate::Store::resume_upload`]).
    pub(crate) fn resume(store: Arc<Core>, id: UploadId) -> Result<Self> {
        let m = id.0;
        if !store.active_uploads().lock().insert(m) {
            return Err(Error::invalid(
                "upload id",
                m,
                "that upload is still open in this process",
            ));
        }
        let mut w = BlobWriter::new(store.clone());
        // From here on, dropping `w` deregisters (and, if it fails, abandons) it.
        w.manifest = m;
        let (rec, label, mut r) = session_prefix(&store, m)?;
        w.session_ms = Some(rec.created_ms);
        w.label = label;
        // Replay the durable prefix: its hash and first bytes, every chunk
        // verified, in bounded memory. The stream's first probe window is
        // kept for the cutter (see `show_start`).
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match io::Read::read(&mut r, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    w.manifest = 0;
                    store.active_uploads().lock().remove(&m);
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
            if w.probe_head.len() < DEFAULT_PROBE_WINDOW {
                let take = (DEFAULT_PROBE_WINDOW - w.probe_head.len()).min(n);
                if w.probe_head.capacity() == 0 {
                    w.probe_head.reserve_exact(DEFAULT_PROBE_WINDOW);
                }
                w.probe_head.extend_from_slice(&buf[..take]);
            }
            w.hasher.update(&buf[..n]);
            w.size += n as u64;
        }
        drop(buf);
        if w.size != rec.durable_bytes {
            w.manifest = 0;
            store.active_uploads().lock().remove(&m);
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
        // With the whole probe window in the prefix the cutter sees it now;
        // otherwise at the first cut, once the window is complete.
        w.show_start(false);
        Ok(w)
    }

    /// A reader over the durable prefix of upload session `id` (see
    /// [`crate::Store::upload_prefix`]). Reads only: the session is left
    /// as it is.
    pub(crate) fn upload_prefix(store: &Arc<Core>, id: UploadId) -> Result<super::BlobReader> {
        Ok(session_prefix(store, id.0)?.2)
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
        let span = self.span.clone();
        let _in = span.enter();
        let staged = self.stage()?;
        let (size, chunks) = (staged.rec.size, staged.rec.chunks);
        let id = staged.commit()?;
        span.record("blob", tracing::field::display(id));
        tracing::info!(size, chunks, "stored");
        Ok(id)
    }

    /// Ends the input: cuts what was written into its last chunks and hands
    /// them to the workers, without waiting for them; a later write fails.
    /// [`BlobWriter::stage`] or [`BlobWriter::finish`] then only wait. A
    /// caller that stages a file on another thread while it writes the next
    /// calls this first, so that the files' last chunks (a small file's
    /// only ones) are compressed side by side instead of one file at a time.
    ///
    /// # Errors
    /// As [`BlobWriter::stage`]; the upload has failed then.
    pub fn finish_input(&mut self) -> Result<()> {
        self.check()?;
        let r = self.cut(true);
        match &r {
            Err(e) => self.failed = Some(e.to_string()),
            Ok(()) => self.input_ended = true,
        }
        r
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
        let session = std::mem::take(&mut self.manifest);
        Ok(StagedBlob {
            store: self.store.clone(),
            id: BlobId(Hash32(*self.hasher.finalize().as_bytes())),
            rec: BlobRecord {
                size: self.size,
                chunks: self.chunks,
                // Only a blob with chunks owns a manifest: an empty one (even
                // from a session that allocated an id) names none, so no id
                // without segments is ever referenced by a blob record (ids
                // are re-derived from the keys that exist at open).
                manifest: if self.chunks == 0 { 0 } else { session },
            },
            session,
            session_ms: self.session_ms,
            label: self.label.take(),
            // The staged blob takes over the holds on these entries. Its
            // vectors are cut to their length: a small file's last segment
            // would otherwise keep a whole segment's capacity (37 KiB).
            last_segment: (!self.seg.is_empty()).then(|| {
                let mut seg = std::mem::take(&mut self.seg);
                seg.shrink_to_fit();
                (self.seg_start, seg)
            }),
            chunks: {
                let mut c = std::mem::take(&mut self.seg_new);
                c.shrink_to_fit();
                c
            },
            head: {
                let mut h = std::mem::take(&mut self.head);
                h.shrink_to_fit();
                h
            },
            durable: self.session_ms.is_some(),
            committed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn check(&self) -> Result<()> {
        self.store.chunks().writable("blob upload")?;
        match &self.failed {
            Some(why) => Err(Error::Poisoned(format!(
                "this upload failed earlier: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// After a resume: lets the cutter decide the stream's layout from its
    /// first bytes, exactly as it did at offset 0 of the original upload
    /// (the first probe window, or the whole stream if shorter), so that it
    /// goes on with the same cuts and hints instead of falling back to plain
    /// content-defined cuts. Those bytes are the kept durable prefix
    /// followed by the block (which starts where the prefix ends, since
    /// nothing is cut before this succeeds). Returns false while fewer than
    /// the window's bytes are known and `eof` is not set: nothing may be cut
    /// yet then, as the original upload cut nothing before the window was
    /// complete either.
    fn show_start(&mut self, eof: bool) -> bool {
        if self.probe_head.is_empty() {
            return true;
        }
        debug_assert!(self.cutter.is_probing());
        let need = DEFAULT_PROBE_WINDOW.saturating_sub(self.probe_head.len());
        if self.block.len() < need && !eof {
            return false;
        }
        let take = need.min(self.block.len());
        self.probe_head.extend_from_slice(&self.block[..take]);
        // Only the layout decision matters; the cut is the prefix's first
        // chunk, already stored.
        let _ = self.cutter.next_cut(0, &self.probe_head, eof);
        self.probe_head = Vec::new();
        true
    }

    /// At a suspend before the cutter has seen its whole probe window:
    /// decides the layout from the stream's first bytes known so far (the
    /// kept prefix of a resumed upload, if any, then the block) when they
    /// already settle it, i.e. hold a whole container header or are no
    /// container. That is the verdict the probe of the complete window gives
    /// (with no file length, an answer other than "need more bytes" does not
    /// change as the prefix grows), so the complete chunks of this start can
    /// be made durable with the cuts of an uninterrupted upload. Otherwise
    /// nothing is cut: the resumed upload starts from byte 0.
    fn decide_early(&mut self) {
        if !self.cutter.is_probing()
            || self.probe_head.len() + self.block.len() >= DEFAULT_PROBE_WINDOW
        {
            return;
        }
        debug_assert_eq!(
            self.size - self.block.len() as u64,
            self.probe_head.len() as u64
        );
        let verdict = if self.probe_head.is_empty() {
            probe(&self.block, None)
        } else {
            let n = self.probe_head.len();
            self.probe_head.extend_from_slice(&self.block);
            let v = probe(&self.probe_head, None);
            self.probe_head.truncate(n);
            v
        };
        match verdict {
            Probe::Layout(l) => self.cutter.set_layout(&l),
            Probe::NotContainer => self.cutter.set_plain(),
            Probe::NeedBytes(_) => return,
        }
        self.probe_head = Vec::new();
    }

    /// Cuts complete chunks off the current block and submits them.
    fn cut(&mut self, eof: bool) -> Result<()> {
        if !self.show_start(eof) {
            return Ok(());
        }
        // The stream offset of the block's first byte (a chunk boundary).
        let block_at = self.size - self.block.len() as u64;
        let mut cuts = Vec::new();
        let mut pos = 0;
        while let Some(c) = self.next_cut(block_at + pos as u64, pos, eof) {
            cuts.push((pos..pos + c.len, c.hint));
            pos += c.len;
        }
        if cuts.is_empty() {
            if self.block.len() >= self.block_cap {
                // Never happens (a block holds the cutter's lookahead), but
                // a writer that cannot cut a full block would spin forever.
                return Err(Error::Poisoned(format!(
                    "no chunk cut in a full {}-byte input block",
                    self.block.len()
                )));
            }
            return Ok(());
        }
        let mut next = Vec::with_capacity(self.block_cap);
        next.extend_from_slice(&self.block[pos..]);
        let block = Arc::new(std::mem::replace(&mut self.block, next));
        for (range, hint) in cuts {
            let forward = self.delta_forward;
            let base = self.delta.as_mut().filter(|_| forward).and_then(|d| {
                d.chunk_for(
                    self.cutter.layout(),
                    block_at + range.start as u64,
                    range.len(),
                )
            });
            let end = block_at + range.end as u64;
            while self.next_seq > self.next_emit
                && (self.next_seq - self.next_emit >= MAX_IN_FLIGHT as u64
                    || end - self.emitted > MAX_IN_FLIGHT_BYTES)
            {
                self.drain(true)?;
            }
            if self.manifest == 0 {
                self.manifest = self.store.chunks().new_manifest()?;
                self.store.active_uploads().lock().insert(self.manifest);
            }
            self.store.pool().submit(Job {
                inner: Arc::clone(&self.store),
                block: Arc::clone(&block),
                range,
                hint,
                base,
                reply: Reply::new(self.tx.clone(), self.next_seq),
            });
            self.next_seq += 1;
        }
        Ok(())
    }

    /// The next cut of the block from its byte `from` (stream offset `at`):
    /// the cutter's, except in a file that is not a tensor container
    /// uploaded with a delta base, which is cut where the base was cut
    /// while its chunks line up (see `blob::base`).
    fn next_cut(&mut self, at: u64, from: usize, eof: bool) -> Option<Cut> {
        // Once the stream is known not to be a container, a cut the base
        // dictates needs no content-defined cut point computed first.
        if !self.cutter.is_probing() && self.cutter.layout().is_none() {
            if let Some(len) = self.guided(at) {
                return self.take_guided(len, from, eof);
            }
        }
        let cut = self.cutter.next_cut(at, &self.block[from..], eof)?;
        if self.cutter.layout().is_some() {
            return Some(cut);
        }
        match self.guided(at) {
            Some(len) => self.take_guided(len, from, eof),
            None => Some(cut),
        }
    }

    /// The length of the base chunk starting at `at`, if the upload has a
    /// base with a chunk starting exactly there that a block can hold (a
    /// longer, hostile one is not followed).
    fn guided(&mut self, at: u64) -> Option<usize> {
        let len = self.delta.as_mut()?.guided_cut(at)?;
        (len > 0 && len <= self.cutter.lookahead()).then_some(len)
    }

    /// A cut of `len` bytes from the block's byte `from`: the rest of the
    /// stream if it ends sooner, `None` while more bytes are needed.
    fn take_guided(&self, len: usize, from: usize, eof: bool) -> Option<Cut> {
        let have = self.block.len() - from;
        let len = if have >= len {
            len
        } else if eof && have > 0 {
            have
        } else {
            return None;
        };
        Some(Cut {
            len,
            hint: crate::chunking::PlaneHint::Estimate,
        })
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
                    if d.held {
                        self.store.chunks().release([&d.id]);
                    }
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
        self.store.chunks().commit(&new, batch, |_, _, _| Ok(()))?;
        self.session_ms = Some(created);
        self.store.chunks().release(self.seg.iter().map(|e| &e.id));
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
        uploads::put(batch, self.manifest, &session, self.label.as_deref());
        session.created_ms
    }

    /// Names what this upload is for (e.g. the file and model it stores),
    /// kept in its upload session record so that [`crate::Store::uploads`]
    /// can say what an interrupted upload was (cut to 1 KiB; an empty
    /// label is none). A resumed upload keeps its label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
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
        self.decide_early();
        self.cut(false)?;
        while self.next_emit < self.next_seq {
            self.drain(true)?;
        }
        if self.manifest == 0 {
            self.manifest = self.store.chunks().new_manifest()?;
            self.store.active_uploads().lock().insert(self.manifest);
        }
        // An empty segment is not a valid record: record the session alone.
        if self.seg.is_empty() {
            let mut batch = Batch::default();
            let created = self.put_session(&mut batch);
            self.store.chunks().commit(&[], batch, |_, _, _| Ok(()))?;
            self.session_ms = Some(created);
        } else {
            self.flush_segment()?;
        }
        let m = std::mem::take(&mut self.manifest);
        self.store.active_uploads().lock().remove(&m);
        Ok(UploadId(m))
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        if self.input_ended && !data.is_empty() {
            return Err(Error::invalid(
                "write",
                format_args!("{} bytes", data.len()),
                "BlobWriter::finish_input ended this upload's input",
            ));
        }
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        while !data.is_empty() {
            let room = self.block_cap - self.block.len();
            let take = room.min(data.len());
            self.block.extend_from_slice(&data[..take]);
            self.hasher.update(&data[..take]);
            self.size += take as u64;
            data = &data[take..];
            if self.block.len() == self.block_cap {
                self.cut(false)?;
                self.drain(false)?;
            }
        }
        Ok(())
    }
}

/// The record of upload session `m`, its label, and a reader over its
/// durable prefix (every chunk verified as it is read; there is no blob id
/// to check the whole against yet).
fn session_prefix(
    store: &Arc<Core>,
    m: u64,
) -> Result<(UploadRecord, Option<String>, super::BlobReader)> {
    let (rec, label): (UploadRecord, _) = uploads::get(store.chunks().meta(), m)?
        .ok_or_else(|| Error::not_found("upload session", m))?;
    let prefix = BlobRecord {
        size: rec.durable_bytes,
        chunks: rec.durable_chunks,
        manifest: m,
    };
    let r = super::BlobReader::new(store.clone(), BlobId(Hash32([0; 32])), prefix);
    Ok((rec, label, r))
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
            // Every job answers once, also one whose worker panicked (see
            // `pipeline::Reply`), so this ends.
            match self.rx.recv() {
                Ok(d) => late.extend(d.held.then_some(d.id)),
                Err(_) => break,
            }
            received += 1;
        }
        self.store.chunks().release(
            self.seg
                .iter()
                .map(|e| &e.id)
                .chain(self.reorder.values().filter(|d| d.held).map(|d| &d.id))
                .chain(late.iter()),
        );
        if self.manifest != 0 {
            if self.session_ms.is_some() {
                abandon(&self.store, self.manifest);
            }
            self.store.active_uploads().lock().remove(&self.manifest);
        }
    }
}

impl io::Write for BlobWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let span = self.span.clone();
        let _in = span.enter();
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
