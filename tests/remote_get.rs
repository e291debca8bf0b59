//! `modelvault get URL --out DIR` of a model version on a server: from a
//! real `modelvault serve` (with and without its keys), and from servers
//! that lie, whose files are refused: every file is checked against its
//! blob id and size on arrival, and nothing that fails the check is left
//! in DIR.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the CLI with no store at all: a remote `get` needs none.
fn mv_no_repo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .args(args)
        .env_remove("MODELVAULT_REPO")
        .output()
        .unwrap()
}

/// A one-file version whose file, as served, is `served` while its blob id
/// and size describe `real`: answers each request (the version, then the
/// file) on its own connection, until the listener is dropped.
fn lying_server(real: &'static [u8], size: usize, served: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let blob = blake3::hash(real).to_hex().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let Ok(mut conn) = conn else { return };
            let mut request_line = String::new();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            r.read_line(&mut request_line).unwrap();
            // The headers, to their blank line.
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap() == 0 || l == "\r\n" {
                    break;
                }
            }
            let (ctype, body): (&str, Vec<u8>) = if request_line.contains("/files/") {
                ("application/octet-stream", served.to_vec())
            } else {
                (
                    "application/json",
                    format!(
                        r#"{{"model":"0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c","name":"m","version":1,
                        "created_ms":0,"experiment":null,
                        "files":[{{"path":"w.bin","blob":"{blob}","size":{size},"format":"unknown"}}]}}"#
                    )
                    .into_bytes(),
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    addr
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_file_that_does_not_hash_to_its_blob_id_is_refused_and_not_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let addr = lying_server(b"the real weights", 16, b"the fake weights");
    let url = format!("modelvault://{addr}/models/m@1");
    let o = mv_no_repo(&["get", &url, "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a tampered file was accepted");
    assert!(
        err.contains("w.bin") && err.contains("not to the file's blob id"),
        "stderr: {err}"
    );
    assert_eq!(entries(&out), Vec::<String>::new(), "left behind");
}

#[test]
fn a_file_cut_short_is_refused_and_not_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let addr = lying_server(b"the real weights", 16, b"the real");
    let url = format!("http://{addr}/_api/v1/models/m@1");
    let o = mv_no_repo(&["get", &url, "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a short file was accepted");
    assert!(err.contains("8 bytes short"), "stderr: {err}");
    assert_eq!(entries(&out), Vec::<String>::new(), "left behind");
}

#[test]
fn a_server_that_is_not_there_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    // A port just freed: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("modelvault://{addr}/models/m");
    let o = mv_no_repo(&["get", &url, "--out", tmp.path().join("o").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot reach") && err.contains(&addr.to_string()),
        "stderr: {err}"
    );
}

/// Publishes `files` as the next version of model `name` through the
/// registry API of `server`, with `auth` when the server wants keys.
pub(crate) fn publish(
    server: &crate::api::Server,
    auth: Option<(&str, &str)>,
    name: &str,
    files: &[(&str, Vec<u8>)],
) {
    let send = |rb: reqwest::blocking::RequestBuilder| {
        let rb = match auth {
            Some((a, s)) => rb.basic_auth(a, Some(s)),
            None => rb,
        };
        let r = rb.send().unwrap();
        assert!(
            r.status().is_success(),
            "{}: {}",
            r.status(),
            r.text().unwrap_or_default()
        );
        r.json::<serde_json::Value>().unwrap()
    };
    let mut entries = Vec::new();
    for (path, bytes) in files {
        let v = send(server.client.post(server.url("/blobs")).body(bytes.clone()));
        entries.push(serde_json::json!({"path": path, "blob": v["blob"], "size": bytes.len()}));
    }
    // Names are not unique: create the model only if none has this name.
    let g = server.client.get(server.url(&format!("/models/{name}")));
    let g = match auth {
        Some((a, s)) => g.basic_auth(a, Some(s)),
        None => g,
    };
    if g.send().unwrap().status() == reqwest::StatusCode::NOT_FOUND {
        send(
            server
                .client
                .post(server.url("/models"))
                .json(&serde_json::json!({"name": name})),
        );
    }
    send(
        server
            .client
            .post(server.url(&format!("/models/{name}/versions")))
            .json(&serde_json::json!({"files": entries})),
    );
}

fn weights(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn get_by_url_restores_a_version_from_a_real_server() {
    let server = crate::api::Server::start(None);
    let v1 = [
        ("model.safetensors", weights(3 << 20, 1)),
        ("config/params 1.json", b"{\"lr\": 0.1}".to_vec()),
        ("empty.txt", Vec::new()),
    ];
    publish(&server, None, "resnet", &v1);
    let v2 = [("model.safetensors", weights(1 << 20, 2))];
    publish(&server, None, "resnet", &v2);
    let host = server.base.strip_prefix("http://").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (url, want) in [
        (format!("modelvault://{host}/models/resnet@1"), &v1[..]),
        (format!("modelvault://{host}/models/resnet"), &v2[..]),
        (
            format!("{}/_api/v1/models/resnet@latest", server.base),
            &v2[..],
        ),
    ] {
        let out = tmp.path().join(format!("out-{}", url.len()));
        let o = mv_no_repo(&["get", &url, "--out", out.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut names = entries(&out);
        names.sort();
        for (path, bytes) in want {
            let got =
                std::fs::read(out.join(path)).unwrap_or_else(|e| panic!("{url}: {path}: {e}"));
            assert!(
                got == *bytes,
                "{url}: {path} differs: {} bytes, want {}",
                got.len(),
                bytes.len()
            );
        }
        let files = walk(&out);
        assert_eq!(files, want.len(), "{url}: {names:?}");
    }
    // A model the server does not have: its 404 and message.
    let o = mv_no_repo(&[
        "get",
        &format!("modelvault://{host}/models/nope"),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("404") && err.contains("nope"), "stderr: {err}");
}

/// Files under `dir`, recursively.
fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn get_by_url_sends_the_servers_keys_and_says_when_they_are_missing() {
    let keys = ("AKIDREMOTE", "remote-secret");
    let server = crate::api::Server::start(Some(keys));
    let files = [("w.bin", weights(200_000, 9))];
    publish(&server, Some(keys), "private", &files);
    let host = server.base.strip_prefix("http://").unwrap();
    let url = format!("modelvault://{host}/models/private@1");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = mv_no_repo(&["get", &url, "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "fetched without keys");
    assert!(
        err.contains("401") && err.contains("MODELVAULT_S3_ACCESS_KEY"),
        "stderr: {err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .args(["get", &url, "--out", out.to_str().unwrap()])
        .env_remove("MODELVAULT_REPO")
        .env("MODELVAULT_S3_ACCESS_KEY", keys.0)
        .env("MODELVAULT_S3_SECRET_KEY", keys.1)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(out.join("w.bin")).unwrap() == files[0].1);
}
