//! Unit tests of the streaming writer.

use std::collections::HashSet;
use std::io::Write;

use crate::chunking::{Cutter, PlaneHint};
use crate::codec::Codec;
use crate::id::Hash32;
use crate::test_support::floats;
use crate::{BlobId, Store};

/// A safetensors file of about 11 MiB: bf16, fp32 and int8 tensors of
/// 5 KiB to 1.5 MiB, so boundaries fall all over the 4 MiB blocks.
fn st_file() -> Vec<u8> {
    let sizes = [
        1_500_000, 5_000, 900_000, 1_200_000, 7_000, 1_100_000, 600_000, 1_300_000, 800_000,
        1_000_000, 12_000, 1_400_000, 700_000,
    ];
    let dtypes = ["BF16", "F32", "I8"];
    let mut entries = vec![r#""__metadata__":{"format":"pt"}"#.to_string()];
    let mut data = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let dt = dtypes[i % 3];
        let (elems, bytes) = match dt {
            "BF16" => {
                let f = floats(n / 2, 2 * i as u32 + 1);
                (
                    n / 2,
                    f.chunks_exact(4).flat_map(|q| [q[2], q[3]]).collect(),
                )
            }
            "F32" => (n / 4, floats(n / 4, 2 * i as u32 + 1)),
            _ => (n, floats(n / 4 + 1, 2 * i as u32 + 1)[..n].to_vec()),
        };
        let start = data.len();
        data.extend_from_slice(&bytes);
        entries.push(format!(
            r#""t{i}":{{"dtype":"{dt}","shape":[{elems}],"data_offsets":[{start},{}]}}"#,
            data.len()
        ));
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(&data);
    f
}

/// The chunks the cutter makes of the whole file at once.
fn reference(store: &Store, f: &[u8]) -> Vec<(Hash32, PlaneHint)> {
    let cuts = Cutter::new(store.inner.opts().cdc).cuts(f);
    let mut at = 0;
    cuts.iter()
        .map(|c| {
            let id = Hash32::of(&f[at..at + c.len]);
            at += c.len;
            (id, c.hint)
        })
        .collect()
}

/// Every chunk the store has is one of the reference chunks, and every
/// reference chunk is there, encoded as its hint says.
fn check_chunks(store: &Store, want: &[(Hash32, PlaneHint)]) {
    let distinct: HashSet<_> = want.iter().map(|(id, _)| *id).collect();
    assert_eq!(store.stats().chunks, distinct.len() as u64);
    for (id, hint) in want {
        let loc = store
            .inner
            .chunks()
            .chunk_loc(id)
            .unwrap()
            .expect("chunk stored");
        match hint {
            PlaneHint::Width(2) => assert_eq!(loc.codec, Codec::Planes { width: 2 }),
            PlaneHint::Width(4) => assert_eq!(loc.codec, Codec::Planes { width: 4 }),
            PlaneHint::Flat => assert!(
                !matches!(loc.codec, Codec::Planes { .. }),
                "{loc:?} for chunk {} of {}",
                want.iter().position(|w| w.0 == *id).unwrap(),
                want.len()
            ),
            _ => {}
        }
    }
}

#[test]
fn cuts_and_hints_are_the_cutters_whatever_the_write_sizes() {
    let f = st_file();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let want = reference(&store, &f);
    assert!(want.iter().any(|w| w.1 == PlaneHint::Width(2)));
    assert!(want.iter().any(|w| w.1 == PlaneHint::Width(4)));
    assert!(want.iter().any(|w| w.1 == PlaneHint::Flat));
    let blob = BlobId(Hash32::of(&f));
    for sizes in [
        vec![f.len()],
        vec![1_000_003],
        vec![1, 7, 65_536, (4 << 20) + 3, 100_000],
    ] {
        let mut w = store.blob_writer();
        let (mut at, mut i) = (0, 0);
        while at < f.len() {
            let n = sizes[i % sizes.len()].min(f.len() - at);
            w.write_all(&f[at..at + n]).unwrap();
            at += n;
            i += 1;
        }
        assert_eq!(w.finish().unwrap(), blob);
        check_chunks(&store, &want);
    }
}

#[test]
fn a_resumed_upload_keeps_the_cuts_of_an_uninterrupted_one() {
    let f = st_file();
    let blob = BlobId(Hash32::of(&f));
    // Suspended: before the header is complete (nothing is cut), with
    // the header but not the probe window, just past the first block
    // (durable prefix shorter than the window), and well past it.
    for (at, durable_max) in [
        (10, Some(0)),
        (1 << 20, None),
        ((4 << 20) + 10, None),
        (7 << 20, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let want = reference(&store, &f);
        let mut w = store.blob_writer();
        w.write_all(&f[..at]).unwrap();
        let id = w.suspend().unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.resume_upload(id).unwrap();
        let from = w.len() as usize;
        match durable_max {
            Some(m) => assert_eq!(from, m, "suspended at {at}"),
            None => assert!(
                from > 0 && from <= at && at - from < 128 << 10,
                "{at}: {from}"
            ),
        }
        w.write_all(&f[from..]).unwrap();
        assert_eq!(w.finish().unwrap(), blob);
        check_chunks(&store, &want);
    }
}

/// `Store::upload_prefix` reads back exactly the bytes a resume would
/// continue after, and leaves the session as it was.
#[test]
fn upload_prefix_reads_the_durable_bytes_and_changes_nothing() {
    use std::io::Read;
    let f = st_file();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let mut w = store.blob_writer().label("put m: w.safetensors");
    w.write_all(&f[..(5 << 20) + 123]).unwrap();
    let id = w.suspend().unwrap();
    let before = store.uploads().unwrap();
    assert_eq!(before.len(), 1);
    let durable = before[0].durable_bytes;
    assert!(durable > 0);

    let mut r = store.upload_prefix(id).unwrap();
    assert_eq!(r.len(), durable);
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, &f[..durable as usize]);
    drop(r);
    // Twice, and the session is still there, unchanged and resumable.
    assert_eq!(store.upload_prefix(id).unwrap().len(), durable);
    assert_eq!(store.uploads().unwrap(), before);
    let mut w = store.resume_upload(id).unwrap();
    assert_eq!(w.len(), durable);
    w.write_all(&f[durable as usize..]).unwrap();
    assert_eq!(w.finish().unwrap(), BlobId(Hash32::of(&f)));

    // The session is gone once its blob exists.
    let e = store.upload_prefix(id).err().expect("no session any more");
    assert!(e.is_not_found(), "{e}");
}

/// Many uploads at once share one bound on the input the workers hold:
/// sampled all along, the bytes in flight never pass it by more than one
/// block's worth, while every upload still completes and reads back.
#[test]
fn uploads_at_once_share_one_bound_on_the_bytes_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("vault")).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let most = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(store.inner.pool().bytes_in_flight());
                std::thread::yield_now();
            }
            most
        });
        let uploads: Vec<_> = (0..12u32)
            .map(|i| {
                let store = &store;
                s.spawn(move || {
                    let data = floats(6 << 20, 100 + i);
                    let mut w = store.blob_writer();
                    w.write_all(&data).unwrap();
                    (w.finish().unwrap(), data)
                })
            })
            .collect();
        for u in uploads {
            let (id, data) = u.join().unwrap();
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut store.blob_reader(&id).unwrap(), &mut back).unwrap();
            assert!(back == data, "upload {id} reads back wrong");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let bound = super::pipeline::POOL_IN_FLIGHT_BYTES + (1 << 20);
    assert!(most > 0, "no bytes were ever seen in flight");
    assert!(most <= bound, "{most} bytes in flight, over {bound}");
}

/// After `finish_input` the last chunks are on their way: `stage` only
/// waits for them, the blob is the one a plain `finish` stores, and a
/// write after it fails, naming why.
#[test]
fn finish_input_ends_the_input_and_stage_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("vault")).unwrap();
    let data = floats(300_000, 9);
    let mut w = store.blob_writer();
    w.write_all(&data).unwrap();
    w.finish_input().unwrap();
    let e = w.write_all(b"more").unwrap_err();
    assert!(e.to_string().contains("finish_input"), "{e}");
    // The failed write poisoned that upload; a fresh one shows what the
    // blob would have been.
    let mut w2 = store.blob_writer();
    w2.write_all(&data).unwrap();
    w2.finish_input().unwrap();
    let staged = w2.stage().unwrap();
    let want = BlobId(Hash32::of(&data));
    assert_eq!(staged.id(), want);
    assert_eq!(staged.commit().unwrap(), want);
}
