//! The CLI's file handling: which files `put` reads (symlinks) and what
//! `get` refuses to write (paths that collide when case is ignored).

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::cli::{fails_with_one_line, json, mv, ok};

/// Stats and model list of a store, to show that a refused command changed nothing.
fn state(repo: &Path) -> (String, String) {
    (
        ok(&mv(repo, &["stats", "--json"])),
        ok(&mv(repo, &["list", "--json"])),
    )
}

/// The stored paths of a version, in order.
fn paths(repo: &Path, spec: &str) -> Vec<String> {
    json(&mv(repo, &["show", spec, "--json"]))["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// A store holding one model, `seed@1`, so that refused puts have a state to leave alone.
fn seeded_store(tmp: &Path) -> std::path::PathBuf {
    let repo = tmp.join("repo");
    let f = tmp.join("seed.bin");
    std::fs::write(&f, b"seed").unwrap();
    ok(&mv(&repo, &["put", "--name", "seed", f.to_str().unwrap()]));
    repo
}

/// A symlinked file inside a folder (here pointing outside it, as a link to
/// a private key would) is refused by name, with nothing stored; the same
/// for a symlinked folder; `--follow-symlinks` stores both under the link's
/// path with the target's bytes.
#[test]
fn put_refuses_symlinks_in_folders_unless_asked_to_follow_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = seeded_store(tmp.path());
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, b"private key").unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("inner.bin"), b"inner").unwrap();

    // A symlinked file.
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("real.bin"), b"real").unwrap();
    symlink(&secret, d.join("x")).unwrap();
    let before = state(&repo);
    let o = mv(&repo, &["put", "--name", "m", d.to_str().unwrap()]);
    fails_with_one_line(&o, &d.join("x").display().to_string());
    fails_with_one_line(&o, "--follow-symlinks");
    assert_eq!(state(&repo), before, "a refused put changed the store");

    // A symlinked folder, the same way.
    let e = tmp.path().join("e");
    std::fs::create_dir(&e).unwrap();
    std::fs::write(e.join("real.bin"), b"real").unwrap();
    symlink(&other, e.join("sub")).unwrap();
    let o = mv(&repo, &["put", "--name", "m", e.to_str().unwrap()]);
    fails_with_one_line(&o, &e.join("sub").display().to_string());
    fails_with_one_line(&o, "--follow-symlinks");
    assert_eq!(state(&repo), before, "a refused put changed the store");

    // Followed on request: files and folders alike, under the link's path.
    symlink(&other, d.join("sub")).unwrap();
    let out = ok(&mv(
        &repo,
        &[
            "put",
            "--follow-symlinks",
            "--name",
            "m",
            d.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.lines().last(), Some("m@1"));
    assert_eq!(paths(&repo, "m@1"), ["real.bin", "sub/inner.bin", "x"]);
    assert_eq!(
        mv(&repo, &["cat", "m@1", "x"]).stdout,
        b"private key".to_vec()
    );
    assert_eq!(
        mv(&repo, &["cat", "m@1", "sub/inner.bin"]).stdout,
        b"inner".to_vec()
    );
}

/// A path named on the command line is read whatever it is (the caller
/// chose it): a symlinked file or folder given as an argument is followed.
#[test]
fn put_follows_symlinks_named_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let real = tmp.path().join("real.bin");
    std::fs::write(&real, b"weights").unwrap();
    let link = tmp.path().join("link.bin");
    symlink(&real, &link).unwrap();
    let dir = tmp.path().join("run-7");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("w.bin"), b"w").unwrap();
    let latest = tmp.path().join("latest");
    symlink(&dir, &latest).unwrap();
    ok(&mv(
        &repo,
        &[
            "put",
            "--name",
            "m",
            link.to_str().unwrap(),
            latest.to_str().unwrap(),
        ],
    ));
    assert_eq!(paths(&repo, "m@1"), ["link.bin", "w.bin"]);
    assert_eq!(
        mv(&repo, &["cat", "m@1", "link.bin"]).stdout,
        b"weights".to_vec()
    );
}

/// With `--follow-symlinks`, a link back to a folder being walked (a loop)
/// and a link to nothing are refused by name, with nothing stored.
#[test]
fn put_follow_symlinks_refuses_loops_and_dangling_links() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = seeded_store(tmp.path());
    let before = state(&repo);

    let d = tmp.path().join("d");
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    std::fs::write(d.join("a/b/w.bin"), b"w").unwrap();
    symlink(&d, d.join("a/b/up")).unwrap();
    let o = mv(
        &repo,
        &[
            "put",
            "--follow-symlinks",
            "--name",
            "m",
            d.to_str().unwrap(),
        ],
    );
    fails_with_one_line(&o, &d.join("a/b/up").display().to_string());
    fails_with_one_line(&o, "loop");
    assert_eq!(state(&repo), before);

    let e = tmp.path().join("e");
    std::fs::create_dir(&e).unwrap();
    symlink(tmp.path().join("nowhere"), e.join("gone")).unwrap();
    let o = mv(
        &repo,
        &[
            "put",
            "--follow-symlinks",
            "--name",
            "m",
            e.to_str().unwrap(),
        ],
    );
    fails_with_one_line(&o, &e.join("gone").display().to_string());
    assert_eq!(state(&repo), before);

    // The same folder reached twice, not through a loop, is stored twice.
    let f = tmp.path().join("f");
    std::fs::create_dir(&f).unwrap();
    symlink(d.join("a/b/w.bin"), f.join("one")).unwrap();
    symlink(d.join("a/b/w.bin"), f.join("two")).unwrap();
    ok(&mv(
        &repo,
        &[
            "put",
            "--follow-symlinks",
            "--name",
            "twice",
            f.to_str().unwrap(),
        ],
    ));
    assert_eq!(paths(&repo, "twice@1"), ["one", "two"]);
}

/// Every path under `root`, relative, sorted (not following symlinks).
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `A.bin` and `a.bin` (or folders `Dir` and `dir`) would overwrite each
/// other on a case-insensitive filesystem: `get` refuses, naming both, and
/// writes nothing; `--allow-case-collisions` (for a case-sensitive output
/// folder) restores both.
#[test]
fn get_refuses_paths_that_collide_when_case_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("Dir")).unwrap();
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("A.bin"), b"upper").unwrap();
    std::fs::write(src.join("a.bin"), b"lower").unwrap();
    std::fs::write(src.join("Dir/x"), b"x").unwrap();
    std::fs::write(src.join("dir/y"), b"y").unwrap();
    std::fs::write(src.join("plain"), b"p").unwrap();
    ok(&mv(&repo, &["put", "--name", "m", src.to_str().unwrap()]));

    let out = tmp.path().join("out");
    let o = mv(&repo, &["get", "m", "--out", out.to_str().unwrap()]);
    fails_with_one_line(&o, "\"A.bin\"");
    fails_with_one_line(&o, "\"a.bin\"");
    fails_with_one_line(&o, "case");
    assert!(!out.exists(), "a refused get wrote {:?}", tree(&out));

    // Folders only: the first colliding pair is named the same way.
    let src2 = tmp.path().join("src2");
    std::fs::create_dir_all(src2.join("Dir")).unwrap();
    std::fs::create_dir_all(src2.join("dir")).unwrap();
    std::fs::write(src2.join("Dir/x"), b"x").unwrap();
    std::fs::write(src2.join("dir/y"), b"y").unwrap();
    ok(&mv(&repo, &["put", "--name", "n", src2.to_str().unwrap()]));
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let o = mv(&repo, &["get", "n", "--out", existing.to_str().unwrap()]);
    fails_with_one_line(&o, "\"Dir\"");
    fails_with_one_line(&o, "\"dir\"");
    assert!(tree(&existing).is_empty(), "{:?}", tree(&existing));

    // On request (this output folder is case-sensitive), all are restored.
    ok(&mv(
        &repo,
        &[
            "get",
            "m",
            "--allow-case-collisions",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        tree(&out),
        ["A.bin", "Dir", "Dir/x", "a.bin", "dir", "dir/y", "plain"]
    );
    assert_eq!(std::fs::read(out.join("A.bin")).unwrap(), b"upper");
    assert_eq!(std::fs::read(out.join("a.bin")).unwrap(), b"lower");
}
