//! Shared helpers: temporary stores and deterministic test data.

#![allow(dead_code)]

use std::io::{Read, Write};

use modelvault::{BlobId, Store};

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("vault")).unwrap();
    (dir, store)
}

/// xorshift64* bytes: incompressible, deterministic.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// fp32 weights of a small normal-ish distribution, like a trained layer.
pub fn weights(n_bytes: usize, seed: u64) -> Vec<u8> {
    let raw = noise(n_bytes, seed);
    raw.chunks(4)
        .flat_map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            let u = u32::from_le_bytes(b);
            let f = ((u >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1;
            f.to_le_bytes()[..c.len()].to_vec()
        })
        .collect()
}

/// Every fp32 value times (1 + e), |e| < 1e-3: one optimizer step.
pub fn nudge_f32(v: &[u8], seed: u64) -> Vec<u8> {
    let r = noise(v.len(), seed);
    v.chunks_exact(4)
        .zip(r.chunks_exact(4))
        .flat_map(|(x, n)| {
            let x = f32::from_le_bytes(x.try_into().unwrap());
            let e =
                (u32::from_le_bytes(n.try_into().unwrap()) as f32 / u32::MAX as f32 - 0.5) * 2e-3;
            (x * (1.0 + e)).to_le_bytes()
        })
        .collect()
}

pub fn put(store: &Store, data: &[u8]) -> BlobId {
    let mut w = store.blob_writer();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

pub fn get(store: &Store, id: &BlobId) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .blob_reader(id)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A safetensors file: 8-byte header length, JSON header, then the data.
pub fn safetensors(tensors: &[(&str, &str, usize, &[u8])]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut off = 0;
    for (i, (name, dtype, n, data)) in tensors.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{n}],\"data_offsets\":[{off},{}]}}",
            off + data.len()
        ));
        off += data.len();
    }
    header.push('}');
    let mut h = header.into_bytes();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

/// The store's pack files, sorted by name (= id).
pub fn packs(store: &Store) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(store.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    v.sort();
    v
}

/// Flips one bit of the byte at `at` in the file at `path`.
pub fn flip(path: &std::path::Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, at).unwrap();
}

/// The example `name`, built next to the test binary
/// (`target/<profile>/examples/`): tests run some examples as processes.
/// `make test` builds them first (`cargo test` builds examples only as test
/// harnesses, under hashed names).
pub fn built_example(name: &str) -> std::path::PathBuf {
    let me = std::env::current_exe().unwrap();
    let built = me
        .parent()
        .and_then(std::path::Path::parent)
        .map(|p| p.join("examples").join(name))
        .unwrap();
    assert!(
        built.is_file(),
        "{} is missing: build it with `cargo build --release --example {name}` \
         (as `make test` does first)",
        built.display()
    );
    built
}
