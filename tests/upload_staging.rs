//! Staged blobs are refused by any store but the one that made them.

use std::io::Write;
use std::path::Path;

use modelvault::{Error, GcOptions, NewModel, StagedBlob, Store, VerifyOptions};

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
