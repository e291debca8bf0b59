//! `export`, `import`, `have` and `sync` through the binary: a bundle moved
//! between stores, its JSON reports, exit codes for a damaged bundle and for
//! conflicts, incremental exports, and progress only on a terminal.

use std::path::Path;

use serde_json::Value;

use crate::cli::{mv, ok};
use crate::cli_output::{code, on_a_terminal};
use crate::common::noise;

fn json(repo: &Path, args: &[&str]) -> Value {
    let out = ok(&mv(repo, args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
}

#[test]
fn a_bundle_moves_models_and_an_experiment_between_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let w1 = tmp.path().join("w1.bin");
    std::fs::write(&w1, noise(3 << 20, 1)).unwrap();
    let exp = ok(&mv(
        &a,
        &["experiment", "create", "--project", "p", "--name", "run"],
    ));
    let exp = exp.trim();
    ok(&mv(&a, &["experiment", "log", exp, "hello"]));
    ok(&mv(
        &a,
        &[
            "put",
            "--name",
            "m",
            "--experiment",
            exp,
            w1.to_str().unwrap(),
        ],
    ));
    let bundle = tmp.path().join("m.mvb");
    let bp = bundle.to_str().unwrap();
    let r = json(&a, &["export", "--experiment", exp, "-o", bp, "--json"]);
    assert_eq!(
        (r["experiments"].as_u64(), r["models"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(
        r["bundle_bytes"].as_u64(),
        Some(std::fs::metadata(&bundle).unwrap().len())
    );
    let r = json(&b, &["import", bp, "--json"]);
    assert_eq!(
        (
            r["experiments_added"].as_u64(),
            r["versions_added"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(r["conflicts"], Value::Array(vec![]));
    let out = tmp.path().join("out");
    ok(&mv(&b, &["get", "m@1", "--out", out.to_str().unwrap()]));
    assert_eq!(
        std::fs::read(out.join("w1.bin")).unwrap(),
        std::fs::read(&w1).unwrap()
    );
    assert!(ok(&mv(&b, &["experiment", "console", exp])).contains("hello"));
    ok(&mv(&b, &["verify", "--read-data"]));
    // From stdin, again: nothing new.
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .args(["--repo", b.to_str().unwrap(), "import", "-", "--json"])
        .stdin(std::fs::File::open(&bundle).unwrap())
        .output()
        .unwrap();
    let r: Value = serde_json::from_str(&ok(&r)).unwrap();
    assert_eq!(r["versions_added"].as_u64(), Some(0), "{r}");
}

#[test]
fn a_damaged_bundle_exits_3_and_a_conflict_exits_1_changing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let f = tmp.path().join("f.bin");
    std::fs::write(&f, noise(1 << 20, 2)).unwrap();
    ok(&mv(&a, &["put", "--name", "m", f.to_str().unwrap()]));
    let bundle = tmp.path().join("m.mvb");
    ok(&mv(&a, &["export", "m", "-o", bundle.to_str().unwrap()]));
    let bytes = std::fs::read(&bundle).unwrap();
    let cut = tmp.path().join("cut.mvb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    ok(&mv(&b, &["init"]));
    let o = mv(&b, &["import", cut.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at byte"));
    assert_eq!(ok(&mv(&b, &["list", "--json"])).trim(), "[]");
    // Another model named m on the target.
    std::fs::write(&f, b"other").unwrap();
    ok(&mv(&b, &["put", "--name", "m", f.to_str().unwrap()]));
    let o = mv(&b, &["import", bundle.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("another model of that name"));
    assert_eq!(
        ok(&mv(&b, &["versions", "m", "--json"]))
            .matches("\"version\"")
            .count(),
        1
    );
    let r = json(
        &b,
        &[
            "import",
            bundle.to_str().unwrap(),
            "--skip-conflicts",
            "--json",
        ],
    );
    assert_eq!(r["conflicts"].as_array().map(Vec::len), Some(1), "{r}");
    // A bad version range is a usage error, before any file is written.
    let o = mv(
        &a,
        &[
            "export",
            "m@3..1",
            "-o",
            tmp.path().join("x").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn have_and_sync_send_only_what_the_target_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let f = tmp.path().join("f.bin");
    let mut data = noise(4 << 20, 3);
    std::fs::write(&f, &data).unwrap();
    ok(&mv(&a, &["put", "--name", "m", f.to_str().unwrap()]));
    let r = json(&a, &["sync", b.to_str().unwrap(), "--json"]);
    assert_eq!(r["versions_added"].as_u64(), Some(1), "{r}");
    let full = r["bundle_bytes"].as_u64().unwrap();
    data[1 << 20..(1 << 20) + 1000].copy_from_slice(&noise(1000, 4));
    std::fs::write(&f, &data).unwrap();
    ok(&mv(&a, &["put", "--name", "m", f.to_str().unwrap()]));
    let have = tmp.path().join("have.txt");
    std::fs::write(&have, ok(&mv(&b, &["have"]))).unwrap();
    let inc = tmp.path().join("inc.mvb");
    let r = json(
        &a,
        &[
            "export",
            "m",
            "--exclude-have",
            have.to_str().unwrap(),
            "-o",
            inc.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        r["bundle_bytes"].as_u64().unwrap() < full / 4,
        "{r} vs {full}"
    );
    let r = json(&a, &["sync", b.to_str().unwrap(), "m", "--json"]);
    assert_eq!(r["versions_added"].as_u64(), Some(1), "{r}");
    assert!(
        r["bundle_bytes"].as_u64().unwrap() < full / 4,
        "{r} vs {full}"
    );
    ok(&mv(&b, &["verify", "--read-data"]));
    // A malformed have list names its line.
    std::fs::write(&have, "zz\n").unwrap();
    let o = mv(
        &a,
        &[
            "export",
            "m",
            "--exclude-have",
            have.to_str().unwrap(),
            "-o",
            inc.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1"));
}

#[test]
fn export_and_import_show_progress_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let f = tmp.path().join("f.bin");
    std::fs::write(&f, noise(32 << 20, 5)).unwrap();
    ok(&mv(&a, &["put", "--name", "m", f.to_str().unwrap()]));
    let bundle = tmp.path().join("m.mvb");
    let bp = bundle.to_str().unwrap();
    let shown = on_a_terminal(&a, &["export", "m", "-o", bp]);
    assert!(shown.contains("ETA") && shown.contains("MiB"), "{shown:?}");
    let shown = on_a_terminal(&b, &["import", bp]);
    assert!(shown.contains("ETA") && shown.contains("MiB"), "{shown:?}");
    let piped = mv(&a, &["export", "m", "-o", bp]);
    assert!(!String::from_utf8_lossy(&ok_stderr(&piped)).contains("ETA"));
}

fn ok_stderr(o: &std::process::Output) -> Vec<u8> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stderr.clone()
}
