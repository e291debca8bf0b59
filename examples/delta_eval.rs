//! Does storing a chunk as a delta against another version of its file pay,
//! and what does it cost at restore?
//!
//! For every root (corpus, synthetic checkpoints) each file of each version is
//! cut like the store cuts it (`Cutter` with `CdcParams::default()`), chunks are
//! deduplicated by blake3 across the root in version order, and every unique
//! chunk is encoded
//!
//! * plain: `codec::encode_hinted` (the store today);
//! * forward delta: `codec::delta::encode_delta` against the same byte range
//!   (same offsets) of the same file in the version before the one where the
//!   chunk first appears;
//! * reverse delta: against the same range of the version after the last one
//!   that holds the chunk.
//!
//! A delta is kept only when it is smaller than the plain record. Files are
//! matched between versions by relative path, else by being the only
//! unmatched file of the same length. Seven storage schemes are compared on
//! the final state of the store (all versions ingested):
//!
//! * `plain`: every unique chunk plain;
//! * `fwd`: each version's new chunks as forward deltas (the first version plain);
//! * `fwd-kf4`: forward, but versions 0, 4, 8, … of a set (keyframes) plain;
//! * `rev`: chunks of the newest version plain, every other chunk as a delta
//!   against the next newer version (re-encoded when that version arrives);
//! * `rev-kf4`: reverse, but chunks whose last version is 0, 4, 8, … stay plain;
//! * `rev-t20`, `rev-kf4-t20`: the same, keeping only deltas that save at
//!   least 20% of the plain record.
//!
//! Stored bytes count the encoded chunk, a 52-byte record header, and 40 bytes
//! per delta for the base reference (blob id + offset). Restores of the first
//! and the last version of each set are simulated from the encoded records (a
//! delta decodes its base range first, recursively; each record is decoded at
//! most once per restore), checked against blake3 of the original files, and
//! reported as stored bytes read / logical bytes of that version, raw bytes
//! decoded / logical, and single-thread MB/s (decode only, no I/O, fastest of
//! three). "worst" is the version (position in its set) whose restore
//! decodes the most bytes per logical byte, found without decoding.
//!
//! Then, for every set of safetensors files, a table per tensor role
//! (weights, Adam `exp_avg`, `exp_avg_sq`) compares in 64 KiB blocks the
//! plain encoding with XOR deltas, arithmetic (lane-wise subtraction) deltas
//! and, for Adam moments, an XOR delta against a prediction from the
//! optimizer's update rule: against the previous version and the first. Its
//! last column estimates the information in the change (see
//! `ChangeEntropy`): what any lossless coding of the new tensor given the old
//! one must spend when every element changes independently.
//!
//! ```text
//! cargo run --release --example delta_eval [-- CORPUS_DIR [EXTRA_DIR...]]
//! ```
//!
//! Defaults: `$MODELVAULT_CORPUS` or `~/.cache/modelvault-corpus`, plus
//! `/tmp/synth` when it exists (`cargo run --release --example synth -- /tmp/synth`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use modelvault::internals::chunking::tensors::{self, DType, Probe, TensorLayout};
use modelvault::internals::chunking::{CdcParams, Cutter, PlaneHint};
use modelvault::internals::codec::delta::{decode_delta, encode_delta};
use modelvault::internals::codec::{self, Codec, EncodeOptions};

/// The base id a delta record names (its value does not change the sizes).
const NO_ID: modelvault::Hash32 = modelvault::Hash32([0; 32]);

/// Pack record header per stored chunk (docs/FORMAT.md).
const RECORD_HEADER: u64 = 52;
/// A delta record also names its base: blob id + offset.
const DELTA_REF: u64 = 40;
/// borg 1.2.4 on the corpus (docs/BENCHMARKS.md, `make bench-peers`).
const BORG_BYTES: f64 = 543_946_335.0;
/// borg's stored / logical on the synthetic training run (docs/BENCHMARKS.md).
const BORG_TRAIN_RATIO: f64 = 0.80;
/// Keyframe period of the `*-kf4` schemes.
const KEYFRAME: usize = 4;
/// Restores are timed this many times; the fastest counts.
const RESTORE_RUNS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scheme {
    Plain,
    Fwd,
    FwdKf,
    Rev,
    RevKf,
    /// `Rev` keeping only deltas that save [`MIN_DELTA_SAVING`].
    RevT,
    /// `RevKf` keeping only deltas that save [`MIN_DELTA_SAVING`].
    RevKfT,
}

const SCHEMES: [Scheme; 7] = [
    Scheme::Plain,
    Scheme::Fwd,
    Scheme::FwdKf,
    Scheme::Rev,
    Scheme::RevKf,
    Scheme::RevT,
    Scheme::RevKfT,
];

/// The `-t20` schemes keep a delta only when its record is at most this much
/// smaller than the plain one: a delta that saves little still lengthens
/// every restore that goes through it.
const MIN_DELTA_SAVING: f64 = 0.20;

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Plain => "plain",
            Scheme::Fwd => "fwd",
            Scheme::FwdKf => "fwd-kf4",
            Scheme::Rev => "rev",
            Scheme::RevKf => "rev-kf4",
            Scheme::RevT => "rev-t20",
            Scheme::RevKfT => "rev-kf4-t20",
        }
    }
}

/// Where a chunk occurs: version (global index), file of that version, offset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Loc {
    ver: usize,
    file: usize,
    off: u64,
}

struct Chunk {
    len: usize,
    hint: PlaneHint,
    /// First occurrence (the version that stores it).
    first: Loc,
    /// First occurrence in the last version that holds it.
    last: Loc,
    codec: Codec,
    plain: Vec<u8>,
    /// Forward delta, when smaller than `plain`.
    fwd: Option<Vec<u8>>,
    /// Reverse delta, when smaller than `plain`.
    rev: Option<Vec<u8>>,
}

/// How a chunk is stored under a scheme.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain,
    Fwd,
    Rev,
}

struct FileV {
    rel: String,
    len: u64,
    hash: blake3::Hash,
    /// (offset, chunk index), in offset order.
    chunks: Vec<(u64, u32)>,
    /// The matching file of the previous / next version of the set.
    prev: Option<usize>,
    next: Option<usize>,
}

struct Ver {
    set: usize,
    /// Position in its set.
    pos: usize,
    files: Vec<FileV>,
}

struct SetInfo {
    name: String,
    vers: Vec<usize>,
}

#[derive(Default, Clone, Copy)]
struct Timer {
    bytes: u64,
    secs: f64,
}

impl Timer {
    fn add(&mut self, bytes: usize, t: Instant) {
        self.bytes += bytes as u64;
        self.secs += t.elapsed().as_secs_f64();
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
}

struct Root {
    sets: Vec<SetInfo>,
    vers: Vec<Ver>,
    chunks: Vec<Chunk>,
    plain_enc: Timer,
    delta_enc: Timer,
    delta_dec: Timer,
}

/// Files under `dir`, recursively, sorted, as paths relative to `dir`.
fn files_of(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".complete") {
                if let Ok(r) = p.strip_prefix(dir) {
                    out.push(r.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}

/// `<set>/<version>/<files>`, sets and versions sorted by name.
fn sets_of(root: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut sets = BTreeMap::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir(&p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|v| v.path())
            .filter(|v| v.is_dir())
            .collect();
        versions.sort();
        sets.insert(
            p.file_name().unwrap().to_string_lossy().into_owned(),
            versions,
        );
    }
    sets
}

/// For each file of `new`, the matching file of `old`: same relative path,
/// else the only unmatched file of `old` with the same length.
fn match_files(old: &[(String, u64)], new: &[(String, u64)]) -> Vec<Option<usize>> {
    let by_name: HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .map(|(i, f)| (f.0.as_str(), i))
        .collect();
    let mut m: Vec<Option<usize>> = new
        .iter()
        .map(|f| by_name.get(f.0.as_str()).copied())
        .collect();
    let mut used = vec![false; old.len()];
    for i in m.iter().flatten() {
        used[*i] = true;
    }
    for (j, f) in new.iter().enumerate() {
        if m[j].is_some() {
            continue;
        }
        let cands: Vec<usize> = (0..old.len())
            .filter(|&i| !used[i] && old[i].1 == f.1)
            .collect();
        if let [i] = cands[..] {
            m[j] = Some(i);
            used[i] = true;
        }
    }
    m
}

/// Relative paths and lengths of a version's files.
type FileList = Vec<(String, u64)>;

/// `data[off .. off + len]` clipped to `data`.
fn range(data: &[u8], off: u64, len: usize) -> &[u8] {
    let s = (off as usize).min(data.len());
    &data[s..(s + len).min(data.len())]
}

fn read_version(dir: &Path, rels: &[String]) -> Vec<Vec<u8>> {
    rels.iter()
        .map(|r| {
            std::fs::read(dir.join(r)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(r).display()))
        })
        .collect()
}

/// Encodes a delta and keeps it only when smaller than the plain record
/// (counting the base reference).
fn try_delta(
    raw: &[u8],
    base: &[u8],
    hint: PlaneHint,
    plain_len: usize,
    opts: &EncodeOptions,
    timer: &mut Timer,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let t = Instant::now();
    let r = encode_delta(raw, base, &NO_ID, hint, opts, &mut out);
    timer.add(raw.len(), t);
    r?;
    (out.len() as u64 + DELTA_REF < plain_len as u64).then_some(out)
}

impl Root {
    fn load(root: &Path, p: CdcParams, opts: &EncodeOptions) -> Root {
        let mut r = Root {
            sets: Vec::new(),
            vers: Vec::new(),
            chunks: Vec::new(),
            plain_enc: Timer::default(),
            delta_enc: Timer::default(),
            delta_dec: Timer::default(),
        };
        let mut index: HashMap<blake3::Hash, u32> = HashMap::new();
        let mut out = Vec::new();
        for (name, dirs) in sets_of(root) {
            let set = r.sets.len();
            let mut info = SetInfo {
                name,
                vers: Vec::new(),
            };
            let mut prev: Option<(FileList, Vec<Vec<u8>>)> = None;
            for (pos, dir) in dirs.iter().enumerate() {
                let rels = files_of(dir);
                let data = read_version(dir, &rels);
                let list: Vec<(String, u64)> = rels
                    .iter()
                    .zip(&data)
                    .map(|(r, d)| (r.clone(), d.len() as u64))
                    .collect();
                let vi = r.vers.len();
                let prev_map = match &prev {
                    Some((old, _)) => match_files(old, &list),
                    None => vec![None; list.len()],
                };
                if let Some(pv) = vi.checked_sub(1).filter(|_| pos > 0) {
                    for (j, m) in prev_map.iter().enumerate() {
                        if let Some(i) = m {
                            r.vers[pv].files[*i].next = Some(j);
                        }
                    }
                }
                let mut files = Vec::new();
                for (fi, d) in data.iter().enumerate() {
                    let mut cutter = Cutter::new(p);
                    let mut chunks = Vec::new();
                    let mut off = 0u64;
                    for cut in cutter.cuts(d) {
                        let raw = &d[off as usize..off as usize + cut.len];
                        let loc = Loc {
                            ver: vi,
                            file: fi,
                            off,
                        };
                        let id = blake3::hash(raw);
                        let ci = match index.get(&id) {
                            Some(&ci) => {
                                let c = &mut r.chunks[ci as usize];
                                if c.last.ver < vi {
                                    c.last = loc;
                                }
                                ci
                            }
                            None => {
                                let t = Instant::now();
                                let codec = codec::encode_hinted(raw, cut.hint, opts, &mut out);
                                r.plain_enc.add(raw.len(), t);
                                let plain = out.clone();
                                let fwd = match (&prev, prev_map[fi]) {
                                    (Some((_, pdata)), Some(pf)) => try_delta(
                                        raw,
                                        range(&pdata[pf], off, cut.len),
                                        cut.hint,
                                        plain.len(),
                                        opts,
                                        &mut r.delta_enc,
                                    ),
                                    _ => None,
                                };
                                let ci = r.chunks.len() as u32;
                                r.chunks.push(Chunk {
                                    len: cut.len,
                                    hint: cut.hint,
                                    first: loc,
                                    last: loc,
                                    codec,
                                    plain,
                                    fwd,
                                    rev: None,
                                });
                                index.insert(id, ci);
                                ci
                            }
                        };
                        chunks.push((off, ci));
                        off += cut.len as u64;
                    }
                    files.push(FileV {
                        rel: rels[fi].clone(),
                        len: d.len() as u64,
                        hash: blake3::hash(d),
                        chunks,
                        prev: prev_map[fi],
                        next: None,
                    });
                }
                r.vers.push(Ver { set, pos, files });
                info.vers.push(vi);
                prev = Some((list, data));
            }
            r.sets.push(info);
        }
        r.reverse_pass(root, opts);
        r
    }

    /// Encodes the reverse delta of every chunk whose last version has a
    /// successor in its set, against that successor.
    fn reverse_pass(&mut self, root: &Path, opts: &EncodeOptions) {
        let sets = sets_of(root);
        for (si, (_, dirs)) in sets.iter().enumerate() {
            let vers = self.sets[si].vers.clone();
            for w in 0..vers.len().saturating_sub(1) {
                let (v, n) = (vers[w], vers[w + 1]);
                let rels: Vec<String> = self.vers[v].files.iter().map(|f| f.rel.clone()).collect();
                let nrels: Vec<String> = self.vers[n].files.iter().map(|f| f.rel.clone()).collect();
                let data = read_version(&dirs[w], &rels);
                let ndata = read_version(&dirs[w + 1], &nrels);
                for (fi, f) in self.vers[v].files.iter().enumerate() {
                    let Some(nf) = f.next else { continue };
                    for &(off, ci) in &f.chunks {
                        let c = &mut self.chunks[ci as usize];
                        if c.last
                            != (Loc {
                                ver: v,
                                file: fi,
                                off,
                            })
                        {
                            continue;
                        }
                        let raw = range(&data[fi], off, c.len);
                        c.rev = try_delta(
                            raw,
                            range(&ndata[nf], off, c.len),
                            c.hint,
                            c.plain.len(),
                            opts,
                            &mut self.delta_enc,
                        );
                    }
                }
            }
        }
    }

    /// The number of chunks of the matching file of version `loc.ver + step`
    /// that overlap `loc.off .. loc.off + len`.
    fn base_chunks(&self, loc: Loc, len: usize, step: isize) -> usize {
        let f = &self.vers[loc.ver].files[loc.file];
        let (Some(link), Some(bver)) = (
            if step > 0 { f.next } else { f.prev },
            loc.ver.checked_add_signed(step),
        ) else {
            return 0;
        };
        let b = &self.vers[bver].files[link];
        let end = (loc.off + len as u64).min(b.len);
        if loc.off >= end {
            return 0;
        }
        let i = b.chunks.partition_point(|&(o, _)| o <= loc.off) - 1;
        b.chunks[i..].iter().take_while(|&&(o, _)| o < end).count()
    }

    fn newest(&self, ver: usize) -> bool {
        let v = &self.vers[ver];
        v.pos + 1 == self.sets[v.set].vers.len()
    }

    fn form(&self, c: &Chunk, s: Scheme) -> Form {
        let fkey = self.vers[c.first.ver].pos.is_multiple_of(KEYFRAME);
        let lkey = self.vers[c.last.ver].pos.is_multiple_of(KEYFRAME);
        let rev = c.rev.is_some() && !self.newest(c.last.ver);
        let pays = |d: &Option<Vec<u8>>| {
            d.as_ref().is_some_and(|d| {
                (d.len() as u64 + DELTA_REF) as f64
                    <= (1.0 - MIN_DELTA_SAVING) * c.plain.len() as f64
            })
        };
        match s {
            Scheme::Plain => Form::Plain,
            Scheme::Fwd if c.fwd.is_some() => Form::Fwd,
            Scheme::FwdKf if c.fwd.is_some() && !fkey => Form::Fwd,
            Scheme::Rev if rev => Form::Rev,
            Scheme::RevKf if rev && !lkey => Form::Rev,
            Scheme::RevT if rev && pays(&c.rev) => Form::Rev,
            Scheme::RevKfT if rev && !lkey && pays(&c.rev) => Form::Rev,
            _ => Form::Plain,
        }
    }

    fn stored(&self, c: &Chunk, s: Scheme) -> u64 {
        RECORD_HEADER
            + match self.form(c, s) {
                Form::Plain => c.plain.len() as u64,
                Form::Fwd => c.fwd.as_ref().map_or(0, |d| d.len() as u64) + DELTA_REF,
                Form::Rev => c.rev.as_ref().map_or(0, |d| d.len() as u64) + DELTA_REF,
            }
    }
}

/// One simulated restore.
struct Restore<'a> {
    root: &'a Root,
    scheme: Scheme,
    memo: HashMap<u32, Rc<Vec<u8>>>,
    read: u64,
    decoded: u64,
    dec: Timer,
}

impl Restore<'_> {
    fn chunk(&mut self, ci: u32) -> Rc<Vec<u8>> {
        if let Some(b) = self.memo.get(&ci) {
            return b.clone();
        }
        let root = self.root;
        let c = &root.chunks[ci as usize];
        let mut out = Vec::new();
        let form = root.form(c, self.scheme);
        match form {
            Form::Plain => codec::decode(c.codec, &c.plain, c.len, &mut out).expect("plain decode"),
            Form::Fwd | Form::Rev => {
                let (loc, stored, link) = if form == Form::Fwd {
                    (
                        c.first,
                        c.fwd.as_ref().unwrap(),
                        root.vers[c.first.ver].files[c.first.file].prev,
                    )
                } else {
                    (
                        c.last,
                        c.rev.as_ref().unwrap(),
                        root.vers[c.last.ver].files[c.last.file].next,
                    )
                };
                let base_ver = if form == Form::Fwd {
                    loc.ver - 1
                } else {
                    loc.ver + 1
                };
                let base = self.range(
                    base_ver,
                    link.expect("delta without a base file"),
                    loc.off,
                    c.len,
                );
                let t = Instant::now();
                decode_delta(stored, &base, c.len, &mut out).expect("delta decode");
                self.dec.add(c.len, t);
            }
        }
        self.read += root.stored(c, self.scheme);
        self.decoded += c.len as u64;
        let b = Rc::new(out);
        self.memo.insert(ci, b.clone());
        b
    }

    /// Bytes `off .. off + len` of file `file` of version `ver`, clipped to
    /// the file, decoding the chunks that cover them.
    fn range(&mut self, ver: usize, file: usize, off: u64, len: usize) -> Vec<u8> {
        let f = &self.root.vers[ver].files[file];
        let end = (off + len as u64).min(f.len);
        let mut out = Vec::with_capacity(len);
        if off >= end {
            return out;
        }
        let chunks = &f.chunks;
        let mut i = chunks.partition_point(|&(o, _)| o <= off) - 1;
        while i < chunks.len() && chunks[i].0 < end {
            let (o, ci) = chunks[i];
            let b = self.chunk(ci);
            let s = off.max(o) - o;
            let e = (end - o).min(b.len() as u64);
            out.extend_from_slice(&b[s as usize..e as usize]);
            i += 1;
        }
        out
    }
}

/// Stored bytes read and raw bytes decoded to restore version `ver` (each
/// record once), without decoding anything.
fn closure(root: &Root, scheme: Scheme, ver: usize) -> (u64, u64) {
    let mut seen = vec![false; root.chunks.len()];
    let mut stack: Vec<u32> = root.vers[ver]
        .files
        .iter()
        .flat_map(|f| f.chunks.iter().map(|&(_, ci)| ci))
        .collect();
    let (mut read, mut decoded) = (0, 0);
    while let Some(ci) = stack.pop() {
        if std::mem::replace(&mut seen[ci as usize], true) {
            continue;
        }
        let c = &root.chunks[ci as usize];
        read += root.stored(c, scheme);
        decoded += c.len as u64;
        let (loc, link, bver) = match root.form(c, scheme) {
            Form::Plain => continue,
            Form::Fwd => (
                c.first,
                root.vers[c.first.ver].files[c.first.file].prev,
                c.first.ver - 1,
            ),
            Form::Rev => (
                c.last,
                root.vers[c.last.ver].files[c.last.file].next,
                c.last.ver + 1,
            ),
        };
        let f = &root.vers[bver].files[link.expect("delta without a base file")];
        let end = (loc.off + c.len as u64).min(f.len);
        let i = f.chunks.partition_point(|&(o, _)| o <= loc.off) - 1;
        stack.extend(
            f.chunks[i..]
                .iter()
                .take_while(|&&(o, _)| o < end)
                .map(|&(_, ci)| ci),
        );
    }
    (read, decoded)
}

#[derive(Default, Clone, Copy)]
struct RestoreStats {
    logical: u64,
    read: u64,
    decoded: u64,
    secs: f64,
}

impl RestoreStats {
    fn add(&mut self, o: &RestoreStats) {
        self.logical += o.logical;
        self.read += o.read;
        self.decoded += o.decoded;
        self.secs += o.secs;
    }
}

fn restore(root: &Root, scheme: Scheme, ver: usize, dec: &mut Timer) -> RestoreStats {
    let mut r = Restore {
        root,
        scheme,
        memo: HashMap::new(),
        read: 0,
        decoded: 0,
        dec: Timer::default(),
    };
    let mut logical = 0;
    let mut best = f64::INFINITY;
    // The machine is shared: the fastest of three runs, each from scratch.
    for run in 0..RESTORE_RUNS {
        r.memo.clear();
        (r.read, r.decoded, logical) = (0, 0, 0);
        let mut secs = 0.0;
        for (fi, f) in root.vers[ver].files.iter().enumerate() {
            let t = Instant::now();
            let bytes = r.range(ver, fi, 0, f.len as usize);
            secs += t.elapsed().as_secs_f64();
            if run == 0 {
                assert_eq!(
                    blake3::hash(&bytes),
                    f.hash,
                    "{} restores wrong bytes",
                    f.rel
                );
            }
            logical += f.len;
        }
        best = best.min(secs);
    }
    let secs = best;
    dec.bytes += r.dec.bytes;
    dec.secs += r.dec.secs;
    RestoreStats {
        logical,
        read: r.read,
        decoded: r.decoded,
        secs,
    }
}

/// Per scheme: stored bytes, delta chunks, restores of the first and last
/// versions.
#[derive(Default, Clone, Copy)]
struct Row {
    logical: u64,
    stored: u64,
    deltas: u64,
    unique: u64,
    first: RestoreStats,
    last: RestoreStats,
    /// The version with the most decoded bytes per logical byte: (ratio,
    /// position in its set, read / logical).
    worst: (f64, usize, f64),
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.logical += o.logical;
        self.stored += o.stored;
        self.deltas += o.deltas;
        self.unique += o.unique;
        self.first.add(&o.first);
        self.last.add(&o.last);
        if o.worst.0 > self.worst.0 {
            self.worst = o.worst;
        }
    }
}

fn print_header() {
    println!(
        "| set | scheme | logical | stored | /logical | /plain | delta chunks | first: read/log | decoded/log | MB/s | last: read/log | decoded/log | MB/s | worst: version | read/log | decoded/log |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn print_row(set: &str, s: Scheme, r: &Row, plain: &Row) {
    let f = |x: u64, y: u64| x as f64 / y.max(1) as f64;
    println!(
        "| {set} | {} | {} | {} | {:.3} | {:.3} | {}/{} | {:.3} | {:.2} | {:.0} | {:.3} | {:.2} | {:.0} | {} | {:.3} | {:.2} |",
        s.name(),
        r.logical,
        r.stored,
        f(r.stored, r.logical),
        f(r.stored, plain.stored),
        r.deltas,
        r.unique,
        f(r.first.read, r.first.logical),
        f(r.first.decoded, r.first.logical),
        r.first.logical as f64 / 1e6 / r.first.secs.max(1e-9),
        f(r.last.read, r.last.logical),
        f(r.last.decoded, r.last.logical),
        r.last.logical as f64 / 1e6 / r.last.secs.max(1e-9),
        r.worst.1,
        r.worst.2,
        r.worst.0,
    );
}

fn hint_class(h: PlaneHint) -> usize {
    match h {
        PlaneHint::Width(2) => 0,
        PlaneHint::Width(_) => 1,
        PlaneHint::Flat => 2,
        PlaneHint::Estimate => 3,
    }
}

fn eval_root(path: &Path, p: CdcParams, opts: &EncodeOptions) -> Option<Vec<Row>> {
    let t = Instant::now();
    let mut root = Root::load(path, p, opts);
    println!(
        "\n## {}  ({} sets, {} versions, {} unique chunks, loaded and encoded in {:.1} s)\n",
        path.display(),
        root.sets.len(),
        root.vers.len(),
        root.chunks.len(),
        t.elapsed().as_secs_f64()
    );
    // Chunks of each set: those first stored by one of its versions.
    let mut by_set: Vec<Vec<usize>> = vec![Vec::new(); root.sets.len()];
    for (i, c) in root.chunks.iter().enumerate() {
        by_set[root.vers[c.first.ver].set].push(i);
    }
    print_header();
    let mut totals = vec![Row::default(); SCHEMES.len()];
    let mut dec = Timer::default();
    let mut notes = Vec::new();
    for (si, set) in root.sets.iter().enumerate() {
        let logical: u64 = set
            .vers
            .iter()
            .flat_map(|&v| root.vers[v].files.iter().map(|f| f.len))
            .sum();
        let mut rows = vec![Row::default(); SCHEMES.len()];
        let (first, last) = (set.vers[0], *set.vers.last().unwrap());
        for (k, &s) in SCHEMES.iter().enumerate() {
            let plain = rows[0];
            let row = &mut rows[k];
            row.logical = logical;
            for &ci in &by_set[si] {
                let c = &root.chunks[ci];
                row.stored += root.stored(c, s);
                row.deltas += u64::from(root.form(c, s) != Form::Plain);
                row.unique += 1;
            }
            for &v in &set.vers {
                let (read, decoded) = closure(&root, s, v);
                let lg: u64 = root.vers[v].files.iter().map(|f| f.len).sum();
                let ratio = decoded as f64 / lg.max(1) as f64;
                if ratio > row.worst.0 {
                    row.worst = (ratio, root.vers[v].pos, read as f64 / lg.max(1) as f64);
                }
            }
            if set.vers.len() > 1 || s == Scheme::Plain {
                row.first = restore(&root, s, first, &mut dec);
                row.last = if last == first {
                    row.first
                } else {
                    restore(&root, s, last, &mut dec)
                };
                for (v, r) in [(first, &row.first), (last, &row.last)] {
                    assert_eq!(closure(&root, s, v), (r.read, r.decoded), "{}", set.name);
                }
            } else {
                // One version: every scheme is plain.
                row.first = plain.first;
                row.last = plain.last;
            }
        }
        let shown = if set.vers.len() > 1 {
            &SCHEMES[..]
        } else {
            &SCHEMES[..1]
        };
        for (k, &s) in shown.iter().enumerate() {
            print_row(&set.name, s, &rows[k], &rows[0]);
        }
        for k in 0..SCHEMES.len() {
            totals[k].add(&rows[k]);
        }
        if set.vers.len() > 1 {
            // Where the savings come from: unique raw bytes, plain and best
            // forward record bytes per hint class.
            let mut cls = [[0u64; 3]; 4];
            let mut rev_work = 0u64;
            // Base chunks a reverse delta's range overlaps.
            let (mut rev_deltas, mut rev_bases) = (0u64, 0u64);
            for &ci in &by_set[si] {
                let c = &root.chunks[ci];
                let h = hint_class(c.hint);
                cls[h][0] += c.len as u64;
                cls[h][1] += root.stored(c, Scheme::Plain);
                cls[h][2] += root.stored(c, Scheme::Fwd);
                if !root.newest(c.last.ver) {
                    rev_work += c.len as u64;
                }
                if root.form(c, Scheme::Rev) == Form::Rev {
                    rev_deltas += 1;
                    rev_bases += root.base_chunks(c.last, c.len, 1) as u64;
                }
            }
            let names = ["bf16/fp16 (w2)", "fp32 (w4)", "flat", "estimate"];
            let parts: Vec<String> = (0..4)
                .filter(|&h| cls[h][0] > 0)
                .map(|h| {
                    format!(
                        "{} {:.1} MB: plain {:.3}, fwd {:.3}",
                        names[h],
                        cls[h][0] as f64 / 1e6,
                        cls[h][1] as f64 / cls[h][0] as f64,
                        cls[h][2] as f64 / cls[h][0] as f64
                    )
                })
                .collect();
            notes.push(format!(
                "- {}: unique bytes by hint — {}; rev re-encodes {:.1} MB over the run ({:.2} of logical); a rev delta's base range spans {:.2} chunks on average",
                set.name,
                parts.join("; "),
                rev_work as f64 / 1e6,
                rev_work as f64 / logical as f64,
                rev_bases as f64 / rev_deltas.max(1) as f64
            ));
        }
    }
    root.delta_dec = dec;
    for (k, &s) in SCHEMES.iter().enumerate() {
        print_row("TOTAL", s, &totals[k], &totals[0]);
    }
    println!();
    for n in notes {
        println!("{n}");
    }
    println!(
        "- single-thread MB/s of raw bytes: plain encode {:.0}, delta encode {:.0} (XOR + encode_hinted), delta decode {:.0} (decode + XOR)",
        root.plain_enc.mbps(),
        root.delta_enc.mbps(),
        root.delta_dec.mbps()
    );
    for (si, set) in root.sets.iter().enumerate() {
        if set.name == "train-run" {
            let logical: u64 = set
                .vers
                .iter()
                .flat_map(|&v| root.vers[v].files.iter().map(|f| f.len))
                .sum();
            for &s in &SCHEMES {
                let stored: u64 = by_set[si]
                    .iter()
                    .map(|&ci| root.stored(&root.chunks[ci], s))
                    .sum();
                println!(
                    "- train-run {:<8} {:.3} of logical = {:.3} of borg's ~{BORG_TRAIN_RATIO} (goal <= 0.5)",
                    s.name(),
                    stored as f64 / logical as f64,
                    stored as f64 / logical as f64 / BORG_TRAIN_RATIO
                );
            }
        }
    }
    Some(totals)
}

// ------------------------------------------------------------ per tensor role

/// What a tensor of a training checkpoint holds, from its name.
fn role(name: &str, dtype: DType) -> String {
    let r = if name.ends_with(".exp_avg_sq") {
        "exp_avg_sq"
    } else if name.ends_with(".exp_avg") {
        "exp_avg"
    } else {
        "weight"
    };
    format!("{r} {dtype:?}")
}

fn layout(data: &[u8]) -> Option<TensorLayout> {
    match tensors::probe(data, Some(data.len() as u64)) {
        Probe::Layout(l) => Some(l),
        _ => None,
    }
}

/// Lane-wise wrapping difference `raw - base` of little-endian integers of
/// `width` (2 or 4) bytes: the arithmetic alternative to XOR.
fn sub_image(raw: &[u8], base: &[u8], width: usize) -> Vec<u8> {
    let mut out = raw.to_vec();
    let n = raw.len().min(base.len()) / width * width;
    for (o, b) in out[..n]
        .chunks_exact_mut(width)
        .zip(base[..n].chunks_exact(width))
    {
        if width == 2 {
            let v = u16::from_le_bytes([o[0], o[1]]).wrapping_sub(u16::from_le_bytes([b[0], b[1]]));
            o.copy_from_slice(&v.to_le_bytes());
        } else {
            let v = u32::from_le_bytes([o[0], o[1], o[2], o[3]])
                .wrapping_sub(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn f32s(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    b.chunks_exact(4)
        .map(|q| f32::from_le_bytes([q[0], q[1], q[2], q[3]]))
}

/// Per role: raw bytes, then the best of the plain record and each
/// transform's: plain, xor, sub, predicted (moments; else the xor figure);
/// and the estimated information in the change.
type RoleSizes = BTreeMap<String, ([u64; 5], ChangeEntropy)>;

/// An estimate of how many bits a lossless coder that knows the old tensor
/// must spend on the new one: the empirical entropy of the zigzag difference
/// `d` of the bit patterns, element by element, conditioned on the old
/// value's two leading mantissa bits (a change of relative size r moves the
/// pattern by about `r * mantissa * 2^mantissa_bits`, so the mantissa sets its
/// scale). `d` is counted by its bit length and the three bits below its
/// leading one; the bits under those are taken as uniform, which for a smooth
/// (e.g. Gaussian) change costs under 0.1 bit per element. What it does not
/// see is any dependence between elements, which a nudge drawn afresh for
/// every value does not have.
#[derive(Default)]
struct ChangeEntropy {
    /// (context, bit length, next three bits) -> count.
    classes: HashMap<(u8, u8, u8), u64>,
    /// Elements per context.
    contexts: HashMap<u8, u64>,
    /// Bits below the class, summed over the elements.
    tail_bits: u64,
}

impl ChangeEntropy {
    /// Adds the elements of `new` against `old`, little-endian, `width` 2
    /// (mantissa 7 bits: bf16) or 4 (f32).
    fn add(&mut self, new: &[u8], old: &[u8], width: usize) {
        for (n, o) in new.chunks_exact(width).zip(old.chunks_exact(width)) {
            let (d, ctx) = if width == 2 {
                let (n, o) = (
                    u16::from_le_bytes([n[0], n[1]]),
                    u16::from_le_bytes([o[0], o[1]]),
                );
                let d = n.wrapping_sub(o) as i16 as i32;
                (d, ((o >> 5) & 3) as u8)
            } else {
                let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]);
                let o = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
                (n.wrapping_sub(o) as i32, ((o >> 21) & 3) as u8)
            };
            let z = ((d << 1) ^ (d >> 31)) as u32;
            let len = 32 - z.leading_zeros();
            let (top, tail) = if len > 4 {
                ((z >> (len - 4)) & 7, len - 4)
            } else {
                (z, 0)
            };
            *self.classes.entry((ctx, len as u8, top as u8)).or_default() += 1;
            *self.contexts.entry(ctx).or_default() += 1;
            self.tail_bits += u64::from(tail);
        }
    }

    /// The estimate, in bytes.
    fn bytes(&self) -> f64 {
        let class_bits: f64 = self
            .classes
            .iter()
            .map(|((ctx, _, _), &c)| c as f64 * (self.contexts[ctx] as f64 / c as f64).log2())
            .sum();
        (class_bits + self.tail_bits as f64) / 8.0
    }
}

/// Block size of the per-role comparison (the CDC average).
const BLOCK: usize = 64 * 1024;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;

fn tensor<'a>(d: &'a [u8], t: &tensors::TensorSpan) -> &'a [u8] {
    &d[t.start as usize..t.end as usize]
}

/// Compares, tensor by tensor in 64 KiB blocks, version `new` of a
/// safetensors file against `old`: the plain encoding, the XOR delta, the
/// arithmetic delta, and for Adam moments an XOR delta against a prediction:
/// `β1·m` for `exp_avg`; `β2·v + (1-β2)·g²` for `exp_avg_sq`, with `g`
/// recovered from the two versions' `exp_avg` (`g = (m' - β1·m) / (1-β1)`),
/// PyTorch's default betas. Each transform's figure is per block the smaller
/// of it and the plain record. Blocks equal to the base are left out.
fn compare_tensors(old: &[u8], new: &[u8], opts: &EncodeOptions, sizes: &mut RoleSizes) {
    let (Some(lo), Some(ln)) = (layout(old), layout(new)) else {
        return;
    };
    let olds: HashMap<&str, &tensors::TensorSpan> =
        lo.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let news: HashMap<&str, &tensors::TensorSpan> =
        ln.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut out = Vec::new();
    for t in &ln.tensors {
        let Some(o) = olds.get(t.name.as_str()) else {
            continue;
        };
        if o.end - o.start != t.end - t.start {
            continue;
        }
        let (raw, base) = (tensor(new, t), tensor(old, o));
        let hint = PlaneHint::of(t.dtype);
        let width = match t.dtype {
            DType::BF16 | DType::F16 => 2,
            _ => 4,
        };
        // The prediction of the whole tensor, for f32 moments.
        let pred: Option<Vec<u8>> = if t.dtype != DType::F32 {
            None
        } else if let Some(stem) = t.name.strip_suffix(".exp_avg_sq") {
            let m_name = format!("{stem}.exp_avg");
            match (olds.get(m_name.as_str()), news.get(m_name.as_str())) {
                (Some(mo), Some(mn)) if mo.end - mo.start == t.end - t.start => Some(
                    f32s(base)
                        .zip(f32s(tensor(old, mo)).zip(f32s(tensor(new, mn))))
                        .flat_map(|(v, (m, m2))| {
                            let g = (m2 - BETA1 * m) / (1.0 - BETA1);
                            (BETA2 * v + (1.0 - BETA2) * g * g).to_le_bytes()
                        })
                        .collect(),
                ),
                _ => None,
            }
        } else if t.name.ends_with(".exp_avg") {
            Some(f32s(base).flat_map(|m| (BETA1 * m).to_le_bytes()).collect())
        } else {
            None
        };
        let (e, ent) = sizes.entry(role(&t.name, t.dtype)).or_default();
        for start in (0..raw.len()).step_by(BLOCK) {
            let end = (start + BLOCK).min(raw.len());
            let (r, b) = (&raw[start..end], &base[start..end]);
            if r == b {
                // Deduplicated by the store anyway.
                continue;
            }
            codec::encode_hinted(r, hint, opts, &mut out);
            let plain = out.len() as u64;
            let xor = encode_delta(r, b, &NO_ID, hint, opts, &mut out)
                .map_or(plain, |_| plain.min(out.len() as u64));
            codec::encode_hinted(&sub_image(r, b, width), hint, opts, &mut out);
            let sub = plain.min(out.len() as u64);
            let pr = match &pred {
                Some(p) => encode_delta(r, &p[start..end], &NO_ID, hint, opts, &mut out)
                    .map_or(plain, |_| plain.min(out.len() as u64)),
                None => xor,
            };
            ent.add(r, b, width);
            for (k, v) in [r.len() as u64, plain, xor, sub, pr]
                .into_iter()
                .enumerate()
            {
                e[k] += v;
            }
        }
    }
}

/// The per-role comparison of a set of safetensors files: every version
/// against the previous one, or (`from_first`) against the first.
fn role_table(set_dir: &Path, from_first: bool, opts: &EncodeOptions) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(set_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut sizes = RoleSizes::new();
    let t = Instant::now();
    let pairs: Vec<(&PathBuf, &PathBuf)> = if from_first {
        dirs.iter().skip(1).map(|d| (&dirs[0], d)).collect()
    } else {
        dirs.windows(2).map(|w| (&w[0], &w[1])).collect()
    };
    if pairs.is_empty() || (from_first && pairs.len() < 2) {
        return;
    }
    for (a, b) in pairs {
        for rel in files_of(b) {
            let (Ok(old), Ok(new)) = (std::fs::read(a.join(&rel)), std::fs::read(b.join(&rel)))
            else {
                continue;
            };
            compare_tensors(&old, &new, opts, &mut sizes);
        }
    }
    if sizes.is_empty() {
        return;
    }
    println!(
        "\n### {}: tensors of every version against {}, 64 KiB blocks ({:.1} s)\n",
        set_dir.display(),
        if from_first {
            "the first"
        } else {
            "the previous one"
        },
        t.elapsed().as_secs_f64()
    );
    println!("| tensors | raw bytes | plain | xor | sub | predicted | entropy of the change |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut tot = [0u64; 5];
    let row = |name: &str, v: &[u64; 5], ent: &ChangeEntropy| {
        let f = |k: usize| v[k] as f64 / v[0].max(1) as f64;
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            v[0],
            f(1),
            f(2),
            f(3),
            f(4),
            ent.bytes() / v[0].max(1) as f64
        );
    };
    for (role, (v, ent)) in &sizes {
        row(role, v, ent);
        for k in 0..5 {
            tot[k] += v[k];
        }
    }
    // Roles differ in width, so the total's entropy is the sum of theirs.
    let ent_all: f64 = sizes.values().map(|(_, e)| e.bytes()).sum();
    let f = |k: usize| tot[k] as f64 / tot[0].max(1) as f64;
    println!(
        "| all | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        tot[0],
        f(1),
        f(2),
        f(3),
        f(4),
        ent_all / tot[0].max(1) as f64
    );
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
    if args.len() <= 1 && Path::new("/tmp/synth").is_dir() {
        extra.push(PathBuf::from("/tmp/synth"));
    }
    let p = CdcParams::default();
    let opts = EncodeOptions::default();
    println!(
        "CDC {}/{}/{} KiB, weight-aware Cutter; stored = encoded + {RECORD_HEADER} B per record + {DELTA_REF} B per delta",
        p.min >> 10,
        p.avg >> 10,
        p.max >> 10
    );
    if corpus.is_dir() {
        if let Some(t) = eval_root(&corpus, p, &opts) {
            println!();
            for (k, &s) in SCHEMES.iter().enumerate() {
                println!(
                    "- corpus {:<8} stored {:>11} = {:.4} of borg's {} ({:.3} of logical)",
                    s.name(),
                    t[k].stored,
                    t[k].stored as f64 / BORG_BYTES,
                    BORG_BYTES as u64,
                    t[k].stored as f64 / t[k].logical as f64
                );
            }
        }
    } else {
        eprintln!("no corpus at {}", corpus.display());
    }
    for d in extra {
        if !d.is_dir() {
            eprintln!("no directory {}", d.display());
            continue;
        }
        eval_root(&d, p, &opts);
        for set in sets_of(&d).keys() {
            role_table(&d.join(set), false, &opts);
            role_table(&d.join(set), true, &opts);
        }
    }
}
