use std::fs::OpenOptions;
use std::io::Write;
use std::process::Command;

use modelvault::{Error, FileEntry, Store};

use crate::common::{get, noise, put, weights};

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let data = weights(5 << 20, 1);
    let (id, stats) = {
        let store = Store::create(&path).unwrap();
        let id = put(&store, &data);
        store
            .commit_version(
                "m",
                vec![FileEntry {
                    path: "w.bin".into(),
                    blob: id,
                    size: data.len() as u64,
                }],
            )
            .unwrap();
        (id, store.stats())
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.stats(), stats);
    assert_eq!(get(&store, &id), data);
    assert_eq!(store.version("m", None).unwrap().files[0].blob, id);
    // And it keeps accepting writes, appending to the same pack.
    let id2 = put(&store, &noise(2 << 20, 2));
    assert_eq!(get(&store, &id2), noise(2 << 20, 2));
    assert_eq!(store.stats().packs, 1);
}

#[test]
fn second_handle_in_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::create(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(Error::Locked { holder, .. }) => {
            assert!(holder.contains(&std::process::id().to_string()), "{holder}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
}

#[test]
fn second_process_is_refused_with_the_holder_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    put(&store, b"held");
    let out = Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(dir.path())
        .arg("gc")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_directory_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    assert!(matches!(
        Store::create(dir.path()),
        Err(Error::NotAStore { .. })
    ));
    assert!(matches!(
        Store::open(dir.path().join("missing")),
        Err(Error::NotAStore { .. })
    ));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["notes.txt"]);
}

#[test]
fn newer_format_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::create(dir.path()).unwrap());
    std::fs::write(
        dir.path().join("MODELVAULT"),
        "modelvault store\nformat 99\n",
    )
    .unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(Error::UnsupportedVersion { found: 99, .. })
    ));
}

#[test]
fn uncommitted_pack_tail_is_truncated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = noise(3 << 20, 5);
    let (id, pack, len) = {
        let store = Store::create(dir.path()).unwrap();
        let id = put(&store, &data);
        let pack = dir.path().join("packs/00000000.pack");
        let len = std::fs::metadata(&pack).unwrap().len();
        (id, pack, len)
    };
    // A torn append: half a record after the committed end.
    let mut f = OpenOptions::new().append(true).open(&pack).unwrap();
    f.write_all(b"CHNK\x01\x00garbage that a crash left behind")
        .unwrap();
    drop(f);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), len);
    assert_eq!(get(&store, &id), data);
    let id2 = put(&store, &noise(1 << 20, 6));
    assert_eq!(get(&store, &id2), noise(1 << 20, 6));
}

#[test]
fn versions_are_numbered_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let id = put(&store, b"abc");
    let f = |p: &str| FileEntry {
        path: p.into(),
        blob: id,
        size: 3,
    };
    assert_eq!(store.commit_version("m", vec![f("a")]).unwrap(), 1);
    assert_eq!(
        store.commit_version("m", vec![f("a"), f("b/c")]).unwrap(),
        2
    );
    assert_eq!(store.versions("m").unwrap(), vec![1, 2]);
    assert_eq!(store.version("m", None).unwrap().version, 2);
    assert!(store.version("m", Some(3)).unwrap_err().is_not_found());
    assert!(store.version("nope", None).unwrap_err().is_not_found());
    for bad in ["../x", "/abs", "a\\b", "a/../b", ""] {
        assert!(
            matches!(
                store.commit_version("m", vec![f(bad)]),
                Err(Error::InvalidInput { .. })
            ),
            "{bad}"
        );
    }
    assert!(store.commit_version("m", vec![f("a"), f("a")]).is_err());
    assert!(store.commit_version("bad/name", vec![f("a")]).is_err());
    let missing = FileEntry {
        path: "x".into(),
        blob: modelvault::BlobId(modelvault::Hash32::of(b"zz")),
        size: 2,
    };
    assert!(store
        .commit_version("m", vec![missing])
        .unwrap_err()
        .is_not_found());
    // None of the failures created a version.
    assert_eq!(store.versions("m").unwrap(), vec![1, 2]);
    assert_eq!(store.stats().versions, 2);
}

#[test]
fn chunking_bounds_are_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let big = modelvault::CdcParams {
        min: 64 << 10,
        avg: 256 << 10,
        max: 512 << 10,
    };
    let data = weights(8 << 20, 12);
    {
        let store = Store::options().chunking(big).open(dir.path()).unwrap();
        put(&store, &data);
    }
    // Reopened with the default options: the store's own bounds still apply,
    // so the same content dedups completely.
    let store = Store::open(dir.path()).unwrap();
    let before = store.stats();
    put(&store, &data);
    let after = store.stats();
    assert_eq!(
        (before.chunks, before.stored_bytes),
        (after.chunks, after.stored_bytes)
    );
    // Bounds FastCDC cannot use are refused at creation, not by a panic later.
    let bad = modelvault::CdcParams {
        min: 10,
        avg: 5,
        max: 1,
    };
    let err = Store::options()
        .chunking(bad)
        .open(dir.path().join("new"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(
        !dir.path().join("new").exists(),
        "a refused create left a directory behind"
    );
}

#[test]
fn upload_ids_are_never_reused_across_reopens_and_collections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let mut seen = std::collections::HashSet::new();
    for round in 0..4u64 {
        let store = Store::create(&path).unwrap();
        // A session made durable, then given up and collected: no trace of
        // its id is left in the store.
        let mut w = store.blob_writer();
        w.write_all(&noise(300_000, round)).unwrap();
        let id = w.suspend().unwrap();
        assert!(seen.insert(id), "upload id {id} handed out twice");
        drop(store.resume_upload(id).unwrap());
        store
            .gc(&modelvault::GcOptions::new().expire_uploads_after(std::time::Duration::ZERO))
            .unwrap();
        assert!(store.uploads().unwrap().is_empty());
        // A stale id from an earlier round names nothing now.
        for old in &seen {
            assert!(store.resume_upload(*old).is_err(), "stale id {old} resumed");
        }
    }
}

#[test]
fn a_creation_cut_short_is_completed_and_lost_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let data = noise(200_000, 5);
    {
        let store = Store::create(&path).unwrap();
        put(&store, &data);
    }
    // A creation killed while RocksDB was writing its first files: the
    // marker and packs/ exist, meta.init/ is half written, meta/ is absent.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(fresh.join("packs")).unwrap();
    std::fs::copy(path.join("MODELVAULT"), fresh.join("MODELVAULT")).unwrap();
    std::fs::create_dir_all(fresh.join("meta.init")).unwrap();
    std::fs::write(fresh.join("meta.init/000001.log"), b"torn").unwrap();
    let store = Store::open(&fresh).unwrap();
    let id = put(&store, &data);
    assert_eq!(get(&store, &id), data);
    assert!(!fresh.join("meta.init").exists());
    drop(store);
    // Packs without their metadata: refused, the packs untouched.
    std::fs::remove_dir_all(path.join("meta")).unwrap();
    let before: Vec<_> = std::fs::read_dir(path.join("packs")).unwrap().collect();
    let err = Store::open(&path).err().unwrap();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    let after: Vec<_> = std::fs::read_dir(path.join("packs")).unwrap().collect();
    assert_eq!(before.len(), after.len());
    assert!(!path.join("meta").exists());
}

/// Every entry under `dir` (relative path → kind, length and content hash),
/// except the `lock` file directly in it: every open writes its pid there
/// (or creates it) before looking further, by design.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    fn walk(
        root: &std::path::Path,
        p: &std::path::Path,
        out: &mut std::collections::BTreeMap<std::path::PathBuf, String>,
    ) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        if rel == std::path::Path::new("lock") {
            return;
        }
        let what = if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(root, &e.unwrap().path(), out);
            }
            "dir".to_string()
        } else if m.is_file() {
            let bytes = std::fs::read(p).unwrap();
            format!("file {} {}", bytes.len(), blake3::hash(&bytes))
        } else {
            format!("other {:?}", m.file_type())
        };
        out.insert(rel, what);
    }
    let mut out = std::collections::BTreeMap::new();
    if std::fs::symlink_metadata(dir).is_ok() {
        walk(dir, dir, &mut out);
    }
    out
}

/// A directory that is a store only in part, or whose parts have the wrong
/// kind: `Store::open` refuses it with an error naming what is wrong, and
/// changes nothing. (A marker with no `meta/` and no pack is a creation cut
/// short, which an open completes: see the test above.)
#[test]
fn partial_and_misshapen_stores_are_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    // A real store to take parts from.
    let real = tmp.path().join("real");
    {
        let store = Store::create(&real).unwrap();
        put(&store, &noise(300_000, 7));
    }
    let copy = |to: &std::path::Path| {
        let o = Command::new("cp")
            .arg("-a")
            .arg(&real)
            .arg(to)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    };
    type Case<'a> = (
        &'static str,
        Box<dyn Fn(&std::path::Path) + 'a>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "only meta.init/ (a creation killed before its marker)",
            Box::new(|d| {
                std::fs::create_dir_all(d.join("meta.init")).unwrap();
                std::fs::write(d.join("meta.init/000001.log"), b"torn").unwrap();
            }),
            "no MODELVAULT marker",
        ),
        (
            "packs/ with a pack but no marker and no meta/",
            Box::new(|d| {
                copy(d);
                std::fs::remove_dir_all(d.join("meta")).unwrap();
                std::fs::remove_file(d.join("MODELVAULT")).unwrap();
            }),
            "no MODELVAULT marker",
        ),
        (
            "marker and packs/ with a pack, no meta/",
            Box::new(|d| {
                copy(d);
                std::fs::remove_dir_all(d.join("meta")).unwrap();
            }),
            "metadata is lost",
        ),
        (
            "marker, a half-written meta.init/ and a pack, no meta/",
            Box::new(|d| {
                copy(d);
                std::fs::rename(d.join("meta"), d.join("meta.init")).unwrap();
            }),
            "metadata is lost",
        ),
        (
            "the store path is a file",
            Box::new(|d| std::fs::write(d, b"not a store").unwrap()),
            "MODELVAULT",
        ),
        (
            "MODELVAULT is a folder",
            Box::new(|d| {
                copy(d);
                std::fs::remove_file(d.join("MODELVAULT")).unwrap();
                std::fs::create_dir(d.join("MODELVAULT")).unwrap();
            }),
            "MODELVAULT",
        ),
        (
            "meta is a file",
            Box::new(|d| {
                copy(d);
                std::fs::remove_dir_all(d.join("meta")).unwrap();
                std::fs::write(d.join("meta"), b"not a database").unwrap();
            }),
            "meta",
        ),
        (
            "packs is a file",
            Box::new(|d| {
                copy(d);
                std::fs::remove_dir_all(d.join("packs")).unwrap();
                std::fs::write(d.join("packs"), b"not a folder").unwrap();
            }),
            "packs",
        ),
    ];
    for (i, (what, make, needle)) in cases.into_iter().enumerate() {
        let d = tmp.path().join(format!("case{i}"));
        make(&d);
        let before = tree(&d);
        let err = match Store::open(&d) {
            Ok(_) => panic!("{what}: opened"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
        assert!(
            err.contains(d.to_str().unwrap()),
            "{what}: {err:?} does not name the store"
        );
        assert_eq!(tree(&d), before, "{what}: the open changed the directory");
        // Store::create is no more willing to touch it.
        assert!(Store::create(&d).is_err(), "{what}: created over it");
        assert_eq!(tree(&d), before, "{what}: create changed the directory");
    }
}

/// A store the user cannot read, or can read but not write: the command
/// line fails with one line naming the path and the cause, and changes
/// nothing. Permissions do not bind root, so as root the command runs as
/// `nobody` (through `setpriv`); skipped, saying so, if that is impossible.
#[test]
fn an_unreadable_or_read_only_store_is_refused_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("vault");
    drop(Store::create(&dir).unwrap());
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let command = || -> Command {
        let mut c = match (root, setpriv) {
            (false, _) => Command::new(env!("CARGO_BIN_EXE_modelvault")),
            (true, Some(setpriv)) => {
                let mut c = Command::new(setpriv);
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(env!("CARGO_BIN_EXE_modelvault"));
                c
            }
            (true, None) => unreachable!(),
        };
        c.arg("--repo").arg(&dir).arg("stats");
        c
    };
    if root && setpriv.is_none() {
        eprintln!("skipped: running as root and no setpriv to drop privileges with");
        return;
    }
    // Whether the unprivileged user can run the binary here at all.
    let probe = command().output().unwrap();
    if root && String::from_utf8_lossy(&probe.stderr).contains("setpriv") {
        eprintln!("skipped: setpriv cannot drop privileges here: {probe:?}");
        return;
    }
    let cases: &[(&str, u32)] = if root {
        // Owned by root: nobody reads it (0o000), or reads but cannot write
        // its lock file (0o755).
        &[("unreadable", 0o000), ("read-only", 0o755)]
    } else {
        // Only the unreadable case: the owner can always write a 0o755 store.
        &[("unreadable", 0o000)]
    };
    for &(what, mode) in cases {
        let before = (tree(&dir), std::fs::read(dir.join("lock")).unwrap());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = command().output().unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: succeeded: {o:?}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err:?}");
        assert!(err.contains("Permission denied"), "{what}: {err:?}");
        assert!(err.contains(dir.to_str().unwrap()), "{what}: {err:?}");
        assert!(!err.contains("panicked"), "{what}: {err:?}");
        let after = (tree(&dir), std::fs::read(dir.join("lock")).unwrap());
        assert_eq!(after, before, "{what}: the store changed");
    }
    // And it still opens for whoever may.
    drop(Store::open(&dir).unwrap());
}

#[test]
fn exists_is_true_only_for_a_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    assert!(!Store::exists(&path), "a missing directory");
    std::fs::create_dir(&path).unwrap();
    assert!(!Store::exists(&path), "an empty directory");
    std::fs::write(path.join("other"), b"x").unwrap();
    assert!(!Store::exists(&path), "a directory of other files");
    let store_dir = dir.path().join("store");
    let store = Store::create(&store_dir).unwrap();
    // Open (and locked) or not, it is a store.
    assert!(Store::exists(&store_dir));
    drop(store);
    assert!(Store::exists(&store_dir));
}
