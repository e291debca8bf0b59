//! `Store::space_usage` against a brute-force computation: every blob's
//! manifest chunks (with their delta bases) as sets, an owner's stored
//! bytes the sum over its set, its unique bytes the sum over its set minus
//! the set of everything else the store keeps. And `blob_users` /
//! `chunk_users` both ways.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;

use crate::id::{BlobId, ChunkId};
use crate::meta::registry_records::ArtifactBody;
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{chunks, manifests};
use crate::meta::Meta;
use crate::pack::RECORD_HEADER_LEN;
use crate::test_support::{floats, noise};
use crate::{Durability, NewExperiment, ObjectMeta, SpaceUse, Store};

/// Every chunk blob `b` needs: its manifest's entries and, down the delta
/// chains, their bases.
fn chunks_of(meta: &Meta, b: &BlobId) -> HashSet<ChunkId> {
    let rec = crate::meta::tables::blobs::get(meta, b).unwrap().unwrap();
    let mut set = HashSet::new();
    let mut work = Vec::new();
    if rec.manifest != 0 {
        for seg in manifests::segments(meta, rec.manifest, None) {
            work.extend(seg.unwrap().entries.unwrap().into_iter().map(|e| e.id));
        }
    }
    while let Some(c) = work.pop() {
        if set.insert(c) {
            if let Some(base) = chunks::get(meta, &c).unwrap().unwrap().base {
                work.push(base);
            }
        }
    }
    set
}

fn bytes(meta: &Meta, set: &HashSet<ChunkId>) -> u64 {
    set.iter()
        .map(|c| {
            RECORD_HEADER_LEN as u64 + chunks::get(meta, c).unwrap().unwrap().stored_len as u64
        })
        .sum()
}

fn put(store: &Store, name: &str, files: &[(&str, &[u8])]) -> u32 {
    let mut p = store
        .put_version(name)
        .begin(files.iter().map(|(p, d)| (*p, d.len() as u64)))
        .unwrap();
    for (path, data) in files {
        p.add(path, *data).unwrap();
    }
    p.commit().unwrap().version
}

/// The blob of file `path` of version 1 of model `name`.
fn blob_at(store: &Store, name: &str, path: &str) -> BlobId {
    let v = store.model_by_name(name).unwrap().version(Some(1)).unwrap();
    v.file(path).unwrap().blob
}

/// A reference an owner holds: (owner key, blob).
type Refs = Vec<(String, BlobId)>;

#[test]
fn space_usage_matches_set_arithmetic_over_every_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::options()
        .durability(Durability::Eventual)
        .open(tmp.path().join("vault"))
        .unwrap();
    let w1 = floats(600_000, 1);
    // A fine-tune of w1: stored as deltas against a@1's chunks.
    let mut w2 = w1.clone();
    for i in (0..w2.len()).step_by(4096) {
        w2[i] ^= 1;
    }
    let config = noise(3, 40_000);
    let x = noise(5, 900_000);
    let only_b = noise(6, 300_000);
    put(&store, "a", &[("w.bin", &w1), ("config", &config)]);
    put(&store, "a", &[("w.bin", &w2), ("config", &config)]);
    // Two files with one content, and a file a's versions have too.
    put(
        &store,
        "b",
        &[
            ("x.bin", &x),
            ("y.bin", &x),
            ("config", &config),
            ("o", &only_b),
        ],
    );
    let e = store
        .create_experiment(NewExperiment::new("p", "run"))
        .unwrap();
    let art = noise(9, 200_000);
    let stored_blob = |data: &[u8]| {
        let mut w = store.blob_writer();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    };
    let art_blob = stored_blob(&art);
    let x_blob = stored_blob(&x);
    e.add_artifact(
        "ckpt",
        ArtifactBody::Blob {
            blob: art_blob,
            size: art.len() as u64,
        },
        BTreeMap::new(),
    )
    .unwrap();
    e.add_artifact(
        "copy",
        ArtifactBody::Blob {
            blob: x_blob,
            size: x.len() as u64,
        },
        BTreeMap::new(),
    )
    .unwrap();
    // An S3 object keeps a's config too.
    store.objects().create_bucket("bkt").unwrap();
    let cfg_blob = blob_at(&store, "a", "config");
    store
        .objects()
        .put_blob("bkt", "cfg", &cfg_blob, ObjectMeta::default())
        .unwrap();

    let meta = store.inner.chunks().meta();
    // Every reference in the store, by owner: "version a@1", "model a",
    // "experiment ID", "object".
    let mut refs: Refs = Vec::new();
    for m in store.models().unwrap() {
        let model = store.model_by_name(&m.name).unwrap();
        for v in model.versions().unwrap() {
            for f in model.version(Some(v)).unwrap().files {
                refs.push((format!("version {}@{v}", m.name), f.blob));
            }
        }
    }
    for (_, _, a) in crate::meta::tables::artifacts::of(meta, &e.id()).map(Result::unwrap) {
        if let ArtifactBody::Blob { blob, .. } = a.body {
            refs.push((format!("experiment {}", e.id()), blob));
        }
    }
    refs.push(("object".into(), cfg_blob));
    let owns = |u: &SpaceUse, key: &str| match u.kind {
        "version" => key == format!("version {}@{}", u.name, u.version.unwrap()),
        "model" => key.starts_with(&format!("version {}@", u.name)),
        _ => key == format!("experiment {}", u.id),
    };
    let held: Vec<BlobId> = {
        let mut all: BTreeSet<BlobId> = refs.iter().map(|(_, b)| *b).collect();
        all.insert(art_blob);
        all.into_iter()
            .filter(|b| refs::get(meta, Count::Hold(*b)).unwrap() > 0)
            .collect()
    };

    let report = store.space_usage().unwrap();
    assert_eq!(report.models.len(), 2);
    assert_eq!(report.versions.len(), 3);
    assert_eq!(report.experiments.len(), 1);
    let mut shared_seen = false;
    let mut unique_seen = false;
    for u in report
        .models
        .iter()
        .chain(&report.versions)
        .chain(&report.experiments)
    {
        let mine: BTreeSet<BlobId> = refs
            .iter()
            .filter(|(k, _)| owns(u, k))
            .map(|(_, b)| *b)
            .collect();
        let others: BTreeSet<BlobId> = refs
            .iter()
            .filter(|(k, _)| !owns(u, k))
            .map(|(_, b)| *b)
            .chain(held.iter().copied())
            .collect();
        let mut my_chunks = HashSet::new();
        for b in &mine {
            my_chunks.extend(chunks_of(meta, b));
        }
        let mut their_chunks = HashSet::new();
        for b in &others {
            their_chunks.extend(chunks_of(meta, b));
        }
        let only: HashSet<ChunkId> = my_chunks.difference(&their_chunks).copied().collect();
        let stored = bytes(meta, &my_chunks);
        let unique = bytes(meta, &only);
        let what = format!("{} {}{:?}", u.kind, u.name, u.version);
        assert_eq!(u.blobs, mine.len() as u64, "{what}");
        assert_eq!(u.stored_bytes, stored, "{what}: stored");
        assert_eq!(u.unique_bytes, unique, "{what}: unique");
        assert_eq!(u.shared_bytes, stored - unique, "{what}: shared");
        shared_seen |= u.shared_bytes > 0;
        unique_seen |= u.unique_bytes > 0 && u.shared_bytes > 0;
        // Deleting it frees what it alone keeps: the dry run agrees.
        let freed = match (u.kind, u.version) {
            ("version", Some(v)) => {
                store
                    .model_by_name(&u.name)
                    .unwrap()
                    .delete_version(v, crate::DeleteOptions::new().dry_run(true))
                    .unwrap()
                    .bytes_freed
            }
            ("model", _) => {
                store
                    .model_by_name(&u.name)
                    .unwrap()
                    .delete(crate::DeleteOptions::new().dry_run(true))
                    .unwrap()
                    .bytes_freed
            }
            _ => {
                e.delete(crate::DeleteOptions::new().dry_run(true))
                    .unwrap()
                    .bytes_freed
            }
        };
        assert_eq!(u.unique_bytes, freed, "{what}: dry run");
    }
    assert!(
        shared_seen && unique_seen,
        "the store has shared and unique chunks"
    );
    // Logical bytes: as written, duplicates counted each time.
    let b = report.versions.iter().find(|u| u.name == "b").unwrap();
    assert_eq!(
        b.logical_bytes,
        (2 * x.len() + config.len() + only_b.len()) as u64
    );
    let a2 = report
        .versions
        .iter()
        .find(|u| u.version == Some(2))
        .unwrap();
    let a1 = report
        .versions
        .iter()
        .find(|u| u.name == "a" && u.version == Some(1))
        .unwrap();
    // a@2's deltas need a@1's chunks: shared, so deleting a@1 frees less
    // than it stores.
    assert!(a1.unique_bytes < a1.stored_bytes, "{a1:?}");
    assert!(a2.shared_bytes > 0, "{a2:?}");
}

#[test]
fn who_finds_blob_users_and_chunk_containers_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::options()
        .durability(Durability::Eventual)
        .open(tmp.path().join("vault"))
        .unwrap();
    let shared = noise(11, 500_000);
    let other = noise(12, 200_000);
    put(&store, "a", &[("s.bin", &shared)]);
    put(&store, "b", &[("copy.bin", &shared), ("o.bin", &other)]);
    let blob = blob_at(&store, "a", "s.bin");
    let other_blob = blob_at(&store, "b", "o.bin");
    let e = store
        .create_experiment(NewExperiment::new("p", "r"))
        .unwrap();
    e.add_artifact(
        "w",
        ArtifactBody::Blob {
            blob,
            size: shared.len() as u64,
        },
        BTreeMap::new(),
    )
    .unwrap();
    store.objects().create_bucket("bkt").unwrap();
    store
        .objects()
        .put_blob("bkt", "k/s", &blob, ObjectMeta::default())
        .unwrap();

    let u = store.blob_users(&blob).unwrap();
    assert_eq!(u.size, Some(shared.len() as u64));
    let versions: BTreeSet<(String, u32, String)> = u
        .versions
        .iter()
        .map(|v| (v.name.clone(), v.version, v.path.clone()))
        .collect();
    assert_eq!(
        versions,
        BTreeSet::from([
            ("a".into(), 1, "s.bin".into()),
            ("b".into(), 1, "copy.bin".into())
        ])
    );
    assert_eq!(u.artifacts.len(), 1);
    assert_eq!(
        (u.artifacts[0].experiment, u.artifacts[0].name.as_str()),
        (e.id(), "w")
    );
    assert_eq!(u.objects.len(), 1);
    assert_eq!(
        (u.objects[0].bucket.as_str(), u.objects[0].key.as_str()),
        ("bkt", "k/s")
    );
    assert_eq!(u.references, 4);

    // Each chunk of the shared blob names that blob, and only it; and the
    // other blob's chunks name the other blob.
    let meta = store.inner.chunks().meta();
    for (b, not) in [(blob, other_blob), (other_blob, blob)] {
        let cs = chunks_of(meta, &b);
        assert!(!cs.is_empty());
        for c in cs {
            let cu = store.chunk_users(&c).unwrap();
            assert!(cu.blobs.contains(&b), "chunk {c} lacks blob {b}");
            assert!(!cu.blobs.contains(&not), "chunk {c} names blob {not}");
            // And the blob's users are found from each chunk's blobs.
            for cb in &cu.blobs {
                assert!(!store.blob_users(cb).unwrap().versions.is_empty());
            }
        }
    }
    // A blob nothing has heard of: no users.
    let unknown = BlobId(crate::id::Hash32::of(b"never stored"));
    let nobody = store.blob_users(&unknown).unwrap();
    assert_eq!(
        (nobody.size, nobody.versions.len(), nobody.references),
        (None, 0, 0)
    );
}
