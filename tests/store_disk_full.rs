//! A full disk, for real: a store on a small tmpfs mounted for the test.
//! An upload that runs out of space fails with an error saying so; nothing
//! acknowledged before is lost; once space is freed the store opens, is
//! clean and takes the same upload. (`src/fault_tests.rs` fails each pack
//! file operation in turn with ENOSPC; this is the same on a real file
//! system, where RocksDB runs out of space too.)
//!
//! Mounting needs root (or CAP_SYS_ADMIN): without it the test says it is
//! skipped and returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use modelvault::{FileEntry, Store, VerifyOptions};

use crate::common::{get, noise, weights};

/// A tmpfs mounted at a path, unmounted when dropped (also when the test
/// panics).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a handle still open): detach it, it goes once closed.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Fills the file system holding `path` with a file there, leaving about
/// `leave` bytes free.
fn fill(path: &Path, leave: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 64 << 10];
    let mut len = 0u64;
    loop {
        match f.write_all(&block) {
            Ok(()) => len += block.len() as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    f.set_len(len.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
}

fn entry(path: &str, blob: modelvault::BlobId, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        blob,
        size: data.len() as u64,
    }
}

#[test]
fn an_upload_that_fills_the_disk_fails_cleanly_and_the_store_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = match Tmpfs::mount(&mnt, "48m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let dir = mnt.join("vault");
    let filler = mnt.join("filler");
    let a = weights(2 << 20, 1);
    let big = noise(12 << 20, 2);
    let (a_id, v1) = {
        let store = Store::options().pack_size(1 << 20).open(&dir).unwrap();
        let a_id = crate::common::put(&store, &a);
        let v1 = store
            .commit_version("m", vec![entry("a", a_id, &a)])
            .unwrap();
        // Leave room for a few MiB only: the upload of 12 MiB of noise
        // cannot fit.
        fill(&filler, 3 << 20);
        let mut w = store.blob_writer();
        let r = w
            .write_all(&big)
            .map_err(|e| modelvault::Error::io("<blob>", e))
            .and_then(|()| w.finish());
        let e = r.expect_err("12 MiB stored on a disk with 3 MiB free");
        assert!(
            e.to_string().contains("No space left on device"),
            "the error does not say the disk is full: {e}"
        );
        // What was acknowledged still reads back from the same handle.
        assert_eq!(get(&store, &a_id), a);
        (a_id, v1)
    };
    // Space is freed; the store opens, has everything acknowledged, is
    // clean, and takes the upload that failed.
    std::fs::remove_file(&filler).unwrap();
    let store = Store::open(&dir).unwrap();
    assert_eq!(get(&store, &a_id), a);
    assert_eq!(store.version("m", Some(v1)).unwrap().files[0].blob, a_id);
    let report = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    let big_id = crate::common::put(&store, &big);
    let v2 = store
        .commit_version("m", vec![entry("a", a_id, &a), entry("big", big_id, &big)])
        .unwrap();
    assert_eq!(v2, v1 + 1);
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(get(&store, &big_id), big);
    let report = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    drop(store);
    drop(mount);
}
