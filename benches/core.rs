//! Micro-benchmarks per stage: chunking, hashing, each codec, blob write and
//! read through a store. `make bench`, or one group:
//! `cargo test --release --bench core -- --bench blob_read`.

use std::io::{Read, Seek, SeekFrom, Write};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use modelvault::internals::chunking::{CdcParams, Chunker};
use modelvault::internals::codec::{self, delta, Codec, EncodeOptions};
use modelvault::Store;

fn weights(n: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02;
        v.extend_from_slice(&f.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn stages(c: &mut Criterion) {
    let data = weights(16 << 20);
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    let chunker = Chunker::new(CdcParams::default());
    g.bench_function("cdc", |b| b.iter(|| chunker.cuts(&data).len()));
    g.bench_function("blake3", |b| b.iter(|| blake3::hash(&data)));
    g.finish();

    let chunk = &data[..64 << 10];
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    for codec in [
        Codec::Zstd,
        Codec::Planes { width: 4 },
        Codec::Planes { width: 2 },
    ] {
        let mut out = Vec::new();
        g.bench_function(format!("encode/{}", codec.name()), |b| {
            b.iter(|| codec::encode_with(chunk, codec, &EncodeOptions::default(), &mut out))
        });
        codec::encode_with(chunk, codec, &EncodeOptions::default(), &mut out);
        let mut back = Vec::new();
        g.bench_function(format!("decode/{}", codec.name()), |b| {
            b.iter(|| codec::decode(codec, &out, chunk.len(), &mut back).unwrap())
        });
    }
    let mut out = Vec::new();
    g.bench_function("encode/auto", |b| {
        b.iter(|| codec::encode(chunk, &EncodeOptions::default(), &mut out))
    });
    // A delta against the same chunk one optimizer step earlier: every
    // value times (1 + e), |e| < 1e-3.
    let base: Vec<u8> = chunk
        .chunks_exact(4)
        .enumerate()
        .flat_map(|(i, v)| {
            let x = f32::from_le_bytes(v.try_into().unwrap());
            let e = ((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0;
            (x * (1.0 + 1e-3 * e)).to_le_bytes()
        })
        .collect();
    let hint = modelvault::internals::chunking::PlaneHint::Width(4);
    bench_delta(&mut g, "delta", chunk, &base, hint);
    // A bell-shaped step (a sum of four uniforms): the magnitude split
    // (transform 4) wins over the byte planes.
    let mut x = 0x9e37_79b9u32;
    let bell: Vec<u8> = chunk
        .chunks_exact(4)
        .flat_map(|v| {
            let mut e = 0.0f32;
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                e += x as f32 / u32::MAX as f32 - 0.5;
            }
            (f32::from_le_bytes(v.try_into().unwrap()) * (1.0 + 1.73e-3 * e)).to_le_bytes()
        })
        .collect();
    let split = bench_delta(&mut g, "delta-split", &bell, chunk, hint);
    assert_eq!(
        split[0], 4,
        "the split is not chosen: the bench measures something else"
    );
    // A bf16 step where one value in eight moves by one unit: the sparse low
    // plane of the difference is stored as bit planes.
    let bf16: Vec<u8> = chunk.chunks_exact(4).flat_map(|v| [v[2], v[3]]).collect();
    let stepped: Vec<u8> = bf16
        .chunks_exact(2)
        .enumerate()
        .flat_map(|(i, v)| {
            let u = u16::from_le_bytes([v[0], v[1]]);
            let u = if (i * 2654435761) % 8 == 0 {
                u.wrapping_add(1)
            } else {
                u
            };
            u.to_le_bytes()
        })
        .collect();
    let hint2 = modelvault::internals::chunking::PlaneHint::Width(2);
    bench_delta(&mut g, "delta-bf16", &stepped, &bf16, hint2);
    g.finish();
}

/// Benchmarks `encode/NAME` and `decode/NAME` of `raw` as a delta against
/// `base`; returns the encoded delta.
fn bench_delta(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    raw: &[u8],
    base: &[u8],
    hint: modelvault::internals::chunking::PlaneHint,
) -> Vec<u8> {
    let id = modelvault::Hash32::of(base);
    let opts = EncodeOptions::default();
    let mut out = Vec::new();
    g.bench_function(format!("encode/{name}"), |b| {
        b.iter(|| delta::encode_delta(raw, base, &id, hint, &opts, &mut out))
    });
    delta::encode_delta(raw, base, &id, hint, &opts, &mut out).unwrap();
    let mut back = Vec::new();
    g.bench_function(format!("decode/{name}"), |b| {
        b.iter(|| delta::decode_delta(&out, base, raw.len(), &mut back).unwrap())
    });
    out
}

fn store_io(c: &mut Criterion) {
    let data = weights(64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("v")).unwrap();
    let mut g = c.benchmark_group("blob");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    // New data each iteration: flip the first byte of every 64 KiB so nothing dedups.
    let mut round = 0u8;
    g.bench_function("write/new", |b| {
        b.iter_batched(
            || {
                round = round.wrapping_add(1);
                let mut d = data.clone();
                for i in (0..d.len()).step_by(16 << 10) {
                    d[i] = round;
                }
                d
            },
            |d| {
                let mut w = store.blob_writer();
                w.write_all(&d).unwrap();
                w.finish().unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    let id = {
        let mut w = store.blob_writer();
        w.write_all(&data).unwrap();
        w.finish().unwrap()
    };
    g.bench_function("write/stored", |b| {
        b.iter(|| {
            let mut w = store.blob_writer();
            w.write_all(&data).unwrap();
            w.finish().unwrap()
        })
    });
    let mut buf = vec![0u8; 1 << 20];
    g.bench_function("read", |b| {
        b.iter(|| {
            let mut r = store.blob_reader(&id).unwrap();
            while r.read(&mut buf).unwrap() > 0 {}
        })
    });
    g.finish();
}

/// Restore paths of `BlobReader`: one sequential pass with large and with
/// small reads (where read-ahead works), and small reads at scattered
/// offsets through `Seek` (ranged tensor reads, which must not read ahead).
fn blob_read(c: &mut Criterion) {
    let data = weights(64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("v")).unwrap();
    let id = {
        let mut w = store.blob_writer();
        w.write_all(&data).unwrap();
        w.finish().unwrap()
    };
    let mut g = c.benchmark_group("blob_read");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    for (name, size) in [("sequential/1MiB", 1 << 20), ("sequential/16KiB", 16 << 10)] {
        let mut buf = vec![0u8; size];
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut r = store.blob_reader(&id).unwrap();
                while r.read(&mut buf).unwrap() > 0 {}
            })
        });
    }
    // 256 reads of 4 KiB at scattered offsets: each touches one or two chunks.
    const READS: u64 = 256;
    g.throughput(Throughput::Bytes(READS * 4096));
    let mut buf = vec![0u8; 4096];
    g.bench_function("random/4KiB", |b| {
        b.iter(|| {
            let mut r = store.blob_reader(&id).unwrap();
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..READS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = x % (data.len() as u64 - 4096);
                r.seek(SeekFrom::Start(at)).unwrap();
                r.read_exact(&mut buf).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, stages, store_io, blob_read);
criterion_main!(benches);
