//! `Store::put_version`: the library's version policy. Which file of which
//! version each new file is stored against (the latest version, a named
//! one, by path then by size), reverse delta, creating the model or
//! refusing an unknown name, and bad options refused before anything is
//! written.

use std::io::Write;

use modelvault::{BlobId, NewExperiment, Store};

use crate::blob_delta::{run, stored, verify_clean};
use crate::common::{get, noise, temp_store};

/// Stores `files` as the next version of `name` with default options.
pub(crate) fn put_files(store: &Store, name: &str, files: &[(&str, &[u8])]) -> u32 {
    let sizes: Vec<(&str, u64)> = files.iter().map(|(p, d)| (*p, d.len() as u64)).collect();
    let mut put = store.put_version(name).begin(sizes).unwrap();
    for (p, d) in files {
        put.add(p, *d).unwrap();
    }
    put.commit().unwrap().version
}

fn blob_of(store: &Store, name: &str, version: u32, path: &str) -> BlobId {
    store
        .version(name, Some(version))
        .unwrap()
        .file(path)
        .unwrap()
        .blob
}

/// What the store holds, to show that a refused put changed nothing.
fn state(store: &Store) -> (u64, u64, u64, usize, usize) {
    let s = store.stats();
    (
        s.blobs,
        s.versions,
        s.chunks,
        store.models().unwrap().len(),
        store.uploads().unwrap().len(),
    )
}

#[test]
fn the_latest_version_is_the_default_base_and_deltas_store_less() {
    let v = run(3);
    let (_d, store) = temp_store();
    put_files(&store, "m", &[("w.safetensors", &v[0])]);
    put_files(&store, "m", &[("w.safetensors", &v[1])]);
    let v2 = blob_of(&store, "m", 2, "w.safetensors");

    // Version 3 is stored against version 2 (the latest), not version 1
    // (as forward deltas, so that its cost is the delta's).
    let before = stored(&store);
    let mut put = store
        .put_version("m")
        .reverse_delta(false)
        .begin([("w.safetensors", v[2].len() as u64)])
        .unwrap();
    assert_eq!(put.base_version().map(|b| b.version), Some(2));
    assert_eq!(put.base_of("w.safetensors"), Some(v2));
    put.add("w.safetensors", &v[2][..]).unwrap();
    assert_eq!(put.commit().unwrap().version, 3);
    let delta_cost = stored(&store) - before;

    // The same content stored whole costs clearly more.
    let (_d2, plain) = temp_store();
    put_files(&plain, "m", &[("w.safetensors", &v[1])]);
    let before = stored(&plain);
    let mut put = plain
        .put_version("m")
        .no_delta()
        .begin([("w.safetensors", v[2].len() as u64)])
        .unwrap();
    assert!(put.base_version().is_none());
    assert_eq!(put.base_of("w.safetensors"), None);
    put.add("w.safetensors", &v[2][..]).unwrap();
    put.commit().unwrap();
    let plain_cost = stored(&plain) - before;
    assert!(
        delta_cost * 10 < plain_cost * 8,
        "delta {delta_cost} vs whole {plain_cost}"
    );

    let b3 = blob_of(&store, "m", 3, "w.safetensors");
    assert_eq!(get(&store, &b3), v[2]);
    assert_eq!(get(&store, &v2), v[1]);
    verify_clean(&store);
}

#[test]
fn an_explicit_base_names_another_model_or_an_older_version() {
    let (_d, store) = temp_store();
    put_files(&store, "base", &[("w", &noise(5000, 1))]);
    put_files(&store, "base", &[("w", &noise(5000, 2))]);
    let base1 = blob_of(&store, "base", 1, "w");

    // A new model stored against version 1 of another.
    let put = store
        .put_version("tuned")
        .base("base@1")
        .begin([("w", 5000)])
        .unwrap();
    assert_eq!(
        put.base_version().map(|b| (b.name.as_str(), b.version)),
        Some(("base", 1))
    );
    assert_eq!(put.base_of("w"), Some(base1));
    drop(put);

    // The same model, against an older version than its latest.
    let mut put = store
        .put_version("base")
        .base("base@1")
        .begin([("w", 5000)])
        .unwrap();
    assert_eq!(put.base_of("w"), Some(base1));
    // Through a writer the builder set up.
    let mut w = put.writer("w").unwrap();
    w.write_all(&noise(5000, 3)).unwrap();
    put.add_writer("w", w).unwrap();
    assert_eq!(put.len(), 1);
    assert_eq!(put.commit().unwrap().version, 3);
    assert_eq!(
        get(&store, &blob_of(&store, "base", 3, "w")),
        noise(5000, 3)
    );
}

#[test]
fn bases_match_by_path_then_by_the_only_unclaimed_file_of_that_size() {
    let (_d, store) = temp_store();
    let (a, b, c, d) = (noise(100, 1), noise(300, 2), noise(200, 3), noise(200, 4));
    put_files(&store, "m", &[("a", &a), ("b", &b), ("c", &c), ("d", &d)]);
    let blob = |p| blob_of(&store, "m", 1, p);
    let put = store
        .put_version("m")
        .begin([
            ("a", 50),      // same path, whatever its size
            ("x", 300),     // renamed b: the only unclaimed file of 300 bytes
            ("y", 200),     // c and d are both 200 bytes: no choice
            ("z", 100),     // a is 100 bytes but claimed by its path
            ("b/new", 999), // no file of this path or size
        ])
        .unwrap();
    assert_eq!(put.base_of("a"), Some(blob("a")));
    assert_eq!(put.base_of("x"), Some(blob("b")));
    assert_eq!(put.base_of("y"), None);
    assert_eq!(put.base_of("z"), None);
    assert_eq!(put.base_of("b/new"), None);
    // A path not listed finds its base by path only.
    assert_eq!(put.base_of("c"), Some(blob("c")));
    assert_eq!(put.base_of("q"), None);
}

#[test]
fn reverse_delta_re_encodes_the_base_files_against_the_new_ones() {
    let v = run(2);
    let (_d, store) = temp_store();
    put_files(&store, "m", &[("w.safetensors", &v[0])]);
    let old = blob_of(&store, "m", 1, "w.safetensors");

    // Reverse delta is the default.
    let mut put = store
        .put_version("m")
        .begin([("w.safetensors", v[1].len() as u64)])
        .unwrap();
    put.add("w.safetensors", &v[1][..]).unwrap();
    let r = put.commit().unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.rebased_files, 1);
    assert!(r.reverse.rebased >= 10, "{r:?}");
    assert!(r.reverse.bytes_after < r.reverse.bytes_before, "{r:?}");
    // Both versions still read back.
    assert_eq!(get(&store, &old), v[0]);
    assert_eq!(get(&store, &blob_of(&store, "m", 2, "w.safetensors")), v[1]);
    verify_clean(&store);

    // With forward deltas nothing of the base is re-encoded.
    let mut put = store
        .put_version("m")
        .reverse_delta(false)
        .begin([("w.safetensors", v[0].len() as u64)])
        .unwrap();
    put.add("w.safetensors", &v[0][..]).unwrap();
    let r = put.commit().unwrap();
    assert_eq!((r.version, r.rebased_files, r.reverse.rebased), (3, 0, 0));
}

/// A reverse-delta put seals the pack uploads were appending to before it
/// writes, so the base version's records have a pack of their own, which
/// the put's pass deletes once it has replaced them: the space comes back
/// without a collection, and almost nothing is copied.
#[test]
fn a_reverse_put_starts_a_pack_and_its_pass_deletes_the_bases() {
    let v = run(3);
    let (d, store) = temp_store();
    let packs = || {
        let mut p: Vec<String> = std::fs::read_dir(d.path().join("vault/packs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        p.sort();
        p
    };
    put_files(&store, "m", &[("w.safetensors", &v[0])]);
    // The pack holding the latest version's whole records.
    let mut base = "00000000.pack".to_string();
    assert_eq!(packs(), [base.clone()]);
    for (i, data) in v.iter().enumerate().skip(1) {
        let before = packs();
        let mut put = store
            .put_version("m")
            .begin([("w.safetensors", data.len() as u64)])
            .unwrap();
        put.add("w.safetensors", &data[..]).unwrap();
        let r = put.commit().unwrap().reverse;
        assert!(r.rebased >= 10, "{r:?}");
        assert_eq!(r.packs_reclaimed, 1, "version {}: {r:?}", i + 1);
        assert!(
            r.bytes_copied * 10 < r.bytes_reclaimed,
            "version {}: {r:?}",
            i + 1
        );
        // The base's pack is gone: what is left is this version's pack
        // (the first one the put created) and the pack of the deltas.
        let after = packs();
        assert!(!after.contains(&base), "version {}: {after:?}", i + 1);
        assert_eq!(after.len(), 2, "version {}: {after:?}", i + 1);
        base = after.into_iter().find(|p| !before.contains(p)).unwrap();
    }
    for (i, data) in v.iter().enumerate() {
        let b = blob_of(&store, "m", i as u32 + 1, "w.safetensors");
        assert_eq!(&get(&store, &b), data);
    }
    verify_clean(&store);
}

/// Chunks two versions share stay live in the base's pack beside the
/// records the put's pass replaced: a put compacts that pack below 90%
/// live (copying the shared chunks once), where a collection's default
/// would leave the replaced records as dead bytes.
#[test]
fn a_put_reclaims_the_bases_pack_kept_mostly_live_by_shared_files() {
    let v = run(2);
    let shared = noise(2_500_000, 77);
    let (d, store) = temp_store();
    let base_pack = d.path().join("vault/packs/00000000.pack");
    put_files(
        &store,
        "m",
        &[("shared.bin", &shared), ("w.safetensors", &v[0])],
    );
    let stored_before = std::fs::metadata(&base_pack).unwrap().len();
    let files = [
        ("shared.bin", shared.len() as u64),
        ("w.safetensors", v[1].len() as u64),
    ];
    let mut put = store.put_version("m").begin(files).unwrap();
    put.add("shared.bin", &shared[..]).unwrap();
    put.add("w.safetensors", &v[1][..]).unwrap();
    let r = put.commit().unwrap().reverse;
    assert!(r.rebased >= 10, "{r:?}");
    // The shared file kept the base's pack well over half live.
    assert!(
        r.bytes_copied * 2 > stored_before && r.bytes_copied * 10 < stored_before * 9,
        "{r:?} of a {stored_before}-byte pack"
    );
    assert_eq!(r.packs_reclaimed, 1, "{r:?}");
    assert!(!base_pack.exists());
    for (ver, data) in [(1, &v[0]), (2, &v[1])] {
        assert_eq!(
            &get(&store, &blob_of(&store, "m", ver, "w.safetensors")),
            data
        );
        assert_eq!(
            get(&store, &blob_of(&store, "m", ver, "shared.bin")),
            shared
        );
    }
    verify_clean(&store);
}

#[test]
fn a_missing_model_is_created_with_its_project_and_experiment() {
    let (_d, store) = temp_store();
    let e = store
        .create_experiment(NewExperiment::new("proj", "run"))
        .unwrap();
    let mut put = store
        .put_version("fresh")
        .project("proj")
        .experiment(e.id())
        .begin([("f", 10)])
        .unwrap();
    assert!(put.base_version().is_none());
    put.add("f", &noise(10, 1)[..]).unwrap();
    assert_eq!(put.commit().unwrap().version, 1);
    let m = store.model_by_name("fresh").unwrap();
    let info = m.info().unwrap();
    assert_eq!(info.project, "proj");
    assert_eq!(info.experiment, Some(e.id()));
    assert_eq!(m.version(None).unwrap().experiment, Some(e.id()));
}

#[test]
fn an_unknown_name_is_refused_without_create_if_missing() {
    let (_d, store) = temp_store();
    let before = state(&store);
    let err = store
        .put_version("nobody")
        .create_if_missing(false)
        .begin([("f", 10)])
        .err()
        .expect("an unknown model was accepted");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(state(&store), before);
    assert!(store.model_by_name("nobody").is_err());

    // An existing model takes versions with create_if_missing(false).
    put_files(&store, "known", &[("f", &noise(10, 1))]);
    let mut put = store
        .put_version("known")
        .create_if_missing(false)
        .begin([("f", 10)])
        .unwrap();
    put.add("f", &noise(10, 2)[..]).unwrap();
    assert_eq!(put.commit().unwrap().version, 2);
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let (_d, store) = temp_store();
    put_files(&store, "m", &[("f", &noise(1000, 1))]);
    let before = state(&store);
    let refused = |opts: modelvault::PutVersion, what: &str| {
        let err = opts
            .begin([("f", 1000)])
            .err()
            .unwrap_or_else(|| panic!("{what} was accepted"));
        assert_eq!(state(&store), before, "{what} changed the store: {err}");
        err
    };
    assert!(refused(store.put_version("m").base("nosuch@1"), "unknown base").is_not_found());
    assert!(refused(store.put_version("m").base("m@9"), "missing version").is_not_found());
    refused(store.put_version("new").base("m@x!"), "unparsable base");
    refused(store.put_version("bad/name"), "bad model name");
    refused(store.put_version("new").project(""), "empty project");
    // An experiment of another store is unknown here.
    let (_d2, other) = temp_store();
    let elsewhere = other
        .create_experiment(NewExperiment::new("p", "e"))
        .unwrap()
        .id();
    refused(
        store.put_version("new").experiment(elsewhere),
        "unknown experiment",
    );
    assert!(store.model_by_name("new").is_err());
    assert_eq!(store.versions("m").unwrap(), vec![1]);
}
