//! Streaming download: `std::io::Read + Seek` over a stored blob.
//!
//! The reader holds one manifest segment (≤ 1024 entries) and one decoded
//! chunk at a time. Seeking costs one RocksDB `seek_for_prev` to the segment
//! that covers the target offset; a ranged read fetches only the chunks it
//! touches. Every chunk is checked against its blake3 address before a byte
//! of it is returned.

use std::io::{self, Read, Seek, SeekFrom};

use crate::error::{to_io, Error, Result};
use crate::id::BlobId;
use crate::meta::records::{self, BlobRecord, SegmentEntry};
use crate::meta::{keys, Cf};
use crate::store::Store;

/// A verified reader over one blob. Obtain one from [`Store::blob_reader`].
pub struct BlobReader {
    store: Store,
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
}

impl BlobReader {
    pub(crate) fn new(store: Store, id: BlobId, rec: BlobRecord) -> Self {
        BlobReader {
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
        let m = self.rec.manifest;
        let prefix = m.to_be_bytes();
        let (k, v) = self
            .store
            .inner
            .meta
            .floor(Cf::Manifests, &prefix, &keys::segment(m, pos))?
            .ok_or_else(|| {
                Error::corrupt(
                    self.object(),
                    format!("no manifest segment covers byte offset {pos}"),
                )
            })?;
        let (_, start) = keys::parse_segment(&k)
            .ok_or_else(|| Error::corrupt(self.object(), "bad manifest key"))?;
        let entries = records::decode_segment(&v)?;
        let mut offsets = Vec::with_capacity(entries.len());
        let mut off = start;
        for e in &entries {
            offsets.push(off);
            off += e.len as u64;
        }
        if off > self.rec.size {
            return Err(Error::corrupt(
                self.object(),
                format!(
                    "manifest segment at {start} runs to {off}, past the blob's {} bytes",
                    self.rec.size
                ),
            ));
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

    /// Makes `chunk` hold the verified chunk covering `pos`.
    fn load(&mut self, pos: u64) -> Result<()> {
        if self.chunk_valid
            && pos >= self.chunk_start
            && pos < self.chunk_start + self.chunk.len() as u64
        {
            return Ok(());
        }
        let i = self.locate(pos)?;
        let (entry, start) = (self.seg[i], self.seg_offsets[i]);
        self.chunk_valid = false;
        let id = self.id;
        let object = move || format!("blob {id}");
        self.store.inner.read_chunk(
            &entry.id,
            &object,
            start,
            &mut self.scratch,
            &mut self.chunk,
        )?;
        if self.chunk.len() != entry.len as usize {
            return Err(Error::corrupt(
                self.object(),
                format!(
                    "chunk at {start} has {} bytes, manifest says {}",
                    self.chunk.len(),
                    entry.len
                ),
            ));
        }
        self.chunk_start = start;
        self.chunk_valid = true;
        Ok(())
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

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
