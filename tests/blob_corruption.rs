use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::common::{flip, packs, put, temp_store, weights};

/// Reads the whole blob; returns the error if any read fails.
fn read_all(store: &modelvault::Store, id: &modelvault::BlobId) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    store
        .blob_reader(id)
        .unwrap()
        .read_to_end(&mut out)
        .map(|_| out)
}

#[test]
fn flipped_payload_byte_fails_the_read_naming_blob_and_offset() {
    let (_d, store) = temp_store();
    let data = weights(4 << 20, 1);
    let id = put(&store, &data);
    let pack = &packs(&store)[0];
    let len = std::fs::metadata(pack).unwrap().len();
    // Somewhere in the middle of the pack: inside some chunk's payload or header.
    flip(pack, len / 2);
    let err = read_all(&store, &id).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&id.to_string()),
        "error does not name the blob: {msg}"
    );
    assert!(
        msg.contains("offset"),
        "error does not name the offset: {msg}"
    );
}

#[test]
fn every_flipped_byte_of_a_small_pack_is_detected() {
    let (_d, store) = temp_store();
    let data = weights(100_000, 2);
    let id = put(&store, &data);
    let pack = packs(&store)[0].clone();
    let len = std::fs::metadata(&pack).unwrap().len();
    // Skip the pack header (32 bytes): it is checked at open, not per read.
    for at in (32..len).step_by(97) {
        flip(&pack, at);
        let r = read_all(&store, &id);
        assert!(r.is_err(), "flip at {at} of {len} not detected");
        flip(&pack, at);
    }
    assert_eq!(read_all(&store, &id).unwrap(), data);
}

#[test]
fn truncated_pack_fails_the_read_cleanly() {
    let (_d, store) = temp_store();
    let data = weights(1 << 20, 3);
    let id = put(&store, &data);
    let pack = packs(&store)[0].clone();
    let f = OpenOptions::new().write(true).open(&pack).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 10).unwrap();
    let err = read_all(&store, &id).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

#[test]
fn ranged_read_of_a_healthy_region_still_works_after_damage_elsewhere() {
    // One worker thread: records are appended in blob order, so the pack's
    // last record is the blob's last chunk.
    let dir = tempfile::tempdir().unwrap();
    let store = modelvault::Store::options()
        .threads(1)
        .open(dir.path())
        .unwrap();
    let data = weights(8 << 20, 4);
    let id = put(&store, &data);
    let pack = packs(&store)[0].clone();
    let len = std::fs::metadata(&pack).unwrap().len();
    flip(&pack, len - 100); // damage near the end of the blob
    let mut r = store.blob_reader(&id).unwrap();
    let mut head = vec![0u8; 1 << 20];
    r.read_exact(&mut head).unwrap();
    assert_eq!(head, &data[..1 << 20]);
    r.seek(SeekFrom::End(-50)).unwrap();
    assert!(r.read(&mut head).is_err());
    // Writing a new blob still works.
    let mut w = store.blob_writer();
    w.write_all(b"fresh").unwrap();
    w.finish().unwrap();
}

#[test]
fn verify_is_clean_then_names_the_damaged_chunk_blob_and_version() {
    let (_d, store) = temp_store();
    let data = weights(3 << 20, 5);
    let id = put(&store, &data);
    let other = put(&store, &crate::common::noise(1 << 20, 6));
    store
        .commit_version(
            "m",
            vec![modelvault::FileEntry {
                path: "w.bin".into(),
                blob: id,
                size: data.len() as u64,
            }],
        )
        .unwrap();
    let full = modelvault::VerifyOptions::new().read_data(true);
    let clean = store.verify(full).unwrap();
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!(clean.bytes_read, store.stats().unique_bytes);

    // Parts 1..=3 of a subset run read every chunk exactly once.
    let parts: u64 = (1..=3)
        .map(|n| {
            store
                .verify(full.subset(n, 3).unwrap())
                .unwrap()
                .chunks_read
        })
        .sum();
    assert_eq!(parts, clean.chunks_read);
    assert!(full.subset(0, 3).is_err() && full.subset(4, 3).is_err());

    let pack = packs(&store)[0].clone();
    flip(&pack, 32 + 52 + 1000); // inside the first record's payload
    assert!(
        store
            .verify(modelvault::VerifyOptions::new())
            .unwrap()
            .is_clean(),
        "fast verify reads no chunk data"
    );
    let r = store.verify(full).unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let p = &r.problems[0];
    assert_eq!(p.kind, "chunk-damaged");
    // The first record written belongs to one of the two blobs; it names it,
    // and the model version if it is the versioned one.
    let names_blob = p
        .affected
        .iter()
        .any(|a| a == &format!("blob {id}") || a == &format!("blob {other}"));
    assert!(names_blob, "{:?}", p.affected);
    if p.affected.contains(&format!("blob {id}")) {
        assert!(
            p.affected
                .iter()
                .any(|a| a.starts_with("model ") && a.ends_with("@1")),
            "{:?}",
            p.affected
        );
    }
}

#[test]
fn verify_reports_a_truncated_pack() {
    let (_d, store) = temp_store();
    put(&store, &weights(1 << 20, 7));
    let pack = packs(&store)[0].clone();
    let f = OpenOptions::new().write(true).open(&pack).unwrap();
    f.set_len(f.metadata().unwrap().len() - 1).unwrap();
    let r = store.verify(modelvault::VerifyOptions::new()).unwrap();
    assert!(
        r.problems.iter().any(|p| p.kind == "pack-truncated"),
        "{:?}",
        r.problems
    );
}
