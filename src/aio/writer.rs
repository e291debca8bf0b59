//! [`AsyncBlobWriter`]: `AsyncWrite` into a new blob.
//!
//! Writes are gathered into pieces of [`PIECE`] bytes; each full piece goes
//! through a channel of [`WRITE_QUEUE`] pieces to the writer's worker
//! thread, which writes it into a blocking [`crate::BlobWriter`] (cutting,
//! hashing, and handing chunks to the store's compression pool). While the
//! channel is full `poll_write` returns `Pending`: a fast client waits for
//! the engine instead of filling memory.
//!
//! The worker stops at its first error and records it; the async side
//! returns it from the next write, flush, shutdown or `finish`, as an
//! `io::Error` wrapping the crate's [`Error`] (the first time: later calls
//! repeat its message). Dropping the writer without `finish` or `stage`
//! closes the channel: the worker drops its blob writer, which keeps
//! nothing.

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc::{self, error::SendError, OwnedPermit};
use tokio::sync::oneshot;

use super::{PIECE, WRITE_QUEUE};
use crate::error::{to_io, Error, Result};
use crate::{BlobId, StagedBlob, Store};

/// What the async side sends its worker.
enum Msg {
    Data(Vec<u8>),
    Finish(oneshot::Sender<Result<BlobId>>),
    Stage(oneshot::Sender<Result<StagedBlob>>),
}

/// The worker's error, as it was, until it is returned once; its kind and
/// message for every later call.
struct Failure {
    first: Option<io::Error>,
    kind: io::ErrorKind,
    msg: String,
}

type Slot = Arc<Mutex<Option<Failure>>>;

type Reserve =
    Pin<Box<dyn Future<Output = std::result::Result<OwnedPermit<Msg>, SendError<()>>> + Send>>;

/// What errors of the writer's own machinery name as their path.
const WHAT: &str = "<async blob writer>";

/// A streaming blob upload for async code: `tokio::io::AsyncWrite`, then
/// [`AsyncBlobWriter::finish`] (or [`AsyncBlobWriter::stage`]). The
/// engine's work runs on a worker thread of its own (see the
/// [module](crate::aio) documentation).
///
/// `poll_flush` and `poll_shutdown` hand every byte written so far to the
/// worker and report its error, if it has failed; neither stores anything:
/// a blob exists only once `finish` returns its id. Dropping the writer
/// without `finish` or `stage` keeps nothing.
#[must_use = "a blob exists only once finish() returns its id"]
pub struct AsyncBlobWriter {
    tx: mpsc::Sender<Msg>,
    /// A slot in the channel being waited for, for `buf`.
    reserve: Option<Reserve>,
    /// Bytes written and not yet sent (at most [`PIECE`]).
    buf: Vec<u8>,
    failure: Slot,
    len: u64,
}

impl AsyncBlobWriter {
    /// Starts an upload into `store`, with its worker thread.
    pub fn new(store: &Store) -> Self {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let failure: Slot = Arc::default();
        let store = store.clone();
        let slot = failure.clone();
        let spawned = std::thread::Builder::new()
            .name("mv-aio-write".into())
            .spawn(move || work(store, rx, slot));
        if let Err(e) = spawned {
            // The channel's receiver went with the closure: every send
            // fails, and reports this.
            record(&failure, to_io(Error::io("<async blob writer thread>", e)));
        }
        AsyncBlobWriter {
            tx,
            reserve: None,
            buf: Vec::new(),
            failure,
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores what was written and returns the blob's id, once it is
    /// durable (as [`crate::BlobWriter::finish`]).
    ///
    /// # Errors
    /// The worker's error if a write failed, else `finish`'s.
    pub async fn finish(self) -> Result<BlobId> {
        self.end(Msg::Finish).await
    }

    /// Stores what was written as a staged blob, visible only once
    /// committed (as [`crate::BlobWriter::stage`]).
    ///
    /// # Errors
    /// As [`AsyncBlobWriter::finish`].
    pub async fn stage(self) -> Result<StagedBlob> {
        self.end(Msg::Stage).await
    }

    async fn end<T>(mut self, msg: impl FnOnce(oneshot::Sender<Result<T>>) -> Msg) -> Result<T> {
        futures::future::poll_fn(|cx| Pin::new(&mut self).poll_flush(cx))
            .await
            .map_err(|e| Error::from_io(WHAT, e))?;
        let (reply, replied) = oneshot::channel();
        if self.tx.send(msg(reply)).await.is_err() {
            return Err(self.failure_err());
        }
        match replied.await {
            Ok(r) => r,
            // The worker failed on a piece queued before the end.
            Err(_) => Err(self.failure_err()),
        }
    }

    /// The worker's error as an `io::Error`, if it has failed.
    fn failure_io(&self) -> Option<io::Error> {
        let mut slot = self.failure.lock();
        let f = slot.as_mut()?;
        Some(f.first.take().unwrap_or_else(|| {
            io::Error::new(f.kind, format!("the upload failed earlier: {}", f.msg))
        }))
    }

    /// The worker's error, or why there is none (it stopped without one).
    fn failure_err(&self) -> Error {
        match self.failure_io() {
            Some(e) => Error::from_io(WHAT, e),
            None => Error::io(
                WHAT,
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the blob writer's worker thread stopped",
                ),
            ),
        }
    }

    /// Sends `buf` to the worker, waiting for room in the channel.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let reserve = self
            .reserve
            .get_or_insert_with(|| Box::pin(self.tx.clone().reserve_owned()));
        let permit = ready!(reserve.as_mut().poll(cx));
        self.reserve = None;
        match permit {
            Ok(permit) => {
                let piece = std::mem::take(&mut self.buf);
                permit.send(Msg::Data(piece));
                Poll::Ready(Ok(()))
            }
            Err(_) => Poll::Ready(Err(self.failure_io().unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the blob writer's worker thread stopped",
                )
            }))),
        }
    }
}

impl std::fmt::Debug for AsyncBlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncBlobWriter")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

fn record(slot: &Slot, e: io::Error) {
    *slot.lock() = Some(Failure {
        kind: e.kind(),
        msg: e.to_string(),
        first: Some(e),
    });
}

/// The worker: writes the pieces into a blob writer until the end message
/// (then finishes or stages it) or its first error (then records it and
/// drops the writer). A closed channel drops the writer: nothing is kept.
fn work(store: Store, mut rx: mpsc::Receiver<Msg>, slot: Slot) {
    let mut w = store.blob_writer();
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Data(piece) => {
                if let Err(e) = w.write_all(&piece) {
                    // Recorded before the channel closes (on return), so
                    // whoever finds it closed finds the error.
                    record(&slot, e);
                    return;
                }
            }
            Msg::Finish(reply) => {
                let _ = reply.send(w.finish());
                return;
            }
            Msg::Stage(reply) => {
                let _ = reply.send(w.stage());
                return;
            }
        }
    }
}

impl AsyncWrite for AsyncBlobWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.failure_io() {
            return Poll::Ready(Err(e));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.buf.len() >= PIECE {
            ready!(this.poll_send(cx))?;
        }
        if this.buf.capacity() == 0 {
            this.buf.reserve_exact(PIECE);
        }
        let n = data.len().min(PIECE - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        this.len += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.failure_io() {
            return Poll::Ready(Err(e));
        }
        if !this.buf.is_empty() {
            ready!(this.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
