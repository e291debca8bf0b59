//! Registry entities through the library API: experiments (lifecycle,
//! captures, immutability), models (versions, formats, metadata, tags,
//! aliases, URLs, finalization, external models), the links between them,
//! model queries checked against a brute-force filter, experiment listings
//! with pagination, and everything surviving a reopen.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use modelvault::detect::{FileFormat, Framework};
use modelvault::query::{self, Value};
use modelvault::{
    check_name, ArtifactBody, BlobId, EntityId, Error, Experiment, ExperimentInfo, FileEntry,
    Hash32, Model, ModelInfo, NewExperiment, NewModel, Status, Store, Stream,
};

use crate::common::{get, noise, put, temp_store};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

#[track_caller]
fn err<T>(r: modelvault::Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

#[track_caller]
fn invalid<T>(r: modelvault::Result<T>) {
    let e = err(r);
    assert!(
        matches!(e, Error::InvalidInput { .. }),
        "expected InvalidInput, got {e}"
    );
}

#[track_caller]
fn not_found<T>(r: modelvault::Result<T>) {
    let e = err(r);
    assert!(e.is_not_found(), "expected NotFound, got {e}");
}

#[track_caller]
fn exists<T>(r: modelvault::Result<T>) {
    let e = err(r);
    assert!(
        matches!(e, Error::Exists { .. }),
        "expected Exists, got {e}"
    );
}

/// Asserts Immutable and that the message names `who` and `state`.
#[track_caller]
fn immutable<T>(r: modelvault::Result<T>, who: &str, state: &str) {
    let e = err(r);
    let msg = e.to_string();
    match &e {
        Error::Immutable { state: s, .. } => assert_eq!(s, state, "{msg}"),
        _ => panic!("expected Immutable, got {e}"),
    }
    assert!(msg.contains(who), "message {msg:?} does not name {who}");
    assert!(msg.contains(state), "message {msg:?} does not name {state}");
}

#[track_caller]
fn assert_index_clean(store: &Store) {
    let r = store.verify_index().unwrap();
    assert!(r.is_clean(), "index not clean: {r:?}");
}

fn entry(store: &Store, path: &str, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        blob: put(store, data),
        size: data.len() as u64,
    }
}

/// A tiny valid safetensors file: one F32 tensor of two elements.
fn safetensors_file() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&1.5f32.to_le_bytes());
    v.extend_from_slice(&(-2.0f32).to_le_bytes());
    v
}

/// A GGUF v3 header with no tensors and no key/values.
fn gguf_file() -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn ids(infos: &[ModelInfo]) -> Vec<EntityId> {
    infos.iter().map(|i| i.id).collect()
}

fn exp_ids(infos: &[ExperimentInfo]) -> Vec<EntityId> {
    infos.iter().map(|i| i.id).collect()
}

/// A blob id that no store holds.
fn unknown_blob() -> BlobId {
    BlobId(Hash32::of(b"this content was never stored anywhere"))
}

/// An experiment id that was never created.
fn unknown_id() -> EntityId {
    "01890000-0000-7000-8000-000000000000".parse().unwrap()
}

// ---------------------------------------------------------------------------
// Experiments
// ---------------------------------------------------------------------------

#[test]
fn experiment_ids_sort_by_creation_and_lookups_work() {
    let (_d, store) = temp_store();
    let mut made = Vec::new();
    for i in 0..30 {
        let name = format!("run-{}", i % 4);
        let e = store
            .create_experiment(
                NewExperiment::new("proj", &name)
                    .tags(["b", "a", "b"])
                    .kind("training"),
            )
            .unwrap();
        made.push((e.id(), name));
    }
    for w in made.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "ids not increasing: {:?} then {:?}",
            w[0].0,
            w[1].0
        );
    }
    for (id, name) in &made {
        assert_eq!(id.uuid().get_version_num(), 7);
        let info = store.experiment(*id).unwrap().info().unwrap();
        assert_eq!(info.id, *id);
        assert_eq!(info.project, "proj");
        assert_eq!(&info.name, name);
        assert_eq!(info.tags, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(info.kind.as_deref(), Some("training"));
        assert_eq!(info.status, Status::Created);
        assert_eq!(info.progress, 0);
        assert_eq!(info.started_ms, None);
        assert_eq!(info.ended_ms, None);
        assert!(info.params.is_empty() && info.input_models.is_empty());
        assert!(info.created_models.is_empty());
        assert_eq!(info.console_lines, 0);
        let drift = info.created_ms.abs_diff(id.created_ms());
        assert!(
            drift < 2_000,
            "created_ms {} vs id time {}",
            info.created_ms,
            id.created_ms()
        );
        // Round trip of the id through its string form.
        assert_eq!(id.to_string().parse::<EntityId>().unwrap(), *id);
    }
    // By name: the most recent of that name in that project.
    for k in 0..4 {
        let name = format!("run-{k}");
        let latest = made.iter().rev().find(|(_, n)| *n == name).unwrap().0;
        assert_eq!(
            store.experiment_by_name("proj", &name).unwrap().id(),
            latest
        );
    }
    not_found(store.experiment_by_name("proj", "run-9"));
    not_found(store.experiment_by_name("other", "run-1"));
    // A name that is a prefix of existing names is not a match.
    not_found(store.experiment_by_name("proj", "run-"));
    not_found(store.experiment(unknown_id()));
    let e = err(store.experiment(unknown_id()));
    assert!(e.to_string().contains(&unknown_id().to_string()), "{e}");
    invalid("not-a-uuid".parse::<EntityId>());
}

#[test]
fn experiment_invalid_inputs_are_rejected() {
    let (_d, store) = temp_store();
    invalid(store.create_experiment(NewExperiment::new("", "n")));
    invalid(store.create_experiment(NewExperiment::new("p\n", "n")));
    invalid(store.create_experiment(NewExperiment::new("p", "")));
    invalid(store.create_experiment(NewExperiment::new("p", "a\0b")));
    invalid(store.create_experiment(NewExperiment::new("p", "tab\there")));
    invalid(store.create_experiment(NewExperiment::new("x".repeat(257), "n")));
    invalid(store.create_experiment(NewExperiment::new("p", "n").tags(["ok", ""])));
    invalid(store.create_experiment(NewExperiment::new("p", "n").tags(["bad\u{7}"])));
    invalid(store.create_experiment(NewExperiment::new("p", "n").kind("")));
    invalid(store.experiment_by_name("", "n"));
    invalid(store.experiment_by_name("p", "a\nb"));
    // Nothing was created by the failed calls.
    assert!(store.experiments().run().unwrap().is_empty());

    // Unicode without control characters is fine.
    let e = store
        .create_experiment(NewExperiment::new("projé", "nom ✓").tags(["étiquette"]))
        .unwrap();
    assert_eq!(
        store.experiment_by_name("projé", "nom ✓").unwrap().id(),
        e.id()
    );

    // Bad keys and labels on captures.
    invalid(e.set_param("", Value::Int(1)));
    invalid(e.set_param("1abc", Value::Int(1)));
    invalid(e.set_param("a b", Value::Int(1)));
    invalid(e.set_params([
        ("ok".to_string(), Value::Int(1)),
        ("bad key".to_string(), Value::Int(2)),
    ]));
    assert!(
        e.info().unwrap().params.is_empty(),
        "a rejected batch must set nothing"
    );
    invalid(e.report_scalar("", "v", 0, 1.0));
    invalid(e.report_scalar("m", "", 0, 1.0));
    invalid(e.report_scalar("m\0", "v", 0, 1.0));
    invalid(e.scalars(""));
    invalid(e.add_artifact("", ArtifactBody::Inline(Value::Int(1)), BTreeMap::new()));
    invalid(e.add_artifact(
        "a",
        ArtifactBody::Inline(Value::Int(1)),
        BTreeMap::from([("bad key".to_string(), Value::Int(1))]),
    ));
    invalid(e.finish(Status::Running));
    invalid(e.finish(Status::Created));
    assert_eq!(e.info().unwrap().status, Status::Created);
}

#[test]
fn experiment_lifecycle_and_immutability() {
    let (_d, store) = temp_store();
    let model = store.create_model(NewModel::new("base")).unwrap();
    model
        .add_version(vec![entry(&store, "w.bin", &noise(1000, 1))])
        .unwrap();
    let blob = put(&store, b"artifact bytes");

    for (final_status, start_first) in [
        (Status::Completed, true),
        (Status::Failed, true),
        (Status::Stopped, true),
        (Status::Stopped, false),
        (Status::Completed, false),
    ] {
        let e = store
            .create_experiment(NewExperiment::new("life", final_status.name()))
            .unwrap();
        e.set_param("opt/lr", Value::Float(0.1)).unwrap();
        if start_first {
            e.start().unwrap();
            let info = e.info().unwrap();
            assert_eq!(info.status, Status::Running);
            assert!(info.started_ms.is_some());
            assert_eq!(info.ended_ms, None);
            invalid(e.start());
            assert_eq!(e.info().unwrap().status, Status::Running);
        }
        e.set_progress(40).unwrap();
        e.log(Stream::Stdout, "before the end").unwrap();
        e.finish(final_status).unwrap();
        let done = e.info().unwrap();
        assert_eq!(done.status, final_status);
        assert!(done.ended_ms.is_some());
        assert_eq!(done.started_ms.is_some(), start_first);
        let expect_progress = if final_status == Status::Completed {
            100
        } else {
            40
        };
        assert_eq!(done.progress, expect_progress);

        let id = e.id().to_string();
        let st = final_status.name();
        immutable(e.set_progress(50), &id, st);
        immutable(e.set_param("opt/lr", Value::Float(0.2)), &id, st);
        immutable(e.set_params([("x".to_string(), Value::Int(1))]), &id, st);
        immutable(e.log(Stream::Stderr, "late"), &id, st);
        immutable(
            e.log_lines([(Stream::Stdout, "a"), (Stream::Stdout, "b")]),
            &id,
            st,
        );
        immutable(
            e.add_artifact(
                "late",
                ArtifactBody::Inline(Value::Bool(true)),
                BTreeMap::new(),
            ),
            &id,
            st,
        );
        immutable(
            e.add_artifact(
                "late-blob",
                ArtifactBody::Blob { blob, size: 14 },
                BTreeMap::new(),
            ),
            &id,
            st,
        );
        immutable(e.report_scalar("loss", "train", 1, 0.5), &id, st);
        immutable(e.use_model(model.id(), 1), &id, st);
        immutable(e.start(), &id, st);
        immutable(e.finish(Status::Completed), &id, st);
        immutable(e.finish(Status::Failed), &id, st);
        immutable(e.set_environment(Default::default()), &id, st);
        immutable(e.set_run_info(Default::default()), &id, st);
        immutable(
            store.create_model(NewModel::new("late-model").experiment(e.id())),
            &id,
            st,
        );
        immutable(
            model.add_version_by(vec![entry(&store, "x.bin", b"xx")], Some(e.id())),
            &id,
            st,
        );
        // Nothing changed, and everything stays readable.
        assert_eq!(e.info().unwrap(), done);
        assert_eq!(e.console(0, 10).unwrap().len(), 1);
        assert!(e.artifacts().unwrap().is_empty());
        assert!(e.scalars("loss").unwrap().is_empty());
        assert_eq!(done.params["opt/lr"], Value::Float(0.1));
    }
    assert!(model.used_by().unwrap().is_empty());
    assert_eq!(model.info().unwrap().latest, 1);
    not_found(store.model_by_name("late-model"));
    assert_index_clean(&store);
}

#[test]
fn progress_is_bounded() {
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("p", "n"))
        .unwrap();
    e.start().unwrap();
    for p in [0u8, 1, 37, 99, 100, 3] {
        e.set_progress(p).unwrap();
        assert_eq!(e.progress().unwrap(), p);
        assert_eq!(e.info().unwrap().progress, p);
    }
    for bad in [101u8, 200, 255] {
        invalid(e.set_progress(bad));
        assert_eq!(e.progress().unwrap(), 3);
    }
    e.finish(Status::Stopped).unwrap();
    assert_eq!(e.progress().unwrap(), 3, "stopping keeps the progress");
}

#[test]
fn params_are_typed_and_updatable_until_final() {
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("p", "params"))
        .unwrap();
    // Writable even before start.
    e.set_param("General/epochs", Value::Int(10)).unwrap();
    e.start().unwrap();
    e.set_params([
        ("General/lr".to_string(), Value::Float(3e-4)),
        ("General/amp".to_string(), Value::Bool(true)),
        ("Model/arch".to_string(), Value::Str("resnet50".into())),
        ("General/neg".to_string(), Value::Int(-7)),
    ])
    .unwrap();
    let mut expect = BTreeMap::from([
        ("General/epochs".to_string(), Value::Int(10)),
        ("General/lr".to_string(), Value::Float(3e-4)),
        ("General/amp".to_string(), Value::Bool(true)),
        ("Model/arch".to_string(), Value::Str("resnet50".into())),
        ("General/neg".to_string(), Value::Int(-7)),
    ]);
    assert_eq!(e.info().unwrap().params, expect);
    // Update changes value and type.
    e.set_param("General/epochs", Value::Float(12.5)).unwrap();
    e.set_param("Model/arch", Value::Str("vit".into())).unwrap();
    expect.insert("General/epochs".into(), Value::Float(12.5));
    expect.insert("Model/arch".into(), Value::Str("vit".into()));
    assert_eq!(e.info().unwrap().params, expect);
    // Types are kept exactly: Int 10 is not Float 10.0.
    e.set_param("General/epochs", Value::Int(10)).unwrap();
    assert_eq!(e.info().unwrap().params["General/epochs"], Value::Int(10));
    assert_ne!(
        e.info().unwrap().params["General/epochs"],
        Value::Float(10.0)
    );
    e.finish(Status::Completed).unwrap();
    immutable(
        e.set_param("General/epochs", Value::Int(11)),
        &e.id().to_string(),
        "completed",
    );
    assert_eq!(e.info().unwrap().params["General/epochs"], Value::Int(10));
}

#[test]
fn console_reads_from_any_offset_and_tail() {
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("p", "console"))
        .unwrap();
    e.start().unwrap();
    assert!(e.console(0, 10).unwrap().is_empty());
    assert!(e.console_tail(5).unwrap().is_empty());

    let mut expect: Vec<(Stream, String)> = Vec::new();
    let mut next = 0u64;
    for round in 0..25u64 {
        if round % 3 == 0 {
            let text = format!("single {round}\n");
            assert_eq!(e.log(Stream::Stderr, &text).unwrap(), next);
            expect.push((Stream::Stderr, format!("single {round}")));
            next += 1;
        } else {
            let n = (round % 7 + 1) as usize;
            let texts: Vec<String> = (0..n).map(|k| format!("batch {round} line {k}")).collect();
            let first = e
                .log_lines(texts.iter().map(|t| (Stream::Stdout, t.as_str())))
                .unwrap();
            assert_eq!(first, next);
            for t in texts {
                expect.push((Stream::Stdout, t));
            }
            next += n as u64;
        }
    }
    // An empty batch appends nothing and reports where the next line goes.
    assert_eq!(e.log_lines(std::iter::empty()).unwrap(), next);
    let total = expect.len() as u64;
    assert_eq!(e.info().unwrap().console_lines, total);

    let all = e.console(0, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, total);
    let mut last_ts = 0;
    for (i, line) in all.iter().enumerate() {
        assert_eq!(line.seq, i as u64);
        assert_eq!((line.stream, line.text.clone()), expect[i]);
        assert!(line.ts_ms >= last_ts);
        last_ts = line.ts_ms;
    }
    for from in [0u64, 1, 2, 17, total - 1, total, total + 5] {
        for limit in [0usize, 1, 3, 10, 1000] {
            let got = e.console(from, limit).unwrap();
            let want: Vec<_> = all
                .iter()
                .skip(from as usize)
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(got, want, "console({from}, {limit})");
        }
    }
    for n in [0usize, 1, 5, total as usize, total as usize + 10] {
        let got = e.console_tail(n).unwrap();
        let skip = all.len().saturating_sub(n);
        assert_eq!(got, all[skip..].to_vec(), "console_tail({n})");
    }
    // Another experiment's console is separate.
    let other = store
        .create_experiment(NewExperiment::new("p", "other"))
        .unwrap();
    assert_eq!(other.log(Stream::Stdout, "mine").unwrap(), 0);
    assert_eq!(other.console(0, 100).unwrap().len(), 1);
    assert_eq!(e.console(0, usize::MAX).unwrap(), all);
}

#[test]
fn artifacts_blob_inline_and_revisions() {
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("p", "arts"))
        .unwrap();
    e.start().unwrap();
    let data1 = noise(300_000, 7);
    let data2 = noise(1234, 8);
    let b1 = put(&store, &data1);
    let b2 = put(&store, &data2);

    // Size must match; the blob must exist.
    invalid(e.add_artifact(
        "weights",
        ArtifactBody::Blob {
            blob: b1,
            size: data1.len() as u64 + 1,
        },
        BTreeMap::new(),
    ));
    not_found(e.add_artifact(
        "weights",
        ArtifactBody::Blob {
            blob: unknown_blob(),
            size: 3,
        },
        BTreeMap::new(),
    ));
    not_found(e.artifact("weights", None));
    assert!(
        e.artifacts().unwrap().is_empty(),
        "a rejected artifact must not be stored"
    );

    let meta1 = BTreeMap::from([("kind".to_string(), Value::Str("ckpt".into()))]);
    let r1 = e
        .add_artifact(
            "weights",
            ArtifactBody::Blob {
                blob: b1,
                size: data1.len() as u64,
            },
            meta1.clone(),
        )
        .unwrap();
    assert_eq!(r1, 1);
    let r2 = e
        .add_artifact(
            "weights",
            ArtifactBody::Blob {
                blob: b2,
                size: data2.len() as u64,
            },
            BTreeMap::new(),
        )
        .unwrap();
    assert_eq!(r2, 2);
    let inline = Value::List(vec![Value::Str("a".into()), Value::Float(0.5)]);
    assert_eq!(
        e.add_artifact(
            "summary",
            ArtifactBody::Inline(inline.clone()),
            BTreeMap::new()
        )
        .unwrap(),
        1
    );
    assert_eq!(
        e.add_artifact(
            "summary",
            ArtifactBody::Inline(Value::Int(42)),
            BTreeMap::new()
        )
        .unwrap(),
        2
    );
    assert_eq!(
        e.add_artifact(
            "summary",
            ArtifactBody::Inline(Value::Bool(false)),
            BTreeMap::new()
        )
        .unwrap(),
        3
    );
    // A name that extends another is its own artifact.
    assert_eq!(
        e.add_artifact(
            "weightsX",
            ArtifactBody::Inline(Value::Int(1)),
            BTreeMap::new()
        )
        .unwrap(),
        1
    );

    let latest = e.artifact("weights", None).unwrap();
    assert_eq!(latest.revision, 2);
    assert_eq!(
        latest.body,
        ArtifactBody::Blob {
            blob: b2,
            size: data2.len() as u64
        }
    );
    let first = e.artifact("weights", Some(1)).unwrap();
    assert_eq!(first.revision, 1);
    assert_eq!(first.name, "weights");
    assert_eq!(first.metadata, meta1);
    match first.body {
        ArtifactBody::Blob { blob, size } => {
            assert_eq!(size, data1.len() as u64);
            assert_eq!(get(&store, &blob), data1);
        }
        other => panic!("{other:?}"),
    }
    not_found(e.artifact("weights", Some(3)));
    not_found(e.artifact("weights", Some(0)));
    assert_eq!(
        e.artifact("summary", Some(1)).unwrap().body,
        ArtifactBody::Inline(inline)
    );
    assert_eq!(
        e.artifact("summary", None).unwrap().body,
        ArtifactBody::Inline(Value::Bool(false))
    );

    let all: Vec<(String, u32)> = e
        .artifacts()
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.revision))
        .collect();
    assert_eq!(
        all,
        vec![
            ("summary".to_string(), 1),
            ("summary".to_string(), 2),
            ("summary".to_string(), 3),
            ("weights".to_string(), 1),
            ("weights".to_string(), 2),
            ("weightsX".to_string(), 1),
        ]
    );
    // Another experiment sees none of them.
    let other = store
        .create_experiment(NewExperiment::new("p", "o"))
        .unwrap();
    assert!(other.artifacts().unwrap().is_empty());
    not_found(other.artifact("weights", None));
}

#[test]
fn scalars_sorted_by_variant_then_iteration() {
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("p", "scalars"))
        .unwrap();
    e.start().unwrap();
    let mut expect: BTreeMap<(String, u64), f64> = BTreeMap::new();
    let variants = ["val", "train", "a", "train2", "tr"];
    let mut x = 12345u64;
    for k in 0..300u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v = variants[(x >> 33) as usize % variants.len()];
        let it = (x >> 40) % 1000 + if k % 50 == 0 { 1 << 40 } else { 0 };
        let val = (k as f64) * 0.25 - 10.0;
        e.report_scalar("loss", v, it, val).unwrap();
        expect.insert((v.to_string(), it), val);
    }
    // Overwriting one point keeps one point with the new value.
    e.report_scalar("loss", "a", 7, f64::INFINITY).unwrap();
    expect.insert(("a".into(), 7), f64::INFINITY);
    // Other metrics, including one whose name extends "loss", stay apart.
    e.report_scalar("loss2", "train", 1, 9.0).unwrap();
    e.report_scalar("acc", "val", 0, 0.5).unwrap();

    let got = e.scalars("loss").unwrap();
    let want: Vec<(String, u64, f64)> = expect
        .iter()
        .map(|((v, i), x)| (v.clone(), *i, *x))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        e.scalars("loss2").unwrap(),
        vec![("train".to_string(), 1, 9.0)]
    );
    assert_eq!(e.scalars("acc").unwrap(), vec![("val".to_string(), 0, 0.5)]);
    assert!(e.scalars("none").unwrap().is_empty());
    assert!(e.scalars("los").unwrap().is_empty());

    // Many points in one commit; one invalid point stores none of them.
    e.report_scalars((0..100u64).map(|i| ("batched", "train", i, i as f64)))
        .unwrap();
    let got = e.scalars("batched").unwrap();
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|(v, i, x)| v == "train" && *x == *i as f64));
    let r = e.report_scalars([("fresh", "a", 1, 1.0), ("fresh", "", 2, 2.0)]);
    assert!(
        matches!(r, Err(modelvault::Error::InvalidInput { .. })),
        "{r:?}"
    );
    assert!(e.scalars("fresh").unwrap().is_empty());
}

#[test]
fn models_link_to_the_experiments_that_create_and_use_them() {
    let (_d, store) = temp_store();
    let creator = store
        .create_experiment(NewExperiment::new("p", "train"))
        .unwrap();
    creator.start().unwrap();
    let m = store
        .create_model(NewModel::new("net").experiment(creator.id()))
        .unwrap();
    let m2 = store
        .create_model(NewModel::new("net-b").experiment(creator.id()))
        .unwrap();
    let unrelated = store.create_model(NewModel::new("solo")).unwrap();
    assert_eq!(
        m.add_version_by(vec![entry(&store, "a.bin", b"v1")], Some(creator.id()))
            .unwrap(),
        1
    );
    assert_eq!(
        m.add_version(vec![entry(&store, "a.bin", b"v2")]).unwrap(),
        2
    );
    unrelated
        .add_version(vec![entry(&store, "a.bin", b"s1")])
        .unwrap();
    assert_eq!(m.version(Some(1)).unwrap().experiment, Some(creator.id()));
    assert_eq!(m.version(Some(2)).unwrap().experiment, None);
    not_found(m.add_version_by(vec![entry(&store, "a.bin", b"v3")], Some(unknown_id())));
    assert_eq!(m.info().unwrap().latest, 2);

    let ci = creator.info().unwrap();
    let mut want = vec![m.id(), m2.id()];
    want.sort();
    assert_eq!(ci.created_models, want);
    assert!(ci.input_models.is_empty());
    assert_eq!(m.info().unwrap().experiment, Some(creator.id()));
    assert_eq!(unrelated.info().unwrap().experiment, None);

    let user1 = store
        .create_experiment(NewExperiment::new("p", "eval"))
        .unwrap();
    let user2 = store
        .create_experiment(NewExperiment::new("p", "eval"))
        .unwrap();
    user1.use_model(m.id(), 1).unwrap();
    user1.use_model(m.id(), 2).unwrap();
    user1.use_model(m.id(), 1).unwrap(); // recorded once
    user1.use_model(unrelated.id(), 1).unwrap();
    user2.use_model(m.id(), 2).unwrap();
    not_found(user1.use_model(m.id(), 3));
    not_found(user1.use_model(m.id(), 0));
    not_found(user1.use_model(unknown_id(), 1));
    not_found(user1.use_model(m2.id(), 1)); // m2 has no versions

    assert_eq!(
        user1.info().unwrap().input_models,
        vec![(m.id(), 1), (m.id(), 2), (unrelated.id(), 1)]
    );
    assert_eq!(user2.info().unwrap().input_models, vec![(m.id(), 2)]);
    assert!(user1.info().unwrap().created_models.is_empty());
    assert_eq!(
        m.used_by().unwrap(),
        vec![(user1.id(), 1), (user1.id(), 2), (user2.id(), 2)]
    );
    assert_eq!(unrelated.used_by().unwrap(), vec![(user1.id(), 1)]);
    assert!(m2.used_by().unwrap().is_empty());

    // Creating for an unknown experiment or parent fails; for a finished one is immutable.
    not_found(store.create_model(NewModel::new("x").experiment(unknown_id())));
    not_found(store.create_model(NewModel::new("x").parent(unknown_id())));
    let child = store
        .create_model(NewModel::new("child").parent(m.id()))
        .unwrap();
    assert_eq!(child.info().unwrap().parent, Some(m.id()));
    creator.finish(Status::Completed).unwrap();
    immutable(
        store.create_model(NewModel::new("late").experiment(creator.id())),
        &creator.id().to_string(),
        "completed",
    );
    not_found(store.model_by_name("late"));
    not_found(store.model_by_name("x"));
    // The links survive the experiment finishing.
    assert_eq!(creator.info().unwrap().created_models, want);
    // Finalizing a model does not stop experiments from using it.
    m.finalize().unwrap();
    user2.use_model(m.id(), 1).unwrap();
    assert_eq!(m.used_by().unwrap().len(), 4);
    assert_index_clean(&store);
}

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

#[test]
fn model_creation_and_validation() {
    let (_d, store) = temp_store();
    for ok in ["resnet", "bert-base.v2", "A_1", "0abc", &"x".repeat(128)] {
        check_name(ok).unwrap();
    }
    for bad in [
        "",
        ".hidden",
        "-x",
        "a/b",
        "a b",
        "é",
        "a\0b",
        "a@1",
        &"x".repeat(129),
    ] {
        invalid(check_name(bad));
        invalid(store.create_model(NewModel::new(bad)));
    }
    invalid(store.create_model(NewModel::new("m").project("")));
    invalid(store.create_model(NewModel::new("m").project("a\nb")));
    invalid(store.create_model(NewModel::new("m").tags(["ok", ""])));
    invalid(store.create_model(NewModel::new("m").tags(["a\tb"])));
    for bad_key in ["", "1x", "a b", "a:b", "ü", "a\0"] {
        invalid(store.create_model(NewModel::new("m").metadata(bad_key, Value::Int(1))));
    }
    invalid(store.create_model(NewModel::new("m").labels(BTreeMap::from([(String::new(), 0)]))));
    assert!(
        store.models().unwrap().is_empty(),
        "a rejected model must not be stored"
    );

    let labels = BTreeMap::from([("cat".to_string(), 0i64), ("dog".to_string(), 1)]);
    let m = store
        .create_model(
            NewModel::new("resnet")
                .tags(["vision", "base", "vision"])
                .metadata("accuracy", Value::Float(0.91))
                .metadata("epochs", Value::Int(3))
                .metadata("a_b.c-d", Value::Bool(true))
                .labels(labels.clone())
                .design("layers: 50")
                .comment("first"),
        )
        .unwrap();
    let info = m.info().unwrap();
    assert_eq!(info.id, m.id());
    assert_eq!(info.name, "resnet");
    assert_eq!(info.project, "default");
    assert_eq!(info.framework, Framework::Unknown);
    assert_eq!(info.tags, vec!["base".to_string(), "vision".to_string()]);
    assert_eq!(info.metadata.len(), 3);
    assert_eq!(info.metadata["accuracy"], Value::Float(0.91));
    assert_eq!(info.metadata["epochs"], Value::Int(3));
    assert_eq!(info.labels, labels);
    assert_eq!(info.design.as_deref(), Some("layers: 50"));
    assert_eq!(info.comment.as_deref(), Some("first"));
    assert_eq!(
        (info.latest, info.finalized_ms, info.experiment, info.parent),
        (0, None, None, None)
    );
    assert!(info.aliases.is_empty() && info.external.is_none());
    not_found(m.version(None));
    not_found(m.version(Some(1)));
    assert!(m.versions().unwrap().is_empty());
    not_found(store.model(unknown_id()));
    not_found(store.model_by_name("nothing"));
    invalid(store.model_by_name("bad name"));

    // The same name again: a new model; by name gives the newest.
    let m_again = store
        .create_model(NewModel::new("resnet").project("other"))
        .unwrap();
    assert_ne!(m_again.id(), m.id());
    assert_eq!(store.model_by_name("resnet").unwrap().id(), m_again.id());
    assert_eq!(store.model(m.id()).unwrap().info().unwrap(), info);
    let listed: Vec<_> = store.models().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![m.id(), m_again.id()]);

    // describe: None keeps a field.
    m.describe(None, Some("second".into()), None).unwrap();
    let after = m.info().unwrap();
    assert_eq!(after.design.as_deref(), Some("layers: 50"));
    assert_eq!(after.comment.as_deref(), Some("second"));
    assert!(after.updated_ms >= info.updated_ms);
    m.set_labels(BTreeMap::from([("bird".to_string(), 2)]))
        .unwrap();
    assert_eq!(
        m.info().unwrap().labels,
        BTreeMap::from([("bird".to_string(), 2)])
    );
    invalid(m.set_labels(BTreeMap::from([("x\n".to_string(), 2)])));
    assert_index_clean(&store);
}

#[test]
fn metadata_and_tags_are_typed_and_editable() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("m").tags(["a"])).unwrap();
    m.set_metadata("acc", Value::Float(0.5)).unwrap();
    m.set_metadata("n", Value::Int(-3)).unwrap();
    m.set_metadata("ok", Value::Bool(false)).unwrap();
    m.set_metadata("s", Value::Str("text with spaces".into()))
        .unwrap();
    invalid(m.set_metadata("bad key", Value::Int(1)));
    invalid(m.set_metadata("", Value::Int(1)));
    m.set_metadata("acc", Value::Int(1)).unwrap(); // replace, with another type
    m.remove_metadata("n").unwrap();
    m.remove_metadata("never-there").unwrap(); // no error
    assert_eq!(
        m.info().unwrap().metadata,
        BTreeMap::from([
            ("acc".to_string(), Value::Int(1)),
            ("ok".to_string(), Value::Bool(false)),
            ("s".to_string(), Value::Str("text with spaces".into())),
        ])
    );
    // The index follows: old values are gone, new ones found.
    let q = |s: &str| ids(&store.find_models(&query::parse(s).unwrap()).unwrap());
    assert!(q("metadata.acc = 0.5").is_empty());
    assert_eq!(q("metadata.acc = 1"), vec![m.id()]);
    assert_eq!(q("metadata.acc = 1.0"), vec![m.id()]);
    assert!(q("metadata.n = -3").is_empty());
    assert!(q("HAS metadata.n").is_empty());
    assert_eq!(q("metadata.ok = false"), vec![m.id()]);
    assert_eq!(q("metadata.s = 'text with spaces'"), vec![m.id()]);

    m.add_tags(["c", "b", "a", "c"]).unwrap();
    assert_eq!(m.info().unwrap().tags, vec!["a", "b", "c"]);
    m.remove_tag("b").unwrap();
    m.remove_tag("zzz").unwrap();
    assert_eq!(m.info().unwrap().tags, vec!["a", "c"]);
    invalid(m.add_tags([""]));
    invalid(m.add_tags(["fine", "bad\n"]));
    assert_eq!(m.info().unwrap().tags, vec!["a", "c"]);
    assert!(q("tag = b").is_empty());
    assert_eq!(q("tag = c"), vec![m.id()]);
    assert_index_clean(&store);
}

/// `labels.K` names a model's class label `K` (an integer) in queries. No
/// index holds labels: alone such a conjunct is answered by a scan, beside
/// an indexed one it filters that index's candidates; either way it follows
/// `set_labels`.
#[test]
fn class_labels_are_query_fields() {
    let (_d, store) = temp_store();
    let mk = |name: &str, tag: &str, labels: &[(&str, i64)]| {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        store
            .create_model(NewModel::new(name).tags([tag]).labels(labels))
            .unwrap()
            .id()
    };
    let a = mk("a", "vision", &[("cat", 0), ("dog", 1)]);
    let b = mk("b", "vision", &[("cat", 1), ("dog", 0)]);
    let c = mk("c", "text", &[("cat", 0)]);
    let d = mk("d", "vision", &[]);
    let q = |s: &str| -> BTreeSet<EntityId> {
        ids(&store.find_models(&query::parse(s).unwrap()).unwrap())
            .into_iter()
            .collect()
    };
    let set = |v: &[EntityId]| v.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(q("labels.cat = 0"), set(&[a, c]));
    assert_eq!(q("labels.cat == 1"), set(&[b]));
    assert_eq!(q("labels.dog > 0"), set(&[a]));
    assert_eq!(q("labels.dog <= 1"), set(&[a, b]));
    assert_eq!(
        q("labels.dog != 1"),
        set(&[b]),
        "a missing label matches nothing"
    );
    assert_eq!(q("labels.cat IN (1, 7)"), set(&[b]));
    assert_eq!(
        q("labels.cat = 0.0"),
        set(&[a, c]),
        "numbers compare across types"
    );
    assert_eq!(q("HAS labels.dog"), set(&[a, b]));
    assert_eq!(q("NOT HAS labels.cat"), set(&[d]));
    assert_eq!(q("labels.cat = 0 AND tag = vision"), set(&[a]));
    assert_eq!(q("tag = text AND labels.cat >= 0"), set(&[c]));
    assert_eq!(q("labels.cat = 1 OR labels.dog = 1"), set(&[a, b]));
    assert!(q("labels.bird = 2").is_empty());
    assert!(
        q("labels.cat = '0'").is_empty(),
        "a string never equals a number"
    );
    assert!(q("labels = 0").is_empty());
    store
        .model(b)
        .unwrap()
        .set_labels(BTreeMap::from([("bird".to_string(), 2)]))
        .unwrap();
    assert_eq!(q("labels.bird = 2"), set(&[b]));
    assert!(q("labels.cat = 1").is_empty());
    assert_eq!(q("NOT HAS labels.cat"), set(&[b, d]));
}

/// Metadata keys are validated "so that `metadata.<key>` is a query field"
/// (src/registry/common.rs): every key the store accepts must be nameable
/// in a query and find the model.
#[test]
fn every_accepted_metadata_key_can_be_queried() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("keys")).unwrap();
    let mut unqueryable = Vec::new();
    for key in [
        "a_b", "a.b", "a-b", "_x", "lr/base", "v.2", "a.", "x..y", "a.-b",
    ] {
        if m.set_metadata(key, Value::Int(1)).is_err() {
            continue; // rejected up front: fine
        }
        let text = format!("metadata.{key} = 1");
        match query::parse(&text) {
            Ok(q) => {
                let found = ids(&store.find_models(&q).unwrap());
                assert_eq!(found, vec![m.id()], "{text}");
            }
            Err(e) => unqueryable.push(format!("{key:?}: {e}")),
        }
    }
    assert!(
        unqueryable.is_empty(),
        "accepted keys that no query can name:\n{}",
        unqueryable.join("\n")
    );
}

#[test]
fn versions_files_and_blob_checks() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("net")).unwrap();
    let d1 = noise(200_000, 1);
    let d2 = noise(5_000, 2);
    let shared = noise(1_000, 3);
    let f_shared = entry(&store, "shared.bin", &shared);
    let v1 = m
        .add_version(vec![
            entry(&store, "z/last.bin", &d1),
            f_shared.clone(),
            entry(&store, "a.bin", &d2),
        ])
        .unwrap();
    assert_eq!(v1, 1);
    let v2 = m.add_version(vec![f_shared.clone()]).unwrap();
    assert_eq!(v2, 2);
    assert_eq!(m.versions().unwrap(), vec![1, 2]);
    assert_eq!(m.version(None).unwrap().version, 2);
    assert_eq!(m.info().unwrap().latest, 2);

    let ver1 = m.version(Some(1)).unwrap();
    assert_eq!(ver1.model, m.id());
    assert_eq!(ver1.name, "net");
    assert_eq!(ver1.version, 1);
    let paths: Vec<&str> = ver1.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["a.bin", "shared.bin", "z/last.bin"]);
    assert_eq!(ver1.size(), (d1.len() + d2.len() + shared.len()) as u64);
    let f = ver1.file("z/last.bin").unwrap();
    assert_eq!(f.size, d1.len() as u64);
    assert_eq!(get(&store, &f.blob), d1);
    assert!(ver1.file("missing").is_none());
    not_found(m.version(Some(3)));
    not_found(m.version(Some(0)));
    // Store-level name helpers agree.
    assert_eq!(store.versions("net").unwrap(), vec![1, 2]);
    assert_eq!(store.version("net", Some(1)).unwrap(), ver1);

    // Rejected versions leave nothing behind.
    let good = entry(&store, "x.bin", b"xyz");
    invalid(m.add_version(vec![
        good.clone(),
        FileEntry {
            path: "x.bin".into(),
            ..f_shared.clone()
        },
    ]));
    invalid(m.add_version(vec![FileEntry {
        size: 4,
        ..good.clone()
    }]));
    invalid(m.add_version(vec![FileEntry {
        size: 2,
        ..good.clone()
    }]));
    not_found(m.add_version(vec![FileEntry {
        path: "u.bin".into(),
        blob: unknown_blob(),
        size: 3,
    }]));
    for bad in ["../x", "/abs", "a//b", "a/./b", "", "a\\b", "x\n"] {
        invalid(m.add_version(vec![FileEntry {
            path: bad.into(),
            ..good.clone()
        }]));
    }
    assert_eq!(m.versions().unwrap(), vec![1, 2]);
    assert_eq!(m.info().unwrap().latest, 2);

    // An empty version is allowed and numbered.
    assert_eq!(m.add_version(vec![]).unwrap(), 3);
    assert!(m.version(Some(3)).unwrap().files.is_empty());

    // Which versions hold a blob.
    let other = store.create_model(NewModel::new("other")).unwrap();
    other
        .add_version(vec![FileEntry {
            path: "renamed.bin".into(),
            ..f_shared.clone()
        }])
        .unwrap();
    let mut want = vec![(m.id(), 1), (m.id(), 2), (other.id(), 1)];
    want.sort();
    let mut got = store.versions_with_blob(&f_shared.blob).unwrap();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        store
            .versions_with_blob(&ver1.file("a.bin").unwrap().blob)
            .unwrap(),
        vec![(m.id(), 1)]
    );
    assert!(store
        .versions_with_blob(&unknown_blob())
        .unwrap()
        .is_empty());
    assert!(store.versions_with_blob(&good.blob).unwrap().is_empty());

    // commit_version creates by name, then appends.
    let fe = entry(&store, "w", b"1");
    assert_eq!(store.commit_version("fresh", vec![fe.clone()]).unwrap(), 1);
    assert_eq!(store.commit_version("fresh", vec![fe]).unwrap(), 2);
    assert_eq!(
        store.model_by_name("fresh").unwrap().info().unwrap().latest,
        2
    );
    assert_index_clean(&store);
}

#[test]
fn formats_detected_and_framework_guessed() {
    let (_d, store) = temp_store();
    let st = safetensors_file();
    let gg = gguf_file();
    let raw = noise(4096, 9);

    let m = store.create_model(NewModel::new("guess")).unwrap();
    m.add_version(vec![entry(&store, "model.safetensors", &st)])
        .unwrap();
    let v = m.version(None).unwrap();
    assert_eq!(v.files[0].format, FileFormat::Safetensors);
    assert_eq!(m.info().unwrap().framework, Framework::Safetensors);
    // Content decides, not the name.
    m.add_version(vec![entry(&store, "weights.dat", &gg)])
        .unwrap();
    assert_eq!(m.version(None).unwrap().files[0].format, FileFormat::Gguf);
    assert_eq!(m.info().unwrap().framework, Framework::Gguf);
    // Unrecognised files leave the guess alone.
    m.add_version(vec![entry(&store, "blob.dat", &raw)])
        .unwrap();
    assert_eq!(
        m.version(None).unwrap().files[0].format,
        FileFormat::Unknown
    );
    assert_eq!(m.info().unwrap().framework, Framework::Gguf);
    // Mixed: safetensors outranks GGUF.
    m.add_version(vec![
        entry(&store, "a.gguf", &gg),
        entry(&store, "b.safetensors", &st),
    ])
    .unwrap();
    let mixed = m.version(None).unwrap();
    assert_eq!(mixed.file("a.gguf").unwrap().format, FileFormat::Gguf);
    assert_eq!(
        mixed.file("b.safetensors").unwrap().format,
        FileFormat::Safetensors
    );
    assert_eq!(m.info().unwrap().framework, Framework::Safetensors);
    // Truncated safetensors (header length beyond the file) is not safetensors.
    let mut cut = st.clone();
    cut.truncate(20);
    let trunc = store.create_model(NewModel::new("trunc")).unwrap();
    trunc
        .add_version(vec![entry(&store, "model.safetensors", &cut)])
        .unwrap();
    assert_ne!(
        trunc.version(None).unwrap().files[0].format,
        FileFormat::Safetensors
    );
    assert_eq!(trunc.info().unwrap().framework, Framework::Unknown);

    // A caller-set framework is never overridden.
    let set = store
        .create_model(NewModel::new("set").framework(Framework::Pytorch))
        .unwrap();
    set.add_version(vec![entry(&store, "model.safetensors", &st)])
        .unwrap();
    set.add_version(vec![entry(&store, "m.gguf", &gg)]).unwrap();
    assert_eq!(
        set.version(Some(1)).unwrap().files[0].format,
        FileFormat::Safetensors
    );
    assert_eq!(set.info().unwrap().framework, Framework::Pytorch);
    // Nor one set later with describe.
    let later = store.create_model(NewModel::new("later")).unwrap();
    later
        .add_version(vec![entry(&store, "m.gguf", &gg)])
        .unwrap();
    assert_eq!(later.info().unwrap().framework, Framework::Gguf);
    later.describe(None, None, Some(Framework::Onnx)).unwrap();
    later
        .add_version(vec![entry(&store, "model.safetensors", &st)])
        .unwrap();
    assert_eq!(later.info().unwrap().framework, Framework::Onnx);

    // The framework index follows the guesses.
    let q = |s: &str| {
        let mut v = ids(&store.find_models(&query::parse(s).unwrap()).unwrap());
        v.sort();
        v
    };
    assert_eq!(q("framework = safetensors"), vec![m.id()]);
    assert!(q("framework = gguf").is_empty());
    assert_eq!(q("framework = pytorch"), vec![set.id()]);
    assert_eq!(q("framework = onnx"), vec![later.id()]);
    assert_eq!(q("framework = unknown"), vec![trunc.id()]);
    assert_index_clean(&store);
}

#[test]
fn aliases_set_move_and_remove() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("aliased")).unwrap();
    // No version yet: any alias is NotFound.
    not_found(m.set_alias("champion", 1));
    for i in 0..3 {
        m.add_version(vec![entry(&store, "w", &[i])]).unwrap();
    }
    m.set_alias("champion", 1).unwrap();
    exists(m.set_alias("champion", 2));
    exists(m.set_alias("champion", 1));
    assert_eq!(m.info().unwrap().aliases["champion"], 1);
    m.move_alias("champion", 3).unwrap();
    assert_eq!(m.info().unwrap().aliases["champion"], 3);
    m.move_alias("staging", 2).unwrap(); // move may create
    not_found(m.set_alias("prod", 4));
    not_found(m.set_alias("prod", 0));
    not_found(m.move_alias("champion", 9));
    assert_eq!(m.info().unwrap().aliases["champion"], 3);
    for bad in ["3", "0", "latest", "", "has space", "9x@"] {
        invalid(m.set_alias(bad, 1));
        invalid(m.move_alias(bad, 1));
    }
    m.set_alias("v2.rc-1/a_b", 2).unwrap();
    assert_eq!(
        m.info().unwrap().aliases,
        BTreeMap::from([
            ("champion".to_string(), 3),
            ("staging".to_string(), 2),
            ("v2.rc-1/a_b".to_string(), 2),
        ])
    );
    m.remove_alias("staging").unwrap();
    not_found(m.remove_alias("staging"));
    not_found(m.remove_alias("never"));
    m.set_alias("staging", 1).unwrap(); // free again after removal
    assert_eq!(m.info().unwrap().aliases["staging"], 1);
    // Aliases belong to one model.
    let other = store.create_model(NewModel::new("other")).unwrap();
    other.add_version(vec![entry(&store, "w", b"o")]).unwrap();
    other.set_alias("champion", 1).unwrap();
    assert_eq!(m.info().unwrap().aliases["champion"], 3);
    assert_index_clean(&store);
}

#[test]
fn resolve_model_accepts_every_spelling() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("resolver")).unwrap();
    for i in 0..3u8 {
        m.add_version(vec![entry(&store, "w", &[i, i])]).unwrap();
    }
    m.set_alias("best", 2).unwrap();
    let id = m.id().to_string();
    let cases: Vec<(String, Option<u32>)> = vec![
        (id.clone(), None),
        ("resolver".into(), None),
        ("resolver@1".into(), Some(1)),
        ("resolver@3".into(), Some(3)),
        ("resolver@best".into(), Some(2)),
        (format!("{id}@2"), Some(2)),
        (format!("{id}@best"), Some(2)),
        (m.url(Some(1)), Some(1)),
        (m.url(Some(3)), Some(3)),
        (m.url(None), None),
    ];
    for (spec, want) in &cases {
        let (got, v) = store
            .resolve_model(spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(got.id(), m.id(), "{spec}");
        assert_eq!(v, *want, "{spec}");
    }
    assert_eq!(
        m.url(Some(2)),
        format!("modelvault://{}/models/{}@2", store.id(), m.id())
    );
    // And the resolved version reads back.
    let (r, v) = store.resolve_model(&m.url(Some(1))).unwrap();
    assert_eq!(
        r.version(v).unwrap().files[0].blob,
        m.version(Some(1)).unwrap().files[0].blob
    );

    not_found(store.resolve_model("nobody"));
    not_found(store.resolve_model("resolver@nosuch"));
    not_found(store.resolve_model(&unknown_id().to_string()));
    invalid(store.resolve_model("resolver@0"));
    invalid(store.resolve_model("modelvault://"));
    invalid(store.resolve_model(&format!("modelvault://{}/runs/{}", store.id(), m.id())));
    // A URL naming another store is rejected, even for an id that exists here.
    let foreign = format!("modelvault://{}/models/{}@1", uuid::Uuid::nil(), m.id());
    invalid(store.resolve_model(&foreign));
    let (_d2, other_store) = temp_store();
    let om = other_store.create_model(NewModel::new("resolver")).unwrap();
    invalid(store.resolve_model(&om.url(Some(1))));
    // A newer model of the same name takes over the name, not the id.
    let newer = store.create_model(NewModel::new("resolver")).unwrap();
    assert_eq!(store.resolve_model("resolver").unwrap().0.id(), newer.id());
    assert_eq!(store.resolve_model(&id).unwrap().0.id(), m.id());
    not_found(store.resolve_model("resolver@best"));
}

#[test]
fn finalized_model_refuses_every_change() {
    let (_d, store) = temp_store();
    let m = store
        .create_model(
            NewModel::new("final")
                .tags(["t"])
                .metadata("k", Value::Int(1)),
        )
        .unwrap();
    m.add_version(vec![entry(&store, "w", b"one")]).unwrap();
    m.add_version(vec![entry(&store, "w", b"two")]).unwrap();
    m.set_alias("a", 1).unwrap();
    m.finalize().unwrap();
    let info = m.info().unwrap();
    assert!(info.finalized_ms.is_some());
    let id = m.id().to_string();
    let f = entry(&store, "w", b"three");
    immutable(m.add_version(vec![f.clone()]), &id, "finalized");
    immutable(m.add_version_by(vec![f], None), &id, "finalized");
    immutable(m.set_metadata("k", Value::Int(2)), &id, "finalized");
    immutable(m.set_metadata("new", Value::Int(2)), &id, "finalized");
    immutable(m.remove_metadata("k"), &id, "finalized");
    immutable(m.add_tags(["u"]), &id, "finalized");
    immutable(m.remove_tag("t"), &id, "finalized");
    immutable(m.set_alias("b", 2), &id, "finalized");
    immutable(m.move_alias("a", 2), &id, "finalized");
    immutable(m.remove_alias("a"), &id, "finalized");
    immutable(m.set_labels(BTreeMap::new()), &id, "finalized");
    immutable(m.describe(Some("d".into()), None, None), &id, "finalized");
    immutable(
        m.describe(None, None, Some(Framework::Onnx)),
        &id,
        "finalized",
    );
    immutable(m.finalize(), &id, "finalized");
    // Even invalid arguments never slip through as a change.
    assert_eq!(m.info().unwrap(), info);
    assert_eq!(m.versions().unwrap(), vec![1, 2]);
    assert_eq!(m.version(Some(1)).unwrap().files[0].size, 3);
    // Still findable as finalized, and as a name.
    let fin = store
        .find_models(&query::parse("status = finalized").unwrap())
        .unwrap();
    assert_eq!(ids(&fin), vec![m.id()]);
    assert!(store
        .find_models(&query::parse("status = draft").unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(store.resolve_model("final@a").unwrap().1, Some(1));
    // commit_version on a finalized model's name fails the same way.
    immutable(
        store.commit_version("final", vec![entry(&store, "w", b"x")]),
        &id,
        "finalized",
    );
    assert_index_clean(&store);
}

#[test]
fn external_models_are_registered_once_per_url() {
    let (_d, store) = temp_store();
    let url_a = "https://example.com/models/llama.gguf";
    let a = store
        .register_external_model(
            NewModel::new("llama").tags(["ext"]),
            url_a,
            Some("sha256:abcd"),
        )
        .unwrap();
    let info = a.info().unwrap();
    assert_eq!(
        info.external,
        Some(modelvault::External {
            url: url_a.into(),
            checksum: Some("sha256:abcd".into())
        })
    );
    assert_eq!(info.latest, 0);
    // Same URL (even with another spec): the same model, nothing new.
    let again = store
        .register_external_model(NewModel::new("other-name"), url_a, None)
        .unwrap();
    assert_eq!(again.id(), a.id());
    assert_eq!(store.models().unwrap().len(), 1);
    not_found(store.model_by_name("other-name"));
    assert_eq!(a.info().unwrap(), info);
    // A different URL: a new model.
    let b = store
        .register_external_model(
            NewModel::new("llama"),
            "https://example.com/models/llama2.gguf",
            None,
        )
        .unwrap();
    assert_ne!(b.id(), a.id());
    assert_eq!(store.models().unwrap().len(), 2);
    invalid(store.register_external_model(NewModel::new("x"), "", None));
    invalid(store.register_external_model(NewModel::new("bad name"), "https://x/y", None));
    // Importing the bytes later keeps the id and the URL.
    let gg = gguf_file();
    assert_eq!(
        a.add_version(vec![entry(&store, "llama.gguf", &gg)])
            .unwrap(),
        1
    );
    let after = a.info().unwrap();
    assert_eq!(after.id, a.id());
    assert_eq!(after.latest, 1);
    assert_eq!(after.framework, Framework::Gguf);
    assert_eq!(after.external, info.external);
    assert_eq!(
        store
            .register_external_model(NewModel::new("llama"), url_a, None)
            .unwrap()
            .id(),
        a.id()
    );
    let found = store
        .find_models(&query::parse(&format!("url = \"{url_a}\"")).unwrap())
        .unwrap();
    assert_eq!(ids(&found), vec![a.id()]);
    assert_index_clean(&store);
}

// ---------------------------------------------------------------------------
// Model queries against a brute-force filter
// ---------------------------------------------------------------------------

type Pred = Box<dyn Fn(&ModelInfo) -> bool>;

fn pred(f: impl Fn(&ModelInfo) -> bool + 'static) -> Pred {
    Box::new(f)
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Int(i)) => Some(*i as f64),
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn boolean(v: Option<&Value>) -> Option<bool> {
    match v {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// Builds 51 varied models; returns what each should look like
/// (id → (tags, metadata, framework, finalized)).
#[allow(clippy::type_complexity)]
fn build_query_corpus(
    store: &Store,
) -> BTreeMap<EntityId, (Vec<String>, BTreeMap<String, Value>, Framework, bool)> {
    let st = safetensors_file();
    let gg = gguf_file();
    let names = ["resnet", "resnext", "bert", "gpt", "vit"];
    let projects = ["vision", "nlp", "audio"];
    let tag_names = ["prod", "staging", "exp", "baseline"];
    let creator = store
        .create_experiment(NewExperiment::new("vision", "maker"))
        .unwrap();
    let mut out = BTreeMap::new();
    for i in 0..51usize {
        let name = if i == 50 {
            "bert-7".to_string()
        } else {
            format!("{}-{i}", names[i % 5])
        };
        let mut meta: BTreeMap<String, Value> = BTreeMap::new();
        meta.insert(
            "accuracy".into(),
            if i % 10 == 0 {
                Value::Int(1)
            } else {
                Value::Float(((i * 37) % 100) as f64 / 100.0)
            },
        );
        match i % 5 {
            0 => meta.insert("epochs".into(), Value::Int(3)),
            1 => meta.insert("epochs".into(), Value::Float(3.0)),
            2 => meta.insert("epochs".into(), Value::Float(2.5)),
            3 => meta.insert("epochs".into(), Value::Int(i as i64)),
            _ => None,
        };
        if i % 3 != 0 {
            meta.insert("flag".into(), Value::Bool(i % 2 == 0));
        }
        match i % 4 {
            0 => meta.insert("kind".into(), Value::Str("cnn".into())),
            1 => meta.insert("kind".into(), Value::Str("transformer".into())),
            2 => meta.insert("kind".into(), Value::Str("mlp".into())),
            _ => None,
        };
        match i % 6 {
            0 => meta.insert("score".into(), Value::Str("high".into())),
            1 => meta.insert("score".into(), Value::Int(5)),
            2 => meta.insert("score".into(), Value::Int((i % 11) as i64)),
            3 => meta.insert("score".into(), Value::Float(5.5)),
            _ => None,
        };
        meta.insert(
            "delta".into(),
            if i % 2 == 0 {
                Value::Int(i as i64 - 25)
            } else {
                Value::Float(i as f64 - 24.5)
            },
        );
        let fw = match i % 4 {
            0 => Some(Framework::Pytorch),
            1 => Some(Framework::Onnx),
            2 => Some(Framework::Tensorflow),
            _ => None,
        };
        let mut tags: Vec<String> = (0..4)
            .filter(|b| ((i * 7) % 16) & (1 << b) != 0)
            .map(|b| tag_names[b].to_string())
            .collect();
        tags.sort();

        let mut spec = NewModel::new(&name).project(projects[i % 3]);
        if let Some(f) = fw {
            spec = spec.framework(f);
        }
        if i % 7 == 0 {
            spec = spec.experiment(creator.id());
        }
        // Half get tags and metadata at creation, half through updates
        // (with a stale value and a temporary key along the way).
        let via_builder = i % 2 == 0;
        if via_builder {
            spec = spec.tags(tags.clone());
            for (k, v) in &meta {
                spec = spec.metadata(k.clone(), v.clone());
            }
        }
        let m = store.create_model(spec).unwrap();
        if !via_builder {
            m.set_metadata("accuracy", Value::Float(0.0)).unwrap();
            m.set_metadata("tmp", Value::Int(99)).unwrap();
            m.add_tags(["gone"]).unwrap();
            for (k, v) in &meta {
                m.set_metadata(k, v.clone()).unwrap();
            }
            m.remove_metadata("tmp").unwrap();
            m.add_tags(tags.clone()).unwrap();
            m.remove_tag("gone").unwrap();
        }
        let mut framework = fw.unwrap_or(Framework::Unknown);
        if i % 8 == 3 {
            m.add_version(vec![entry(store, "model.safetensors", &st)])
                .unwrap();
            framework = Framework::Safetensors;
        } else if fw.is_some() && i % 3 == 0 {
            m.add_version(vec![entry(store, "model.gguf", &gg)])
                .unwrap();
        }
        let finalized = i % 6 == 1;
        if finalized {
            m.finalize().unwrap();
        }
        out.insert(m.id(), (tags, meta, framework, finalized));
    }
    out
}

#[test]
fn find_models_agrees_with_brute_force() {
    let (_d, store) = temp_store();
    let intended = build_query_corpus(&store);

    // Everything as the store reports it, checked against what was intended,
    // so the brute-force filter below runs on known-good records.
    let all: Vec<ModelInfo> = store
        .models()
        .unwrap()
        .into_iter()
        .map(|s| store.model(s.id).unwrap().info().unwrap())
        .collect();
    assert_eq!(all.len(), 51);
    for info in &all {
        let (tags, meta, fw, fin) = &intended[&info.id];
        assert_eq!(&info.tags, tags, "{}", info.name);
        assert_eq!(&info.metadata, meta, "{}", info.name);
        assert_eq!(&info.framework, fw, "{}", info.name);
        assert_eq!(info.finalized_ms.is_some(), *fin, "{}", info.name);
    }

    let md = |m: &ModelInfo, k: &str| m.metadata.get(k).cloned();
    let has_tag = |m: &ModelInfo, t: &str| m.tags.iter().any(|x| x == t);
    let cases: Vec<(&str, Pred)> = vec![
        (
            "metadata.accuracy > 0.9 AND framework = pytorch",
            pred(move |m| {
                num(md(m, "accuracy").as_ref()).is_some_and(|a| a > 0.9)
                    && m.framework == Framework::Pytorch
            }),
        ),
        (
            "metadata.accuracy >= 0.5",
            pred(move |m| num(md(m, "accuracy").as_ref()).is_some_and(|a| a >= 0.5)),
        ),
        (
            "metadata.accuracy < 0.25",
            pred(move |m| num(md(m, "accuracy").as_ref()).is_some_and(|a| a < 0.25)),
        ),
        (
            "metadata.accuracy <= 0.3 AND project = nlp",
            pred(move |m| {
                num(md(m, "accuracy").as_ref()).is_some_and(|a| a <= 0.3) && m.project == "nlp"
            }),
        ),
        (
            "metadata.accuracy = 1",
            pred(move |m| num(md(m, "accuracy").as_ref()) == Some(1.0)),
        ),
        (
            "metadata.accuracy >= 1.0",
            pred(move |m| num(md(m, "accuracy").as_ref()).is_some_and(|a| a >= 1.0)),
        ),
        (
            "metadata.accuracy = 0",
            pred(move |m| num(md(m, "accuracy").as_ref()) == Some(0.0)),
        ),
        (
            "metadata.epochs = 3",
            pred(move |m| num(md(m, "epochs").as_ref()) == Some(3.0)),
        ),
        (
            "metadata.epochs = 3.0",
            pred(move |m| num(md(m, "epochs").as_ref()) == Some(3.0)),
        ),
        (
            "metadata.epochs > 2.5",
            pred(move |m| num(md(m, "epochs").as_ref()).is_some_and(|e| e > 2.5)),
        ),
        (
            "metadata.epochs >= 2.5",
            pred(move |m| num(md(m, "epochs").as_ref()).is_some_and(|e| e >= 2.5)),
        ),
        (
            "metadata.epochs < 3",
            pred(move |m| num(md(m, "epochs").as_ref()).is_some_and(|e| e < 3.0)),
        ),
        (
            "metadata.epochs <= 3",
            pred(move |m| num(md(m, "epochs").as_ref()).is_some_and(|e| e <= 3.0)),
        ),
        (
            "metadata.epochs <= 2.5 OR metadata.epochs > 40",
            pred(move |m| num(md(m, "epochs").as_ref()).is_some_and(|e| e <= 2.5 || e > 40.0)),
        ),
        ("name ~ res", pred(|m| m.name.starts_with("res"))),
        ("name ~ resnet-1", pred(|m| m.name.starts_with("resnet-1"))),
        ("name = bert-7", pred(|m| m.name == "bert-7")),
        (
            "tag IN (prod, baseline)",
            pred(move |m| has_tag(m, "prod") || has_tag(m, "baseline")),
        ),
        ("tag = gone", pred(move |m| has_tag(m, "gone"))),
        (
            "tag = staging AND status = finalized",
            pred(move |m| has_tag(m, "staging") && m.finalized_ms.is_some()),
        ),
        ("status = finalized", pred(|m| m.finalized_ms.is_some())),
        (
            "status = draft AND project IN (vision, audio)",
            pred(|m| m.finalized_ms.is_none() && (m.project == "vision" || m.project == "audio")),
        ),
        ("NOT tag = prod", pred(move |m| !has_tag(m, "prod"))),
        (
            "project = vision OR metadata.flag = true",
            pred(move |m| m.project == "vision" || boolean(md(m, "flag").as_ref()) == Some(true)),
        ),
        (
            "metadata.flag = false",
            pred(move |m| boolean(md(m, "flag").as_ref()) == Some(false)),
        ),
        (
            "metadata.flag < true",
            pred(move |m| boolean(md(m, "flag").as_ref()) == Some(false)),
        ),
        (
            "metadata.score != 5",
            pred(move |m| num(md(m, "score").as_ref()).is_some_and(|s| s != 5.0)),
        ),
        (
            "metadata.score > 5",
            pred(move |m| num(md(m, "score").as_ref()).is_some_and(|s| s > 5.0)),
        ),
        (
            "metadata.score = high",
            pred(move |m| text(md(m, "score").as_ref()) == Some("high")),
        ),
        (
            "HAS metadata.kind AND NOT project = audio",
            pred(move |m| m.metadata.contains_key("kind") && m.project != "audio"),
        ),
        (
            "metadata.kind = cnn AND framework IN (pytorch, onnx)",
            pred(move |m| {
                text(md(m, "kind").as_ref()) == Some("cnn")
                    && matches!(m.framework, Framework::Pytorch | Framework::Onnx)
            }),
        ),
        (
            "metadata.kind > mlp",
            pred(move |m| text(md(m, "kind").as_ref()).is_some_and(|k| k > "mlp")),
        ),
        (
            "metadata.kind <= mlp",
            pred(move |m| text(md(m, "kind").as_ref()).is_some_and(|k| k <= "mlp")),
        ),
        (
            "metadata.delta < 0",
            pred(move |m| num(md(m, "delta").as_ref()).is_some_and(|d| d < 0.0)),
        ),
        (
            "metadata.delta >= -3.5 AND metadata.delta <= 4",
            pred(move |m| num(md(m, "delta").as_ref()).is_some_and(|d| (-3.5..=4.0).contains(&d))),
        ),
        (
            "framework = safetensors",
            pred(|m| m.framework == Framework::Safetensors),
        ),
        (
            "framework = unknown",
            pred(|m| m.framework == Framework::Unknown),
        ),
        (
            "(tag = exp OR tag = prod) AND metadata.accuracy > 0.5",
            pred(move |m| {
                (has_tag(m, "exp") || has_tag(m, "prod"))
                    && num(md(m, "accuracy").as_ref()).is_some_and(|a| a > 0.5)
            }),
        ),
        ("metadata.missing = 1", pred(|_| false)),
        ("HAS metadata.tmp", pred(|m| m.metadata.contains_key("tmp"))),
        ("latest >= 1", pred(|m| m.latest >= 1)),
        (
            "metadata.accuracy > 2 OR NOT metadata.accuracy > 2",
            pred(move |m| {
                let a = num(md(m, "accuracy").as_ref());
                a.is_some_and(|a| a > 2.0) || !a.is_some_and(|a| a > 2.0)
            }),
        ),
    ];
    assert!(cases.len() >= 12);
    let mut nonempty = 0;
    for (text, pred) in &cases {
        let q = query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = ids(&store.find_models(&q).unwrap());
        let set: BTreeSet<_> = got.iter().copied().collect();
        assert_eq!(set.len(), got.len(), "{text}: duplicates in {got:?}");
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let want: Vec<EntityId> = all.iter().filter(|m| pred(m)).map(|m| m.id).collect();
        let name = |id: &EntityId| all.iter().find(|m| m.id == *id).unwrap().name.clone();
        assert_eq!(
            got_sorted,
            want,
            "{text}: got {:?}, want {:?}",
            got_sorted.iter().map(name).collect::<Vec<_>>(),
            want.iter().map(name).collect::<Vec<_>>()
        );
        if !want.is_empty() {
            nonempty += 1;
        }
    }
    // The corpus makes the comparisons meaningful: almost every query matches something.
    assert!(
        nonempty >= cases.len() - 5,
        "only {nonempty} queries matched anything"
    );
    assert_index_clean(&store);
}

/// Enough models that the planner's probing rounds (64, 512, … entries) all
/// come into play: conjuncts of very different sizes, in every order.
#[test]
fn find_models_large_corpus_agrees_with_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .durability(modelvault::Durability::Eventual)
        .open(dir.path().join("vault"))
        .unwrap();
    let n = 700usize;
    for i in 0..n {
        let project = if i % 7 == 0 { "small" } else { "big" };
        let mut tags = Vec::new();
        if i % 4 != 0 {
            tags.push("common");
        }
        if i % 37 == 5 {
            tags.push("rare");
        }
        if i % 2 == 0 {
            tags.push("even");
        }
        let fw = match i % 3 {
            0 => Framework::Pytorch,
            1 => Framework::Onnx,
            _ => Framework::Keras,
        };
        let name = format!("{}-{i}", ["a", "ab", "b"][i % 3]);
        let mut spec = NewModel::new(name)
            .project(project)
            .framework(fw)
            .tags(tags)
            .metadata("x", Value::Int(i as i64));
        if i % 5 == 0 {
            spec = spec.metadata("y", Value::Float((i % 3) as f64));
        } else {
            spec = spec.metadata("y", Value::Int((i % 3) as i64));
        }
        let m = store.create_model(spec).unwrap();
        if i % 9 == 0 {
            m.finalize().unwrap();
        }
    }
    let all: Vec<ModelInfo> = store
        .models()
        .unwrap()
        .into_iter()
        .map(|s| store.model(s.id).unwrap().info().unwrap())
        .collect();
    assert_eq!(all.len(), n);
    let x = |m: &ModelInfo| num(m.metadata.get("x")).unwrap();
    let y = |m: &ModelInfo| num(m.metadata.get("y")).unwrap();
    let tag = |m: &ModelInfo, t: &str| m.tags.iter().any(|x| x == t);
    let cases: Vec<(&str, Pred)> = vec![
        (
            "project = big AND tag = rare",
            pred(move |m| m.project == "big" && tag(m, "rare")),
        ),
        (
            "tag = rare AND project = big",
            pred(move |m| m.project == "big" && tag(m, "rare")),
        ),
        (
            "project = big AND tag = common AND metadata.x >= 650",
            pred(move |m| m.project == "big" && tag(m, "common") && x(m) >= 650.0),
        ),
        (
            "tag IN (common, rare) AND project = small",
            pred(move |m| (tag(m, "common") || tag(m, "rare")) && m.project == "small"),
        ),
        (
            "metadata.x < 600 AND metadata.y = 1",
            pred(move |m| x(m) < 600.0 && y(m) == 1.0),
        ),
        (
            "framework = pytorch AND status = finalized AND tag = common",
            pred(move |m| {
                m.framework == Framework::Pytorch && m.finalized_ms.is_some() && tag(m, "common")
            }),
        ),
        (
            "name ~ a AND project IN (big, small) AND metadata.x > 10",
            pred(move |m| m.name.starts_with('a') && x(m) > 10.0),
        ),
        (
            "tag = common AND tag = rare",
            pred(move |m| tag(m, "common") && tag(m, "rare")),
        ),
        (
            "tag IN (rare, nope) AND project = big AND framework IN (pytorch, onnx)",
            pred(move |m| {
                tag(m, "rare")
                    && m.project == "big"
                    && matches!(m.framework, Framework::Pytorch | Framework::Onnx)
            }),
        ),
        (
            "metadata.x >= 0 AND metadata.x < 1000 AND tag = common AND tag = even",
            pred(move |m| tag(m, "common") && tag(m, "even")),
        ),
        (
            "status = draft AND project = small AND name ~ ab",
            pred(|m| m.finalized_ms.is_none() && m.project == "small" && m.name.starts_with("ab")),
        ),
        (
            "tag = even AND framework = keras AND metadata.y = 2.0 AND project = big",
            pred(move |m| {
                tag(m, "even")
                    && m.framework == Framework::Keras
                    && y(m) == 2.0
                    && m.project == "big"
            }),
        ),
        (
            "metadata.x > 100 AND metadata.x <= 120",
            pred(move |m| x(m) > 100.0 && x(m) <= 120.0),
        ),
        (
            "name = ab-601 AND tag = common",
            pred(move |m| m.name == "ab-601" && tag(m, "common")),
        ),
        ("project = nope AND tag = common", pred(|_| false)),
    ];
    for (text, p) in &cases {
        let q = query::parse(text).unwrap();
        let got = ids(&store.find_models(&q).unwrap());
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "{text}: duplicates");
        let want: Vec<EntityId> = all.iter().filter(|m| p(m)).map(|m| m.id).collect();
        assert_eq!(sorted.len(), want.len(), "{text}: count");
        assert_eq!(sorted, want, "{text}");
    }
    assert_index_clean(&store);
}

#[test]
fn query_syntax_errors_have_byte_positions() {
    for (text, at) in [
        ("metadata.accuracy >", 19),
        ("a = 1 AND", 9),
        ("x => 3", 2),
        ("(a = 1", 6),
        ("a = 'x", 4),
        ("tag IN (a, b", 12),
        ("a = 1 b = 2", 6),
        ("a = -x", 4),
        ("a = 99999999999999999999", 4),
        ("1a = 2", 0),
        ("a.= 2", 2),
        ("", 0),
        ("a = 1 @", 6),
    ] {
        let e = query::parse(text).expect_err(text);
        assert_eq!(e.at, at, "{text:?}: {e}");
        assert!(e.to_string().contains(&format!("byte {at}")), "{e}");
        assert!(!e.message.is_empty());
    }
    assert!(query::parse("").unwrap_err().message.contains("empty"));
    // And errors convert to the crate error as invalid input.
    let conv: Error = query::parse("a =").unwrap_err().into();
    assert!(matches!(conv, Error::Query(ref q) if q.at == 3), "{conv}");
}

/// Float 2^63 sorts after Int(i64::MAX); the planner's `<` range must still
/// include it (the index is allowed to over-approximate, never to miss).
#[test]
fn metadata_range_scan_at_the_edges_of_i64() {
    let (_d, store) = temp_store();
    let mut made = Vec::new();
    for (i, v) in [
        Value::Int(i64::MAX),
        Value::Int(i64::MAX - 1),
        Value::Int(i64::MIN),
        Value::Float(9_223_372_036_854_775_808.0),
        Value::Float(-9_223_372_036_854_775_808.0),
        Value::Int((1 << 53) + 1),
        Value::Float(9_007_199_254_740_992.0),
        Value::Float(-0.0),
        Value::Int(0),
        Value::Float(f64::INFINITY),
        Value::Float(f64::NEG_INFINITY),
    ]
    .into_iter()
    .enumerate()
    {
        let m = store
            .create_model(NewModel::new(format!("edge-{i}")).metadata("big", v.clone()))
            .unwrap();
        made.push((m.id(), v));
    }
    // Exact comparison of the stored value with a literal, in i128/f64 terms.
    fn cmp(v: &Value, lit: &Value) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering;
        let to_exact = |v: &Value| -> Option<(Option<i128>, f64)> {
            match v {
                Value::Int(i) => Some((Some(*i as i128), *i as f64)),
                Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e20 => {
                    Some((Some(*f as i128), *f))
                }
                Value::Float(f) => Some((None, *f)),
                _ => None,
            }
        };
        let (a, af) = to_exact(v)?;
        let (b, bf) = to_exact(lit)?;
        match (a, b) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => af.partial_cmp(&bf).map(|o| {
                if o == Ordering::Equal {
                    Ordering::Equal
                } else {
                    o
                }
            }),
        }
    }
    use std::cmp::Ordering::*;
    let value_of = |id: &EntityId| made.iter().find(|(m, _)| m == id).unwrap().1.clone();
    let mut failures = Vec::new();
    for lit_text in [
        "9223372036854775807",
        "9223372036854775806",
        "9223372036854775808.0",
        "-9223372036854775808",
        "-9223372036854775808.0",
        "9007199254740993",
        "9007199254740992.0",
        "0",
        "0.0",
        "-0.0",
        "1e300",
        "-1e300",
    ] {
        for op in ["=", "<", "<=", ">", ">="] {
            let text = format!("metadata.big {op} {lit_text}");
            let q = query::parse(&text).unwrap();
            let lit = match &q {
                query::Query::Cmp { value, .. } => value.clone(),
                other => panic!("{other:?}"),
            };
            let mut got = ids(&store.find_models(&q).unwrap());
            got.sort();
            // The same query, wrapped so that no conjunct is indexed: a full scan.
            let scan_q = query::parse(&format!("NOT NOT {text}")).unwrap();
            let mut scanned = ids(&store.find_models(&scan_q).unwrap());
            scanned.sort();
            let want: Vec<EntityId> = made
                .iter()
                .filter(|(_, v)| {
                    let o = cmp(v, &lit);
                    match op {
                        "=" => o == Some(Equal),
                        "<" => o == Some(Less),
                        "<=" => matches!(o, Some(Less | Equal)),
                        ">" => o == Some(Greater),
                        _ => matches!(o, Some(Greater | Equal)),
                    }
                })
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(scanned, want, "scan of {text}");
            if got != want {
                let missing: Vec<Value> = want
                    .iter()
                    .filter(|i| !got.contains(i))
                    .map(value_of)
                    .collect();
                let extra: Vec<Value> = got
                    .iter()
                    .filter(|i| !want.contains(i))
                    .map(value_of)
                    .collect();
                failures.push(format!("{text}: missing {missing:?}, extra {extra:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "indexed answers differ from the scan:\n{}",
        failures.join("\n")
    );
}

/// A list-valued metadata entry compares like the `tag` field ("contains");
/// the planner must not lose such models when it answers from the index.
#[test]
fn list_metadata_is_found_like_a_scan_finds_it() {
    let (_d, store) = temp_store();
    let listed = store
        .create_model(NewModel::new("listed").metadata(
            "langs",
            Value::List(vec![Value::Str("en".into()), Value::Str("fr".into())]),
        ))
        .unwrap();
    let plain = store
        .create_model(NewModel::new("plain").metadata("langs", Value::Str("en".into())))
        .unwrap();
    let mut want = vec![listed.id(), plain.id()];
    want.sort();
    // Wrapped in NOT NOT, no conjunct is indexed: a full scan with the same meaning.
    let scan = ids(&store
        .find_models(&query::parse("NOT NOT metadata.langs = en").unwrap())
        .unwrap());
    assert_eq!(scan, want, "scan");
    let mut indexed = ids(&store
        .find_models(&query::parse("metadata.langs = en").unwrap())
        .unwrap());
    indexed.sort();
    assert_eq!(indexed, want, "indexed answer differs from the scan");
}

// ---------------------------------------------------------------------------
// Experiment listings
// ---------------------------------------------------------------------------

struct ExpRow {
    id: EntityId,
    batch: usize,
    project: String,
    name: String,
    tags: Vec<String>,
    status: Status,
}

type Build = Box<dyn Fn() -> modelvault::ExperimentQuery>;
type Filter = Box<dyn Fn(&ExpRow) -> bool>;

fn build(
    store: &Store,
    f: impl Fn(modelvault::ExperimentQuery) -> modelvault::ExperimentQuery + 'static,
) -> Build {
    let s = store.clone();
    Box::new(move || f(s.experiments()))
}

fn filt(f: impl Fn(&ExpRow) -> bool + 'static) -> Filter {
    Box::new(f)
}

#[test]
fn experiment_queries_filter_and_paginate() {
    let (_d, store) = temp_store();
    let mut rows: Vec<ExpRow> = Vec::new();
    let mut bounds = Vec::new();
    for batch in 0..3 {
        if batch > 0 {
            std::thread::sleep(Duration::from_millis(3));
            bounds.push(now_ms());
            std::thread::sleep(Duration::from_millis(3));
        }
        for j in 0..14usize {
            let project = format!("p{}", j % 3);
            let name = if j % 2 == 0 {
                format!("train-{batch}-{j}")
            } else {
                format!("eval-{j}")
            };
            let tags: Vec<String> = match j % 4 {
                0 => vec!["gpu".into(), "nightly".into()],
                1 => vec!["gpu".into()],
                2 => vec!["cpu".into()],
                _ => vec![],
            };
            let e = store
                .create_experiment(NewExperiment::new(&project, &name).tags(tags.clone()))
                .unwrap();
            let status = match (j + batch) % 5 {
                0 => Status::Created,
                1 => {
                    e.start().unwrap();
                    Status::Running
                }
                2 => {
                    e.start().unwrap();
                    e.finish(Status::Completed).unwrap();
                    Status::Completed
                }
                3 => {
                    e.start().unwrap();
                    e.finish(Status::Failed).unwrap();
                    Status::Failed
                }
                _ => {
                    e.finish(Status::Stopped).unwrap();
                    Status::Stopped
                }
            };
            rows.push(ExpRow {
                id: e.id(),
                batch,
                project,
                name,
                tags,
                status,
            });
        }
    }
    let (t0, t1) = (bounds[0], bounds[1]);
    let has = |r: &ExpRow, t: &str| r.tags.iter().any(|x| x == t);

    let q = store.clone();
    let cases: Vec<(&str, Build, Filter)> = vec![
        ("all", build(&q, |q| q), filt(|_| true)),
        (
            "project p1",
            build(&q, move |q| q.project("p1")),
            filt(|r| r.project == "p1"),
        ),
        (
            "running",
            build(&q, move |q| q.status(Status::Running)),
            filt(|r| r.status == Status::Running),
        ),
        (
            "tag gpu",
            build(&q, move |q| q.tag("gpu")),
            filt(move |r| has(r, "gpu")),
        ),
        (
            "tag nightly + project p0",
            build(&q, move |q| q.tag("nightly").project("p0")),
            filt(move |r| has(r, "nightly") && r.project == "p0"),
        ),
        (
            "prefix train-1",
            build(&q, move |q| q.name_prefix("train-1")),
            filt(|r| r.name.starts_with("train-1")),
        ),
        (
            "prefix eval + completed",
            build(&q, move |q| q.name_prefix("eval").status(Status::Completed)),
            filt(|r| r.name.starts_with("eval") && r.status == Status::Completed),
        ),
        (
            "batch 1 by time",
            build(&q, move |q| q.created_between(t0, t1)),
            filt(|r| r.batch == 1),
        ),
        (
            "time + tag gpu",
            build(&q, move |q| q.created_between(t0, t1).tag("gpu")),
            filt(move |r| r.batch == 1 && has(r, "gpu")),
        ),
        (
            "from t1 + stopped",
            build(&q, move |q| {
                q.created_between(t1, u64::MAX >> 16)
                    .status(Status::Stopped)
            }),
            filt(|r| r.batch == 2 && r.status == Status::Stopped),
        ),
        (
            "failed + p2",
            build(&q, move |q| q.status(Status::Failed).project("p2")),
            filt(|r| r.status == Status::Failed && r.project == "p2"),
        ),
        (
            "no such tag",
            build(&q, move |q| q.tag("tpu")),
            filt(|_| false),
        ),
        (
            "no such project",
            build(&q, move |q| q.project("p")),
            filt(|_| false),
        ),
        (
            "empty window",
            build(&q, move |q| q.created_between(t1, t0)),
            filt(|_| false),
        ),
    ];
    for (label, build, filter) in &cases {
        let want: Vec<&ExpRow> = rows.iter().filter(|r| filter(r)).collect();
        let full = build().limit(10_000).run().unwrap();
        assert_eq!(
            exp_ids(&full),
            want.iter().map(|r| r.id).collect::<Vec<_>>(),
            "{label}"
        );
        for (info, row) in full.iter().zip(&want) {
            assert_eq!(
                (&info.project, &info.name, &info.tags, info.status),
                (&row.project, &row.name, &row.tags, row.status),
                "{label}"
            );
        }
        for page in [1usize, 2, 5, 7] {
            let mut seen = Vec::new();
            let mut cursor: Option<EntityId> = None;
            for _round in 0..=rows.len() + 1 {
                let mut qb = build().limit(page);
                if let Some(c) = cursor {
                    qb = qb.after(c);
                }
                let got = qb.run().unwrap();
                assert!(got.len() <= page, "{label}: page of {} > {page}", got.len());
                if got.is_empty() {
                    break;
                }
                cursor = Some(got.last().unwrap().id);
                seen.extend(exp_ids(&got));
            }
            assert_eq!(seen, exp_ids(&full), "{label}, pages of {page}");
        }
    }
    // The default page size is 100.
    for k in 0..70 {
        store
            .create_experiment(NewExperiment::new("bulk", format!("b{k}")))
            .unwrap();
    }
    assert_eq!(store.experiments().run().unwrap().len(), 100);
    assert_eq!(store.experiments().project("bulk").run().unwrap().len(), 70);
    // Latest by name across batches.
    let latest_eval1 = rows.iter().rev().find(|r| r.name == "eval-1").unwrap().id;
    assert_eq!(
        store.experiment_by_name("p1", "eval-1").unwrap().id(),
        latest_eval1
    );
    assert_index_clean(&store);
}

/// A page of zero experiments is empty, whichever index drives the scan.
#[test]
fn experiment_query_limit_zero_is_empty() {
    let (_d, store) = temp_store();
    for k in 0..3 {
        let e = store
            .create_experiment(NewExperiment::new("p0", format!("e{k}")).tags(["gpu"]))
            .unwrap();
        e.start().unwrap();
    }
    assert_eq!(store.experiments().limit(1).run().unwrap().len(), 1);
    for (label, q) in [
        ("plain", store.experiments()),
        ("tag", store.experiments().tag("gpu")),
        ("status", store.experiments().status(Status::Running)),
        ("project", store.experiments().project("p0")),
    ] {
        let got = q.limit(0).run().unwrap();
        assert!(got.is_empty(), "limit(0), {label}: got {}", got.len());
    }
}

// ---------------------------------------------------------------------------
// Reopen
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Snapshot {
    experiments: Vec<ExperimentInfo>,
    consoles: Vec<Vec<modelvault::ConsoleLine>>,
    artifacts: Vec<Vec<modelvault::Artifact>>,
    scalars: Vec<Vec<(String, u64, f64)>>,
    models: Vec<ModelInfo>,
    versions: Vec<Vec<modelvault::ModelVersion>>,
    used_by: Vec<Vec<(EntityId, u32)>>,
    queries: Vec<Vec<EntityId>>,
    blob_links: Vec<(EntityId, u32)>,
}

fn snapshot(store: &Store, exps: &[EntityId], blob: &BlobId) -> Snapshot {
    let e: Vec<Experiment> = exps
        .iter()
        .map(|id| store.experiment(*id).unwrap())
        .collect();
    let models: Vec<Model> = store
        .models()
        .unwrap()
        .iter()
        .map(|s| store.model(s.id).unwrap())
        .collect();
    let queries = [
        "tag = keep",
        "metadata.acc >= 0.5",
        "status = finalized",
        "framework = safetensors",
        "name ~ re",
        "project = reopen AND metadata.n = 2",
    ]
    .iter()
    .map(|q| ids(&store.find_models(&query::parse(q).unwrap()).unwrap()))
    .collect();
    Snapshot {
        experiments: e.iter().map(|x| x.info().unwrap()).collect(),
        consoles: e
            .iter()
            .map(|x| x.console(0, usize::MAX).unwrap())
            .collect(),
        artifacts: e.iter().map(|x| x.artifacts().unwrap()).collect(),
        scalars: e.iter().map(|x| x.scalars("loss").unwrap()).collect(),
        models: models.iter().map(|m| m.info().unwrap()).collect(),
        versions: models
            .iter()
            .map(|m| {
                m.versions()
                    .unwrap()
                    .into_iter()
                    .map(|v| m.version(Some(v)).unwrap())
                    .collect()
            })
            .collect(),
        used_by: models.iter().map(|m| m.used_by().unwrap()).collect(),
        queries,
        blob_links: store.versions_with_blob(blob).unwrap(),
    }
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let st = safetensors_file();
    let big = noise(400_000, 77);
    let (exps, blob, before, fin_id, url) = {
        let store = Store::create(&path).unwrap();
        let mut exps = Vec::new();
        let mut models = Vec::new();
        let blob = put(&store, &big);
        for k in 0..4 {
            let e = store
                .create_experiment(NewExperiment::new("reopen", format!("run-{k}")).tags(["t"]))
                .unwrap();
            e.start().unwrap();
            e.set_param("a/b", Value::Int(k)).unwrap();
            e.set_progress(10 * k as u8).unwrap();
            for l in 0..30 {
                e.log(
                    if l % 2 == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    &format!("{k}:{l}"),
                )
                .unwrap();
            }
            e.report_scalar("loss", "train", 1, 0.5 * k as f64).unwrap();
            e.report_scalar("loss", "val", 0, 1.5).unwrap();
            e.add_artifact(
                "w",
                ArtifactBody::Blob {
                    blob,
                    size: big.len() as u64,
                },
                BTreeMap::new(),
            )
            .unwrap();
            e.add_artifact(
                "w",
                ArtifactBody::Inline(Value::Str("again".into())),
                BTreeMap::new(),
            )
            .unwrap();
            let m = store
                .create_model(
                    NewModel::new(format!("re-{k}"))
                        .project("reopen")
                        .experiment(e.id())
                        .tags(if k % 2 == 0 { vec!["keep"] } else { vec![] })
                        .metadata("acc", Value::Float(0.3 * k as f64))
                        .metadata("n", Value::Int(k)),
                )
                .unwrap();
            m.add_version_by(vec![entry(&store, "model.safetensors", &st)], Some(e.id()))
                .unwrap();
            m.add_version(vec![FileEntry {
                path: "big.bin".into(),
                blob,
                size: big.len() as u64,
            }])
            .unwrap();
            m.set_alias("best", 1).unwrap();
            if let Some(prev) = models.last() {
                e.use_model(*prev, 2).unwrap();
            }
            models.push(m.id());
            if k == 3 {
                e.finish(Status::Failed).unwrap();
            } else if k == 0 {
                e.finish(Status::Completed).unwrap();
            }
            exps.push(e);
        }
        let fin = store.model_by_name("re-1").unwrap();
        fin.finalize().unwrap();
        let ext = store
            .register_external_model(NewModel::new("ext"), "s3://bucket/ext.onnx", None)
            .unwrap();
        let url = ext.url(None);
        let ids: Vec<EntityId> = exps.iter().map(|e| e.id()).collect();
        let snap = snapshot(&store, &ids, &blob);
        assert_eq!(snap.blob_links.len(), 4);
        assert_eq!(snap.queries[0].len(), 2);
        (ids, blob, snap, fin.id(), (url, ext.id()))
    };
    let store = Store::open(&path).unwrap();
    let after = snapshot(&store, &exps, &blob);
    assert_eq!(after, before);
    assert_eq!(get(&store, &blob), big);
    assert_index_clean(&store);
    // State-dependent rules survive too.
    let fin = store.model(fin_id).unwrap();
    immutable(
        fin.set_metadata("x", Value::Int(1)),
        &fin_id.to_string(),
        "finalized",
    );
    let done = store.experiment(exps[0]).unwrap();
    immutable(
        done.log(Stream::Stdout, "x"),
        &exps[0].to_string(),
        "completed",
    );
    assert_eq!(store.resolve_model(&url.0).unwrap().0.id(), url.1);
    assert_eq!(
        store
            .register_external_model(NewModel::new("ext"), "s3://bucket/ext.onnx", None)
            .unwrap()
            .id(),
        url.1
    );
    assert_eq!(
        store.experiment_by_name("reopen", "run-2").unwrap().id(),
        exps[2]
    );
    assert_eq!(store.resolve_model("re-2@best").unwrap().1, Some(1));
    // And it keeps working: next numbers continue where they were.
    let running = store.experiment(exps[1]).unwrap();
    assert_eq!(running.log(Stream::Stdout, "after reopen").unwrap(), 30);
    assert_eq!(
        running
            .add_artifact("w", ArtifactBody::Inline(Value::Int(3)), BTreeMap::new())
            .unwrap(),
        3
    );
    let m2 = store.model_by_name("re-2").unwrap();
    assert_eq!(m2.add_version(vec![entry(&store, "x", b"x")]).unwrap(), 3);
    exists(m2.set_alias("best", 2));
    assert_index_clean(&store);
}
