//! Does weight-aware cutting pay? Chunks every file of the corpus (and of the
//! synthetic checkpoints, when present) with
//!
//! * (a) plain CDC + `codec::encode` (the store today),
//! * (b) the weight-aware `Cutter` + `codec::encode_hinted`,
//! * (c) the weight-aware `Cutter` + `codec::encode` (cuts alone),
//! * (d) the `Cutter` cutting at every boundary (no minimum region) +
//!   `encode_hinted`,
//! * (e) the weight-aware `Cutter` + trial compression for width hints: planes
//!   of the hinted width and plain zstd, the smaller kept (raw unless it saves
//!   `min_saving`); `encode_hinted` for the other hints,
//!
//! dedups chunks by blake3 across each corpus in version order (one set of
//! chunk ids per method and corpus, as the store does), encodes only new
//! chunks, and prints per set and in total: unique raw bytes, encoded bytes,
//! an estimate of pack bytes (encoded + a 52-byte record header per unique
//! chunk), chunk counts, and single-thread MB/s (cut + hash + dedup + encode;
//! file reads excluded) and cut-only MB/s.
//!
//! ```text
//! cargo run --release --example cutter_eval [-- CORPUS_DIR [EXTRA_DIR...]]
//! ```
//!
//! Defaults: `$MODELVAULT_CORPUS` or `~/.cache/modelvault-corpus`, plus
//! `/tmp/modelvault-synth` and `/tmp/synth` when they exist. Each directory
//! holds `<set>/<version>/<files>`; versions are taken in sorted order.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use modelvault::internals::chunking::{CdcParams, Chunker, Cut, Cutter, PlaneHint};
use modelvault::internals::codec::{self, Codec, EncodeOptions};

/// Pack record header per stored chunk (docs/FORMAT.md).
const RECORD_HEADER: u64 = 52;
/// borg 1.2.4 on this corpus (docs/BENCHMARKS.md, `make bench-peers`).
const BORG_BYTES: f64 = 543_946_335.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    CdcEstimate,
    AwareHinted,
    AwareEstimate,
    AwareAllHinted,
    AwareTrial,
}

const METHODS: [Method; 5] = [
    Method::CdcEstimate,
    Method::AwareHinted,
    Method::AwareEstimate,
    Method::AwareAllHinted,
    Method::AwareTrial,
];

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::CdcEstimate => "a cdc+encode",
            Method::AwareHinted => "b aware+hinted",
            Method::AwareEstimate => "c aware+encode",
            Method::AwareAllHinted => "d aware0+hinted",
            Method::AwareTrial => "e aware+trial",
        }
    }

    fn cutter(self, p: CdcParams) -> Cutter {
        match self {
            Method::CdcEstimate => Cutter::plain(p),
            Method::AwareHinted | Method::AwareEstimate | Method::AwareTrial => Cutter::new(p),
            Method::AwareAllHinted => Cutter::new(p).with_min_region(0),
        }
    }

    fn hinted(self) -> bool {
        matches!(
            self,
            Method::AwareHinted | Method::AwareAllHinted | Method::AwareTrial
        )
    }
}

#[derive(Clone, Default)]
struct Tally {
    logical: u64,
    unique_raw: u64,
    encoded: u64,
    chunks: u64,
    unique_chunks: u64,
    secs: f64,
    cut_secs: f64,
    /// raw, zstd, planes2, planes4 (unique chunks).
    codecs: [u64; 4],
    /// Unique chunks per hint: estimate, width 2, width 4, flat.
    hints: [u64; 4],
    /// Files cut as containers.
    aware_files: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.logical += o.logical;
        self.unique_raw += o.unique_raw;
        self.encoded += o.encoded;
        self.chunks += o.chunks;
        self.unique_chunks += o.unique_chunks;
        self.secs += o.secs;
        self.cut_secs += o.cut_secs;
        self.aware_files += o.aware_files;
        for i in 0..4 {
            self.codecs[i] += o.codecs[i];
            self.hints[i] += o.hints[i];
        }
    }

    fn pack(&self) -> u64 {
        self.encoded + RECORD_HEADER * self.unique_chunks
    }
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Files under `dir`, recursively, sorted, without `.complete` markers.
fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".complete") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `<set>/<version>/<files>`: sets sorted by name, versions sorted; files
/// directly in a set directory form one version of their own, first.
fn sets_of(root: &Path) -> BTreeMap<String, Vec<Vec<PathBuf>>> {
    let mut sets = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return sets;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let mut loose = Vec::new();
        let mut versions: Vec<PathBuf> = Vec::new();
        for v in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let vp = v.path();
            if vp.is_dir() {
                versions.push(vp);
            } else if vp.file_name().is_some_and(|n| n != ".complete") {
                loose.push(vp);
            }
        }
        versions.sort();
        loose.sort();
        let mut list = Vec::new();
        if !loose.is_empty() {
            list.push(loose);
        }
        list.extend(versions.iter().map(|v| files_of(v)));
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        sets.insert(name, list);
    }
    sets
}

/// Chunks and encodes one file with one method, adding new chunks to `seen`.
fn run_file(
    m: Method,
    p: CdcParams,
    opts: &EncodeOptions,
    data: &[u8],
    seen: &mut HashSet<blake3::Hash>,
    out: &mut Vec<u8>,
) -> Tally {
    let mut t = Tally {
        logical: data.len() as u64,
        ..Tally::default()
    };
    let start = Instant::now();
    let cuts: Vec<Cut> = if m == Method::CdcEstimate {
        // Exactly what the store does today.
        Chunker::new(p)
            .cuts(data)
            .into_iter()
            .map(|len| Cut {
                len,
                hint: PlaneHint::Estimate,
            })
            .collect()
    } else {
        let mut c = m.cutter(p);
        let cuts = c.cuts(data);
        t.aware_files += u64::from(c.format().is_some());
        cuts
    };
    t.cut_secs = start.elapsed().as_secs_f64();
    let mut off = 0;
    for cut in cuts {
        let chunk = &data[off..off + cut.len];
        off += cut.len;
        t.chunks += 1;
        if !seen.insert(blake3::hash(chunk)) {
            continue;
        }
        let codec = match (m, cut.hint) {
            (Method::AwareTrial, PlaneHint::Width(w @ (2 | 4))) => trial(chunk, w, opts, out),
            _ if m.hinted() => codec::encode_hinted(chunk, cut.hint, opts, out),
            _ => codec::encode(chunk, opts, out),
        };
        t.unique_chunks += 1;
        t.unique_raw += chunk.len() as u64;
        t.encoded += out.len() as u64;
        t.codecs[match codec {
            Codec::Raw => 0,
            Codec::Zstd => 1,
            Codec::Planes { width: 2 } => 2,
            _ => 3,
        }] += 1;
        t.hints[match cut.hint {
            PlaneHint::Estimate => 0,
            PlaneHint::Width(2) => 1,
            PlaneHint::Width(_) => 2,
            PlaneHint::Flat => 3,
        }] += 1;
    }
    assert_eq!(off, data.len(), "cuts do not cover the file");
    t.secs = start.elapsed().as_secs_f64();
    t
}

/// Planes of `width` and plain zstd, the smaller kept; raw unless it saves
/// `opts.min_saving`.
fn trial(chunk: &[u8], width: u8, opts: &EncodeOptions, out: &mut Vec<u8>) -> Codec {
    let limit = chunk.len() as f64 * (1.0 - opts.min_saving);
    thread_local! {
        static OTHER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    OTHER.with(|o| trial_with(chunk, width, opts, out, &mut o.borrow_mut(), limit))
}

fn trial_with(
    chunk: &[u8],
    width: u8,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
    other: &mut Vec<u8>,
    limit: f64,
) -> Codec {
    let mut best = Codec::Raw;
    if codec::encode_with(chunk, Codec::Planes { width }, opts, out) && out.len() as f64 <= limit {
        best = Codec::Planes { width };
    }
    if codec::encode_with(chunk, Codec::Zstd, opts, other)
        && other.len() as f64 <= limit
        && (best == Codec::Raw || other.len() < out.len())
    {
        std::mem::swap(out, other);
        best = Codec::Zstd;
    }
    if best == Codec::Raw {
        out.clear();
        out.extend_from_slice(chunk);
    }
    best
}

fn header() {
    println!(
        "{:<22} {:<16} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "set",
        "method",
        "logical",
        "unique raw",
        "encoded",
        "pack~",
        "chunks",
        "unique",
        "pack/a",
        "MB/s",
        "cut MB/s"
    );
}

fn row(label: &str, m: Method, t: &Tally, base: &Tally) {
    println!(
        "{:<22} {:<16} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8} {:>7.4} {:>8.1} {:>8.0}",
        label,
        m.name(),
        t.logical,
        t.unique_raw,
        t.encoded,
        t.pack(),
        t.chunks,
        t.unique_chunks,
        t.pack() as f64 / base.pack().max(1) as f64,
        mbps(t.logical, t.secs),
        mbps(t.logical, t.cut_secs),
    );
}

/// Evaluates one corpus root; returns the per-method totals.
fn eval_root(root: &Path, p: CdcParams, opts: &EncodeOptions) -> Vec<Tally> {
    let sets = sets_of(root);
    println!("\n## {}  ({} sets)\n", root.display(), sets.len());
    header();
    let mut seen: Vec<HashSet<blake3::Hash>> = METHODS.iter().map(|_| HashSet::new()).collect();
    let mut totals = vec![Tally::default(); METHODS.len()];
    let mut out = Vec::new();
    let mut nfile = 0usize;
    for (set, versions) in &sets {
        let mut per = vec![Tally::default(); METHODS.len()];
        for files in versions {
            for f in files {
                let data = match std::fs::read(f) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("skipping {}: {e}", f.display());
                        continue;
                    }
                };
                // Rotate the order per file so that no method always runs
                // first on freshly read data.
                for k in 0..METHODS.len() {
                    let i = (k + nfile) % METHODS.len();
                    let t = run_file(METHODS[i], p, opts, &data, &mut seen[i], &mut out);
                    per[i].add(&t);
                }
                nfile += 1;
            }
        }
        for (i, &m) in METHODS.iter().enumerate() {
            row(set, m, &per[i], &per[0]);
            totals[i].add(&per[i]);
        }
    }
    for (i, &m) in METHODS.iter().enumerate() {
        row("TOTAL", m, &totals[i], &totals[0]);
    }
    println!();
    for (i, &m) in METHODS.iter().enumerate() {
        let t = &totals[i];
        println!(
            "{:<16} files as containers {:>4}; unique chunks by codec raw/zstd/planes2/planes4 {:?}; by hint estimate/w2/w4/flat {:?}",
            m.name(),
            t.aware_files,
            t.codecs,
            t.hints
        );
    }
    totals
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let corpus = args.first().map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("MODELVAULT_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/modelvault-corpus")
            })
    });
    let mut extra: Vec<PathBuf> = args.iter().skip(1).map(PathBuf::from).collect();
    if args.len() <= 1 {
        for d in ["/tmp/modelvault-synth", "/tmp/synth"] {
            if Path::new(d).is_dir() {
                extra.push(PathBuf::from(d));
            }
        }
    }
    let p = CdcParams::default();
    let opts = EncodeOptions::default();
    println!(
        "CDC {}/{}/{} KiB; pack~ = encoded + {RECORD_HEADER} B per unique chunk; MB/s single-thread over logical bytes",
        p.min >> 10,
        p.avg >> 10,
        p.max >> 10
    );

    if corpus.is_dir() {
        let t = eval_root(&corpus, p, &opts);
        println!();
        for (i, &m) in METHODS.iter().enumerate() {
            println!(
                "{:<16} pack~ {:>12} = {:.4} of borg's {} (goal <= 0.93: {:.0})",
                m.name(),
                t[i].pack(),
                t[i].pack() as f64 / BORG_BYTES,
                BORG_BYTES as u64,
                BORG_BYTES * 0.93
            );
        }
    } else {
        eprintln!("no corpus at {}", corpus.display());
    }
    for d in extra {
        eval_root(&d, p, &opts);
    }
}
