//! The chunk index lookups and the read path, through delta chains.

use crate::codec::delta::{self, MAX_DELTA_DEPTH};
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::id::{ChunkId, Hash32};
use crate::meta::Meta;
use crate::pack::ChunkLoc;

use super::Chunks;

impl Chunks {
    /// Where a committed chunk lives, if it is in the index.
    pub fn chunk_loc(&self, id: &ChunkId) -> Result<Option<ChunkLoc>> {
        crate::meta::tables::chunks::get(&self.meta, id)
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
        let lookup = || {
            self.chunk_loc(id)?.ok_or_else(|| Error::Corrupt {
                what: format!("{} at byte offset {offset}", object()),
                detail: format!("references chunk {id} which is not in the chunk index"),
            })
        };
        let mut loc = lookup()?;
        // Name the object and offset on every integrity error, not just the pack.
        let ctx = |e: Error| match e {
            Error::Corrupt { what, detail } => Error::Corrupt {
                what: format!("{} at byte offset {offset} ({what})", object()),
                detail,
            },
            e => e,
        };
        let read_only = self.meta().is_read_only();
        let payload = match self.read_record(id, &loc, scratch) {
            // Compaction moved the chunk and deleted its old pack between our
            // lookup and the read: the index has its new place.
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !read_only =>
            {
                loc = lookup()?;
                self.reader.read(id, &loc, scratch)
            }
            // A read-only store beside a writer: the writer's compaction may
            // have moved the record and deleted its pack since this view was
            // taken (the pack gone, or a pack of that id shorter than the
            // record). Catch up with the writer and look once more; an error
            // then is the real one.
            Err(_) if read_only => {
                self.reader.close(loc.pack);
                self.meta().try_catch_up()?;
                self.reload()?;
                loc = lookup()?;
                self.reader.read(id, &loc, scratch)
            }
            r => r,
        }
        .map_err(ctx)?;
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
