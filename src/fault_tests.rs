//! Fault injection on the pack file layer (`pack::io::PackIo`). The pack
//! writer's file operations (create, write, fsync, directory fsync) are
//! numbered k = 1, 2, … in the order they start, and for every k until the
//! workload runs clean:
//!
//! - **failed operation**: the k-th operation fails (a write after writing
//!   half its buffer, as a torn write would), later ones succeed;
//! - **power cut**: the machine loses power at the k-th operation: it and
//!   every later one never happen, the workload stops (the process is dead),
//!   and the disk keeps only what was durable at that moment: each pack file
//!   is cut to its length at its last completed fsync (bytes written after
//!   that fsync began are dropped), and a pack created since the last
//!   completed fsync of its directory is gone. The metadata is RocksDB as
//!   the workload left it: with `Durability::Immediate` every commit synced
//!   its WAL before returning, and no commit happens after the cut (a pack
//!   operation that fails poisons the store's write path);
//! - **full disk**: from the k-th operation on, every operation fails with
//!   ENOSPC (a write after writing half its buffer); then space is freed.
//!
//! After each case the store reopens, `verify --read-data` is clean, every
//! acknowledged blob and version reads back intact, and a new upload works.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::meta::records::FileEntry;
use crate::pack::io::{PackFile, PackIo};
use crate::{BlobId, Store, VerifyOptions};

/// What the layer does from its `at`-th operation on (1-based).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Operation `at` fails; a failed write first writes half its buffer.
    FailOnce(u64),
    /// Power cut at operation `at`: it and every later operation fail
    /// without touching the disk; [`FaultIo::power_cut`] then drops what
    /// was not durable.
    Cut(u64),
    /// The disk is full from operation `at` on: every operation fails with
    /// ENOSPC (a write after writing half its buffer) until
    /// [`FaultIo::free_space`].
    Full(u64),
}

struct FaultIo {
    ops: AtomicU64,
    fault: Fault,
    /// Cleared by `free_space`: a full disk stops failing.
    full: AtomicBool,
    files: Mutex<Vec<Arc<FaultFile>>>,
    /// Directories with a completed fsync, and the operation number it
    /// started at (a file created before that is durable in it).
    dir_syncs: Mutex<Vec<(PathBuf, u64)>>,
}

struct FaultFile {
    io: Arc<FaultIo>,
    file: File,
    path: PathBuf,
    /// The operation that created the file (0: it existed before).
    created_at: u64,
    written_end: AtomicU64,
    synced_end: AtomicU64,
}

/// What an operation does, decided when it starts.
enum Outcome {
    Run,
    /// Fails; a write first writes half its buffer (`torn`).
    Fail {
        err: io::Error,
        torn: bool,
    },
}

impl FaultIo {
    fn new(fault: Fault) -> Arc<Self> {
        Arc::new(FaultIo {
            ops: AtomicU64::new(0),
            fault,
            full: AtomicBool::new(true),
            files: Mutex::new(Vec::new()),
            dir_syncs: Mutex::new(Vec::new()),
        })
    }

    /// Numbers the operation starting now and says what it does.
    fn tick(&self) -> (u64, Outcome) {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        let outcome = match self.fault {
            Fault::FailOnce(at) if n == at => Outcome::Fail {
                err: io::Error::other(format!("injected fault at operation {n}")),
                torn: true,
            },
            Fault::Cut(at) if n >= at => Outcome::Fail {
                err: io::Error::other(format!("power cut at operation {at}")),
                torn: false,
            },
            Fault::Full(at) if n >= at && self.full.load(Ordering::SeqCst) => Outcome::Fail {
                err: io::Error::from_raw_os_error(28), // ENOSPC
                torn: true,
            },
            _ => Outcome::Run,
        };
        (n, outcome)
    }

    /// Whether the fault has struck (for a cut: whether the power is off).
    fn triggered(&self) -> bool {
        let (Fault::FailOnce(at) | Fault::Cut(at) | Fault::Full(at)) = self.fault;
        self.ops.load(Ordering::SeqCst) >= at
    }

    fn free_space(&self) {
        self.full.store(false, Ordering::SeqCst);
    }

    /// Leaves on disk only what a power cut at the fault's moment leaves:
    /// packs created since their directory's last completed fsync are gone,
    /// the others end where their last completed fsync left them. Returns
    /// (bytes dropped, files dropped).
    fn power_cut(&self) -> (u64, u64) {
        let syncs = self.dir_syncs.lock();
        let (mut bytes, mut files) = (0, 0);
        for f in self.files.lock().iter() {
            let dir = f.path.parent().unwrap();
            let entry_durable =
                f.created_at == 0 || syncs.iter().any(|(d, at)| d == dir && *at > f.created_at);
            let len = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
            if !entry_durable {
                std::fs::remove_file(&f.path).unwrap();
                bytes += len;
                files += 1;
                continue;
            }
            let keep = f.synced_end.load(Ordering::SeqCst);
            if len > keep {
                OpenOptions::new()
                    .write(true)
                    .open(&f.path)
                    .unwrap()
                    .set_len(keep)
                    .unwrap();
                bytes += len - keep;
            }
        }
        (bytes, files)
    }
}

/// The io layer handed to the store: a shared `FaultIo`.
struct Layer(Arc<FaultIo>);

impl PackIo for Layer {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
        let (n, outcome) = self.0.tick();
        if let Outcome::Fail { err, .. } = outcome {
            return Err(err);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        self.track(file, path, 0, n)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
        if let (_, Outcome::Fail { err, .. }) = self.0.tick() {
            return Err(err);
        }
        let file = OpenOptions::new().write(true).open(path)?;
        let len = file.metadata()?.len();
        self.track(file, path, len, 0)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let (n, outcome) = self.0.tick();
        if let Outcome::Fail { err, .. } = outcome {
            return Err(err);
        }
        File::open(dir)?.sync_all()?;
        self.0.dir_syncs.lock().push((dir.to_path_buf(), n));
        Ok(())
    }
}

impl Layer {
    fn track(
        &self,
        file: File,
        path: &Path,
        len: u64,
        created_at: u64,
    ) -> io::Result<Arc<dyn PackFile>> {
        let f = Arc::new(FaultFile {
            io: Arc::clone(&self.0),
            file,
            path: path.to_path_buf(),
            created_at,
            written_end: AtomicU64::new(len),
            synced_end: AtomicU64::new(len),
        });
        self.0.files.lock().push(Arc::clone(&f));
        Ok(f)
    }
}

impl FaultFile {
    /// fsync: what was written before it started is durable once it returns.
    fn sync(&self, sync: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
        if let (_, Outcome::Fail { err, .. }) = self.io.tick() {
            return Err(err);
        }
        let upto = self.written_end.load(Ordering::SeqCst);
        sync(&self.file)?;
        self.synced_end.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }
}

impl PackFile for FaultFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let buf = match self.io.tick().1 {
            Outcome::Run => buf,
            Outcome::Fail { err, torn: false } => return Err(err),
            Outcome::Fail { err, torn: true } => {
                let half = &buf[..buf.len() / 2];
                FileExt::write_all_at(&self.file, half, offset)?;
                self.written_end
                    .fetch_max(offset + half.len() as u64, Ordering::SeqCst);
                return Err(err);
            }
        };
        FileExt::write_all_at(&self.file, buf, offset)?;
        self.written_end
            .fetch_max(offset + buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(File::sync_data)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(File::sync_all)
    }
}

fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Float-like bytes: every fourth byte low-entropy.
            if i % 4 == 3 {
                0x3c + (x % 3) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

fn open_with(dir: &Path, io: Arc<FaultIo>) -> crate::Result<Store> {
    let mut opts = Store::options().pack_size(1 << 20).threads(2);
    opts.pack_io = Arc::new(Layer(io));
    opts.open(dir)
}

fn read_all(store: &Store, id: &BlobId) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .blob_reader(id)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// What the workload got acknowledged.
#[derive(Default)]
struct Acked {
    blobs: Vec<(BlobId, Vec<u8>)>,
    /// Version number → (file path → blob).
    versions: Vec<(u32, BTreeMap<String, BlobId>)>,
}

/// Four blobs (one spanning pack roll-overs) and two versions; stops at the
/// first error, as a caller would, and before any call once `alive` says
/// the process is dead.
fn workload(store: &Store, acked: &mut Acked, alive: &dyn Fn() -> bool) -> crate::Result<()> {
    let dead = || crate::Error::Poisoned("the process died at the power cut".into());
    let put = |acked: &mut Acked, n: usize, seed: u32| -> crate::Result<()> {
        if !alive() {
            return Err(dead());
        }
        let d = data(n, seed);
        let mut w = store.blob_writer();
        w.write_all(&d).map_err(|e| crate::Error::io("<blob>", e))?;
        let id = w.finish()?;
        acked.blobs.push((id, d));
        Ok(())
    };
    let version = |acked: &mut Acked, blobs: &[usize]| -> crate::Result<()> {
        if !alive() {
            return Err(dead());
        }
        let files = blobs
            .iter()
            .map(|&i| FileEntry {
                path: format!("w{i}"),
                blob: acked.blobs[i].0,
                size: acked.blobs[i].1.len() as u64,
            })
            .collect();
        let v = store.commit_version("m", files)?;
        let files = blobs
            .iter()
            .map(|&i| (format!("w{i}"), acked.blobs[i].0))
            .collect();
        acked.versions.push((v, files));
        Ok(())
    };
    put(acked, 2_500_000, 1)?;
    put(acked, 70_000, 2)?;
    version(acked, &[0, 1])?;
    put(acked, 1_300_000, 3)?;
    put(acked, 900_000, 4)?;
    version(acked, &[2, 3, 1])?;
    Ok(())
}

fn check(dir: &Path, acked: &Acked, base: &(BlobId, Vec<u8>), what: &str) {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let report = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(report.is_clean(), "{what}: {:?}", report.problems);
    assert_eq!(
        read_all(&store, &base.0),
        base.1,
        "{what}: data from before the faults"
    );
    for (id, d) in &acked.blobs {
        assert_eq!(&read_all(&store, id), d, "{what}: acknowledged blob {id}");
    }
    for (v, files) in &acked.versions {
        let got = store
            .version("m", Some(*v))
            .unwrap_or_else(|e| panic!("{what}: acknowledged version {v}: {e}"));
        let got: BTreeMap<String, BlobId> =
            got.files.iter().map(|f| (f.path.clone(), f.blob)).collect();
        assert_eq!(&got, files, "{what}: acknowledged version {v}");
    }
    // The store accepts new writes after recovery.
    let mut w = store.blob_writer();
    w.write_all(&data(200_000, 7)).unwrap();
    let id = w.finish().unwrap();
    assert_eq!(read_all(&store, &id), data(200_000, 7), "{what}");
}

fn base_store(dir: &Path) -> (BlobId, Vec<u8>) {
    let store = Store::options().pack_size(1 << 20).open(dir).unwrap();
    let d = data(600_000, 99);
    let mut w = store.blob_writer();
    w.write_all(&d).unwrap();
    (w.finish().unwrap(), d)
}

#[test]
fn failing_each_file_operation_in_turn_loses_nothing_acknowledged() {
    let mut cases = 0;
    for k in 1.. {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let base = base_store(&dir);
        let io = FaultIo::new(Fault::FailOnce(k));
        let mut acked = Acked::default();
        let result = open_with(&dir, Arc::clone(&io))
            .and_then(|store| workload(&store, &mut acked, &|| true));
        let triggered = io.triggered();
        if triggered {
            assert!(
                result.is_err(),
                "fault {k} was injected but the workload reported success"
            );
        } else {
            result.unwrap();
        }
        check(&dir, &acked, &base, &format!("fault at operation {k}"));
        cases += 1;
        if !triggered {
            break;
        }
        assert!(k < 10_000, "the workload never finished");
    }
    assert!(
        cases > 10,
        "only {cases} fault points: the workload does too little I/O to test"
    );
    eprintln!("{cases} fault points, each recovered with nothing acknowledged lost");
}

#[test]
fn a_power_cut_at_each_file_operation_loses_nothing_acknowledged() {
    let (mut cases, mut dropped_bytes, mut dropped_files) = (0u64, 0u64, 0u64);
    // Acknowledgement counts seen at the cuts: the cuts land all through
    // the workload, not only at its end.
    let mut progress = HashSet::new();
    for k in 1.. {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let base = base_store(&dir);
        let io = FaultIo::new(Fault::Cut(k));
        let mut acked = Acked::default();
        let result = {
            let alive = || !io.triggered();
            open_with(&dir, Arc::clone(&io)).and_then(|store| workload(&store, &mut acked, &alive))
            // The store is dropped here: the "dead process" lets go of it.
        };
        let triggered = io.triggered();
        if triggered {
            assert!(result.is_err(), "power cut {k}: the workload went on");
        } else {
            result.unwrap();
        }
        let (b, f) = io.power_cut();
        dropped_bytes += b;
        dropped_files += f;
        progress.insert((acked.blobs.len(), acked.versions.len()));
        check(&dir, &acked, &base, &format!("power cut at operation {k}"));
        cases += 1;
        if !triggered {
            break;
        }
        assert!(k < 10_000, "the workload never finished");
    }
    assert!(
        cases > 10,
        "only {cases} cut points: the workload does too little I/O to test"
    );
    // The model really dropped something: unsynced tails, and packs whose
    // directory entry was not yet durable.
    assert!(
        dropped_bytes > 0 && dropped_files > 0,
        "{cases} cuts dropped {dropped_bytes} bytes and {dropped_files} files"
    );
    assert!(
        progress.len() >= 5,
        "the cuts saw only {} distinct points of progress",
        progress.len()
    );
    eprintln!(
        "{cases} power cuts ({dropped_bytes} unsynced bytes and {dropped_files} packs \
         dropped in all), each recovered with nothing acknowledged lost"
    );
}

#[test]
fn a_full_disk_at_each_file_operation_fails_cleanly_and_recovers() {
    let mut cases = 0;
    for k in 1.. {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let base = base_store(&dir);
        let io = FaultIo::new(Fault::Full(k));
        let mut acked = Acked::default();
        let result = open_with(&dir, Arc::clone(&io)).and_then(|store| {
            let r = workload(&store, &mut acked, &|| true);
            if r.is_err() {
                // While the disk is full the store keeps refusing writes,
                // naming the cause, and reads of what it acknowledged work.
                let mut w = store.blob_writer();
                let again = w
                    .write_all(&data(300_000, 8))
                    .map_err(|e| crate::Error::io("<blob>", e))
                    .and_then(|_| w.finish());
                let e = again.expect_err("a write on a full disk succeeded");
                assert!(
                    e.to_string().contains("No space left on device"),
                    "full disk at operation {k}, second write: {e}"
                );
                for (id, d) in &acked.blobs {
                    assert_eq!(&read_all(&store, id), d);
                }
            }
            r
        });
        let triggered = io.triggered();
        if triggered {
            let e = result.expect_err("the disk filled but the workload reported success");
            assert!(
                e.to_string().contains("No space left on device"),
                "full disk at operation {k}: {e}"
            );
        } else {
            result.unwrap();
        }
        io.free_space();
        check(&dir, &acked, &base, &format!("full disk at operation {k}"));
        cases += 1;
        if !triggered {
            break;
        }
        assert!(k < 10_000, "the workload never finished");
    }
    assert!(
        cases > 10,
        "only {cases} points: the workload does too little I/O to test"
    );
    eprintln!("{cases} full-disk points, each failed cleanly and recovered");
}
