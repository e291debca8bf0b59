//! Bundles: `Store::export` and `Store::import` between stores. Round trips
//! keep ids, versions and bytes; imports are idempotent, incremental
//! exports carry only what the target lacks, and a bundle cut off, damaged
//! or in conflict imports nothing.

use modelvault::{ExportSpec, ImportOptions, NewModel, Store};

use crate::common::{get, noise, temp_store};
use crate::registry_put::put_files;

fn export(store: &Store, spec: &ExportSpec) -> (Vec<u8>, modelvault::ExportReport) {
    store.export(spec, Vec::new(), &|_| {}).unwrap()
}

/// Everything a store's registry says, to compare two stores or a store
/// before and after a refused import.
fn registry(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for m in store.models().unwrap() {
        let model = store.model_by_name(&m.name).unwrap();
        let info = model.info().unwrap();
        out.push(format!(
            "{} {} latest {:?}",
            info.id,
            info.name,
            store.versions(&m.name).unwrap()
        ));
        for v in store.versions(&m.name).unwrap() {
            let ver = store.version(&m.name, Some(v)).unwrap();
            for f in &ver.files {
                out.push(format!("  {}@{v} {} {} {}", m.name, f.path, f.blob, f.size));
            }
        }
    }
    out
}

fn counts(store: &Store) -> (u64, u64, u64, u64) {
    let s = store.stats();
    (s.logical_bytes, s.unique_bytes, s.blobs, s.versions)
}

fn verify_clean(store: &Store) {
    let r = store
        .verify(modelvault::VerifyOptions::new().read_data(true))
        .unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

/// A source store: model `a` with two versions sharing most bytes, model
/// `b` with one, and an external model.
fn source() -> (tempfile::TempDir, Store) {
    let (dir, store) = temp_store();
    let w1 = noise(600_000, 1);
    let mut w2 = w1.clone();
    w2[300_000..310_000].copy_from_slice(&noise(10_000, 2));
    put_files(&store, "a", &[("w.bin", &w1), ("cfg.json", b"{\"v\":1}")]);
    put_files(&store, "a", &[("w.bin", &w2), ("cfg.json", b"{\"v\":2}")]);
    put_files(&store, "b", &[("x.bin", &noise(200_000, 3))]);
    let a = store.model_by_name("a").unwrap();
    a.set_alias("prod", 2).unwrap();
    store
        .register_external_model(NewModel::new("ext"), "https://example.com/m.bin", None)
        .unwrap();
    let e = store
        .create_experiment(modelvault::NewExperiment::new("p", "e"))
        .unwrap();
    e.log(modelvault::Stream::Stdout, "line").unwrap();
    let objs = store.objects();
    objs.create_bucket("mlflow").unwrap();
    objs.put(
        "mlflow",
        "runs/1/model.pkl",
        &noise(90_000, 8)[..],
        Default::default(),
    )
    .unwrap();
    (dir, store)
}

#[test]
fn a_whole_store_round_trips_with_ids_versions_and_bytes_and_imports_once() {
    let (_d, src) = source();
    let (bundle, report) = export(&src, &ExportSpec::store());
    assert_eq!(
        (report.experiments, report.models, report.versions),
        (1, 3, 3)
    );
    assert_eq!(report.bundle_bytes, bundle.len() as u64);
    let (_d2, dst) = temp_store();
    let r = dst
        .import(&bundle[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!((r.models_added, r.versions_added), (3, 3));
    assert!(r.conflicts.is_empty());
    assert_eq!(registry(&dst), registry(&src));
    for v in [1, 2] {
        let f = src
            .version("a", Some(v))
            .unwrap()
            .file("w.bin")
            .unwrap()
            .blob;
        assert_eq!(get(&dst, &f), get(&src, &f));
    }
    let a = dst.model_by_name("a").unwrap().info().unwrap();
    assert_eq!(a.aliases.get("prod"), Some(&2));
    assert_eq!(a.id, src.model_by_name("a").unwrap().id());
    assert_eq!(
        dst.model_by_name("ext").unwrap().info().unwrap().external,
        src.model_by_name("ext").unwrap().info().unwrap().external
    );
    verify_clean(&dst);
    verify_clean(&src);
    // Twice: nothing changes.
    let before = (registry(&dst), counts(&dst));
    let r = dst
        .import(&bundle[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!((r.models_added, r.versions_added, r.blobs_added), (0, 0, 0));
    assert_eq!((registry(&dst), counts(&dst)), before);
    verify_clean(&dst);
}

#[test]
fn an_incremental_export_carries_only_the_chunks_the_target_lacks() {
    let (_d, src) = source();
    let (full, _) = export(&src, &ExportSpec::default().model("a", None));
    let (_d2, dst) = temp_store();
    dst.import(&full[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    // A third version, changed in one place.
    let mut w3 = src
        .version("a", Some(2))
        .unwrap()
        .file("w.bin")
        .map(|f| get(&src, &f.blob))
        .unwrap();
    w3[100_000..105_000].copy_from_slice(&noise(5_000, 9));
    put_files(&src, "a", &[("w.bin", &w3), ("cfg.json", b"{\"v\":3}")]);
    let mut have = Vec::new();
    dst.chunk_ids(|id| {
        have.push(*id);
        Ok(())
    })
    .unwrap();
    let spec = ExportSpec::default().model("a", None).exclude_chunks(have);
    let (inc, rep) = export(&src, &spec);
    // The same through the earlier bundle instead of the `have` list.
    let (since, rep2) = export(
        &src,
        &ExportSpec::default()
            .model("a", None)
            .exclude_bundle(&full[..])
            .unwrap(),
    );
    assert_eq!(rep2.chunks_carried, rep.chunks_carried);
    assert!(
        since.len() < full.len() / 3,
        "{} vs {}",
        since.len(),
        full.len()
    );
    // About one changed region's chunks, not a whole checkpoint.
    assert!(rep.raw_bytes_carried < 300_000, "{rep:?}");
    assert!(
        inc.len() < full.len() / 3,
        "{} vs {}",
        inc.len(),
        full.len()
    );
    let stored_before = dst.stats().stored_bytes;
    let r = dst
        .import(&inc[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!(r.versions_added, 1);
    // The new chunks are stored as deltas against version 2's file of the
    // same path (committed here before): the 5,000 changed bytes, not the
    // whole chunks around them.
    let grown = dst.stats().stored_bytes - stored_before;
    eprintln!(
        "stored grew by {grown} bytes; carried {} raw",
        rep.raw_bytes_carried
    );
    assert!(grown < rep.raw_bytes_carried / 2, "{grown} of {rep:?}");
    let b = src
        .version("a", Some(3))
        .unwrap()
        .file("w.bin")
        .unwrap()
        .blob;
    assert_eq!(get(&dst, &b), w3);
    verify_clean(&dst);
    // Into a store without those chunks: refused, naming one, nothing changed.
    let (_d3, empty) = temp_store();
    let err = empty
        .import(&inc[..], &ImportOptions::default(), &|_| {})
        .unwrap_err();
    assert!(err.to_string().contains("which does not hold it"), "{err}");
    assert!(registry(&empty).is_empty());
}

#[test]
fn a_cut_off_or_damaged_bundle_imports_nothing_and_says_where() {
    let (_d, src) = source();
    let (bundle, _) = export(&src, &ExportSpec::default().model("b", None));
    let (_d2, dst) = temp_store();
    put_files(&dst, "other", &[("o.bin", &noise(50_000, 7))]);
    let before = (registry(&dst), counts(&dst));
    let step = (bundle.len() / 40).max(1);
    for cut in (0..bundle.len()).step_by(step) {
        let err = dst
            .import(&bundle[..cut], &ImportOptions::default(), &|_| {})
            .unwrap_err();
        assert!(err.to_string().contains("bundle"), "cut at {cut}: {err}");
        assert_eq!((registry(&dst), counts(&dst)), before, "cut at {cut}");
    }
    for at in (0..bundle.len()).step_by(step) {
        let mut bad = bundle.clone();
        bad[at] ^= 0x10;
        let err = dst
            .import(&bad[..], &ImportOptions::default(), &|_| {})
            .unwrap_err();
        assert!(
            err.to_string().contains("at byte") || err.to_string().contains("version"),
            "flip at {at}: {err}"
        );
        assert_eq!((registry(&dst), counts(&dst)), before, "flip at {at}");
    }
    // Collection frees what the refused imports staged.
    dst.gc(&modelvault::GcOptions::default()).unwrap();
    verify_clean(&dst);
    assert_eq!((registry(&dst), counts(&dst)), before);
}

#[test]
fn conflicts_import_nothing_unless_skipped_and_never_overwrite() {
    let (_d, src) = source();
    let (bundle, _) = export(&src, &ExportSpec::store());
    let (_d2, dst) = temp_store();
    // Another model named "b", with other content, and another object of
    // the same key.
    put_files(&dst, "b", &[("x.bin", b"mine")]);
    dst.objects().create_bucket("mlflow").unwrap();
    dst.objects()
        .put(
            "mlflow",
            "runs/1/model.pkl",
            &b"other"[..],
            Default::default(),
        )
        .unwrap();
    let before = (registry(&dst), counts(&dst));
    let err = dst
        .import(&bundle[..], &ImportOptions::default(), &|_| {})
        .unwrap_err();
    assert!(err.to_string().contains("model b"), "{err}");
    assert!(
        err.to_string().contains("object mlflow/runs/1/model.pkl"),
        "{err}"
    );
    assert_eq!((registry(&dst), counts(&dst)), before);
    let r = dst
        .import(
            &bundle[..],
            &ImportOptions::default().skip_conflicts(true),
            &|_| {},
        )
        .unwrap();
    assert_eq!(r.conflicts.len(), 2, "{:?}", r.conflicts);
    assert_eq!((r.models_added, r.versions_added), (2, 2));
    let b = dst.version("b", None).unwrap();
    assert_eq!(get(&dst, &b.file("x.bin").unwrap().blob), b"mine");
    verify_clean(&dst);
}

#[test]
fn a_finalized_model_without_the_bundles_version_is_a_conflict() {
    let (_d, src) = source();
    let (one, _) = export(&src, &ExportSpec::default().model("a", Some((1, 1))));
    let (_d2, dst) = temp_store();
    dst.import(&one[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!(dst.versions("a").unwrap(), vec![1]);
    dst.model_by_name("a").unwrap().finalize().unwrap();
    let (two, _) = export(&src, &ExportSpec::default().model("a", Some((2, 2))));
    let err = dst
        .import(&two[..], &ImportOptions::default(), &|_| {})
        .unwrap_err();
    assert!(err.to_string().contains("finalized"), "{err}");
    assert_eq!(dst.versions("a").unwrap(), vec![1]);
}

#[test]
fn unknown_selections_fail_before_writing() {
    let (_d, src) = source();
    let err = src
        .export(
            &ExportSpec::default().model("nope", None),
            Vec::new(),
            &|_| {},
        )
        .unwrap_err();
    assert!(matches!(err, modelvault::Error::NotFound { .. }), "{err}");
    let err = src
        .export(
            &ExportSpec::default().model("a", Some((5, 9))),
            Vec::new(),
            &|_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("a@5..9"), "{err}");
}

#[test]
fn an_experiment_travels_with_its_captures_artifacts_and_the_models_it_made() {
    use modelvault::query::Value;
    use modelvault::{NewExperiment, Stream};
    let (_d, src) = temp_store();
    put_files(&src, "base", &[("b.bin", &noise(30_000, 4))]);
    let exp = src
        .create_experiment(NewExperiment::new("proj", "run-1").tags(["t"]))
        .unwrap();
    exp.start().unwrap();
    exp.set_param("General/lr", Value::Float(0.01)).unwrap();
    exp.log_lines([(Stream::Stdout, "epoch 1"), (Stream::Stderr, "warn")])
        .unwrap();
    exp.report_scalars([("loss", "train", 1, 0.5), ("loss", "train", 2, 0.25)])
        .unwrap();
    let base_v = *src.versions("base").unwrap().last().unwrap();
    exp.use_model(src.model_by_name("base").unwrap().id(), base_v)
        .unwrap();
    let art = noise(70_000, 5);
    let art_blob = crate::common::put(&src, &art);
    exp.add_artifact(
        "weights.npy",
        modelvault::ArtifactBody::Blob {
            blob: art_blob,
            size: art.len() as u64,
        },
        Default::default(),
    )
    .unwrap();
    src.create_model(NewModel::new("made").experiment(exp.id()))
        .unwrap();
    put_files(&src, "made", &[("m.bin", &noise(40_000, 6))]);

    let spec = ExportSpec::default().experiment(exp.id(), true);
    let (bundle, rep) = export(&src, &spec);
    assert_eq!((rep.experiments, rep.models), (1, 2), "{rep:?}");
    let (_d2, dst) = temp_store();
    let r = dst
        .import(&bundle[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!(r.experiments_added, 1);
    let e2 = dst.experiment(exp.id()).unwrap();
    let (a, b) = (exp.info().unwrap(), e2.info().unwrap());
    assert_eq!(a, b);
    assert_eq!(e2.console(0, 10).unwrap(), exp.console(0, 10).unwrap());
    assert_eq!(e2.scalars("loss").unwrap(), exp.scalars("loss").unwrap());
    assert_eq!(e2.artifacts().unwrap(), exp.artifacts().unwrap());
    let a = e2.artifact("weights.npy", None).unwrap();
    let modelvault::ArtifactBody::Blob { blob, .. } = a.body else {
        panic!("a blob artifact")
    };
    assert_eq!(get(&dst, &blob), art);
    assert_eq!(registry(&dst), registry(&src));
    verify_clean(&dst);
    assert!(dst.verify_index().unwrap().is_clean());
    // Again: nothing new. A changed experiment on one side is a conflict.
    let r = dst
        .import(&bundle[..], &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!((r.experiments_added, r.versions_added), (0, 0));
    e2.log(Stream::Stdout, "only here").unwrap();
    let err = dst
        .import(&bundle[..], &ImportOptions::default(), &|_| {})
        .unwrap_err();
    assert!(err.to_string().contains("another state"), "{err}");
}
