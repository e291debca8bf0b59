//! Request and response bodies between the async server and the blocking
//! engine, in bounded memory whatever the object's size.
//!
//! - [`receive`]: a request body goes through small channels to two
//!   blocking threads, one writing it into a blob writer (then staging the
//!   blob), one hashing it (the MD5 entity tag, the checksums the client
//!   asked for).
//!   Nothing is visible until the caller commits the staged blob; dropping
//!   it (a checksum that does not match, a client that went away) leaves
//!   nothing behind.
//! - [`send`]: a blob reader (verified reads) as the stream of
//!   [`crate::aio::AsyncBlobReader::into_stream`]: read on its worker
//!   thread, a few pieces ahead of the response body.

use std::future::Future as _;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{Checksum, StreamingBlob};
use s3s::{s3_error, S3Result};
use tokio::sync::mpsc;

use super::errors::{joined, s3};
use crate::aio::AsyncBlobReader;
use crate::{BlobReader, StagedBlob, Store};

/// Request-body pieces in flight between the connection and the engine.
const IN_FLIGHT: usize = 8;

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

/// What an upload may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The most bytes an object may have (one put, or a multipart upload's
    /// parts together).
    pub max: u64,
}

/// S3's largest single put or part.
pub(crate) const MAX_BODY: u64 = 5 << 30;

impl Limits {
    /// The most bytes one body (a put or a part) may have.
    pub(crate) fn body(&self) -> u64 {
        self.max.min(MAX_BODY)
    }
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
    let max = limits.body();
    // Two consumers of the same pieces, side by side: the blob writer (its
    // cutting and hashing on this thread, compression in the pool) and the
    // MD5 and checksums, so that neither waits for the other.
    let (wtx, mut wrx) = mpsc::channel::<Piece>(IN_FLIGHT);
    let (htx, mut hrx) = mpsc::channel::<Piece>(IN_FLIGHT);
    let store = store.clone();
    let writer = tokio::task::spawn_blocking(move || -> crate::Result<Option<StagedBlob>> {
        let mut w = store.blob_writer();
        loop {
            match wrx.blocking_recv() {
                Some(Piece::Data(b)) => {
                    w.write_all(&b)
                        .map_err(|e| crate::Error::from_io("<blob writer>", e))?;
                }
                Some(Piece::End) => return w.stage().map(Some),
                // The connection side gave up: drop the writer, keep nothing.
                None => return Ok(None),
            }
        }
    });
    let hashing = tokio::task::spawn_blocking(move || {
        let mut md5 = Md5::new();
        let mut hasher = hasher;
        loop {
            match hrx.blocking_recv() {
                Some(Piece::Data(b)) => {
                    md5.update(&b);
                    hasher.update(&b);
                }
                Some(Piece::End) => return Some((hex::encode(md5.finalize()), hasher.finalize())),
                None => return None,
            }
        }
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
                    // A send fails only when the writer has failed: its
                    // error is the one to report.
                    if wtx.send(Piece::Data(b.clone())).await.is_err()
                        || htx.send(Piece::Data(b)).await.is_err()
                    {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(body_error(e)),
                None => {
                    let _ = wtx.send(Piece::End).await;
                    let _ = htx.send(Piece::End).await;
                    return Ok(());
                }
            }
        }
    }
    .await;
    drop((wtx, htx));
    let staged = writer.await.map_err(joined);
    let hashes = hashing.await.map_err(joined);
    // On an error the writer has let go of its chunks by now (joined).
    fed?;
    match (staged?, hashes?) {
        (Ok(Some(staged)), Some((md5_hex, checksums))) => Ok(Received {
            staged,
            md5_hex,
            checksums,
        }),
        (Ok(_), _) => Err(s3_error!(IncompleteBody)),
        (Err(e), _) => Err(s3(e)),
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

/// A response body: `len` bytes of `reader` from `start`, read on the
/// reader's worker thread ([`AsyncBlobReader::into_stream`]). A read that
/// fails verification ends the body early with an error, so the client sees
/// a broken transfer, never wrong bytes.
pub(crate) fn send(reader: BlobReader, start: u64, len: u64) -> StreamingBlob {
    let end = start.saturating_add(len);
    StreamingBlob::wrap(AsyncBlobReader::from_reader(reader).into_stream(start..end))
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
