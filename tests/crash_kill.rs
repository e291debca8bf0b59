//! Kill tests: a child process (`examples/crash_child.rs`) works on a store
//! and reports each acknowledged operation on stdout; the test SIGKILLs it
//! and checks what survived.
//!
//! - `acknowledged_commits_survive_sigkill`: a random workload (streaming
//!   blobs, committing versions, registry updates, releasing blobs,
//!   collecting garbage with compaction) killed at a random moment, many
//!   times; after each kill the store reopens, every acknowledged commit is
//!   intact and readable, every blob whose release was acknowledged (and
//!   which nothing else held) is gone, and `verify --read-data` is clean (a
//!   rotating twentieth of the chunks after each kill, all of them after the
//!   last). `MODELVAULT_KILL_POINTS` sets the number of kills (default 200).
//! - `an_upload_killed_midway_resumes_to_the_same_blob`: one large upload
//!   killed after some of its segments were committed, continued by the
//!   next child with `Store::resume_upload` and killed again, then finished
//!   by the test: the same blob id and chunks as an uninterrupted upload.
//! - `sixteen_concurrent_committers_lose_no_acknowledged_commit`: 16
//!   threads of small registry commits at once (console lines, metadata,
//!   model creates, sharing WAL fsyncs through group commit) killed at
//!   varied moments; after each kill every acknowledged line, value and
//!   model is there.
//!
//! The child is the example `crash_child`, which `make test` builds first
//! (`cargo build --release --example crash_child`: `cargo test` builds
//! examples only as test harnesses); it runs from a copy made
//! at the start, so a concurrent rebuild replacing the binary cannot break
//! the run.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use modelvault::{BlobId, Error, Store, VerifyOptions};

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

/// The `crash_child` example, built next to this test binary
/// (`target/<profile>/examples/`), copied to `dir` so that a rebuild cannot
/// replace it under a running test.
fn child_exe(dir: &Path) -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let built = me
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("examples").join("crash_child"))
        .unwrap();
    assert!(
        built.is_file(),
        "{} is missing: the kill tests run it as their child process; build it with \
         `cargo build --release --example crash_child` (as `make test` does first: \
         `cargo test` builds examples only as test harnesses, under hashed names)",
        built.display()
    );
    let exe = dir.join("crash-child");
    std::fs::copy(&built, &exe).unwrap();
    exe
}

/// Spawns the child from `exe`, retrying while the copy is still busy
/// (ETXTBSY: another thread's fork may briefly hold the copy's write fd).
fn spawn_child(exe: &Path, args: &[&std::ffi::OsStr]) -> Child {
    let mut tries = 0;
    loop {
        let r = Command::new(exe)
            .args(args)
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

/// The child's stdout, line by line, on a channel (closed at its exit).
fn lines_of(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
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
    (rx, reader)
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
    let seed_arg = seed.to_string();
    let mut child = spawn_child(
        exe,
        &[
            "workload".as_ref(),
            dir.as_os_str(),
            seed_arg.as_ref(),
            releasable.as_os_str(),
        ],
    );
    let (rx, reader) = lines_of(&mut child);
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
            _ => {} // START, or a line cut by the kill
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
    let exe = child_exe(tmp.path());
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

/// Chunking of the upload test's stores: small chunks, so that a manifest
/// segment (1,024 chunks) is committed about every 4 MiB.
fn small_chunks() -> modelvault::CdcParams {
    modelvault::CdcParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    }
}

const UPLOAD_BYTES: usize = 24 << 20;

/// Runs one `crash_child upload` until it reports durable progress past
/// `durable`, then kills it a moment later (0 to 40 ms). Returns the
/// session it said it continued (`-` for a new upload), the offset it
/// resumed at, and the most durable progress it reported.
fn kill_upload(
    exe: &Path,
    dir: &Path,
    seed: u64,
    durable: u64,
    delay_ms: u64,
) -> (String, u64, u64) {
    let (seed_arg, size_arg) = (seed.to_string(), UPLOAD_BYTES.to_string());
    let mut child = spawn_child(
        exe,
        &[
            "upload".as_ref(),
            dir.as_os_str(),
            seed_arg.as_ref(),
            size_arg.as_ref(),
        ],
    );
    let (rx, reader) = lines_of(&mut child);
    let mut lines = Vec::new();
    let progressed = |l: &String| {
        l.strip_prefix("DURABLE ")
            .and_then(|r| r.split(' ').nth(1))
            .and_then(|b| b.parse::<u64>().ok())
            .is_some_and(|b| b > durable)
    };
    // A guard against a child that never gets there, not a timing check.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => {
                let done = progressed(&l);
                lines.push(l);
                if done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the upload child made no durable progress past {durable} ({e:?}): {lines:?}"
                );
            }
        }
    }
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut start = None;
    let mut reported = durable;
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        match f.as_slice() {
            ["START", session, from] => start = Some((session.to_string(), from.parse().unwrap())),
            // A number cut short by the kill only claims less.
            ["DURABLE", _, bytes] => reported = reported.max(bytes.parse().unwrap_or(0)),
            _ => {} // WAITING, or a line cut by the kill
        }
    }
    let (session, from) = start.unwrap_or_else(|| panic!("no START line: {lines:?}"));
    (session, from, reported)
}

#[test]
fn an_upload_killed_midway_resumes_to_the_same_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = child_exe(tmp.path());
    let seed = 5;
    let data = crate::common::weights(UPLOAD_BYTES, seed);
    // The reference: the same bytes uploaded in one go.
    let (want_id, want_record, want_stats) = {
        let store = Store::options()
            .chunking(small_chunks())
            .open(tmp.path().join("reference"))
            .unwrap();
        let id = crate::common::put(&store, &data);
        (id, store.blob_info(&id).unwrap().unwrap(), store.stats())
    };
    let dir = tmp.path().join("vault");
    drop(
        Store::options()
            .chunking(small_chunks())
            .open(&dir)
            .unwrap(),
    );

    // Three children, each killed after committing more of the upload: the
    // first starts it, the others continue the session the last one left.
    let mut durable = 0;
    let mut session: Option<u64> = None;
    let mut at_kills = Vec::new();
    for (kill, delay_ms) in [0u64, 25, 40].into_iter().enumerate() {
        let (continued, from, reported) = kill_upload(&exe, &dir, seed, durable, delay_ms);
        match session {
            None => assert_eq!((continued.as_str(), from), ("-", 0), "kill {kill}"),
            Some(id) => {
                assert_eq!(continued, id.to_string(), "kill {kill}: another session");
                assert_eq!(
                    from, durable,
                    "kill {kill}: resumed away from the session's end"
                );
            }
        }
        let store = Store::open(&dir).unwrap();
        let uploads = store.uploads().unwrap();
        assert_eq!(uploads.len(), 1, "kill {kill}: sessions {uploads:?}");
        let s = &uploads[0];
        assert!(
            s.durable_bytes >= reported && s.durable_bytes < UPLOAD_BYTES as u64,
            "kill {kill}: session at {} bytes, the child saw {reported} durable",
            s.durable_bytes
        );
        if let Some(id) = session {
            assert_eq!(s.id, id, "kill {kill}");
        }
        session = Some(s.id);
        durable = s.durable_bytes;
        at_kills.push(durable);
        let report = store.verify(VerifyOptions::new().read_data(true)).unwrap();
        assert!(report.is_clean(), "kill {kill}: {:?}", report.problems);
    }

    // The test finishes the upload from where the last child left it.
    let store = Store::open(&dir).unwrap();
    let sid = session.unwrap().to_string().parse().unwrap();
    let mut w = store.resume_upload(sid).unwrap();
    assert_eq!(w.len(), durable, "the resumed writer's durable prefix");
    w.write_all(&data[durable as usize..]).unwrap();
    let id = w.finish().unwrap();
    assert_eq!(id, want_id, "a resumed upload names another blob");
    let record = store.blob_info(&id).unwrap().unwrap();
    assert_eq!(
        (record.size, record.chunks),
        (want_record.size, want_record.chunks)
    );
    assert!(store.uploads().unwrap().is_empty());
    assert_eq!(crate::common::get(&store, &id), data);
    // The same chunks as the uninterrupted upload, and nothing else kept.
    let stats = store.stats();
    assert_eq!(
        (stats.chunks, stats.unique_bytes),
        (want_stats.chunks, want_stats.unique_bytes)
    );
    let report = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    eprintln!(
        "upload of {UPLOAD_BYTES} bytes killed with {at_kills:?} bytes durable, \
         resumed and finished: blob {id}, {} chunks, as uploaded in one go",
        record.chunks
    );
}

/// Runs the `committers` child with 16 threads until it has acknowledged
/// `acks` more operations, SIGKILLs it, and checks that every one of them
/// survived.
fn kill_committers(exe: &Path, dir: &Path, acks: usize) {
    let mut child = spawn_child(
        exe,
        &["committers".as_ref(), dir.as_os_str(), "16".as_ref()],
    );
    let (rx, reader) = lines_of(&mut child);
    let mut lines = Vec::new();
    // A guard against a child that never gets there, not a timing check.
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines.len() < acks {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => lines.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the committers child stopped after {} lines ({e:?}): {lines:?}",
                    lines.len()
                );
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());

    let store = Store::open(dir).unwrap();
    let mut exps: HashMap<String, modelvault::EntityId> = HashMap::new();
    let mut checked = 0;
    // EXP lines come before a thread's other lines.
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        // A line the kill cut short lacks its final " .".
        if f.last() != Some(&".") {
            continue;
        }
        match f.as_slice() {
            ["START"] => {}
            ["EXP", t, id, "."] => {
                let id: modelvault::EntityId = id.parse().unwrap();
                store.experiment(id).unwrap();
                exps.insert(t.to_string(), id);
            }
            ["LINE", t, seq, i, "."] => {
                let exp = store.experiment(exps[*t]).unwrap();
                let seq: u64 = seq.parse().unwrap();
                let got = exp.console(seq, 1).unwrap();
                assert!(
                    got.first()
                        .is_some_and(|c| c.seq == seq && c.text == format!("t{t} line {i}")),
                    "acknowledged console line {seq} of thread {t} is lost: {got:?}"
                );
            }
            ["META", t, i, "."] => {
                let info = store
                    .model_by_name(&format!("c{t}"))
                    .unwrap()
                    .info()
                    .unwrap();
                let i: i64 = i.parse().unwrap();
                // A later set may have been written too, never an earlier.
                match info.metadata.get("i") {
                    Some(modelvault::query::Value::Int(v)) if *v >= i => {}
                    other => panic!("acknowledged metadata i={i} of c{t} is lost: {other:?}"),
                }
            }
            ["MODEL", t, i, id, "."] => {
                let m = store.model(id.parse().unwrap()).unwrap();
                assert_eq!(m.info().unwrap().name, format!("n-{t}-{i}"));
            }
            other => panic!("unexpected line {other:?}"),
        }
        checked += 1;
    }
    assert!(
        checked >= acks / 2,
        "only {checked} complete lines of {}",
        lines.len()
    );
}

#[test]
fn sixteen_concurrent_committers_lose_no_acknowledged_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = child_exe(tmp.path());
    // One store per kill: each child starts its 16 threads afresh.
    for (k, acks) in [50, 400, 1500, 3000].into_iter().enumerate() {
        let dir = tmp.path().join(format!("vault-{k}"));
        Store::create(&dir).unwrap();
        kill_committers(&exe, &dir, acks);
    }
}
