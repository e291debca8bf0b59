//! `modelvault du` and `modelvault who`: where the store's bytes go, and
//! what references a blob or contains a chunk.

use anyhow::Result;
use modelvault::{BlobId, ChunkId, SpaceUse, Store};
use serde_json::json;

use super::args::DuSort;
use super::sizes::human;

/// Prints [`Store::space_usage`], each table sorted by `sort`.
pub(super) fn du(store: &Store, sort: DuSort, json: bool) -> Result<()> {
    let mut r = store.space_usage()?;
    for list in [&mut r.models, &mut r.versions, &mut r.experiments] {
        sort_uses(list, sort);
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    for (title, list) in [
        ("models", &r.models),
        ("versions", &r.versions),
        ("experiments", &r.experiments),
    ] {
        if list.is_empty() {
            continue;
        }
        println!(
            "{:<11} {:>10} {:>10} {:>10} {:>10}  NAME",
            title.to_uppercase(),
            "LOGICAL",
            "STORED",
            "UNIQUE",
            "SHARED"
        );
        for u in list {
            let name = match u.version {
                Some(v) => format!("{}@{v}", u.name),
                None => u.name.clone(),
            };
            println!(
                "{:<11} {:>10} {:>10} {:>10} {:>10}  {name}",
                "",
                human(u.logical_bytes),
                human(u.stored_bytes),
                human(u.unique_bytes),
                human(u.shared_bytes),
            );
        }
    }
    Ok(())
}

/// Largest first for the sizes (ties by name), names ascending.
fn sort_uses(list: &mut [SpaceUse], sort: DuSort) {
    let name = |u: &SpaceUse| (u.name.clone(), u.version);
    match sort {
        DuSort::Size => list.sort_by(|a, b| {
            b.stored_bytes
                .cmp(&a.stored_bytes)
                .then_with(|| name(a).cmp(&name(b)))
        }),
        DuSort::Unique => list.sort_by(|a, b| {
            b.unique_bytes
                .cmp(&a.unique_bytes)
                .then_with(|| name(a).cmp(&name(b)))
        }),
        DuSort::Name => list.sort_by_key(name),
    }
}

/// What `who` was asked about: `blob:HEX`, `chunk:HEX`, or a bare id,
/// which may be either (a blob of one chunk has its chunk's id).
pub(super) fn who(store: &Store, spec: &str, json: bool) -> Result<()> {
    let (want_blob, want_chunk, hex) = match spec.split_once(':') {
        Some(("blob", h)) => (true, false, h),
        Some(("chunk", h)) => (false, true, h),
        _ => (true, true, spec),
    };
    let blob = if want_blob {
        let id: BlobId = hex.parse()?;
        Some(store.blob_users(&id)?).filter(|b| {
            // A bare id is a blob if one is stored or referenced under it.
            !want_chunk || b.size.is_some() || b.references > 0 || b.holds > 0
        })
    } else {
        None
    };
    let chunk = if want_chunk {
        let id: ChunkId = hex.parse()?;
        Some(store.chunk_users(&id)?).filter(|c| {
            !want_blob || c.stored_len.is_some() || !c.blobs.is_empty() || !c.deltas.is_empty()
        })
    } else {
        None
    };
    if blob.is_none() && chunk.is_none() {
        return Err(modelvault::Error::NotFound {
            kind: "blob or chunk",
            name: hex.to_string(),
        }
        .into());
    }
    if json {
        println!("{}", json!({"blob": blob, "chunk": chunk}));
        return Ok(());
    }
    if let Some(b) = &blob {
        match b.size {
            Some(n) => println!(
                "blob {}  {}  {} references, {} holds",
                b.blob,
                human(n),
                b.references,
                b.holds
            ),
            None => println!("blob {}  not stored", b.blob),
        }
        for v in &b.versions {
            println!(
                "  version  {}@{}  {}  (model {})",
                v.name, v.version, v.path, v.model
            );
        }
        for a in &b.artifacts {
            println!(
                "  artifact {} revision {}  (experiment {})",
                a.name, a.revision, a.experiment
            );
        }
        for o in &b.objects {
            println!("  object   s3://{}/{}", o.bucket, o.key);
        }
    }
    if let Some(c) = &chunk {
        match c.stored_len {
            Some(n) => println!("chunk {}  {} stored", c.chunk, human(u64::from(n))),
            None => println!("chunk {}  not in the index", c.chunk),
        }
        if let Some(base) = &c.base {
            println!("  delta against {base}");
        }
        for d in &c.deltas {
            println!("  base of  {d}");
        }
        for b in &c.blobs {
            println!("  in blob  {b}");
        }
        for b in &c.blobs_via_deltas {
            println!("  needed by blob {b} (through a delta)");
        }
    }
    Ok(())
}
