//! The base of a delta upload: which chunk of the previous version of a
//! file holds the same elements as a chunk being written.
//!
//! Two cases:
//!
//! * **Tensor containers** (safetensors, GGUF). A new checkpoint names its
//!   tensors like the previous one. For a chunk at offset `pos` of the new
//!   file, inside float tensor `t`, the base chunk is the chunk of the base
//!   blob that starts at the same offset *relative to `t`* in the base's copy
//!   of `t`, with the same length, when `t` has the same dtype, shape and
//!   size there. Float tensors are cut on a fixed grid from their start
//!   (`chunking::aware`), so in two versions of a file chunk `k` of a tensor
//!   covers the same elements and this match is exact. Other chunks (the
//!   header, a tensor new or reshaped in this version, a non-float tensor)
//!   have no base.
//! * **Any other file** (HDF5, TensorFlow.js shards, raw arrays: formats
//!   whose layout this build does not parse, but which a new version of the
//!   same model usually keeps at the same offsets). The upload is cut where
//!   the base was cut ([`DeltaBase::guided_cut`]), so each chunk covers the
//!   same byte range as one base chunk, which is its base. Past the base's
//!   end, or from a position that is not a base chunk start, cuts are
//!   content-defined again. An unchanged range gives the base's own chunk
//!   (deduplicated); a changed one a delta when that is smaller.
//!
//! The match only chooses what to try: a delta decodes to the chunk whatever
//! the base holds, and it is kept only when it is smaller.
//!
//! Memory: the base's tensor table (bounded by the probe window, like the
//! cutter's) and one manifest segment (at most 1024 entries) at a time.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use crate::blob::Core;
use crate::chunking::aware::DEFAULT_PROBE_WINDOW;
use crate::error::{Error, Result};
use crate::formats::tensor::{probe, Probe, TensorLayout};
use crate::id::{BlobId, ChunkId};
use crate::meta::records::SegmentEntry;
use crate::meta::tables::manifests;

pub(crate) struct DeltaBase {
    store: Arc<Core>,
    manifest: u64,
    size: u64,
    /// The base's tensor table when it is a container (else empty).
    layout: TensorLayout,
    by_name: HashMap<String, usize>,
    /// The cached segment: its entries and the offset each starts at.
    seg: Vec<SegmentEntry>,
    seg_offsets: Vec<u64>,
}

impl DeltaBase {
    /// The base `blob`, or `None` when it cannot serve as one (empty, or its
    /// first bytes unreadable: a damaged base must not stop new uploads).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if `blob` is not stored.
    pub fn open(store: &Arc<Core>, blob: &BlobId) -> Result<Option<Self>> {
        let rec = store
            .blob_record(blob)?
            .ok_or_else(|| Error::not_found("blob", blob))?;
        if rec.size == 0 || rec.manifest == 0 {
            return Ok(None);
        }
        // The cutter decides a layout from the first probe window without a
        // file length; with no file length, any answer but "need more bytes"
        // stays the same as the prefix grows, so read only what the probe
        // asks for (a few bytes for a file that is not a container), up to
        // that window.
        let mut reader = store.blob_reader(blob)?;
        let mut prefix = Vec::new();
        let mut want = 4096u64;
        let layout = loop {
            // Continues where the last read stopped: the prefix only grows.
            let more = want.min(DEFAULT_PROBE_WINDOW as u64) - prefix.len() as u64;
            let read = (&mut reader).take(more).read_to_end(&mut prefix);
            if let Err(e) = read {
                tracing::warn!(%blob, error = %e, "not using the blob as a delta base");
                return Ok(None);
            }
            match probe(&prefix, None) {
                Probe::Layout(l) => break l,
                Probe::NeedBytes(n)
                    if (prefix.len() as u64) < rec.size.min(DEFAULT_PROBE_WINDOW as u64) =>
                {
                    want = (n as u64).max(want * 2);
                }
                _ => {
                    break TensorLayout {
                        format: "none",
                        data_start: 0,
                        tensors: Vec::new(),
                    }
                }
            }
        };
        let size = rec.size;
        let by_name = layout
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Some(DeltaBase {
            store: store.clone(),
            manifest: rec.manifest,
            size,
            layout,
            by_name,
            seg: Vec::new(),
            seg_offsets: Vec::new(),
        }))
    }

    /// The base chunk for the chunk of `len` bytes at offset `pos` of a file
    /// whose layout is `mine` (`None`: not a container), if any (see the
    /// module documentation). A damaged or vanished base manifest just means
    /// no base.
    pub fn chunk_for(
        &mut self,
        mine: Option<&TensorLayout>,
        pos: u64,
        len: usize,
    ) -> Option<ChunkId> {
        let at = match mine {
            Some(mine) => {
                let t = mine.span_at(pos)?;
                t.dtype.plane_width()?;
                let b = &self.layout.tensors[*self.by_name.get(&t.name)?];
                if b.dtype != t.dtype || b.shape != t.shape || b.end - b.start != t.end - t.start {
                    return None;
                }
                b.start + (pos - t.start)
            }
            None => pos,
        };
        let i = self.entry_at(at)?;
        (self.seg_offsets[i] == at && self.seg[i].len as usize == len).then(|| self.seg[i].id)
    }

    /// The base's tensor table, when it is a tensor container.
    pub fn layout(&self) -> Option<&TensorLayout> {
        (!self.layout.tensors.is_empty()).then_some(&self.layout)
    }

    /// The chunk of the base that starts exactly at `pos`, and its length:
    /// walking from 0 by lengths visits every chunk of the base in order.
    pub fn chunk_at(&mut self, pos: u64) -> Option<(ChunkId, usize)> {
        let i = self.entry_at(pos)?;
        (self.seg_offsets[i] == pos).then(|| (self.seg[i].id, self.seg[i].len as usize))
    }

    /// For a file that is not a container: the length of the base chunk
    /// that starts exactly at `pos`, if one does, so that the upload cuts
    /// where the base was cut.
    pub fn guided_cut(&mut self, pos: u64) -> Option<usize> {
        let i = self.entry_at(pos)?;
        (self.seg_offsets[i] == pos).then(|| self.seg[i].len as usize)
    }

    /// Index in the cached segment of the entry covering `pos`, loading the
    /// segment that covers it if needed.
    fn entry_at(&mut self, pos: u64) -> Option<usize> {
        if pos >= self.size {
            return None;
        }
        if let Some(i) = self.cached(pos) {
            return Some(i);
        }
        let seg = manifests::floor(self.store.chunks().meta(), self.manifest, pos).ok()??;
        let start = seg.start()?;
        let entries = seg.entries.ok()?;
        let mut offsets = Vec::with_capacity(entries.len());
        let mut off = start;
        for e in &entries {
            offsets.push(off);
            off = off.checked_add(u64::from(e.len))?;
        }
        self.seg = entries;
        self.seg_offsets = offsets;
        self.cached(pos)
    }

    fn cached(&self, pos: u64) -> Option<usize> {
        let first = *self.seg_offsets.first()?;
        let last = self.seg.len() - 1;
        if pos < first || pos >= self.seg_offsets[last] + u64::from(self.seg[last].len) {
            return None;
        }
        Some(self.seg_offsets.partition_point(|&o| o <= pos) - 1)
    }
}
