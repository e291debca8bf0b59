//! The registry under concurrency: many threads driving their own
//! experiments at once, several threads writing one experiment or one
//! model, readers polling while a writer updates, and writes racing the
//! end of an experiment. Every update is a read-modify-write under the
//! store's commit lock, so nothing may be lost, duplicated or seen out of
//! order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use modelvault::query::{self, Value};
use modelvault::{Error, FileEntry, NewExperiment, NewModel, Status, Store, Stream};

use crate::common::{get, noise, put, temp_store, weights};

fn file(store: &Store, path: &str, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        blob: put(store, data),
        size: data.len() as u64,
    }
}

fn line_text(t: usize, i: usize) -> String {
    format!("worker {t} line {i}: {}", "x".repeat(i % 17))
}

fn stream_of(i: usize) -> Stream {
    if i.is_multiple_of(3) {
        Stream::Stderr
    } else {
        Stream::Stdout
    }
}

#[test]
fn eight_experiments_at_once_are_each_complete() {
    const THREADS: usize = 8;
    const LINES: usize = 200;
    const ITERS: u64 = 60;
    let (_d, store) = temp_store();
    // A base model every worker uses as input.
    let base = store.create_model(NewModel::new("base")).unwrap();
    base.add_version(vec![file(&store, "base.bin", &weights(50_000, 999))])
        .unwrap();
    let shared = weights(100_000, 1000); // the same bytes in every worker's model
    let barrier = Arc::new(Barrier::new(THREADS));

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let base_id = base.id();
            let shared = shared.clone();
            thread::spawn(move || {
                let own1 = weights(80_000 + t * 1000, t as u64);
                let own2 = noise(30_000, 100 + t as u64);
                barrier.wait();
                let e = store
                    .create_experiment(
                        NewExperiment::new("conc", format!("worker-{t}"))
                            .tags(["conc", &format!("w{t}")]),
                    )
                    .unwrap();
                e.start().unwrap();
                for k in 0..10 {
                    e.set_param(&format!("w{t}/p{k}"), Value::Int((t * 100 + k) as i64))
                        .unwrap();
                }
                e.set_param("common/lr", Value::Float(t as f64 * 0.5))
                    .unwrap();
                e.use_model(base_id, 1).unwrap();
                let mut i = 0;
                let mut seqs = Vec::new();
                while i < LINES {
                    if i % 20 == 10 {
                        // A batch of five.
                        let texts: Vec<String> = (i..i + 5).map(|j| line_text(t, j)).collect();
                        let first = e
                            .log_lines(
                                texts
                                    .iter()
                                    .enumerate()
                                    .map(|(k, s)| (stream_of(i + k), s.as_str())),
                            )
                            .unwrap();
                        seqs.extend(first..first + 5);
                        i += 5;
                    } else {
                        seqs.push(
                            e.log(stream_of(i), &format!("{}\n", line_text(t, i)))
                                .unwrap(),
                        );
                        i += 1;
                    }
                    if i % 20 == 0 {
                        e.set_progress((i * 100 / LINES) as u8 - 1).unwrap();
                    }
                }
                assert_eq!(seqs, (0..LINES as u64).collect::<Vec<_>>(), "worker {t}");
                for it in 0..ITERS {
                    e.report_scalar("loss", "train", it, t as f64 + it as f64 / 100.0)
                        .unwrap();
                    if it % 3 == 0 {
                        e.report_scalar("loss", "val", it, -(t as f64)).unwrap();
                    }
                }
                let m = store
                    .create_model(
                        NewModel::new(format!("model-{t}"))
                            .experiment(e.id())
                            .tags(["conc"])
                            .metadata("worker", Value::Int(t as i64)),
                    )
                    .unwrap();
                let v1 = m
                    .add_version_by(
                        vec![
                            file(&store, "own.bin", &own1),
                            file(&store, "shared.bin", &shared),
                        ],
                        Some(e.id()),
                    )
                    .unwrap();
                let v2 = m
                    .add_version_by(vec![file(&store, "own.bin", &own2)], Some(e.id()))
                    .unwrap();
                assert_eq!((v1, v2), (1, 2));
                m.set_alias("best", 1).unwrap();
                e.finish(Status::Completed).unwrap();
                (e.id(), m.id(), own1, own2)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let shared_blob = modelvault::BlobId(modelvault::Hash32::of(&shared));
    for (t, (eid, mid, own1, own2)) in results.iter().enumerate() {
        let e = store.experiment(*eid).unwrap();
        let info = e.info().unwrap();
        assert_eq!(info.name, format!("worker-{t}"));
        assert_eq!(info.status, Status::Completed);
        assert_eq!(info.progress, 100);
        let mut params: BTreeMap<String, Value> = (0..10)
            .map(|k| (format!("w{t}/p{k}"), Value::Int((t * 100 + k) as i64)))
            .collect();
        params.insert("common/lr".into(), Value::Float(t as f64 * 0.5));
        assert_eq!(info.params, params, "worker {t}");
        assert_eq!(info.input_models, vec![(base.id(), 1)]);
        assert_eq!(info.created_models, vec![*mid]);
        assert_eq!(info.console_lines, LINES as u64);
        let lines = e.console(0, usize::MAX).unwrap();
        assert_eq!(lines.len(), LINES, "worker {t}");
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l.seq, i as u64);
            assert_eq!(l.text, line_text(t, i), "worker {t} line {i}");
            assert_eq!(l.stream, stream_of(i), "worker {t} line {i}");
        }
        let loss = e.scalars("loss").unwrap();
        let mut want: Vec<(String, u64, f64)> = (0..ITERS)
            .map(|it| ("train".to_string(), it, t as f64 + it as f64 / 100.0))
            .collect();
        want.extend(
            (0..ITERS)
                .filter(|it| it % 3 == 0)
                .map(|it| ("val".to_string(), it, -(t as f64))),
        );
        assert_eq!(loss, want, "worker {t}");

        let m = store.model(*mid).unwrap();
        let mi = m.info().unwrap();
        assert_eq!(
            (mi.latest, mi.experiment, mi.aliases["best"]),
            (2, Some(*eid), 1)
        );
        let v1 = m.version(Some(1)).unwrap();
        assert_eq!(v1.experiment, Some(*eid));
        assert_eq!(get(&store, &v1.file("own.bin").unwrap().blob), *own1);
        assert_eq!(v1.file("shared.bin").unwrap().blob, shared_blob);
        assert_eq!(
            get(&store, &m.version(Some(2)).unwrap().files[0].blob),
            *own2
        );
    }
    assert_eq!(get(&store, &shared_blob), shared);
    let mut used: Vec<_> = base.used_by().unwrap();
    used.sort();
    let mut want_used: Vec<_> = results.iter().map(|r| (r.0, 1)).collect();
    want_used.sort();
    assert_eq!(used, want_used);
    assert_eq!(
        store.versions_with_blob(&shared_blob).unwrap().len(),
        THREADS
    );
    assert_eq!(
        store.experiments().tag("conc").run().unwrap().len(),
        THREADS
    );
    assert_eq!(
        store
            .experiments()
            .status(Status::Completed)
            .run()
            .unwrap()
            .len(),
        THREADS
    );
    let found = store
        .find_models(&query::parse("tag = conc AND metadata.worker >= 4").unwrap())
        .unwrap();
    assert_eq!(found.len(), THREADS - 4);
    assert_eq!(store.stats().versions, 1 + 2 * THREADS as u64);
    let report = store.verify_index().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// One writer sets progress 0..=100 in order; readers poll. A reader may
/// miss values but never sees one go down, and sees the final 100.
#[test]
fn progress_readers_see_a_non_decreasing_sequence() {
    let (_d, store) = temp_store();
    for round in 0..3 {
        let e = store
            .create_experiment(NewExperiment::new("poll", format!("r{round}")))
            .unwrap();
        e.start().unwrap();
        let barrier = Arc::new(Barrier::new(3));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let store = store.clone();
                let id = e.id();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    // Its own handle, looked up by id.
                    let h = store.experiment(id).unwrap();
                    barrier.wait();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut seen = Vec::new();
                    loop {
                        let p = if r == 0 {
                            h.progress().unwrap()
                        } else {
                            h.info().unwrap().progress
                        };
                        if seen.last() != Some(&p) {
                            seen.push(p);
                        }
                        if p == 100 {
                            return seen;
                        }
                        assert!(Instant::now() < deadline, "never saw 100: {seen:?}");
                    }
                })
            })
            .collect();
        let writer = {
            let e = e.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for p in 0..=100u8 {
                    e.set_progress(p).unwrap();
                    if p % 10 == 0 {
                        e.log(Stream::Stdout, &format!("at {p}")).unwrap();
                    }
                }
            })
        };
        writer.join().unwrap();
        for r in readers {
            let seen = r.join().unwrap();
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "round {round}: progress went down: {seen:?}"
            );
            assert_eq!(seen.last(), Some(&100));
            assert!(seen.iter().all(|&p| p <= 100));
        }
        assert_eq!(e.progress().unwrap(), 100);
        assert_eq!(e.info().unwrap().console_lines, 11);
    }
}

/// Several threads write the same experiment at once (params, console,
/// scalars, artifacts, progress): no update is lost, none duplicated.
#[test]
fn one_experiment_written_by_many_threads_loses_nothing() {
    const THREADS: usize = 6;
    const EACH: usize = 40;
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("shared", "one"))
        .unwrap();
    e.start().unwrap();
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let e = e.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut seqs = Vec::new();
                let mut revisions = Vec::new();
                for i in 0..EACH {
                    seqs.push(e.log(Stream::Stdout, &format!("t{t} #{i}")).unwrap());
                    e.set_param(&format!("t{t}/k{i}"), Value::Int(i as i64))
                        .unwrap();
                    e.report_scalar("m", &format!("t{t}"), i as u64, i as f64)
                        .unwrap();
                    if i % 8 == 0 {
                        revisions.push(
                            e.add_artifact(
                                "shared-name",
                                modelvault::ArtifactBody::Inline(Value::Str(format!("t{t} #{i}"))),
                                BTreeMap::new(),
                            )
                            .unwrap(),
                        );
                    }
                }
                (seqs, revisions)
            })
        })
        .collect();
    let progress = {
        let e = e.clone();
        let barrier = barrier.clone();
        thread::spawn(move || {
            barrier.wait();
            for p in 0..=100 {
                e.set_progress(p).unwrap();
            }
        })
    };
    let outs: Vec<(Vec<u64>, Vec<u32>)> = workers.into_iter().map(|h| h.join().unwrap()).collect();
    progress.join().unwrap();

    let total = (THREADS * EACH) as u64;
    let info = e.info().unwrap();
    assert_eq!(info.console_lines, total);
    assert_eq!(info.progress, 100);
    assert_eq!(info.params.len(), THREADS * EACH);
    for t in 0..THREADS {
        for i in 0..EACH {
            assert_eq!(info.params[&format!("t{t}/k{i}")], Value::Int(i as i64));
        }
    }
    // Every sequence number handed out once; each line where its number says.
    let all_seqs: BTreeSet<u64> = outs.iter().flat_map(|o| o.0.iter().copied()).collect();
    assert_eq!(all_seqs, (0..total).collect::<BTreeSet<_>>());
    let lines = e.console(0, usize::MAX).unwrap();
    assert_eq!(lines.len() as u64, total);
    for (t, (seqs, _)) in outs.iter().enumerate() {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "thread {t} out of order"
        );
        for (i, s) in seqs.iter().enumerate() {
            assert_eq!(lines[*s as usize].text, format!("t{t} #{i}"));
        }
    }
    // Artifact revisions: 1..=n, each handed out once, each holding what its writer wrote.
    let revs: BTreeSet<u32> = outs.iter().flat_map(|o| o.1.iter().copied()).collect();
    let n_revs = outs.iter().map(|o| o.1.len()).sum::<usize>() as u32;
    assert_eq!(revs, (1..=n_revs).collect::<BTreeSet<_>>());
    for (t, (_, rs)) in outs.iter().enumerate() {
        for (k, r) in rs.iter().enumerate() {
            let a = e.artifact("shared-name", Some(*r)).unwrap();
            assert_eq!(
                a.body,
                modelvault::ArtifactBody::Inline(Value::Str(format!("t{t} #{}", k * 8)))
            );
        }
    }
    let m = e.scalars("m").unwrap();
    assert_eq!(m.len(), THREADS * EACH);
    assert!(store.verify_index().unwrap().is_clean());
}

/// Many threads adding versions, tags and one alias to the same model.
#[test]
fn one_model_written_by_many_threads_numbers_versions_without_gaps() {
    const THREADS: usize = 8;
    const EACH: usize = 8;
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("busy")).unwrap();
    m.add_version(vec![file(&store, "w", b"v1")]).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let id = m.id();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let m = store.model(id).unwrap();
                let data: Vec<Vec<u8>> = (0..EACH)
                    .map(|i| noise(2000 + i, (t * 100 + i) as u64))
                    .collect();
                barrier.wait();
                let alias = match m.set_alias("winner", 1) {
                    Ok(()) => true,
                    Err(Error::Exists { .. }) => false,
                    Err(e) => panic!("{e}"),
                };
                let mut got = Vec::new();
                for (i, d) in data.iter().enumerate() {
                    let v = m.add_version(vec![file(&store, "w", d)]).unwrap();
                    got.push((v, d.clone()));
                    m.add_tags([format!("t{t}-{i}")]).unwrap();
                    m.set_metadata(&format!("t{t}"), Value::Int(i as i64))
                        .unwrap();
                }
                (alias, got)
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        outs.iter().filter(|o| o.0).count(),
        1,
        "exactly one alias creation wins"
    );
    let total = (THREADS * EACH) as u32 + 1;
    let info = m.info().unwrap();
    assert_eq!(info.latest, total);
    assert_eq!(m.versions().unwrap(), (1..=total).collect::<Vec<_>>());
    let mut numbers = BTreeSet::new();
    for (_, got) in &outs {
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        for (v, d) in got {
            assert!(numbers.insert(*v), "version {v} handed out twice");
            let ver = m.version(Some(*v)).unwrap();
            assert_eq!(get(&store, &ver.files[0].blob), *d, "version {v}");
        }
    }
    assert_eq!(numbers, (2..=total).collect::<BTreeSet<_>>());
    assert_eq!(info.tags.len(), THREADS * EACH);
    for t in 0..THREADS {
        assert_eq!(info.metadata[&format!("t{t}")], Value::Int(EACH as i64 - 1));
    }
    assert_eq!(info.aliases.get("winner"), Some(&1));
    assert_eq!(store.stats().versions, total as u64);
    assert!(store.verify_index().unwrap().is_clean());
}

/// Registering one URL from many threads at once yields one model.
#[test]
fn concurrent_external_registration_yields_one_model() {
    let (_d, store) = temp_store();
    let barrier = Arc::new(Barrier::new(8));
    let ids: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let a = store
                    .register_external_model(
                        NewModel::new(format!("ext-{t}")),
                        "hf://org/model",
                        None,
                    )
                    .unwrap()
                    .id();
                let b = store
                    .register_external_model(
                        NewModel::new("own"),
                        &format!("hf://org/own-{t}"),
                        None,
                    )
                    .unwrap()
                    .id();
                (a, b)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let shared: BTreeSet<_> = ids.iter().map(|p| p.0).collect();
    assert_eq!(shared.len(), 1, "{ids:?}");
    let own: BTreeSet<_> = ids.iter().map(|p| p.1).collect();
    assert_eq!(own.len(), 8);
    assert_eq!(store.models().unwrap().len(), 9);
    assert!(store.verify_index().unwrap().is_clean());
}

/// Writes racing `finish`: each either lands before the end (and is kept)
/// or fails as Immutable (and leaves nothing); none is half-applied.
#[test]
fn writes_racing_finish_are_all_or_nothing() {
    let (_d, store) = temp_store();
    for round in 0..4 {
        let e = store
            .create_experiment(NewExperiment::new("race", format!("r{round}")))
            .unwrap();
        e.start().unwrap();
        let barrier = Arc::new(Barrier::new(5));
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let e = e.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let mut ok = Vec::new();
                    let mut params = BTreeMap::new();
                    for i in 0..200 {
                        match e.log_lines([(Stream::Stdout, "a"), (Stream::Stdout, "b")]) {
                            Ok(seq) => ok.push(seq),
                            Err(Error::Immutable { state, .. }) => {
                                assert_eq!(state, "stopped");
                                break;
                            }
                            Err(err) => panic!("{err}"),
                        }
                        // The end may land between the two writes: then
                        // (and only then) the parameter is refused.
                        let key = format!("t{t}/i{i}");
                        match e.set_param(&key, Value::Int(i)) {
                            Ok(()) => {
                                params.insert(key, Value::Int(i));
                            }
                            Err(Error::Immutable { state, .. }) => {
                                assert_eq!(state, "stopped");
                                break;
                            }
                            Err(err) => panic!("set_param {key}: {err}"),
                        }
                    }
                    (ok, params)
                })
            })
            .collect();
        let finisher = {
            let e = e.clone();
            thread::spawn(move || {
                barrier.wait();
                thread::sleep(Duration::from_millis(5 + round * 5));
                e.finish(Status::Stopped).unwrap();
            })
        };
        finisher.join().unwrap();
        let mut oks: Vec<u64> = Vec::new();
        let mut params = BTreeMap::new();
        for h in writers {
            let (ok, p) = h.join().unwrap();
            oks.extend(ok);
            params.extend(p);
        }
        let info = e.info().unwrap();
        assert_eq!(info.status, Status::Stopped);
        // Exactly the acknowledged parameters, with their values: none
        // lost, none refused yet applied.
        assert_eq!(info.params, params, "round {round}");
        assert_eq!(info.console_lines, 2 * oks.len() as u64, "round {round}");
        let seqs: BTreeSet<u64> = oks.iter().copied().collect();
        assert_eq!(
            seqs,
            (0..oks.len() as u64)
                .map(|k| 2 * k)
                .collect::<BTreeSet<_>>()
        );
        let lines = e.console(0, usize::MAX).unwrap();
        assert_eq!(lines.len(), 2 * oks.len());
        assert!(lines
            .chunks(2)
            .all(|c| c[0].text == "a" && c[1].text == "b"));
        // Nothing more lands afterwards.
        assert!(matches!(
            e.log(Stream::Stdout, "late"),
            Err(Error::Immutable { .. })
        ));
        assert_eq!(e.info().unwrap().console_lines, info.console_lines);
    }
}
