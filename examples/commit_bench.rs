//! Durable small commits per second, from 1, 4 and 16 threads, with
//! `Durability::Immediate` (each call returns only once its commit is on
//! disk): model creates, console lines (one per commit) and scalars (one
//! per commit), each thread on its own experiment. Concurrent commits share
//! WAL fsyncs (group commit, docs/ARCHITECTURE.md).
//!
//! cargo run --release --example commit_bench [-- SECONDS_PER_CASE [DIR [immediate|eventual [WORK [THREADS]]]]]
//!
//! WORK (`model-create`, `console-line`, `scalar`) and THREADS run one case
//! only, for profiling.
//!
//! `eventual` runs the same cases with `Durability::Eventual` (no fsync per
//! commit): the ceiling that fsync sharing can approach.
//!
//! Each case checks that the store holds exactly the commits acknowledged.
//!
//! DIR (default: the system's temp dir) must be on the disk to measure: a
//! tmpfs makes fsyncs free.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelvault::{Durability, NewExperiment, NewModel, Store, Stream};

#[derive(Clone, Copy)]
enum Work {
    ModelCreate,
    ConsoleLine,
    Scalar,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::ModelCreate => "model create",
            Work::ConsoleLine => "console line",
            Work::Scalar => "scalar",
        }
    }
}

/// Commits per second of `threads` threads doing `work` for `secs`.
fn run(
    dir: &std::path::Path,
    durability: Durability,
    work: Work,
    threads: usize,
    secs: f64,
) -> modelvault::Result<f64> {
    let path = dir.join(format!("vault-{}-{threads}", work.name().replace(' ', "-")));
    let store = Store::options()
        .create(true)
        .durability(durability)
        .open(&path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..threads {
        let store = store.clone();
        let (stop, done) = (stop.clone(), done.clone());
        handles.push(std::thread::spawn(move || -> modelvault::Result<u64> {
            let exp = store.create_experiment(NewExperiment::new("bench", format!("t{t}")))?;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match work {
                    Work::ModelCreate => {
                        store.create_model(NewModel::new(format!("m-{t}-{i}")))?;
                    }
                    Work::ConsoleLine => {
                        exp.log(Stream::Stdout, "epoch 3 step 1200 loss 0.4172")?;
                    }
                    Work::Scalar => exp.report_scalar("loss", "train", i, 0.5 / (i + 1) as f64)?,
                }
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            // What the store holds must be what was acknowledged.
            let stored = match work {
                Work::ModelCreate => (0..i)
                    .filter(|j| store.model_by_name(&format!("m-{t}-{j}")).is_ok())
                    .count() as u64,
                Work::ConsoleLine => exp.info()?.console_lines,
                Work::Scalar => exp.scalars("loss")?.len() as u64,
            };
            assert_eq!(
                stored, i,
                "thread {t}: {i} commits acknowledged, {stored} stored"
            );
            Ok(i)
        }));
    }
    // Counted from when every thread is at work, for `secs`.
    std::thread::sleep(Duration::from_millis(200));
    let start_count = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let n = done.load(Ordering::Relaxed) - start_count;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        total += h.join().expect("bench thread panicked")?;
    }
    assert!(total >= n, "{total} commits made, {n} counted");
    drop(store);
    let _ = std::fs::remove_dir_all(&path);
    Ok(rate)
}

fn main() -> modelvault::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let base = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let durability = match args.get(3).map(String::as_str) {
        Some("eventual") => Durability::Eventual,
        None | Some("immediate") => Durability::Immediate,
        Some(other) => panic!("unknown durability {other:?}: immediate or eventual"),
    };
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    println!("commits per second ({durability:?}), {secs} s per case");
    // Optional: one case only, e.g. `scalar 16` (for profiling).
    let only_work = args.get(4).map(String::as_str);
    let only_threads: Option<usize> = args.get(5).and_then(|s| s.parse().ok());
    for work in [Work::ModelCreate, Work::ConsoleLine, Work::Scalar] {
        if only_work.is_some_and(|w| w != work.name().replace(' ', "-")) {
            continue;
        }
        let mut line = format!("{:<13}", work.name());
        for threads in [1, 4, 16] {
            if only_threads.is_some_and(|t| t != threads) {
                continue;
            }
            let rate = run(dir.path(), durability, work, threads, secs)?;
            line += &format!("  {threads:>2} threads {rate:>8.0}/s");
        }
        println!("{line}");
    }
    Ok(())
}
