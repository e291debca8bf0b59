//! What the command line prints: one JSON value of a documented shape for
//! every command with `--json` (docs/CLI.md, "JSON output"), sizes for
//! people in text, `du` and `who`, the one rule for creating an absent
//! store, `stats` beside an interrupted upload, and progress bars only on
//! a terminal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::cli::{json, mv, ok};

/// The exit code of a run that exited.
pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

/// Runs `args` with `--json` and parses stdout as exactly one JSON value
/// (`serde_json::from_str` refuses anything after it).
fn one_json(repo: &Path, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = ok(&mv(repo, &all));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
}

#[test]
fn every_command_prints_one_json_value_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("w.bin");
    std::fs::write(&f, crate::common::weights(600_000, 3)).unwrap();
    let fp = f.to_str().unwrap();
    let out = tmp.path().join("out");

    let init = one_json(&repo, &["init"]);
    assert_eq!(init["id"].as_str().unwrap().len(), 36, "{init}");
    let put = one_json(&repo, &["put", "--name", "m", fp]);
    assert_eq!(
        (put["name"].as_str(), put["version"].as_u64()),
        (Some("m"), Some(1))
    );
    assert_eq!(put["files"], 1);
    assert_eq!(put["bytes"], 600_000);
    assert!(put["base"].is_null(), "{put}");
    let model_id = put["model"].as_str().unwrap().to_string();
    let put2 = one_json(&repo, &["put", "--name", "m", fp]);
    assert_eq!(
        (put2["version"].as_u64(), put2["base"].as_str()),
        (Some(2), Some("m@1"))
    );
    let get = one_json(&repo, &["get", "m@1", "--out", out.to_str().unwrap()]);
    assert_eq!(get["bytes"], 600_000);
    assert_eq!(get["files"], 1);
    assert_eq!(get["version"], 1);

    let e = one_json(
        &repo,
        &["experiment", "create", "--project", "p", "--name", "n"],
    );
    let eid = e["id"].as_str().unwrap().to_string();
    for args in [
        vec!["experiment", "start", &eid],
        vec!["experiment", "log", &eid, "a line"],
        vec!["experiment", "progress", &eid, "40"],
        vec!["experiment", "progress", &eid],
        vec!["experiment", "param", &eid, "opt/lr=0.1"],
        vec!["experiment", "use", &eid, "m@1"],
        vec!["experiment", "show", &eid],
        vec!["experiment", "finalize", &eid],
    ] {
        let v = one_json(&repo, &args);
        assert_eq!(v["id"].as_str(), Some(eid.as_str()), "{args:?}: {v}");
        // Each prints the experiment as it is after the change.
        if args[1] == "progress" {
            assert_eq!(v["progress"], 40, "{v}");
        }
        if args[1] == "param" {
            assert_eq!(v["params"]["opt/lr"], 0.1, "{v}");
        }
    }
    let shown = one_json(&repo, &["experiment", "show", &eid]);
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["console_lines"], 1);

    for args in [
        vec!["model", "tag", "m", "t1"],
        vec!["model", "meta", "m", "acc=0.5"],
        vec!["model", "alias", "m", "best", "1"],
        vec!["model", "show", "m"],
        vec!["model", "finalize", "m"],
    ] {
        let v = one_json(&repo, &args);
        assert_eq!(v["id"].as_str(), Some(model_id.as_str()), "{args:?}: {v}");
    }
    let url = one_json(&repo, &["model", "url", "m"]);
    assert!(
        url["url"].as_str().unwrap().starts_with("modelvault://"),
        "{url}"
    );
    for args in [
        vec!["list"],
        vec!["versions", "m"],
        vec!["model", "versions", "m"],
        vec!["experiment", "list"],
        vec!["experiment", "console", &eid],
        vec!["uploads"],
    ] {
        assert!(one_json(&repo, &args).is_array(), "{args:?}");
    }
    for args in [
        vec!["show", "m"],
        vec!["stats"],
        vec!["verify"],
        vec!["du"],
        vec!["gc"],
        vec!["model", "delete", "m@1", "--force", "--dry-run"],
        vec!["model", "prune", "m", "--keep-last", "1", "--dry-run"],
        vec!["experiment", "delete", &eid, "--dry-run"],
        vec![
            "model",
            "register",
            "--name",
            "ext",
            "http://example.invalid/w",
        ],
    ] {
        assert!(one_json(&repo, &args).is_object(), "{args:?}");
    }
    let blob = one_json(&repo, &["show", "m@1"])["files"][0]["blob"]
        .as_str()
        .unwrap()
        .to_string();
    let who = one_json(&repo, &["who", &blob]);
    assert_eq!(
        who["blob"]["versions"].as_array().unwrap().len(),
        2,
        "{who}"
    );
}

/// `model list` has one shape whether or not a query filters it.
#[test]
fn model_list_has_one_shape_with_or_without_a_query() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("w.bin");
    std::fs::write(&f, b"weights").unwrap();
    for name in ["a", "b"] {
        ok(&mv(&repo, &["put", "--name", name, f.to_str().unwrap()]));
    }
    let sorted = |v: Value| {
        let mut a = v.as_array().unwrap().clone();
        a.sort_by_key(|m| m["id"].as_str().unwrap().to_string());
        a
    };
    let all = sorted(json(&mv(&repo, &["model", "list", "--json"])));
    let queried = sorted(json(&mv(
        &repo,
        &["model", "list", "--query", "latest >= 1", "--json"],
    )));
    assert_eq!(all.len(), 2);
    assert_eq!(all, queried);
    let keys: Vec<&String> = all[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["framework", "id", "latest", "name"]);
    assert_eq!(sorted(json(&mv(&repo, &["list", "--json"]))), all);
}

/// The commands that create something create an absent store; every other
/// command refuses one (exit 10) and creates nothing.
#[test]
fn creating_commands_create_the_store_and_the_others_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, args) in [
        vec!["experiment", "create", "--project", "p", "--name", "n"],
        vec![
            "model",
            "register",
            "--name",
            "x",
            "http://example.invalid/x",
        ],
    ]
    .iter()
    .enumerate()
    {
        let repo = tmp.path().join(format!("new{i}"));
        ok(&mv(&repo, args));
        assert!(ok(&mv(&repo, &["verify"])).contains(" 0 problems"));
    }
    let missing = tmp.path().join("missing");
    for args in [
        vec!["model", "tag", "m", "t"],
        vec![
            "experiment",
            "start",
            "0190d7a0-0000-7000-8000-000000000000",
        ],
        vec!["gc"],
        vec!["du"],
    ] {
        let o = mv(&missing, &args);
        assert_eq!(
            code(&o),
            10,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!missing.exists(), "{args:?} created the store");
    }
}

/// An interrupted upload's bytes are counted apart: the dedup ratio stays
/// what the versions make it.
#[test]
fn stats_counts_interrupted_upload_bytes_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("w.bin");
    std::fs::write(&f, crate::common::noise(1 << 20, 21)).unwrap();
    ok(&mv(&repo, &["put", "--name", "m", f.to_str().unwrap()]));
    let durable = {
        let store = modelvault::Store::open(&repo).unwrap();
        let mut w = store.blob_writer();
        w.write_all(&crate::common::noise(4 << 20, 22)).unwrap();
        w.suspend().unwrap();
        store.uploads().unwrap()[0].durable_bytes
    };
    assert!(durable > 1 << 20);
    let s = json(&mv(&repo, &["stats", "--json"]));
    assert_eq!(s["upload_bytes"], durable, "{s}");
    let ratio = s["dedup_ratio"].as_f64().unwrap();
    assert!(ratio >= 1.0, "dedup ratio {ratio} below 1: {s}");
    let text = ok(&mv(&repo, &["stats"]));
    assert!(text.contains("of which uploads"), "{text}");
}

/// Text shows sizes for people; `--json` the exact numbers.
#[test]
fn text_sizes_are_human_and_json_sizes_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("w.bin");
    std::fs::write(&f, crate::common::noise(3 << 20, 4)).unwrap();
    ok(&mv(&repo, &["put", "--name", "m", f.to_str().unwrap()]));
    let stats = ok(&mv(&repo, &["stats"]));
    assert!(stats.contains("logical bytes      3.0 MiB"), "{stats}");
    assert_eq!(
        json(&mv(&repo, &["stats", "--json"]))["logical_bytes"],
        3 << 20
    );
    let show = ok(&mv(&repo, &["show", "m"]));
    assert!(show.contains("1 files, 3.0 MiB"), "{show}");
    let out = tmp.path().join("o");
    let get = ok(&mv(&repo, &["get", "m", "--out", out.to_str().unwrap()]));
    assert!(get.contains("1 files, 3.0 MiB"), "{get}");
    let du = ok(&mv(&repo, &["du"]));
    assert!(du.contains("3.0 MiB"), "{du}");
}

/// `du` and `who` on the command line: the library's figures, sorted as
/// asked, and both directions of `who`.
#[test]
fn du_sorts_and_who_answers_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let big = tmp.path().join("big.bin");
    let small = tmp.path().join("small.bin");
    std::fs::write(&big, crate::common::noise(2 << 20, 1)).unwrap();
    std::fs::write(&small, crate::common::noise(100_000, 2)).unwrap();
    ok(&mv(
        &repo,
        &["put", "--name", "zbig", big.to_str().unwrap()],
    ));
    ok(&mv(
        &repo,
        &["put", "--name", "asmall", small.to_str().unwrap()],
    ));
    // Shares big.bin with zbig: nothing of it is unique to either.
    ok(&mv(
        &repo,
        &[
            "put",
            "--name",
            "mid",
            big.to_str().unwrap(),
            small.to_str().unwrap(),
        ],
    ));
    let names = |sort: &str| -> Vec<String> {
        json(&mv(&repo, &["du", "--sort", sort, "--json"]))["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("name"), ["asmall", "mid", "zbig"]);
    assert_eq!(names("size"), ["mid", "zbig", "asmall"]);
    let du = json(&mv(&repo, &["du", "--json"]));
    for m in du["models"].as_array().unwrap() {
        assert_eq!(m["unique_bytes"], 0, "every model's bytes are shared: {m}");
        assert_eq!(m["stored_bytes"], m["shared_bytes"]);
    }
    let library = {
        let store = modelvault::Store::open(&repo).unwrap();
        serde_json::to_value(store.space_usage().unwrap()).unwrap()
    };
    let by_name = |v: &Value| {
        let mut a = v["versions"].as_array().unwrap().clone();
        a.sort_by_key(|m| m["name"].as_str().unwrap().to_string());
        a
    };
    assert_eq!(by_name(&du), by_name(&library));

    let v = json(&mv(&repo, &["show", "mid", "--json"]));
    let blob = v["files"][0]["blob"].as_str().unwrap().to_string();
    let who = json(&mv(&repo, &["who", &format!("blob:{blob}"), "--json"]));
    let users: Vec<&str> = who["blob"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 2, "{who}");
    assert!(users.contains(&"mid") && users.contains(&"zbig"), "{who}");
    assert!(who["chunk"].is_null());
    let text = ok(&mv(&repo, &["who", &blob]));
    assert!(text.contains("zbig@1  big.bin"), "{text}");
    let o = mv(&repo, &["who", &"ab".repeat(32)]);
    assert_eq!(code(&o), 4, "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `args` with stderr on a pseudo-terminal (through util-linux
/// `script`), returning what the terminal showed.
pub(crate) fn on_a_terminal(repo: &Path, args: &[&str]) -> String {
    let mut cmd = format!(
        "{} --repo {}",
        env!("CARGO_BIN_EXE_modelvault"),
        repo.display()
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("MODELVAULT_REPO")
        .env("COLUMNS", "120")
        .output()
        .expect("util-linux script");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Progress bars are drawn on a terminal (bytes, rate, ETA) and never into
/// a pipe.
#[test]
fn progress_shows_on_a_terminal_and_not_in_a_pipe() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux `script` is needed to run the binary on a pseudo-terminal");
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("w.bin");
    std::fs::write(&f, crate::common::noise(32 << 20, 8)).unwrap();
    let fp = f.to_str().unwrap().to_string();
    let out = tmp.path().join("o");
    let op = out.to_str().unwrap().to_string();
    let shows = |args: &[&str]| {
        let shown = on_a_terminal(&repo, args);
        assert!(
            shown.contains("ETA") && shown.contains("MiB"),
            "{args:?} drew no progress on a terminal: {shown:?}"
        );
    };
    let hides = |args: &[&str]| {
        let piped = mv(&repo, args);
        assert!(
            piped.status.success(),
            "{}",
            String::from_utf8_lossy(&piped.stderr)
        );
        let err = String::from_utf8_lossy(&piped.stderr);
        assert!(
            !err.contains("ETA"),
            "{args:?} drew progress into a pipe: {err:?}"
        );
    };
    for args in [
        vec!["put", "--name", "m", fp.as_str()],
        vec!["get", "m", "--out", op.as_str()],
        vec!["verify", "--read-data"],
    ] {
        shows(&args);
        hides(&args);
    }
    // gc has packs to work through once the model is gone.
    ok(&mv(&repo, &["model", "delete", "m"]));
    shows(&["gc"]);
    ok(&mv(&repo, &["put", "--name", "m2", &fp]));
    ok(&mv(&repo, &["model", "delete", "m2"]));
    hides(&["gc"]);
}

/// `completions SHELL` prints a script for that shell, with no store.
#[test]
fn completions_print_a_script_per_shell_without_a_store() {
    for (shell, marker) in [
        ("bash", "complete -F _modelvault"),
        ("zsh", "#compdef modelvault"),
        ("fish", "complete -c modelvault"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_modelvault"))
            .args(["completions", shell])
            .env_remove("MODELVAULT_REPO")
            .output()
            .unwrap();
        let out = ok(&o);
        assert!(out.contains(marker), "{shell}: no {marker:?}");
        // Subcommands and their options are in it.
        assert!(
            out.contains("verify") && out.contains("read-data"),
            "{shell}"
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
}

/// An interrupted put's session says which file of which model it was
/// storing, in `uploads` text and JSON.
#[test]
fn uploads_name_the_file_and_model_of_an_interrupted_put() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let data = crate::common::noise(3 << 20, 31);
    {
        let store = modelvault::Store::create(&repo).unwrap();
        // What `put` does, stopped half way.
        let put = store
            .put_version("resnet")
            .begin([("weights/w.bin", data.len() as u64)])
            .unwrap();
        let mut w = put.writer("weights/w.bin").unwrap();
        w.write_all(&data).unwrap();
        w.suspend().unwrap();
        // A plain writer has no label.
        let mut other = store.blob_writer();
        other.write_all(&crate::common::noise(2 << 20, 32)).unwrap();
        other.suspend().unwrap();
    }
    let list = json(&mv(&repo, &["uploads", "--json"]));
    let labels: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["label"])
        .collect();
    assert_eq!(labels.len(), 2, "{list}");
    assert!(
        labels.contains(&&Value::from("put resnet: weights/w.bin")),
        "{list}"
    );
    assert!(labels.contains(&&Value::Null), "{list}");
    let text = ok(&mv(&repo, &["uploads"]));
    assert!(text.contains("put resnet: weights/w.bin"), "{text}");
    // A resumed upload keeps its label.
    let store = modelvault::Store::open(&repo).unwrap();
    let id = store
        .uploads()
        .unwrap()
        .into_iter()
        .find(|u| u.label.is_some())
        .unwrap()
        .id;
    let w = store
        .resume_upload(id.to_string().parse().unwrap())
        .unwrap();
    w.suspend().unwrap();
    let again = store.uploads().unwrap();
    let u = again.iter().find(|u| u.id == id).unwrap();
    assert_eq!(u.label.as_deref(), Some("put resnet: weights/w.bin"));
}
