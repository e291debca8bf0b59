use std::path::Path;
use std::process::{Command, Output};

fn mv(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("MODELVAULT_REPO")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails_with_one_line(o: &Output, needle: &str) {
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
