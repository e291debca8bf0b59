use std::path::Path;
use std::process::{Command, Output};

pub(crate) fn mv(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("MODELVAULT_REPO")
        .output()
        .unwrap()
}

pub(crate) fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub(crate) fn fails_with_one_line(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "stderr: {err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

#[test]
fn put_get_cat_stats_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("model/sub")).unwrap();
    let big = crate::common::weights(3 << 20, 1);
    std::fs::write(src.join("model/weights.bin"), &big).unwrap();
    std::fs::write(src.join("model/sub/config.json"), b"{\"layers\": 2}").unwrap();
    std::fs::write(src.join("model/empty"), b"").unwrap();
    std::fs::write(src.join("README"), b"hi").unwrap();

    let out = ok(&mv(
        &repo,
        &[
            "put",
            "--name",
            "resnet",
            src.join("model").to_str().unwrap(),
            src.join("README").to_str().unwrap(),
        ],
    ));
    assert_eq!(out.lines().last(), Some("resnet@1"));
    let out = ok(&mv(
        &repo,
        &[
            "put",
            "--name",
            "resnet",
            src.join("README").to_str().unwrap(),
        ],
    ));
    assert_eq!(out.lines().last(), Some("resnet@2"));

    let dst = tmp.path().join("out");
    ok(&mv(
        &repo,
        &["get", "resnet@1", "--out", dst.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(dst.join("weights.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(dst.join("sub/config.json")).unwrap(),
        b"{\"layers\": 2}"
    );
    assert_eq!(std::fs::read(dst.join("empty")).unwrap(), b"");
    assert_eq!(std::fs::read(dst.join("README")).unwrap(), b"hi");

    let latest = tmp.path().join("latest");
    ok(&mv(
        &repo,
        &["get", "resnet", "--out", latest.to_str().unwrap()],
    ));
    assert!(!latest.join("weights.bin").exists());

    let o = mv(&repo, &["cat", "resnet@1", "weights.bin"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, big);

    let stats: serde_json::Value =
        serde_json::from_str(&ok(&mv(&repo, &["stats", "--json"]))).unwrap();
    assert_eq!(stats["versions"], 2);
    assert_eq!(stats["logical_bytes"], big.len() as u64 + 13 + 2 + 2);
    assert!(stats["stored_bytes"].as_u64().unwrap() < big.len() as u64);

    let show: serde_json::Value =
        serde_json::from_str(&ok(&mv(&repo, &["show", "resnet@1", "--json"]))).unwrap();
    assert_eq!(show["files"].as_array().unwrap().len(), 4);
    assert_eq!(
        ok(&mv(&repo, &["list"])).split_whitespace().next(),
        Some("resnet@2")
    );
}

#[test]
fn bad_input_exits_non_zero_with_one_line_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("a.bin");
    std::fs::write(&f, b"data").unwrap();
    ok(&mv(&repo, &["put", "--name", "m", f.to_str().unwrap()]));
    let before = ok(&mv(&repo, &["stats", "--json"]));

    fails_with_one_line(
        &mv(&repo, &["put", "--name", "m", "/definitely/missing"]),
        "missing",
    );
    fails_with_one_line(
        &mv(&repo, &["put", "--name", "../evil", f.to_str().unwrap()]),
        "model name",
    );
    // Two inputs claiming one path.
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("a.bin"), b"other").unwrap();
    fails_with_one_line(
        &mv(
            &repo,
            &[
                "put",
                "--name",
                "m",
                f.to_str().unwrap(),
                d.to_str().unwrap(),
            ],
        ),
        "a.bin",
    );
    fails_with_one_line(
        &mv(
            &repo,
            &[
                "get",
                "nope",
                "--out",
                tmp.path().join("o").to_str().unwrap(),
            ],
        ),
        "not found",
    );
    fails_with_one_line(
        &mv(
            &repo,
            &[
                "get",
                "m@7",
                "--out",
                tmp.path().join("o").to_str().unwrap(),
            ],
        ),
        "m@7",
    );
    fails_with_one_line(&mv(&repo, &["cat", "m", "nothere"]), "nothere");
    fails_with_one_line(&mv(&repo, &["cat", "m@x", "a.bin"]), "alias not found: x");
    assert_eq!(ok(&mv(&repo, &["stats", "--json"])), before);

    // Not a store: a folder with other things in it, and a missing folder.
    fails_with_one_line(&mv(&d, &["stats"]), "not a modelvault store");
    fails_with_one_line(
        &mv(&tmp.path().join("missing"), &["get", "m", "--out", "x"]),
        "not a modelvault store",
    );
    assert!(!tmp.path().join("missing").exists());
    fails_with_one_line(
        &mv(&d, &["put", "--name", "m", f.to_str().unwrap()]),
        "not a modelvault store",
    );
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
}

pub(crate) fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

#[test]
fn experiment_and_model_commands_link_and_freeze() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&mv(&repo, &["init"]));
    let id = ok(&mv(
        &repo,
        &[
            "experiment",
            "create",
            "--project",
            "vision",
            "--name",
            "sweep",
            "--tag",
            "a",
        ],
    ));
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    ok(&mv(&repo, &["experiment", "start", id]));
    ok(&mv(
        &repo,
        &[
            "experiment",
            "param",
            id,
            "General/lr=0.001",
            "General/epochs=3",
            "General/opt=adam",
        ],
    ));
    ok(&mv(&repo, &["experiment", "log", id, "epoch 1", "epoch 2"]));
    ok(&mv(&repo, &["experiment", "progress", id, "50"]));
    assert_eq!(ok(&mv(&repo, &["experiment", "progress", id])).trim(), "50");
    assert_eq!(
        ok(&mv(&repo, &["experiment", "console", id, "--tail", "1"])).trim(),
        "epoch 2"
    );

    // Log a model created by the experiment.
    let f = tmp.path().join("model.bin");
    std::fs::write(&f, crate::common::weights(100_000, 3)).unwrap();
    let out = ok(&mv(
        &repo,
        &[
            "put",
            "--name",
            "resnet",
            "--experiment",
            id,
            f.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.lines().last(), Some("resnet@1"));
    let model = json(&mv(&repo, &["model", "show", "resnet", "--json"]));
    let model_id = model["id"].as_str().unwrap().to_string();
    assert_eq!(model["experiment"], id);

    // And one it used.
    let g = tmp.path().join("base.bin");
    std::fs::write(&g, b"base weights").unwrap();
    ok(&mv(&repo, &["put", "--name", "base", g.to_str().unwrap()]));
    ok(&mv(&repo, &["experiment", "use", id, "base@1"]));
    let base_id = json(&mv(&repo, &["model", "show", "base", "--json"]))["id"]
        .as_str()
        .unwrap()
        .to_string();

    let exp = json(&mv(&repo, &["experiment", "show", id, "--json"]));
    assert_eq!(exp["id"], id);
    assert_eq!(exp["created_models"], serde_json::json!([model_id]));
    assert_eq!(exp["input_models"][0][0], base_id.as_str());
    assert_eq!(exp["params"]["General/lr"], 0.001);
    assert_eq!(exp["params"]["General/epochs"], 3);
    assert_eq!(exp["progress"], 50);

    // Metadata, query, URL, alias.
    ok(&mv(
        &repo,
        &[
            "model",
            "meta",
            "resnet",
            "accuracy=0.93",
            "framework_hint=torch",
        ],
    ));
    ok(&mv(&repo, &["model", "tag", "resnet", "prod"]));
    let hits = json(&mv(
        &repo,
        &[
            "model",
            "list",
            "--query",
            "metadata.accuracy > 0.9 AND tag = prod",
            "--json",
        ],
    ));
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["id"], model_id.as_str());
    let none = json(&mv(
        &repo,
        &[
            "model",
            "list",
            "--query",
            "metadata.accuracy > 0.95",
            "--json",
        ],
    ));
    assert_eq!(none, serde_json::json!([]));
    fails_with_one_line(
        &mv(&repo, &["model", "list", "--query", "metadata.accuracy >"]),
        "bad query at byte",
    );
    let url = ok(&mv(&repo, &["model", "url", "resnet"]))
        .trim()
        .to_string();
    assert!(
        url.starts_with("modelvault://") && url.ends_with(&format!("{model_id}@1")),
        "{url}"
    );
    let o = mv(&repo, &["cat", &url, "model.bin"]);
    assert_eq!(o.stdout, std::fs::read(&f).unwrap());
    ok(&mv(&repo, &["model", "alias", "resnet", "champion", "1"]));
    fails_with_one_line(
        &mv(&repo, &["model", "alias", "resnet", "champion", "1"]),
        "already exists",
    );
    let o = mv(&repo, &["cat", "resnet@champion", "model.bin"]);
    assert_eq!(o.stdout, std::fs::read(&f).unwrap());
    let o = mv(&repo, &["cat", &model_id, "model.bin"]);
    assert_eq!(o.stdout, std::fs::read(&f).unwrap());

    // Finalize both; changes fail with one line naming the state.
    ok(&mv(&repo, &["experiment", "finalize", id]));
    ok(&mv(&repo, &["model", "finalize", "resnet"]));
    fails_with_one_line(&mv(&repo, &["experiment", "log", id, "late"]), "completed");
    fails_with_one_line(
        &mv(&repo, &["experiment", "progress", id, "60"]),
        "completed",
    );
    fails_with_one_line(
        &mv(&repo, &["model", "meta", "resnet", "accuracy=0.99"]),
        "finalized",
    );
    fails_with_one_line(
        &mv(&repo, &["put", "--name", "resnet", f.to_str().unwrap()]),
        "finalized",
    );
    let listed = json(&mv(
        &repo,
        &[
            "experiment",
            "list",
            "--project",
            "vision",
            "--status",
            "completed",
            "--json",
        ],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);
}

/// `put --reverse-delta`: each new version is stored whole and the previous
/// one re-encoded against it; every version reads back, and the newest has
/// no delta below it (deleting the older versions leaves no delta at all).
#[test]
fn put_reverse_delta_keeps_the_newest_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let versions: Vec<Vec<u8>> = {
        let mut v = vec![crate::common::weights(4 * 300_000, 7)];
        for step in 1..3 {
            let next = crate::blob_delta::nudge_f32(&v[step - 1], 70 + step as u64);
            v.push(next);
        }
        v
    };
    for (i, data) in versions.iter().enumerate() {
        let dir = tmp.path().join(format!("step{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("w.bin"), data).unwrap();
        let o = mv(
            &repo,
            &[
                "put",
                "--reverse-delta",
                "--name",
                "run",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(
            ok(&o).lines().last(),
            Some(format!("run@{}", i + 1).as_str())
        );
        let err = String::from_utf8_lossy(&o.stderr);
        if i > 0 {
            assert!(
                err.contains(&format!("of run@{i} re-encoded against run@{}", i + 1)),
                "{err}"
            );
        }
    }
    ok(&mv(&repo, &["gc", "--compact-below", "0.9"]));
    let verify = ok(&mv(&repo, &["verify", "--read-data"]));
    assert!(verify.contains(" 0 problems"), "{verify}");
    assert!(!verify.contains("(0 deltas"), "no deltas: {verify}");
    for (i, data) in versions.iter().enumerate() {
        let dst = tmp.path().join(format!("out{i}"));
        let spec = format!("run@{}", i + 1);
        ok(&mv(&repo, &["get", &spec, "--out", dst.to_str().unwrap()]));
        assert_eq!(&std::fs::read(dst.join("w.bin")).unwrap(), data, "{spec}");
    }
    for v in ["run@1", "run@2"] {
        ok(&mv(&repo, &["model", "delete", v]));
    }
    ok(&mv(&repo, &["gc"]));
    let verify = ok(&mv(&repo, &["verify", "--read-data"]));
    assert!(verify.contains("(0 deltas"), "{verify}");
    // Nothing left to free: the metadata is compacted only when asked.
    let plain = ok(&mv(&repo, &["gc"]));
    assert!(!plain.contains("metadata compacted"), "{plain}");
    let asked = ok(&mv(&repo, &["gc", "--compact-metadata"]));
    assert!(
        asked.contains("deleted 0 chunks") && asked.contains("; metadata compacted"),
        "{asked}"
    );
    // The JSON report lists the packs a collection had to leave (none here).
    let report = json(&mv(&repo, &["gc", "--json"]));
    assert_eq!(report["packs_skipped"], serde_json::json!([]), "{report}");
    // Conflicting flags are refused before anything is written.
    let o = mv(
        &repo,
        &["put", "--reverse-delta", "--no-delta", "--name", "run", "x"],
    );
    assert!(!o.status.success());
}

/// The number in verify's "(N deltas" line.
fn deltas_verified(repo: &std::path::Path) -> u64 {
    let out = ok(&mv(repo, &["verify", "--read-data"]));
    let at = out.find(" deltas").unwrap_or_else(|| panic!("{out}"));
    let n = out[..at].rsplit('(').next().unwrap();
    n.trim().parse().unwrap_or_else(|_| panic!("{out}"))
}

#[test]
fn put_max_delta_depth_bounds_the_chains_and_is_range_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut versions = vec![crate::common::weights(4 * 200_000, 9)];
    for step in 1..4 {
        let next = crate::blob_delta::nudge_f32(&versions[step - 1], 90 + step as u64);
        versions.push(next);
    }
    let mut counts = Vec::new();
    for depth in ["1", "3"] {
        let repo = tmp.path().join(format!("repo{depth}"));
        for (i, data) in versions.iter().enumerate() {
            let dir = tmp.path().join(format!("d{depth}-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("w.bin"), data).unwrap();
            let args = ["put", "--max-delta-depth", depth, "--name", "run"];
            ok(&mv(&repo, &[&args[..], &[dir.to_str().unwrap()]].concat()));
        }
        for (i, data) in versions.iter().enumerate() {
            let dst = tmp.path().join(format!("o{depth}-{i}"));
            let spec = format!("run@{}", i + 1);
            ok(&mv(&repo, &["get", &spec, "--out", dst.to_str().unwrap()]));
            assert_eq!(&std::fs::read(dst.join("w.bin")).unwrap(), data, "{spec}");
        }
        counts.push(deltas_verified(&repo));
    }
    // Depth 1: versions 2 and 4 are deltas, 3 is whole again; depth 3: 2, 3, 4.
    assert!(counts[0] > 0 && counts[0] < counts[1], "{counts:?}");
    for bad in ["0", "17", "x"] {
        let repo = tmp.path().join(format!("bad{bad}"));
        let dir = tmp.path().join("d1-0");
        let o = mv(
            &repo,
            &[
                "put",
                "--max-delta-depth",
                bad,
                "--name",
                "m",
                dir.to_str().unwrap(),
            ],
        );
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--max-delta-depth"), "{err}");
        assert!(!repo.exists(), "a refused put created {}", repo.display());
    }
}

#[test]
fn get_of_many_files_restores_them_all_and_a_damaged_one_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let files: Vec<(String, Vec<u8>)> = (0..24u64)
        .map(|i| {
            let len = (i as usize * 37_000) % 300_000;
            (
                format!("d{}/f{i}.bin", i % 3),
                crate::common::weights(len / 4 * 4, 200 + i),
            )
        })
        .collect();
    for (rel, data) in &files {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    ok(&mv(
        &repo,
        &["put", "--name", "many", src.to_str().unwrap()],
    ));
    let out = tmp.path().join("out");
    ok(&mv(&repo, &["get", "many", "--out", out.to_str().unwrap()]));
    for (rel, data) in &files {
        assert_eq!(&std::fs::read(out.join(rel)).unwrap(), data, "{rel}");
    }

    // Damage every pack past its header: the restore fails, names the
    // damage, and leaves no temporary file behind.
    for e in std::fs::read_dir(repo.join("packs")).unwrap() {
        let p = e.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        for i in (100..b.len()).step_by(4096) {
            b[i] ^= 0x5a;
        }
        std::fs::write(&p, b).unwrap();
    }
    let bad = tmp.path().join("bad");
    let o = mv(&repo, &["get", "many", "--out", bad.to_str().unwrap()]);
    fails_with_one_line(&o, "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("corrupt") || err.contains("mismatch"), "{err}");
    let mut left = Vec::new();
    for d in ["", "d0", "d1", "d2"] {
        if let Ok(rd) = std::fs::read_dir(bad.join(d)) {
            for e in rd {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") {
                    left.push(name);
                }
            }
        }
    }
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn init_refuses_an_existing_store_and_leaves_it_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let out = ok(&mv(&repo, &["init"]));
    assert!(out.starts_with("created store "), "{out}");
    let src = tmp.path().join("f");
    std::fs::write(&src, b"kept").unwrap();
    ok(&mv(&repo, &["put", "--name", "m", src.to_str().unwrap()]));
    fails_with_one_line(&mv(&repo, &["init"]), "is already a modelvault store");
    let out = ok(&mv(&repo, &["cat", "m", "f"]));
    assert_eq!(out, "kept");
}

/// Each class of failure has its own exit code (README, "Exit codes").
#[test]
fn exit_codes_tell_the_classes_of_failure_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let f = tmp.path().join("a.bin");
    std::fs::write(&f, crate::common::weights(1 << 20, 7)).unwrap();
    let code = |o: &Output| o.status.code().expect("exited, not killed");
    assert_eq!(
        code(&mv(&repo, &["put", "--name", "m", f.to_str().unwrap()])),
        0
    );

    // Usage: clap's, and no store given.
    assert_eq!(code(&mv(&repo, &["put", "--bogus"])), 2);
    let o = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("stats")
        .env_remove("MODELVAULT_REPO")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));

    // Not a store: missing, and a folder holding something else.
    assert_eq!(code(&mv(&tmp.path().join("missing"), &["stats"])), 10);
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("x"), b"x").unwrap();
    assert_eq!(code(&mv(&other, &["list"])), 10);

    // Not found: a model, a version, a file.
    assert_eq!(code(&mv(&repo, &["show", "nope"])), 4);
    assert_eq!(code(&mv(&repo, &["show", "m@9"])), 4);
    assert_eq!(code(&mv(&repo, &["cat", "m", "nothere"])), 4);
    assert_eq!(code(&mv(&repo, &["model", "delete", "nope"])), 4);

    // Locked: this process holds the store; a writing command is refused.
    {
        let _held = modelvault::Store::open(&repo).unwrap();
        let o = mv(&repo, &["model", "tag", "m", "t"]);
        assert_eq!(code(&o), 11, "{}", String::from_utf8_lossy(&o.stderr));
    }

    // Other failure: an input that cannot be read.
    assert_eq!(
        code(&mv(&repo, &["put", "--name", "m", "/definitely/missing"])),
        1
    );

    // Integrity: damaged packs, found by verify and by a read.
    for e in std::fs::read_dir(repo.join("packs")).unwrap() {
        let p = e.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        for i in (100..b.len()).step_by(4096) {
            b[i] ^= 0x5a;
        }
        std::fs::write(&p, b).unwrap();
    }
    assert_eq!(code(&mv(&repo, &["verify", "--read-data"])), 3);
    let out = tmp.path().join("out");
    assert_eq!(
        code(&mv(&repo, &["get", "m", "--out", out.to_str().unwrap()])),
        3
    );

    // The table is in --help.
    let help = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_modelvault"))
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for line in ["3  integrity", "10  not a store", "11  locked"] {
        assert!(help.contains(line), "--help lacks {line:?}: {help}");
    }
}
