//! `modelvault get URL --out DIR` of a model version on a server: every
//! file is checked against its blob id and size on arrival, and nothing
//! that fails the check is left in DIR.

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
