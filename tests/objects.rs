//! The object namespace (`Store::objects`): buckets, objects, listing and
//! multipart uploads, their blob references, and `verify` clean after
//! every step.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};

use modelvault::{
    CompletedPart, Error, FileEntry, GcOptions, ListQuery, ObjectMeta, PartMeta, PutCondition,
    Store, VerifyOptions,
};
use proptest::prelude::*;

use crate::common::{noise, packs, temp_store, weights};

fn pm(etag: &str) -> PartMeta {
    PartMeta {
        etag: etag.to_string(),
        ..PartMeta::default()
    }
}

fn clean(store: &Store) {
    let r = store.verify(VerifyOptions::new()).unwrap();
    assert!(r.is_clean(), "{:#?}", r.problems);
}

fn meta(etag: &str) -> ObjectMeta {
    ObjectMeta {
        etag: etag.to_string(),
        ..ObjectMeta::default()
    }
}

fn read_all(store: &Store, bucket: &str, key: &str) -> Vec<u8> {
    let (info, mut r) = store.objects().get(bucket, key).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    assert_eq!(v.len() as u64, info.size);
    v
}

/// Total bytes of the store's pack files.
fn pack_bytes(store: &Store) -> u64 {
    packs(store)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn invalid(e: Error, what: &str, says: &str) {
    match &e {
        Error::InvalidInput { what: w, .. } if *w == what => {}
        _ => panic!("expected invalid {what}, got {e}"),
    }
    assert!(e.to_string().contains(says), "{e}");
}

#[test]
fn buckets_are_created_listed_and_deleted_only_when_empty() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("models").unwrap();
    o.create_bucket("data.v2").unwrap();
    assert!(matches!(
        o.create_bucket("models"),
        Err(Error::Exists { .. })
    ));
    let names: Vec<_> = o.buckets().unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["data.v2", "models"]);
    assert!(o.bucket_exists("models").unwrap());
    assert!(!o.bucket_exists("other").unwrap());
    invalid(
        o.create_bucket("Bad_Name").unwrap_err(),
        "bucket name",
        "'B' is not allowed",
    );
    invalid(o.create_bucket("ab").unwrap_err(), "bucket name", "3 to 63");
    assert_eq!(o.buckets().unwrap().len(), 2);

    // Not empty: an object, then an unfinished multipart upload.
    o.put("models", "k", &b"bytes"[..], meta("e")).unwrap();
    invalid(
        o.delete_bucket("models").unwrap_err(),
        "bucket to delete",
        "holds objects",
    );
    assert!(o.delete("models", "k").unwrap());
    let up = o
        .create_multipart("models", "big", ObjectMeta::default())
        .unwrap();
    invalid(
        o.delete_bucket("models").unwrap_err(),
        "bucket to delete",
        "unfinished multipart uploads",
    );
    o.abort_multipart("models", "big", &up).unwrap();
    o.delete_bucket("models").unwrap();
    assert!(o.delete_bucket("models").unwrap_err().is_not_found());
    assert!(o
        .put("models", "k", &b"x"[..], meta(""))
        .unwrap_err()
        .is_not_found());
    clean(&store);
}

#[test]
fn objects_round_trip_with_what_was_said_about_them() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    let data = weights(3 << 20, 1);
    let m = ObjectMeta {
        etag: "\"abc\"".into(),
        content_type: Some("application/octet-stream".into()),
        metadata: BTreeMap::from([("owner".into(), "me".into())]),
        checksums: BTreeMap::from([("CRC32".into(), "AAAAAA==".into())]),
        headers: BTreeMap::from([("content-disposition".into(), "attachment".into())]),
    };
    let put = o.put("b01", "w/model.bin", &data[..], m.clone()).unwrap();
    assert_eq!(put.size, data.len() as u64);
    let head = o.head("b01", "w/model.bin").unwrap().unwrap();
    assert_eq!(head, put);
    assert_eq!(
        (
            head.etag.as_str(),
            head.content_type.as_deref(),
            &head.metadata,
            &head.checksums,
            &head.headers
        ),
        (
            "\"abc\"",
            m.content_type.as_deref(),
            &m.metadata,
            &m.checksums,
            &m.headers
        )
    );
    assert_eq!(read_all(&store, "b01", "w/model.bin"), data);
    // A range is a seek and a bounded read.
    let (_, mut r) = o.get("b01", "w/model.bin").unwrap();
    r.seek(SeekFrom::Start(1_000_000)).unwrap();
    let mut part = vec![0u8; 4096];
    r.read_exact(&mut part).unwrap();
    assert_eq!(part, data[1_000_000..1_004_096]);
    // Empty objects exist too.
    o.put("b01", "empty", &b""[..], meta("")).unwrap();
    assert_eq!(read_all(&store, "b01", "empty"), b"");
    assert!(o.head("b01", "missing").unwrap().is_none());
    assert!(o.get("b01", "missing").err().unwrap().is_not_found());
    assert!(o.head("nope", "k").unwrap_err().is_not_found());
    clean(&store);

    // Keys are opaque strings, never paths.
    for key in ["../../etc/passwd", "a\0b", "/", "é/..", &"k".repeat(1024)] {
        o.put("b01", key, key.as_bytes(), meta("")).unwrap();
        assert_eq!(read_all(&store, "b01", key), key.as_bytes());
    }
    assert!(!store.path().join("etc").exists());
    let before = o.list("b01", &ListQuery::default()).unwrap();
    invalid(
        o.put("b01", "", &b"x"[..], meta("")).unwrap_err(),
        "object key",
        "empty",
    );
    invalid(
        o.put("b01", &"k".repeat(1025), &b"x"[..], meta(""))
            .unwrap_err(),
        "object key",
        "1025 bytes",
    );
    let big_meta = ObjectMeta {
        metadata: BTreeMap::from([("m".into(), "v".repeat(3000))]),
        ..ObjectMeta::default()
    };
    invalid(
        o.put("b01", "k", &b"x"[..], big_meta).unwrap_err(),
        "user metadata",
        "limit",
    );
    assert_eq!(o.list("b01", &ListQuery::default()).unwrap(), before);
    clean(&store);
}

#[test]
fn the_same_bytes_under_two_keys_and_as_a_model_version_are_stored_once() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    let data = weights(4 << 20, 2);
    let a = o.put("b01", "one", &data[..], meta("")).unwrap();
    let s1 = store.stats();
    let b = o.put("b01", "two", &data[..], meta("")).unwrap();
    assert_eq!(a.blob, b.blob);
    let blob = store.put_blob(&data[..]).unwrap();
    assert_eq!(blob, a.blob);
    store
        .commit_version(
            "m",
            vec![FileEntry {
                path: "w.bin".into(),
                blob,
                size: data.len() as u64,
            }],
        )
        .unwrap();
    store.release_blob(&blob).unwrap();
    let s2 = store.stats();
    assert_eq!(
        (s1.chunks, s1.unique_bytes, s1.blobs),
        (s2.chunks, s2.unique_bytes, s2.blobs)
    );
    // And a stored blob becomes an object without a byte written.
    let packs_before = pack_bytes(&store);
    let c = o.put_blob("b01", "three", &blob, meta("")).unwrap();
    assert_eq!((c.blob, c.size), (blob, data.len() as u64));
    assert_eq!(pack_bytes(&store), packs_before);
    let missing = modelvault::BlobId(modelvault::Hash32([9; 32]));
    assert!(o
        .put_blob("b01", "x", &missing, meta(""))
        .unwrap_err()
        .is_not_found());
    clean(&store);
}

#[test]
fn copy_names_the_same_blob_and_reads_no_bytes() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("src").unwrap();
    o.create_bucket("dst").unwrap();
    let data = noise(2 << 20, 3);
    let m = ObjectMeta {
        etag: "e1".into(),
        content_type: Some("text/plain".into()),
        ..ObjectMeta::default()
    };
    let a = o.put("src", "a", &data[..], m).unwrap();
    let (s, p) = (store.stats(), pack_bytes(&store));
    let c = o.copy("src", "a", "dst", "b", None).unwrap();
    assert_eq!(
        (c.blob, c.size, &c.etag, &c.content_type),
        (a.blob, a.size, &a.etag, &a.content_type)
    );
    let r = o.copy("src", "a", "dst", "c", Some(meta("e2"))).unwrap();
    assert_eq!(
        (r.blob, r.etag.as_str(), r.content_type),
        (a.blob, "e2", None)
    );
    assert_eq!(
        (
            store.stats().chunks,
            store.stats().unique_bytes,
            pack_bytes(&store)
        ),
        (s.chunks, s.unique_bytes, p)
    );
    assert!(o
        .copy("src", "nope", "dst", "d", None)
        .unwrap_err()
        .is_not_found());
    assert!(o
        .copy("src", "a", "nobucket", "d", None)
        .unwrap_err()
        .is_not_found());
    // Deleting the source leaves the copies whole.
    o.delete("src", "a").unwrap();
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(read_all(&store, "dst", "b"), data);
    assert_eq!(read_all(&store, "dst", "c"), data);
    clean(&store);
}

#[test]
fn deleting_or_overwriting_an_object_releases_its_chunks() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    let first = noise(3 << 20, 4);
    let second = noise(2 << 20, 5);
    o.put("b01", "k", &first[..], meta("")).unwrap();
    clean(&store);
    // Collections free nothing an object holds.
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(read_all(&store, "b01", "k"), first);
    let one = store.stats();
    o.put("b01", "k", &second[..], meta("")).unwrap();
    clean(&store);
    let freed = store.gc(&GcOptions::new()).unwrap();
    assert!(freed.chunks_deleted > 0, "{freed:?}");
    assert_eq!(read_all(&store, "b01", "k"), second);
    assert!(store.stats().unique_bytes < one.unique_bytes + second.len() as u64);
    assert_eq!(store.stats().blobs, 1);
    clean(&store);
    assert!(o.delete("b01", "k").unwrap());
    assert!(!o.delete("b01", "k").unwrap());
    clean(&store);
    let freed = store.gc(&GcOptions::new()).unwrap();
    assert!(freed.chunks_deleted > 0, "{freed:?}");
    let s = store.stats();
    assert_eq!((s.chunks, s.unique_bytes, s.blobs), (0, 0, 0));
    clean(&store);
}

/// A bucket's keys as a sorted set: what a listing must show.
fn model_list(
    keys: &BTreeSet<String>,
    prefix: &str,
    delim: &str,
    after: Option<&str>,
) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
        if after.is_some_and(|a| k.as_str() <= a) {
            continue;
        }
        let rest = &k[prefix.len()..];
        match (!delim.is_empty()).then(|| rest.find(delim)).flatten() {
            Some(i) => {
                let cp = k[..prefix.len() + i + delim.len()].to_string();
                if out.last() != Some(&(true, cp.clone())) {
                    out.push((true, cp));
                }
            }
            None => out.push((false, k.clone())),
        }
    }
    // A common prefix at or before start-after: S3 leaves out the keys
    // at or before it, so a prefix whose keys are all there disappears.
    out
}

/// Pages through a listing; returns every entry in order and the pages' sizes.
fn list_all(
    store: &Store,
    bucket: &str,
    prefix: &str,
    delim: &str,
    after: Option<&str>,
    max: usize,
) -> (Vec<(bool, String)>, usize) {
    let mut q = ListQuery {
        prefix: prefix.into(),
        delimiter: delim.into(),
        start_after: after.map(Into::into),
        max_keys: Some(max),
        ..ListQuery::default()
    };
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let p = store.objects().list(bucket, &q).unwrap();
        pages += 1;
        assert!(p.objects.len() + p.common_prefixes.len() <= max);
        // Within a page: objects and prefixes each in order.
        let mut page: Vec<(bool, String)> = p
            .objects
            .iter()
            .map(|o| (false, o.key.clone()))
            .chain(p.common_prefixes.iter().map(|c| (true, c.clone())))
            .collect();
        page.sort_by(|a, b| a.1.cmp(&b.1));
        out.extend(page);
        if !p.is_truncated {
            assert!(p.next_continuation_token.is_none());
            return (out, pages);
        }
        assert!(pages < 10_000, "listing does not end");
        q.continuation_token = p.next_continuation_token;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Listings with prefixes, delimiters, start-after and pages of every
    /// size show what a sorted set of the keys says, each entry once.
    #[test]
    fn listings_match_a_sorted_set_of_the_keys(
        keys in proptest::collection::btree_set("[ab/]{1,5}|[a/é\u{0}]{1,3}", 1..40),
        prefix in "[ab/]{0,2}",
        delim in prop_oneof![Just(String::new()), Just("/".to_string()), Just("b/".to_string())],
        after in proptest::option::of("[ab/]{0,3}"),
        max in 1usize..6,
        deleted in proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
    ) {
        let (_d, store) = temp_store();
        let o = store.objects();
        o.create_bucket("list").unwrap();
        o.create_bucket("lisu").unwrap();
        let mut keys = keys;
        for k in &keys {
            o.put("list", k, k.as_bytes(), meta("")).unwrap();
            // A neighbouring bucket's keys never show.
            o.put("lisu", k, &b""[..], meta("")).unwrap();
        }
        let all: Vec<String> = keys.iter().cloned().collect();
        for i in deleted {
            let k = i.get(&all);
            o.delete("list", k).unwrap();
            keys.remove(k);
        }
        let want = model_list(&keys, &prefix, &delim, after.as_deref());
        let (got, _) = list_all(&store, "list", &prefix, &delim, after.as_deref(), max);
        // A common prefix may straddle start-after: S3 shows it when keys
        // under it come after start-after, which the model does too, so
        // compare as they are.
        prop_assert_eq!(got, want);
    }
}

#[test]
fn listing_pages_by_continuation_token_and_refuses_a_forged_one() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    for d in 0..5 {
        for f in 0..4 {
            o.put("b01", &format!("dir{d}/f{f}"), &b"x"[..], meta(""))
                .unwrap();
        }
    }
    o.put("b01", "top", &b"x"[..], meta("")).unwrap();
    let (entries, pages) = list_all(&store, "b01", "", "/", None, 2);
    let names: Vec<_> = entries.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["dir0/", "dir1/", "dir2/", "dir3/", "dir4/", "top"]);
    assert_eq!(pages, 3);
    let (entries, _) = list_all(&store, "b01", "dir3/", "/", Some("dir3/f1"), 1);
    let names: Vec<_> = entries.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["dir3/f2", "dir3/f3"]);
    let q = ListQuery {
        continuation_token: Some("not hex".into()),
        ..ListQuery::default()
    };
    invalid(
        o.list("b01", &q).unwrap_err(),
        "continuation token",
        "not one this store gave",
    );
    let q = ListQuery {
        max_keys: Some(0),
        ..ListQuery::default()
    };
    let p = o.list("b01", &q).unwrap();
    assert!(p.objects.is_empty() && !p.is_truncated);
}

/// Uploads `parts` (number → bytes) of an upload from one thread each, in
/// reverse order of number.
fn upload_parallel(store: &Store, key: &str, id: &str, parts: &[(u32, Vec<u8>)]) {
    std::thread::scope(|s| {
        for (n, bytes) in parts.iter().rev() {
            s.spawn(move || {
                store
                    .objects()
                    .upload_part("b01", key, id, *n, &bytes[..], pm(&format!("etag{n}")))
                    .unwrap();
            });
        }
    });
}

fn completed(numbers: &[u32]) -> Vec<CompletedPart> {
    numbers
        .iter()
        .map(|&n| CompletedPart {
            number: n,
            etag: format!("\"etag{n}\""),
        })
        .collect()
}

#[test]
fn multipart_parts_from_threads_complete_without_reading_or_writing_bytes() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    let meta_in = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let id = o
        .create_multipart(
            "b01",
            "big.bin",
            ObjectMeta {
                content_type: Some("model/x".into()),
                metadata: meta_in.clone(),
                headers: BTreeMap::from([("cache-control".into(), "no-cache".into())]),
                ..Default::default()
            },
        )
        .unwrap();
    let parts: Vec<(u32, Vec<u8>)> = (1..=6u32)
        .map(|n| (n * 2, weights(1 << 20 | (n as usize * 977), u64::from(n))))
        .collect();
    upload_parallel(&store, "big.bin", &id, &parts);
    // A part uploaded again replaces the first one.
    o.upload_part("b01", "big.bin", &id, 4, &parts[1].1[..], pm("etag4"))
        .unwrap();
    // One more part that the completion leaves out.
    o.upload_part("b01", "big.bin", &id, 99, &noise(100_000, 9)[..], pm("x"))
        .unwrap();
    let listed = o.list_parts("b01", "big.bin", &id, 0, 100).unwrap();
    let numbers: Vec<u32> = listed.parts.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [2, 4, 6, 8, 10, 12, 99]);
    let page = o.list_parts("b01", "big.bin", &id, 4, 2).unwrap();
    assert_eq!(
        page.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [6, 8]
    );
    assert_eq!(
        (page.is_truncated, page.next_part_number_marker),
        (true, Some(8))
    );
    // Never an object before it is complete.
    assert!(o.head("b01", "big.bin").unwrap().is_none());
    assert!(o
        .list("b01", &ListQuery::default())
        .unwrap()
        .objects
        .is_empty());
    clean(&store);

    let (stats, packs) = (store.stats(), pack_bytes(&store));
    let nums: Vec<u32> = parts.iter().map(|p| p.0).collect();
    let obj = o
        .complete_multipart(
            "b01",
            "big.bin",
            &id,
            &completed(&nums),
            "\"md5-6\"",
            BTreeMap::new(),
        )
        .unwrap();
    assert_eq!(pack_bytes(&store), packs, "the packs grew on complete");
    assert_eq!(
        (store.stats().chunks, store.stats().unique_bytes),
        (stats.chunks, stats.unique_bytes)
    );
    let want: Vec<u8> = parts.iter().flat_map(|p| p.1.clone()).collect();
    assert_eq!(
        (obj.size, obj.parts, obj.etag.as_str()),
        (want.len() as u64, 6, "\"md5-6\"")
    );
    assert_eq!(
        (obj.content_type.as_deref(), &obj.metadata),
        (Some("model/x"), &meta_in)
    );
    assert_eq!(
        obj.headers.get("cache-control").map(String::as_str),
        Some("no-cache")
    );
    assert!(o
        .list_parts("b01", "big.bin", &id, 0, 10)
        .unwrap_err()
        .is_not_found());
    assert!(o
        .list_uploads("b01", "", None, 10)
        .unwrap()
        .uploads
        .is_empty());
    clean(&store);
    // The parts' own blobs are released; the object keeps every chunk.
    let gc = store.gc(&GcOptions::new()).unwrap();
    assert!(gc.chunks_deleted > 0, "the discarded part is freed: {gc:?}");
    assert_eq!(read_all(&store, "b01", "big.bin"), want);
    let (_, mut r) = o.get("b01", "big.bin").unwrap();
    let mid = want.len() as u64 / 2 - 100;
    r.seek(SeekFrom::Start(mid)).unwrap();
    let mut buf = vec![0u8; 300_000];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, want[mid as usize..mid as usize + 300_000]);
    clean(&store);
    // Deleting it frees everything.
    o.delete("b01", "big.bin").unwrap();
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(store.stats().chunks, 0);
    clean(&store);
}

#[test]
fn multipart_completion_errors_change_nothing() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    let id = o
        .create_multipart("b01", "k", ObjectMeta::default())
        .unwrap();
    for n in [1, 2, 3] {
        o.upload_part(
            "b01",
            "k",
            &id,
            n,
            &noise(50_000, n.into())[..],
            pm(&format!("etag{n}")),
        )
        .unwrap();
    }
    invalid(
        o.complete_multipart("b01", "k", &id, &completed(&[2, 1]), "", BTreeMap::new())
            .unwrap_err(),
        "part order",
        "ascending",
    );
    invalid(
        o.complete_multipart("b01", "k", &id, &completed(&[1, 1]), "", BTreeMap::new())
            .unwrap_err(),
        "part order",
        "ascending",
    );
    invalid(
        o.complete_multipart("b01", "k", &id, &completed(&[1, 4]), "", BTreeMap::new())
            .unwrap_err(),
        "part",
        "was not uploaded",
    );
    let mut wrong = completed(&[1, 2]);
    wrong[1].etag = "other".into();
    invalid(
        o.complete_multipart("b01", "k", &id, &wrong, "", BTreeMap::new())
            .unwrap_err(),
        "part",
        "entity tag",
    );
    invalid(
        o.complete_multipart("b01", "k", &id, &[], "", BTreeMap::new())
            .unwrap_err(),
        "part list",
        "at least one part",
    );
    invalid(
        o.upload_part("b01", "k", &id, 0, &b"x"[..], pm(""))
            .unwrap_err(),
        "part number",
        "1 to 10000",
    );
    invalid(
        o.upload_part("b01", "k", &id, 10_001, &b"x"[..], pm(""))
            .unwrap_err(),
        "part number",
        "1 to 10000",
    );
    // Another key's upload id, a forged id: no such upload.
    assert!(o
        .upload_part("b01", "other", &id, 1, &b"x"[..], pm(""))
        .unwrap_err()
        .is_not_found());
    for forged in ["", "zz", &"0".repeat(32), "../../x"] {
        assert!(o
            .complete_multipart("b01", "k", forged, &completed(&[1]), "", BTreeMap::new())
            .unwrap_err()
            .is_not_found());
    }
    assert!(o.head("b01", "k").unwrap().is_none());
    assert_eq!(o.list_parts("b01", "k", &id, 0, 10).unwrap().parts.len(), 3);
    clean(&store);
    // Still completes after all that.
    let obj = o
        .complete_multipart("b01", "k", &id, &completed(&[1, 3]), "", BTreeMap::new())
        .unwrap();
    let mut want = noise(50_000, 1);
    want.extend(noise(50_000, 3));
    assert_eq!(obj.size, want.len() as u64);
    assert_eq!(read_all(&store, "b01", "k"), want);
    assert!(o
        .complete_multipart("b01", "k", &id, &completed(&[1, 3]), "", BTreeMap::new())
        .unwrap_err()
        .is_not_found());
    clean(&store);
}

#[test]
fn an_unfinished_upload_survives_reopening_and_abort_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let (id, id2) = {
        let store = Store::create(&path).unwrap();
        let o = store.objects();
        o.create_bucket("b01").unwrap();
        let id = o
            .create_multipart("b01", "k", ObjectMeta::default())
            .unwrap();
        let id2 = o
            .create_multipart("b01", "j", ObjectMeta::default())
            .unwrap();
        o.upload_part("b01", "k", &id, 1, &noise(300_000, 1)[..], pm("e1"))
            .unwrap();
        o.upload_part("b01", "j", &id2, 1, &noise(300_000, 7)[..], pm("e1"))
            .unwrap();
        (id, id2)
    };
    let store = Store::open(&path).unwrap();
    let o = store.objects();
    // A collection frees nothing the parts hold.
    store
        .gc(&GcOptions::new().expire_uploads_after(std::time::Duration::ZERO))
        .unwrap();
    let ups = o.list_uploads("b01", "", None, 10).unwrap();
    let listed: Vec<_> = ups
        .uploads
        .iter()
        .map(|u| (u.key.as_str(), u.upload_id.as_str()))
        .collect();
    assert_eq!(listed, [("j", id2.as_str()), ("k", id.as_str())]);
    let page = o.list_uploads("b01", "", None, 1).unwrap();
    assert!(page.is_truncated);
    let (k, u) = page.next_marker.unwrap();
    let next = o.list_uploads("b01", "", Some((&k, Some(&u))), 10).unwrap();
    assert_eq!(next.uploads.len(), 1);
    assert_eq!(next.uploads[0].key, "k");
    assert_eq!(
        o.list_uploads("b01", "k", None, 10).unwrap().uploads.len(),
        1
    );
    assert_eq!(
        o.list_uploads("b01", "", Some(("j", None)), 10)
            .unwrap()
            .uploads
            .len(),
        1
    );
    assert!(o.head("b01", "k").unwrap().is_none());
    assert!(o
        .list("b01", &ListQuery::default())
        .unwrap()
        .objects
        .is_empty());
    clean(&store);
    // Resumable: another part, then complete.
    o.upload_part("b01", "k", &id, 2, &noise(1000, 2)[..], pm("e2"))
        .unwrap();
    let mut want = noise(300_000, 1);
    want.extend(noise(1000, 2));
    let done = o
        .complete_multipart(
            "b01",
            "k",
            &id,
            &[
                CompletedPart {
                    number: 1,
                    etag: "e1".into(),
                },
                CompletedPart {
                    number: 2,
                    etag: "e2".into(),
                },
            ],
            "t",
            BTreeMap::new(),
        )
        .unwrap();
    assert_eq!(done.size, want.len() as u64);
    assert_eq!(read_all(&store, "b01", "k"), want);
    // Abort releases the other one's parts.
    let before = store.stats().chunks;
    o.abort_multipart("b01", "j", &id2).unwrap();
    assert!(o
        .abort_multipart("b01", "j", &id2)
        .unwrap_err()
        .is_not_found());
    clean(&store);
    let gc = store.gc(&GcOptions::new()).unwrap();
    assert!(
        gc.chunks_deleted > 0 && store.stats().chunks < before,
        "{gc:?}"
    );
    assert_eq!(read_all(&store, "b01", "k"), want);
    clean(&store);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(read_all(&store, "b01", "k"), want);
    clean(&store);
}

#[test]
fn the_same_parts_completed_twice_make_one_blob() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    let mut blobs = Vec::new();
    for key in ["x", "y"] {
        let id = o
            .create_multipart("b01", key, ObjectMeta::default())
            .unwrap();
        for n in 1..=3u32 {
            o.upload_part("b01", key, &id, n, &noise(200_000, n.into())[..], pm("e"))
                .unwrap();
        }
        let parts: Vec<_> = (1..=3)
            .map(|n| CompletedPart {
                number: n,
                etag: "e".into(),
            })
            .collect();
        blobs.push(
            o.complete_multipart("b01", key, &id, &parts, "", BTreeMap::new())
                .unwrap()
                .blob,
        );
    }
    assert_eq!(blobs[0], blobs[1]);
    o.delete("b01", "x").unwrap();
    store.gc(&GcOptions::new()).unwrap();
    let mut want = Vec::new();
    for n in 1..=3u64 {
        want.extend(noise(200_000, n));
    }
    assert_eq!(read_all(&store, "b01", "y"), want);
    clean(&store);
}

#[test]
fn writers_of_one_key_from_many_threads_leave_one_object_and_exact_counts() {
    let (_d, store) = temp_store();
    store.objects().create_bucket("b01").unwrap();
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let store = &store;
            s.spawn(move || {
                let o = store.objects();
                for i in 0..4u64 {
                    let bytes = noise(100_000 + i as usize, t * 10 + i);
                    o.put("b01", "same", &bytes[..], meta(&format!("{t}-{i}")))
                        .unwrap();
                    o.put("b01", &format!("own{t}"), &bytes[..], meta(""))
                        .unwrap();
                    if i % 2 == 1 {
                        o.copy("b01", "same", "b01", &format!("copy{t}"), None)
                            .unwrap();
                        o.delete("b01", &format!("own{t}")).unwrap();
                    }
                }
            });
        }
    });
    // Each of "same" and the copies holds the bytes its entity tag names
    // (a copy keeps its source's), whoever won.
    let o = store.objects();
    let check = |key: &str| {
        let info = o.head("b01", key).unwrap().unwrap();
        let (t, i) = info.etag.split_once('-').unwrap();
        let (t, i) = (t.parse::<u64>().unwrap(), i.parse::<u64>().unwrap());
        assert_eq!(
            read_all(&store, "b01", key),
            noise(100_000 + i as usize, t * 10 + i)
        );
    };
    check("same");
    clean(&store);
    store.gc(&GcOptions::new()).unwrap();
    clean(&store);
    check("same");
    for t in 0..6 {
        check(&format!("copy{t}"));
        assert!(o.head("b01", &format!("own{t}")).unwrap().is_none());
    }
}

#[test]
fn uploads_begun_before_a_time_are_aborted_and_their_parts_freed() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("b01").unwrap();
    o.create_bucket("b02").unwrap();
    let old = o
        .create_multipart("b01", "a", ObjectMeta::default())
        .unwrap();
    let old2 = o
        .create_multipart("b02", "b", ObjectMeta::default())
        .unwrap();
    o.upload_part("b01", "a", &old, 1, &noise(200_000, 1)[..], pm("e"))
        .unwrap();
    let created = |bucket: &str, id: &str| {
        o.list_uploads(bucket, "", None, 10)
            .unwrap()
            .uploads
            .into_iter()
            .find(|u| u.upload_id == id)
            .unwrap()
            .created_ms
    };
    let (a_ms, b_ms) = (created("b01", &old), created("b02", &old2));
    let old_ms = a_ms.max(b_ms);
    // Wait for the clock to pass the old uploads' millisecond.
    let young = loop {
        let id = o
            .create_multipart("b01", "c", ObjectMeta::default())
            .unwrap();
        if created("b01", &id) > old_ms {
            break id;
        }
        o.abort_multipart("b01", "c", &id).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let young_ms = created("b01", &young);
    o.upload_part("b01", "c", &young, 1, &noise(200_000, 2)[..], pm("e"))
        .unwrap();
    // Before the first upload: nothing.
    assert!(o
        .abort_uploads_begun_before(a_ms.min(b_ms))
        .unwrap()
        .is_empty());
    let gone = o.abort_uploads_begun_before(young_ms).unwrap();
    let mut ids: Vec<_> = gone.iter().map(|u| u.upload_id.clone()).collect();
    ids.sort();
    let mut want = vec![old.clone(), old2];
    want.sort();
    assert_eq!(ids, want);
    let left = o.list_uploads("b01", "", None, 10).unwrap();
    assert_eq!(left.uploads.len(), 1);
    assert_eq!(left.uploads[0].upload_id, young);
    clean(&store);
    let gc = store.gc(&GcOptions::new()).unwrap();
    assert!(gc.chunks_deleted > 0, "{gc:?}");
    clean(&store);
    // The young one still completes.
    let parts = [CompletedPart {
        number: 1,
        etag: "e".into(),
    }];
    o.complete_multipart("b01", "c", &young, &parts, "", BTreeMap::new())
        .unwrap();
    assert_eq!(read_all(&store, "b01", "c"), noise(200_000, 2));
    clean(&store);
}

/// A put "only if absent" (S3's `If-None-Match: *`) is decided in its
/// commit: of two staged while the key was free, the first committed wins,
/// the second is refused and changes nothing, and its bytes are not kept.
#[test]
fn a_put_if_absent_is_decided_at_its_commit() {
    let (_d, store) = temp_store();
    let o = store.objects();
    o.create_bucket("bkt").unwrap();
    let stage = |seed: u64| {
        let mut w = store.blob_writer();
        std::io::Write::write_all(&mut w, &noise(300_000, seed)).unwrap();
        w.stage().unwrap()
    };
    // Both were checked (and found the key free) before either committed.
    let (first, second) = (stage(1), stage(2));
    assert!(o.head("bkt", "k").unwrap().is_none());
    o.put_staged_when("bkt", "k", first, meta("one"), PutCondition::Absent)
        .unwrap();
    let r = o.put_staged_when("bkt", "k", second, meta("two"), PutCondition::Absent);
    assert!(
        matches!(r, Err(Error::Exists { .. })),
        "{:?}",
        r.map(|i| i.etag)
    );
    assert_eq!(o.head("bkt", "k").unwrap().unwrap().etag, "one");
    assert!(read_all(&store, "bkt", "k") == noise(300_000, 1));
    // The refused blob's chunks are garbage; only the winner's stay.
    store.gc(&GcOptions::new()).unwrap();
    assert_eq!(store.stats().blobs, 1);
    // Without the condition, the put replaces the object.
    o.put_staged_when("bkt", "k", stage(3), meta("three"), PutCondition::Always)
        .unwrap();
    assert_eq!(o.head("bkt", "k").unwrap().unwrap().etag, "three");
}
