//! Registry at scale: 10,000 experiments and 100,000 models with lineage,
//! then creation rate, lookup-by-id and index-query latencies (p50/p99),
//! with every lineage and query answer checked against an in-memory model.
//!
//! cargo run --release --example registry_bench [-- MODELS EXPERIMENTS]
//!
//! Commits use `Durability::Eventual` (WAL written, not fsynced per call;
//! pack data is still fsynced first) for the bulk load, and a separate run of
//! `Durability::Immediate` creates shows the cost of an fsync per commit.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use modelvault::detect::Framework;
use modelvault::query::{self, Value};
use modelvault::{Durability, EntityId, FileEntry, NewExperiment, NewModel, Store};

/// splitmix64: deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

const FRAMEWORKS: [Framework; 5] = [
    Framework::Pytorch,
    Framework::Tensorflow,
    Framework::Onnx,
    Framework::Keras,
    Framework::Safetensors,
];

fn main() -> modelvault::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n_models: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let n_exps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::options()
        .durability(Durability::Eventual)
        .open(dir.path().join("vault"))?;
    let mut rng = Rng(42);

    // Experiments.
    let t = Instant::now();
    let mut exps = Vec::with_capacity(n_exps);
    for i in 0..n_exps {
        let e = store.create_experiment(
            NewExperiment::new(format!("p{}", i % 20), format!("run-{i}"))
                .tags([format!("t{}", i % 7)]),
        )?;
        exps.push(e);
    }
    let exp_secs = t.elapsed().as_secs_f64();

    // Models, each created by an experiment, with typed metadata.
    struct M {
        id: EntityId,
        framework: Framework,
        accuracy: f64,
        exp: usize,
    }
    let mut models = Vec::with_capacity(n_models);
    let t = Instant::now();
    for i in 0..n_models {
        let framework = FRAMEWORKS[rng.below(5) as usize];
        let accuracy = rng.unit();
        let exp = i % n_exps;
        let m = store.create_model(
            NewModel::new(format!("m{i}"))
                .project(format!("p{}", i % 20))
                .framework(framework)
                .tags([format!("t{}", i % 11)])
                .metadata("accuracy", Value::Float(accuracy))
                .metadata("epochs", Value::Int((i % 50) as i64))
                .experiment(exps[exp].id()),
        )?;
        models.push(M {
            id: m.id(),
            framework,
            accuracy,
            exp,
        });
    }
    let model_secs = t.elapsed().as_secs_f64();
    store.sync()?;

    // Inputs: every experiment uses 3 of the first 1,000 models, each given a version.
    let blob = {
        let mut w = store.blob_writer();
        w.write_all(b"weights").expect("write");
        w.finish()?
    };
    let versioned = n_models.min(1000);
    for m in &models[..versioned] {
        store.model(m.id)?.add_version(vec![FileEntry {
            path: "w.bin".into(),
            blob,
            size: 7,
        }])?;
    }
    let mut used_by: BTreeMap<EntityId, BTreeSet<EntityId>> = BTreeMap::new();
    for e in &exps {
        for _ in 0..3 {
            let m = models[rng.below(versioned as u64) as usize].id;
            e.use_model(m, 1)?;
            used_by.entry(m).or_default().insert(e.id());
        }
    }
    store.sync()?;
    let exp_ids: Vec<EntityId> = exps.iter().map(|e| e.id()).collect();

    // Immediate durability: an fsync per commit.
    let imm_dir = tempfile::tempdir().expect("temp dir");
    let imm = Store::create(imm_dir.path().join("vault"))?;
    let t = Instant::now();
    let n_imm = 2000;
    for i in 0..n_imm {
        imm.create_model(NewModel::new(format!("m{i}")))?;
    }
    let imm_rate = n_imm as f64 / t.elapsed().as_secs_f64();
    drop(imm);

    println!("store: {n_models} models, {n_exps} experiments");
    println!(
        "create experiments   {:>9.0} /s (Eventual)",
        n_exps as f64 / exp_secs
    );
    println!(
        "create models        {:>9.0} /s (Eventual)",
        n_models as f64 / model_secs
    );
    println!(
        "create models        {:>9.0} /s (Immediate, fsync per commit, {n_imm} models)",
        imm_rate
    );

    // Reopen, as a long-lived store would be read: the bulk load moves from
    // RocksDB's memtables into sorted tables.
    let path = store.path().to_path_buf();
    drop(exps);
    drop(store);
    let store = Store::open(&path)?;
    let exps: Vec<_> = exp_ids
        .iter()
        .map(|id| store.experiment(*id))
        .collect::<Result<_, _>>()?;

    // Lookup by id.
    let mut lat = Vec::new();
    for _ in 0..10_000 {
        let m = &models[rng.below(n_models as u64) as usize];
        let t = Instant::now();
        let info = store.model(m.id)?.info()?;
        lat.push(t.elapsed());
        assert_eq!(info.framework, m.framework);
    }
    let (p50, p99) = percentiles(lat);
    println!("lookup model by id   p50 {p50:>7.1} us   p99 {p99:>7.1} us");

    // Lineage: experiment -> created models, model -> creating experiment, model -> users.
    let mut created: BTreeMap<usize, BTreeSet<EntityId>> = BTreeMap::new();
    for m in &models {
        created.entry(m.exp).or_default().insert(m.id);
    }
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let e = rng.below(n_exps as u64) as usize;
        let t = Instant::now();
        let got: BTreeSet<EntityId> = exps[e].info()?.created_models.into_iter().collect();
        lat.push(t.elapsed());
        assert_eq!(
            got,
            created.get(&e).cloned().unwrap_or_default(),
            "created models of experiment {e}"
        );
    }
    let (p50, p99) = percentiles(lat);
    println!("experiment -> models p50 {p50:>7.1} us   p99 {p99:>7.1} us   (exact sets)");
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let m = &models[rng.below(versioned as u64) as usize];
        let t = Instant::now();
        let got: BTreeSet<EntityId> = store
            .model(m.id)?
            .used_by()?
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        lat.push(t.elapsed());
        assert_eq!(got, used_by.get(&m.id).cloned().unwrap_or_default());
        assert_eq!(
            store.model(m.id)?.info()?.experiment,
            Some(exps[m.exp].id())
        );
    }
    let (p50, p99) = percentiles(lat);
    println!("model -> users       p50 {p50:>7.1} us   p99 {p99:>7.1} us   (exact sets)");

    // Typed metadata queries answered from the index.
    let mut lat = Vec::new();
    for i in 0..500 {
        let threshold = 0.995 + (i % 5) as f64 * 0.001;
        let fw = FRAMEWORKS[i % 5];
        let q = query::parse(&format!(
            "metadata.accuracy > {threshold} AND framework = {}",
            fw.name()
        ))?;
        let t = Instant::now();
        let got: BTreeSet<EntityId> = store.find_models(&q)?.into_iter().map(|m| m.id).collect();
        lat.push(t.elapsed());
        let want: BTreeSet<EntityId> = models
            .iter()
            .filter(|m| m.accuracy > threshold && m.framework == fw)
            .map(|m| m.id)
            .collect();
        assert_eq!(got, want, "{q}");
    }
    let (p50, p99) = percentiles(lat);
    println!("metadata query       p50 {p50:>7.1} us   p99 {p99:>7.1} us   ('metadata.accuracy > 0.99x AND framework = X', exact sets)");

    let t = Instant::now();
    let report = store.verify_index()?;
    println!(
        "verify_index: clean={} in {:.2} s",
        report.is_clean(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
