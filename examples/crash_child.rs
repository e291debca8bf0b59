//! The child process of the kill tests (`tests/crash_kill.rs`): it works on a
//! store until the test SIGKILLs it, printing on stdout each operation the
//! store acknowledged, so the test knows what must survive. Built by
//! `cargo test --release --all-targets` (and `make test`); not meant to be
//! run by hand.
//!
//! ```text
//! crash_child workload STORE SEED RELEASABLE_FILE
//! crash_child upload STORE SEED SIZE
//! crash_child committers STORE THREADS
//! ```
//!
//! `workload` streams blobs, commits versions and metadata, releases blobs
//! and collects garbage, forever. Lines, each after the operation returned:
//! - `BLOB id hash`, or `BLOB id hash FREE` for a blob of unique content
//!   that no version will refer to (so its one hold is all that keeps it);
//! - `VERSION name v id`, `META name stamp`, `REVERSED older newer rebased`;
//! - `RELEASING id` before and `RELEASED id` after releasing a FREE blob
//!   (one of this run's, or one listed in RELEASABLE_FILE);
//! - `GC compacted deleted` after a collection (packs compacted, packs
//!   deleted); `ERROR what` if a release or gc failed.
//!
//! `upload` streams `common::weights(SIZE, SEED)` as one blob, continuing
//! the store's upload session if it has one (`Store::resume_upload`, after
//! an earlier child was killed), and never finishes it: it writes all but
//! the last byte and waits to be killed. Lines: `START id offset` (the
//! session continued, `-` for a new upload, and the offset writing resumes
//! at), and `DURABLE id bytes` each time the session's durable progress
//! grows.
//!
//! `committers` runs THREADS threads of small commits at once (group
//! commit shares their WAL fsyncs), forever. Each thread `t` has an
//! experiment and a model `c<t>`; in turn it logs a console line, sets
//! the model's metadata `i` and creates a model `n-<t>-<i>`. Lines, each
//! after the call returned, ending in ` .` (a line the kill cut is
//! ignored): `EXP t id .`, `LINE t seq i .`, `META t i .`, `MODEL t i id .`.

#[path = "../tests/common.rs"]
mod common;

use std::io::Write;

use modelvault::{BlobId, FileEntry, GcOptions, Store};

/// A blob of at least this many fresh random bytes is unique: no other
/// upload, in this run or another, stores the same content.
const UNIQUE_MIN: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, what: &str| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("crash_child: missing {what} (see examples/crash_child.rs)"))
    };
    match arg(0, "mode") {
        "workload" => workload(
            arg(1, "store"),
            arg(2, "seed").parse().expect("seed"),
            arg(3, "releasable file"),
        ),
        "upload" => upload(
            arg(1, "store"),
            arg(2, "seed").parse().expect("seed"),
            arg(3, "size").parse().expect("size"),
        ),
        "committers" => committers(arg(1, "store"), arg(2, "threads").parse().expect("threads")),
        other => panic!("crash_child: unknown mode {other:?}"),
    }
}

fn workload(dir: &str, seed: u64, releasable: &str) {
    let mut free: Vec<BlobId> = std::fs::read_to_string(releasable)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    // Small packs, so that releases leave packs mostly dead and collections
    // compact them.
    let store = Store::options().pack_size(4 << 20).open(dir).unwrap();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let shared = common::weights(1 << 20, 77);
    let out = std::io::stdout();
    writeln!(out.lock(), "START").unwrap();
    // The last versioned blob of this run and its content: the next
    // version may be a training step from it, stored whole with the older
    // one then re-encoded against it (reverse delta).
    let mut prev: Option<(BlobId, Vec<u8>)> = None;
    for round in 0u64.. {
        // A blob: shared content, fresh content, or both, of varied size.
        let n = (rnd() % (3 << 20)) as usize;
        let kind = rnd() % 3;
        let mut data = match kind {
            0 => shared.clone(),
            1 => common::noise(n, rnd()),
            _ => {
                let mut d = shared.clone();
                d.extend_from_slice(&common::weights(n, rnd()));
                d
            }
        };
        data.truncate(n.max(1));
        let mut unique = match kind {
            0 => false,
            1 => data.len() >= UNIQUE_MIN,
            _ => data.len() >= shared.len() + UNIQUE_MIN,
        };
        let versioned = round % 2 == 0;
        let step_from = match versioned && rnd() % 2 == 0 {
            true => prev.take().filter(|(_, d)| d.len() >= 4096),
            false => None,
        };
        let mut w = store.blob_writer();
        if let Some((older, old_data)) = &step_from {
            data = common::nudge_f32(old_data, rnd());
            unique = false;
            w = w.cut_like(older).unwrap();
        }
        for piece in data.chunks(1 + (rnd() % 300_000) as usize) {
            w.write_all(piece).unwrap();
        }
        let id = w.finish().unwrap();
        let is_free = unique && !versioned;
        writeln!(
            out.lock(),
            "BLOB {id} {}{}",
            blake3::hash(&data),
            if is_free { " FREE" } else { "" }
        )
        .unwrap();
        if is_free {
            free.push(id);
        }
        if versioned {
            let name = format!("m{}", rnd() % 4);
            let v = store
                .commit_version(
                    &name,
                    vec![FileEntry {
                        path: "w.bin".into(),
                        blob: id,
                        size: data.len() as u64,
                    }],
                )
                .unwrap();
            writeln!(out.lock(), "VERSION {name} {v} {id}").unwrap();
            if let Some((older, _)) = &step_from {
                let r = store.reverse_delta(older, &id).unwrap();
                writeln!(out.lock(), "REVERSED {older} {id} {}", r.rebased).unwrap();
            }
            prev = Some((id, data.clone()));
            let m = store.model_by_name(&name).unwrap();
            // Increasing across child runs too: each run has a larger seed.
            let stamp = (seed * 1_000_000 + round) as i64;
            m.set_metadata("round", modelvault::query::Value::Int(stamp))
                .unwrap();
            writeln!(out.lock(), "META {name} {stamp}").unwrap();
        }
        // Release an earlier FREE blob (this run's or an earlier run's)
        // about every other round.
        if !free.is_empty() && rnd() % 2 == 0 {
            let victim = free.swap_remove((rnd() % free.len() as u64) as usize);
            writeln!(out.lock(), "RELEASING {victim}").unwrap();
            match store.release_blob(&victim) {
                Ok(()) => writeln!(out.lock(), "RELEASED {victim}").unwrap(),
                Err(e) => writeln!(out.lock(), "ERROR release {victim}: {e}").unwrap(),
            }
        }
        // Collect, with compaction, every third round.
        if round % 3 == 2 {
            match store.gc(&GcOptions::new().compact_below(0.5)) {
                Ok(r) => {
                    writeln!(out.lock(), "GC {} {}", r.packs_compacted, r.packs_deleted).unwrap()
                }
                Err(e) => writeln!(out.lock(), "ERROR gc: {e}").unwrap(),
            }
        }
    }
}

fn upload(dir: &str, seed: u64, size: usize) {
    let store = Store::open(dir).unwrap();
    let data = common::weights(size, seed);
    let sessions = store.uploads().unwrap();
    assert!(sessions.len() <= 1, "more than one session: {sessions:?}");
    let (mut w, resumed) = match sessions.first() {
        Some(s) => {
            let id = s.id.to_string().parse().unwrap();
            (store.resume_upload(id).unwrap(), s.id.to_string())
        }
        None => (store.blob_writer(), "-".to_string()),
    };
    let from = w.len() as usize;
    let out = std::io::stdout();
    writeln!(out.lock(), "START {resumed} {from}").unwrap();
    let mut durable = 0;
    // Everything but the last byte, in pieces of varied size; the session's
    // progress is reported as it becomes durable.
    let mut at = from;
    let mut x = seed | 1;
    while at + 1 < size {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let n = (1 + (x >> 40) as usize % (256 << 10)).min(size - 1 - at);
        w.write_all(&data[at..at + n]).unwrap();
        at += n;
        for s in store.uploads().unwrap() {
            if s.durable_bytes > durable {
                durable = s.durable_bytes;
                writeln!(out.lock(), "DURABLE {} {durable}", s.id).unwrap();
            }
        }
    }
    writeln!(out.lock(), "WAITING").unwrap();
    // Never finishes: the test kills it.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn committers(dir: &str, threads: usize) {
    let store = Store::open(dir).unwrap();
    let out = std::io::stdout();
    writeln!(out.lock(), "START").unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, out) = (&store, &out);
            s.spawn(move || {
                let exp = store
                    .create_experiment(modelvault::NewExperiment::new("crash", format!("t{t}")))
                    .unwrap();
                writeln!(out.lock(), "EXP {t} {} .", exp.id()).unwrap();
                let model = store
                    .create_model(modelvault::NewModel::new(format!("c{t}")))
                    .unwrap();
                for i in 0u64.. {
                    let seq = exp
                        .log(modelvault::Stream::Stdout, &format!("t{t} line {i}"))
                        .unwrap();
                    writeln!(out.lock(), "LINE {t} {seq} {i} .").unwrap();
                    model
                        .set_metadata("i", modelvault::query::Value::Int(i as i64))
                        .unwrap();
                    writeln!(out.lock(), "META {t} {i} .").unwrap();
                    let m = store
                        .create_model(modelvault::NewModel::new(format!("n-{t}-{i}")))
                        .unwrap();
                    writeln!(out.lock(), "MODEL {t} {i} {} .", m.id()).unwrap();
                }
            });
        }
    });
}
