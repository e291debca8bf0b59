//! Streaming download: `std::io::Read + Seek` over a stored blob.
//!
//! The reader holds one manifest segment (≤ 1024 entries) and one decoded
//! chunk. Seeking costs one RocksDB `seek_for_prev` to the segment that
//! covers the target offset; a ranged read fetches only the chunks it
//! touches. Every chunk is checked against its blake3 address before a byte
//! of it is returned.
//!
//! **Read-ahead.** Once [`SEQUENTIAL_LOADS`](super::prefetch::SEQUENTIAL_LOADS)
//! (2) chunk loads in a row each began where the previous chunk ended, the
//! reader keeps a window of the chunks that follow being fetched, decoded
//! and verified on a process-wide pool of threads ([`super::prefetch`]) and
//! takes them in order. The window starts at 2 chunks and doubles with each
//! further sequential load up to
//! [`WINDOW_CHUNKS`](super::prefetch::WINDOW_CHUNKS) (8) chunks or
//! [`WINDOW_BYTES`](super::prefetch::WINDOW_BYTES) (16 MiB) of raw data,
//! whichever is smaller; cancelled jobs count against it until they reply.
//! When the reader reaches a chunk no pool thread has started on (the pool
//! is busy), it reads that chunk itself rather than wait.
//!
//! Memory per reader is therefore bounded whatever the blob's size: the
//! window (at most 8 chunks and 16 MiB of chunk data), the current chunk and
//! its record buffer, and two spare buffers of at most 256 KiB. That is
//! about 1.5 MiB with the default 16/64/128 KiB chunking, and about 50 MiB
//! with the largest chunks a store accepts (16 MiB: one fetched ahead).
//!
//! Small random reads (ranged tensor reads through `Seek`) never start the
//! window and read on the caller's thread, as before; a seek out of the
//! window cancels it (its jobs that have not started are skipped, replies
//! from the others are dropped). A chunk fetched ahead goes through the same
//! code as a direct read ([`fetch`]), and its error (checksum mismatch,
//! missing or damaged chunk) is returned when the read reaches that chunk's
//! offset, never earlier, with the same variant and message. Dropping the
//! reader waits only for its jobs already running (one chunk per pool
//! thread at most).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::blob::Core;
use crate::error::{to_io, Error, Result};
use crate::id::BlobId;
use crate::meta::records::{BlobRecord, SegmentEntry};
use crate::meta::tables::manifests;

use super::prefetch::{Taken, Window};

/// A verified reader over one blob. Obtain one from [`Store::blob_reader`].
pub struct BlobReader {
    /// Chunks fetched ahead. Closed in `drop` before `store` is released,
    /// so the last store handle is never dropped on a pool thread.
    ahead: Window,
    store: Arc<Core>,
    id: BlobId,
    rec: BlobRecord,
    pos: u64,
    /// Current segment: entries and the offset each one starts at.
    seg: Vec<SegmentEntry>,
    seg_offsets: Vec<u64>,
    /// The decoded chunk at `chunk_start`, if any.
    chunk: Vec<u8>,
    chunk_start: u64,
    chunk_valid: bool,
    scratch: Vec<u8>,
    /// The `get` span every read of this blob runs in.
    span: tracing::Span,
}

impl BlobReader {
    pub(crate) fn new(store: Arc<Core>, id: BlobId, rec: BlobRecord) -> Self {
        let span = tracing::info_span!("get", blob = %id, size = rec.size);
        BlobReader {
            span,
            ahead: Window::new(&store),
            store,
            id,
            rec,
            pos: 0,
            seg: Vec::new(),
            seg_offsets: Vec::new(),
            chunk: Vec::new(),
            chunk_start: 0,
            chunk_valid: false,
            scratch: Vec::new(),
        }
    }

    /// The blob's id.
    pub fn id(&self) -> BlobId {
        self.id
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.rec.size
    }

    /// True for the empty blob.
    pub fn is_empty(&self) -> bool {
        self.rec.size == 0
    }

    fn object(&self) -> String {
        format!("blob {}", self.id)
    }

    /// Index into `seg` of the entry covering `pos`, loading the segment if needed.
    fn locate(&mut self, pos: u64) -> Result<usize> {
        if let Some(i) = self.in_segment(pos) {
            return Ok(i);
        }
        let seg = manifests::floor(self.store.chunks().meta(), self.rec.manifest, pos)?
            .ok_or_else(|| {
                Error::corrupt(
                    self.object(),
                    format!("no manifest segment covers byte offset {pos}"),
                )
            })?;
        let start = seg
            .start()
            .ok_or_else(|| Error::corrupt(self.object(), "bad manifest key"))?;
        let entries = seg.entries?;
        // The segment's offsets, checked as they are summed: every entry
        // must end within the blob (so no sum can overflow either).
        let mut offsets = Vec::with_capacity(entries.len());
        let mut off = start;
        for e in &entries {
            offsets.push(off);
            off = off
                .checked_add(u64::from(e.len))
                .filter(|&end| end <= self.rec.size)
                .ok_or_else(|| {
                    Error::corrupt(
                        self.object(),
                        format!(
                            "manifest segment at {start} runs past the blob's {} bytes (entry at {off} of {} bytes)",
                            self.rec.size, e.len
                        ),
                    )
                })?;
        }
        self.seg = entries;
        self.seg_offsets = offsets;
        self.in_segment(pos).ok_or_else(|| {
            Error::corrupt(
                self.object(),
                format!("manifest has a gap: segment at {start} ends at {off}, before {pos}"),
            )
        })
    }

    fn in_segment(&self, pos: u64) -> Option<usize> {
        let first = *self.seg_offsets.first()?;
        let last = self.seg_offsets.len() - 1;
        let end = self.seg_offsets[last] + self.seg[last].len as u64;
        if pos < first || pos >= end {
            return None;
        }
        Some(self.seg_offsets.partition_point(|&o| o <= pos) - 1)
    }

    /// Makes `chunk` hold the verified chunk covering `pos`: from the
    /// read-ahead window if it has it, else read on this thread. Then tops
    /// the window up if the reads so far are sequential.
    fn load(&mut self, pos: u64) -> Result<()> {
        if self.chunk_valid
            && pos >= self.chunk_start
            && pos < self.chunk_start + self.chunk.len() as u64
        {
            return Ok(());
        }
        self.chunk_valid = false;
        // The chunk to read on this thread, unless the window has it decoded.
        let here = match self.ahead.take(pos) {
            Taken::Ready(start, got) => {
                let old = std::mem::replace(&mut self.chunk, got?);
                self.ahead.recycle(old);
                self.chunk_start = start;
                None
            }
            Taken::Run(entry, start) => Some((entry, start)),
            Taken::Miss => {
                let i = self.locate(pos)?;
                Some((self.seg[i], self.seg_offsets[i]))
            }
        };
        if let Some((entry, start)) = here {
            fetch(
                &self.store,
                self.id,
                &entry,
                start,
                &mut self.scratch,
                &mut self.chunk,
            )?;
            self.chunk_start = start;
        }
        self.chunk_valid = true;
        let end = self.chunk_start + self.chunk.len() as u64;
        self.ahead.loaded(self.chunk_start, end);
        self.fill(end);
        Ok(())
    }

    /// Queues the chunks after `end` that the window asks for. A chunk that
    /// cannot be located is left alone: reading up to it reports the error.
    fn fill(&mut self, end: u64) {
        while let Some(next) = self.ahead.wants(end, self.rec.size) {
            let Ok(i) = self.locate(next) else { break };
            let (entry, start) = (self.seg[i], self.seg_offsets[i]);
            if start != next || !self.ahead.submit(self.id, entry, start) {
                break;
            }
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.rec.size || buf.is_empty() {
            return Ok(0);
        }
        self.load(self.pos)?;
        let at = (self.pos - self.chunk_start) as usize;
        let n = buf.len().min(self.chunk.len() - at);
        buf[..n].copy_from_slice(&self.chunk[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        self.ahead.close();
    }
}

/// Fetches, decodes and verifies the chunk `entry`, which starts at byte
/// `start` of `blob`, into `out`: the one read path for the caller's thread
/// and the read-ahead pool, so both fail with the same errors.
pub(super) fn fetch(
    inner: &Core,
    blob: BlobId,
    entry: &SegmentEntry,
    start: u64,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let object = move || format!("blob {blob}");
    inner
        .chunks()
        .read_chunk(&entry.id, &object, start, scratch, out)?;
    if out.len() != entry.len as usize {
        return Err(Error::corrupt(
            object(),
            format!(
                "chunk at {start} has {} bytes, manifest says {}",
                out.len(),
                entry.len
            ),
        ));
    }
    Ok(())
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let span = self.span.clone();
        let _in = span.enter();
        self.read_inner(buf).map_err(to_io)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.rec.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(t) => {
                let in_chunk = self.chunk_valid
                    && t >= self.chunk_start
                    && t < self.chunk_start + self.chunk.len() as u64;
                if !in_chunk && !self.ahead.covers(t) {
                    // Stop the pool working on chunks this reader will not use.
                    self.ahead.cancel();
                }
                self.pos = t;
                Ok(t)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing offset",
            )),
        }
    }
}
