//! `POST /export`: a bundle (docs/FORMAT.md, "Bundles") of what the query
//! selects, leaving out the chunks the request body lists: `modelvault
//! sync --from URL` posts the chunk ids its store holds and imports the
//! answer as it arrives.
//!
//! The query selects as `modelvault export` does: `model=NAME`,
//! `NAME@V` or `NAME@A..B` and `experiment=ID` (each repeatable),
//! `with_used=true`; nothing: the whole store. The body is chunk ids, 32
//! raw bytes each, back to back (empty: none), at most [`MAX_HAVE`] bytes.
//!
//! `Store::export` runs on a blocking thread writing into a small bounded
//! channel that feeds the response body: memory stays bounded whatever the
//! bundle's size, and a client that goes away closes the channel, which
//! fails the export's next write and stops it. The selection is resolved
//! before the export writes its first byte, so an unknown model or
//! experiment is a 404 with a JSON body; an error after the first byte
//! can only break the response off (the bundle then lacks its trailer,
//! which the importing side refuses).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::experiments::entity;
use super::{ApiError, Params, State};
use crate::archive::ExportSpec;
use crate::id::{ChunkId, Hash32};

/// The longest have list a request may carry: 8 Mi chunk ids.
pub(crate) const MAX_HAVE: u64 = 256 << 20;

/// Bundle bytes gathered before they are handed to the response body.
const PIECE: usize = 256 << 10;

/// Pieces in flight between the export thread and the connection.
const IN_FLIGHT: usize = 4;

type Piece = Result<Bytes, io::Error>;

#[utoipa::path(post, path = "/_api/v1/export", tag = "bundles",
    params(
        ("model" = Option<Vec<String>>, Query, description = "NAME, NAME@V or NAME@A..B; repeatable"),
        ("experiment" = Option<Vec<String>>, Query, description = "an experiment id; repeatable"),
        ("with_used" = Option<bool>, Query, description = "with experiment: also the model versions the experiments used"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the chunk ids the client holds, 32 raw bytes each (empty: none)"),
    responses((status = 200, description = "the bundle, streamed", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "a bad parameter, or a body that is not whole chunk ids", body = super::errors::ErrorBody),
        (status = 404, body = super::errors::ErrorBody),
        (status = 413, body = super::errors::ErrorBody)))]
pub(super) async fn export(
    axum::extract::State(st): axum::extract::State<State>,
    headers: HeaderMap,
    Params(query): Params<Vec<(String, String)>>,
    body: Body,
) -> Result<Response, ApiError> {
    // The parameters first: a bad one is refused before the body is read.
    let spec = selection(&query)?;
    let have = read_have(&headers, body, MAX_HAVE).await?;
    let spec = spec.exclude_chunks(have);

    let (tx, mut rx) = mpsc::channel::<Piece>(IN_FLIGHT);
    let started = Arc::new(AtomicBool::new(false));
    let store = st.store.clone();
    let writer = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(PIECE),
        started: started.clone(),
    };
    let task = tokio::task::spawn_blocking(move || {
        let done = store.export(&spec, writer, &|_| {}).and_then(|(mut w, _)| {
            w.flush()
                .map_err(|e| crate::Error::from_io("sending the bundle", e))
        });
        if let Err(e) = &done {
            if started.load(Ordering::Acquire) {
                // The status is sent: break the body off instead.
                tracing::warn!(error = %e, "an export stopped after its first byte");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
        done
    });
    // The first piece decides the answer: none means the export failed
    // before writing anything, and its error is the answer.
    let Some(first) = rx.recv().await else {
        task.await??;
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "the export wrote nothing",
        ));
    };
    let first = first
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", e.to_string()))?;
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let stream = futures::stream::once(async move { Ok::<_, io::Error>(first) }).chain(rest);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// What the query selects (as `modelvault export` would).
fn selection(query: &[(String, String)]) -> Result<ExportSpec, ApiError> {
    let mut spec = ExportSpec::default();
    let (mut any, mut exps, mut with_used) = (false, Vec::new(), false);
    for (key, value) in query {
        match key.as_str() {
            "model" => {
                spec = spec.model_spec(value)?;
                any = true;
            }
            "experiment" => exps.push(entity(value)?),
            "with_used" => {
                with_used = value.parse().map_err(|_| {
                    ApiError::bad_request(
                        "BadParameter",
                        format!("with_used={value:?}: expected true or false"),
                    )
                })?;
            }
            _ => {
                return Err(ApiError::bad_request(
                    "BadParameter",
                    format!("unknown parameter {key:?}: expected model, experiment or with_used"),
                ))
            }
        }
    }
    if with_used && exps.is_empty() {
        return Err(ApiError::bad_request(
            "BadParameter",
            "with_used needs at least one experiment",
        ));
    }
    if !any && exps.is_empty() {
        return Ok(ExportSpec::store());
    }
    for id in exps {
        spec = spec.experiment(id, with_used);
    }
    Ok(spec)
}

/// Reads the have list: whole 32-byte chunk ids, at most `max` bytes
/// (413 beyond, declared or not), as they arrive.
async fn read_have(headers: &HeaderMap, body: Body, max: u64) -> Result<Vec<ChunkId>, ApiError> {
    let too_large = |n: u64| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TooLarge",
            format!(
                "a have list of {n} bytes is longer than this server accepts ({max} bytes, {} chunk ids)",
                max / 32
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > max) {
        return Err(too_large(n));
    }
    let mut ids = Vec::new();
    let mut partial: Vec<u8> = Vec::with_capacity(32);
    let mut total = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| {
            ApiError::bad_request("IncompleteBody", format!("reading the have list: {e}"))
        })?;
        total += piece.len() as u64;
        if total > max {
            return Err(too_large(total));
        }
        let mut rest = &piece[..];
        if !partial.is_empty() {
            let take = (32 - partial.len()).min(rest.len());
            partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if let Ok(id) = <[u8; 32]>::try_from(&partial[..]) {
                ids.push(Hash32(id));
                partial.clear();
            }
        }
        let whole = rest.chunks_exact(32);
        partial.extend_from_slice(whole.remainder());
        ids.extend(
            whole
                .filter_map(|c| <[u8; 32]>::try_from(c).ok())
                .map(Hash32),
        );
    }
    if !partial.is_empty() {
        return Err(ApiError::bad_request(
            "BadHaveList",
            format!(
                "the have list is {total} bytes, not a multiple of 32: \
                 it must be chunk ids of 32 raw bytes each, back to back"
            ),
        ));
    }
    Ok(ids)
}

/// A `Write` into the response body's channel, in pieces of [`PIECE`]
/// bytes. A write fails once the connection side has gone.
struct ChannelWriter {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
    /// Set once a piece has gone to the connection (the status with it).
    started: Arc<AtomicBool>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.started.store(true, Ordering::Release);
        self.tx.blocking_send(Ok(piece)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client closed the connection",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(pieces: Vec<Vec<u8>>) -> Body {
        let s = futures::stream::iter(pieces.into_iter().map(Ok::<_, io::Error>));
        Body::from_stream(s)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_have_list_is_read_across_piece_boundaries() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let mut all = a.to_vec();
        all.extend_from_slice(&b);
        // Split inside the first id and inside the second.
        let pieces = vec![all[..5].to_vec(), all[5..40].to_vec(), all[40..].to_vec()];
        let ids = rt()
            .block_on(read_have(&HeaderMap::new(), body(pieces), 1024))
            .unwrap();
        assert_eq!(ids, vec![Hash32(a), Hash32(b)]);
    }

    #[test]
    fn a_have_list_that_is_not_whole_ids_or_too_long_is_refused() {
        let e = rt()
            .block_on(read_have(&HeaderMap::new(), body(vec![vec![0; 40]]), 1024))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.body.message.contains("multiple of 32"),
            "{}",
            e.body.message
        );
        // Beyond the bound, with no length declared: 413 as it arrives.
        let e = rt()
            .block_on(read_have(
                &HeaderMap::new(),
                body(vec![vec![0; 64], vec![0; 64]]),
                96,
            ))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        // A declared length beyond the bound: 413 before reading.
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "4096".parse().unwrap());
        let e = rt().block_on(read_have(&h, body(vec![]), 96)).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.body.message.contains("4096"), "{}", e.body.message);
    }

    #[test]
    fn the_query_selects_as_export_does() {
        let q = |pairs: &[(&str, &str)]| {
            selection(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        for bad in [
            &[("model", "m@x")][..],
            &[("model", "m@3..1")],
            &[("experiment", "not-an-id")],
            &[
                ("with_used", "yes"),
                ("experiment", "0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c"),
            ],
            &[("with_used", "true")],
            &[("other", "1")],
        ] {
            let e = q(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert!(q(&[]).is_ok());
        assert!(q(&[("model", "a@1..2"), ("model", "b")]).is_ok());
    }
}
