//! Reference counts recomputed from the primary records: what `verify`
//! compares the `refs` column family with, and how a store written before
//! reference counts existed gets them at its first open by this build.
//!
//! This reads registry records (version files, artifacts), the only place
//! the store layer looks at them: they are what keep blobs.

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::id::Hash32;
use crate::meta::keys::{self, refs};
use crate::meta::records;
use crate::meta::registry_records::{ArtifactBody, ArtifactRecord, VersionRecord};
use crate::meta::tables::{gc_queue, singletons};
use crate::meta::{Batch, Cf, Meta};

/// Expected counts, by `refs` key (chunk references from manifest segments
/// and delta records, blob references; holds are
/// primary data and not derivable), plus the ids of manifests that have
/// segments and the keys of records that could not be decoded.
pub(crate) struct Expected {
    pub counts: HashMap<Vec<u8>, u64>,
    pub manifests: BTreeSet<u64>,
    pub undecodable: Vec<(Cf, Vec<u8>)>,
}

pub(crate) fn expected(meta: &Meta) -> Result<Expected> {
    let bad = |what: &'static str| Error::corrupt(what, "key of the wrong length");
    let mut e = Expected {
        counts: HashMap::new(),
        manifests: BTreeSet::new(),
        undecodable: Vec::new(),
    };
    let mut add =
        |tag: u8, id: &[u8; 32]| *e.counts.entry(keys::count(tag, id).to_vec()).or_insert(0) += 1;
    for kv in meta.scan_prefix(Cf::Manifests, &[], &[]) {
        let (k, v) = kv?;
        e.manifests
            .insert(keys::parse_segment(&k).ok_or_else(|| bad("manifests"))?.0);
        match records::decode_segment(&v) {
            Ok(seg) => seg.iter().for_each(|s| add(refs::CHUNK, s.id.as_bytes())),
            Err(_) => e.undecodable.push((Cf::Manifests, k.to_vec())),
        }
    }
    // A delta record references its base chunk.
    for kv in meta.scan_prefix(Cf::Chunks, &[], &[]) {
        let (k, v) = kv?;
        match records::decode_chunk_loc(&v) {
            Ok(loc) => {
                if let Some(base) = loc.base {
                    add(refs::CHUNK, base.as_bytes());
                }
            }
            Err(_) => e.undecodable.push((Cf::Chunks, k.to_vec())),
        }
    }
    for kv in meta.scan_prefix(Cf::Versions, &[], &[]) {
        let (k, v) = kv?;
        match records::decode_postcard::<VersionRecord>("version record", &v) {
            Ok(vr) => vr
                .files
                .iter()
                .for_each(|f| add(refs::BLOB, f.blob.as_bytes())),
            Err(_) => e.undecodable.push((Cf::Versions, k.to_vec())),
        }
    }
    for kv in meta.scan_prefix(Cf::Artifacts, &[], &[]) {
        let (k, v) = kv?;
        match records::decode_postcard::<ArtifactRecord>("artifact", &v) {
            Ok(a) => {
                if let ArtifactBody::Blob { blob, .. } = a.body {
                    add(refs::BLOB, blob.as_bytes());
                }
            }
            Err(_) => e.undecodable.push((Cf::Artifacts, k.to_vec())),
        }
    }
    let mut obj = |b: &crate::id::BlobId| add(refs::BLOB, b.as_bytes());
    crate::meta::tables::objects::blob_refs(meta, &mut obj, &mut |_, _| {})?;
    Ok(e)
}

/// Gives a store written before reference counts its counts, once: chunk
/// and blob references recounted; blobs nothing references get one hold
/// (they were stored with `finish`/`put_blob`); manifests no blob owns
/// (uploads cut off by a crash) are marked dead; indexed chunks nothing
/// references become candidates. Runs at open, before anything else can
/// write. A new store just gets the marker.
pub(crate) fn migrate_if_needed(meta: &Meta) -> Result<()> {
    if singletons::refcounts_built(meta)? {
        return Ok(());
    }
    let e = expected(meta)?;
    let mut batch = Batch::default();
    let mut owned = BTreeSet::new();
    for kv in meta.scan_prefix(Cf::Blobs, &[], &[]) {
        let (k, v) = kv?;
        let id = <[u8; 32]>::try_from(k.as_ref())
            .map_err(|_| Error::corrupt("blobs column family", "key of the wrong length"))?;
        if let Ok(rec) = records::decode_blob(&v) {
            owned.insert(rec.manifest);
        }
        if !e
            .counts
            .contains_key(keys::count(refs::BLOB, &id).as_slice())
        {
            batch.put(
                Cf::Refs,
                keys::count(refs::HOLD, &id).to_vec(),
                records::encode_count(1).to_vec(),
            );
        }
    }
    for (k, n) in &e.counts {
        batch.put(Cf::Refs, k.clone(), records::encode_count(*n).to_vec());
    }
    for m in e.manifests.iter().filter(|m| !owned.contains(m)) {
        gc_queue::mark_manifest(&mut batch, *m);
    }
    for kv in meta.scan_prefix(Cf::Chunks, &[], &[]) {
        let (k, _) = kv?;
        let Ok(id) = <[u8; 32]>::try_from(k.as_ref()) else {
            continue;
        };
        if !e
            .counts
            .contains_key(keys::count(refs::CHUNK, &id).as_slice())
        {
            gc_queue::mark_chunk(&mut batch, &Hash32(id));
        }
    }
    singletons::mark_refcounts_built(&mut batch);
    meta.commit(batch, true)
}
