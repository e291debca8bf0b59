//! `GET /experiments/{id}/console/follow`: an experiment's console as
//! server-sent events, as it is written.
//!
//! A task polls the registry every 200 ms, each poll an engine read on a
//! blocking thread (the server holds the store's writer, so every commit
//! is visible to the next poll; no thread is held between polls). Each
//! line is sent once, in order, as event `line` with its sequence number
//! as the event id (a client that reconnects with `Last-Event-ID` goes on
//! after it); a change of progress is event `progress`; once the status
//! is final and every line was sent, event `end` closes the stream.
//! The status is read before the lines of each poll: a final status
//! admits no more lines, so the lines read after it are all there are.
//! A comment every 15 s keeps idle connections (and proxies) open. At
//! shutdown the stream ends (without `end`) instead of holding the
//! server's drain for its grace period.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::experiments::{entity, experiment};
use super::{run, ApiError, Params, PathArgs, State};
use crate::meta::registry_records::{ConsoleLine, EntityId, Status};

/// How often the registry is polled.
const POLL: Duration = Duration::from_millis(200);
/// How long the stream may stay silent before a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The most lines read in one poll.
const BATCH: usize = 1000;

/// Where to start.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FollowParams {
    /// The first line's sequence number (default 0; `Last-Event-ID` + 1
    /// when that is later).
    from: Option<u64>,
}

#[utoipa::path(get, path = "/_api/v1/experiments/{id}/console/follow", tag = "experiments",
    params(("id" = String, Path), FollowParams, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, content_type = "text/event-stream",
        description = "event `line` (data: a ConsoleLine, id: its seq) per line, `progress` (data: {progress, status}) when it changes, `end` (data: {status}) once the experiment is final and every line was sent"),
        (status = 404, body = super::errors::ErrorBody)))]
pub(super) async fn follow(
    axum::extract::State(st): axum::extract::State<State>,
    headers: HeaderMap,
    PathArgs(id): PathArgs<String>,
    Params(p): Params<FollowParams>,
) -> Result<Response, ApiError> {
    let id = entity(&id)?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|last| last.saturating_add(1));
    let from = p.from.unwrap_or(0).max(resumed.unwrap_or(0));
    // 404 now, not an empty stream, for an unknown experiment.
    run(&st, move |s| experiment(s, id).map(|_| ())).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(poll(st, id, from, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// One server-sent event.
fn event(name: &str, id: Option<u64>, data: &str) -> Bytes {
    let mut s = format!("event: {name}\n");
    if let Some(id) = id {
        s.push_str(&format!("id: {id}\n"));
    }
    // `data` is one line of JSON (serde_json escapes newlines).
    s.push_str(&format!("data: {data}\n\n"));
    Bytes::from(s)
}

/// Polls experiment `id` from line `next` on, sending events until the
/// experiment ends or the client goes away.
async fn poll(st: State, id: EntityId, mut next: u64, tx: mpsc::Sender<Bytes>) {
    let mut stopping = st.stopping.clone();
    let mut progress: Option<u8> = None;
    let mut quiet_since = Instant::now();
    loop {
        let from = next;
        let read = run(
            &st,
            move |s| -> crate::Result<(Status, u8, Vec<ConsoleLine>)> {
                let e = experiment(s, id)?;
                let info = e.info()?;
                let lines = e.console(from, BATCH)?;
                Ok((info.status, info.progress, lines))
            },
        )
        .await;
        let (status, percent, lines) = match read {
            Ok(x) => x,
            Err(e) => {
                let data = serde_json::to_string(&e.body).unwrap_or_default();
                let _ = tx.send(event("error", None, &data)).await;
                return;
            }
        };
        let caught_up = lines.len() < BATCH;
        let mut sent = false;
        if progress != Some(percent) {
            progress = Some(percent);
            let data = serde_json::json!({"progress": percent, "status": status}).to_string();
            if tx.send(event("progress", None, &data)).await.is_err() {
                return;
            }
            sent = true;
        }
        for line in lines {
            next = line.seq + 1;
            let data = serde_json::to_string(&line).unwrap_or_default();
            if tx.send(event("line", Some(line.seq), &data)).await.is_err() {
                return;
            }
            sent = true;
        }
        if status.is_final() && caught_up {
            let data = serde_json::json!({"status": status}).to_string();
            let _ = tx.send(event("end", None, &data)).await;
            return;
        }
        if sent {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= KEEP_ALIVE {
            if tx
                .send(Bytes::from_static(b": keep-alive\n\n"))
                .await
                .is_err()
            {
                return;
            }
            quiet_since = Instant::now();
        }
        if !caught_up {
            continue; // more lines are waiting: no pause
        }
        if *stopping.borrow() {
            // The server is shutting down: the stream ends without `end`;
            // the client resumes with Last-Event-ID elsewhere or later.
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return,
            _ = stopping.changed() => return,
        }
    }
}
