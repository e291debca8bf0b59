//! The registry's HTTP API (`/_api/v1/`) of the real `modelvault serve`
//! binary, through a real HTTP client: every route, the error statuses,
//! ranges and entity tags, authentication, the OpenAPI document, and the
//! console followed as server-sent events while a writer appends to it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A `modelvault serve` process over a fresh store; SIGTERMed and waited
/// for on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    pub(crate) client: Client,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start(credentials: Option<(&str, &str)>) -> Server {
        Server::start_with(credentials, &[])
    }

    fn start_with(credentials: Option<(&str, &str)>, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelvault"));
        cmd.arg("--repo")
            .arg(dir.path().join("repo"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("MODELVAULT_S3_ACCESS_KEY")
            .env_remove("MODELVAULT_S3_SECRET_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        match credentials {
            Some((a, s)) => {
                cmd.env("MODELVAULT_S3_ACCESS_KEY", a)
                    .env("MODELVAULT_S3_SECRET_KEY", s);
            }
            None => {
                cmd.arg("--anonymous");
            }
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("modelvault: serving S3 on ")
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
            .to_owned();
        let client = Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        Server {
            child,
            base,
            client,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/_api/v1{path}", self.base)
    }

    fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().unwrap()
    }

    fn post(&self, path: &str, body: Value) -> Response {
        self.client.post(self.url(path)).json(&body).send().unwrap()
    }

    fn put(&self, path: &str, body: Value) -> Response {
        self.client.put(self.url(path)).json(&body).send().unwrap()
    }

    fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().unwrap()
    }

    fn upload(&self, bytes: &[u8]) -> String {
        let r = self
            .client
            .post(self.url("/blobs"))
            .body(bytes.to_vec())
            .send()
            .unwrap();
        let v = expect(r, StatusCode::CREATED);
        assert_eq!(v["size"], bytes.len());
        v["blob"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The JSON body of `r`, after checking its status.
fn expect(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let text = r.text().unwrap();
    assert_eq!(got, status, "body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// Checks an error answer: status and error kind; returns the body.
fn error(r: Response, status: StatusCode, kind: &str) -> Value {
    let v = expect(r, status);
    assert_eq!(v["error"], kind, "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
    v
}

fn bytes(r: Response, status: StatusCode) -> (reqwest::header::HeaderMap, Vec<u8>) {
    assert_eq!(r.status(), status);
    let h = r.headers().clone();
    (h, r.bytes().unwrap().to_vec())
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn api_experiment_routes() {
    let s = Server::start(None);
    let e = expect(
        s.post(
            "/experiments",
            json!({"project": "vision", "name": "run-1", "tags": ["a"], "kind": "training"}),
        ),
        StatusCode::CREATED,
    );
    let id = e["id"].as_str().unwrap().to_owned();
    assert_eq!(e["status"], "created");
    let e2 = expect(
        s.post(
            "/experiments",
            json!({"project": "vision", "name": "run-2"}),
        ),
        StatusCode::CREATED,
    );
    let id2 = e2["id"].as_str().unwrap().to_owned();

    // Found by id and by name; listed a page at a time.
    assert_eq!(
        expect(s.get(&format!("/experiments/{id}")), StatusCode::OK)["name"],
        "run-1"
    );
    assert_eq!(
        expect(s.get("/experiments/by-name/vision/run-2"), StatusCode::OK)["id"],
        id2.as_str()
    );
    let page = expect(s.get("/experiments?project=vision&limit=1"), StatusCode::OK);
    assert_eq!(page["items"][0]["id"], id.as_str());
    assert_eq!(page["next"], id.as_str());
    let page = expect(
        s.get(&format!("/experiments?project=vision&limit=1&after={id}")),
        StatusCode::OK,
    );
    assert_eq!(page["items"][0]["id"], id2.as_str());
    let page = expect(
        s.get(&format!("/experiments?project=vision&after={id2}")),
        StatusCode::OK,
    );
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["next"], Value::Null);
    let tagged = expect(s.get("/experiments?tag=a&status=created"), StatusCode::OK);
    assert_eq!(tagged["items"].as_array().unwrap().len(), 1);
    error(
        s.get("/experiments?limit=abc"),
        StatusCode::BAD_REQUEST,
        "BadParameter",
    );
    error(
        s.get("/experiments?status=sleeping"),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );

    // Lifecycle, progress, hyperparameters.
    assert_eq!(
        expect(
            s.post(&format!("/experiments/{id}/start"), json!(null)),
            StatusCode::OK
        )["status"],
        "running"
    );
    let p = expect(
        s.put(
            &format!("/experiments/{id}/progress"),
            json!({"progress": 40}),
        ),
        StatusCode::OK,
    );
    assert_eq!(p, json!({"progress": 40, "status": "running"}));
    assert_eq!(
        expect(
            s.get(&format!("/experiments/{id}/progress")),
            StatusCode::OK
        )["progress"],
        40
    );
    error(
        s.put(
            &format!("/experiments/{id}/progress"),
            json!({"progress": 101}),
        ),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
    let params = expect(
        s.put(
            &format!("/experiments/{id}/params"),
            json!({"General": {"lr": 0.1}, "Optim": {"name": "adam", "steps": 3}}),
        ),
        StatusCode::OK,
    );
    assert_eq!(
        params,
        json!({"General": {"lr": 0.1}, "Optim": {"name": "adam", "steps": 3}})
    );
    let params = expect(
        s.put(
            &format!("/experiments/{id}/params"),
            json!({"Optim": {"steps": 5}}),
        ),
        StatusCode::OK,
    );
    assert_eq!(params["Optim"], json!({"name": "adam", "steps": 5}));
    assert_eq!(
        expect(s.get(&format!("/experiments/{id}/params")), StatusCode::OK),
        params
    );
    error(
        s.put(
            &format!("/experiments/{id}/params"),
            json!({"General": {"x": null}}),
        ),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );

    // Console.
    let first = expect(
        s.post(
            &format!("/experiments/{id}/console"),
            json!({"lines": [{"stream": "stdout", "text": "one"}, {"stream": "stderr", "text": "two"}]}),
        ),
        StatusCode::OK,
    );
    assert_eq!(first, json!({"first": 0}));
    let c = expect(
        s.get(&format!("/experiments/{id}/console?from=1&limit=5")),
        StatusCode::OK,
    );
    assert_eq!(c["lines"][0]["text"], "two");
    assert_eq!(c["lines"][0]["stream"], "stderr");
    assert_eq!(c["next"], 2);

    // Scalars.
    expect(
        s.post(
            &format!("/experiments/{id}/scalars"),
            json!({"scalars": [
                {"metric": "loss", "variant": "train", "iteration": 1, "value": 0.5},
                {"metric": "loss", "variant": "train", "iteration": 2, "value": 0.25}
            ]}),
        ),
        StatusCode::NO_CONTENT,
    );
    let pts = expect(
        s.get(&format!("/experiments/{id}/scalars/loss")),
        StatusCode::OK,
    );
    assert_eq!(
        pts["points"],
        json!([
            {"variant": "train", "iteration": 1, "value": 0.5},
            {"variant": "train", "iteration": 2, "value": 0.25}
        ])
    );
    // One invalid point: 400, and none of the batch is stored.
    error(
        s.post(
            &format!("/experiments/{id}/scalars"),
            json!({"scalars": [
                {"metric": "acc", "variant": "val", "iteration": 1, "value": 0.9},
                {"metric": "acc", "variant": "", "iteration": 2, "value": 0.8}
            ]}),
        ),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
    let pts = expect(
        s.get(&format!("/experiments/{id}/scalars/acc")),
        StatusCode::OK,
    );
    assert_eq!(pts["points"], json!([]));

    // Artifacts: uploaded streaming, read back whole and in part.
    let data = content(300_000);
    let r = s
        .client
        .put(s.url(&format!("/experiments/{id}/artifacts/weights.bin")))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(expect(r, StatusCode::CREATED), json!({"revision": 1}));
    let r = s
        .client
        .put(s.url(&format!("/experiments/{id}/artifacts/weights.bin")))
        .body(b"second".to_vec())
        .send()
        .unwrap();
    assert_eq!(expect(r, StatusCode::CREATED), json!({"revision": 2}));
    let list = expect(
        s.get(&format!("/experiments/{id}/artifacts")),
        StatusCode::OK,
    );
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, got) = bytes(
        s.get(&format!(
            "/experiments/{id}/artifacts/weights.bin?revision=1"
        )),
        StatusCode::OK,
    );
    assert_eq!(got, data);
    let (_, got) = bytes(
        s.get(&format!("/experiments/{id}/artifacts/weights.bin")),
        StatusCode::OK,
    );
    assert_eq!(got, b"second");
    let r = s
        .client
        .get(s.url(&format!(
            "/experiments/{id}/artifacts/weights.bin?revision=1"
        )))
        .header("Range", "bytes=1000-1999")
        .send()
        .unwrap();
    let (_, got) = bytes(r, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got, &data[1000..2000]);
    error(
        s.get(&format!("/experiments/{id}/artifacts/nothing")),
        StatusCode::NOT_FOUND,
        "NotFound",
    );

    // Used models.
    let blob = s.upload(b"model bytes");
    expect(
        s.post("/models", json!({"name": "base"})),
        StatusCode::CREATED,
    );
    expect(
        s.post(
            "/models/base/versions",
            json!({"files": [{"path": "m.bin", "blob": blob, "size": 11}]}),
        ),
        StatusCode::CREATED,
    );
    expect(
        s.post(
            &format!("/experiments/{id}/used-models"),
            json!({"model": "base@1"}),
        ),
        StatusCode::NO_CONTENT,
    );
    let e = expect(s.get(&format!("/experiments/{id}")), StatusCode::OK);
    assert_eq!(e["input_models"][0][1], 1);

    // Finished: every write is refused with 409, and nothing is stored.
    let done = expect(
        s.post(
            &format!("/experiments/{id}/finish"),
            json!({"status": "completed"}),
        ),
        StatusCode::OK,
    );
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress"], 100);
    error(
        s.post(
            &format!("/experiments/{id}/console"),
            json!({"lines": [{"stream": "stdout", "text": "late"}]}),
        ),
        StatusCode::CONFLICT,
        "Immutable",
    );
    let r = s
        .client
        .put(s.url(&format!("/experiments/{id}/artifacts/late.bin")))
        .body(b"late".to_vec())
        .send()
        .unwrap();
    error(r, StatusCode::CONFLICT, "Immutable");
    error(
        s.post(
            &format!("/experiments/{id2}/finish"),
            json!({"status": "sleeping"}),
        ),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
    assert_eq!(
        expect(
            s.post(
                &format!("/experiments/{id2}/finish"),
                json!({"status": "aborted"})
            ),
            StatusCode::OK
        )["status"],
        "stopped"
    );
}

#[test]
fn api_unknown_ids_bad_json_and_bad_queries() {
    let s = Server::start(None);
    let unknown = "0190d7a4-7c3e-7b1e-9a2f-0123456789ab";
    error(
        s.get(&format!("/experiments/{unknown}")),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    error(
        s.get(&format!("/models/{unknown}")),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    error(
        s.get("/models/no-such-model/versions"),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    error(
        s.get(&format!("/blobs/{}", "ab".repeat(32))),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    error(
        s.get("/experiments/not-a-uuid"),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
    error(s.get("/no/such/route"), StatusCode::NOT_FOUND, "NotFound");

    // Bad JSON: 400 with serde's message; a wrong field too.
    let r = s
        .client
        .post(s.url("/experiments"))
        .header("content-type", "application/json")
        .body("{\"project\": \"p\", \"name\": ")
        .send()
        .unwrap();
    let v = error(r, StatusCode::BAD_REQUEST, "BadJson");
    assert!(v["message"].as_str().unwrap().contains("line 1"), "{v}");
    error(
        s.post("/experiments", json!({"project": "p", "nme": "x"})),
        StatusCode::BAD_REQUEST,
        "BadJson",
    );
    error(
        s.post("/experiments", json!({"project": "", "name": "x"})),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );

    // A malformed query: 400 with the parser's message and byte offset.
    let bad = "framework = pytorch AND (";
    let want = modelvault::query::parse(bad).unwrap_err();
    let r = s
        .client
        .get(s.url("/models"))
        .query(&[("query", bad)])
        .send()
        .unwrap();
    let v = error(r, StatusCode::BAD_REQUEST, "Query");
    assert_eq!(v["offset"], want.at, "{v}");
    assert_eq!(v["message"], want.to_string());
    assert!(want.at > 0 && want.at <= bad.len(), "{want}");
}

#[test]
fn api_model_routes_and_version_files() {
    let s = Server::start(None);
    let weights = content(2_000_000);
    let config = br#"{"hidden": 64}"#.to_vec();
    let wb = s.upload(&weights);
    let cb = s.upload(&config);
    // Content addressed: the same bytes give the same id.
    assert_eq!(s.upload(&config), cb);
    let (h, got) = bytes(s.get(&format!("/blobs/{cb}")), StatusCode::OK);
    assert_eq!(got, config);
    assert_eq!(h["etag"], format!("\"{cb}\""));

    let m = expect(
        s.post(
            "/models",
            json!({"name": "resnet", "project": "vision", "framework": "pytorch",
                   "tags": ["cnn"], "labels": {"cat": 0}, "metadata": {"acc": 0.9, "layers": 50},
                   "comment": "first"}),
        ),
        StatusCode::CREATED,
    );
    let mid = m["id"].as_str().unwrap().to_owned();
    assert!(
        m["url"].as_str().unwrap().starts_with("modelvault://"),
        "{m}"
    );
    assert_eq!(m["metadata"], json!({"acc": 0.9, "layers": 50}));
    let ext = expect(
        s.post(
            "/models/external",
            json!({"name": "bert", "url": "https://example.com/bert.bin", "checksum": "sha256:00"}),
        ),
        StatusCode::CREATED,
    );
    assert_eq!(ext["external"]["url"], "https://example.com/bert.bin");
    error(
        s.post("/models/external", json!({"name": "nourl"})),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );

    let files = json!({"files": [
        {"path": "weights/model.bin", "blob": wb, "size": weights.len()},
        {"path": "config.json", "blob": cb, "size": config.len()}
    ]});
    assert_eq!(
        expect(
            s.post("/models/resnet/versions", files.clone()),
            StatusCode::CREATED
        ),
        json!({"version": 1})
    );
    assert_eq!(
        expect(
            s.post(&format!("/models/{mid}/versions"), files),
            StatusCode::CREATED
        ),
        json!({"version": 2})
    );
    error(
        s.post(
            "/models/resnet/versions",
            json!({"files": [{"path": "x", "blob": "cd".repeat(32), "size": 1}]}),
        ),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    assert_eq!(
        expect(s.get("/models/resnet/versions"), StatusCode::OK),
        json!({"versions": [1, 2]})
    );

    // Metadata, tags, labels, aliases.
    let v = expect(
        s.put("/models/resnet/metadata/dataset", json!("imagenet")),
        StatusCode::OK,
    );
    assert_eq!(v["metadata"]["dataset"], "imagenet");
    let v = expect(s.delete("/models/resnet/metadata/acc"), StatusCode::OK);
    assert!(v["metadata"].get("acc").is_none(), "{v}");
    let v = expect(
        s.post("/models/resnet/tags", json!({"tags": ["prod", "x"]})),
        StatusCode::OK,
    );
    assert_eq!(v["tags"], json!(["cnn", "prod", "x"]));
    let v = expect(s.delete("/models/resnet/tags/x"), StatusCode::OK);
    assert_eq!(v["tags"], json!(["cnn", "prod"]));
    let v = expect(
        s.put("/models/resnet/labels", json!({"cat": 0, "dog": 1})),
        StatusCode::OK,
    );
    assert_eq!(v["labels"], json!({"cat": 0, "dog": 1}));
    let v = expect(
        s.put("/models/resnet/aliases/champion", json!({"version": 1})),
        StatusCode::OK,
    );
    assert_eq!(v["aliases"], json!({"champion": 1}));
    error(
        s.put("/models/resnet/aliases/bad", json!({"version": 9})),
        StatusCode::NOT_FOUND,
        "NotFound",
    );

    // Queries and listings.
    let found = expect(
        s.client
            .get(s.url("/models"))
            .query(&[("query", "tag = prod AND framework = pytorch")])
            .send()
            .unwrap(),
        StatusCode::OK,
    );
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["name"], "resnet");
    let all = expect(s.get("/models"), StatusCode::OK);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        expect(s.get("/models/resnet@champion"), StatusCode::OK)["id"],
        mid.as_str()
    );

    // Versions by number, alias and latest.
    let v1 = expect(s.get("/models/resnet/versions/champion"), StatusCode::OK);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["files"][0]["path"], "config.json");
    assert_eq!(
        expect(s.get("/models/resnet/versions/latest"), StatusCode::OK)["version"],
        2
    );
    assert_eq!(
        expect(s.get(&format!("/models/{mid}/versions/2")), StatusCode::OK)["version"],
        2
    );
    error(
        s.get("/models/resnet/versions/3"),
        StatusCode::NOT_FOUND,
        "NotFound",
    );

    // A version's files: whole, ranges, entity tags, HEAD.
    let path = "/models/resnet/versions/latest/files/weights/model.bin";
    let (h, got) = bytes(s.get(path), StatusCode::OK);
    assert_eq!(got, weights);
    assert_eq!(h["etag"], format!("\"{wb}\""));
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-length"], weights.len().to_string());
    let ranged = |range: &str| {
        s.client
            .get(s.url(path))
            .header("Range", range)
            .send()
            .unwrap()
    };
    let r = ranged("bytes=100-199");
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", weights.len())
    );
    let (_, got) = bytes(r, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got, &weights[100..200]);
    let (_, got) = bytes(ranged("bytes=-10"), StatusCode::PARTIAL_CONTENT);
    assert_eq!(got, &weights[weights.len() - 10..]);
    let r = ranged(&format!("bytes={}-", weights.len() + 5));
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", weights.len())
    );
    error(r, StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange");
    let r = s
        .client
        .get(s.url(path))
        .header("If-None-Match", format!("\"{wb}\""))
        .send()
        .unwrap();
    let (h, got) = bytes(r, StatusCode::NOT_MODIFIED);
    assert!(got.is_empty());
    assert_eq!(h["etag"], format!("\"{wb}\""));
    let r = s
        .client
        .get(s.url(path))
        .header("If-None-Match", format!("\"{cb}\""))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // If-Range with another tag: the whole content, not the range.
    let r = s
        .client
        .get(s.url(path))
        .header("Range", "bytes=0-9")
        .header("If-Range", format!("\"{cb}\""))
        .send()
        .unwrap();
    let (_, got) = bytes(r, StatusCode::OK);
    assert_eq!(got.len(), weights.len());
    let r = s.client.head(s.url(path)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], weights.len().to_string());
    let r = s
        .client
        .get(s.url(&format!("/blobs/{wb}")))
        .header("Range", "bytes=5-9")
        .send()
        .unwrap();
    let (_, got) = bytes(r, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got, &weights[5..10]);
    error(
        s.get("/models/resnet/versions/1/files/nope.bin"),
        StatusCode::NOT_FOUND,
        "NotFound",
    );

    // Alias removed; model finalized: writes give 409.
    let v = expect(s.delete("/models/resnet/aliases/champion"), StatusCode::OK);
    assert_eq!(v["aliases"], json!({}));
    let v = expect(
        s.post("/models/resnet/finalize", json!(null)),
        StatusCode::OK,
    );
    assert!(v["finalized_ms"].is_u64(), "{v}");
    error(
        s.put("/models/resnet/metadata/late", json!(1)),
        StatusCode::CONFLICT,
        "Immutable",
    );
    error(
        s.post(
            "/models/resnet/versions",
            json!({"files": [{"path": "c.json", "blob": cb, "size": config.len()}]}),
        ),
        StatusCode::CONFLICT,
        "Immutable",
    );
    error(
        s.post("/models/resnet/tags", json!({"tags": ["late"]})),
        StatusCode::CONFLICT,
        "Immutable",
    );
}

#[test]
fn api_auth_basic_with_the_s3_key_pair() {
    let s = Server::start(Some(("AKIDTEST", "s3cr3t-key")));
    // The OpenAPI document is open.
    let doc = expect(s.get("/openapi.json"), StatusCode::OK);
    assert!(doc["paths"].is_object());
    // Everything else needs the key pair.
    let r = s.get("/models");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"modelvault\""
    );
    error(r, StatusCode::UNAUTHORIZED, "Unauthorized");
    for (user, pass) in [
        ("AKIDTEST", "wrong"),
        ("other", "s3cr3t-key"),
        ("AKIDTEST", ""),
    ] {
        let r = s
            .client
            .get(s.url("/models"))
            .basic_auth(user, Some(pass))
            .send()
            .unwrap();
        error(r, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let r = s
        .client
        .post(s.url("/experiments"))
        .json(&json!({"project": "p", "name": "n"}))
        .send()
        .unwrap();
    error(r, StatusCode::UNAUTHORIZED, "Unauthorized");
    let r = s
        .client
        .get(s.url("/models"))
        .basic_auth("AKIDTEST", Some("s3cr3t-key"))
        .send()
        .unwrap();
    assert_eq!(expect(r, StatusCode::OK), json!({"items": []}));
    let r = s
        .client
        .post(s.url("/experiments"))
        .basic_auth("AKIDTEST", Some("s3cr3t-key"))
        .json(&json!({"project": "p", "name": "n"}))
        .send()
        .unwrap();
    expect(r, StatusCode::CREATED);
}

#[test]
fn api_openapi_document_lists_the_routes() {
    let s = Server::start(None);
    let r = s.get("/openapi.json");
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc = expect(r, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let want: &[(&str, &[&str])] = &[
        ("/_api/v1/experiments", &["get", "post"]),
        ("/_api/v1/experiments/by-name/{project}/{name}", &["get"]),
        ("/_api/v1/experiments/{id}", &["get"]),
        ("/_api/v1/experiments/{id}/start", &["post"]),
        ("/_api/v1/experiments/{id}/finish", &["post"]),
        ("/_api/v1/experiments/{id}/progress", &["get", "put"]),
        ("/_api/v1/experiments/{id}/params", &["get", "put"]),
        ("/_api/v1/experiments/{id}/console", &["get", "post"]),
        ("/_api/v1/experiments/{id}/console/follow", &["get"]),
        ("/_api/v1/experiments/{id}/scalars", &["post"]),
        ("/_api/v1/experiments/{id}/scalars/{metric}", &["get"]),
        ("/_api/v1/experiments/{id}/artifacts", &["get"]),
        (
            "/_api/v1/experiments/{id}/artifacts/{name}",
            &["get", "put"],
        ),
        ("/_api/v1/experiments/{id}/used-models", &["post"]),
        ("/_api/v1/models", &["get", "post"]),
        ("/_api/v1/models/external", &["post"]),
        ("/_api/v1/models/{model}", &["get"]),
        ("/_api/v1/models/{model}/metadata/{key}", &["put", "delete"]),
        ("/_api/v1/models/{model}/tags", &["post"]),
        ("/_api/v1/models/{model}/tags/{tag}", &["delete"]),
        ("/_api/v1/models/{model}/labels", &["put"]),
        (
            "/_api/v1/models/{model}/aliases/{alias}",
            &["put", "delete"],
        ),
        ("/_api/v1/models/{model}/finalize", &["post"]),
        ("/_api/v1/models/{model}/versions", &["get", "post"]),
        ("/_api/v1/models/{model}/versions/{version}", &["get"]),
        (
            "/_api/v1/models/{model}/versions/{version}/files/{path}",
            &["get"],
        ),
        ("/_api/v1/blobs", &["post"]),
        ("/_api/v1/blobs/{id}", &["get", "delete"]),
        ("/_api/v1/export", &["post"]),
    ];
    for (path, methods) in want {
        let p = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing: {:?}", paths.keys()));
        for m in *methods {
            assert!(p.get(*m).is_some(), "{m} {path} missing");
        }
    }
    assert_eq!(paths.len(), want.len(), "{:?}", paths.keys());
    // Paths outside /_api/ still reach the S3 endpoint on the same listener.
    let r = s.client.get(format!("{}/", s.base)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("ListAllMyBucketsResult"));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "ExperimentInfo",
        "ModelInfo",
        "ModelVersion",
        "ConsoleLine",
        "ErrorBody",
        "VersionFile",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}

#[test]
fn api_console_follow_streams_every_line_once_in_order_then_end() {
    let s = Server::start(None);
    let e = expect(
        s.post("/experiments", json!({"project": "p", "name": "follow"})),
        StatusCode::CREATED,
    );
    let id = e["id"].as_str().unwrap().to_owned();
    expect(
        s.post(&format!("/experiments/{id}/start"), json!(null)),
        StatusCode::OK,
    );
    // Two lines before the reader starts, the rest while it reads.
    expect(
        s.post(
            &format!("/experiments/{id}/console"),
            json!({"lines": [{"stream": "stdout", "text": "line 0"}, {"stream": "stdout", "text": "line 1"}]}),
        ),
        StatusCode::OK,
    );
    let total = 60u64;
    let r = s.get(&format!("/experiments/{id}/console/follow"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");

    let writer = {
        let client = s.client.clone();
        let base = s.url(&format!("/experiments/{id}"));
        std::thread::spawn(move || {
            for i in (2..total).step_by(2) {
                let lines = json!({"lines": [
                    {"stream": "stdout", "text": format!("line {i}")},
                    {"stream": "stderr", "text": format!("line {}", i + 1)}
                ]});
                let r = client
                    .post(format!("{base}/console"))
                    .json(&lines)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                if i == 30 {
                    let r = client
                        .put(format!("{base}/progress"))
                        .json(&json!({"progress": 50}))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), StatusCode::OK);
                }
            }
            let r = client
                .post(format!("{base}/finish"))
                .json(&json!({"status": "completed"}))
                .send()
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        })
    };

    // Parse the event stream until `end`.
    let mut seqs = Vec::new();
    let mut texts = Vec::new();
    let mut ended = None;
    let mut progress = Vec::new();
    let mut reader = BufReader::new(r);
    let (mut event, mut id_field, mut data) = (String::new(), None::<u64>, String::new());
    let mut line = String::new();
    while ended.is_none() {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the stream ended before its end event");
        let l = line.trim_end_matches('\n');
        if l.is_empty() {
            if !event.is_empty() {
                let v: Value = serde_json::from_str(&data).unwrap();
                match event.as_str() {
                    "line" => {
                        assert_eq!(id_field, v["seq"].as_u64());
                        seqs.push(v["seq"].as_u64().unwrap());
                        texts.push(v["text"].as_str().unwrap().to_owned());
                    }
                    "progress" => progress.push(v["progress"].as_u64().unwrap()),
                    "end" => ended = Some(v),
                    other => panic!("unexpected event {other}: {data}"),
                }
            }
            event.clear();
            data.clear();
            id_field = None;
        } else if let Some(v) = l.strip_prefix("event: ") {
            event = v.to_owned();
        } else if let Some(v) = l.strip_prefix("id: ") {
            id_field = Some(v.parse().unwrap());
        } else if let Some(v) = l.strip_prefix("data: ") {
            data = v.to_owned();
        } else {
            assert!(l.starts_with(':'), "unexpected line {l:?}");
        }
    }
    writer.join().unwrap();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>());
    assert_eq!(
        texts,
        (0..total).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert_eq!(ended.unwrap()["status"], "completed");
    // Progress only ever moves forward here, and ends at 100.
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&100));
    // Nothing after `end`: the server closed the stream.
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");

    // Resuming with Last-Event-ID: only the lines after it, then `end`.
    let r = s
        .client
        .get(s.url(&format!("/experiments/{id}/console/follow")))
        .header("Last-Event-ID", "57")
        .send()
        .unwrap();
    let text = r.text().unwrap();
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["58", "59"]);
    assert!(text.contains("event: end"), "{text}");
}

#[test]
fn api_uploads_over_the_size_limit_are_refused_and_store_nothing() {
    let s = Server::start_with(None, &["--max-object-size", "1000"]);
    let r = s
        .client
        .post(s.url("/blobs"))
        .body(content(5000))
        .send()
        .unwrap();
    error(r, StatusCode::PAYLOAD_TOO_LARGE, "TooLarge");
    // Without a declared length too (a chunked body), cut off at the limit.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(content(5000)));
    let r = s.client.post(s.url("/blobs")).body(body).send().unwrap();
    error(r, StatusCode::PAYLOAD_TOO_LARGE, "TooLarge");
    let e = expect(
        s.post("/experiments", json!({"project": "p", "name": "big"})),
        StatusCode::CREATED,
    );
    let id = e["id"].as_str().unwrap();
    let r = s
        .client
        .put(s.url(&format!("/experiments/{id}/artifacts/big.bin")))
        .body(content(5000))
        .send()
        .unwrap();
    error(r, StatusCode::PAYLOAD_TOO_LARGE, "TooLarge");
    assert_eq!(
        expect(
            s.get(&format!("/experiments/{id}/artifacts")),
            StatusCode::OK
        ),
        json!([])
    );
    // Within the limit: stored.
    let small = content(1000);
    let blob = s.upload(&small);
    let (_, got) = bytes(s.get(&format!("/blobs/{blob}")), StatusCode::OK);
    assert_eq!(got, small);
}

#[test]
fn api_console_follow_ends_cleanly_when_the_server_stops() {
    let mut s = Server::start(None);
    let e = expect(
        s.post("/experiments", json!({"project": "p", "name": "stopping"})),
        StatusCode::CREATED,
    );
    let id = e["id"].as_str().unwrap().to_owned();
    expect(
        s.post(
            &format!("/experiments/{id}/console"),
            json!({"lines": [{"stream": "stdout", "text": "before"}]}),
        ),
        StatusCode::OK,
    );
    let r = s.get(&format!("/experiments/{id}/console/follow"));
    let mut reader = BufReader::new(r);
    // Read up to the line event, so the stream is known to be open.
    let mut seen = String::new();
    while !seen.contains("\"text\":\"before\"") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    // The experiment never ends, yet the stream closes cleanly (not
    // broken off at the end of the grace period) and the server exits 0.
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains("event: end"), "{rest}");
    assert!(s.child.wait().unwrap().success());
}

/// `DELETE /blobs/{id}` releases one hold an upload took: a blob that a
/// version names stays; one that nothing names is gone.
#[test]
fn api_deleting_a_blob_releases_the_hold_its_upload_took() {
    let s = Server::start(None);
    let kept = content(200_000);
    let b = s.upload(&kept);
    assert_eq!(s.upload(&kept), b, "the same bytes, the same blob");
    expect(s.post("/models", json!({"name": "m"})), StatusCode::CREATED);
    expect(
        s.post(
            "/models/m/versions",
            json!({"files": [{"path": "w.bin", "blob": b, "size": kept.len()}]}),
        ),
        StatusCode::CREATED,
    );
    // Two uploads, two holds; then none left to release.
    for _ in 0..2 {
        assert_eq!(
            s.delete(&format!("/blobs/{b}")).status(),
            StatusCode::NO_CONTENT
        );
    }
    error(
        s.delete(&format!("/blobs/{b}")),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
    // The version still names it.
    let (_, got) = bytes(s.get("/models/m/versions/1/files/w.bin"), StatusCode::OK);
    assert!(got == kept);

    let lone = content(1_000);
    let l = s.upload(&lone);
    assert_eq!(
        s.delete(&format!("/blobs/{l}")).status(),
        StatusCode::NO_CONTENT
    );
    error(
        s.get(&format!("/blobs/{l}")),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    error(
        s.delete(&format!("/blobs/{l}")),
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    error(
        s.delete("/blobs/not-hex"),
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
}
