//! `modelvault serve`: an S3-compatible endpoint over the store, so that
//! unmodified S3 clients (boto3, the aws CLI, rclone, MLflow) store into
//! the deduplicating engine (docs/ARCHITECTURE.md, "The S3 endpoint").
//!
//! The protocol (routing, XML, SigV4 header and presigned-URL
//! authentication, aws-chunked bodies) is the `s3s` crate's; this module
//! maps its operations onto [`crate::Objects`] (`gateway.rs`; multipart
//! uploads in `gateway/multipart.rs`; Content-MD5 and checksums in
//! `checksums.rs`), streams
//! bodies between the async server and the blocking engine in bounded
//! memory (`body.rs`), shows the model registry as a read-only bucket
//! (`registry_bucket.rs`), answers the registry's JSON API under
//! `/_api/v1/` on the same listener (`api/`: an axum router, Basic auth
//! with the same key pair, an OpenAPI document generated with utoipa;
//! docs/ARCHITECTURE.md, "The registry API"), and runs the listener:
//! timeouts, the uploads
//! bound, expiry of abandoned multipart uploads, and a graceful shutdown on
//! SIGTERM or Ctrl-C (in-flight requests finish; new connections are
//! refused; nothing acknowledged is lost, since every acknowledged request
//! was a durable commit).
//!
//! Built with the `server` feature (on by default). A program that links
//! only the engine (`default-features = false, features = ["store"]`)
//! pulls in no async runtime and no HTTP crate.

mod api;
mod body;
mod checksums;
mod conditions;
mod errors;
mod gateway;
mod registry_bucket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::auth::SimpleAuth;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::Store;

/// How `serve` runs. [`ServeOptions::new`] gives the defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The access key and secret key clients sign with; `None` serves
    /// anonymous requests (and refuses signed ones).
    pub credentials: Option<(String, String)>,
    /// The read-only bucket that shows the model registry (`None`: none).
    pub registry_bucket: Option<String>,
    /// The largest object, in bytes: one put, one part, or the sum of a
    /// multipart upload's parts.
    pub max_object_size: u64,
    /// The most uploads (puts, parts) in progress at once; more wait.
    pub max_concurrent_uploads: usize,
    /// The most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a connection may send nothing while the server waits for
    /// its request headers or its body.
    pub idle_timeout: Duration,
    /// Multipart uploads begun longer ago than this are aborted (checked
    /// at start and every hour).
    pub multipart_expiry: Duration,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// The defaults: `127.0.0.1:9000`, anonymous, registry bucket
    /// `models`, objects up to 5 TiB (S3's largest; one put or part is at
    /// most 5 GiB, as in S3), 64 concurrent
    /// uploads, 512 connections, a 60 s idle timeout, multipart uploads expiring after 7
    /// days, 30 s to drain at shutdown.
    pub fn new() -> ServeOptions {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            credentials: None,
            registry_bucket: Some("models".to_owned()),
            max_object_size: 5 << 40,
            max_concurrent_uploads: 64,
            max_connections: 512,
            idle_timeout: Duration::from_secs(60),
            multipart_expiry: Duration::from_secs(7 * 24 * 3600),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions::new()
    }
}

/// Serves `store` over S3 until SIGTERM or Ctrl-C, then shuts down
/// gracefully. `ready` is called with the bound address once the server
/// accepts connections.
///
/// # Errors
/// The listener cannot bind, or the runtime cannot start.
pub fn serve(store: Store, opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("modelvault-serve")
        // Engine calls block; an upload holds two blocking threads (its
        // writer and its hasher), a download one.
        .max_blocking_threads(opts.max_concurrent_uploads.max(1) * 3 + 32)
        .build()
        .map_err(|e| Error::io("start the server's runtime", e))?;
    rt.block_on(run(store, opts, ready))
}

async fn run(store: Store, opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", opts.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("read the listening address", e))?;

    let gateway = gateway::Gateway::new(
        store.clone(),
        opts.registry_bucket.clone(),
        body::Limits {
            max: opts.max_object_size,
        },
        opts.max_concurrent_uploads,
    );
    let api = api::Api::new(
        store.clone(),
        body::Limits {
            max: opts.max_object_size,
        },
        gateway.uploads(),
        opts.credentials.clone(),
    );
    let mut builder = S3ServiceBuilder::new(gateway);
    let mut config = S3Config::default();
    // XML bodies are read whole: a completion of 10,000 parts is ~1.5 MB.
    config.xml_max_body_size = 4 << 20;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    if let Some((access, secret)) = &opts.credentials {
        builder.set_auth(SimpleAuth::from_single(access.clone(), secret.clone()));
    }
    let service = builder.build();

    let expiry = tokio::spawn(expire_uploads(store.clone(), opts.multipart_expiry));

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.idle_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // The signal handlers are installed here, before the ready line: a
    // SIGTERM sent as soon as the line is read must stop the server
    // gracefully, not kill it with the default action.
    let stop =
        shutdown_signal().map_err(|e| Error::io("install the SIGTERM and SIGINT handlers", e))?;
    let mut stop = std::pin::pin!(stop);
    ready(addr);
    tracing::info!(%addr, "serving S3");
    let connections = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
    loop {
        // At most `max_connections` at once: the next waits for a slot.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stop.as_mut() => break,
        };
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((socket, _)) => socket,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.as_mut() => break,
        };
        let _ = socket.set_nodelay(true);
        let s3 = service.clone();
        let api = api.clone();
        let idle = opts.idle_timeout;
        // `/_api/...` is the registry API (axum), everything else S3
        // (s3s); both answer with axum's body type.
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let s3 = s3.clone();
            let api = api.clone();
            async move {
                if req.uri().path().starts_with(api::PREFIX) {
                    let req = req.map(|b| axum::body::Body::new(body::IdleBody::new(b, idle)));
                    return Ok(api.call(req).await);
                }
                let req = req.map(|b| s3s::Body::http_body_unsync(body::IdleBody::new(b, idle)));
                s3.call(req).await.map(|r| r.map(axum::body::Body::new))
            }
        });
        let conn = http.serve_connection(TokioIo::new(socket), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Console streams would otherwise stay open until the grace period.
    api.shutdown();
    tracing::info!("shutting down: waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!("requests still in flight after {:?}: closing them", opts.shutdown_grace);
        }
    }
    expiry.abort();
    Ok(())
}

/// Installs the SIGTERM and Ctrl-C (SIGINT) handlers now, and returns a
/// future that resolves when either signal arrives.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Aborts multipart uploads begun more than `after` ago, now and every
/// hour: an abandoned upload's parts then become garbage for gc.
async fn expire_uploads(store: Store, after: Duration) {
    let store = Arc::new(store);
    loop {
        let s = store.clone();
        let r = tokio::task::spawn_blocking(move || {
            let now = crate::meta::records::now_ms();
            let before = now.saturating_sub(after.as_millis() as u64);
            s.objects().abort_uploads_begun_before(before)
        })
        .await;
        match r {
            Ok(Ok(gone)) if !gone.is_empty() => {
                tracing::info!(count = gone.len(), "expired abandoned multipart uploads")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "expiring multipart uploads failed"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
