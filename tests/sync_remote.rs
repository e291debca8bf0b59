//! `modelvault --repo DEST sync --from URL` from a real `modelvault serve`
//! through `POST /_api/v1/export`: a model copied byte-identical, a second
//! sync that carries only the new chunks, the server's errors (a bad have
//! list, an unknown model or experiment) with their statuses and exit
//! codes, and the server's keys.

use std::path::Path;
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::Value;

use crate::api::Server;
use crate::cli::{mv, ok};
use crate::cli_output::code;
use crate::common::noise;
use crate::remote_get::publish;

fn json(o: &Output) -> Value {
    let out = ok(o);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing from {v}"))
}

fn host(server: &Server) -> &str {
    server.base.strip_prefix("http://").unwrap()
}

/// The files of `spec` in `repo`, restored into `out`, compared with `want`.
fn restored_equal(repo: &Path, spec: &str, out: &Path, want: &[(&str, Vec<u8>)]) {
    ok(&mv(repo, &["get", spec, "--out", out.to_str().unwrap()]));
    for (path, bytes) in want {
        let got = std::fs::read(out.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            got == *bytes,
            "{spec} {path}: {} bytes differ from {}",
            got.len(),
            bytes.len()
        );
    }
}

#[test]
fn sync_from_a_server_copies_a_model_and_then_only_the_new_chunks() {
    let server = Server::start(None);
    let mut weights = noise(4 << 20, 11);
    let v1 = [
        ("model.safetensors", weights.clone()),
        ("config.json", b"{\"lr\": 0.1}".to_vec()),
    ];
    publish(&server, None, "resnet", &v1);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    // Into a store that does not exist yet, by the modelvault:// form.
    let url = format!("modelvault://{}", host(&server));
    let r = json(&mv(&dest, &["sync", "--from", &url, "--json"]));
    assert_eq!(
        (n(&r, "models_added"), n(&r, "versions_added")),
        (1, 1),
        "{r}"
    );
    assert_eq!(n(&r, "chunks_named"), 0, "{r}");
    let full = n(&r, "bundle_bytes");
    let carried = n(&r, "chunks_carried");
    assert!(carried > 1, "{r}");
    restored_equal(&dest, "resnet@1", &tmp.path().join("o1"), &v1);
    ok(&mv(&dest, &["verify", "--read-data"]));

    // One new version, 1000 bytes changed: only the chunks around the
    // change cross the wire, the rest are named.
    weights[2 << 20..(2 << 20) + 1000].copy_from_slice(&noise(1000, 12));
    let v2 = [("model.safetensors", weights.clone())];
    publish(&server, None, "resnet", &v2);
    let r = json(&mv(
        &dest,
        &["sync", "--from", &server.base, "resnet", "--json"],
    ));
    assert_eq!(
        (n(&r, "models_added"), n(&r, "versions_added")),
        (0, 1),
        "{r}"
    );
    assert!(n(&r, "chunks_carried") < carried / 2, "{r} vs {carried}");
    assert!(n(&r, "chunks_named") > 0, "{r}");
    assert!(n(&r, "bundle_bytes") < full / 4, "{r} vs {full}");
    restored_equal(&dest, "resnet@2", &tmp.path().join("o2"), &v2);
    restored_equal(&dest, "resnet@1", &tmp.path().join("o3"), &v1);
    ok(&mv(&dest, &["verify", "--read-data"]));

    // Nothing new: nothing carried, the text report says so.
    let o = mv(&dest, &["sync", "--from", &url, "resnet@1..2"]);
    let text = ok(&o);
    assert!(text.contains("0 new versions"), "{text}");
    assert!(text.contains("0 chunks carried"), "{text}");
}

#[test]
fn the_export_route_refuses_a_bad_have_list_and_unknown_names_before_any_byte() {
    let server = Server::start(None);
    publish(&server, None, "m", &[("w.bin", noise(100_000, 3))]);
    let post = |query: &str, body: Vec<u8>| {
        server
            .client
            .post(format!("{}{query}", server.url("/export")))
            .body(body)
            .send()
            .unwrap()
    };
    let error = |r: reqwest::blocking::Response, status: StatusCode| -> String {
        assert_eq!(r.status(), status);
        let v: Value = r.json().unwrap();
        v["message"].as_str().unwrap().to_owned()
    };
    // A have list is whole 32-byte chunk ids.
    let m = error(post("?model=m", vec![7; 33]), StatusCode::BAD_REQUEST);
    assert!(m.contains("32"), "{m}");
    let m = error(post("?model=nope", Vec::new()), StatusCode::NOT_FOUND);
    assert!(m.contains("nope"), "{m}");
    let m = error(post("?model=m@5", Vec::new()), StatusCode::NOT_FOUND);
    assert!(m.contains("m@5"), "{m}");
    let m = error(post("?model=m@3..1", Vec::new()), StatusCode::BAD_REQUEST);
    assert!(m.contains("empty version range"), "{m}");
    let m = error(post("?colour=red", Vec::new()), StatusCode::BAD_REQUEST);
    assert!(m.contains("colour"), "{m}");
    let m = error(
        post(
            "?experiment=0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c",
            Vec::new(),
        ),
        StatusCode::NOT_FOUND,
    );
    assert!(m.contains("0190f3c2"), "{m}");
    // A good request: a bundle, which an import takes.
    let r = post("?model=m@1", vec![0; 64]);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    let bundle = r.bytes().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("m.mvb");
    std::fs::write(&file, &bundle).unwrap();
    let dest = tmp.path().join("dest");
    let r: Value = serde_json::from_str(&ok(&mv(
        &dest,
        &["import", file.to_str().unwrap(), "--json"],
    )))
    .unwrap();
    assert_eq!(r["versions_added"].as_u64(), Some(1), "{r}");
}

#[test]
fn sync_from_a_server_exits_4_for_an_unknown_model_and_names_the_status() {
    let server = Server::start(None);
    publish(&server, None, "m", &[("w.bin", noise(10_000, 5))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let url = format!("modelvault://{}", host(&server));
    let o = mv(&dest, &["sync", "--from", &url, "nope"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 4, "stderr: {err}");
    assert!(err.contains("404") && err.contains("nope"), "stderr: {err}");
    let o = mv(
        &dest,
        &[
            "sync",
            "--from",
            &url,
            "--experiment",
            "0190f3c2-6a2b-7cc0-8f5e-1b9d2f3a4b5c",
        ],
    );
    assert_eq!(code(&o), 4, "{}", String::from_utf8_lossy(&o.stderr));
    // A malformed range is the command line's mistake: exit 2, no request.
    let o = mv(&dest, &["sync", "--from", &url, "m@2..1"]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    // Nothing was imported by the failures.
    let r = json(&mv(&dest, &["sync", "--from", &url, "m", "--json"]));
    assert_eq!(n(&r, "versions_added"), 1, "{r}");
}

#[test]
fn sync_from_a_server_with_keys_sends_them_and_says_when_they_are_missing() {
    let keys = ("AKIDSYNC", "sync-secret");
    let server = Server::start(Some(keys));
    publish(
        &server,
        Some(keys),
        "private",
        &[("w.bin", noise(50_000, 6))],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let url = format!("modelvault://{}", host(&server));
    let o = mv(&dest, &["sync", "--from", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "synced without keys");
    assert!(
        err.contains("401") && err.contains("MODELVAULT_S3_ACCESS_KEY"),
        "stderr: {err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(&dest)
        .args(["sync", "--from", &url, "--json"])
        .env_remove("MODELVAULT_REPO")
        .env("MODELVAULT_S3_ACCESS_KEY", keys.0)
        .env("MODELVAULT_S3_SECRET_KEY", keys.1)
        .output()
        .unwrap();
    assert_eq!(n(&json(&o), "versions_added"), 1);
}
