//! Staged blobs and versions of many files: a staged blob (or a version
//! upload) is refused by any store but the one that made it; a version
//! upload commits its staged blobs in groups, invisibly, and whatever a
//! group commit wrote is collectable when the version never comes (the
//! upload dropped, its version commit refused, or the process killed).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use modelvault::{
    BlobId, Durability, Error, GcOptions, Model, NewModel, StagedBlob, Store, VerifyOptions,
};

use crate::common::{get, noise, temp_store};

fn stage(store: &Store, data: &[u8]) -> StagedBlob {
    let mut w = store.blob_writer();
    w.write_all(data).unwrap();
    w.stage().unwrap()
}

fn clean(store: &Store) {
    let r = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
}

/// Content of the `i`th small file of a test version: distinct per `i`.
fn small(i: usize, seed: u64) -> Vec<u8> {
    let mut v = format!("file {i} of seed {seed}\n").into_bytes();
    v.extend(noise(200 + i % 300, seed * 1_000_003 + i as u64));
    v
}

fn assert_wrong_store(e: &Error, owner: &Store, target: &Store) {
    let Error::WrongStore {
        owner: o,
        target: t,
        ..
    } = e
    else {
        panic!("expected a wrong-store error, got {e}");
    };
    assert!(o.contains(&owner.path().display().to_string()), "{e}");
    assert!(t.contains(&target.path().display().to_string()), "{e}");
    assert!(o.contains(&owner.id().to_string()), "{e}");
    assert!(t.contains(&target.id().to_string()), "{e}");
}

#[test]
fn a_blob_staged_in_another_store_is_refused_and_changes_nothing() {
    let (_da, a) = temp_store();
    let (_db, b) = temp_store();
    // B has a version of its own, whose blob's manifest id (1) is the one
    // A's allocator hands out first too.
    let mb = b.create_model(NewModel::new("m")).unwrap();
    let b_data = noise(300_000, 1);
    let v1 = mb
        .add_version_staged(vec![("b.bin".into(), stage(&b, &b_data))], None)
        .unwrap();
    let b_before = b.stats();

    let a_data = noise(200_000, 2);
    let sa = stage(&a, &a_data);
    let sa_id = sa.id();
    let e = mb
        .add_version_staged(vec![("a.bin".into(), sa)], None)
        .expect_err("a blob staged in store A was committed into store B");
    assert_wrong_store(&e, &a, &b);

    // B is unchanged: same figures, same versions, its blob reads back.
    assert_eq!(b.stats(), b_before);
    assert_eq!(mb.versions().unwrap(), vec![v1]);
    assert!(!b.contains_blob(&sa_id).unwrap());
    let ver = mb.version(None).unwrap();
    assert_eq!(get(&b, &ver.file("b.bin").unwrap().blob), b_data);
    assert!(b.uploads().unwrap().is_empty());
    clean(&b);
    assert_eq!(b.gc(&GcOptions::new()).unwrap().chunks_deleted, 0);
    assert_eq!(get(&b, &ver.file("b.bin").unwrap().blob), b_data);

    // A is unaffected: the refused blob was given up there, and A goes on.
    assert!(!a.contains_blob(&sa_id).unwrap());
    clean(&a);
    let ma = a.create_model(NewModel::new("m")).unwrap();
    ma.add_version_staged(vec![("a.bin".into(), stage(&a, &a_data))], None)
        .unwrap();
    assert_eq!(
        get(&a, &ma.version(None).unwrap().file("a.bin").unwrap().blob),
        a_data
    );
    clean(&a);

    // The same through a version upload: the blob, or the whole upload.
    let mut up = b.version_upload();
    let e = up
        .add("a.bin", stage(&a, &noise(50_000, 3)))
        .expect_err("a version upload of B took a blob staged in A");
    assert_wrong_store(&e, &a, &b);
    up.add("ok.bin", stage(&b, b"fine")).unwrap();
    let e = ma
        .add_version_upload(up, None)
        .expect_err("a version upload of B was committed into A");
    assert_wrong_store(&e, &b, &a);
    assert_eq!(b.stats(), b_before);
    clean(&a);
    clean(&b);
}

/// Copies a store directory (closed) file by file.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn a_blob_staged_in_a_copy_of_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
    {
        let a = Store::create(&pa).unwrap();
        let m = a.create_model(NewModel::new("m")).unwrap();
        m.add_version_staged(vec![("x".into(), stage(&a, &noise(100_000, 4)))], None)
            .unwrap();
    }
    copy_dir(&pa, &pb);
    let a = Store::open(&pa).unwrap();
    let b = Store::open(&pb).unwrap();
    // Same store id, different stores: their manifest allocators, upload
    // sessions and pending chunks are their own.
    assert_eq!(a.id(), b.id());
    let before = a.stats();
    let m = a.model_by_name("m").unwrap();
    let e = m
        .add_version_staged(vec![("y".into(), stage(&b, &noise(100_000, 5)))], None)
        .expect_err("a blob staged in a copy of the store was committed");
    assert_wrong_store(&e, &b, &a);
    assert_eq!(a.stats(), before);
    assert_eq!(m.versions().unwrap(), vec![1]);
    clean(&a);
    clean(&b);
}

/// Adds small files `files` (seed `seed`) to a version upload, under `dir/`.
fn add_small(
    store: &Store,
    up: &mut modelvault::VersionUpload,
    dir: &str,
    files: std::ops::Range<usize>,
    seed: u64,
) {
    for i in files {
        up.add(format!("{dir}/{i:05}.bin"), stage(store, &small(i, seed)))
            .unwrap();
    }
}

#[test]
fn a_version_of_thousands_of_files_is_committed_in_groups_and_visible_only_at_the_end() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("many")).unwrap();
    let mut up = store.version_upload();
    const N: usize = 2_500;
    add_small(&store, &mut up, "w", 0..1_500, 1);
    // A copy of content whose group is committed, in the next group.
    up.add("copy/early.bin", stage(&store, &small(10, 1)))
        .unwrap();
    add_small(&store, &mut up, "w", 1_500..N, 1);
    // A few large files, and copies of content added before (in a group
    // already committed, and in the group still pending).
    let big = noise(3 << 20, 7);
    up.add("big/a.bin", stage(&store, &big)).unwrap();
    up.add("big/b.bin", stage(&store, &big)).unwrap();
    up.add("copy/first.bin", stage(&store, &small(0, 1)))
        .unwrap();
    up.add("copy/last.bin", stage(&store, &small(N - 1, 1)))
        .unwrap();
    assert_eq!(up.len(), N + 5);
    // Two groups are committed by now, and invisible: no blob, no version;
    // their sessions are open uploads, which no collection expires.
    assert_eq!(store.stats().blobs, 0);
    assert!(m.versions().unwrap().is_empty());
    let open = store.uploads().unwrap();
    assert!(open.len() >= 2_000, "{} sessions", open.len());
    assert!(open.iter().all(|u| u.open));
    let r = store
        .gc(&GcOptions::new().expire_uploads_after(Duration::ZERO))
        .unwrap();
    assert_eq!((r.uploads_expired, r.chunks_deleted), (0, 0));
    clean(&store);

    let v = m.add_version_upload(up, None).unwrap();
    assert_eq!(v, 1);
    let ver = m.version(None).unwrap();
    assert_eq!(ver.files.len(), N + 5);
    for i in [0, 1, 1023, 1024, 1500, 2047, 2048, N - 1] {
        let f = ver.file(&format!("w/{i:05}.bin")).unwrap();
        assert_eq!(get(&store, &f.blob), small(i, 1), "file {i}");
    }
    assert_eq!(
        ver.file("big/a.bin").unwrap().blob,
        ver.file("big/b.bin").unwrap().blob
    );
    assert_eq!(
        ver.file("copy/first.bin").unwrap().blob,
        ver.file("w/00000.bin").unwrap().blob
    );
    assert_eq!(
        ver.file("copy/early.bin").unwrap().blob,
        ver.file("w/00010.bin").unwrap().blob
    );
    assert_eq!(
        ver.file("copy/last.bin").unwrap().blob,
        ver.file(&format!("w/{:05}.bin", N - 1)).unwrap().blob
    );
    assert_eq!(get(&store, &ver.file("big/a.bin").unwrap().blob), big);
    assert_eq!(store.stats().blobs, N as u64 + 1);
    assert!(store.uploads().unwrap().is_empty());
    clean(&store);
    // Collection frees only what the duplicates left behind.
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(get(&store, &ver.file("big/b.bin").unwrap().blob), big);
    clean(&store);
}

#[test]
fn bad_paths_are_refused_when_added_and_the_upload_goes_on() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("m")).unwrap();
    let mut up = store.version_upload();
    up.add("a/b", stage(&store, b"1")).unwrap();
    for (bad, what) in [
        ("a/b", "two files"),
        ("a", "cannot be a folder"),
        ("a/b/c", "cannot be a folder"),
        ("../x", ""),
        ("", ""),
    ] {
        let e = up.add(bad, stage(&store, b"2")).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{bad:?}: {e}");
        assert!(e.to_string().contains(what), "{bad:?}: {e}");
    }
    up.add("a/c", stage(&store, b"3")).unwrap();
    m.add_version_upload(up, None).unwrap();
    let ver = m.version(None).unwrap();
    let paths: Vec<&str> = ver.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a/b", "a/c"]);
    assert_eq!(store.stats().blobs, 2);
    clean(&store);
}

/// After a version upload that never became a version: nothing visible,
/// and one collection frees every chunk its group commits stored.
fn assert_all_collectable(store: &Store, m: &Model) {
    assert!(m.versions().unwrap().is_empty());
    assert_eq!(store.stats().blobs, 0);
    clean(store);
    let r = store
        .gc(&GcOptions::new().expire_uploads_after(Duration::ZERO))
        .unwrap();
    assert!(r.chunks_deleted > 0, "{r:?}");
    let s = store.stats();
    assert_eq!((s.chunks, s.unique_bytes, s.blobs), (0, 0, 0), "{s:?}");
    assert!(store.uploads().unwrap().is_empty());
    clean(store);
}

#[test]
fn a_version_upload_dropped_between_groups_leaves_only_garbage() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("m")).unwrap();
    let mut up = store.version_upload();
    add_small(&store, &mut up, "w", 0..2_100, 2);
    up.add("big.bin", stage(&store, &noise(2 << 20, 8)))
        .unwrap();
    assert!(store.uploads().unwrap().len() >= 2_000);
    drop(up);
    // Given up at once: no session is left for a collection to expire.
    assert!(store.uploads().unwrap().is_empty());
    assert_all_collectable(&store, &m);
}

#[test]
fn a_refused_version_commit_leaves_only_garbage() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("m")).unwrap();
    let mut up = store.version_upload();
    add_small(&store, &mut up, "w", 0..2_100, 3);
    m.finalize().unwrap();
    let e = m.add_version_upload(up, None).unwrap_err();
    assert!(matches!(e, Error::Immutable { .. }), "{e}");
    assert!(store.uploads().unwrap().is_empty());
    assert_all_collectable(&store, &m);
}

/// The child's side of the crash test: only active when the parent sets
/// `MODELVAULT_VERSION_CRASH_CHILD` to a store path. Commits groups of a
/// version upload, says so, and waits to be killed.
#[test]
fn version_upload_crash_child() {
    let Some(dir) = std::env::var_os("MODELVAULT_VERSION_CRASH_CHILD") else {
        return;
    };
    let store = Store::open(&dir).unwrap();
    let mut up = store.version_upload();
    add_small(&store, &mut up, "w", 0..2_100, 4);
    up.add("big.bin", stage(&store, &noise(2 << 20, 9)))
        .unwrap();
    let n = store.uploads().unwrap().len();
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nGROUPS {n}").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_crash_between_group_commits_leaves_only_collectable_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    {
        let store = Store::create(&path).unwrap();
        store.create_model(NewModel::new("m")).unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "upload_staging::version_upload_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MODELVAULT_VERSION_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sessions = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("GROUPS ") {
            sessions = Some(n.parse::<usize>().unwrap());
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let sessions = sessions.expect("the child ended before committing its groups");
    assert!(sessions >= 2_000, "{sessions} sessions");

    // Expiring each session is a commit of its own: no WAL fsync each.
    let store = Store::options()
        .create(false)
        .durability(Durability::Eventual)
        .open(&path)
        .unwrap();
    let m = store.model_by_name("m").unwrap();
    // What the groups wrote is there, owned by abandoned sessions.
    assert_eq!(store.uploads().unwrap().len(), sessions);
    assert!(store.stats().chunks > 0);
    // Not expired while young...
    let r = store.gc(&GcOptions::new()).unwrap();
    assert_eq!((r.uploads_expired, r.chunks_deleted), (0, 0));
    // ... and collected once they are.
    assert_all_collectable(&store, &m);
    // The store takes a new version as usual.
    let blob: BlobId = {
        let mut up = store.version_upload();
        up.add("x.bin", stage(&store, b"after")).unwrap();
        m.add_version_upload(up, None).unwrap();
        m.version(None).unwrap().file("x.bin").unwrap().blob
    };
    assert_eq!(get(&store, &blob), b"after");
    clean(&store);
}
