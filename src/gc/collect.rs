//! Collection: expiring abandoned upload sessions, releasing dead
//! manifests, deleting the index entries of unreferenced chunks, and
//! compacting packs whose live fraction fell below a threshold.
//!
//! Every step is a sequence of ordinary commits, each atomic, so a crash
//! anywhere leaves a store that is consistent and where the next collection
//! simply carries on. The steps that delete (chunk index entries, packs) do
//! so under the commit lock *and* the pending mutex, after checking the
//! holds of uploads in flight: see docs/ARCHITECTURE.md, "GC".

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::blob::Core;
use crate::codec::delta::MAX_DELTA_DEPTH;
use crate::error::{Error, Result};
use crate::id::{ChunkId, Hash32};
use crate::meta::records::now_ms;
use crate::meta::tables::refs::{self, Count};
use crate::meta::tables::{chunks, gc_queue, manifests, uploads};
use crate::meta::Batch;
use crate::pack::{ChunkLoc, RecordHeader, PACK_HEADER_LEN};

/// Segments released per commit while dropping a dead manifest.
pub(super) const SEGMENTS_PER_COMMIT: usize = 8;
/// Candidate chunks examined per commit.
const CANDIDATES_PER_COMMIT: usize = 8192;
/// A collection compacts the metadata database when the chunk index
/// entries and manifests it deleted are at least 1/this of those there were
/// (a full compaction rewrites every table of those column families, so
/// its cost grows with the store, and it only pays when much was deleted).
const METADATA_COMPACT_SHARE: u64 = 8;
/// Bytes of a pack record besides its payload.
const RECORD_OVERHEAD: u64 = crate::pack::RECORD_HEADER_LEN as u64;

/// What a collection does. `GcOptions::default()` is what `modelvault gc`
/// runs.
#[derive(Clone, Debug)]
#[must_use]
pub struct GcOptions {
    pub(crate) expire_uploads_after: Duration,
    pub(crate) compact_below: f64,
    pub(crate) compact_metadata: bool,
    /// Test-only: skip the holds check, to show the GC-beside-writers test
    /// catches a collector that ignores uploads in flight.
    pub(crate) ignore_holds: bool,
    /// Test-only: stop with an error where a crash could interrupt.
    #[cfg(test)]
    pub(crate) crash_at: Option<CrashAt>,
}

/// Test-only: where [`GcOptions::crash_at`] stops a collection, as a crash
/// there would.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrashAt {
    /// After this many commits releasing dead manifests.
    ReleaseCommits(u64),
    /// Right after the first commit that stops the index naming a pack,
    /// before that commit is made durable and the file deleted.
    BeforeUnlink,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            expire_uploads_after: Duration::from_secs(24 * 3600),
            compact_below: 0.5,
            compact_metadata: false,
            ignore_holds: false,
            #[cfg(test)]
            crash_at: None,
        }
    }
}

impl GcOptions {
    /// Defaults: sessions expire after 24 hours, packs under half live are
    /// compacted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Upload sessions with no progress for this long, and not open in this
    /// process, are given up and their chunks become collectable.
    pub fn expire_uploads_after(mut self, d: Duration) -> Self {
        self.expire_uploads_after = d;
        self
    }

    /// Packs whose live bytes are below this fraction of their size are
    /// rewritten (their live records copied, the file deleted). 0 turns
    /// compaction off (wholly dead packs are still deleted); clamped to
    /// 0 ..= 1.
    pub fn compact_below(mut self, fraction: f64) -> Self {
        self.compact_below = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Compact the metadata database at the end of this collection whatever
    /// it freed (by default only when it deleted at least an eighth of the
    /// chunk index entries and manifests), so that every entry deleted so
    /// far, also by earlier small collections, stops taking space now.
    pub fn compact_metadata(mut self, always: bool) -> Self {
        self.compact_metadata = always;
        self
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GcReport {
    /// Upload sessions given up for lack of progress.
    pub uploads_expired: u64,
    /// Manifests (of deleted blobs, abandoned uploads) released.
    pub manifests_released: u64,
    /// Chunk index entries deleted.
    pub chunks_deleted: u64,
    /// Raw bytes of those chunks.
    pub chunk_bytes_deleted: u64,
    /// Unreferenced chunks left alone because an upload in flight held them.
    pub chunks_held: u64,
    /// Packs rewritten (live records copied forward) and deleted.
    pub packs_compacted: u64,
    /// Packs deleted without copying anything (no live record left).
    pub packs_deleted: u64,
    /// Packs skipped because an upload in flight still had records in them.
    pub packs_busy: u64,
    /// Bytes of live records copied by compaction.
    pub bytes_copied: u64,
    /// Pack bytes given back to the file system (net of what was copied).
    pub bytes_reclaimed: u64,
    /// Whether the collection ended by flushing and compacting the metadata
    /// database (see [`GcOptions::compact_metadata`]).
    pub metadata_compacted: bool,
    /// Packs chosen for compaction but left as they were (file and index
    /// entries untouched) because a live record in them could not be read
    /// or verified; the collection went on with the others. Every later
    /// collection meets them again until they are repaired (`verify` names
    /// the damaged chunks and what they break).
    pub packs_skipped: Vec<SkippedPack>,
}

/// A pack a collection could not compact, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SkippedPack {
    /// The pack id (its file is `packs/<id as 8 hex digits>.pack`).
    pub pack: u32,
    /// The error met reading or verifying one of its live records.
    pub error: String,
}

/// An upload session, as [`Store::uploads`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UploadInfo {
    /// The session id, for [`Store::resume_upload`].
    pub id: u64,
    /// Bytes durable so far (a resumed writer continues from here).
    pub durable_bytes: u64,
    /// When the session started and last made progress (ms since the epoch).
    pub created_ms: u64,
    /// When it last made progress.
    pub updated_ms: u64,
    /// Whether a writer in this process has it open.
    pub open: bool,
    /// What the upload is for, if its writer was given a label
    /// ([`crate::BlobWriter::label`]; `put` gives `put NAME: PATH`).
    pub label: Option<String>,
}

impl Core {
    /// See [`crate::Store::gc`].
    pub(crate) fn gc(self: &Arc<Self>, opts: &GcOptions) -> Result<GcReport> {
        self.gc_reporting(opts, &|_, _| {})
    }

    /// [`Core::gc`], calling `progress(done, total)` as compaction works
    /// through the packs it chose: bytes of those packs done, of all of them.
    #[tracing::instrument(name = "gc", level = "info", skip_all)]
    pub(crate) fn gc_reporting(
        self: &Arc<Self>,
        opts: &GcOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<GcReport> {
        self.chunks().writable("gc")?;
        let inner = &**self;
        let _one = inner.exclusive();
        let mut report = GcReport::default();
        expire_uploads(inner, opts, &mut report)?;
        release_manifests(inner, opts, &mut report)?;
        // Deleting a delta releases its base, which may fall to zero and
        // become a candidate behind the scan: sweep until a pass frees no
        // base (chains are short, so this is a few passes at most).
        // A held candidate stays a candidate: count it once, however many
        // passes meet it.
        let mut held = HashSet::new();
        while sweep_chunks(inner, opts, &mut report, &mut held)? {}
        report.chunks_held = held.len() as u64;
        compact(inner, opts, &mut report, progress)?;
        if opts.compact_metadata || worth_compacting_metadata(inner, &report) {
            inner.chunks().meta().compact()?;
            report.metadata_compacted = true;
        }
        tracing::info!(?report, "collected");
        Ok(report)
    }

    /// See [`crate::Store::release_blob`].
    pub(crate) fn release_blob(self: &Arc<Self>, id: &crate::BlobId) -> Result<()> {
        let hold = Count::Hold(*id);
        let mut batch = Batch::default();
        refs::change(&mut batch, hold, -1);
        self.chunks().commit(&[], batch, |meta, _, _| {
            if !crate::meta::tables::blobs::exists(meta, id)? {
                return Err(Error::not_found("blob", id));
            }
            if refs::get(meta, hold)? == 0 {
                return Err(Error::invalid(
                    "blob",
                    id,
                    "has no hold to release (registry records keep it)",
                ));
            }
            Ok(())
        })
    }

    /// See [`crate::Store::resume_upload`].
    pub(crate) fn resume_upload(
        self: &Arc<Self>,
        id: crate::UploadId,
    ) -> Result<crate::BlobWriter> {
        self.chunks().writable("upload resume")?;
        crate::BlobWriter::resume(self.clone(), id)
    }

    /// See [`crate::Store::uploads`].
    pub(crate) fn uploads(self: &Arc<Self>) -> Result<Vec<UploadInfo>> {
        let open = self.active_uploads().lock().clone();
        let mut out = Vec::new();
        for kv in uploads::all_labelled(self.chunks().meta()) {
            let (id, r, label) = kv?;
            out.push(UploadInfo {
                id,
                label,
                durable_bytes: r.durable_bytes,
                created_ms: r.created_ms,
                updated_ms: r.updated_ms,
                open: open.contains(&id),
            });
        }
        Ok(out)
    }
}

fn expire_uploads(inner: &Core, opts: &GcOptions, report: &mut GcReport) -> Result<()> {
    let cutoff = now_ms().saturating_sub(opts.expire_uploads_after.as_millis() as u64);
    let mut stale = Vec::new();
    for kv in uploads::all(inner.chunks().meta()) {
        let (id, r) = kv?;
        if r.updated_ms <= cutoff {
            stale.push(id);
        }
    }
    for id in stale {
        // Holding the set of open uploads while committing: a resume either
        // registered first (and the session is kept) or finds it gone.
        let active = inner.active_uploads().lock();
        if active.contains(&id) {
            continue;
        }
        let mut batch = Batch::default();
        uploads::give_up(&mut batch, id);
        inner.chunks().commit(&[], batch, |_, _, _| Ok(()))?;
        drop(active);
        report.uploads_expired += 1;
    }
    Ok(())
}

/// Drops the segments of every dead manifest, releasing one chunk reference
/// per entry. Streamed: dead manifests are taken one at a time and each is
/// released [`SEGMENTS_PER_COMMIT`] segments per commit, each commit going
/// on after the last key the previous one deleted, so memory and the work
/// of one commit do not grow with a manifest's size (a 1 TiB blob has about
/// 16,000 segments). Each commit deletes the segments whose references it
/// releases, and the last one the manifest's marker: a collection cut short
/// leaves the rest of the manifest, still counted, for the next one.
fn release_manifests(inner: &Core, opts: &GcOptions, report: &mut GcReport) -> Result<()> {
    let mut after = None;
    let mut commits = 0u64;
    while let Some(m) = gc_queue::next_manifest(inner.chunks().meta(), after)? {
        release_manifest(inner, opts, m, &mut commits)?;
        report.manifests_released += 1;
        after = Some(m);
    }
    Ok(())
}

/// Releases dead manifest `m`, a few segments per commit (see
/// [`release_manifests`]); `commits` counts the commits made.
#[cfg_attr(not(test), allow(unused_variables))]
fn release_manifest(inner: &Core, opts: &GcOptions, m: u64, commits: &mut u64) -> Result<()> {
    let mut after = None;
    loop {
        let mut group = Vec::with_capacity(SEGMENTS_PER_COMMIT);
        for seg in manifests::segments(inner.chunks().meta(), m, after.as_ref()) {
            group.push(seg?);
            if group.len() == SEGMENTS_PER_COMMIT {
                break;
            }
        }
        #[cfg(test)]
        probe::held(group.len());
        let last = group.len() < SEGMENTS_PER_COMMIT;
        let mut batch = Batch::default();
        let resume = group.last().map(|seg| seg.key.clone());
        for seg in group {
            for e in seg.entries? {
                refs::change(&mut batch, Count::Chunk(e.id), -1);
            }
            seg.key.delete(&mut batch);
        }
        if last {
            gc_queue::unmark_manifest(&mut batch, m);
        }
        inner.chunks().commit(&[], batch, |_, _, _| Ok(()))?;
        *commits += 1;
        #[cfg(test)]
        crash_point(opts, CrashAt::ReleaseCommits(*commits))?;
        if last {
            return Ok(());
        }
        after = Some(resume.expect("a full group"));
    }
}

/// Test-only: fails as a crash at `here` would, if `opts` asks for it.
#[cfg(test)]
fn crash_point(opts: &GcOptions, here: CrashAt) -> Result<()> {
    if opts.crash_at == Some(here) {
        return Err(Error::io(
            "<test>",
            std::io::Error::other(format!("crash injected at {here:?}")),
        ));
    }
    Ok(())
}

/// Deletes the index entries of candidate chunks that are still at zero
/// references and held by no upload: checked and committed with the commit
/// lock and the pending mutex held, so no upload can find the entry in
/// between.
/// One pass over the chunk candidates. Returns true if it deleted a delta
/// (whose base may now be a candidate the pass did not see).
fn sweep_chunks(
    inner: &Core,
    opts: &GcOptions,
    report: &mut GcReport,
    held: &mut HashSet<ChunkId>,
) -> Result<bool> {
    let mut after: Option<ChunkId> = None;
    let mut freed_base = false;
    loop {
        let mut ids = Vec::with_capacity(CANDIDATES_PER_COMMIT);
        for id in gc_queue::chunks(inner.chunks().meta(), after.as_ref()) {
            ids.push(id?);
            if ids.len() == CANDIDATES_PER_COMMIT {
                break;
            }
        }
        let Some(last) = ids.last() else {
            return Ok(freed_base);
        };
        // Continue just past the last key examined (held ones stay).
        after = Some(*last);
        let full = ids.len() == CANDIDATES_PER_COMMIT;
        freed_base |= sweep_some(inner, opts, &ids, report, held)?;
        if !full {
            return Ok(freed_base);
        }
    }
}

/// Deletes the index entries of the candidates `ids` that are still
/// unreferenced and unheld, in one commit; adds the held ones to `held`.
/// Returns true if one of them was a delta (its base lost a reference).
fn sweep_some(
    inner: &Core,
    opts: &GcOptions,
    ids: &[ChunkId],
    report: &mut GcReport,
    held: &mut HashSet<ChunkId>,
) -> Result<bool> {
    let (mut deleted, mut bytes) = (0, 0);
    let mut freed_base = false;
    // Committed before the pending mutex is released: see the module docs.
    inner.chunks().commit_exclusive(|tx| {
        for id in ids {
            if tx.ref_count(Count::Chunk(*id))? > 0 {
                gc_queue::unmark_chunk(tx.batch(), id);
                continue;
            }
            // Held: an upload looked it up and will reference it, or give it
            // up; or it is the base of a delta an upload appended, which will
            // reference it once committed. The next collection decides.
            if !opts.ignore_holds && tx.held(id) {
                held.insert(*id);
                continue;
            }
            gc_queue::unmark_chunk(tx.batch(), id);
            if let Some(loc) = tx.chunk_loc(id)? {
                chunks::delete(tx.batch(), id);
                if let Some(base) = &loc.base {
                    refs::change(tx.batch(), Count::Chunk(*base), -1);
                    freed_base = true;
                }
                let stats = tx.stats();
                stats.unique_bytes = stats.unique_bytes.saturating_sub(loc.raw_len as u64);
                stats.chunks = stats.chunks.saturating_sub(1);
                deleted += 1;
                bytes += loc.raw_len as u64;
            }
        }
        Ok(Some(()))
    })?;
    report.chunks_deleted += deleted;
    report.chunk_bytes_deleted += bytes;
    Ok(freed_base)
}

/// Rewrites or deletes packs whose live fraction is below the threshold.
#[tracing::instrument(name = "compaction", level = "info", skip_all)]
fn compact(
    inner: &Core,
    opts: &GcOptions,
    report: &mut GcReport,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<()> {
    let (sizes, generation) = inner.chunks().pack_sizes();
    // Asked after the sizes were taken: a pack among them that is not open
    // now was sealed (a sealed pack is never appended to again), and an open
    // one is left alone.
    let open = inner.chunks().open_packs();
    let mut live: HashMap<u32, u64> = HashMap::new();
    for e in chunks::entries(inner.chunks().meta()) {
        let loc = e?.1?;
        *live.entry(loc.pack).or_insert(0) += RECORD_OVERHEAD + loc.stored_len as u64;
    }
    let mut chosen: Vec<u32> = sizes
        .iter()
        .filter(|(p, _)| !open.contains(p))
        .filter(|(p, &len)| {
            let data = len.saturating_sub(PACK_HEADER_LEN as u64);
            let l = live.get(p).copied().unwrap_or(0);
            l == 0 || (l as f64) < opts.compact_below * data as f64
        })
        .map(|(p, _)| *p)
        .collect();
    chosen.sort_unstable();
    let total: u64 = chosen.iter().map(|p| sizes[p]).sum();
    let mut done = 0;
    progress(done, total);
    tracing::info!(
        packs = chosen.len(),
        below = opts.compact_below,
        "packs to compact"
    );
    // One scan of the index finds the entries of a group of packs (a scan
    // per pack made a collection quadratic in the store's size). Entries
    // that move or go before their pack's turn are caught under the commit
    // lock, as with a scan just before.
    for group in chosen.chunks(COMPACT_GROUP) {
        let mut entries: HashMap<u32, Vec<(ChunkId, ChunkLoc)>> =
            group.iter().map(|&p| (p, Vec::new())).collect();
        for e in chunks::entries(inner.chunks().meta()) {
            let (id, loc) = e?;
            let loc = loc?;
            if let Some(e) = entries.get_mut(&loc.pack) {
                let id = id.map_err(|_| {
                    Error::corrupt("chunks column family", "key of the wrong length")
                })?;
                e.push((id, loc));
            }
        }
        for &pack in group {
            let e = entries.remove(&pack).unwrap_or_default();
            compact_pack(inner, opts, pack, e, &generation, report)?;
            done += sizes[&pack];
            progress(done, total);
        }
    }
    Ok(())
}

/// Packs whose index entries one scan collects.
const COMPACT_GROUP: usize = 64;

#[cfg_attr(not(test), allow(unused_variables))]
pub(super) fn compact_pack(
    inner: &Core,
    opts: &GcOptions,
    pack: u32,
    mut entries: Vec<(ChunkId, ChunkLoc)>,
    generation: &HashMap<u32, u64>,
    report: &mut GcReport,
) -> Result<()> {
    entries.sort_by_key(|(_, l)| l.offset);
    // Every live record is read and verified before any is copied: a pack
    // with one that cannot be is left as it is (nothing copied, so a
    // damaged pack costs no space however many collections meet it), and
    // the collection goes on with the others.
    let skip = |report: &mut GcReport, e: Error| {
        if !unreadable(&e) {
            return Err(e);
        }
        report.packs_skipped.push(SkippedPack {
            pack,
            error: e.to_string(),
        });
        Ok(())
    };
    let digests = match verify_records(inner, pack, &entries) {
        Ok(d) => d,
        Err(e) => return skip(report, e),
    };
    // Copy each live record forward, unchanged (no recompression); the
    // bytes copied must be those just verified. (Should one have changed
    // since, the pack is skipped after all, and the records copied before
    // it are dead bytes in the old lane's pack.)
    let mut moves = Vec::with_capacity(entries.len());
    let mut scratch = Vec::new();
    let mut copied = 0u64;
    for ((id, old), digest) in entries.iter().zip(&digests) {
        let payload = match inner.chunks().read_record(id, old, &mut scratch) {
            Ok(p) if Hash32::of(p) == *digest => p,
            Ok(_) => {
                let what = format!("pack {pack:08x} record at {}", old.offset);
                let e = Error::corrupt(what, "changed on disk while being compacted");
                return skip(report, e);
            }
            Err(e) => return skip(report, e),
        };
        let header = RecordHeader {
            codec: old.codec,
            raw_len: old.raw_len,
            stored_len: old.stored_len,
            id: *id,
        };
        let new = ChunkLoc {
            base: old.base,
            height: old.height,
            ..inner.chunks().append_old(&header, payload)?
        };
        copied += RECORD_OVERHEAD + old.stored_len as u64;
        moves.push((*id, *old, new));
    }
    if !moves.is_empty() {
        inner.chunks().sync_packs()?;
    }
    let size = inner.chunks().commit_exclusive(|tx| {
        if tx.pack_busy(pack, generation) {
            // An upload still has (or just committed) records there: next time.
            return Ok(None);
        }
        for (id, old, new) in &moves {
            // Still the record we copied? Its height may have grown meanwhile
            // (a delta onto its chain was committed): keep the current one.
            let cur = tx.chunk_loc(id)?;
            if let Some(cur) = cur.filter(|c| (c.pack, c.offset) == (old.pack, old.offset)) {
                let new = ChunkLoc {
                    height: cur.height,
                    ..*new
                };
                tx.put_entry(id, &new);
                tx.note_appended(&new);
            }
        }
        Ok(Some(tx.drop_pack(pack)))
    })?;
    let Some(size) = size else {
        report.packs_busy += 1;
        return Ok(());
    };
    #[cfg(test)]
    crash_point(opts, CrashAt::BeforeUnlink)?;
    // The unlink cannot be undone: the commit above (the moves, the pack's
    // record gone) and every one before it (the sweeps that left the pack
    // dead, the releases behind them) are made durable first, whatever the
    // durability mode (see `Chunks::delete_pack`).
    inner.chunks().delete_pack(pack)?;
    if moves.is_empty() {
        report.packs_deleted += 1;
    } else {
        report.packs_compacted += 1;
    }
    report.bytes_copied += copied;
    report.bytes_reclaimed += size.saturating_sub(copied);
    Ok(())
}

/// Reads, decodes (a delta through its base) and verifies every record of
/// `entries`, in `pack`; returns a digest of each stored payload, so that
/// the copy can check it copies exactly the bytes verified.
fn verify_records(inner: &Core, pack: u32, entries: &[(ChunkId, ChunkLoc)]) -> Result<Vec<Hash32>> {
    let (mut scratch, mut raw) = (Vec::new(), Vec::new());
    let mut digests = Vec::with_capacity(entries.len());
    for (id, old) in entries {
        let payload = inner.chunks().read_record(id, old, &mut scratch)?;
        let object = || format!("pack {pack:08x} record at {}", old.offset);
        inner
            .chunks()
            .decode_record(id, old, payload, &mut raw, &object, 0, MAX_DELTA_DEPTH)?;
        if Hash32::of(&raw) != *id {
            return Err(Error::corrupt(
                object(),
                format!("content does not hash to chunk {id}; run verify"),
            ));
        }
        digests.push(Hash32::of(payload));
    }
    Ok(digests)
}

/// Whether `e`, met reading a pack's records, means they cannot be read or
/// verified (the pack is skipped), rather than a failure of the store
/// itself (the metadata database, a poisoned writer), which ends the
/// collection.
pub(super) fn unreadable(e: &Error) -> bool {
    e.is_integrity() || matches!(e, Error::Io { .. })
}

/// Whether this collection deleted enough entries for a metadata
/// compaction to pay (see [`METADATA_COMPACT_SHARE`]).
fn worth_compacting_metadata(inner: &Core, report: &GcReport) -> bool {
    let deleted = report.chunks_deleted + report.manifests_released;
    let left = {
        let (stats, _, _) = inner.chunks().stats();
        stats.chunks + stats.blobs
    };
    deleted > 0 && deleted.saturating_mul(METADATA_COMPACT_SHARE) >= left + deleted
}

/// Test-only: what [`release_manifest`] held in memory at once.
#[cfg(test)]
pub(crate) mod probe {
    use std::cell::Cell;

    thread_local! {
        static MOST_SEGMENTS_HELD: Cell<usize> = const { Cell::new(0) };
    }

    /// Records that a release holds `n` segments in memory at once.
    pub(crate) fn held(n: usize) {
        MOST_SEGMENTS_HELD.with(|c| c.set(c.get().max(n)));
    }

    /// The most segments held at once on this thread since the last call.
    pub(crate) fn take_most_segments_held() -> usize {
        MOST_SEGMENTS_HELD.with(|c| c.replace(0))
    }
}
