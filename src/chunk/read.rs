//! The chunk index lookups and the read path, through delta chains.

use crate::codec::delta::{self, MAX_DELTA_DEPTH};
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::id::{ChunkId, Hash32};
use crate::meta::Meta;
use crate::pack::ChunkLoc;

use super::Chunks;

/// The pauses before each catch-up of a read-only store whose view lacks a
/// chunk or names a record it cannot read (see
/// [`Chunks::read_beside_writer`]): 0.85 s in all before the error stands.
const CATCH_UP_PAUSES_MS: [u64; 5] = [0, 10, 40, 160, 640];

impl Chunks {
    /// Where a committed chunk lives, if it is in the index.
    pub fn chunk_loc(&self, id: &ChunkId) -> Result<Option<ChunkLoc>> {
        crate::meta::tables::chunks::get(&self.meta, id)
    }

    /// The index entries that name a record of `pack`, found from the pack
    /// side: each record's header is read and its chunk looked up, so the
    /// cost is one small read and one lookup per record of that pack, not a
    /// scan of the index. Also returns the pack's committed record bytes.
    /// A record whose chunk is indexed elsewhere (rewritten since) is dead.
    pub fn live_records(&self, pack: u32) -> Result<(Vec<(ChunkId, ChunkLoc)>, u64)> {
        let mut live = Vec::new();
        let mut total = 0u64;
        for (offset, h) in self.reader.headers(pack)? {
            total += crate::pack::RECORD_HEADER_LEN as u64 + u64::from(h.stored_len);
            if let Some(loc) = self.chunk_loc(&h.id)? {
                if (loc.pack, loc.offset) == (pack, offset) {
                    live.push((h.id, loc));
                }
            }
        }
        Ok((live, total))
    }

    /// Follows `id`'s delta bases through the index to the chunk stored
    /// whole at the end of its chain: `None` if `id` is not indexed, else
    /// that root, its entry, and the number of bases followed (0 when `id`
    /// is stored whole). The depth a delta record states is the one it had
    /// when written; this is the current one.
    ///
    /// # Errors
    /// An integrity error if a base is missing from the index or the chain
    /// is longer than [`MAX_DELTA_DEPTH`].
    pub fn chain_root(&self, id: &ChunkId) -> Result<Option<(ChunkId, ChunkLoc, u8)>> {
        chain_root(&self.meta, id)
    }

    /// Reads, decodes and verifies one chunk into `out`. `scratch` holds the
    /// stored record. A verification failure is [`Error::ChecksumMismatch`]
    /// with `object` and `offset` filled by the caller's context. A delta
    /// record is decoded after its base, itself read and verified the same
    /// way (see [`Chunks::decode_record`]).
    pub fn read_chunk(
        &self,
        id: &ChunkId,
        object: &dyn Fn() -> String,
        offset: u64,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.read_chunk_within(id, object, offset, scratch, out, MAX_DELTA_DEPTH)
    }

    /// [`Chunks::read_chunk`] of a chunk reached through at most `max_depth`
    /// more bases: a chain longer than [`MAX_DELTA_DEPTH`] is refused, so
    /// even a hostile index cannot make a read loop. (The depth a delta
    /// record states is the one it had when written: a reverse delta can
    /// lengthen the chain below it since, never beyond the bound.)
    fn read_chunk_within(
        &self,
        id: &ChunkId,
        object: &dyn Fn() -> String,
        offset: u64,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        max_depth: u8,
    ) -> Result<()> {
        let missing = || Error::Corrupt {
            what: format!("{} at byte offset {offset}", object()),
            detail: format!("references chunk {id} which is not in the chunk index"),
        };
        let lookup = || self.chunk_loc(id)?.ok_or_else(missing);
        // Name the object and offset on every integrity error, not just the pack.
        let ctx = |e: Error| match e {
            Error::Corrupt { what, detail } => Error::Corrupt {
                what: format!("{} at byte offset {offset} ({what})", object()),
                detail,
            },
            e => e,
        };
        let loc = if self.meta().is_read_only() {
            self.read_beside_writer(id, &missing, &ctx, scratch)?
        } else {
            let mut loc = lookup()?;
            match self.read_record(id, &loc, scratch) {
                // Compaction moved the chunk and deleted its old pack between
                // our lookup and the read: the index has its new place.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    loc = lookup()?;
                    self.reader.read(id, &loc, scratch).map_err(ctx)?;
                }
                r => {
                    r.map_err(ctx)?;
                }
            }
            loc
        };
        let payload = &scratch[..];
        let base_object = || format!("{} (a base of chunk {id})", object());
        self.decode_record(id, &loc, payload, out, &base_object, offset, max_depth)
            .map_err(ctx)?;
        let actual = Hash32::of(out);
        if actual != *id {
            return Err(Error::ChecksumMismatch {
                object: object(),
                offset,
                expected: *id,
                actual,
                pack: loc.pack,
                pack_offset: loc.offset,
            });
        }
        Ok(())
    }

    /// Looks `id` up and reads its record into `scratch` on a read-only
    /// store beside a writer, returning where it was read from.
    ///
    /// The view may be older than the writer's compaction: the pack it
    /// names gone, or a pack of that id shorter than the record. And a
    /// catch-up may install a view that briefly lacks the entry (the
    /// writer's flushes and compactions of the metadata in progress, its
    /// files not all in place yet). So a miss or a failed read catches up
    /// and looks again, a few times with growing pauses (under a second in
    /// all); the error left after that is the real one. Nothing is retried
    /// while a snapshot holds this view: it cannot move.
    fn read_beside_writer(
        &self,
        id: &ChunkId,
        missing: &dyn Fn() -> Error,
        ctx: &dyn Fn(Error) -> Error,
        scratch: &mut Vec<u8>,
    ) -> Result<ChunkLoc> {
        let attempt = |scratch: &mut Vec<u8>| -> Result<std::result::Result<ChunkLoc, Error>> {
            let Some(loc) = self.chunk_loc(id)? else {
                return Ok(Err(missing()));
            };
            Ok(match self.read_record(id, &loc, scratch) {
                Ok(_) => Ok(loc),
                Err(e) => {
                    self.reader.close(loc.pack);
                    Err(ctx(e))
                }
            })
        };
        let mut last = match attempt(scratch)? {
            Ok(loc) => return Ok(loc),
            Err(e) => e,
        };
        for pause_ms in CATCH_UP_PAUSES_MS {
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            if !self.meta().try_catch_up()? {
                break;
            }
            self.reload()?;
            last = match attempt(scratch)? {
                Ok(loc) => return Ok(loc),
                Err(e) => e,
            };
        }
        Err(last)
    }

    /// Decodes the stored record `payload` of chunk `id` at `loc` into `out`
    /// (not verified: the caller hashes `out`). A delta record must name the
    /// base its index entry names; the base is read (verified) first, as a
    /// part of `object` at `offset`, through at most `max_depth - 1` further
    /// bases.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_record(
        &self,
        id: &ChunkId,
        loc: &ChunkLoc,
        payload: &[u8],
        out: &mut Vec<u8>,
        object: &dyn Fn() -> String,
        offset: u64,
        max_depth: u8,
    ) -> Result<()> {
        let corrupt = |detail: String| Error::Corrupt {
            what: format!("pack {:08x} record at {}", loc.pack, loc.offset),
            detail,
        };
        let Codec::Delta { .. } = loc.codec else {
            return codec::decode(loc.codec, payload, loc.raw_len as usize, out)
                .map_err(|e| corrupt(e.to_string()));
        };
        if max_depth == 0 {
            return Err(corrupt(format!(
                "a delta chain longer than {MAX_DELTA_DEPTH} records"
            )));
        }
        let base = delta::delta_base(payload).map_err(|e| corrupt(e.to_string()))?;
        if loc.base != Some(base) || base == *id {
            return Err(corrupt(format!(
                "delta record of chunk {id} is encoded against chunk {base}, its index entry names {}",
                loc.base.map_or_else(|| "none".into(), |b| b.to_string())
            )));
        }
        let (mut base_scratch, mut base_raw) = (Vec::new(), Vec::new());
        self.read_chunk_within(
            &base,
            object,
            offset,
            &mut base_scratch,
            &mut base_raw,
            max_depth - 1,
        )?;
        delta::decode_delta(payload, &base_raw, loc.raw_len as usize, out)
            .map(|_| ())
            .map_err(|e| corrupt(e.to_string()))
    }
}

/// See [`Chunks::chain_root`]; over `meta` directly, for the migration at
/// open that runs before the chunk layer exists.
pub(crate) fn chain_root(meta: &Meta, id: &ChunkId) -> Result<Option<(ChunkId, ChunkLoc, u8)>> {
    let lookup = |id: &ChunkId| crate::meta::tables::chunks::get(meta, id);
    let Some(mut loc) = lookup(id)? else {
        return Ok(None);
    };
    let (mut root, mut depth) = (*id, 0u8);
    while let Some(base) = loc.base {
        if depth == MAX_DELTA_DEPTH {
            return Err(Error::corrupt(
                format!("chunk {id}"),
                format!("a delta chain longer than {MAX_DELTA_DEPTH} records"),
            ));
        }
        loc = lookup(&base)?.ok_or_else(|| {
            Error::corrupt(
                format!("chunk {root}"),
                format!("its delta base {base} is not in the chunk index"),
            )
        })?;
        root = base;
        depth += 1;
    }
    Ok(Some((root, loc, depth)))
}
