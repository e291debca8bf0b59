//! Model-based fuzzing of the public store API.
//!
//! The input is decoded (with `arbitrary`) into at most [`MAX_OPS`]
//! operations, run in order on a fresh store in a temporary directory (on
//! /dev/shm when there is one). Next to the store the target keeps a model:
//! every blob ever seen with its content, its holds (finish / put_blob) and
//! its references (model version files); each model's versions and files;
//! the suspended upload sessions. After every operation it asserts that the
//! store agrees with the model: contents read back, which blobs exist,
//! errors exactly where the model predicts one (and of the right kind),
//! delete reports, stats, upload sessions. At the end every live blob is read
//! back, `verify --read-data` must be clean, and once every hold, model and
//! session is gone a collection must leave no chunk at all.
//!
//! Uploads with a delta base (`PutDelta`, contents made with `Nudge`) mix
//! delta chains into the sequences, so releases, version deletes,
//! collections and compaction meet deltas whose base blob is gone. Reverse
//! deltas (`PutReverse`: an upload `cut_like` an older blob, then
//! `reverse_delta(older, new)`; `ReverseDelta` between any two blobs) turn
//! older blobs' chunks into deltas against newer ones, in either direction
//! and on top of forward chains.
//!
//! Set `MV_FUZZ_TRACE=1` to print the decoded operations and their outcomes
//! (e.g. when replaying a crash: `target/.../api_sequence crash-…`).

#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use modelvault::{
    BlobId, DeleteOptions, DeleteReport, Durability, EntityId, Error, FileEntry, GcOptions,
    Hash32, NewModel, Retention, StagedBlob, Store, UploadId, VerifyOptions,
};

/// Operations per input, at most.
const MAX_OPS: usize = 64;
/// Bytes of one blob's content, at most.
const MAX_CONTENT: usize = 256 << 10;
/// Parts a content is built from, at most.
const MAX_PARTS: usize = 6;
/// Files of one version, at most.
const MAX_FILES: usize = 3;
/// Seeks of one read operation, at most.
const MAX_SEEKS: usize = 4;
/// Model slots ("m0", "m1").
const MODELS: usize = 2;
/// Version file paths; the last three are invalid, and "a" / "a/b.bin" may
/// not be in one version together (a file cannot also be a folder).
const PATHS: [&str; 8] = [
    "model.safetensors",
    "a",
    "a/b.bin",
    "cfg/config.json",
    "tok/vocab.txt",
    "..",
    "/abs",
    "",
];

// ---------------------------------------------------------------- input

/// How a content is built: parts concatenated, capped at [`MAX_CONTENT`].
/// Noise and float parts come from a few fixed streams (seed % 4) at
/// arbitrary offsets, and `Copy` reuses earlier contents, so chunks dedup
/// within and across blobs.
#[derive(Arbitrary, Debug, Clone)]
struct Content {
    parts: Vec<Part>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Part {
    /// Pseudo-random bytes `skip * 64 ..` of stream `seed % 4`, `len * 4` bytes.
    Noise { seed: u8, skip: u16, len: u16 },
    /// `count` little-endian f32 values of small magnitude (plane codecs).
    Floats { seed: u8, spread: u8, count: u16 },
    /// `pattern` (≤ 64 bytes) repeated `times` times.
    Repeat { pattern: Vec<u8>, times: u16 },
    /// Bytes of an earlier content (any blob the model knows, or a session's).
    Copy { from: u8, start: u32, len: u32 },
    /// Literal bytes (≤ 1 KiB).
    Raw(Vec<u8>),
    /// A small well-formed safetensors file (header + one or two tensors).
    Safetensors { seed: u8, dtype: u8, a: u16, b: u16 },
    /// An earlier content (as `Copy`'s `from`), whole, with the low byte of
    /// every (`every % 8 + 1`)-th 4-byte word past a safetensors header (if
    /// it starts with one) changed: a next version of it, for `PutDelta`.
    Nudge { from: u8, seed: u8, every: u8 },
}

#[derive(Arbitrary, Debug, Clone)]
struct FileSpec {
    path: u8,
    content: Content,
}

#[derive(Arbitrary, Debug, Clone)]
struct ExistingFile {
    path: u8,
    blob: u8,
    wrong_size: bool,
}

#[derive(Arbitrary, Debug, Clone)]
struct SeekSpec {
    /// 0: Start, 1: End (backwards), 2: Current (either way).
    whence: u8,
    off: u32,
    len: u32,
}

#[derive(Arbitrary, Debug, Clone)]
enum ResumeEnd {
    /// Write the rest and finish (a held blob).
    Finish,
    /// Write the rest, stage it and add it as a one-file version.
    Stage { model: u8, path: u8 },
    /// Write up to `extra` more bytes and drop the writer (session given up).
    Drop { extra: u32 },
    /// Write up to `extra` more bytes and suspend again.
    Suspend { extra: u32 },
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    /// BlobWriter (writes of `split` bytes, 0 = one write) + finish, or put_blob.
    Put { content: Content, split: u16, put_blob: bool },
    /// Stage every file and add them as one version (add_version_staged).
    AddStaged { model: u8, files: Vec<FileSpec> },
    /// Add a version of blobs already stored (add_version).
    AddExisting { model: u8, files: Vec<ExistingFile> },
    /// Read a blob fully (optionally) and at some seek offsets.
    Read { blob: u8, full: bool, buf: u16, seeks: Vec<SeekSpec> },
    Release { blob: u8 },
    DeleteVersion { model: u8, version: u8, force: bool, dry: bool },
    DeleteModel { model: u8, force: bool, dry: bool },
    Prune { model: u8, keep_last: u8, dry: bool },
    Finalize { model: u8 },
    Gc { compact_below: u8, expire_uploads: bool },
    /// Write a prefix of `content` and suspend.
    Suspend { content: Content, prefix: u32, split: u16 },
    /// Resume a session (or a stale / unknown id) and end it some way.
    Resume { session: u8, twice: bool, end: ResumeEnd },
    /// Write a prefix and drop the writer without finishing.
    Abandon { content: Content, prefix: u32 },
    /// Drop every handle and open the store again.
    Reopen,
    /// A BlobWriter with `delta_base(base)` (NotFound unless the base is
    /// stored), optionally releasing one hold of the base before writing
    /// (as `Release`), then the content written and finished.
    PutDelta { base: u8, content: Content, release_base: bool, split: u16 },
    /// A BlobWriter with `cut_like(older)` (NotFound unless it is stored),
    /// the content written and finished, optionally one hold of `older`
    /// released (as `Release`), then `reverse_delta(older, new)`.
    PutReverse { older: u8, content: Content, release_older: bool, split: u16 },
    /// `reverse_delta(older, newer)` of any two blobs (NotFound unless both
    /// are stored).
    ReverseDelta { older: u8, newer: u8 },
}

fn decode(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

// ---------------------------------------------------------------- model

#[derive(Default)]
struct BlobState {
    content: Arc<Vec<u8>>,
    holds: u64,
    refs: u64,
}

impl BlobState {
    fn live(&self) -> bool {
        self.holds + self.refs > 0
    }
}

/// (path, blob, size), sorted by path.
type Files = Vec<(String, BlobId, u64)>;

struct ModelState {
    id: EntityId,
    name: String,
    finalized: bool,
    latest: u32,
    versions: BTreeMap<u32, Files>,
}

struct Session {
    content: Arc<Vec<u8>>,
    durable: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    Invalid,
    Immutable,
}

fn kind_of(e: &Error) -> Option<Kind> {
    match e {
        Error::NotFound { .. } => Some(Kind::NotFound),
        Error::InvalidInput { .. } => Some(Kind::Invalid),
        Error::Immutable { .. } => Some(Kind::Immutable),
        _ => None,
    }
}

/// Asserts `r` is Ok exactly when `want` is, and fails with the expected
/// kind otherwise. Returns the value when Ok.
#[track_caller]
fn expect<T: std::fmt::Debug>(what: &str, r: modelvault::Result<T>, want: Result<(), Kind>) -> Option<T> {
    match (r, want) {
        (Ok(v), Ok(())) => Some(v),
        (Ok(v), Err(k)) => panic!("{what}: expected a {k:?} error, got Ok({v:?})"),
        (Err(e), Ok(())) => panic!("{what}: expected success, got error: {e} ({e:?})"),
        (Err(e), Err(k)) => {
            assert_eq!(kind_of(&e), Some(k), "{what}: wrong error kind: {e} ({e:?})");
            None
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn stream_word(seed: u8, i: u64) -> u64 {
    splitmix(((seed % 4) as u64) << 56 ^ i)
}

fn push_capped(out: &mut Vec<u8>, bytes: impl IntoIterator<Item = u8>) {
    for b in bytes {
        if out.len() >= MAX_CONTENT {
            return;
        }
        out.push(b);
    }
}

fn float_bytes(seed: u8, spread: u8, i: u64) -> [u8; 4] {
    let x = stream_word(seed ^ 0x40, i);
    let v = ((x % 2001) as f32 - 1000.0) * 1e-5 * (spread as f32 + 1.0);
    v.to_le_bytes()
}

fn safetensors(seed: u8, dtype: u8, a: u16, b: u16) -> Vec<u8> {
    let (name, width) = [("F32", 4usize), ("F16", 2), ("BF16", 2), ("U8", 1)][dtype as usize % 4];
    let n1 = (a as usize % 4096) + 1;
    let n2 = b as usize % 4096;
    let mut header = format!(
        "{{\"w1\":{{\"dtype\":\"{name}\",\"shape\":[{n1}],\"data_offsets\":[0,{}]}}",
        n1 * width
    );
    if n2 > 0 {
        header += &format!(
            ",\"w2\":{{\"dtype\":\"{name}\",\"shape\":[{n2}],\"data_offsets\":[{},{}]}}",
            n1 * width,
            (n1 + n2) * width
        );
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for i in 0..(n1 + n2) as u64 {
        let f = float_bytes(seed, 3, i);
        out.extend_from_slice(&f[4 - width..]);
    }
    out
}

struct World {
    dir: PathBuf,
    store: Option<Store>,
    blobs: HashMap<BlobId, BlobState>,
    /// Blob ids in order of first appearance (dead ones stay).
    known: Vec<BlobId>,
    models: [Option<ModelState>; MODELS],
    sessions: BTreeMap<u64, Session>,
    /// Sessions finished, given up or expired (resuming them must fail),
    /// with the number of reopens before they went.
    gone_sessions: BTreeMap<u64, u32>,
    /// Reopens so far.
    reopens: u32,
    trace: bool,
    /// An id nothing ever stores.
    bogus: BlobId,
}

fn open(dir: &std::path::Path, create: bool) -> Store {
    Store::options()
        .pack_size(1 << 20)
        .durability(Durability::Eventual)
        .threads(2)
        .create(create)
        .open(dir)
        .unwrap_or_else(|e| panic!("opening the store: {e} ({e:?})"))
}

impl World {
    fn store(&self) -> &Store {
        self.store.as_ref().expect("store open")
    }

    fn build(&self, spec: &Content) -> Vec<u8> {
        let mut out = Vec::new();
        for part in spec.parts.iter().take(MAX_PARTS) {
            if out.len() >= MAX_CONTENT {
                break;
            }
            match part {
                Part::Noise { seed, skip, len } => {
                    let start = *skip as u64 * 64;
                    let n = (*len as u64 * 4).min((MAX_CONTENT - out.len()) as u64);
                    push_capped(
                        &mut out,
                        (start..start + n).map(|p| stream_word(*seed, p / 8).to_le_bytes()[(p % 8) as usize]),
                    );
                }
                Part::Floats { seed, spread, count } => {
                    let n = (*count as u64).min(((MAX_CONTENT - out.len()) / 4 + 1) as u64);
                    push_capped(&mut out, (0..n).flat_map(|i| float_bytes(*seed, *spread, i)));
                }
                Part::Repeat { pattern, times } => {
                    let p = &pattern[..pattern.len().min(64)];
                    if !p.is_empty() {
                        let n = (*times as usize).min((MAX_CONTENT - out.len()) / p.len() + 1);
                        push_capped(&mut out, p.iter().copied().cycle().take(p.len() * n));
                    }
                }
                Part::Copy { from, start, len } => {
                    if let Some(src) = self.source(*from) {
                        if !src.is_empty() {
                            let s = *start as usize % src.len();
                            let e = s + (*len as usize % (src.len() - s + 1));
                            push_capped(&mut out, src[s..e].iter().copied());
                        }
                    }
                }
                Part::Raw(bytes) => push_capped(&mut out, bytes.iter().take(1024).copied()),
                Part::Safetensors { seed, dtype, a, b } => {
                    push_capped(&mut out, safetensors(*seed, *dtype, *a, *b))
                }
                Part::Nudge { from, seed, every } => {
                    if let Some(src) = self.source(*from) {
                        let n = nudged(&src, *seed, *every);
                        push_capped(&mut out, n);
                    }
                }
            }
        }
        out
    }

    /// The content `Copy` and `Nudge` take from: any blob the model knows,
    /// or a session's.
    fn source(&self, from: u8) -> Option<Arc<Vec<u8>>> {
        let sources = self.known.len() + self.sessions.len();
        if sources == 0 {
            return None;
        }
        let k = from as usize % sources;
        Some(if k < self.known.len() {
            Arc::clone(&self.blobs[&self.known[k]].content)
        } else {
            Arc::clone(&self.sessions.values().nth(k - self.known.len()).unwrap().content)
        })
    }

    fn pick_blob(&self, sel: u8) -> BlobId {
        let k = sel as usize % (self.known.len() + 1);
        if k == self.known.len() {
            self.bogus
        } else {
            self.known[k]
        }
    }

    fn live(&self, id: &BlobId) -> bool {
        self.blobs.get(id).is_some_and(|b| b.live())
    }

    fn content(&self, id: &BlobId) -> Arc<Vec<u8>> {
        Arc::clone(&self.blobs[id].content)
    }

    fn learn(&mut self, content: &Arc<Vec<u8>>) -> BlobId {
        let id = BlobId(Hash32(*blake3::hash(content).as_bytes()));
        if !self.blobs.contains_key(&id) {
            self.known.push(id);
            self.blobs.insert(
                id,
                BlobState {
                    content: Arc::clone(content),
                    ..Default::default()
                },
            );
        }
        id
    }

    /// Creates the model in `slot` if there is none. Returns the slot index.
    fn ensure_model(&mut self, slot: u8) -> usize {
        let s = slot as usize % MODELS;
        if self.models[s].is_none() {
            let name = format!("m{s}");
            let m = self
                .store()
                .create_model(NewModel::new(name.clone()))
                .unwrap_or_else(|e| panic!("create_model {name} (no model of that name exists): {e} ({e:?})"));
            self.models[s] = Some(ModelState {
                id: m.id(),
                name,
                finalized: false,
                latest: 0,
                versions: BTreeMap::new(),
            });
        }
        s
    }

    fn model(&self, s: usize) -> modelvault::Model {
        let id = self.models[s].as_ref().unwrap().id;
        self.store()
            .model(id)
            .unwrap_or_else(|e| panic!("model m{s}: {e} ({e:?})"))
    }

    /// Applies a version addition to the model (files already checked).
    fn add_version(&mut self, s: usize, v: u32, mut files: Files) {
        files.sort();
        for (_, b, _) in &files {
            self.blobs.get_mut(b).unwrap().refs += 1;
        }
        let m = self.models[s].as_mut().unwrap();
        assert_eq!(v, m.latest + 1, "version number of {}", m.name);
        m.latest = v;
        m.versions.insert(v, files);
    }

    /// Checks a delete report against the model and applies it unless a dry run.
    fn delete_versions(&mut self, s: usize, vs: &[u32], rep: &DeleteReport, dry: bool, model_too: bool) {
        let m = self.models[s].as_ref().unwrap();
        let want: Vec<(EntityId, u32)> = vs.iter().map(|v| (m.id, *v)).collect();
        let mut got = rep.versions.clone();
        got.sort();
        assert_eq!(got, want, "versions deleted from {}", m.name);
        assert_eq!(rep.dry_run, dry, "report dry_run");
        assert_eq!(rep.models, if model_too { vec![m.id] } else { vec![] }, "models deleted");
        let mut drops: BTreeMap<BlobId, u64> = BTreeMap::new();
        for v in vs {
            for (_, b, _) in &m.versions[v] {
                *drops.entry(*b).or_default() += 1;
            }
        }
        let freed = drops
            .iter()
            .filter(|(b, n)| {
                let st = &self.blobs[b];
                st.holds + st.refs == **n
            })
            .count() as u64;
        assert_eq!(rep.blobs_freed, freed, "blobs freed by deleting {vs:?} of {}", m.name);
        if freed == 0 {
            assert_eq!(rep.bytes_freed, 0, "bytes freed with no blob freed");
        }
        if dry {
            return;
        }
        for (b, n) in drops {
            let st = self.blobs.get_mut(&b).unwrap();
            st.refs = st.refs.checked_sub(n).expect("model refs underflow");
        }
        let m = self.models[s].as_mut().unwrap();
        for v in vs {
            m.versions.remove(v);
        }
        if model_too {
            self.models[s] = None;
        }
    }

    fn trace(&self, msg: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("    {}", msg());
        }
    }

    // ------------------------------------------------------------ ops

    fn run(&mut self, i: usize, op: &Op) {
        match op {
            Op::Put { content, split, put_blob } => {
                let c = Arc::new(self.build(content));
                let r = if *put_blob {
                    self.store().put_blob(&c[..])
                } else {
                    let mut w = self.store().blob_writer();
                    write_split(&mut w, &c, *split);
                    assert_eq!(w.len(), c.len() as u64, "writer len");
                    w.finish()
                };
                let id = r.unwrap_or_else(|e| panic!("op {i}: put of {} bytes: {e} ({e:?})", c.len()));
                let want = self.learn(&c);
                assert_eq!(id, want, "op {i}: blob id of the content");
                self.blobs.get_mut(&id).unwrap().holds += 1;
                self.trace(|| format!("put {} bytes -> {id}", c.len()));
            }
            Op::AddStaged { model, files } => {
                let s = self.ensure_model(*model);
                let mut staged: Vec<(String, StagedBlob)> = Vec::new();
                let mut entries: Files = Vec::new();
                let mut contents = Vec::new();
                for f in files.iter().take(MAX_FILES) {
                    let c = Arc::new(self.build(&f.content));
                    let path = PATHS[f.path as usize % PATHS.len()].to_string();
                    let mut w = self.store().blob_writer();
                    write_split(&mut w, &c, 0);
                    let sb = w
                        .stage()
                        .unwrap_or_else(|e| panic!("op {i}: stage of {} bytes: {e} ({e:?})", c.len()));
                    let id = BlobId(Hash32(*blake3::hash(&c).as_bytes()));
                    assert_eq!(sb.id(), id, "op {i}: staged blob id");
                    assert_eq!(sb.len(), c.len() as u64, "op {i}: staged blob len");
                    entries.push((path.clone(), id, c.len() as u64));
                    contents.push(c);
                    staged.push((path, sb));
                }
                let want = self.version_outcome(s, &entries);
                let r = self.model(s).add_version_staged(staged, None);
                self.trace(|| format!("add_version_staged m{s} {entries:?} -> {r:?} (want {want:?})"));
                if let Some(v) = expect(&format!("op {i}: add_version_staged"), r, want) {
                    for c in &contents {
                        self.learn(c);
                    }
                    self.add_version(s, v, entries);
                    self.check_version(s, v);
                }
            }
            Op::AddExisting { model, files } => {
                let s = self.ensure_model(*model);
                let mut entries: Files = Vec::new();
                let mut fes = Vec::new();
                // add_version checks each file in order (path, blob, size) before the rest.
                let mut early: Option<Kind> = None;
                for f in files.iter().take(MAX_FILES) {
                    let path = PATHS[f.path as usize % PATHS.len()].to_string();
                    let blob = self.pick_blob(f.blob);
                    let size = self.blobs.get(&blob).map_or(7, |b| b.content.len() as u64);
                    let size = if f.wrong_size { size + 1 } else { size };
                    if early.is_none() {
                        early = if !valid_path(&path) {
                            Some(Kind::Invalid)
                        } else if !self.live(&blob) {
                            Some(Kind::NotFound)
                        } else if f.wrong_size {
                            Some(Kind::Invalid)
                        } else {
                            None
                        };
                    }
                    entries.push((path.clone(), blob, size));
                    fes.push(FileEntry { path, blob, size });
                }
                let want = match early {
                    Some(k) => Err(k),
                    None => self.version_outcome(s, &entries),
                };
                let r = self.model(s).add_version(fes);
                self.trace(|| format!("add_version m{s} {entries:?} -> {r:?} (want {want:?})"));
                if let Some(v) = expect(&format!("op {i}: add_version"), r, want) {
                    self.add_version(s, v, entries);
                    self.check_version(s, v);
                }
            }
            Op::Read { blob, full, buf, seeks } => {
                let id = self.pick_blob(*blob);
                let live = self.live(&id);
                let r = self.store().blob_reader(&id);
                self.trace(|| format!("read {id} live={live} full={full} seeks={seeks:?}"));
                let Some(mut r) = expect(
                    &format!("op {i}: blob_reader {id}"),
                    r.map(|r| ReaderDbg(Some(r))),
                    if live { Ok(()) } else { Err(Kind::NotFound) },
                ) else {
                    return;
                };
                let r = r.0.as_mut().unwrap();
                let c = self.content(&id);
                let size = c.len() as u64;
                assert_eq!(r.len(), size, "op {i}: reader len");
                assert_eq!(r.id(), id, "op {i}: reader id");
                let bufsize = (*buf as usize % 70_000).max(1);
                let mut pos = 0u64;
                if *full {
                    let got = read_n(r, usize::MAX, bufsize)
                        .unwrap_or_else(|e| panic!("op {i}: reading {id} fully: {e}"));
                    assert!(got[..] == c[..], "op {i}: content of {id} (got {} bytes, want {size})", got.len());
                    pos = size;
                }
                for sk in seeks.iter().take(MAX_SEEKS) {
                    let (whence, target) = match sk.whence % 3 {
                        0 => {
                            let t = sk.off as u64 % (size + 2);
                            (SeekFrom::Start(t), t)
                        }
                        1 => {
                            let d = sk.off as u64 % (size + 1);
                            (SeekFrom::End(-(d as i64)), size - d)
                        }
                        _ => {
                            let t = sk.off as u64 % (size + 2);
                            (SeekFrom::Current(t as i64 - pos as i64), t)
                        }
                    };
                    let at = r
                        .seek(whence)
                        .unwrap_or_else(|e| panic!("op {i}: seek {whence:?} in {id}: {e}"));
                    assert_eq!(at, target, "op {i}: seek {whence:?} in {id} (size {size}, pos {pos})");
                    let want_n = (sk.len as usize % (MAX_CONTENT + 1)).min(size.saturating_sub(at) as usize);
                    let got = read_n(r, sk.len as usize % (MAX_CONTENT + 1), bufsize)
                        .unwrap_or_else(|e| panic!("op {i}: read at {at} of {id}: {e}"));
                    let s = at.min(size) as usize;
                    assert!(
                        got[..] == c[s..s + want_n],
                        "op {i}: {} bytes at {at} of {id} (size {size}): got {} bytes, content differs",
                        want_n,
                        got.len()
                    );
                    pos = at + got.len() as u64;
                    let p = r.stream_position().unwrap_or_else(|e| panic!("op {i}: position: {e}"));
                    assert_eq!(p, pos, "op {i}: stream position after reading");
                }
            }
            Op::Release { blob } => {
                let id = self.pick_blob(*blob);
                self.release(i, id, "");
            }
            Op::DeleteVersion { model, version, force, dry } => {
                let s = self.ensure_model(*model);
                let m = self.models[s].as_ref().unwrap();
                let v = *version as u32 % (m.latest + 2);
                let want = if m.finalized && !force {
                    Err(Kind::Immutable)
                } else if !m.versions.contains_key(&v) {
                    Err(Kind::NotFound)
                } else {
                    Ok(())
                };
                let r = self
                    .model(s)
                    .delete_version(v, DeleteOptions::new().force(*force).dry_run(*dry));
                self.trace(|| format!("delete_version m{s}@{v} force={force} dry={dry} -> {r:?} (want {want:?})"));
                if let Some(rep) = expect(&format!("op {i}: delete_version m{s}@{v}"), r, want) {
                    self.delete_versions(s, &[v], &rep, *dry, false);
                }
            }
            Op::DeleteModel { model, force, dry } => {
                let s = self.ensure_model(*model);
                let m = self.models[s].as_ref().unwrap();
                let want = if m.finalized && !force { Err(Kind::Immutable) } else { Ok(()) };
                let vs: Vec<u32> = m.versions.keys().copied().collect();
                let r = self.model(s).delete(DeleteOptions::new().force(*force).dry_run(*dry));
                self.trace(|| format!("delete model m{s} force={force} dry={dry} -> {r:?} (want {want:?})"));
                if let Some(rep) = expect(&format!("op {i}: delete model m{s}"), r, want) {
                    self.delete_versions(s, &vs, &rep, *dry, true);
                }
            }
            Op::Prune { model, keep_last, dry } => {
                let s = self.ensure_model(*model);
                let keep = *keep_last as u32 % 4;
                let m = self.models[s].as_ref().unwrap();
                let vs: Vec<u32> = if m.finalized {
                    Vec::new()
                } else {
                    let all: Vec<u32> = m.versions.keys().copied().collect();
                    all[..all.len().saturating_sub(keep as usize)].to_vec()
                };
                let r = self.model(s).prune(&Retention::new().keep_last(keep), *dry);
                self.trace(|| format!("prune m{s} keep_last={keep} dry={dry} -> {r:?}"));
                let rep = expect(&format!("op {i}: prune m{s}"), r, Ok(())).unwrap();
                self.delete_versions(s, &vs, &rep, *dry, false);
            }
            Op::Finalize { model } => {
                let s = self.ensure_model(*model);
                let want = if self.models[s].as_ref().unwrap().finalized {
                    Err(Kind::Immutable)
                } else {
                    Ok(())
                };
                let r = self.model(s).finalize();
                self.trace(|| format!("finalize m{s} -> {r:?} (want {want:?})"));
                if expect(&format!("op {i}: finalize m{s}"), r, want).is_some() {
                    self.models[s].as_mut().unwrap().finalized = true;
                }
            }
            Op::Gc { compact_below, expire_uploads } => {
                let mut opts = GcOptions::new().compact_below(*compact_below as f64 / 255.0);
                if *expire_uploads {
                    opts = opts.expire_uploads_after(Duration::ZERO);
                }
                let rep = self
                    .store()
                    .gc(&opts)
                    .unwrap_or_else(|e| panic!("op {i}: gc: {e} ({e:?})"));
                self.trace(|| format!("gc compact_below={compact_below}/255 expire={expire_uploads} -> {rep:?}"));
                let expired = if *expire_uploads { self.sessions.len() as u64 } else { 0 };
                assert_eq!(rep.uploads_expired, expired, "op {i}: sessions expired by gc");
                assert_eq!(rep.chunks_held, 0, "op {i}: chunks held with no upload in flight");
                assert_eq!(rep.packs_busy, 0, "op {i}: packs busy with no upload in flight");
                if *expire_uploads {
                    let ids: Vec<u64> = self.sessions.keys().copied().collect();
                    for id in ids {
                        self.gone_sessions.insert(id, self.reopens);
                    }
                    self.sessions.clear();
                }
            }
            Op::Suspend { content, prefix, split } => {
                let c = Arc::new(self.build(content));
                let p = *prefix as usize % (c.len() + 1);
                let mut w = self.store().blob_writer();
                write_split(&mut w, &c[..p], *split);
                let id = w
                    .suspend()
                    .unwrap_or_else(|e| panic!("op {i}: suspend after {p} bytes: {e} ({e:?})"));
                assert!(!self.sessions.contains_key(&id.get()), "op {i}: session id {id} is another live session's");
                // Upload ids (manifest ids) are re-derived from the keys that
                // exist at open, so one that went away may come back after a
                // reopen (not before).
                if let Some(gone_at) = self.gone_sessions.remove(&id.get()) {
                    assert!(
                        gone_at < self.reopens,
                        "op {i}: session id {id} reused without a reopen since its session went away"
                    );
                    self.trace(|| format!("session id {id} reused after a reopen"));
                }
                let durable = self.session_durable(id.get());
                assert!(durable <= p as u64, "op {i}: session {id} durable {durable} > {p} bytes written");
                self.trace(|| format!("suspend after {p} of {} bytes -> session {id}, durable {durable}", c.len()));
                self.sessions.insert(id.get(), Session { content: c, durable });
            }
            Op::Resume { session, twice, end } => self.resume(i, *session, *twice, end),
            Op::Abandon { content, prefix } => {
                let c = self.build(content);
                let p = *prefix as usize % (c.len() + 1);
                let mut w = self.store().blob_writer();
                write_split(&mut w, &c[..p], 0);
                drop(w);
                self.trace(|| format!("abandon after {p} of {} bytes", c.len()));
            }
            Op::Reopen => {
                self.store = None;
                self.store = Some(open(&self.dir, false));
                self.reopens += 1;
                self.trace(|| "reopen".to_string());
            }
            Op::PutDelta { base, content, release_base, split } => {
                let base = self.pick_blob(*base);
                let c = Arc::new(self.build(content));
                let r = self.store().blob_writer().delta_base(&base);
                let Some(w) = self.writer_on(i, "delta_base", &base, r) else {
                    return;
                };
                if *release_base {
                    self.release(i, base, " (the base)");
                }
                self.finish_put(i, w, &c, *split, &format!("on base {base}"));
            }
            Op::PutReverse { older, content, release_older, split } => {
                let older = self.pick_blob(*older);
                let c = Arc::new(self.build(content));
                let r = self.store().blob_writer().cut_like(&older);
                let Some(w) = self.writer_on(i, "cut_like", &older, r) else {
                    return;
                };
                let id = self.finish_put(i, w, &c, *split, &format!("cut like {older}"));
                if *release_older {
                    self.release(i, older, " (the older)");
                }
                self.reverse_delta(i, older, id);
            }
            Op::ReverseDelta { older, newer } => {
                let (older, newer) = (self.pick_blob(*older), self.pick_blob(*newer));
                self.reverse_delta(i, older, newer);
            }
        }
    }

    /// Releases one hold of `id` (`what` says which, for messages):
    /// NotFound unless it is stored, InvalidInput if it is only referenced.
    fn release(&mut self, i: usize, id: BlobId, what: &str) {
        let want = if !self.live(&id) {
            Err(Kind::NotFound)
        } else if self.blobs[&id].holds == 0 {
            Err(Kind::Invalid)
        } else {
            Ok(())
        };
        let r = self.store().release_blob(&id);
        self.trace(|| format!("release{what} {id} -> {r:?} (want {want:?})"));
        if expect(&format!("op {i}: release_blob {id}{what}"), r, want).is_some() {
            self.blobs.get_mut(&id).unwrap().holds -= 1;
        }
    }

    /// The outcome of `delta_base` / `cut_like` (`what`) of `base`: NotFound
    /// unless it is stored. The writer when it was accepted.
    fn writer_on(
        &self,
        i: usize,
        what: &str,
        base: &BlobId,
        r: modelvault::Result<modelvault::BlobWriter>,
    ) -> Option<modelvault::BlobWriter> {
        let want = if self.live(base) { Ok(()) } else { Err(Kind::NotFound) };
        self.trace(|| format!("{what} {base} -> {:?} (want {want:?})", r.as_ref().map(|_| ())));
        // (A BlobWriter is not Debug: check the outcome without it.)
        let (r, w) = match r {
            Ok(w) => (Ok(()), Some(w)),
            Err(e) => (Err(e), None),
        };
        expect(&format!("op {i}: {what} {base}"), r, want);
        w
    }

    /// Writes `c` to `w` (pieces of `split` bytes) and finishes: a new hold
    /// on the blob of that content. `how` is for messages.
    fn finish_put(
        &mut self,
        i: usize,
        mut w: modelvault::BlobWriter,
        c: &Arc<Vec<u8>>,
        split: u16,
        how: &str,
    ) -> BlobId {
        write_split(&mut w, c, split);
        assert_eq!(w.len(), c.len() as u64, "writer len");
        let id = w
            .finish()
            .unwrap_or_else(|e| panic!("op {i}: put of {} bytes {how}: {e} ({e:?})", c.len()));
        let want = self.learn(c);
        assert_eq!(id, want, "op {i}: blob id of the content");
        self.blobs.get_mut(&id).unwrap().holds += 1;
        self.trace(|| format!("put {} bytes {how} -> {id}", c.len()));
        id
    }

    /// `reverse_delta(older, newer)` against the model: NotFound unless both
    /// are stored; nothing done for a blob and itself or an empty one; else
    /// a consistent report (every chunk of `older` examined, each paired at
    /// most once, rebased ones smaller by `delta_min_saving`, nothing busy),
    /// no chunk, byte or blob count changed, both blobs read back the same,
    /// and doing it again rebases nothing.
    fn reverse_delta(&mut self, i: usize, older: BlobId, newer: BlobId) {
        let before = self.store().stats();
        let want = if self.live(&older) && self.live(&newer) { Ok(()) } else { Err(Kind::NotFound) };
        let r = self.store().reverse_delta(&older, &newer);
        self.trace(|| format!("reverse_delta {older} -> {newer}: {r:?} (want {want:?})"));
        let what = format!("op {i}: reverse_delta {older} -> {newer}");
        let Some(rep) = expect(&what, r, want) else {
            return;
        };
        let (co, cn) = (self.content(&older), self.content(&newer));
        if older == newer || co.is_empty() || cn.is_empty() {
            assert_eq!(rep, Default::default(), "{what}: nothing to do");
        } else {
            let rec = self
                .store()
                .blob_info(&older)
                .unwrap_or_else(|e| panic!("{what}: blob_info: {e}"))
                .unwrap_or_else(|| panic!("{what}: older blob record gone"));
            assert_eq!(rep.chunks, rec.chunks, "{what}: chunks examined: {rep:?}");
            assert!(rep.rebased <= rep.paired && rep.paired <= rep.chunks, "{what}: {rep:?}");
            assert_eq!(rep.busy, 0, "{what}: nothing else is in flight: {rep:?}");
            assert_eq!(rep.rebased > 0, rep.bytes_before > 0, "{what}: {rep:?}");
            assert!(
                rep.bytes_after as f64 <= rep.bytes_before as f64 * 0.97,
                "{what}: rebased chunks smaller by delta_min_saving: {rep:?}"
            );
        }
        let after = self.store().stats();
        assert_eq!(
            (after.blobs, after.chunks, after.unique_bytes, after.logical_bytes),
            (before.blobs, before.chunks, before.unique_bytes, before.logical_bytes),
            "{what}: stats (blobs, chunks, unique bytes, logical bytes) changed"
        );
        for (id, c) in [(older, &co), (newer, &cn)] {
            let mut got = Vec::new();
            self.store()
                .blob_reader(&id)
                .and_then(|mut r| r.read_to_end(&mut got).map_err(|e| Error::io("<read>", e)))
                .unwrap_or_else(|e| panic!("{what}: read of {id} after: {e} ({e:?})"));
            assert!(got[..] == c[..], "{what}: {id} reads back wrong after");
        }
        let again = self
            .store()
            .reverse_delta(&older, &newer)
            .unwrap_or_else(|e| panic!("{what}, again: {e} ({e:?})"));
        assert_eq!(
            (again.chunks, again.paired, again.rebased),
            (rep.chunks, rep.paired, 0),
            "{what}, again: {again:?} after {rep:?}"
        );
    }

    /// What adding a version of `entries` (blobs present) to slot `s` must give.
    fn version_outcome(&self, s: usize, entries: &Files) -> Result<(), Kind> {
        if entries.iter().any(|(p, _, _)| !valid_path(p)) {
            return Err(Kind::Invalid);
        }
        let paths: BTreeSet<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
        if paths.len() != entries.len() {
            return Err(Kind::Invalid);
        }
        for p in &paths {
            for (k, _) in p.match_indices('/') {
                if paths.contains(&p[..k]) {
                    return Err(Kind::Invalid);
                }
            }
        }
        if self.models[s].as_ref().unwrap().finalized {
            return Err(Kind::Immutable);
        }
        Ok(())
    }

    fn check_version(&self, s: usize, v: u32) {
        let m = self.models[s].as_ref().unwrap();
        let got = self
            .model(s)
            .version(Some(v))
            .unwrap_or_else(|e| panic!("version {}@{v}: {e} ({e:?})", m.name));
        let files: Files = got.files.iter().map(|f| (f.path.clone(), f.blob, f.size)).collect();
        assert_eq!(files, m.versions[&v], "files of {}@{v}", m.name);
        assert_eq!(got.version, v);
        assert_eq!(got.name, m.name);
    }

    fn session_durable(&self, id: u64) -> u64 {
        let ups = self
            .store()
            .uploads()
            .unwrap_or_else(|e| panic!("uploads: {e} ({e:?})"));
        ups.iter()
            .find(|u| u.id == id)
            .unwrap_or_else(|| panic!("session {id} not listed by uploads(): {ups:?}"))
            .durable_bytes
    }

    fn resume(&mut self, i: usize, sel: u8, twice: bool, end: &ResumeEnd) {
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.extend(self.gone_sessions.keys().copied());
        ids.push(999_999_999);
        let sid = ids[sel as usize % ids.len()];
        let uid: UploadId = sid.to_string().parse().expect("upload id parses");
        let live = self.sessions.contains_key(&sid);
        let r = self.store().resume_upload(uid);
        self.trace(|| format!("resume session {sid} (live={live})"));
        let Some(w) = expect(
            &format!("op {i}: resume_upload {sid}"),
            r.map(WriterDbg),
            if live { Ok(()) } else { Err(Kind::NotFound) },
        ) else {
            return;
        };
        let mut w = w.0;
        let sess = self.sessions.remove(&sid).unwrap();
        let c = sess.content;
        assert_eq!(w.len(), sess.durable, "op {i}: resumed writer len = durable bytes");
        assert_eq!(w.upload_id(), Some(uid), "op {i}: resumed writer's upload id");
        if twice {
            let r2 = self.store().resume_upload(uid).map(WriterDbg);
            expect(&format!("op {i}: second resume_upload {sid} while open"), r2, Err(Kind::Invalid));
        }
        let open = self
            .store()
            .uploads()
            .unwrap_or_else(|e| panic!("uploads: {e}"))
            .into_iter()
            .find(|u| u.id == sid)
            .map(|u| u.open);
        assert_eq!(open, Some(true), "op {i}: session {sid} listed as open while resumed");
        let at = sess.durable as usize;
        match end {
            ResumeEnd::Finish => {
                write_split(&mut w, &c[at..], 0);
                let id = w
                    .finish()
                    .unwrap_or_else(|e| panic!("op {i}: finish resumed {sid}: {e} ({e:?})"));
                let want = self.learn(&c);
                assert_eq!(id, want, "op {i}: id of resumed upload {sid}");
                self.blobs.get_mut(&id).unwrap().holds += 1;
                self.gone_sessions.insert(sid, self.reopens);
                self.trace(|| format!("  finished -> {id}"));
            }
            ResumeEnd::Stage { model, path } => {
                write_split(&mut w, &c[at..], 0);
                let sb = w
                    .stage()
                    .unwrap_or_else(|e| panic!("op {i}: stage resumed {sid}: {e} ({e:?})"));
                let id = BlobId(Hash32(*blake3::hash(&c).as_bytes()));
                assert_eq!(sb.id(), id, "op {i}: id of resumed upload {sid}");
                let s = self.ensure_model(*model);
                let path = PATHS[*path as usize % PATHS.len()].to_string();
                let entries = vec![(path.clone(), id, c.len() as u64)];
                let want = self.version_outcome(s, &entries);
                let r = self.model(s).add_version_staged(vec![(path, sb)], None);
                self.trace(|| format!("  staged into m{s} -> {r:?} (want {want:?})"));
                if let Some(v) = expect(&format!("op {i}: add_version_staged of resumed {sid}"), r, want) {
                    self.learn(&c);
                    self.add_version(s, v, entries);
                    self.check_version(s, v);
                }
                self.gone_sessions.insert(sid, self.reopens);
            }
            ResumeEnd::Drop { extra } => {
                let e = at + (*extra as usize % (c.len() - at + 1));
                write_split(&mut w, &c[at..e], 0);
                drop(w);
                self.gone_sessions.insert(sid, self.reopens);
                self.trace(|| format!("  dropped after {e} bytes"));
            }
            ResumeEnd::Suspend { extra } => {
                let e = at + (*extra as usize % (c.len() - at + 1));
                write_split(&mut w, &c[at..e], 0);
                let id2 = w
                    .suspend()
                    .unwrap_or_else(|err| panic!("op {i}: suspend resumed {sid} again: {err} ({err:?})"));
                assert_eq!(id2, uid, "op {i}: a resumed session suspends under its own id");
                let durable = self.session_durable(sid);
                assert!(
                    durable >= sess.durable && durable <= e as u64,
                    "op {i}: session {sid} durable {durable}, was {}, written {e}",
                    sess.durable
                );
                self.trace(|| format!("  suspended again after {e} bytes, durable {durable}"));
                self.sessions.insert(sid, Session { content: c, durable });
            }
        }
    }

    // ------------------------------------------------------------ checks

    /// Cheap agreement checks after every operation.
    fn check(&self, i: usize) {
        let store = self.store();
        for id in &self.known {
            let has = store
                .contains_blob(id)
                .unwrap_or_else(|e| panic!("after op {i}: contains_blob: {e}"));
            let st = &self.blobs[id];
            assert_eq!(
                has,
                st.live(),
                "after op {i}: blob {id} ({} bytes, holds {}, refs {}) stored?",
                st.content.len(),
                st.holds,
                st.refs
            );
        }
        assert!(!store.contains_blob(&self.bogus).unwrap(), "bogus blob stored");
        let stats = store.stats();
        let live = self.blobs.values().filter(|b| b.live()).count() as u64;
        let versions: u64 = self.models.iter().flatten().map(|m| m.versions.len() as u64).sum();
        let logical: u64 = self
            .models
            .iter()
            .flatten()
            .flat_map(|m| m.versions.values().flatten())
            .map(|(_, _, n)| *n)
            .sum();
        assert_eq!(stats.blobs, live, "after op {i}: stats.blobs");
        assert_eq!(stats.versions, versions, "after op {i}: stats.versions");
        assert_eq!(stats.logical_bytes, logical, "after op {i}: stats.logical_bytes");
        for (s, m) in self.models.iter().enumerate() {
            if let Some(m) = m {
                let vs = self
                    .model(s)
                    .versions()
                    .unwrap_or_else(|e| panic!("after op {i}: versions of {}: {e}", m.name));
                assert_eq!(vs, m.versions.keys().copied().collect::<Vec<_>>(), "after op {i}: versions of {}", m.name);
            }
        }
        let ups = store
            .uploads()
            .unwrap_or_else(|e| panic!("after op {i}: uploads: {e}"));
        let got: BTreeMap<u64, (u64, bool)> = ups.iter().map(|u| (u.id, (u.durable_bytes, u.open))).collect();
        let want: BTreeMap<u64, (u64, bool)> = self.sessions.iter().map(|(k, s)| (*k, (s.durable, false))).collect();
        assert_eq!(got, want, "after op {i}: upload sessions (id -> durable, open)");
    }

    /// The expensive checks at the end of an input.
    fn final_check(&mut self) {
        let store = self.store().clone();
        for id in &self.known {
            if !self.live(id) {
                continue;
            }
            let mut r = store.blob_reader(id).unwrap_or_else(|e| panic!("final read of {id}: {e}"));
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap_or_else(|e| panic!("final read of {id}: {e}"));
            assert!(got[..] == self.blobs[id].content[..], "final content of {id}");
        }
        for s in 0..MODELS {
            if let Some(m) = &self.models[s] {
                for v in m.versions.keys() {
                    self.check_version(s, *v);
                }
            }
        }
        let rep = store
            .verify(VerifyOptions::new().read_data(true))
            .unwrap_or_else(|e| panic!("verify: {e} ({e:?})"));
        assert!(rep.is_clean(), "verify --read-data: {:#?}", rep.problems);
        self.trace(|| format!("verify: {} chunks, {} of them deltas", rep.chunks, rep.delta_chunks));
        // Let everything go: no chunk may be left after a collection.
        for id in self.known.clone() {
            for _ in 0..self.blobs[&id].holds {
                store.release_blob(&id).unwrap_or_else(|e| panic!("final release of {id}: {e}"));
            }
        }
        for s in 0..MODELS {
            if self.models[s].is_some() {
                self.model(s)
                    .delete(DeleteOptions::new().force(true))
                    .unwrap_or_else(|e| panic!("final delete of m{s}: {e}"));
            }
        }
        let opts = GcOptions::new().expire_uploads_after(Duration::ZERO).compact_below(1.0);
        let g = store.gc(&opts).unwrap_or_else(|e| panic!("final gc: {e} ({e:?})"));
        assert_eq!(g.uploads_expired, self.sessions.len() as u64, "final gc: sessions expired");
        let stats = store.stats();
        assert_eq!(
            (stats.blobs, stats.versions, stats.chunks, stats.unique_bytes),
            (0, 0, 0, 0),
            "stats (blobs, versions, chunks, unique bytes) once everything is released and collected: {stats:?}, gc {g:?}"
        );
        let rep = store
            .verify(VerifyOptions::new().read_data(true))
            .unwrap_or_else(|e| panic!("verify after the final gc: {e} ({e:?})"));
        assert!(rep.is_clean(), "verify after the final gc: {:#?}", rep.problems);
        assert_eq!(rep.chunks, 0, "chunks left after the final gc");
    }
}

fn valid_path(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// `src` with the low byte of every `every % 8 + 1`-th 4-byte word changed
/// (by a nonzero value from `seed`), past its safetensors header if it
/// starts with one.
fn nudged(src: &[u8], seed: u8, every: u8) -> Vec<u8> {
    let mut out = src.to_vec();
    let skip = match src.get(..8) {
        Some(h) => match u64::from_le_bytes(h.try_into().unwrap()).checked_add(8) {
            Some(end) if end <= src.len() as u64 => end as usize,
            _ => 0,
        },
        None => 0,
    };
    let step = (every % 8 + 1) as usize * 4;
    for (k, at) in (skip..out.len()).step_by(step).enumerate() {
        out[at] ^= stream_word(seed, k as u64) as u8 | 1;
    }
    out
}

fn write_split(w: &mut modelvault::BlobWriter, data: &[u8], split: u16) {
    if split == 0 {
        w.write_all(data).unwrap_or_else(|e| panic!("write: {e}"));
    } else {
        for piece in data.chunks(split as usize) {
            w.write_all(piece).unwrap_or_else(|e| panic!("write: {e}"));
        }
    }
}

/// Reads up to `max` bytes (fewer only at the end) with reads of `buf` bytes.
fn read_n(r: &mut modelvault::BlobReader, max: usize, buf: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = vec![0u8; buf];
    while out.len() < max {
        let want = (max - out.len()).min(buf);
        let n = r.read(&mut b[..want])?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[..n]);
    }
    Ok(out)
}

/// `Debug` wrappers so results can go through [`expect`].
struct ReaderDbg(Option<modelvault::BlobReader>);
impl std::fmt::Debug for ReaderDbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobReader")
    }
}
struct WriterDbg(modelvault::BlobWriter);
impl std::fmt::Debug for WriterDbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobWriter(upload {:?})", self.0.upload_id())
    }
}

/// Where stores are made: `$MV_FUZZ_TMP`, else /dev/shm if usable, else the
/// system temporary directory.
fn scratch_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(d) = std::env::var_os("MV_FUZZ_TMP") {
            return PathBuf::from(d);
        }
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(&shm).is_ok() {
            return shm;
        }
        std::env::temp_dir()
    })
}

fuzz_target!(|data: &[u8]| {
    let ops = decode(data);
    let trace = std::env::var_os("MV_FUZZ_TRACE").is_some();
    let tmp = tempfile::Builder::new()
        .prefix("mv-fuzz-")
        .tempdir_in(scratch_root())
        .expect("temporary directory");
    let dir = tmp.path().join("vault");
    let mut w = World {
        store: Some(open(&dir, true)),
        dir,
        blobs: HashMap::new(),
        known: Vec::new(),
        models: [None, None],
        sessions: BTreeMap::new(),
        gone_sessions: BTreeMap::new(),
        reopens: 0,
        trace,
        bogus: BlobId(Hash32(*blake3::hash(b"never stored by api_sequence").as_bytes())),
    };
    for (i, op) in ops.iter().enumerate() {
        if trace {
            eprintln!("op {i}: {op:?}");
        }
        w.run(i, op);
        w.check(i);
    }
    w.final_check();
    drop(w);
    drop(tmp);
    wait_for_ingest_threads();
});

/// A store's ingest threads are not joined (src/blob/pipeline.rs): they exit
/// on their own once the store is dropped. Wait for that (up to 5 s), so the
/// leak check libFuzzer runs after each input does not catch a thread half
/// way through its exit (its thread-locals look leaked then).
fn wait_for_ingest_threads() {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        let busy = tasks.flatten().any(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("modelvault-inge"))
        });
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
