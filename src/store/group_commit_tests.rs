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

/// Waits until `n` commits are queued behind the held commit lock.
fn wait_queued(chunks: &crate::chunk::Chunks, n: usize) {
    let start = std::time::Instant::now();
    while chunks.queued_commits() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} commits queued, waiting for {n}",
            chunks.queued_commits()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn commits_queued_behind_the_lock_run_in_one_round_in_order_and_fail_alone() {
    use crate::meta::Batch;
    use std::sync::Mutex;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("vault")).unwrap();
    // Which commit closures ran, in what order, on which thread.
    let ran = Arc::new(Mutex::new(Vec::new()));
    let held = store.inner.chunks().hold_commit_lock();
    let mut handles = Vec::new();
    for i in 0..6usize {
        let (s, ran) = (store.clone(), ran.clone());
        handles.push(std::thread::spawn(move || -> crate::Result<()> {
            let store = s;
            let record = |i: usize| ran.lock().unwrap().push((i, std::thread::current().id()));
            let chunks = store.inner.chunks();
            match i {
                // One bucket created twice in one round: the second commit
                // must see the first one's write.
                2 | 3 => store.objects().create_bucket("same").map(|_| ()),
                4 => chunks.commit(&[], Batch::default(), |_, _, _| -> crate::Result<()> {
                    record(i);
                    panic!("commit closure {i} panics");
                }),
                5 => chunks.commit(&[], Batch::default(), |_, _, _| {
                    record(i);
                    Err(Error::invalid("commit", i, "refused"))
                }),
                _ => chunks.commit(&[], Batch::default(), |_, _, _| {
                    record(i);
                    Ok(())
                }),
            }
        }));
        wait_queued(store.inner.chunks(), i + 1);
    }
    drop(held);
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    assert!(results[0].as_ref().unwrap().is_ok());
    assert!(results[1].as_ref().unwrap().is_ok());
    assert!(results[2].as_ref().unwrap().is_ok());
    assert!(
        matches!(results[3].as_ref().unwrap(), Err(Error::Exists { .. })),
        "the second create of one bucket in a round: {:?}",
        results[3]
    );
    // The panic reached the thread that made the commit, with its message.
    let payload = results[4].as_ref().expect_err("commit 4 panicked");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("commit closure 4 panics")
    );
    assert!(
        matches!(results[5].as_ref().unwrap(), Err(Error::InvalidInput { value, .. }) if value == "5"),
        "{:?}",
        results[5]
    );
    let ran = ran.lock().unwrap().clone();
    let order: Vec<usize> = ran.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, [0, 1, 4, 5], "closures ran out of queue order");
    assert!(
        ran.iter().all(|(_, t)| *t == ran[0].1),
        "the queued commits were not combined on one thread: {ran:?}"
    );
    // The store goes on: nothing was poisoned by the failures.
    store.create_model(NewModel::new("after")).unwrap();
    assert_eq!(store.objects().buckets().unwrap().len(), 1);
}
