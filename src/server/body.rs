//! Request and response bodies between the async server and the blocking
//! engine, in bounded memory whatever the object's size.
//!
//! - [`receive`]: a request body goes through a small channel to a blocking
//!   thread that hashes it (the MD5 entity tag, the checksums the client
//!   asked for) and writes it into a blob writer, then stages the blob.
//!   Nothing is visible until the caller commits the staged blob; dropping
//!   it (a checksum that does not match, a client that went away) leaves
//!   nothing behind.
//! - [`send`]: a blob reader (verified reads) is read on a blocking thread
//!   into a small channel that the response body drains.

use std::future::Future as _;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{Checksum, StreamingBlob};
use s3s::{s3_error, S3Result};
use tokio::sync::mpsc;

use super::errors::{joined, s3};
use crate::error::from_io;
use crate::{BlobReader, StagedBlob, Store};

/// Request-body pieces in flight between the connection and the engine.
const IN_FLIGHT: usize = 8;
/// Response pieces in flight, and the size of each.
const OUT_FLIGHT: usize = 4;
const OUT_PIECE: usize = 1 << 20;

/// A request body stored as a staged blob, with what was computed on the
/// way.
pub(crate) struct Received {
    /// The bytes, staged: committed by the caller, or dropped.
    pub staged: StagedBlob,
    /// The MD5 of the bytes, in hex (S3's entity tag of a one-piece object).
    pub md5_hex: String,
    /// The checksums the client asked for, computed over the bytes.
    pub checksums: Checksum,
}

/// What an uploaded body may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The most bytes it may have.
    pub max: u64,
}

enum Piece {
    Data(Bytes),
    End,
}

/// Reads `body` to its end into a new blob of `store`, computing the MD5
/// and the checksums `hasher` has enabled. Fails (and stores nothing) if
/// the body breaks off (a body that stalls is broken off by the
/// connection's idle timeout, `IdleBody`) or exceeds `limits.max` bytes
/// (EntityTooLarge).
pub(crate) async fn receive(
    store: &Store,
    mut body: StreamingBlob,
    hasher: ChecksumHasher,
    limits: Limits,
) -> S3Result<Received> {
    let max = limits.max;
    let (tx, mut rx) = mpsc::channel::<Piece>(IN_FLIGHT);
    let store = store.clone();
    let writer = tokio::task::spawn_blocking(move || -> crate::Result<Option<Received>> {
        let mut w = store.blob_writer();
        let mut md5 = Md5::new();
        let mut hasher = hasher;
        loop {
            match rx.blocking_recv() {
                Some(Piece::Data(b)) => {
                    md5.update(&b);
                    hasher.update(&b);
                    w.write_all(&b).map_err(|e| from_io("<blob writer>", e))?;
                }
                Some(Piece::End) => break,
                // The connection side gave up: drop the writer, keep nothing.
                None => return Ok(None),
            }
        }
        let staged = w.stage()?;
        Ok(Some(Received {
            staged,
            md5_hex: hex::encode(md5.finalize()),
            checksums: hasher.finalize(),
        }))
    });

    let fed = async {
        let mut total = 0u64;
        loop {
            match body.next().await {
                Some(Ok(b)) => {
                    total += b.len() as u64;
                    if total > max {
                        return Err(s3_error!(
                            EntityTooLarge,
                            "the body is larger than this server accepts ({max} bytes)"
                        ));
                    }
                    if tx.send(Piece::Data(b)).await.is_err() {
                        // The writer failed; its error is the one to report.
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(body_error(e)),
                None => {
                    let _ = tx.send(Piece::End).await;
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Err(e) = fed {
        drop(tx);
        // Wait for the writer to let go of its chunks before answering.
        let _ = writer.await;
        return Err(e);
    }
    drop(tx);
    match writer.await.map_err(joined)? {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(s3_error!(IncompleteBody)),
        Err(e) => Err(s3(e)),
    }
}

/// The S3 error for a body that failed while it was read: a broken or
/// malformed (aws-chunked, wrongly signed) body.
fn body_error(e: s3s::StdError) -> s3s::S3Error {
    if let Some(s) = e.downcast_ref::<s3s::S3Error>() {
        return s3s::S3Error::with_message(s.code().clone(), e.to_string());
    }
    s3_error!(IncompleteBody, "the request body broke off: {e}")
}

/// A response body: `len` bytes of `reader` from `start`, read on a
/// blocking thread. A read that fails verification ends the body early
/// with an error, so the client sees a broken transfer, never wrong bytes.
pub(crate) fn send(mut reader: BlobReader, start: u64, len: u64) -> StreamingBlob {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(OUT_FLIGHT);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = reader.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(OUT_PIECE as u64) as usize;
            let mut buf = vec![0u8; n];
            let r = reader.read_exact(&mut buf).map(|()| Bytes::from(buf));
            let failed = r.is_err();
            if tx.blocking_send(r).is_err() || failed {
                return; // the client went away, or the error is sent
            }
            left -= n as u64;
        }
    });
    StreamingBlob::wrap(Channel(rx))
}

/// The receiving end of [`send`]'s channel as a stream.
struct Channel(mpsc::Receiver<io::Result<Bytes>>);

impl Stream for Channel {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A request body that fails when it sends nothing for `idle`: a client
/// that sends a byte a minute does not hold a connection, a blocking
/// thread and an upload's chunks for ever.
pub(crate) struct IdleBody {
    inner: hyper::body::Incoming,
    idle: std::time::Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl IdleBody {
    pub(crate) fn new(inner: hyper::body::Incoming, idle: std::time::Duration) -> IdleBody {
        IdleBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "the request body sent nothing for {} s",
                    this.idle.as_secs()
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
