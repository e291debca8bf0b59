//! `Store::open_read_only`: a reader beside the writer that holds the store
//! (here a second handle in this process; `reader_beside_writer_process`
//! runs the writer in a child process).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use modelvault::{Error, FileEntry, GcOptions, NewExperiment, NewModel, Store, Stream};

use crate::common::{get, noise, put};

/// Every file under `dir` with its size (directories as `/`-ended names).
fn listing(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let name = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.insert(format!("{name}/"), 0);
                walk(root, &p, out);
            } else {
                out.insert(name, md.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_read_only<T>(r: modelvault::Result<T>, op: &str) {
    match r {
        Err(Error::ReadOnly { what }) => {
            assert!(!what.is_empty(), "{op}: no operation named");
        }
        Err(e) => panic!("{op} on a read-only store: {e}"),
        Ok(_) => panic!("{op} on a read-only store succeeded"),
    }
}

/// Polls `f` until it returns `Some`, for at most two minutes (only so a
/// broken build fails instead of hanging: nothing is asserted about time).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn read_only_open_beside_a_writer_sees_commits_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let writer = Store::create(&dir).unwrap();
    let a = noise(300_000, 1);
    let blob_a = put(&writer, &a);
    let exp = writer
        .create_experiment(NewExperiment::new("proj", "run"))
        .unwrap();
    exp.set_progress(10).unwrap();
    exp.log(Stream::Stdout, "epoch 1").unwrap();

    // The writer holds the lock: a normal open is refused...
    assert!(matches!(Store::open(&dir), Err(Error::Locked { .. })));
    // ...a read-only one (from another thread) is not, and sees what was
    // committed before it.
    let reader = {
        let dir = dir.clone();
        std::thread::spawn(move || Store::open_read_only(dir).unwrap())
            .join()
            .unwrap()
    };
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.id(), writer.id());
    assert_eq!(get(&reader, &blob_a), a);
    let seen = reader.experiment(exp.id()).unwrap();
    assert_eq!(seen.progress().unwrap(), 10);
    assert_eq!(seen.console(0, 10).unwrap()[0].text, "epoch 1");
    assert_eq!(reader.stats().blobs, 1);

    // Every write is refused and changes nothing in the store directory.
    let before = listing(&dir);
    assert_read_only(reader.put_blob(&b"more"[..]), "put_blob");
    {
        use std::io::Write;
        let mut w = reader.blob_writer();
        let e = w.write_all(&noise(5 << 20, 2)).unwrap_err();
        let inner = e.into_inner().unwrap().downcast::<Error>().unwrap();
        assert!(matches!(*inner, Error::ReadOnly { .. }), "{inner}");
        assert_read_only(w.finish(), "blob writer finish");
    }
    assert_read_only(reader.blob_writer().finish(), "empty blob");
    assert_read_only(
        reader.create_experiment(NewExperiment::new("proj", "other")),
        "create_experiment",
    );
    assert_read_only(seen.set_progress(90), "set_progress");
    assert_read_only(seen.log(Stream::Stdout, "x"), "log");
    assert_read_only(reader.create_model(NewModel::new("m")), "create_model");
    assert_read_only(
        reader.commit_version(
            "m",
            vec![FileEntry {
                path: "a.bin".into(),
                blob: blob_a,
                size: a.len() as u64,
            }],
        ),
        "commit_version",
    );
    assert_read_only(reader.release_blob(&blob_a), "release_blob");
    assert_read_only(
        reader.gc(&GcOptions::new().compact_below(1.0).compact_metadata(true)),
        "gc",
    );
    assert_read_only(reader.objects().create_bucket("bucket"), "create_bucket");
    assert_read_only(reader.rebuild_index(), "rebuild_index");
    reader.sync().unwrap();
    assert_eq!(
        listing(&dir),
        before,
        "a read-only store changed its directory"
    );
    // The writer is unaffected.
    assert_eq!(get(&writer, &blob_a), a);

    // New commits: seen after `catch_up`.
    let b = noise(400_000, 3);
    let blob_b = put(&writer, &b);
    exp.set_progress(50).unwrap();
    reader.catch_up().unwrap();
    assert_eq!(seen.progress().unwrap(), 50);
    assert_eq!(get(&reader, &blob_b), b);
    assert_eq!(reader.stats().blobs, 2);
    // And, without asking, by itself within its catch-up interval.
    exp.set_progress(60).unwrap();
    eventually("progress 60", || {
        (seen.progress().unwrap() == 60).then_some(())
    });
}

/// Records the writer's compaction moves (and whose pack it deletes) read
/// back the same through a reader opened before the move.
#[test]
fn a_reader_reads_across_the_writers_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let writer = Store::options().pack_size(1 << 20).open(&dir).unwrap();
    let x = noise(1_200_000, 10);
    let y = noise(1_200_000, 11);
    let blob_x = put(&writer, &x);
    let blob_y = put(&writer, &y);
    let reader = Store::open_read_only(&dir).unwrap();
    let mut early = reader.blob_reader(&blob_x).unwrap();
    assert_eq!(get(&reader, &blob_y), y);
    let packs_before = listing(&dir.join("packs"));
    writer.release_blob(&blob_y).unwrap();
    let report = writer.gc(&GcOptions::new().compact_below(0.9)).unwrap();
    assert!(report.packs_compacted > 0, "{report:?}");
    let packs_after = listing(&dir.join("packs"));
    assert!(
        packs_before.keys().any(|p| !packs_after.contains_key(p)),
        "compaction deleted no pack: {packs_before:?} -> {packs_after:?}"
    );
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut early, &mut out).unwrap();
    assert!(
        out == x,
        "a reader opened before the compaction read other bytes"
    );
    assert_eq!(get(&reader, &blob_x), x);
    reader.catch_up().unwrap();
    assert_eq!(get(&reader, &blob_x), x);
    assert!(reader.blob_info(&blob_y).unwrap().is_none());
}

#[test]
fn read_only_open_of_no_store_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nothing");
    assert!(matches!(
        Store::open_read_only(&dir),
        Err(Error::NotAStore { .. })
    ));
    assert!(!dir.exists());
    std::fs::create_dir(&dir).unwrap();
    assert!(matches!(
        Store::open_read_only(&dir),
        Err(Error::NotAStore { .. })
    ));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// The CLI's read commands work beside a writer process (here this test
/// process holds the store), read-only, saying so on stderr; its write
/// commands are still refused with the lock's holder.
#[test]
fn cli_read_commands_fall_back_to_read_only_beside_a_writer() {
    use crate::cli::{mv, ok};
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("w.bin");
    std::fs::write(&src, noise(200_000, 5)).unwrap();
    ok(&mv(&repo, &["put", "--name", "m", src.to_str().unwrap()]));
    let writer = Store::open(&repo).unwrap();
    let exp = writer
        .create_experiment(NewExperiment::new("proj", "run"))
        .unwrap();
    exp.set_progress(42).unwrap();
    let id = exp.id().to_string();

    let o = mv(&repo, &["experiment", "progress", &id]);
    assert_eq!(ok(&o).trim(), "42");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(
        err.contains("read-only: the store is held by pid"),
        "stderr: {err}"
    );
    let o = mv(&repo, &["cat", "m", "w.bin"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout == noise(200_000, 5), "cat read other bytes");
    for args in [
        &["show", "m"][..],
        &["list"],
        &["versions", "m"],
        &["stats"],
        &["verify"],
        &["experiment", "show", &id],
        &["experiment", "console", &id],
        &["model", "show", "m"],
        &["model", "list"],
    ] {
        ok(&mv(&repo, args));
    }
    // Writes still need the lock.
    let o = mv(&repo, &["experiment", "progress", &id, "50"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("locked"));
    assert_eq!(exp.progress().unwrap(), 42);
    drop((exp, writer));
    // Without a writer: the normal open, nothing said.
    let o = mv(&repo, &["experiment", "progress", &id]);
    assert_eq!(ok(&o).trim(), "42");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The file of version `step + 1` that `examples/readonly_writer.rs` commits.
fn writer_content(seed: u64, step: u64) -> Vec<u8> {
    noise((2 << 20) + (step as usize) * 4099, seed * 1000 + step)
}

/// A writer process (`examples/readonly_writer.rs`, built next to this test
/// binary by `make test`) works on the store: an experiment's progress from
/// 0 to 100, console lines, a model version of a few MB per step, and a gc
/// with compaction after each. This process watches it read-only: progress
/// never goes backwards, every version it sees reads back byte-identical,
/// and it sees 100 and every version at the end.
#[test]
fn reader_beside_writer_process() {
    const SEED: u64 = 4;
    const STEPS: u64 = 12;
    let built = crate::common::built_example("readonly_writer");
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("readonly-writer");
    std::fs::copy(&built, &exe).unwrap();
    let dir = tmp.path().join("vault");
    let mut child = std::process::Command::new(&exe)
        .arg(&dir)
        .arg(SEED.to_string())
        .arg(STEPS.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    // Kills the writer if the test fails half way.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Kill(child);
    let out = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .collect::<Vec<String>>()
    });

    // The store exists once the writer has created it (and the experiment).
    let reader = eventually("the writer's store", || {
        Store::open_read_only(&dir)
            .ok()
            .filter(|s| s.experiment_by_name("proj", "run").is_ok())
    });
    let exp = reader.experiment_by_name("proj", "run").unwrap();
    let mut last_progress = 0u8;
    let mut verified = std::collections::BTreeSet::new();
    let mut polls = 0u64;
    let mut check = |reader: &Store, verified: &mut std::collections::BTreeSet<u32>| {
        let p = exp.progress().unwrap();
        assert!(
            p >= last_progress,
            "progress went back: {last_progress} -> {p}"
        );
        last_progress = p;
        let versions = match reader.versions("m") {
            Ok(v) => v,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => panic!("versions: {e}"),
        };
        for v in versions {
            if verified.contains(&v) {
                continue;
            }
            let mv = reader.version("m", Some(v)).unwrap();
            let f = mv.file("w.bin").unwrap();
            let got = get(reader, &f.blob);
            assert!(
                got == writer_content(SEED, u64::from(v) - 1),
                "version {v} read back other bytes"
            );
            verified.insert(v);
        }
        p
    };
    loop {
        polls += 1;
        if polls.is_multiple_of(3) {
            reader.catch_up().unwrap();
        }
        check(&reader, &mut verified);
        let exited = child.0.try_wait().unwrap();
        if let Some(status) = exited {
            assert!(status.success(), "the writer failed: {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let lines = out.join().unwrap();
    assert_eq!(lines.last().map(String::as_str), Some("DONE"), "{lines:?}");
    let compacted: u64 = lines
        .iter()
        .filter_map(|l| l.strip_prefix("STEP "))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(compacted > 0, "the writer compacted no pack: {lines:?}");
    // The end, as the writer left it.
    reader.catch_up().unwrap();
    let p = check(&reader, &mut verified);
    assert_eq!(p, 100);
    assert_eq!(verified.len() as u64, STEPS + 1, "{verified:?}");
    let console = exp.console(0, 100).unwrap();
    assert_eq!(console.len() as u64, STEPS + 1);
    assert_eq!(console.last().unwrap().text, format!("step {STEPS}"));
    eprintln!("{polls} polls, {} versions verified", verified.len());
}
