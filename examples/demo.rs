//! The default job: generate a checkpoint, store it twice (the second time
//! with one layer retrained and a longer header, as a new training step
//! would), restore it, and print dedup, compression and throughput.
//!
//! cargo run --release --example demo [-- SIZE_MIB [STORE_DIR]]
//!
//! The checkpoint is streamed from a generator, never held in memory, so
//! this also measures memory: `/usr/bin/time -v` shows the peak RSS.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use modelvault::{FileEntry, Store};

/// A deterministic fp32 "checkpoint": a small header, then layers of
/// weights around zero with a per-layer scale. `variant` 1 retrains
/// layer 3 and grows the header by 5 bytes.
struct Checkpoint {
    size: u64,
    variant: u32,
    pos: u64,
    rng: u64,
    /// Bytes of the last value that did not fit in the caller's buffer.
    carry: Vec<u8>,
}

const LAYER: u64 = 8 << 20;

impl Checkpoint {
    fn new(size: u64, variant: u32) -> Self {
        Checkpoint {
            size,
            variant,
            pos: 0,
            rng: 0,
            carry: Vec::new(),
        }
    }
    fn header(&self) -> Vec<u8> {
        let mut h = format!("{{\"format\":\"demo\",\"bytes\":{}}}", self.size).into_bytes();
        if self.variant == 1 {
            h.extend_from_slice(b",step");
        }
        h.resize(h.len().next_multiple_of(8), b' ');
        h
    }
}

impl Read for Checkpoint {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let header = self.header();
        let total = self.size + header.len() as u64;
        let mut n = self.carry.len().min(buf.len());
        buf[..n].copy_from_slice(&self.carry[..n]);
        self.carry.drain(..n);
        while n < buf.len() && self.pos < total {
            if self.pos < header.len() as u64 {
                buf[n] = header[self.pos as usize];
                n += 1;
                self.pos += 1;
                continue;
            }
            let off = self.pos - header.len() as u64;
            let layer = off / LAYER;
            if off.is_multiple_of(LAYER) {
                let retrained = self.variant == 1 && layer == 3;
                self.rng = (layer + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ if retrained { 0xABCD } else { 0 };
            }
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let scale = 0.02 / (1.0 + layer as f32 * 0.1);
            let g = ((self.rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale;
            let b = g.to_le_bytes();
            let take = ((total - self.pos) as usize).min(4);
            let fit = take.min(buf.len() - n);
            buf[n..n + fit].copy_from_slice(&b[..fit]);
            self.carry.extend_from_slice(&b[fit..take]);
            n += fit;
            self.pos += take as u64;
        }
        Ok(n)
    }
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
        / 1024
}

fn main() -> modelvault::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let tmp;
    let dir = match args.get(2) {
        Some(p) => PathBuf::from(p),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().join("vault")
        }
    };
    let size = mib << 20;
    let store = Store::create(&dir)?;
    println!("store {} at {}", store.id(), dir.display());

    for variant in 0..2 {
        let before = store.stats();
        let t = Instant::now();
        let mut w = store.blob_writer();
        std::io::copy(&mut Checkpoint::new(size, variant), &mut w)
            .map_err(|e| modelvault::Error::io("<generator>", e))?;
        let len = w.len();
        let blob = w.finish()?;
        let secs = t.elapsed().as_secs_f64();
        let v = store.commit_version(
            "demo",
            vec![FileEntry {
                path: "model.bin".into(),
                blob,
                size: len,
            }],
        )?;
        let after = store.stats();
        println!(
            "demo@{v}: {} MB in {:.2} s ({:.0} MB/s), added {} stored bytes ({:.3} of its size)",
            len / 1_000_000,
            secs,
            len as f64 / 1e6 / secs,
            after.stored_bytes - before.stored_bytes,
            (after.stored_bytes - before.stored_bytes) as f64 / len as f64
        );
    }

    // Restore the second version and check it against the generator.
    let v = store.version("demo", None)?;
    let t = Instant::now();
    let mut r = store.blob_reader(&v.files[0].blob)?;
    let mut gen = Checkpoint::new(size, 1);
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut total = 0u64;
    loop {
        let n = r
            .read(&mut a)
            .map_err(|e| modelvault::Error::io("<restore>", e))?;
        if n == 0 {
            break;
        }
        gen.read_exact(&mut b[..n]).expect("generator");
        assert_eq!(a[..n], b[..n], "restored bytes differ at {total}");
        total += n as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "restore: {} MB in {:.2} s ({:.0} MB/s, verified)",
        total / 1_000_000,
        secs,
        total as f64 / 1e6 / secs
    );

    let s = store.stats();
    println!(
        "logical {} B, unique {} B, stored {} B: dedup {:.2}x, compression {:.2}x, stored/logical {:.3}",
        s.logical_bytes, s.unique_bytes, s.stored_bytes, s.dedup_ratio, s.compression_ratio, s.stored_fraction
    );
    println!("peak RSS {} MiB", rss_mib());
    std::io::stdout().flush().ok();
    Ok(())
}
