//! A small blob server on axum over `modelvault::aio`:
//!
//! - `PUT /blobs`: stores the request body (streamed through an
//!   `AsyncBlobWriter`, never held whole in memory) and answers `201` with
//!   the blob's id.
//! - `GET /blobs/{id}`: the blob (streamed from an `AsyncBlobReader`),
//!   `ETag` the quoted id. One `Range: bytes=…` range gives `206` with
//!   `Content-Range`, an unsatisfiable one `416` with `Content-Range:
//!   bytes */LEN`; several ranges, or a malformed header, are ignored (the
//!   whole blob, `200`), as RFC 9110 allows.
//!
//! Usage: `axum_blobs STORE_DIR PORT` (port 0: any free port). Prints
//! `listening on http://ADDR` on stdout once it accepts connections, and
//! stops (after the requests in progress) when its stdin reaches its end or
//! on SIGTERM.

use std::io::Read as _;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use futures::StreamExt;
use modelvault::aio::{AsyncBlobReader, AsyncBlobWriter};
use modelvault::{BlobId, Store};
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(port), None) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: axum_blobs STORE_DIR PORT");
    };
    let port: u16 = port
        .parse()
        .map_err(|e| anyhow::anyhow!("port {port:?}: {e}"))?;
    let store = Store::create(&dir)?;
    let app = Router::new()
        .route("/blobs", put(put_blob))
        .route("/blobs/{id}", get(get_blob))
        // Bodies are streamed into the store: no size limit of axum's.
        .layer(DefaultBodyLimit::disable())
        .with_state(store);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop())
        .await?;
    Ok(())
}

/// Resolves at the end of stdin or on SIGTERM.
async fn stop() {
    let (eof_tx, eof) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = eof_tx.send(());
    });
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // No SIGTERM handler: only the end of stdin stops the server.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = eof => {}
        () = term => {}
    }
}

fn text(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, format!("{msg}\n")).into_response()
}

async fn put_blob(State(store): State<Store>, body: Body) -> Response {
    let mut w = AsyncBlobWriter::new(&store);
    let mut body = body.into_data_stream();
    while let Some(piece) = body.next().await {
        let piece = match piece {
            Ok(p) => p,
            // Dropping the writer keeps nothing of the upload.
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("the body broke off: {e}")),
        };
        if let Err(e) = w.write_all(&piece).await {
            return text(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    }
    match w.finish().await {
        Ok(id) => (
            StatusCode::CREATED,
            [(header::LOCATION, format!("/blobs/{id}"))],
            format!("{id}\n"),
        )
            .into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// What a `Range` header asks of a blob of `len` bytes.
#[derive(Debug, PartialEq)]
enum Ranged {
    /// Bytes `start..=end`, within the blob.
    Bytes(u64, u64),
    /// No byte of the blob.
    Unsatisfiable,
    /// Several ranges, or not a byte range: served whole.
    Ignored,
}

fn parse_range(header: &str, len: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Ignored;
    };
    if spec.contains(',') {
        return Ranged::Ignored;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        // The last `n` bytes.
        return match number(last) {
            None => Ranged::Ignored,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Bytes(len - n.min(len), len - 1),
        };
    }
    let Some(start) = number(first) else {
        return Ranged::Ignored;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return Ranged::Ignored,
        }
    };
    if start >= len {
        return Ranged::Unsatisfiable;
    }
    Ranged::Bytes(start, end.min(len - 1))
}

async fn get_blob(
    State(store): State<Store>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id: BlobId = match id.parse() {
        Ok(id) => id,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let reader = match AsyncBlobReader::open(&store, id).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return text(StatusCode::NOT_FOUND, e),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let len = reader.len();
    let ranged = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Ranged::Ignored, |v| parse_range(v, len));
    let (status, start, end) = match ranged {
        Ranged::Ignored => (StatusCode::OK, 0, len),
        Ranged::Bytes(first, last) => (StatusCode::PARTIAL_CONTENT, first, last + 1),
        Ranged::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    // A chunk that fails verification breaks the body off: the client
    // sees a failed transfer, never wrong bytes.
    let mut resp = Response::new(Body::from_stream(reader.into_stream(start..end)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{id}\"")) {
        h.insert(header::ETAG, etag);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{len}", end - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::{parse_range, Ranged};

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Ranged::Bytes(0, 0));
        assert_eq!(parse_range("bytes=3-", 10), Ranged::Bytes(3, 9));
        assert_eq!(parse_range("bytes=3-100", 10), Ranged::Bytes(3, 9));
        assert_eq!(parse_range("bytes=-4", 10), Ranged::Bytes(6, 9));
        assert_eq!(parse_range("bytes=-40", 10), Ranged::Bytes(0, 9));
        assert_eq!(parse_range("bytes=10-", 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-3", 10), Ranged::Ignored);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), Ranged::Ignored);
        assert_eq!(parse_range("items=0-1", 10), Ranged::Ignored);
        assert_eq!(parse_range("bytes=+1-2", 10), Ranged::Ignored);
        assert_eq!(parse_range("bytes=x", 10), Ranged::Ignored);
    }
}
