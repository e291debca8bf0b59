//! The CLI's registry maintenance commands: `model register`, `model
//! delete`, `model prune`, `experiment delete`, `uploads`, and every
//! `--dry-run` (which changes nothing and reports what the real run then does).

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::cli::{fails_with_one_line, json, mv, ok};

/// Everything a deletion could change, as the CLI shows it: stats, the
/// model list, every model's versions, the experiment list and `uploads`.
fn snapshot(repo: &Path) -> Vec<Value> {
    let mut out = vec![
        json(&mv(repo, &["stats", "--json"])),
        json(&mv(repo, &["list", "--json"])),
        json(&mv(repo, &["experiment", "list", "--json"])),
        json(&mv(repo, &["uploads", "--json"])),
    ];
    let models = out[1].as_array().unwrap().clone();
    for m in models {
        let id = m["id"].as_str().unwrap();
        out.push(json(&mv(repo, &["model", "versions", id, "--json"])));
        out.push(json(&mv(repo, &["model", "show", id, "--json"])));
    }
    out
}

/// A report with its `dry_run` flag cleared, to compare a dry run with the real one.
fn without_flag(mut r: Value) -> Value {
    r["dry_run"] = Value::Null;
    r
}

/// Puts `data` as file `w.bin` of the next version of `name`.
fn put(repo: &Path, dir: &Path, name: &str, data: &[u8], extra: &[&str]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let f = dir.join("w.bin");
    std::fs::write(&f, data).unwrap();
    let args = [
        &["put", "--no-delta", "--name", name][..],
        extra,
        &[f.to_str().unwrap()],
    ]
    .concat();
    ok(&mv(repo, &args)).lines().last().unwrap().to_string()
}

/// Runs `args` with `--dry-run --json`, checks that nothing changed, then
/// runs it for real and checks that the real report is the dry run's.
/// Returns the real report.
fn dry_then_real(repo: &Path, args: &[&str]) -> Value {
    let before = snapshot(repo);
    let dry = json(&mv(repo, &[args, &["--dry-run", "--json"]].concat()));
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(
        snapshot(repo),
        before,
        "a dry run of {args:?} changed the store"
    );
    let real = json(&mv(repo, &[args, &["--json"]].concat()));
    assert_eq!(real["dry_run"], false, "{real}");
    assert_eq!(
        without_flag(dry),
        without_flag(real.clone()),
        "the dry run of {args:?} reported something else than the real run did"
    );
    real
}

fn stat(repo: &Path, field: &str) -> u64 {
    json(&mv(repo, &["stats", "--json"]))[field]
        .as_u64()
        .unwrap()
}

fn versions(repo: &Path, model: &str) -> Vec<u64> {
    json(&mv(repo, &["model", "versions", model, "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

#[test]
fn model_register_records_a_url_without_storing_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&mv(&repo, &["init"]));
    let before = json(&mv(&repo, &["stats", "--json"]));
    let url = "https://example.com/models/llama.safetensors";
    let id = ok(&mv(
        &repo,
        &[
            "model",
            "register",
            "--name",
            "llama",
            "--project",
            "nlp",
            "--checksum",
            "sha256:00ff",
            url,
        ],
    ));
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    // The same URL again is the same model, whatever name it is given.
    let again = json(&mv(
        &repo,
        &["model", "register", "--name", "other", url, "--json"],
    ));
    assert_eq!(again["id"], id);
    assert_eq!(again["name"], "llama");
    let show = json(&mv(&repo, &["model", "show", "llama", "--json"]));
    assert_eq!(show["id"], id);
    assert_eq!(show["project"], "nlp");
    assert_eq!(show["external"]["url"], url);
    assert_eq!(show["external"]["checksum"], "sha256:00ff");
    let text = ok(&mv(&repo, &["model", "show", "llama"]));
    assert!(text.contains(&format!("external {url}")), "{text}");
    let listed = json(&mv(&repo, &["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // No bytes were stored: the blob and byte figures are unchanged.
    let after = json(&mv(&repo, &["stats", "--json"]));
    for k in [
        "logical_bytes",
        "stored_bytes",
        "chunks",
        "blobs",
        "versions",
    ] {
        assert_eq!(after[k], before[k], "{k}");
    }
    // A bad name or an empty URL is refused with nothing registered.
    fails_with_one_line(
        &mv(
            &repo,
            &["model", "register", "--name", "../x", "https://e/x"],
        ),
        "model name",
    );
    fails_with_one_line(
        &mv(&repo, &["model", "register", "--name", "empty", ""]),
        "model URL",
    );
    assert_eq!(json(&mv(&repo, &["list", "--json"])), listed);
    assert!(ok(&mv(&repo, &["verify"])).contains(" 0 problems"));
}

/// `model prune`: a dry run changes nothing and reports what the real prune
/// then deletes; aliased versions and the newest N stay; freed blobs are gone
/// from the stats afterwards.
#[test]
fn model_prune_keeps_the_newest_and_aliased_and_its_dry_run_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    for i in 1..=5u64 {
        let v = put(
            &repo,
            &tmp.path().join(format!("m{i}")),
            "m",
            &crate::common::noise(50_000, i),
            &[],
        );
        assert_eq!(v, format!("m@{i}"));
    }
    ok(&mv(&repo, &["model", "alias", "m", "golden", "2"]));
    let id = json(&mv(&repo, &["model", "show", "m", "--json"]))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Younger than a day: --keep-within keeps everything.
    let r = dry_then_real(&repo, &["model", "prune", "m", "--keep-within", "1d"]);
    assert_eq!(r["versions"], serde_json::json!([]));
    assert_eq!(versions(&repo, "m"), [1, 2, 3, 4, 5]);

    let blobs = stat(&repo, "blobs");
    let r = dry_then_real(&repo, &["model", "prune", "m", "--keep-last", "2"]);
    assert_eq!(r["versions"], serde_json::json!([[id, 1], [id, 3]]));
    assert_eq!(r["blobs_freed"], 2);
    assert!(r["bytes_freed"].as_u64().unwrap() >= 100_000, "{r}");
    assert_eq!(versions(&repo, "m"), [2, 4, 5]);
    assert_eq!(stat(&repo, "blobs"), blobs - 2);
    let text = ok(&mv(&repo, &["model", "prune", "m", "--keep-last", "2"]));
    assert!(
        text.contains("deleted 0 experiments, 0 models, 0 versions"),
        "{text}"
    );

    // No rule, or neither a model nor --all: refused, nothing deleted.
    let before = snapshot(&repo);
    fails_with_one_line(&mv(&repo, &["model", "prune", "m"]), "keep-last");
    fails_with_one_line(&mv(&repo, &["model", "prune", "--keep-last", "1"]), "--all");
    fails_with_one_line(
        &mv(&repo, &["model", "prune", "m", "--keep-within", "soon"]),
        "soon",
    );
    assert_eq!(snapshot(&repo), before);
    ok(&mv(&repo, &["gc", "--compact-below", "0.99"]));
    assert!(ok(&mv(&repo, &["verify", "--read-data"])).contains(" 0 problems"));
}

/// `model prune --all` over models that share a file: the dry run reports
/// the blobs the real prune frees (the shared one is freed only because
/// both models drop it).
#[test]
fn model_prune_all_dry_run_counts_blobs_shared_between_models() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let shared = crate::common::noise(40_000, 77);
    for name in ["a", "b"] {
        put(
            &repo,
            &tmp.path().join(format!("{name}1")),
            name,
            &shared,
            &[],
        );
        put(
            &repo,
            &tmp.path().join(format!("{name}2")),
            name,
            &crate::common::noise(40_000, name.len() as u64 + name.as_bytes()[0] as u64),
            &[],
        );
    }
    let blobs = stat(&repo, "blobs");
    assert_eq!(blobs, 3);
    let r = dry_then_real(&repo, &["model", "prune", "--all", "--keep-last", "1"]);
    assert_eq!(r["versions"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["blobs_freed"], 1, "{r}");
    assert_eq!(stat(&repo, "blobs"), blobs - 1);
    assert_eq!(versions(&repo, "a"), [2]);
    assert_eq!(versions(&repo, "b"), [2]);
}

/// `model delete` of a version and of a model, each first as a dry run; a
/// finalized model needs --force (refused, nothing deleted, without it).
#[test]
fn model_delete_dry_runs_match_the_real_deletions() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    for i in 1..=3u64 {
        put(
            &repo,
            &tmp.path().join(format!("v{i}")),
            "m",
            &crate::common::noise(30_000, 10 + i),
            &[],
        );
    }
    put(&repo, &tmp.path().join("f"), "fin", b"final weights", &[]);
    let r = dry_then_real(&repo, &["model", "delete", "m@2"]);
    assert_eq!(r["versions"].as_array().unwrap().len(), 1);
    assert_eq!(r["blobs_freed"], 1);
    assert_eq!(versions(&repo, "m"), [1, 3]);
    fails_with_one_line(&mv(&repo, &["model", "delete", "m@2"]), "m@2");

    ok(&mv(&repo, &["model", "finalize", "fin"]));
    let before = snapshot(&repo);
    fails_with_one_line(
        &mv(&repo, &["model", "delete", "fin", "--dry-run"]),
        "finalized",
    );
    fails_with_one_line(&mv(&repo, &["model", "delete", "fin"]), "finalized");
    assert_eq!(snapshot(&repo), before);
    let r = dry_then_real(&repo, &["model", "delete", "fin", "--force"]);
    assert_eq!(r["models"].as_array().unwrap().len(), 1);
    let r = dry_then_real(&repo, &["model", "delete", "m"]);
    assert_eq!(r["versions"].as_array().unwrap().len(), 2);
    assert_eq!(json(&mv(&repo, &["list", "--json"])), serde_json::json!([]));
    assert_eq!(stat(&repo, "blobs"), 0);
    ok(&mv(&repo, &["gc", "--compact-below", "0.99"]));
    assert!(ok(&mv(&repo, &["verify", "--read-data"])).contains(" 0 problems"));
    assert_eq!(stat(&repo, "chunks"), 0);
}

/// `experiment delete`: alone (its models stay, unlinked), and with
/// `--with-models`; each first as a dry run.
#[test]
fn experiment_delete_with_and_without_models_and_dry_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&mv(&repo, &["init"]));
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let id = ok(&mv(
            &repo,
            &["experiment", "create", "--project", "p", "--name", name],
        ))
        .trim()
        .to_string();
        ok(&mv(&repo, &["experiment", "log", &id, "line"]));
        put(
            &repo,
            &tmp.path().join(name),
            &format!("model-{name}"),
            &crate::common::noise(20_000, name.len() as u64 * 31 + name.as_bytes()[0] as u64),
            &["--experiment", &id],
        );
        ids.push(id);
    }
    let r = dry_then_real(&repo, &["experiment", "delete", &ids[0]]);
    assert_eq!(r["experiments"], serde_json::json!([ids[0]]));
    assert_eq!(r["models"], serde_json::json!([]));
    assert_eq!(versions(&repo, "model-one"), [1]);
    fails_with_one_line(&mv(&repo, &["experiment", "show", &ids[0]]), "not found");

    let model_two = json(&mv(&repo, &["model", "show", "model-two", "--json"]))["id"].clone();
    let r = dry_then_real(&repo, &["experiment", "delete", &ids[1], "--with-models"]);
    assert_eq!(r["experiments"], serde_json::json!([ids[1]]));
    assert_eq!(r["models"], serde_json::json!([model_two]));
    assert_eq!(r["blobs_freed"], 1);
    fails_with_one_line(&mv(&repo, &["model", "show", "model-two"]), "not found");
    let text = ok(&mv(&repo, &["experiment", "list"]));
    assert!(text.trim().is_empty(), "{text}");
    fails_with_one_line(&mv(&repo, &["experiment", "delete", &ids[1]]), "not found");
    assert!(ok(&mv(&repo, &["verify"])).contains(" 0 problems"));
}

/// `uploads` lists the sessions an interrupted upload left (id and durable
/// bytes, as the library reports them); `gc` expires them.
#[test]
fn uploads_lists_suspended_sessions_until_gc_expires_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let (id, durable) = {
        let store = modelvault::Store::create(&repo).unwrap();
        let mut w = store.blob_writer();
        w.write_all(&crate::common::noise(3 << 20, 5)).unwrap();
        let id = w.suspend().unwrap();
        let list = store.uploads().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, id.get());
        (list[0].id, list[0].durable_bytes)
    };
    assert!(durable > 0);
    let listed = json(&mv(&repo, &["uploads", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["durable_bytes"], durable);
    assert_eq!(listed[0]["open"], false);
    let text = ok(&mv(&repo, &["uploads"]));
    // Sizes in text are for people (`3.0 MiB`); --json has the exact count.
    let (shown_id, rest) = text.trim().split_once("  ").unwrap();
    assert_eq!(shown_id, id.to_string());
    assert!(rest.ends_with("iB durable"), "{text}");
    // A young session survives a default gc, an expired one does not.
    ok(&mv(&repo, &["gc"]));
    assert_eq!(json(&mv(&repo, &["uploads", "--json"])), listed);
    let r = json(&mv(
        &repo,
        &["gc", "--expire-uploads-after", "0s", "--json"],
    ));
    assert_eq!(r["uploads_expired"], 1, "{r}");
    assert_eq!(
        json(&mv(&repo, &["uploads", "--json"])),
        serde_json::json!([])
    );
    assert!(ok(&mv(&repo, &["uploads"])).trim().is_empty());
    assert!(ok(&mv(&repo, &["verify"])).contains(" 0 problems"));
}
