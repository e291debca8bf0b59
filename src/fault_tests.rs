//! Fault injection on the pack file layer: fail the k-th file operation
//! (create, write, fsync) for k = 1, 2, … until the workload runs clean, and
//! cut the power (drop everything written but not fsynced). After each,
//! the store reopens, `verify --read-data` is clean and every acknowledged
//! blob and version reads back intact.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::meta::records::FileEntry;
use crate::pack::io::{PackFile, PackIo};
use crate::{BlobId, Store, VerifyOptions};

/// Counts operations; fails the `fail_at`-th (1-based; 0 = never). A failed
/// write first writes half its buffer, as a torn write would.
struct FaultIo {
    ops: AtomicU64,
    fail_at: u64,
    files: Mutex<Vec<Arc<FaultFile>>>,
}

struct FaultFile {
    io: Arc<FaultIo>,
    file: File,
    path: PathBuf,
    written_end: AtomicU64,
    synced_end: AtomicU64,
}

impl FaultIo {
    fn new(fail_at: u64) -> Arc<Self> {
        Arc::new(FaultIo {
            ops: AtomicU64::new(0),
            fail_at,
            files: Mutex::new(Vec::new()),
        })
    }

    fn tick(&self) -> io::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(io::Error::other(format!("injected fault at operation {n}")));
        }
        Ok(())
    }

    fn triggered(&self) -> bool {
        self.fail_at != 0 && self.ops.load(Ordering::SeqCst) >= self.fail_at
    }

    /// Drops every byte not covered by a successful fsync.
    fn power_cut(&self) {
        for f in self.files.lock().iter() {
            let keep = f.synced_end.load(Ordering::SeqCst);
            let len = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
            if len > keep {
                OpenOptions::new()
                    .write(true)
                    .open(&f.path)
                    .unwrap()
                    .set_len(keep)
                    .unwrap();
            }
        }
    }
}

/// The io layer handed to the store: a shared `FaultIo`.
struct Layer(Arc<FaultIo>);

impl PackIo for Layer {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
        self.0.tick()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        self.track(file, path, 0)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn PackFile>> {
        self.0.tick()?;
        let file = OpenOptions::new().write(true).open(path)?;
        let len = file.metadata()?.len();
        self.track(file, path, len)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.tick()?;
        File::open(dir)?.sync_all()
    }
}

impl Layer {
    fn track(&self, file: File, path: &Path, len: u64) -> io::Result<Arc<dyn PackFile>> {
        let f = Arc::new(FaultFile {
            io: Arc::clone(&self.0),
            file,
            path: path.to_path_buf(),
            written_end: AtomicU64::new(len),
            synced_end: AtomicU64::new(len),
        });
        self.0.files.lock().push(Arc::clone(&f));
        Ok(f)
    }
}

impl PackFile for FaultFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Err(e) = self.io.tick() {
            let half = &buf[..buf.len() / 2];
            FileExt::write_all_at(&self.file, half, offset)?;
            self.written_end
                .fetch_max(offset + half.len() as u64, Ordering::SeqCst);
            return Err(e);
        }
        FileExt::write_all_at(&self.file, buf, offset)?;
        self.written_end
            .fetch_max(offset + buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.io.tick()?;
        self.file.sync_data()?;
        self.synced_end
            .fetch_max(self.written_end.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.io.tick()?;
        self.file.sync_all()?;
        self.synced_end
            .fetch_max(self.written_end.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
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
    version: Option<(u32, BlobId)>,
}

/// Three blobs (one spanning pack roll-overs) and a version; stops at the
/// first error, as a caller would.
fn workload(store: &Store, acked: &mut Acked) -> crate::Result<()> {
    for (n, seed) in [(2_500_000, 1), (70_000, 2), (1_300_000, 3)] {
        let d = data(n, seed);
        let mut w = store.blob_writer();
        w.write_all(&d).map_err(|e| crate::Error::io("<blob>", e))?;
        let id = w.finish()?;
        acked.blobs.push((id, d));
    }
    let (id, d) = &acked.blobs[0];
    let v = store.commit_version(
        "m",
        vec![FileEntry {
            path: "w".into(),
            blob: *id,
            size: d.len() as u64,
        }],
    )?;
    acked.version = Some((v, *id));
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
    if let Some((v, id)) = acked.version {
        assert_eq!(
            store.version("m", Some(v)).unwrap().files[0].blob,
            id,
            "{what}: acknowledged version"
        );
    }
    // The store accepts new writes after recovery.
    let mut w = store.blob_writer();
    w.write_all(b"after recovery").unwrap();
    w.finish().unwrap();
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
        let io = FaultIo::new(k);
        let mut acked = Acked::default();
        let result =
            open_with(&dir, Arc::clone(&io)).and_then(|store| workload(&store, &mut acked));
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
fn power_cut_drops_only_unsynced_bytes() {
    for cut_after in 0..4 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let base = base_store(&dir);
        let io = FaultIo::new(0);
        let mut acked = Acked::default();
        {
            let store = open_with(&dir, Arc::clone(&io)).unwrap();
            let _ = workload(&store, &mut acked);
            acked.blobs.truncate(cut_after.min(acked.blobs.len()));
            // Unfinished uploads at the moment of the cut: bytes appended to
            // packs, never committed.
            let mut w = store.blob_writer();
            w.write_all(&data(3_000_000, 50 + cut_after as u32))
                .unwrap();
            drop(w);
        }
        io.power_cut();
        check(&dir, &acked, &base, &format!("power cut {cut_after}"));
    }
}
