//! Tensor-level access to stored safetensors and GGUF files: their layout,
//! and a ranged reader over one tensor that fetches only the chunks it spans.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use super::BlobReader;
use crate::blob::Core;
use crate::error::{Error, Result};
use crate::formats::tensor::{probe, Probe, TensorLayout, TensorSpan, MAX_HEADER_BYTES};
use crate::id::BlobId;

/// First read when looking for a tensor header.
const FIRST_READ: u64 = 64 << 10;

impl Core {
    /// See [`crate::Store::tensor_layout`].
    pub(crate) fn tensor_layout(self: &Arc<Self>, blob: &BlobId) -> Result<Option<TensorLayout>> {
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

    /// See [`crate::Store::tensor_reader`].
    pub(crate) fn tensor_reader(
        self: &Arc<Self>,
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
