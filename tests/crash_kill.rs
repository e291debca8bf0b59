//! Kill test: a child process runs a random workload (streaming blobs,
//! committing versions, registry updates, releasing blobs, collecting
//! garbage with compaction) and reports each acknowledged commit on stdout;
//! the parent SIGKILLs it at a random moment, reopens the store and checks
//! that every acknowledged commit is intact and readable, that every blob
//! whose release was acknowledged (and which nothing else held) is gone,
//! and that `verify --read-data` is clean (a rotating twentieth of the
//! chunks after each kill, all of them after the last).
//!
//! The child runs from a copy of the test executable made at the start, so
//! a concurrent rebuild replacing the binary cannot break the run.
//!
//! `MODELVAULT_KILL_POINTS` sets the number of kills (default 200).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use modelvault::{BlobId, Error, FileEntry, GcOptions, Store, VerifyOptions};

/// A blob of at least this many fresh random bytes is unique: no other
/// upload, in this run or another, stores the same content.
const UNIQUE_MIN: usize = 64;

/// The child's side: runs until killed. Only active when the parent sets
/// `MODELVAULT_KILL_CHILD` to a store path.
///
/// Lines it prints, each after the operation returned:
/// - `BLOB id hash`, or `BLOB id hash FREE` for a blob of unique content
///   that no version will refer to (so its one hold is all that keeps it);
/// - `VERSION name v id`, `META name stamp`;
/// - `RELEASING id` before and `RELEASED id` after releasing a FREE blob
///   (one of this run's, or one listed in `MODELVAULT_KILL_RELEASABLE`);
/// - `GC compacted deleted` after a collection (packs compacted, packs
///   deleted); `ERROR what` if a release or gc failed.
#[test]
fn kill_child_workload() {
    let Some(dir) = std::env::var_os("MODELVAULT_KILL_CHILD") else {
        return;
    };
    let seed: u64 = std::env::var("MODELVAULT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut free: Vec<BlobId> = std::env::var_os("MODELVAULT_KILL_RELEASABLE")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    // Small packs, so that releases leave packs mostly dead and collections
    // compact them.
    let store = Store::options().pack_size(4 << 20).open(&dir).unwrap();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let shared = crate::common::weights(1 << 20, 77);
    let out = std::io::stdout();
    // The harness may have printed a partial line ("test ... "): end it,
    // so the first acknowledgement is a line of its own.
    writeln!(out.lock(), "\nSTART").unwrap();
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
            1 => crate::common::noise(n, rnd()),
            _ => {
                let mut d = shared.clone();
                d.extend_from_slice(&crate::common::weights(n, rnd()));
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
            data = crate::blob_delta::nudge_f32(old_data, rnd());
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

#[derive(Default)]
struct Acked {
    blobs: Vec<(BlobId, String)>,
    hashes: HashMap<BlobId, String>,
    versions: Vec<(String, u32, BlobId)>,
    meta: HashMap<String, i64>,
    /// FREE blobs still held (their release was never started).
    free: BTreeSet<BlobId>,
    /// Acknowledged FREE ids seen twice: not unique after all, never released.
    seen_free: HashSet<BlobId>,
    /// FREE blobs whose release started but was not acknowledged before the
    /// kill: held or gone, decided at the next reopen.
    releasing: Vec<BlobId>,
    /// FREE blobs whose release was acknowledged: gone for good.
    released: HashSet<BlobId>,
    releases_acked: u64,
    releases_unacked: u64,
    gcs: u64,
    packs_compacted: u64,
    packs_deleted: u64,
    /// Reverse deltas acknowledged, and the chunks they re-encoded.
    reverses: u64,
    rebased: u64,
}

impl Acked {
    fn is_released(&self, id: &BlobId) -> bool {
        self.released.contains(id)
    }
}

/// Spawns the child from `exe`, retrying while the copy is still busy
/// (ETXTBSY: another thread's fork may briefly hold the copy's write fd).
fn spawn_child(exe: &Path, dir: &Path, seed: u64, releasable: &Path) -> Child {
    let mut tries = 0;
    loop {
        let r = Command::new(exe)
            .args([
                "--exact",
                "crash_kill::kill_child_workload",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MODELVAULT_KILL_CHILD", dir)
            .env("MODELVAULT_KILL_SEED", seed.to_string())
            .env("MODELVAULT_KILL_RELEASABLE", releasable)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        match r {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawning {}: {e}", exe.display()),
        }
    }
}

fn run_once(
    exe: &Path,
    dir: &Path,
    seed: u64,
    kill_after: Duration,
    from_first_ack: bool,
    acked: &mut Acked,
) {
    let releasable = dir.with_file_name("releasable.txt");
    let list: String = acked.free.iter().map(|id| format!("{id}\n")).collect();
    std::fs::write(&releasable, list).unwrap();
    let mut child = spawn_child(exe, dir, seed, &releasable);
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
        // Every line is kept: dropping any (a release, say) would lose an
        // acknowledgement.
        while !lines.iter().any(|l| l.starts_with("BLOB "))
            && start.elapsed() < Duration::from_secs(20)
        {
            match rx.recv_timeout(Duration::from_millis(2)) {
                Ok(l) => lines.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
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
            ["BLOB", id, h, rest @ ..] => {
                let id: BlobId = id.parse().unwrap();
                acked.blobs.push((id, h.to_string()));
                acked.hashes.insert(id, h.to_string());
                if rest == ["FREE"] {
                    if !acked.seen_free.insert(id) {
                        // Not unique after all: never counted as releasable.
                        acked.free.remove(&id);
                    } else {
                        acked.free.insert(id);
                    }
                }
            }
            ["VERSION", name, v, id] => {
                acked
                    .versions
                    .push((name.to_string(), v.parse().unwrap(), id.parse().unwrap()))
            }
            ["META", name, round] => {
                acked.meta.insert(name.to_string(), round.parse().unwrap());
            }
            ["RELEASING", id] => {
                let id: BlobId = id.parse().unwrap();
                assert!(
                    acked.free.remove(&id),
                    "child released {id}, not releasable"
                );
                acked.releasing.push(id);
            }
            ["RELEASED", id] => {
                let id: BlobId = id.parse().unwrap();
                let p = acked.releasing.iter().position(|x| *x == id).unwrap();
                acked.releasing.swap_remove(p);
                acked.released.insert(id);
                acked.releases_acked += 1;
            }
            ["REVERSED", _, _, rebased] => {
                acked.reverses += 1;
                acked.rebased += rebased.parse::<u64>().unwrap();
            }
            ["GC", compacted, deleted] => {
                acked.gcs += 1;
                acked.packs_compacted += compacted.parse::<u64>().unwrap();
                acked.packs_deleted += deleted.parse::<u64>().unwrap();
            }
            ["ERROR", ..] => panic!("child (seed {seed}): {l}"),
            _ => {} // test harness chatter, or a line cut by the kill
        }
    }
}

fn read_blob(store: &Store, id: &BlobId) -> modelvault::Result<Vec<u8>> {
    let mut data = Vec::new();
    store
        .blob_reader(id)?
        .read_to_end(&mut data)
        .map_err(|e| Error::io("<blob read>", e))?;
    Ok(data)
}

fn check_intact(store: &Store, i: u64, id: &BlobId, h: &str) {
    let data =
        read_blob(store, id).unwrap_or_else(|e| panic!("kill {i}: acked blob {id} lost: {e}"));
    assert_eq!(&blake3::hash(&data).to_string(), h, "kill {i}: blob {id}");
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let points: u64 = std::env::var("MODELVAULT_KILL_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // The child runs from a private copy of this executable: a rebuild that
    // replaces the original mid-run cannot break (or change) the children.
    let exe = tmp.path().join("kill-test-child");
    std::fs::copy("/proc/self/exe", &exe).unwrap();
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
        run_once(&exe, &dir, i + 1, kill_after, i % 4 != 0, &mut acked);
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("kill {i}: reopen failed: {e}"));
        let last = i + 1 == points;
        // A release cut by the kill either committed (the blob is gone) or
        // not (it is intact and may be released again).
        for id in std::mem::take(&mut acked.releasing) {
            acked.releases_unacked += 1;
            if store.contains_blob(&id).unwrap() {
                check_intact(&store, i, &id, &acked.hashes[&id]);
                acked.free.insert(id);
            } else {
                acked.released.insert(id);
            }
        }
        // Every acknowledged blob not released reads back with the
        // acknowledged hash (the newest few and a few releasable ones each
        // time, everything at the end).
        let check_from = if last {
            0
        } else {
            acked.blobs.len().saturating_sub(3)
        };
        for (id, h) in &acked.blobs[check_from..] {
            if !acked.is_released(id) {
                check_intact(&store, i, id, h);
            }
        }
        let n_free = acked.free.len();
        for (k, id) in acked.free.iter().enumerate() {
            if k % n_free.div_ceil(4).max(1) == (i as usize) % n_free.div_ceil(4).max(1) {
                check_intact(&store, i, id, &acked.hashes[id]);
            }
        }
        // Every blob whose release was acknowledged is gone: its one hold
        // was all that kept it.
        for id in &acked.released {
            assert!(
                !store.contains_blob(id).unwrap(),
                "kill {i}: released blob {id} still stored"
            );
            assert!(
                matches!(store.blob_reader(id), Err(Error::NotFound { .. })),
                "kill {i}: released blob {id} still readable"
            );
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
        let opts = if last {
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
    let blobs = acked.blobs.len() as u64;
    assert!(
        blobs > points / 2,
        "the workload barely ran: {blobs} blobs acknowledged"
    );
    assert!(
        acked.releases_acked > 0 && acked.gcs > 0 && acked.rebased > 0,
        "no release, gc or reverse delta acknowledged: {} releases, {} collections, \
         {} chunks re-encoded",
        acked.releases_acked,
        acked.gcs,
        acked.rebased
    );
    eprintln!(
        "{points} kill points in {:.1?}: {blobs} blobs and {} versions acknowledged, all intact; \
         {} releases acknowledged and gone, {} cut by the kill ({} of those gone), \
         {} collections acknowledged ({} packs compacted, {} deleted), \
         {} reverse deltas ({} chunks re-encoded)",
        started.elapsed(),
        acked.versions.len(),
        acked.releases_acked,
        acked.releases_unacked,
        acked.released.len() as u64 - acked.releases_acked,
        acked.gcs,
        acked.packs_compacted,
        acked.packs_deleted,
        acked.reverses,
        acked.rebased
    );
}
