//! [`AsyncBlobReader`]: a blob as `AsyncRead + AsyncSeek`, and as a
//! [`BlobStream`] of `Bytes`.
//!
//! One worker thread per reader holds the blocking [`BlobReader`] and
//! carries out orders: "read `from..end` into this channel". It reads the
//! range in pieces of [`PIECE`] bytes into a channel of [`READ_AHEAD`]
//! pieces, so it runs ahead of the async side by at most that much and
//! then waits (back-pressure). A seek away from what was read ahead drops
//! the channel: the worker's next send fails, it drops its order and takes
//! the next one (positioning its reader there). A read that fails
//! verification is sent as an error in place of the piece and ends the
//! order, so wrong bytes never reach the async side.

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use crossbeam_channel::{unbounded, Receiver, Sender, TryRecvError};
use futures::Stream;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::{PIECE, READ_AHEAD};
use crate::error::{to_io, Error, Result};
use crate::{BlobId, BlobReader, Store};

/// One piece of a blob, or the error that ended its order.
type Piece = io::Result<Bytes>;

/// An order to a reader's worker: read `from..end` into `tx`.
struct Order {
    from: u64,
    end: u64,
    tx: mpsc::Sender<Piece>,
}

/// A verified blob reader for async code: `tokio::io::AsyncRead +
/// AsyncSeek`, with the engine's reads on a worker thread of its own
/// (see the [module](crate::aio) documentation).
///
/// Sequential reads are served from up to [`READ_AHEAD`] pieces of
/// [`PIECE`] bytes read ahead; a seek out of the current piece discards
/// them. Seeking past the end is allowed (reads there return 0 bytes, as
/// with `std::io::Seek`).
pub struct AsyncBlobReader {
    id: BlobId,
    len: u64,
    /// The position the next read starts at.
    pos: u64,
    /// Orders to the worker. Dropping it (with the pieces' receiver) stops
    /// the worker once its current piece is read.
    orders: Sender<Order>,
    /// Why the worker could not be started, if it could not.
    dead: Option<String>,
    /// The pieces of the running order, if one runs.
    pieces: Option<mpsc::Receiver<Piece>>,
    /// Where the running order's next piece starts.
    next: u64,
    /// The piece being read from, starting at byte `piece_start`.
    piece: Bytes,
    piece_start: u64,
}

impl AsyncBlobReader {
    /// Opens blob `id` of `store` for reading. The blob's record is looked
    /// up on the reader's worker thread, never on the runtime's.
    ///
    /// # Errors
    /// [`Error::NotFound`] if no such blob is stored; an I/O error if the
    /// worker thread cannot be started.
    pub fn open(store: &Store, id: BlobId) -> impl Future<Output = Result<Self>> + Send + 'static {
        let store = store.clone();
        async move {
            let (opened_tx, opened) = oneshot::channel();
            let (orders, rx) = unbounded();
            spawn(move || match store.blob_reader(&id) {
                Ok(r) => {
                    let len = r.len();
                    if opened_tx.send(Ok(len)).is_ok() {
                        work(r, rx);
                    }
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::io("<async blob reader thread>", e))?;
            let len = opened.await.map_err(|_| {
                Error::io(
                    "<async blob reader thread>",
                    io::Error::other("the worker stopped while opening the blob"),
                )
            })??;
            Ok(AsyncBlobReader::with(id, len, orders, None))
        }
    }

    /// An async reader over an open [`BlobReader`], continuing from its
    /// position. The worker thread starts here; if it cannot, every read
    /// returns that error.
    pub fn from_reader(mut reader: BlobReader) -> Self {
        let (id, len) = (reader.id(), reader.len());
        // A seek by 0 reads nothing and cannot fail.
        let pos = reader.stream_position().unwrap_or(0);
        let (orders, rx) = unbounded();
        let dead = spawn(move || work(reader, rx))
            .err()
            .map(|e| format!("cannot start the blob reader's worker thread: {e}"));
        let mut r = AsyncBlobReader::with(id, len, orders, dead);
        r.pos = pos;
        r.next = pos;
        r
    }

    fn with(id: BlobId, len: u64, orders: Sender<Order>, dead: Option<String>) -> Self {
        AsyncBlobReader {
            id,
            len,
            pos: 0,
            orders,
            dead,
            pieces: None,
            next: 0,
            piece: Bytes::new(),
            piece_start: 0,
        }
    }

    /// The blob's id.
    pub fn id(&self) -> BlobId {
        self.id
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for the empty blob.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Exactly the bytes `range` of the blob, in pieces of at most
    /// [`PIECE`] bytes, read ahead by at most [`READ_AHEAD`] pieces: a
    /// response body for hyper or axum. A read that fails verification
    /// ends the stream with that error (never wrong bytes), as does a range
    /// that is not within the blob (`start > end` or `end > len()`), with
    /// an `InvalidInput` error as its only item.
    pub fn into_stream(self, range: Range<u64>) -> BlobStream {
        let Range { start, end } = range;
        if start > end || end > self.len {
            return BlobStream::failed(to_io(Error::invalid(
                "byte range",
                format!("{start}..{end}"),
                format!("blob {} has {} bytes", self.id, self.len),
            )));
        }
        if let Some(why) = &self.dead {
            return BlobStream::failed(io::Error::other(why.clone()));
        }
        if start == end {
            return BlobStream {
                pieces: None,
                left: 0,
                failed: None,
            };
        }
        match order(&self.orders, start, end) {
            Ok(rx) => BlobStream {
                pieces: Some(rx),
                left: end - start,
                failed: None,
            },
            Err(e) => BlobStream::failed(e),
        }
    }

    /// Starts an order for `pos..len`, dropping any running one.
    fn start(&mut self) -> io::Result<()> {
        self.pieces = None;
        self.piece = Bytes::new();
        self.pieces = Some(order(&self.orders, self.pos, self.len)?);
        self.next = self.pos;
        Ok(())
    }
}

impl From<BlobReader> for AsyncBlobReader {
    fn from(reader: BlobReader) -> Self {
        AsyncBlobReader::from_reader(reader)
    }
}

impl std::fmt::Debug for AsyncBlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncBlobReader")
            .field("id", &self.id)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

/// Sends the order `from..end` to a worker; returns its pieces' receiver.
fn order(orders: &Sender<Order>, from: u64, end: u64) -> io::Result<mpsc::Receiver<Piece>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    orders
        .send(Order { from, end, tx })
        .map_err(|_| worker_stopped())?;
    Ok(rx)
}

fn worker_stopped() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the blob reader's worker thread stopped",
    )
}

fn spawn(f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name("mv-aio-read".into())
        .spawn(f)
        .map(drop)
}

/// The worker: carries out orders, the newest first, until the reader is
/// gone (no more orders and nobody receiving the current one's pieces).
fn work(mut reader: BlobReader, orders: Receiver<Order>) {
    let mut cur: Option<Order> = None;
    let mut more = true;
    loop {
        let got = match (&cur, more) {
            (None, _) => match orders.recv() {
                Ok(o) => Some(o),
                Err(_) => return,
            },
            (Some(_), true) => match orders.try_recv() {
                Ok(o) => Some(o),
                Err(TryRecvError::Empty) => None,
                // The reader became a stream: finish the running order.
                Err(TryRecvError::Disconnected) => {
                    more = false;
                    None
                }
            },
            (Some(_), false) => None,
        };
        if let Some(mut o) = got {
            // Only the newest order has a receiver left.
            while let Ok(newer) = orders.try_recv() {
                o = newer;
            }
            if let Err(e) = reader.seek(SeekFrom::Start(o.from)) {
                let _ = o.tx.blocking_send(Err(e));
                cur = None;
                continue;
            }
            cur = Some(o);
        }
        let Some(o) = cur.as_mut() else { continue };
        if o.from >= o.end {
            cur = None; // dropping the sender ends the pieces
            continue;
        }
        let n = (o.end - o.from).min(PIECE as u64) as usize;
        let mut buf = vec![0u8; n];
        let piece = reader.read_exact(&mut buf).map(|()| Bytes::from(buf));
        let failed = piece.is_err();
        // Blocks while the channel is full: the read-ahead bound.
        if o.tx.blocking_send(piece).is_err() || failed {
            cur = None; // a seek or a drop let go of it, or its error is sent
            continue;
        }
        o.from += n as u64;
    }
}

impl AsyncRead for AsyncBlobReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(why) = &this.dead {
            return Poll::Ready(Err(io::Error::other(why.clone())));
        }
        loop {
            if this.pos >= this.len || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let piece_end = this.piece_start + this.piece.len() as u64;
            if this.pos >= this.piece_start && this.pos < piece_end {
                let at = (this.pos - this.piece_start) as usize;
                let n = buf.remaining().min(this.piece.len() - at);
                buf.put_slice(&this.piece[at..at + n]);
                this.pos += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.pieces.is_none() || this.next != this.pos {
                this.start()?;
            }
            let Some(rx) = this.pieces.as_mut() else {
                return Poll::Ready(Err(worker_stopped()));
            };
            match ready!(rx.poll_recv(cx)) {
                Some(Ok(b)) if !b.is_empty() && b.len() as u64 <= this.len - this.next => {
                    this.piece_start = this.next;
                    this.next += b.len() as u64;
                    this.piece = b;
                }
                Some(Ok(b)) => {
                    this.pieces = None;
                    return Poll::Ready(Err(io::Error::other(format!(
                        "the blob reader's worker sent a piece of {} bytes at {} of {}",
                        b.len(),
                        this.next,
                        this.len
                    ))));
                }
                Some(Err(e)) => {
                    // The order ended; a later read starts a new one.
                    this.pieces = None;
                    return Poll::Ready(Err(e));
                }
                None => {
                    this.pieces = None;
                    return Poll::Ready(Err(worker_stopped()));
                }
            }
        }
    }
}

impl AsyncSeek for AsyncBlobReader {
    fn start_seek(self: Pin<&mut Self>, to: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => this.len.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing offset",
            )
        })?;
        let piece_end = this.piece_start + this.piece.len() as u64;
        let in_piece = target >= this.piece_start && target < piece_end;
        if !in_piece && target != this.next {
            // Nothing read ahead is of use: stop the worker reading more.
            this.pieces = None;
            this.piece = Bytes::new();
        }
        this.pos = target;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

/// Exactly a range of a blob's bytes as a `Stream` of `Bytes` (from
/// [`AsyncBlobReader::into_stream`]); `Send + Sync + 'static`, for response
/// bodies. It ends early only with an error item.
pub struct BlobStream {
    pieces: Option<mpsc::Receiver<Piece>>,
    /// Bytes of the range not yet yielded.
    left: u64,
    /// An error to yield before anything else (then the stream ends).
    failed: Option<io::Error>,
}

impl BlobStream {
    fn failed(e: io::Error) -> Self {
        BlobStream {
            pieces: None,
            left: 0,
            failed: Some(e),
        }
    }

    /// Bytes of the range not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.left
    }

    fn end(&mut self, e: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.pieces = None;
        self.left = 0;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for BlobStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(e) = self.failed.take() {
            return self.end(e);
        }
        if self.left == 0 {
            self.pieces = None;
            return Poll::Ready(None);
        }
        let Some(rx) = self.pieces.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(rx.poll_recv(cx)) {
            Some(Ok(b)) if !b.is_empty() && b.len() as u64 <= self.left => {
                self.left -= b.len() as u64;
                Poll::Ready(Some(Ok(b)))
            }
            Some(Ok(b)) => {
                let left = self.left;
                self.end(io::Error::other(format!(
                    "the blob reader's worker sent a piece of {} bytes with {left} left",
                    b.len()
                )))
            }
            Some(Err(e)) => self.end(e),
            None => {
                let left = self.left;
                self.end(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the blob reader's worker stopped with {left} bytes of the range unsent"
                    ),
                ))
            }
        }
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("remaining", &self.left)
            .finish_non_exhaustive()
    }
}
