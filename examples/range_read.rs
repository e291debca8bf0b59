//! Ranged reads of a stored file: the time to read `LEN` bytes at evenly
//! spread offsets of a model version's file, through `BlobReader`'s
//! `Seek + Read`, each read from a fresh reader (so no read-ahead carries
//! over from the one before), as a reader serving byte ranges would.
//! Prints the median and the slowest, and the process's peak RSS.
//!
//! ```sh
//! cargo run --release --example range_read -- REPO NAME[@VERSION] PATH [LEN [READS]]
//! ```
//! LEN defaults to 1 MiB, READS to 21; the first pass warms the page cache
//! and is not counted (the figures are for a warm cache).

use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: range_read REPO NAME[@VERSION] PATH [LEN [READS]]".into());
    }
    let len: usize = args.get(3).map_or(Ok(1 << 20), |s| s.parse())?;
    let reads: u64 = args.get(4).map_or(Ok(21), |s| s.parse())?;
    if reads == 0 || len == 0 {
        return Err("LEN and READS must be at least 1".into());
    }
    let store = modelvault::Store::open_read_only(&args[0])?;
    let (model, version) = store.resolve_model(&args[1])?;
    let v = model.version(version)?;
    let f = v
        .file(&args[2])
        .ok_or_else(|| format!("no file {:?} in {}@{}", args[2], v.name, v.version))?;
    if f.size < len as u64 {
        return Err(format!("{} is {} bytes, shorter than LEN", args[2], f.size).into());
    }
    let span = f.size - len as u64;
    let mut buf = vec![0u8; len];
    let mut times = Vec::new();
    for pass in 0..2 {
        for i in 0..reads {
            let at = span / reads * i + span / (2 * reads);
            let t = Instant::now();
            let mut r = store.blob_reader(&f.blob)?;
            r.seek(SeekFrom::Start(at))?;
            r.read_exact(&mut buf)?;
            if pass == 1 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} bytes of {} ({} bytes), {reads} reads at spread offsets: median {:.2} ms, slowest {:.2} ms, peak RSS {} MiB",
        len,
        args[2],
        f.size,
        times[times.len() / 2],
        times[times.len() - 1],
        peak_rss_kib() / 1024
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), in KiB; 0 where /proc is absent.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
