//! Kill test: a child process runs a random workload (streaming blobs,
//! committing versions, registry updates) and reports each acknowledged
//! commit on stdout; the parent SIGKILLs it at a random moment, reopens the
//! store and checks that every acknowledged commit is intact and readable
//! and that `verify --read-data` is clean (a rotating twentieth of the
//! chunks after each kill, all of them after the last).
//!
//! `MODELVAULT_KILL_POINTS` sets the number of kills (default 200).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use modelvault::{BlobId, FileEntry, Store, VerifyOptions};

/// The child's side: runs until killed. Only active when the parent sets
/// `MODELVAULT_KILL_CHILD` to a store path.
#[test]
fn kill_child_workload() {
    let Some(dir) = std::env::var_os("MODELVAULT_KILL_CHILD") else {
        return;
    };
    let seed: u64 = std::env::var("MODELVAULT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let store = Store::create(&dir).unwrap();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let shared = crate::common::weights(1 << 20, 77);
    let out = std::io::stdout();
    for round in 0u64.. {
        // A blob: shared content, fresh content, or both, of varied size.
        let n = (rnd() % (3 << 20)) as usize;
        let mut data = match rnd() % 3 {
            0 => shared.clone(),
            1 => crate::common::noise(n, rnd()),
            _ => {
                let mut d = shared.clone();
                d.extend_from_slice(&crate::common::weights(n, rnd()));
                d
            }
        };
        data.truncate(n.max(1));
        let mut w = store.blob_writer();
        for piece in data.chunks(1 + (rnd() % 300_000) as usize) {
            w.write_all(piece).unwrap();
        }
        let id = w.finish().unwrap();
        writeln!(out.lock(), "BLOB {id} {}", blake3::hash(&data)).unwrap();
        if round % 2 == 0 {
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
            let m = store.model_by_name(&name).unwrap();
            // Increasing across child runs too: each run has a larger seed.
            let stamp = (seed * 1_000_000 + round) as i64;
            m.set_metadata("round", modelvault::query::Value::Int(stamp))
                .unwrap();
            writeln!(out.lock(), "META {name} {stamp}").unwrap();
        }
    }
}

#[derive(Default)]
struct Acked {
    blobs: Vec<(BlobId, String)>,
    versions: Vec<(String, u32, BlobId)>,
    meta: std::collections::HashMap<String, i64>,
}

fn run_once(
    dir: &std::path::Path,
    seed: u64,
    kill_after: Duration,
    from_first_ack: bool,
    acked: &mut Acked,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_kill::kill_child_workload",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MODELVAULT_KILL_CHILD", dir)
        .env("MODELVAULT_KILL_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The clock starts at spawn (so some kills land while the child is still
    // opening and recovering the store) or, when `from_first_ack`, at the
    // child's first acknowledged commit (so a slow start-up on a loaded
    // machine cannot starve the workload).
    let mut start = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    if from_first_ack {
        while lines.is_empty() && start.elapsed() < Duration::from_secs(20) {
            match rx.recv_timeout(Duration::from_millis(2)) {
                Ok(l) if l.starts_with("BLOB ") => lines.push(l),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        start = Instant::now();
    }
    while start.elapsed() < kill_after {
        match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(l) => lines.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    for l in lines {
        let f: Vec<&str> = l.split(' ').collect();
        match f.as_slice() {
            ["BLOB", id, h] => acked.blobs.push((id.parse().unwrap(), h.to_string())),
            ["VERSION", name, v, id] => {
                acked
                    .versions
                    .push((name.to_string(), v.parse().unwrap(), id.parse().unwrap()))
            }
            ["META", name, round] => {
                acked.meta.insert(name.to_string(), round.parse().unwrap());
            }
            _ => {} // test harness chatter, or a line cut by the kill
        }
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let points: u64 = std::env::var("MODELVAULT_KILL_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let mut acked = Acked::default();
    let mut x = 0x1234_5678u64;
    for i in 0..points {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Kill anywhere from right after start-up to well into the workload;
        // one kill in four is timed from the spawn, the others from the
        // first acknowledged commit.
        let kill_after = Duration::from_millis(5 + (x >> 33) % 250);
        run_once(&dir, i + 1, kill_after, i % 4 != 0, &mut acked);
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("kill {i}: reopen failed: {e}"));
        // Every acknowledged blob reads back with the acknowledged hash
        // (check the newest few each time, and everything at the end).
        let check_from = if i + 1 == points {
            0
        } else {
            acked.blobs.len().saturating_sub(3)
        };
        for (id, h) in &acked.blobs[check_from..] {
            let mut r = store
                .blob_reader(id)
                .unwrap_or_else(|e| panic!("kill {i}: acked blob {id} lost: {e}"));
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            assert_eq!(&blake3::hash(&data).to_string(), h, "kill {i}: blob {id}");
        }
        for (name, v, id) in &acked.versions {
            let got = store
                .version(name, Some(*v))
                .unwrap_or_else(|e| panic!("kill {i}: acked {name}@{v} lost: {e}"));
            assert_eq!(got.files[0].blob, *id, "kill {i}: {name}@{v}");
        }
        for (name, round) in &acked.meta {
            let m = store.model_by_name(name).unwrap().info().unwrap();
            // A later, unacknowledged update may have landed too; never an older one.
            match m.metadata.get("round") {
                Some(modelvault::query::Value::Int(r)) => {
                    assert!(r >= round, "kill {i}: {name} round {r} < acked {round}")
                }
                other => panic!("kill {i}: {name} metadata lost: {other:?}"),
            }
        }
        // Every kill re-reads one twentieth of the chunks (a rotating
        // subset), so every 20 kills cover the whole store; the last kill
        // re-reads everything.
        let opts = if i + 1 == points {
            VerifyOptions::new().read_data(true)
        } else {
            VerifyOptions::new()
                .read_data(true)
                .subset(i % 20 + 1, 20)
                .unwrap()
        };
        let report = store.verify(opts).unwrap();
        assert!(report.is_clean(), "kill {i}: verify: {:?}", report.problems);
    }
    assert!(
        acked.blobs.len() as u64 > points / 2,
        "the workload barely ran: {} blobs acknowledged",
        acked.blobs.len()
    );
    eprintln!(
        "{points} kill points, {} blobs and {} versions acknowledged, all intact",
        acked.blobs.len(),
        acked.versions.len()
    );
}
