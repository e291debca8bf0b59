//! Stores the real-weights corpus (../shared/corpus/fetch.sh) set by set,
//! versions in order, and prints per-set logical bytes, stored bytes and
//! MB/s; then restores the latest version of every set, checks it is
//! byte-identical, and re-ingests everything to time the dedup path.
//!
//! cargo run --release --example corpus [-- CORPUS_DIR [STORE_DIR]]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use modelvault::{NewModel, Store};

fn files_of(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".complete") {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                out.push((rel, p));
            }
        }
    }
    out.sort();
    out
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// Stores one version: every file streamed and staged, then one commit
/// (one pack fsync and one WAL fsync for the whole version).
///
/// Like `modelvault put`, each file is stored as deltas against its
/// counterpart in the model's previous version, if any
/// (`ModelVersion::delta_bases`); `MODELVAULT_NO_DELTA=1` stores every file
/// whole.
fn store_version(store: &Store, name: &str, dir: &Path) -> (u64, f64) {
    let t = Instant::now();
    let model = match store.model_by_name(name) {
        Ok(m) => m,
        Err(_) => store.create_model(NewModel::new(name)).unwrap(),
    };
    let files = files_of(dir);
    let sized: Vec<(&str, u64)> = files
        .iter()
        .map(|(rel, p)| (rel.as_str(), std::fs::metadata(p).unwrap().len()))
        .collect();
    let bases = match model.version(None) {
        Ok(prev) if std::env::var_os("MODELVAULT_NO_DELTA").is_none() => prev.delta_bases(&sized),
        _ => vec![None; files.len()],
    };
    let mut staged = Vec::new();
    let mut bytes = 0;
    for ((rel, p), base) in files.iter().zip(bases) {
        let mut w = store.blob_writer();
        if let Some(b) = base {
            w = w.delta_base(&b).unwrap();
        }
        bytes += std::io::copy(&mut File::open(p).unwrap(), &mut w).unwrap();
        staged.push((rel.clone(), w.stage().unwrap()));
    }
    model.add_version_staged(staged, None).unwrap();
    (bytes, t.elapsed().as_secs_f64())
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let corpus = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("MODELVAULT_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/modelvault-corpus")
            })
    });
    let tmp;
    let store_dir = match args.get(2) {
        Some(p) => PathBuf::from(p),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().join("vault")
        }
    };
    assert!(
        corpus.is_dir(),
        "no corpus at {} (run ../shared/corpus/fetch.sh)",
        corpus.display()
    );
    // MODELVAULT_CDC=min,avg,max (bytes) and MODELVAULT_ZSTD=level try other settings.
    let mut opts = Store::options();
    if let Ok(v) = std::env::var("MODELVAULT_CDC") {
        let n: Vec<usize> = v
            .split(',')
            .map(|x| x.trim().parse().expect("MODELVAULT_CDC=min,avg,max"))
            .collect();
        opts = opts.chunking(modelvault::CdcParams {
            min: n[0],
            avg: n[1],
            max: n[2],
        });
    }
    if let Ok(v) = std::env::var("MODELVAULT_ZSTD") {
        opts = opts.zstd_level(v.parse().expect("MODELVAULT_ZSTD=level"));
    }
    let store = opts.open(&store_dir).unwrap();

    let mut sets: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in std::fs::read_dir(&corpus).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let mut versions: Vec<PathBuf> = std::fs::read_dir(&p)
                .unwrap()
                .map(|v| v.unwrap().path())
                .filter(|v| v.is_dir())
                .collect();
            versions.sort();
            sets.insert(
                p.file_name().unwrap().to_str().unwrap().to_string(),
                versions,
            );
        }
    }

    println!(
        "{:<20} {:<8} {:>12} {:>12} {:>7} {:>9}",
        "set", "version", "logical", "stored+", "ratio", "MB/s"
    );
    let (mut total_logical, mut total_secs) = (0u64, 0f64);
    let mut per_set = Vec::new();
    for (set, versions) in &sets {
        let set_before = store.stats().stored_bytes;
        let mut set_logical = 0;
        for v in versions {
            let before = store.stats().stored_bytes;
            let (bytes, secs) = store_version(&store, set, v);
            let added = store.stats().stored_bytes - before;
            println!(
                "{:<20} {:<8} {:>12} {:>12} {:>7.3} {:>9.1}",
                set,
                v.file_name().unwrap().to_str().unwrap(),
                bytes,
                added,
                added as f64 / bytes as f64,
                mbps(bytes, secs)
            );
            total_logical += bytes;
            set_logical += bytes;
            total_secs += secs;
        }
        let set_stored = store.stats().stored_bytes - set_before;
        per_set.push((set.clone(), set_logical, set_stored));
    }
    println!();
    println!(
        "{:<20} {:>12} {:>12} {:>7}",
        "set (all versions)", "logical", "stored", "ratio"
    );
    for (set, l, s) in &per_set {
        println!(
            "{:<20} {:>12} {:>12} {:>7.3}",
            set,
            l,
            s,
            *s as f64 / *l as f64
        );
    }
    let s = store.stats();
    drop(store);
    let on_disk = dir_size(&store_dir);
    println!();
    println!("corpus bytes        {total_logical}");
    println!(
        "pack bytes          {} ({:.4} of corpus)",
        s.stored_bytes,
        s.stored_bytes as f64 / total_logical as f64
    );
    println!(
        "store dir bytes     {on_disk} ({:.4} of corpus)",
        on_disk as f64 / total_logical as f64
    );
    println!(
        "ingest (new data)   {:.1} MB/s over {:.2} s (one commit per version)",
        mbps(total_logical, total_secs),
        total_secs
    );

    let store = Store::open(&store_dir).unwrap();
    // Restore the latest version of every set and compare with the source.
    let (mut rbytes, mut rsecs) = (0u64, 0f64);
    let mut buf = vec![0u8; 1 << 20];
    for (set, versions) in &sets {
        let v = store.version(set, None).unwrap();
        let src = versions.last().unwrap();
        for f in &v.files {
            let expect = blake3::hash(&std::fs::read(src.join(&f.path)).unwrap());
            let t = Instant::now();
            let mut r = store.blob_reader(&f.blob).unwrap();
            let mut h = blake3::Hasher::new();
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            rsecs += t.elapsed().as_secs_f64();
            rbytes += f.size;
            assert_eq!(
                h.finalize(),
                expect,
                "{set}/{} differs after restore",
                f.path
            );
        }
    }
    println!(
        "restore (latest)    {:.1} MB/s over {:.2} s, all byte-identical",
        mbps(rbytes, rsecs),
        rsecs
    );

    // Re-ingest everything: every chunk is already stored.
    let mut again = 0;
    let t = Instant::now();
    for (set, versions) in &sets {
        for v in versions {
            again += store_version(&store, &format!("{set}-again"), v).0;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let after = store.stats();
    println!(
        "re-ingest (stored)  {:.1} MB/s over {:.2} s, added {} pack bytes",
        mbps(again, secs),
        secs,
        after.stored_bytes - s.stored_bytes
    );
}
