use std::sync::Arc;
use std::thread;

use crate::common::{get, noise, temp_store, weights};

#[test]
fn eight_threads_write_overlapping_content_and_all_reads_back() {
    let (_d, store) = temp_store();
    // Shared pieces that every thread mixes into its blobs.
    let shared: Arc<Vec<Vec<u8>>> = Arc::new((0..4).map(|i| weights(3 << 20, 100 + i)).collect());
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut out = Vec::new();
                for j in 0..4u64 {
                    let data = blob_data(&shared, t, j);
                    let id = crate::common::put(&store, &data);
                    out.push((id, blake3::hash(&data)));
                }
                out
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(results.len(), 32);
    // Readers in parallel too.
    let readers: Vec<_> = results
        .chunks(8)
        .map(|part| {
            let store = store.clone();
            let part = part.to_vec();
            thread::spawn(move || {
                for (id, h) in part {
                    assert_eq!(blake3::hash(&get(&store, &id)), h);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    // Dedup held across threads: exactly the chunks a sequential run keeps.
    let (_d2, seq) = temp_store();
    for t in 0..8 {
        for j in 0..4 {
            crate::common::put(&seq, &blob_data(&shared, t, j));
        }
    }
    let (a, b) = (store.stats(), seq.stats());
    assert_eq!(
        (a.chunks, a.unique_bytes, a.blobs),
        (b.chunks, b.unique_bytes, b.blobs)
    );
    // And both match the distinct chunks of the data, counted independently.
    let chunker = modelvault::internals::chunking::Chunker::new(Default::default());
    let mut distinct = std::collections::HashMap::new();
    for t in 0..8 {
        for j in 0..4 {
            let d = blob_data(&shared, t, j);
            let mut off = 0;
            for n in chunker.cuts(&d) {
                distinct.insert(blake3::hash(&d[off..off + n]), n as u64);
                off += n;
            }
        }
    }
    assert_eq!(a.chunks, distinct.len() as u64);
    assert_eq!(a.unique_bytes, distinct.values().sum::<u64>());
    assert!(
        a.unique_bytes < 32 * (6 << 20),
        "no dedup at all: {}",
        a.unique_bytes
    );
}

fn blob_data(shared: &[Vec<u8>], t: u64, j: u64) -> Vec<u8> {
    let mut data = shared[((t + j) % 4) as usize].clone();
    data.extend_from_slice(&noise(700_000 + (t * 1000 + j) as usize, t * 10 + j));
    data.extend_from_slice(&shared[((t + 2 * j) % 4) as usize]);
    data
}
