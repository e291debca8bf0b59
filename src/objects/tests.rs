//! Unit tests of the object namespace that look inside the store: how many
//! entries a listing reads, manifests built from parts, hostile records.

use std::collections::BTreeMap;
use std::io::Read;

use crate::meta::object_records::{self as rec, ObjectRecord};
use crate::meta::tables::{buckets, multipart, objects};
use crate::meta::Batch;
use crate::{CompletedPart, ListQuery, ObjectMeta, PartMeta, Store, VerifyOptions};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create(dir.path().join("s")).unwrap();
    (dir, s)
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn pm(etag: &str) -> PartMeta {
    PartMeta {
        etag: etag.to_string(),
        ..PartMeta::default()
    }
}

fn clean(s: &Store) {
    let r = s.verify(VerifyOptions::new()).unwrap();
    assert!(r.is_clean(), "{:#?}", r.problems);
}

/// Writes object records for `keys` in one commit, all naming `like`'s blob.
fn bulk(s: &Store, bucket: &str, like: &str, keys: &[String]) {
    let meta = s.inner.chunks().meta();
    let r = objects::get(meta, bucket, like).unwrap().unwrap();
    let mut batch = Batch::default();
    for k in keys {
        objects::put(&mut batch, bucket, k, &r, None);
    }
    s.inner
        .chunks()
        .commit(&[], batch, |_, _, _| Ok(()))
        .unwrap();
}

#[test]
fn a_listing_seeks_to_its_start_and_past_common_prefixes() {
    let (_d, s) = store();
    let o = s.objects();
    o.create_bucket("big").unwrap();
    o.put("big", "seed", &b""[..], ObjectMeta::default())
        .unwrap();
    let keys: Vec<String> = (0..3000)
        .map(|i| format!("{}/{i:04}", ["a", "b", "c"][i % 3]))
        .collect();
    bulk(&s, "big", "seed", &keys);
    let meta = s.inner.chunks().meta();
    let reads = |q: ListQuery| {
        let before = objects::reads(meta);
        let page = o.list("big", &q).unwrap();
        (page, objects::reads(meta) - before)
    };
    // A prefix in the middle of the bucket: the page and one more.
    let (page, n) = reads(ListQuery {
        prefix: "b/".into(),
        max_keys: Some(10),
        ..ListQuery::default()
    });
    assert_eq!(page.objects.len(), 10);
    assert_eq!(page.objects[0].key, "b/0001");
    assert!(page.is_truncated);
    assert!(n <= 11, "{n} entries read for a page of 10");
    // Common prefixes: one entry each, then a seek past the prefix.
    let (page, n) = reads(ListQuery {
        delimiter: "/".into(),
        ..ListQuery::default()
    });
    assert_eq!(page.common_prefixes, ["a/", "b/", "c/"]);
    assert_eq!(page.objects.len(), 1);
    assert!(n <= 4, "{n} entries read for 3 common prefixes and a key");
    // Start-after in the middle.
    let (page, n) = reads(ListQuery {
        start_after: Some("c/1500".into()),
        max_keys: Some(3),
        ..ListQuery::default()
    });
    let got: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(got, ["c/1502", "c/1505", "c/1508"]);
    assert!(n <= 4, "{n} entries read for a page of 3");
    // The next page, from the token.
    let (page, n) = reads(ListQuery {
        continuation_token: page.next_continuation_token,
        max_keys: Some(2),
        ..ListQuery::default()
    });
    let got: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(got, ["c/1511", "c/1514"]);
    assert!(n <= 3, "{n}");
    clean(&s);
}

/// Parts of more than a segment's worth of chunks (small chunks), an empty
/// part between them: the object's manifest tiles the whole object in
/// segments of at most 1,024 entries and reads back, nothing is written to
/// the packs, and the parts' own manifests die.
#[test]
fn a_completion_concatenates_manifests_across_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::options()
        .chunking(crate::CdcParams {
            min: 64,
            avg: 256,
            max: 1024,
        })
        .open(dir.path().join("s"))
        .unwrap();
    let o = s.objects();
    o.create_bucket("b01").unwrap();
    let id = o
        .create_multipart("b01", "k", ObjectMeta::default())
        .unwrap();
    let sizes = [400_000usize, 0, 5_000, 300_000];
    let mut want = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let bytes = noise(n, i as u64 + 1);
        want.extend_from_slice(&bytes);
        o.upload_part("b01", "k", &id, i as u32 + 1, &bytes[..], pm("e"))
            .unwrap();
    }
    let stored = s.stats().stored_bytes;
    let parts: Vec<_> = (1..=4)
        .map(|n| CompletedPart {
            number: n,
            etag: "e".into(),
        })
        .collect();
    let info = o
        .complete_multipart("b01", "k", &id, &parts, "t", BTreeMap::new())
        .unwrap();
    assert_eq!(s.stats().stored_bytes, stored);
    let blob = s.blob_record(&info.blob).unwrap().unwrap();
    assert!(blob.chunks > 2 * 1024, "{} chunks", blob.chunks);
    assert_eq!(blob.size, want.len() as u64);
    let (_, mut r) = o.get("b01", "k").unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert!(got == want, "the object reads back other bytes");
    clean(&s);
    s.gc(&crate::GcOptions::new()).unwrap();
    clean(&s);
}

/// Damaged records of every object table give errors naming them, never
/// panics, and verify reports them.
#[test]
fn hostile_records_give_errors_not_panics() {
    let (_d, s) = store();
    let o = s.objects();
    o.create_bucket("b01").unwrap();
    o.put("b01", "good", &b"x"[..], ObjectMeta::default())
        .unwrap();
    let up = o
        .create_multipart("b01", "m", ObjectMeta::default())
        .unwrap();
    o.upload_part("b01", "m", &up, 1, &b"p"[..], pm("e"))
        .unwrap();
    let meta = s.inner.chunks().meta();
    let write = |put: fn(&mut Batch, Vec<u8>, Vec<u8>), k: Vec<u8>, v: Vec<u8>| {
        let mut b = Batch::default();
        put(&mut b, k, v);
        meta.commit(b, true).unwrap();
    };
    let good = objects::get(meta, "b01", "good").unwrap().unwrap();
    let upload_key: [u8; 16] = hex::decode(&up).unwrap().try_into().unwrap();

    // An object record that is garbage, of a future version, truncated.
    for (v, says) in [
        (vec![1, 0xFF, 0xFF, 0xFF], "corrupt object record"),
        (vec![9, 0], "unsupported object record format version 9"),
        (rec::encode(&good)[..20].to_vec(), "corrupt object record"),
        (Vec::new(), "empty record"),
    ] {
        write(objects::put_raw, rec::object("b01", b"bad"), v);
        let e = o.head("b01", "bad").unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert!(o.get("b01", "bad").is_err());
        let e = o.list("b01", &ListQuery::default()).unwrap_err();
        assert!(e.to_string().contains("\"bad\""), "{e}");
        assert!(o.copy("b01", "bad", "b01", "c", None).is_err());
        assert!(o.delete("b01", "bad").is_err());
        let r = s.verify(VerifyOptions::new()).unwrap();
        assert!(
            r.problems.iter().any(|p| p.kind == "object-corrupt"),
            "{:#?}",
            r.problems
        );
    }
    // A well-formed record naming a blob that is not stored, or of
    // another size than its blob.
    let mut lost = good.clone();
    lost.blob = [7; 32];
    write(
        objects::put_raw,
        rec::object("b01", b"bad"),
        rec::encode(&lost),
    );
    let Err(e) = o.get("b01", "bad") else {
        panic!("a damaged object was read")
    };
    assert!(e.to_string().contains("its blob is not stored"), "{e}");
    let kinds = |s: &Store| -> Vec<&'static str> {
        let r = s.verify(VerifyOptions::new()).unwrap();
        r.problems.iter().map(|p| p.kind).collect()
    };
    assert!(kinds(&s).contains(&"blob-missing"), "{:?}", kinds(&s));
    let lying = ObjectRecord {
        size: 1 << 40,
        ..good.clone()
    };
    write(
        objects::put_raw,
        rec::object("b01", b"bad"),
        rec::encode(&lying),
    );
    let Err(e) = o.get("b01", "bad") else {
        panic!("a damaged object was read")
    };
    assert!(e.to_string().contains("holds 1"), "{e}");
    assert!(kinds(&s).contains(&"object-size"), "{:?}", kinds(&s));
    // A key that is not UTF-8, a key too short for its bucket.
    let mut k = rec::object_prefix("b01");
    k.extend_from_slice(&[0xC3, 0x28]);
    write(objects::put_raw, k, rec::encode(&good));
    let e = o.list("b01", &ListQuery::default()).unwrap_err();
    assert!(e.is_integrity(), "{e}");
    write(objects::put_raw, vec![200, b'b'], rec::encode(&good));
    let r = s.verify(VerifyOptions::new()).unwrap();
    assert!(!r.is_clean());

    // Multipart: a damaged part, a damaged upload record, a bad index key.
    write(
        multipart::put_raw,
        rec::part(&upload_key, 2).to_vec(),
        vec![1, 200],
    );
    let e = o.list_parts("b01", "m", &up, 0, 10).unwrap_err();
    assert!(e.to_string().contains("part 2"), "{e}");
    let parts = [CompletedPart {
        number: 1,
        etag: "e".into(),
    }];
    assert!(o
        .complete_multipart("b01", "m", &up, &parts, "", BTreeMap::new())
        .is_err());
    let r = s.verify(VerifyOptions::new()).unwrap();
    assert!(r.problems.iter().any(|p| p.kind == "object-corrupt"));
    write(
        multipart::put_raw,
        rec::upload(&upload_key).to_vec(),
        vec![1],
    );
    assert!(o
        .upload_part("b01", "m", &up, 3, &b"x"[..], pm(""))
        .unwrap_err()
        .is_integrity());
    write(multipart::put_raw, rec::by_key_prefix("b01"), Vec::new());
    assert!(o
        .list_uploads("b01", "", None, 10)
        .unwrap_err()
        .is_integrity());
    // A bucket name that is not UTF-8.
    write(
        buckets::put_raw,
        vec![0xFF, 0xFE, 0xFD],
        rec::encode(&rec::BucketRecord { created_ms: 0 }),
    );
    assert!(o.buckets().unwrap_err().is_integrity());
    write(buckets::put_raw, b"b02".to_vec(), vec![1]);
    assert!(o.bucket("b02").unwrap_err().is_integrity());
}
