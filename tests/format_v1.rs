//! A store written by format version 1, committed under `tests/fixtures/format-v1/`, opens
//! and reads back everything in it: blobs whole, as forward deltas and as reverse deltas,
//! model versions, aliases, metadata and indexes, an experiment with parameters, console,
//! scalars and artifacts, an external model, a suspended upload session.
//!
//! The fixture is frozen with the format. Any change that makes this test fail changes the
//! format: give it a new version number in docs/FORMAT.md, keep reading version 1, and add a
//! fixture for the new version beside this one. `write_the_format_v1_fixture` (ignored)
//! documents how the fixture was made; it is not run again for version 1.
//!
//! `expected.json`, written with the fixture, holds what the generator observed: ids, and
//! the blake3 of every file's bytes (the blob ids are that too, but a reader checking its
//! own ids would not catch a format change that also changed how ids are read).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use modelvault::query::{self, Value};
use modelvault::{
    ArtifactBody, BlobId, EntityId, FileEntry, GcOptions, NewExperiment, NewModel, Status, Store,
    Stream, VerifyOptions,
};

use crate::common::{get, nudge_f32, safetensors, weights};

const MODEL: &str = "resnet";
const EXTERNAL: &str = "bert-external";
const EXTERNAL_URL: &str = "https://example.org/bert.bin";
const PROJECT: &str = "vision";
const EXPERIMENT: &str = "run-1";
const TENSOR: &str = "encoder.weight";
const NOTES: &[u8] = b"trained on the fixture set\n";
const UPLOAD_PREFIX: usize = 100_000;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
}

/// The fp32 tensor at step `step` of a small training run: each step the previous one
/// nudged.
fn tensor(step: u64) -> Vec<u8> {
    let mut w = weights(96 * 1024, 7);
    for s in 1..=step {
        w = nudge_f32(&w, 100 + s);
    }
    w
}

/// Checkpoint `step`: the fp32 tensor and an fp16 one made from it.
fn checkpoint(step: u64) -> Vec<u8> {
    let w = tensor(step);
    let half: Vec<u8> = w[..32 * 1024]
        .chunks(4)
        .flat_map(|c| [c[2], c[3]])
        .collect();
    safetensors(&[
        (TENSOR, "F32", w.len() / 4, &w),
        ("head.weight", "F16", half.len() / 2, &half),
    ])
}

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn put(w: modelvault::BlobWriter, data: &[u8]) -> BlobId {
    let mut w = w;
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// Writes the fixture into `$MODELVAULT_WRITE_FIXTURE` (an absent directory), with
/// `expected.json` beside the store. Run with `--ignored` only to make a fixture for a new
/// format version.
#[test]
#[ignore = "writes the format fixture; run by hand for a new format version"]
fn write_the_format_v1_fixture() {
    let out = PathBuf::from(
        std::env::var("MODELVAULT_WRITE_FIXTURE")
            .expect("set MODELVAULT_WRITE_FIXTURE to the directory to write"),
    );
    assert!(!out.exists(), "{} exists already", out.display());
    let store = Store::create(out.join("store")).unwrap();

    let exp = store
        .create_experiment(NewExperiment::new(PROJECT, EXPERIMENT).tags(["fixture"]))
        .unwrap();
    exp.start().unwrap();
    exp.set_param("General/lr", Value::Float(1e-3)).unwrap();
    exp.set_param("General/epochs", Value::Int(3)).unwrap();
    exp.log(Stream::Stdout, "epoch 1: loss 0.41").unwrap();
    exp.log(Stream::Stderr, "warning: fixture").unwrap();
    for i in 0..3u64 {
        exp.report_scalar("loss", "train", i, 1.0 / (i + 1) as f64)
            .unwrap();
    }

    // Version 1 whole, version 2 as forward deltas, version 3 stored whole with version 2
    // re-encoded against it (a reverse delta).
    let (c0, c1, c2) = (checkpoint(0), checkpoint(1), checkpoint(2));
    let b0 = put(store.blob_writer(), &c0);
    let notes = put(store.blob_writer(), NOTES);
    let b1 = put(store.blob_writer().delta_base(&b0).unwrap(), &c1);
    let b2 = put(store.blob_writer().cut_like(&b1).unwrap(), &c2);

    let mut labels = BTreeMap::new();
    labels.insert("cat".to_string(), 0);
    labels.insert("dog".to_string(), 1);
    let model = store
        .create_model(
            NewModel::new(MODEL)
                .project(PROJECT)
                .tags(["fixture", "cnn"])
                .labels(labels)
                .metadata("accuracy", Value::Float(0.93))
                .metadata("layers", Value::Int(18))
                .comment("the fixture model")
                .experiment(exp.id()),
        )
        .unwrap();
    let file = |path: &str, blob: BlobId, size: usize| FileEntry {
        path: path.into(),
        blob,
        size: size as u64,
    };
    model
        .add_version_by(
            vec![
                file("model.safetensors", b0, c0.len()),
                file("notes.txt", notes, NOTES.len()),
            ],
            Some(exp.id()),
        )
        .unwrap();
    model
        .add_version_by(
            vec![file("model.safetensors", b1, c1.len())],
            Some(exp.id()),
        )
        .unwrap();
    model
        .add_version_by(
            vec![file("model.safetensors", b2, c2.len())],
            Some(exp.id()),
        )
        .unwrap();
    store.reverse_delta(&b1, &b2).unwrap();
    model.set_alias("prod", 2).unwrap();
    model
        .set_metadata("dataset", Value::Str("fixture-set".into()))
        .unwrap();
    for b in [b0, b1, b2, notes] {
        store.release_blob(&b).unwrap();
    }

    let external = store
        .register_external_model(NewModel::new(EXTERNAL).project(PROJECT), EXTERNAL_URL, None)
        .unwrap();
    exp.use_model(model.id(), 1).unwrap();
    let mut meta = BTreeMap::new();
    meta.insert("kind".to_string(), Value::Str("plot".into()));
    let plot = put(store.blob_writer(), b"<svg/>");
    exp.add_artifact(
        "loss.svg",
        ArtifactBody::Blob {
            blob: plot,
            size: 6,
        },
        meta,
    )
    .unwrap();
    exp.add_artifact(
        "summary",
        ArtifactBody::Inline(Value::Int(42)),
        BTreeMap::new(),
    )
    .unwrap();
    store.release_blob(&plot).unwrap();
    exp.set_progress(100).unwrap();
    exp.finish(Status::Completed).unwrap();

    // A blob stored and released: gc has work and records to leave.
    let gone = put(store.blob_writer(), &weights(40_000, 9));
    store.release_blob(&gone).unwrap();
    store.gc(&GcOptions::new()).unwrap();

    // An upload suspended after its first 100 kB.
    let upload = weights(UPLOAD_PREFIX, 11);
    let mut w = store.blob_writer();
    w.write_all(&upload).unwrap();
    let upload_id = w.suspend().unwrap();

    let expected = serde_json::json!({
        "model": model.id().to_string(),
        "external": external.id().to_string(),
        "experiment": exp.id().to_string(),
        "upload": upload_id.get(),
        "upload_prefix": hex(&upload),
        "files": {
            "1/model.safetensors": hex(&c0),
            "1/notes.txt": hex(NOTES),
            "2/model.safetensors": hex(&c1),
            "3/model.safetensors": hex(&c2),
        },
        "tensor": hex(&tensor(2)),
        "plot": hex(b"<svg/>"),
    });
    drop((model, external, exp, store));
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
    // Lock files and RocksDB's info logs are not part of the format.
    std::fs::remove_file(out.join("store/lock")).unwrap();
    for e in std::fs::read_dir(out.join("store/meta")).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("LO") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_store_written_by_format_1_opens_and_reads_back_everything() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture_dir().join("expected.json")).unwrap())
            .unwrap();
    let text = |k: &str| expected[k].as_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir().join("store"), &tmp.path().join("store"));
    let store = Store::open(tmp.path().join("store")).unwrap();

    // Every file of every version, byte for byte.
    let model = store.model_by_name(MODEL).unwrap();
    assert_eq!(model.id().to_string(), text("model"));
    assert_eq!(model.versions().unwrap(), vec![1, 2, 3]);
    let files = expected["files"].as_object().unwrap();
    let mut seen = 0;
    for v in 1..=3 {
        for f in model.version(Some(v)).unwrap().files {
            let bytes = get(&store, &f.blob);
            assert_eq!(bytes.len() as u64, f.size);
            let want = files[&format!("{v}/{}", f.path)].as_str().unwrap();
            assert_eq!(hex(&bytes), want, "version {v} file {}", f.path);
            seen += 1;
        }
    }
    assert_eq!(seen, files.len());

    // One tensor by name, through the stored tensor layout.
    let latest = model.version(None).unwrap();
    let (span, mut t) = store.tensor_reader(&latest.files[0].blob, TENSOR).unwrap();
    assert_eq!(span.shape, vec![96 * 1024 / 4]);
    let mut tensor = Vec::new();
    t.read_to_end(&mut tensor).unwrap();
    assert_eq!(hex(&tensor), text("tensor"));

    // The registry's records and indexes.
    let info = model.info().unwrap();
    assert_eq!(info.project, PROJECT);
    let mut tags = info.tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["cnn".to_string(), "fixture".to_string()]);
    assert_eq!(info.labels.get("dog"), Some(&1));
    assert_eq!(info.metadata.get("accuracy"), Some(&Value::Float(0.93)));
    assert_eq!(info.metadata.get("layers"), Some(&Value::Int(18)));
    assert_eq!(
        info.metadata.get("dataset"),
        Some(&Value::Str("fixture-set".into()))
    );
    assert_eq!(info.latest, 3);
    assert_eq!(
        store.resolve_model(&format!("{MODEL}@prod")).unwrap().1,
        Some(2)
    );
    let hits = store
        .find_models(&query::parse("metadata.accuracy > 0.9 AND tag = cnn").unwrap())
        .unwrap();
    assert_eq!(
        hits.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![model.id()]
    );
    let external = store.model_by_name(EXTERNAL).unwrap();
    assert_eq!(external.id().to_string(), text("external"));

    let exp_id: EntityId = text("experiment").parse().unwrap();
    assert_eq!(info.experiment, Some(exp_id));
    let exp = store.experiment(exp_id).unwrap();
    let e = exp.info().unwrap();
    assert_eq!((e.project.as_str(), e.name.as_str()), (PROJECT, EXPERIMENT));
    assert_eq!(e.status, Status::Completed);
    assert_eq!(e.progress, 100);
    assert_eq!(e.params.get("General/lr"), Some(&Value::Float(1e-3)));
    assert_eq!(e.params.get("General/epochs"), Some(&Value::Int(3)));
    assert_eq!(e.created_models, vec![model.id()]);
    assert!(e.input_models.contains(&(model.id(), 1)));
    assert_eq!(model.used_by().unwrap(), vec![(exp_id, 1)]);
    let console: Vec<String> = exp
        .console(0, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(console, vec!["epoch 1: loss 0.41", "warning: fixture"]);
    let loss: Vec<f64> = exp
        .scalars("loss")
        .unwrap()
        .into_iter()
        .map(|s| s.2)
        .collect();
    assert_eq!(loss, vec![1.0, 0.5, 1.0 / 3.0]);
    match exp.artifact("loss.svg", None).unwrap().body {
        ArtifactBody::Blob { blob, .. } => assert_eq!(hex(&get(&store, &blob)), text("plot")),
        other => panic!("loss.svg is {other:?}"),
    }
    assert_eq!(
        exp.artifact("summary", None).unwrap().body,
        ArtifactBody::Inline(Value::Int(42))
    );

    assert!(store
        .verify(VerifyOptions::new().read_data(true))
        .unwrap()
        .is_clean());

    // The suspended upload continues where it stopped.
    let upload = expected["upload"].as_u64().unwrap();
    let info = store.uploads().unwrap();
    assert_eq!(info.iter().map(|u| u.id).collect::<Vec<_>>(), vec![upload]);
    let mut w = store
        .resume_upload(upload.to_string().parse().unwrap())
        .unwrap();
    let done = w.len() as usize;
    assert!(
        done <= UPLOAD_PREFIX,
        "{done} bytes durable of {UPLOAD_PREFIX}"
    );
    let mut whole = weights(UPLOAD_PREFIX, 11);
    assert_eq!(hex(&whole), text("upload_prefix"));
    whole.extend_from_slice(&[7u8; 5000]);
    w.write_all(&whole[done..]).unwrap();
    let blob = w.finish().unwrap();
    assert_eq!(get(&store, &blob), whole);
    assert_eq!(blob.to_string(), hex(&whole));

    // And the old store takes new writes: a fourth version as deltas against the third.
    let c3 = checkpoint(3);
    let b3 = put(
        store
            .blob_writer()
            .delta_base(&latest.files[0].blob)
            .unwrap(),
        &c3,
    );
    model
        .add_version(vec![FileEntry {
            path: "model.safetensors".into(),
            blob: b3,
            size: c3.len() as u64,
        }])
        .unwrap();
    assert_eq!(get(&store, &b3), c3);
    store.gc(&GcOptions::new()).unwrap();
    assert!(store
        .verify(VerifyOptions::new().read_data(true))
        .unwrap()
        .is_clean());
}
