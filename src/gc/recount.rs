//! Reference counts recomputed from the primary records: how a store
//! written before reference counts existed gets them at its first open by
//! this build. The references come from the walk `verify` checks the counts
//! against (`meta::tables::references`), which alone reads the registry
//! records that keep blobs (version files, artifacts).

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::meta::tables::references::{self, Found};
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{blobs, chunks, gc_queue, singletons, RawKey};
use crate::meta::{Batch, Meta};

/// Expected counts (chunk references from manifest segments and delta
/// records, blob references; holds are primary data and not derivable),
/// plus the ids of manifests that have segments and the keys of records
/// that could not be decoded.
pub(crate) struct Expected {
    pub counts: HashMap<Count, u64>,
    pub manifests: BTreeSet<u64>,
    pub undecodable: Vec<RawKey>,
}

pub(crate) fn expected(meta: &Meta) -> Result<Expected> {
    let mut e = Expected {
        counts: HashMap::new(),
        manifests: BTreeSet::new(),
        undecodable: Vec::new(),
    };
    references::walk(meta, &mut |found| {
        match found {
            Found::Segment(m) => {
                let m = m.ok_or_else(|| Error::corrupt("manifests", "key of the wrong length"))?;
                e.manifests.insert(m);
            }
            Found::SegmentsDone => {}
            Found::Reference(c) => *e.counts.entry(c).or_insert(0) += 1,
            Found::Undecodable { key, .. } => e.undecodable.push(key),
        }
        Ok(())
    })?;
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
    for entry in blobs::entries(meta) {
        let (id, rec) = entry?;
        let id =
            id.map_err(|_| Error::corrupt("blobs column family", "key of the wrong length"))?;
        if let Ok(rec) = rec {
            owned.insert(rec.manifest);
        }
        if !e.counts.contains_key(&Count::Blob(id)) {
            refs::put(&mut batch, Count::Hold(id), 1);
        }
    }
    for (c, n) in &e.counts {
        refs::put(&mut batch, *c, *n);
    }
    for m in e.manifests.iter().filter(|m| !owned.contains(m)) {
        gc_queue::mark_manifest(&mut batch, *m);
    }
    for entry in chunks::entries(meta) {
        let (Ok(id), _) = entry? else {
            continue;
        };
        if !e.counts.contains_key(&Count::Chunk(id)) {
            gc_queue::mark_chunk(&mut batch, &id);
        }
    }
    singletons::mark_refcounts_built(&mut batch);
    meta.commit(batch, true)
}
