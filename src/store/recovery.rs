//! Recovery at open: pack files brought in line with the committed index.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};
use crate::meta::tables::singletons;
use crate::meta::Meta;
use crate::pack::{pack_file_name, parse_pack_file_name, Lane, PackHeader, PACK_HEADER_LEN};

pub(super) type Recovered = (HashMap<u32, u64>, u32, Option<(u32, u64)>);

/// Brings pack files in line with the committed index: a tail past the
/// committed length (an interrupted append) is truncated. Returns committed
/// lengths, the next free pack id, and the pack to keep appending to.
pub(super) fn recover_packs(
    meta: &Meta,
    dir: &Path,
    store_id: &[u8; 16],
    target: u64,
) -> Result<Recovered> {
    let mut committed = HashMap::new();
    for kv in crate::meta::tables::packs::all(meta) {
        let (id, rec) = kv?;
        committed.insert(id, rec.committed_len);
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut max_id = committed.keys().copied().max();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_pack_file_name) else {
            continue;
        };
        max_id = Some(max_id.map_or(id, |m| m.max(id)));
        files.push(id);
    }
    files.sort_unstable();
    // Deleting or truncating a pack cannot be undone, and the committed
    // lengths decided here may come from commits the WAL has not made
    // durable yet (written with `Durability::Eventual` by a process that
    // died): those are synced before the first such change, so that a power
    // cut cannot bring back a record naming what was deleted.
    let mut synced = false;
    let mut make_durable = || -> Result<()> {
        if !synced {
            meta.sync_wal()?;
            synced = true;
        }
        Ok(())
    };
    let mut last_ok = None;
    for id in files {
        let path = dir.join(pack_file_name(id));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        let keep = committed
            .get(&id)
            .copied()
            .unwrap_or(PACK_HEADER_LEN as u64);
        if !committed.contains_key(&id) && Some(id) != max_id {
            // No record and not the newest: nothing committed ever named it
            // (appends that never committed before the writer moved on, or a
            // pack that compaction emptied and a crash kept from deleting).
            drop(f);
            make_durable()?;
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            tracing::info!(
                pack = format_args!("{id:08x}"),
                "deleted a pack with no committed record"
            );
            continue;
        }
        if len < PACK_HEADER_LEN as u64 {
            // Created but its header never made it: nothing can reference it.
            if !committed.contains_key(&id) {
                drop(f);
                make_durable()?;
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
        } else {
            let mut hb = [0u8; PACK_HEADER_LEN];
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut hb, 0)
                .map_err(|e| Error::io(&path, e))?;
            let h = PackHeader::decode(&hb, &format!("pack {id:08x}"))?;
            if h.id != id || h.store_id != *store_id {
                return Err(Error::corrupt(
                    format!("pack {id:08x}"),
                    "header names another pack or another store",
                ));
            }
        }
        if len > keep {
            make_durable()?;
            f.set_len(keep)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            tracing::info!(
                pack = format_args!("{id:08x}"),
                from = len,
                to = keep,
                "truncated the uncommitted tail of a pack"
            );
        }
        if len >= keep {
            last_ok = Some((id, keep));
        }
    }
    let next = max_id.map_or(Ok(0), |m| {
        m.checked_add(1)
            .ok_or_else(|| Error::corrupt("pack ids", "exhausted the 32-bit pack id space"))
    })?;
    // Keep appending to the newest pack if it is the last one and has room.
    let resume = last_ok.filter(|&(id, len)| Some(id) == max_id && len < target);
    Ok((committed, next, resume))
}

/// The lane a resumed pack continues: [`Lane::Old`] if that lane wrote it
/// last, else [`Lane::New`]. The key is only a placement hint: a value of the
/// wrong length is ignored (noted), never a reason to refuse the store.
pub(super) fn resume_lane(meta: &Meta, pack: u32) -> Result<Lane> {
    Ok(if singletons::old_lane_pack(meta)? == Some(pack) {
        Lane::Old
    } else {
        Lane::New
    })
}
