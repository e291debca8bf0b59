//! The registry end to end: an experiment runs, logs two models of
//! different frameworks, and both are fetched back by id, by URL and through
//! the experiment; finalizing freezes both.
//!
//! cargo run --release --example registry

use std::io::{Read, Write};

use modelvault::query::{self, Value};
use modelvault::{
    Environment, Error, FileEntry, NewExperiment, NewModel, RunInfo, Status, Store, Stream,
};

fn safetensors(values: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut header = format!(
        "{{\"weight\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[0,{}]}}}}",
        values.len(),
        data.len()
    )
    .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}

fn gguf() -> Vec<u8> {
    // GGUF v3 with no tensors and no metadata: enough for format detection.
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out
}

fn put(store: &Store, bytes: &[u8]) -> modelvault::Result<FileEntry> {
    let mut w = store.blob_writer();
    w.write_all(bytes).map_err(|e| Error::io("<blob>", e))?;
    Ok(FileEntry {
        path: String::new(),
        blob: w.finish()?,
        size: bytes.len() as u64,
    })
}

fn main() -> modelvault::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("<tempdir>", e))?;
    let store = Store::create(dir.path().join("vault"))?;

    // 1. An experiment with its environment, run info and hyperparameters.
    let exp = store.create_experiment(
        NewExperiment::new("vision", "resnet-sweep-3")
            .tags(["sweep"])
            .kind("training"),
    )?;
    exp.set_environment(Environment {
        interpreter: "CPython 3.11.7".into(),
        packages: [
            ("torch".into(), "2.4.0".into()),
            ("numpy".into(), "2.1.0".into()),
        ]
        .into(),
        requirements: "torch==2.4.0\nnumpy==2.1.0\n".into(),
    })?;
    exp.set_run_info(RunInfo {
        host: "gpu-7".into(),
        user: "ada".into(),
        command: vec!["train.py".into(), "--lr=1e-3".into()],
        ..Default::default()
    })?;
    exp.set_params([
        ("General/lr".to_string(), Value::Float(0.001)),
        ("General/epochs".to_string(), Value::Int(3)),
    ])?;
    exp.start()?;
    println!("experiment {} running", exp.id());

    // 2. Console lines and progress, while a monitor thread polls progress.
    let monitor = {
        let store = store.clone();
        let id = exp.id();
        std::thread::spawn(move || {
            let e = store.experiment(id).expect("experiment exists");
            let mut seen = vec![];
            while seen.last() != Some(&100) {
                let p = e.progress().expect("progress readable");
                if seen.last() != Some(&p) {
                    seen.push(p);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            seen
        })
    };
    for (epoch, p) in [(0, 0u8), (1, 50), (2, 100)] {
        exp.log(
            Stream::Stdout,
            &format!("epoch {epoch}: loss {:.3}", 1.0 / (epoch + 1) as f64),
        )?;
        exp.report_scalar("loss", "train", epoch, 1.0 / (epoch + 1) as f64)?;
        exp.set_progress(p)?;
        // A real epoch takes longer; give the monitor time to see each value.
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    println!(
        "monitor saw progress {:?}",
        monitor.join().expect("monitor thread")
    );
    println!(
        "console tail: {:?}",
        exp.console_tail(2)?
            .iter()
            .map(|l| &l.text)
            .collect::<Vec<_>>()
    );

    // 3. Two models of different frameworks, created by the experiment.
    let weights = safetensors(&[0.25; 1024]);
    let st = store.create_model(
        NewModel::new("resnet18")
            .project("vision")
            .experiment(exp.id())
            .tags(["cnn"]),
    )?;
    st.add_version_by(
        vec![FileEntry {
            path: "model.safetensors".into(),
            ..put(&store, &weights)?
        }],
        Some(exp.id()),
    )?;
    st.set_metadata("accuracy", Value::Float(0.93))?;
    st.set_metadata("epochs", Value::Int(3))?;
    let gg = store.create_model(
        NewModel::new("tiny-llm")
            .project("vision")
            .experiment(exp.id()),
    )?;
    gg.add_version_by(
        vec![FileEntry {
            path: "model.gguf".into(),
            ..put(&store, &gguf())?
        }],
        Some(exp.id()),
    )?;
    for m in [&st, &gg] {
        let i = m.info()?;
        let v = m.version(None)?;
        println!(
            "model {} {} framework {} file format {}",
            i.id,
            i.name,
            i.framework.name(),
            v.files[0].format.name()
        );
    }

    // 4. The model URL, and fetching the model by id, by URL, and through the experiment.
    let url = st.url(Some(1));
    println!("url {url}");
    let (by_url, v) = store.resolve_model(&url)?;
    let by_id = store.model(st.id())?;
    let via_exp = exp.info()?.created_models;
    assert_eq!(by_url.id(), st.id());
    assert_eq!(by_id.id(), st.id());
    assert!(via_exp.contains(&st.id()) && via_exp.contains(&gg.id()));
    let mut back = Vec::new();
    store
        .blob_reader(&by_url.version(v)?.files[0].blob)?
        .read_to_end(&mut back)
        .map_err(|e| Error::io("<blob>", e))?;
    assert_eq!(back, weights);
    println!(
        "fetched by id, by URL and via experiment: {} bytes, identical",
        back.len()
    );

    // 5. A metadata query answered from the index.
    let q = query::parse("metadata.accuracy > 0.9 AND framework = safetensors")?;
    let hits: Vec<_> = store.find_models(&q)?.into_iter().map(|m| m.name).collect();
    println!("query {q} -> {hits:?}");

    // 6. Finalize both; any change afterwards fails.
    exp.finish(Status::Completed)?;
    st.finalize()?;
    match exp.set_progress(10) {
        Err(e @ Error::Immutable { .. }) => println!("after finalize: {e}"),
        other => panic!("experiment change after finalize: {other:?}"),
    }
    match st.set_metadata("accuracy", Value::Float(0.99)) {
        Err(e @ Error::Immutable { .. }) => println!("after finalize: {e}"),
        other => panic!("model change after finalize: {other:?}"),
    }
    println!("index clean: {}", store.verify_index()?.is_clean());
    Ok(())
}
