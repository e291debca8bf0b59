//! The commands that reach the library's artifacts, scalars, environment,
//! tensors, index repair and upload resume: `experiment artifact
//! add|get`, `experiment artifacts`, `experiment scalar|scalars`,
//! `experiment env`, `tensor`, `index verify|rebuild` and `put --resume`,
//! through the real binary: text and `--json` output, and exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::cli::{json, mv, ok};

/// The exit code of a run that exited.
fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

/// Runs `args` with `stdin` on standard input.
fn mv_in(repo: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("MODELVAULT_REPO")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Stdout of a successful run, as bytes.
fn bytes(o: &Output) -> Vec<u8> {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout.clone()
}

fn new_experiment(repo: &Path) -> String {
    let e = json(&mv(
        repo,
        &[
            "experiment",
            "create",
            "--project",
            "p",
            "--name",
            "n",
            "--json",
        ],
    ));
    e["id"].as_str().unwrap().to_string()
}

#[test]
fn artifacts_are_added_from_files_and_stdin_listed_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let eid = new_experiment(&repo);
    let data = crate::common::noise(3 << 20, 41);
    let f = tmp.path().join("ckpt.bin");
    std::fs::write(&f, &data).unwrap();

    let text = ok(&mv(
        &repo,
        &[
            "experiment",
            "artifact",
            "add",
            &eid,
            "ckpt",
            f.to_str().unwrap(),
        ],
    ));
    assert!(text.starts_with("ckpt  revision 1"), "{text}");
    assert!(text.contains("3.0 MiB"), "{text}");
    // From stdin: the next revision of the same name.
    let a = json(&mv_in(
        &repo,
        &["experiment", "artifact", "add", &eid, "ckpt", "-", "--json"],
        b"second revision",
    ));
    assert_eq!(
        (a["name"].as_str(), a["revision"].as_u64()),
        (Some("ckpt"), Some(2))
    );
    assert_eq!(a["size"], 15);
    assert_eq!(a["blob"].as_str().unwrap().len(), 64, "{a}");

    let list = json(&mv(&repo, &["experiment", "artifacts", &eid, "--json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["revision"], 1);
    assert_eq!(list[0]["size"], data.len());
    assert_eq!(list[1]["revision"], 2);
    let text = ok(&mv(&repo, &["experiment", "artifacts", &eid]));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(list[0]["blob"].as_str().unwrap()), "{text}");

    // Latest by default; --revision; -o writes a file.
    let latest = bytes(&mv(&repo, &["experiment", "artifact", "get", &eid, "ckpt"]));
    assert_eq!(latest, b"second revision");
    let first = bytes(&mv(
        &repo,
        &[
            "experiment",
            "artifact",
            "get",
            &eid,
            "ckpt",
            "--revision",
            "1",
        ],
    ));
    assert!(first == data, "revision 1 read back differs");
    let out = tmp.path().join("restored.bin");
    ok(&mv(
        &repo,
        &[
            "experiment",
            "artifact",
            "get",
            &eid,
            "ckpt",
            "--revision",
            "1",
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::read(&out).unwrap() == data);
    // Created as a shell redirection would create it (0666 less the
    // umask, like `f`), not with a temporary file's owner-only mode.
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&out), mode(&f), "mode of {}", out.display());

    // Unknown name or revision: not found, and no file written.
    let missing = tmp.path().join("missing.bin");
    for args in [
        vec!["experiment", "artifact", "get", &eid, "nope"],
        vec![
            "experiment",
            "artifact",
            "get",
            &eid,
            "ckpt",
            "--revision",
            "3",
        ],
        vec![
            "experiment",
            "artifact",
            "get",
            &eid,
            "ckpt",
            "--revision",
            "3",
            "-o",
            missing.to_str().unwrap(),
        ],
    ] {
        let o = mv(&repo, &args);
        assert_eq!(
            code(&o),
            4,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(!missing.exists());
    // A missing input file: failure, nothing added.
    let o = mv(
        &repo,
        &[
            "experiment",
            "artifact",
            "add",
            &eid,
            "x",
            tmp.path().join("absent").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1);
    assert_eq!(
        json(&mv(&repo, &["experiment", "artifacts", &eid, "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn scalars_from_arguments_and_stdin_and_a_bad_line_names_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let eid = new_experiment(&repo);

    let r = json(&mv(
        &repo,
        &[
            "experiment",
            "scalar",
            &eid,
            "loss",
            "train",
            "1",
            "-0.5",
            "--json",
        ],
    ));
    assert_eq!(
        (r["id"].as_str(), r["points"].as_u64()),
        (Some(eid.as_str()), Some(1))
    );
    // 2,500 lines: three commits of up to 1,000; blank lines skipped.
    let mut lines = String::new();
    for i in 2..2502u64 {
        lines.push_str(&format!("loss\tval  {i} {}\n", i as f64 / 4.0));
        if i == 700 {
            lines.push_str("   \n");
        }
    }
    let r = json(&mv_in(
        &repo,
        &["experiment", "scalar", &eid, "--stdin", "--json"],
        lines.as_bytes(),
    ));
    assert_eq!(r["points"], 2500);

    let series = json(&mv(
        &repo,
        &["experiment", "scalars", &eid, "loss", "--json"],
    ));
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 2501);
    assert_eq!(
        series[0],
        serde_json::json!({"series": "train", "iteration": 1, "value": -0.5})
    );
    assert_eq!(
        series[1],
        serde_json::json!({"series": "val", "iteration": 2, "value": 0.5})
    );
    let text = ok(&mv(&repo, &["experiment", "scalars", &eid, "loss"]));
    assert_eq!(text.lines().next(), Some("train  1  -0.5"), "{text}");
    assert_eq!(text.lines().count(), 2501);

    // Line 1,502 is bad: the first batch (lines 1 to 1,000) is written,
    // nothing from line 1,001 on.
    let mut lines = String::new();
    for i in 1..=1600u64 {
        if i == 1502 {
            lines.push_str("acc train twelve 0.1\n");
        } else {
            lines.push_str(&format!("acc train {i} 0.5\n"));
        }
    }
    let o = mv_in(
        &repo,
        &["experiment", "scalar", &eid, "--stdin"],
        lines.as_bytes(),
    );
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("stdin line 1502"), "{err}");
    assert!(err.contains("ITERATION \"twelve\""), "{err}");
    assert!(
        err.contains("lines 1 to 1000 were written, nothing from line 1001 on"),
        "{err}"
    );
    let acc = json(&mv(
        &repo,
        &["experiment", "scalars", &eid, "acc", "--json"],
    ));
    assert_eq!(acc.as_array().unwrap().len(), 1000);

    // Bad arguments: a value that is not a finite number, a missing one.
    for (args, want) in [
        (vec!["experiment", "scalar", &eid, "m", "s", "1", "NaN"], 1),
        (vec!["experiment", "scalar", &eid, "m", "s", "-1", "0"], 1),
        (vec!["experiment", "scalar", &eid, "m", "s", "1"], 2),
    ] {
        assert_eq!(code(&mv(&repo, &args)), want, "{args:?}");
    }
    assert!(
        json(&mv(&repo, &["experiment", "scalars", &eid, "m", "--json"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
    // An unknown experiment: not found.
    let o = mv(
        &repo,
        &[
            "experiment",
            "scalars",
            "01a25256-6d02-72e1-9ef0-4df53d143131",
            "loss",
        ],
    );
    assert_eq!(code(&o), 4);
}

#[test]
fn env_shows_captures_and_sets_the_environment_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let eid = new_experiment(&repo);

    let none = json(&mv(&repo, &["experiment", "env", &eid, "--json"]));
    assert!(
        none["environment"].is_null() && none["run"].is_null(),
        "{none}"
    );
    assert!(ok(&mv(&repo, &["experiment", "env", &eid])).contains("none recorded"));

    let workdir = tmp.path().canonicalize().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(&repo)
        .args(["experiment", "env", &eid, "--capture", "--json"])
        .args(["--set", "interpreter=CPython 3.11.7"])
        .args(["--set", "package.torch=2.3.0"])
        .args(["--set", "command=python train.py --lr 0.1"])
        .current_dir(&workdir)
        .env("USER", "trainer")
        .env_remove("MODELVAULT_REPO")
        .output()
        .unwrap();
    let v = json(&o);
    assert_eq!(v["environment"]["interpreter"], "CPython 3.11.7", "{v}");
    assert_eq!(v["environment"]["packages"]["torch"], "2.3.0", "{v}");
    assert_eq!(v["run"]["user"], "trainer", "{v}");
    assert_eq!(v["run"]["working_dir"], workdir.to_str().unwrap(), "{v}");
    assert_eq!(
        v["run"]["command"],
        serde_json::json!(["python", "train.py", "--lr", "0.1"])
    );
    assert!(!v["run"]["host"].as_str().unwrap().is_empty(), "{v}");
    // A temporary folder is no git repository: nothing is made up.
    assert!(v["run"]["git_commit"].is_null(), "{v}");
    // `experiment show` has the same records.
    let shown = json(&mv(&repo, &["experiment", "show", &eid, "--json"]));
    assert_eq!(shown["environment"], v["environment"]);
    assert_eq!(shown["run"], v["run"]);
    let text = ok(&mv(&repo, &["experiment", "env", &eid]));
    assert!(text.contains("interpreter  CPython 3.11.7"), "{text}");
    assert!(text.contains("package      torch 2.3.0"), "{text}");
    assert!(text.contains("user         trainer"), "{text}");

    // An empty package version removes it; an unknown key changes nothing.
    let v = json(&mv(
        &repo,
        &[
            "experiment",
            "env",
            &eid,
            "--set",
            "package.torch=",
            "--json",
        ],
    ));
    assert_eq!(v["environment"]["packages"], serde_json::json!({}));
    let before = json(&mv(&repo, &["experiment", "env", &eid, "--json"]));
    for bad in ["colour=blue", "no-equals-sign", "package.=1"] {
        let o = mv(
            &repo,
            &["experiment", "env", &eid, "--set", "user=x", "--set", bad],
        );
        assert_eq!(code(&o), 2, "{bad}");
    }
    assert_eq!(
        json(&mv(&repo, &["experiment", "env", &eid, "--json"])),
        before
    );
}

#[test]
fn tensor_lists_a_files_tensors_and_streams_one() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let w = crate::common::weights(40_000, 5);
    let b = crate::common::noise(256, 6);
    let st =
        crate::common::safetensors(&[("layer.w", "F32", 10_000, &w), ("layer.b", "BF16", 128, &b)]);
    let f = tmp.path().join("model.safetensors");
    std::fs::write(&f, &st).unwrap();
    let plain = tmp.path().join("notes.txt");
    std::fs::write(&plain, b"not tensors").unwrap();
    ok(&mv(
        &repo,
        &[
            "put",
            "--name",
            "m",
            f.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
    ));

    let l = json(&mv(
        &repo,
        &["tensor", "m@1", "model.safetensors", "--json"],
    ));
    assert_eq!(l["format"], "safetensors");
    assert_eq!(
        (l["name"].as_str(), l["version"].as_u64()),
        (Some("m"), Some(1))
    );
    let t = l["tensors"].as_array().unwrap();
    assert_eq!(t.len(), 2, "{l}");
    assert_eq!(t[0]["name"], "layer.w");
    assert_eq!(t[0]["dtype"], "F32");
    assert_eq!(t[0]["shape"], serde_json::json!([10_000]));
    assert_eq!(t[0]["bytes"], 40_000);
    assert_eq!(t[1]["name"], "layer.b");
    assert_eq!(t[1]["dtype"], "BF16");
    assert_eq!(t[1]["bytes"], 256);
    let text = ok(&mv(&repo, &["tensor", "m", "model.safetensors"]));
    assert!(text.contains("safetensors, 2 tensors"), "{text}");
    assert!(
        text.contains("F32") && text.contains("[10000]") && text.contains("layer.w"),
        "{text}"
    );

    // One tensor's bytes: stdout, or a file (with its span as JSON).
    assert!(bytes(&mv(&repo, &["tensor", "m", "model.safetensors", "layer.w"])) == w);
    let out = tmp.path().join("b.bin");
    let span = json(&mv(
        &repo,
        &[
            "tensor",
            "m",
            "model.safetensors",
            "layer.b",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(span["name"], "layer.b");
    assert_eq!(std::fs::read(&out).unwrap(), b);
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&out), mode(&f), "mode of {}", out.display());

    // Not found (4): an unknown tensor, a file with no tensor layout, an
    // unknown file; nothing written.
    let none = tmp.path().join("none.bin");
    for args in [
        vec!["tensor", "m", "model.safetensors", "layer.x"],
        vec![
            "tensor",
            "m",
            "model.safetensors",
            "layer.x",
            "-o",
            none.to_str().unwrap(),
        ],
        vec!["tensor", "m", "notes.txt"],
        vec!["tensor", "m", "notes.txt", "layer.w"],
        vec!["tensor", "m", "absent.safetensors"],
    ] {
        let o = mv(&repo, &args);
        assert_eq!(
            code(&o),
            4,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!none.exists());
    // --json with a tensor's bytes on stdout is a usage error.
    let o = mv(
        &repo,
        &["tensor", "m", "model.safetensors", "layer.w", "--json"],
    );
    assert_eq!(code(&o), 2);
}

#[test]
fn index_verify_finds_damage_exits_3_and_rebuild_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("w.bin");
    std::fs::write(&f, b"weights").unwrap();
    ok(&mv(&repo, &["put", "--name", "m", f.to_str().unwrap()]));
    ok(&mv(&repo, &["model", "tag", "m", "best"]));

    let clean = json(&mv(&repo, &["index", "verify", "--json"]));
    assert_eq!(clean, serde_json::json!({"missing": [], "extra": []}));
    assert!(ok(&mv(&repo, &["index", "verify"])).contains("0 missing and 0 extra"));

    // An index entry no record implies.
    let bogus = {
        let meta = repo.join("meta");
        let opts = rocksdb::Options::default();
        let cfs = rocksdb::DB::list_cf(&opts, &meta).unwrap();
        let db = rocksdb::DB::open_cf(&opts, &meta, &cfs).unwrap();
        let cf = db.cf_handle("index").unwrap();
        let key = [&[0x0Au8][..], b"ghost\0", &[7u8; 16]].concat();
        db.put_cf(cf, &key, b"").unwrap();
        db.flush_cf(cf).unwrap();
        hex::encode(key)
    };
    let o = mv(&repo, &["index", "verify", "--json"]);
    assert_eq!(code(&o), 3);
    let found: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(found["extra"], serde_json::json!([bogus]));
    let o = mv(&repo, &["index", "verify"]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("extra   {bogus}")));

    let fixed = json(&mv(&repo, &["index", "rebuild", "--json"]));
    assert_eq!(fixed, found);
    assert_eq!(json(&mv(&repo, &["index", "verify", "--json"])), clean);
    assert!(ok(&mv(&repo, &["index", "rebuild"])).contains("repaired 0 missing and 0 extra"));

    // No store: 10.
    assert_eq!(
        code(&mv(&tmp.path().join("none"), &["index", "verify"])),
        10
    );
}

/// The sessions `uploads --json` lists.
fn sessions(repo: &Path) -> Vec<Value> {
    json(&mv(repo, &["uploads", "--json"]))
        .as_array()
        .unwrap()
        .clone()
}

/// Runs `put --name big FILE` and kills it once part of the file is
/// durable in an upload session (seen from a read-only handle beside it).
/// Returns that session, or `None` if the put finished first.
fn interrupted_put(repo: &Path, file: &Path) -> Option<modelvault::UploadInfo> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(repo)
        .args(["put", "--name", "big"])
        .arg(file)
        .env_remove("MODELVAULT_REPO")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = None;
    let found = loop {
        if child.try_wait().unwrap().is_some() {
            break None;
        }
        if reader.is_none() {
            reader = modelvault::Store::open_read_only(repo).ok();
        }
        if let Some(r) = &reader {
            let _ = r.catch_up();
            if let Some(u) = r
                .uploads()
                .ok()
                .and_then(|l| l.into_iter().find(|u| u.durable_bytes > 0))
            {
                break Some(u);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // SIGKILL: no chance to clean up, as a crash or an OOM kill.
    let _ = child.kill();
    child.wait().unwrap();
    drop(reader);
    found.filter(|_| {
        sessions(repo)
            .iter()
            .any(|s| s["durable_bytes"].as_u64() > Some(0))
    })
}

/// A `put` killed part way resumes with `put --resume` to the same bytes;
/// a source that changed since is refused with the session as it was.
#[test]
fn put_resume_continues_a_killed_put_and_refuses_a_changed_source() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.bin");
    // Small chunks: a manifest segment (1,024 chunks) is durable about
    // every 4 MiB, so the put is caught with part of the file durable. A
    // put that finished first is tried again with a larger file.
    let mut size = 48 << 20;
    let (repo, session, data) = loop {
        let repo = tmp.path().join(format!("repo-{size}"));
        modelvault::Store::options()
            .create(true)
            .chunking(modelvault::CdcParams {
                min: 1024,
                avg: 4096,
                max: 16384,
            })
            .open(&repo)
            .unwrap();
        let data = crate::common::noise(size, 51);
        std::fs::write(&file, &data).unwrap();
        if let Some(s) = interrupted_put(&repo, &file) {
            break (repo, s, data);
        }
        assert!(
            size < 1 << 30,
            "every put finished before it could be killed"
        );
        size *= 2;
    };
    assert!(session.durable_bytes < data.len() as u64, "{session:?}");
    assert_eq!(session.label.as_deref(), Some("put big: big.bin"));
    let id = session.id.to_string();
    // The session as `uploads` lists it (its durable bytes may have grown
    // past what the reader saw before the kill).
    let listed = sessions(&repo);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let durable = listed[0]["durable_bytes"].as_u64().unwrap() as usize;

    // A changed source: one byte inside the durable prefix differs.
    let changed = tmp.path().join("changed.bin");
    let mut other = data.clone();
    other[durable / 2] ^= 0x40;
    std::fs::write(&changed, &other).unwrap();
    // Shorter than the durable prefix.
    let short = tmp.path().join("short.bin");
    std::fs::write(&short, &data[..durable - 1]).unwrap();
    for (src, needle) in [
        (&changed, format!("differ from byte {} on", durable / 2)),
        (&short, "fewer than the".to_string()),
    ] {
        let o = mv(&repo, &["put", "--resume", &id, src.to_str().unwrap()]);
        assert_eq!(code(&o), 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&needle), "{err}");
        assert!(err.contains("left as it was"), "{err}");
        assert_eq!(sessions(&repo), listed, "the session changed");
    }
    // Another model's name, or an unknown session: refused, nothing changes.
    let o = mv(
        &repo,
        &[
            "put",
            "--resume",
            &id,
            "--name",
            "other",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1);
    let o = mv(
        &repo,
        &["put", "--resume", "999999", file.to_str().unwrap()],
    );
    assert_eq!(code(&o), 4);
    assert_eq!(sessions(&repo), listed);
    assert!(json(&mv(&repo, &["list", "--json"]))
        .as_array()
        .unwrap()
        .is_empty());

    // The same source: finished, committed as `put` would, byte-identical.
    let r = json(&mv(
        &repo,
        &["put", "--resume", &id, file.to_str().unwrap(), "--json"],
    ));
    assert_eq!(
        (r["name"].as_str(), r["version"].as_u64()),
        (Some("big"), Some(1))
    );
    assert_eq!(r["bytes"], data.len());
    assert_eq!(r["resumed"]["durable_bytes"], durable);
    assert!(sessions(&repo).is_empty());
    let shown = json(&mv(&repo, &["show", "big@1", "--json"]));
    assert_eq!(shown["files"][0]["path"], "big.bin");
    assert_eq!(shown["files"][0]["size"], data.len());
    let out = tmp.path().join("out");
    ok(&mv(
        &repo,
        &["get", "big@1", "--out", out.to_str().unwrap()],
    ));
    assert!(
        std::fs::read(out.join("big.bin")).unwrap() == data,
        "restored bytes differ"
    );
    assert_eq!(
        json(&mv(&repo, &["verify", "--read-data", "--json"]))["problems"],
        serde_json::json!([])
    );
    // The session is gone: resuming it again is not found.
    let o = mv(&repo, &["put", "--resume", &id, file.to_str().unwrap()]);
    assert_eq!(code(&o), 4);
}
