//! Unit tests of the command functions that an integration test cannot
//! observe from outside the process.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use modelvault::{FileEntry, NewModel, Store};

use super::files::trace::{self, Event};

/// `get` fsyncs every restored file before renaming it into place, and,
/// after the renames, every folder whose entries it changed: each file's
/// folder, the folders between it and the output folder, and the parents
/// of the folders it created (the output folder and its missing parents).
///
/// What this shows: the calls are made, in that order, on those paths (the
/// restore records each step). It cannot show that the disk honoured them;
/// that would need a filesystem that drops unsynced writes.
#[test]
fn get_fsyncs_each_file_before_its_rename_and_the_folders_after() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let store = Store::create(root.join("repo")).unwrap();
    let files = [
        ("a.bin", vec![1u8; 70_000]),
        ("sub/b.bin", b"bee".to_vec()),
        ("sub/deeper/c.bin", vec![3u8; 5]),
        ("empty", Vec::new()),
    ];
    let entries = files
        .iter()
        .map(|(path, data)| {
            let mut w = store.blob_writer();
            w.write_all(data).unwrap();
            FileEntry {
                path: path.to_string(),
                blob: w.finish().unwrap(),
                size: data.len() as u64,
            }
        })
        .collect();
    let m = store.create_model(NewModel::new("m")).unwrap();
    m.add_version(entries).unwrap();

    // The output folder and its parent do not exist yet.
    let out = root.join("restore/here");
    super::commands::get_for_test(&store, "m", &out);
    for (path, data) in &files {
        assert_eq!(&std::fs::read(out.join(path)).unwrap(), data, "{path}");
    }

    let events = trace::take_under(&root);
    let at = |e: &Event| events.iter().position(|x| x == e);
    let mut last_rename = 0;
    for (path, _) in &files {
        let dst = out.join(path);
        let (i, tmp) = events
            .iter()
            .enumerate()
            .find_map(|(i, e)| match e {
                Event::Rename(tmp, to) if *to == dst => Some((i, tmp.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{path} was not renamed into place: {events:?}"));
        let synced = at(&Event::SyncFile(tmp.clone()))
            .unwrap_or_else(|| panic!("{path}: {} never fsynced: {events:?}", tmp.display()));
        assert!(synced < i, "{path} fsynced after its rename: {events:?}");
        last_rename = last_rename.max(i);
    }
    let dirs: BTreeSet<PathBuf> = [
        root.clone(),
        root.join("restore"),
        out.clone(),
        out.join("sub"),
        out.join("sub/deeper"),
    ]
    .into();
    for d in &dirs {
        let synced = events
            .iter()
            .rposition(|e| *e == Event::SyncDir(d.clone()))
            .unwrap_or_else(|| panic!("folder {} never fsynced: {events:?}", d.display()));
        assert!(
            synced > last_rename,
            "folder {} fsynced before the last rename: {events:?}",
            d.display()
        );
    }
    // Nothing outside: the store's own folder and the temp root's parent are untouched.
    for e in &events {
        if let Event::SyncDir(d) = e {
            assert!(dirs.contains(d), "unexpected folder sync {}", d.display());
        }
    }
}

/// The registry refuses a version with a file `a` and a file `a/b`, but a
/// store written before it did (or a damaged record) may hold one: `get`
/// refuses it before writing anything, whatever the case option, naming
/// both paths. Paths differing only in case are refused unless allowed,
/// naming the first pair in path order.
#[test]
fn check_restorable_refuses_file_folder_clashes_and_case_collisions() {
    use super::files::check_restorable;
    let err = |paths: &[&str], allow: bool| {
        check_restorable(paths.iter().copied(), allow, "m@1")
            .unwrap_err()
            .to_string()
    };
    for allow in [false, true] {
        let e = err(&["x", "a", "a/b/c"], allow);
        assert!(
            e.contains("\"a\" is both a file and a folder (holding \"a/b/c\")"),
            "{e}"
        );
        assert!(
            e.starts_with("m@1: ") && e.contains("nothing written"),
            "{e}"
        );
    }
    let e = err(&["Z", "b/A.bin", "b/a.bin", "c"], false);
    assert!(
        e.contains("\"b/A.bin\" and \"b/a.bin\" differ only in case"),
        "{e}"
    );
    let e = err(&["Models/x", "models/y"], false);
    assert!(e.contains("\"Models\" and \"models\""), "{e}");
    // Non-ASCII letters fold too.
    let e = err(&["ÉTÉ", "été"], false);
    assert!(e.contains("\"ÉTÉ\" and \"été\""), "{e}");
    check_restorable(["b/A.bin", "b/a.bin"], true, "m@1").unwrap();
    check_restorable(["a", "b/a", "b/c/a", "ab/c"], false, "m@1").unwrap();
}
