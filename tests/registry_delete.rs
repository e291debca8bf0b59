//! Deleting versions, models and experiments; retention; dry runs; and the
//! space they give back through `gc`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use modelvault::{
    ArtifactBody, DeleteOptions, Error, GcOptions, Model, NewExperiment, NewModel, Retention,
    Store, VerifyOptions,
};

use crate::common::{noise, temp_store};

/// Adds a version of one staged file (kept only by the version).
fn add(m: &Model, store: &Store, data: &[u8]) -> u32 {
    let mut w = store.blob_writer();
    w.write_all(data).unwrap();
    m.add_version_staged(vec![("w.bin".into(), w.stage().unwrap())], None)
        .unwrap()
}

fn clean(store: &Store) {
    let r = store.verify(VerifyOptions::new().read_data(true)).unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
}

#[test]
fn deleting_a_version_frees_what_only_it_used_and_the_dry_run_says_so_first() {
    // Small packs: space comes back only from sealed packs, not the one
    // being appended to.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::options()
        .pack_size(1 << 20)
        .open(dir.path().join("vault"))
        .unwrap();
    let m = store.create_model(NewModel::new("net")).unwrap();
    let shared = noise(2 << 20, 1);
    let v1 = add(&m, &store, &[shared.clone(), noise(3 << 20, 2)].concat());
    let v2 = add(&m, &store, &[shared, noise(1 << 20, 3)].concat());
    m.set_alias("prod", v2).unwrap();
    let before = store.stats();

    let dry = m
        .delete_version(v1, DeleteOptions::new().dry_run(true))
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.versions, vec![(m.id(), v1)]);
    assert_eq!(dry.blobs_freed, 1);
    // v1's own 3 MiB of noise, give or take the chunks around the seam.
    assert!(
        (3 << 20..(4 << 20)).contains(&dry.bytes_freed),
        "{}",
        dry.bytes_freed
    );
    assert_eq!(store.stats(), before, "a dry run changes nothing");
    assert_eq!(m.versions().unwrap(), vec![v1, v2]);

    let real = m.delete_version(v1, DeleteOptions::new()).unwrap();
    assert_eq!(
        (real.blobs_freed, real.bytes_freed),
        (dry.blobs_freed, dry.bytes_freed)
    );
    assert_eq!(m.versions().unwrap(), vec![v2]);
    assert!(matches!(m.version(Some(v1)), Err(Error::NotFound { .. })));
    let r = store.gc(&GcOptions::new()).unwrap();
    assert!(r.chunks_deleted > 0);
    let after = store.stats();
    assert_eq!(after.versions, before.versions - 1);
    assert!(after.stored_bytes < before.stored_bytes);
    let reclaimed = before.stored_bytes - after.stored_bytes;
    assert!(
        reclaimed + (1 << 20) >= dry.bytes_freed,
        "dry run promised {} bytes, gc gave back {reclaimed}",
        dry.bytes_freed
    );
    clean(&store);

    // Deleting the latest: numbers are not reused, the alias goes with it.
    m.delete_version(v2, DeleteOptions::new()).unwrap();
    assert!(m.version(None).is_err());
    assert_eq!(add(&m, &store, b"next"), v2 + 1);
    assert_eq!(m.version(None).unwrap().version, v2 + 1);
    assert!(m.info().unwrap().aliases.is_empty());
}

#[test]
fn finalized_models_are_deleted_only_when_forced() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("frozen")).unwrap();
    add(&m, &store, &noise(100_000, 4));
    m.finalize().unwrap();
    let e = m.delete(DeleteOptions::new()).unwrap_err();
    assert!(matches!(e, Error::Immutable { .. }), "{e}");
    assert!(e.to_string().contains("finalized"), "{e}");
    assert!(m.delete_version(1, DeleteOptions::new()).is_err());
    assert_eq!(
        m.versions().unwrap(),
        vec![1],
        "a refused deletion changes nothing"
    );
    let r = m.delete(DeleteOptions::new().force(true)).unwrap();
    assert_eq!(r.models, vec![m.id()]);
    assert!(store.model_by_name("frozen").is_err());
    assert!(store.models().unwrap().is_empty());
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(store.stats().chunks, 0);
    clean(&store);
}

#[test]
fn deleting_an_experiment_frees_its_artifacts_and_optionally_its_models() {
    let (_d, store) = temp_store();
    let exp = store
        .create_experiment(NewExperiment::new("p", "run"))
        .unwrap();
    let art = noise(500_000, 5);
    let blob = crate::common::put(&store, &art);
    exp.add_artifact(
        "plot.png",
        ArtifactBody::Blob {
            blob,
            size: art.len() as u64,
        },
        BTreeMap::new(),
    )
    .unwrap();
    // The caller's hold is dropped: only the artifact keeps the blob now.
    store.release_blob(&blob).unwrap();
    let m = store
        .create_model(NewModel::new("made").experiment(exp.id()))
        .unwrap();
    add(&m, &store, &noise(300_000, 6));
    let kept = store.create_model(NewModel::new("other")).unwrap();
    add(&kept, &store, &noise(300_000, 7));

    let r = exp
        .delete(DeleteOptions::new().with_models(true).dry_run(true))
        .unwrap();
    assert_eq!(
        (r.experiments.len(), r.models.len(), r.blobs_freed),
        (1, 1, 2)
    );
    assert!(store.experiment(exp.id()).is_ok());

    let r = exp.delete(DeleteOptions::new().with_models(true)).unwrap();
    assert_eq!(r.models, vec![m.id()]);
    assert!(store.experiment(exp.id()).is_err());
    assert!(store.model_by_name("made").is_err());
    assert!(!store.contains_blob(&blob).unwrap());
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(kept.version(None).unwrap().version, 1);
    assert_eq!(store.stats().blobs, 1);
    clean(&store);
    let ir = store.verify_index().unwrap();
    assert!(ir.is_clean(), "{ir:?}");
}

#[test]
fn retention_keeps_the_newest_the_aliased_and_the_recent() {
    let (_d, store) = temp_store();
    let m = store.create_model(NewModel::new("ckpt")).unwrap();
    for i in 0..6 {
        add(&m, &store, &noise(200_000, 10 + i));
    }
    m.set_alias("best", 2).unwrap();
    assert!(
        m.prune(&Retention::new(), false).is_err(),
        "a rule is required"
    );

    let dry = m.prune(&Retention::new().keep_last(2), true).unwrap();
    let gone: Vec<u32> = dry.versions.iter().map(|(_, v)| *v).collect();
    assert_eq!(gone, vec![1, 3, 4]);
    assert_eq!(m.versions().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    // Everything is younger than an hour: keep-within keeps it all.
    let r = m
        .prune(
            &Retention::new().keep_within(Duration::from_secs(3600)),
            false,
        )
        .unwrap();
    assert!(r.versions.is_empty());
    let r = m.prune(&Retention::new().keep_last(2), false).unwrap();
    assert_eq!(r.versions.len(), 3);
    assert_eq!(m.versions().unwrap(), vec![2, 5, 6]);
    store.gc(&GcOptions::new()).unwrap();
    clean(&store);
}

#[test]
fn gc_after_reopen_frees_what_deletions_released_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    {
        let store = Store::create(&path).unwrap();
        let m = store.create_model(NewModel::new("a")).unwrap();
        add(&m, &store, &noise(1 << 20, 20));
        add(&m, &store, &noise(1 << 20, 21));
        m.delete_version(1, DeleteOptions::new()).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let before = store.stats().unique_bytes;
    let r = store.gc(&GcOptions::new()).unwrap();
    assert!(r.chunks_deleted > 0);
    assert!(store.stats().unique_bytes < before);
    clean(&store);
}
