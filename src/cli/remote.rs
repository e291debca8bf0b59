//! `get` of a model version from another machine, through the registry API
//! of a `modelvault serve` there: `modelvault://HOST:PORT/models/ID@VERSION`
//! or its plain HTTP form `http://HOST:PORT/_api/v1/models/ID@VERSION`.
//!
//! The version's file list comes from `GET /_api/v1/models/M/versions/V`,
//! each file from `.../versions/N/files/PATH`. Every file is checked on
//! arrival against its blob id (the blake3 of its content) and its size, so
//! a download is verified end to end, whatever the network or proxy did.
//!
//! `sync --from URL` talks to the same API ([`Api::export`]): it posts the
//! chunk ids its store holds and reads a bundle back, which the import
//! checks whole (every chunk's and blob's hash, the trailer digest).
//!
//! An error answer is a [`ServerError`] with the status (404: exit code 4)
//! and the server's message.

use std::io::{self, Read};

use anyhow::{anyhow, bail, Context, Result};
use modelvault::{BlobId, VersionFile};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::commands::FileSource;
use super::exit::{ServerError, Usage};

/// The API's path prefix on a server.
const API: &str = "/_api/v1/";

/// A model version on a server: the server's API root and the model spec
/// (id, name, `NAME@VERSION`, `ID@ALIAS`…) as the URL gave it.
#[derive(Debug, PartialEq)]
pub(super) struct RemoteSpec {
    api: Url,
    model: String,
    version: Option<String>,
}

impl RemoteSpec {
    /// The version asked for (a number or an alias; `None`: the latest).
    pub(super) fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

/// What `spec` names, when it is a model on a server; `None` for anything a
/// local store resolves (a name, an id, or a `modelvault://STORE-ID/…` URL
/// of a store, whose authority is a UUID).
pub(super) fn parse(spec: &str) -> Result<Option<RemoteSpec>> {
    let (base, path) = if let Some(rest) = spec.strip_prefix("modelvault://") {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.parse::<uuid::Uuid>().is_ok() {
            return Ok(None);
        }
        let path = path.strip_prefix("models/").ok_or_else(|| {
            anyhow!("{spec:?}: expected modelvault://HOST:PORT/models/MODEL[@VERSION]")
        })?;
        (format!("http://{host}"), path.to_owned())
    } else if spec.starts_with("http://") || spec.starts_with("https://") {
        let url = Url::parse(spec).with_context(|| format!("{spec:?} is not a URL"))?;
        if url.scheme() == "https" {
            bail!(
                "{spec:?}: this build fetches over plain HTTP only; \
                 use http:// (or modelvault://HOST:PORT/…) behind a trusted network"
            );
        }
        let path = url
            .path()
            .strip_prefix(&format!("{API}models/"))
            .ok_or_else(|| {
                anyhow!("{spec:?}: expected http://HOST:PORT{API}models/MODEL[@VERSION]")
            })?;
        let path = percent_decode(path).with_context(|| format!("{spec:?}"))?;
        (url.origin().ascii_serialization(), path)
    } else {
        return Ok(None);
    };
    if path.is_empty() || path.contains('/') {
        bail!("{spec:?}: expected one model after models/, e.g. models/ID@3");
    }
    let (model, version) = match path.rsplit_once('@') {
        Some((m, v)) if !m.is_empty() && !v.is_empty() => (m.to_owned(), Some(v.to_owned())),
        Some(_) => bail!("{spec:?}: empty model or version around '@'"),
        None => (path, None),
    };
    let api = Url::parse(&base)
        .and_then(|u| u.join(API))
        .with_context(|| format!("{spec:?}: bad server address"))?;
    Ok(Some(RemoteSpec {
        api,
        model,
        version,
    }))
}

/// Decodes `%XX` escapes of a URL path (as UTF-8).
fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("the path is not UTF-8 once decoded"))
}

/// What the server says of a version (the fields `get` needs).
#[derive(Deserialize)]
pub(super) struct RemoteVersion {
    pub name: String,
    pub version: u32,
    pub files: Vec<VersionFile>,
}

/// The registry API root of the server `url` names, for `sync --from`:
/// `modelvault://HOST:PORT` or `http://HOST:PORT` (a path of `/` or of the
/// API root itself is allowed).
pub(super) fn server_api(url: &str) -> Result<Url> {
    let usage = || {
        Usage(format!(
            "{url:?}: expected a server, modelvault://HOST:PORT or http://HOST:PORT"
        ))
    };
    let http = if let Some(rest) = url.strip_prefix("modelvault://") {
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if host.is_empty() || host.contains('/') {
            return Err(usage().into());
        }
        if host.parse::<uuid::Uuid>().is_ok() {
            return Err(Usage(format!(
                "{url:?} names a store by its id, not a server (HOST:PORT)"
            ))
            .into());
        }
        format!("http://{host}/")
    } else if url.starts_with("https://") {
        bail!(
            "{url:?}: this build fetches over plain HTTP only; \
             use http:// (or modelvault://HOST:PORT) behind a trusted network"
        );
    } else if url.starts_with("http://") {
        url.to_owned()
    } else {
        return Err(usage().into());
    };
    let parsed = Url::parse(&http).map_err(|e| Usage(format!("{url:?}: {e}")))?;
    if !matches!(parsed.path(), "/" | "/_api/v1" | "/_api/v1/")
        || parsed.query().is_some()
        || parsed.host().is_none()
    {
        return Err(usage().into());
    }
    parsed
        .join(API)
        .map_err(|e| Usage(format!("{url:?}: {e}")).into())
}

/// A server's registry API, with the credentials to send.
pub(super) struct Api {
    client: Client,
    api: Url,
    credentials: Option<(String, String)>,
}

/// A model on a server's registry API.
pub(super) struct Server {
    http: Api,
    model: String,
}

impl Server {
    /// A client for `spec`'s server.
    pub(super) fn new(spec: &RemoteSpec) -> Result<Server> {
        Ok(Server {
            http: Api::new(spec.api.clone())?,
            model: spec.model.clone(),
        })
    }

    /// `models/MODEL/versions/VERSION/…rest` under the API root, each
    /// segment percent-encoded.
    fn url(&self, version: &str, rest: &[&str]) -> Result<Url> {
        let mut url = self.http.api.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("{} cannot take a path", self.http.api))?
            .pop_if_empty()
            .extend(["models", &self.model, "versions", version])
            .extend(rest);
        Ok(url)
    }

    fn get(&self, url: Url) -> Result<Response> {
        self.http.send(self.http.client.get(url.clone()), &url)
    }

    /// The version `version` names (`None`: the latest).
    pub(super) fn version(&self, version: Option<&str>) -> Result<RemoteVersion> {
        let url = self.url(version.unwrap_or("latest"), &[])?;
        let resp = self.get(url.clone())?;
        resp.json::<RemoteVersion>()
            .with_context(|| format!("{url}: not a model version"))
    }
}

impl Api {
    /// A client for the API at `api`. Credentials, when the server wants
    /// them, are the S3 key pair: `MODELVAULT_S3_ACCESS_KEY` and
    /// `MODELVAULT_S3_SECRET_KEY`.
    pub(super) fn new(api: Url) -> Result<Api> {
        let credentials = match (
            std::env::var("MODELVAULT_S3_ACCESS_KEY"),
            std::env::var("MODELVAULT_S3_SECRET_KEY"),
        ) {
            (Ok(a), Ok(s)) => Some((a, s)),
            _ => None,
        };
        let client = Client::builder()
            // Connecting and each read may stall this long; a large file
            // itself takes as long as it takes.
            .connect_timeout(std::time::Duration::from_secs(30))
            .timeout(None)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api {
            client,
            api,
            credentials,
        })
    }

    /// `POST export?QUERY` with the have list `have` (chunk ids, 32 raw
    /// bytes each): the bundle, as it arrives.
    pub(super) fn export(&self, query: &[(&str, String)], have: Vec<u8>) -> Result<Response> {
        let mut url = self
            .api
            .join("export")
            .with_context(|| format!("{}: bad server address", self.api))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let req = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(have);
        self.send(req, &url)
    }

    /// Sends `req` (to `url`) with the credentials; an error answer is a
    /// [`ServerError`] naming the status and the server's message.
    fn send(&self, mut req: RequestBuilder, url: &Url) -> Result<Response> {
        if let Some((a, s)) = &self.credentials {
            req = req.basic_auth(a, Some(s));
        }
        let resp = req.send().with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        // The API's errors are JSON with a message; say it.
        let body = resp.text().unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
            .unwrap_or(body);
        let message = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "{url}: {status}: {message} (set MODELVAULT_S3_ACCESS_KEY and \
                 MODELVAULT_S3_SECRET_KEY to the server's keys)"
            ),
            _ => format!("{url}: {status}: {message}"),
        };
        Err(ServerError {
            status: status.as_u16(),
            message,
        }
        .into())
    }
}

/// Reads one file of a fixed version from the server.
pub(super) struct Files<'a> {
    pub server: &'a Server,
    pub version: u32,
}

impl FileSource for Files<'_> {
    fn open(&self, f: &VersionFile) -> Result<Box<dyn Read + Send + '_>> {
        let version = self.version.to_string();
        let mut rest = vec!["files"];
        rest.extend(f.path.split('/'));
        let url = self.server.url(&version, &rest)?;
        let resp = self.server.get(url)?;
        Ok(Box::new(Verified {
            inner: resp,
            hasher: blake3::Hasher::new(),
            expected: f.blob,
            left: f.size,
            path: f.path.clone(),
        }))
    }
}

/// A download that must hash to `expected` and be `left` bytes long: at its
/// end a mismatch is an error (so the restore drops the file), and bytes
/// beyond the size are refused as they come.
struct Verified {
    inner: Response,
    hasher: blake3::Hasher,
    expected: BlobId,
    left: u64,
    path: String,
}

impl Read for Verified {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: the server sent more bytes than the file has",
                    self.path
                ),
            ));
        }
        self.left -= n as u64;
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() {
            if self.left > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: the download ended {} bytes short",
                        self.path, self.left
                    ),
                ));
            }
            let got = self.hasher.finalize();
            if got.as_bytes() != self.expected.as_bytes() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: the bytes received hash to {}, not to the file's blob id {}",
                        self.path,
                        got.to_hex(),
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_specs_are_not_remote() {
        for s in [
            "resnet",
            "resnet@3",
            "0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c@2",
            "modelvault://0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c/models/m@1",
        ] {
            assert_eq!(parse(s).unwrap(), None, "{s}");
        }
    }

    #[test]
    fn server_urls_name_the_api_the_model_and_the_version() {
        let r = parse("modelvault://10.0.0.5:9000/models/resnet@3")
            .unwrap()
            .unwrap();
        assert_eq!(r.api.as_str(), "http://10.0.0.5:9000/_api/v1/");
        assert_eq!(
            (r.model.as_str(), r.version.as_deref()),
            ("resnet", Some("3"))
        );
        let r = parse("http://host:8080/_api/v1/models/a%20b@best")
            .unwrap()
            .unwrap();
        assert_eq!(r.api.as_str(), "http://host:8080/_api/v1/");
        assert_eq!(
            (r.model.as_str(), r.version.as_deref()),
            ("a b", Some("best"))
        );
        let r = parse("modelvault://localhost:1/models/m").unwrap().unwrap();
        assert_eq!(r.version, None);
        let s = Server::new(&r).unwrap();
        assert_eq!(
            s.url("4", &["files", "dir", "w 1.bin"]).unwrap().as_str(),
            "http://localhost:1/_api/v1/models/m/versions/4/files/dir/w%201.bin"
        );
    }

    #[test]
    fn sync_urls_name_a_servers_api_root() {
        for (url, want) in [
            (
                "modelvault://10.0.0.5:9000",
                "http://10.0.0.5:9000/_api/v1/",
            ),
            ("modelvault://host:1/", "http://host:1/_api/v1/"),
            ("http://host:8080", "http://host:8080/_api/v1/"),
            ("http://host:8080/_api/v1/", "http://host:8080/_api/v1/"),
        ] {
            assert_eq!(server_api(url).unwrap().as_str(), want, "{url}");
        }
        for (url, why) in [
            ("modelvault://host:1/models/m", "expected a server"),
            (
                "modelvault://0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c",
                "names a store",
            ),
            ("http://host:1/other", "expected a server"),
            ("https://host:1", "plain HTTP only"),
            ("/some/dir", "expected a server"),
        ] {
            let e = format!("{:#}", server_api(url).unwrap_err());
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn malformed_server_urls_are_refused_with_the_reason() {
        for (s, why) in [
            (
                "modelvault://host:1/experiments/x",
                "expected modelvault://HOST:PORT/models/",
            ),
            ("modelvault://host:1/models/", "expected one model"),
            ("modelvault://host:1/models/a/b", "expected one model"),
            ("modelvault://host:1/models/m@", "empty model or version"),
            (
                "http://host:1/other/models/m",
                "expected http://HOST:PORT/_api/v1/models/",
            ),
            ("https://host:1/_api/v1/models/m", "plain HTTP only"),
            ("http://host:1/_api/v1/models/%zz", "bad percent escape"),
        ] {
            let e = format!("{:#}", parse(s).unwrap_err());
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
