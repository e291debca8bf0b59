//! Tensor-level access to stored safetensors and GGUF files: their layout,
//! and a ranged reader over one tensor that fetches only the chunks it spans.

use std::io::{Read, Seek, SeekFrom};

use super::BlobReader;
use crate::error::{Error, Result};
use crate::formats::tensor::{probe, Probe, TensorLayout, TensorSpan, MAX_HEADER_BYTES};
use crate::id::BlobId;
use crate::store::Store;

/// First read when looking for a tensor header.
const FIRST_READ: u64 = 64 << 10;

impl Store {
    /// The tensor layout of a stored safetensors or GGUF file, or `None` for
    /// any other content. Reads (and verifies) only the header.
    pub fn tensor_layout(&self, blob: &BlobId) -> Result<Option<TensorLayout>> {
        let mut r = self.blob_reader(blob)?;
        let len = r.len();
        let mut want = FIRST_READ.min(len);
        loop {
            let mut prefix = vec![0; want as usize];
            r.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io(format!("blob {blob}"), e))?;
            r.read_exact(&mut prefix)
                .map_err(|e| Error::io(format!("blob {blob}"), e))?;
            match probe(&prefix, Some(len)) {
                Probe::Layout(l) => return Ok(Some(l)),
                Probe::NotContainer => return Ok(None),
                Probe::NeedBytes(n) => {
                    let n = n as u64;
                    if n <= want || n > len || n > MAX_HEADER_BYTES as u64 + 8 {
                        return Ok(None);
                    }
                    want = n;
                }
            }
        }
    }

    /// One tensor of a stored safetensors or GGUF file, by name: its span
    /// and a reader over exactly its bytes (verified like every read).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the blob is not a tensor container or has no
    /// tensor of that name.
    pub fn tensor_reader(
        &self,
        blob: &BlobId,
        name: &str,
    ) -> Result<(TensorSpan, std::io::Take<BlobReader>)> {
        let layout = self
            .tensor_layout(blob)?
            .ok_or_else(|| Error::not_found("tensor container", format!("blob {blob}")))?;
        let span = layout
            .find(name)
            .cloned()
            .ok_or_else(|| Error::not_found("tensor", format!("{name} in blob {blob}")))?;
        let mut r = self.blob_reader(blob)?;
        r.seek(SeekFrom::Start(span.start))
            .map_err(|e| Error::io(format!("blob {blob}"), e))?;
        let len = span.end - span.start;
        Ok((span, r.take(len)))
    }
}
