//! Stored blobs: the store's blob and tensor methods, the blob reader and
//! writer file objects (`NativeReader`, `NativeWriter`), and the copies
//! between local files and blobs that uploads and downloads share.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use modelvault::{BlobReader, BlobWriter};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::blob_id;
use crate::errors::{io_to_py, map, to_py, Error, R};
use crate::store::NativeStore;

/// A tensor as `Store.tensors` lists it: name, dtype, shape, start, end.
type TensorRow = (String, String, Vec<u64>, u64, u64);

#[pymethods]
impl NativeStore {
    fn open_blob(&self, py: Python<'_>, blob: &str) -> R<NativeReader> {
        let id = blob_id(blob)?;
        let r = map(py.allow_threads(|| self.store.blob_reader(&id)))?;
        Ok(NativeReader::new(r))
    }

    /// Writes a stored blob into the local file `dest` (created or
    /// truncated) and fsyncs it; returns its size. All in Rust with the GIL
    /// released: no Python copy of the bytes.
    fn copy_blob_to_file(&self, py: Python<'_>, blob: &str, dest: PathBuf) -> R<u64> {
        let id = blob_id(blob)?;
        py.allow_threads(|| copy_to_file(map(self.store.blob_reader(&id))?, &dest))
    }

    fn blob_writer(&self) -> NativeWriter {
        NativeWriter {
            w: Mutex::new(Some(self.store.blob_writer())),
        }
    }

    fn blob_size(&self, py: Python<'_>, blob: &str) -> R<Option<u64>> {
        let id = blob_id(blob)?;
        Ok(map(py.allow_threads(|| self.store.blob_info(&id)))?.map(|i| i.size))
    }

    /// The tensor names, dtypes, shapes and byte ranges of a stored
    /// safetensors or GGUF file; `None` for any other content.
    fn tensors(&self, py: Python<'_>, blob: &str) -> R<Option<Vec<TensorRow>>> {
        let id = blob_id(blob)?;
        let layout = map(py.allow_threads(|| self.store.tensor_layout(&id)))?;
        Ok(layout.map(|l| {
            l.tensors
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        dtype(t.dtype),
                        t.shape.clone(),
                        t.start,
                        t.end,
                    )
                })
                .collect()
        }))
    }

    /// One tensor's bytes, read and verified without reading the rest of
    /// the file: (dtype, shape, bytes).
    fn read_tensor(
        &self,
        py: Python<'_>,
        blob: &str,
        name: &str,
    ) -> R<(String, Vec<u64>, Py<PyBytes>)> {
        let id = blob_id(blob)?;
        let (span, data) = py.allow_threads(|| -> R<_> {
            let (span, mut r) = map(self.store.tensor_reader(&id, name))?;
            let mut buf = Vec::with_capacity((span.end - span.start) as usize);
            r.read_to_end(&mut buf)
                .map_err(|e| io_to_py(&format!("tensor {name}"), e))?;
            Ok((span, buf))
        })?;
        Ok((
            dtype(span.dtype),
            span.shape,
            PyBytes::new(py, &data).unbind(),
        ))
    }
}

/// A tensor dtype as Python sees it: its name in lower case (`f32`, `bf16`).
fn dtype(d: modelvault::DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// A local file opened for reading, buffered (1 MiB) for uploading.
pub(crate) fn open_local(path: &Path) -> modelvault::Result<BufReader<File>> {
    let f = File::open(path).map_err(|e| modelvault::Error::io(path, e))?;
    Ok(BufReader::with_capacity(1 << 20, f))
}

/// Writes the whole local file `path` into the blob writer `w`.
pub(crate) fn copy_local_into(path: &Path, w: &mut BlobWriter) -> modelvault::Result<()> {
    io::copy(&mut open_local(path)?, w).map_err(|e| modelvault::Error::io(path, e))?;
    Ok(())
}

/// Writes everything `r` reads (a blob or an object) into the local file
/// `dest` (created or truncated) and fsyncs it; returns the size.
pub(crate) fn copy_to_file(mut r: impl Read, dest: &Path) -> R<u64> {
    let mut f = File::create(dest).map_err(|e| to_py(modelvault::Error::io(dest, e)))?;
    let n = io::copy(&mut r, &mut f).map_err(|e| io_to_py(&dest.to_string_lossy(), e))?;
    f.sync_all()
        .map_err(|e| to_py(modelvault::Error::io(dest, e)))?;
    Ok(n)
}

/// `m` locked; the GIL must not be held while waiting (another thread's
/// read or write may hold the lock without it). `what` names the object in
/// the error a panic while it was held leaves.
fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> R<MutexGuard<'a, T>> {
    m.lock()
        .map_err(|_| Error::new_err(format!("internal error: {what} poisoned by a panic")))
}

/// A stored blob as a positioned reader; `modelvault.BlobFile` (an
/// `io.RawIOBase`) wraps it.
#[pyclass(module = "modelvault._modelvault", frozen)]
pub(crate) struct NativeReader {
    /// The reader and the position as Python sees it (may be past the end,
    /// as a file's may; the reader itself then stays at the end).
    r: Mutex<(BlobReader, u64)>,
    len: u64,
}

impl NativeReader {
    pub(crate) fn new(r: BlobReader) -> Self {
        let len = r.len();
        NativeReader {
            r: Mutex::new((r, 0)),
            len,
        }
    }

    fn lock(&self) -> R<MutexGuard<'_, (BlobReader, u64)>> {
        lock(&self.r, "blob reader")
    }
}

#[pymethods]
impl NativeReader {
    #[getter]
    fn size(&self) -> u64 {
        self.len
    }

    /// Reads up to `n` bytes at the current position (fewer only at the
    /// end); the GIL is released while chunks are read and verified.
    fn read(&self, py: Python<'_>, n: usize) -> R<Py<PyBytes>> {
        let buf = py.allow_threads(|| -> R<Vec<u8>> {
            let mut g = self.lock()?;
            let (r, pos) = &mut *g;
            let want = n.min(self.len.saturating_sub(*pos) as usize);
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                match r.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_to_py("blob", e)),
                }
            }
            buf.truncate(got);
            *pos += got as u64;
            Ok(buf)
        })?;
        Ok(PyBytes::new(py, &buf).unbind())
    }

    /// Moves the position as `io.IOBase.seek` does (whence 0, 1 or 2);
    /// returns the new position. Past the end is allowed (reads return
    /// nothing there); before the start is a ValueError.
    #[pyo3(signature = (offset, whence = 0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> R<u64> {
        // Without the GIL: another thread's read may hold the reader.
        py.allow_threads(|| {
            let mut g = self.lock()?;
            let (r, pos) = &mut *g;
            let base: i128 = match whence {
                0 => 0,
                1 => *pos as i128,
                2 => self.len as i128,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "invalid whence ({whence}, should be 0, 1 or 2)"
                    )))
                }
            };
            let target = base + offset as i128;
            if target < 0 {
                return Err(PyValueError::new_err(format!(
                    "negative seek position {target}"
                )));
            }
            let target = u64::try_from(target)
                .map_err(|_| PyValueError::new_err("seek position out of range"))?;
            r.seek(SeekFrom::Start(target.min(self.len)))
                .map_err(|e| io_to_py("blob", e))?;
            *pos = target;
            Ok(target)
        })
    }

    fn tell(&self, py: Python<'_>) -> R<u64> {
        py.allow_threads(|| Ok(self.lock()?.1))
    }
}

/// A streaming upload; `modelvault.BlobWriterFile` wraps it.
#[pyclass(module = "modelvault._modelvault", frozen)]
pub(crate) struct NativeWriter {
    w: Mutex<Option<BlobWriter>>,
}

impl NativeWriter {
    fn lock(&self) -> R<MutexGuard<'_, Option<BlobWriter>>> {
        lock(&self.w, "blob writer")
    }
}

#[pymethods]
impl NativeWriter {
    fn write(&self, py: Python<'_>, data: Vec<u8>) -> R<usize> {
        py.allow_threads(|| {
            let mut g = self.lock()?;
            let w = g
                .as_mut()
                .ok_or_else(|| PyValueError::new_err("write to a finished blob writer"))?;
            w.write_all(&data).map_err(|e| io_to_py("blob upload", e))?;
            Ok(data.len())
        })
    }

    #[getter]
    fn size(&self, py: Python<'_>) -> R<u64> {
        py.allow_threads(|| Ok(self.lock()?.as_ref().map_or(0, |w| w.len())))
    }

    /// Stores what was written and returns the blob id (a hold is taken on
    /// the blob: `Store.release_blob` drops it).
    fn finish(&self, py: Python<'_>) -> R<String> {
        let id = py.allow_threads(|| {
            let w = self
                .lock()?
                .take()
                .ok_or_else(|| PyValueError::new_err("blob writer already finished"))?;
            map(w.finish())
        })?;
        Ok(id.to_string())
    }

    /// Drops the upload: nothing of it becomes visible.
    fn abort(&self, py: Python<'_>) -> R<()> {
        py.allow_threads(|| {
            self.lock()?.take();
            Ok(())
        })
    }
}
