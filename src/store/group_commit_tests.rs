//! Group commit (`chunk/group.rs`) through the public API, with a seam on
//! the WAL fsync: concurrent commits share fsyncs, and none is reported
//! durable unless an fsync that began after it was written succeeded.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::error::Error;
use crate::{NewModel, Store};

const THREADS: usize = 16;

/// `THREADS` threads, started together, each creating `per_thread` models;
/// the result of each create.
fn create_concurrently(store: &Store, per_thread: usize) -> Vec<crate::Result<()>> {
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..per_thread)
                    .map(|i| {
                        store
                            .create_model(NewModel::new(format!("m-{t}-{i}")))
                            .map(|_| ())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn concurrent_commits_share_wal_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("vault")).unwrap();
    let chunks = store.inner.chunks();
    // A slow disk: while one fsync runs, the other threads' commits are
    // written and wait for the next one.
    chunks.set_fsync_fault(Some(Box::new(|| {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    })));
    let before = chunks.wal_fsyncs();
    let results = create_concurrently(&store, 8);
    let commits = results.len() as u64;
    for r in &results {
        r.as_ref().unwrap();
    }
    let fsyncs = chunks.wal_fsyncs() - before;
    assert!(
        fsyncs * 2 <= commits,
        "{commits} concurrent commits took {fsyncs} WAL fsyncs: they did not share them"
    );
    assert_eq!(store.models().unwrap().len() as u64, commits);
}

#[test]
fn one_committer_alone_gets_one_fsync_per_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("vault")).unwrap();
    let chunks = store.inner.chunks();
    let before = chunks.wal_fsyncs();
    for i in 0..5 {
        store.create_model(NewModel::new(format!("m{i}"))).unwrap();
        assert_eq!(
            chunks.wal_fsyncs() - before,
            i + 1,
            "commit {i} returned unsynced"
        );
    }
}

#[test]
fn a_failed_wal_fsync_fails_every_commit_waiting_for_it_and_poisons_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Store::create(&dir).unwrap();
    store.create_model(NewModel::new("before")).unwrap();
    store.inner.chunks().set_fsync_fault(Some(Box::new(|| {
        std::thread::sleep(Duration::from_millis(20));
        Err(Error::io(
            "meta/WAL",
            std::io::Error::other("injected fsync failure"),
        ))
    })));
    let results = create_concurrently(&store, 1);
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        ok, 0,
        "{ok} commits were reported durable though no fsync succeeded"
    );
    for r in &results {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(e.contains("injected fsync failure"), "{e}");
    }
    // Later commits are refused, with the reason.
    match store.create_model(NewModel::new("after")) {
        Err(Error::Poisoned(why)) => assert!(why.contains("injected fsync failure"), "{why}"),
        other => panic!("a commit after a failed fsync: {:?}", other.map(|m| m.id())),
    }
    // Reopened, the store works again; what was acknowledged is there.
    drop(store);
    let store = Store::open(&dir).unwrap();
    store.model_by_name("before").unwrap();
    store.create_model(NewModel::new("again")).unwrap();
}
