//! Offline archives: experiments and models with every blob they need, as
//! one bundle file that streams in bounded memory, for moving a registry to a
//! machine that cannot reach this one.
//!
//! - `bundle`: the file's framing, header, frames and trailer digest
//!   (docs/FORMAT.md, "Bundles").
//! - `export`: `Store::export`, the selected models and their blobs,
//!   leaving out the chunks the target holds already.
//! - `import`: `Store::import`, verified as it is read and committed at
//!   once, after the trailer: all or nothing.

// The framing is pure (no store): the fuzz targets build it without RocksDB.
pub(crate) mod bundle;
#[cfg(feature = "store")]
mod export;
#[cfg(feature = "store")]
mod import;

use std::collections::HashSet;

use crate::id::ChunkId;
use crate::meta::registry_records::EntityId;

/// What [`crate::Store::export`] puts in a bundle.
#[derive(Clone, Debug, Default)]
pub struct ExportSpec {
    all: bool,
    models: Vec<(String, Option<(u32, u32)>)>,
    experiments: Vec<(EntityId, bool)>,
    have: HashSet<ChunkId>,
}

impl ExportSpec {
    /// Everything the store holds: every experiment, every model with all
    /// its versions, every S3 bucket and object (multipart uploads in
    /// progress are not carried).
    pub fn store() -> ExportSpec {
        ExportSpec {
            all: true,
            ..ExportSpec::default()
        }
    }

    /// Adds the model named `name` (the newest of that name), with all its
    /// versions, or those from `first` to `last` (both included).
    pub fn model(mut self, name: impl Into<String>, versions: Option<(u32, u32)>) -> ExportSpec {
        self.models.push((name.into(), versions));
        self
    }

    /// Adds the model `what` names: `NAME` (all its versions), `NAME@V`
    /// (that version) or `NAME@A..B` (versions A to B, both included), as
    /// `modelvault export` and the registry API's `POST /export` take it.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a version that is not a number or
    /// an empty range. The name itself is checked by the export.
    pub fn model_spec(self, what: &str) -> crate::Result<ExportSpec> {
        let Some((name, vs)) = what.split_once('@') else {
            return Ok(self.model(what, None));
        };
        let parse = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                crate::Error::invalid(
                    "model selection",
                    what,
                    format!("{s:?} is not a version number"),
                )
            })
        };
        let (a, b) = match vs.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(vs)?, parse(vs)?),
        };
        if a > b {
            return Err(crate::Error::invalid(
                "model selection",
                what,
                "an empty version range",
            ));
        }
        Ok(self.model(name, Some((a, b))))
    }

    /// Adds experiment `id` with its console, scalars and artifacts, the
    /// models it created (all their versions) and, if `with_used`, the
    /// model versions it used.
    pub fn experiment(mut self, id: EntityId, with_used: bool) -> ExportSpec {
        self.experiments.push((id, with_used));
        self
    }

    /// Leaves out the bytes of these chunks (the target holds them, e.g.
    /// from `modelvault have` on the target): the bundle names them only,
    /// and an import into a store without them fails.
    pub fn exclude_chunks(mut self, ids: impl IntoIterator<Item = ChunkId>) -> ExportSpec {
        self.have.extend(ids);
        self
    }

    /// Leaves out the chunks an earlier bundle carried or named: for a
    /// target that imported it. The earlier bundle is read whole and
    /// checked (its trailer digest included).
    ///
    /// # Errors
    /// As [`crate::Store::import`] for a damaged bundle.
    pub fn exclude_bundle(mut self, input: impl std::io::Read) -> crate::Result<ExportSpec> {
        let mut r = bundle::BundleReader::new(input)?;
        while let Some(f) = r.next()? {
            if matches!(f.kind, bundle::Kind::Chunk | bundle::Kind::ChunkRef) {
                let id: [u8; 32] = f
                    .payload
                    .get(..32)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bundle::damaged(f.offset, "a chunk frame too short"))?;
                self.have.insert(crate::id::Hash32(id));
            }
        }
        Ok(self)
    }
}

/// What [`crate::Store::export`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportReport {
    /// Experiments described.
    pub experiments: u64,
    /// S3 objects described (whole-store exports).
    pub objects: u64,
    /// Models described.
    pub models: u64,
    /// Versions described.
    pub versions: u64,
    /// Blobs whose content the bundle holds.
    pub blobs: u64,
    /// Chunks carried with their bytes.
    pub chunks_carried: u64,
    /// Chunks named only (the target holds them, or the bundle carried
    /// them before).
    pub chunks_named: u64,
    /// Raw bytes of the chunks carried.
    pub raw_bytes_carried: u64,
    /// The bundle's length.
    pub bundle_bytes: u64,
}

/// How [`crate::Store::import`] treats a bundle.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Import what does not conflict and report the conflicts, instead of
    /// importing nothing when there is one.
    pub skip_conflicts: bool,
}

impl ImportOptions {
    /// See [`ImportOptions::skip_conflicts`].
    pub fn skip_conflicts(mut self, yes: bool) -> ImportOptions {
        self.skip_conflicts = yes;
        self
    }
}

/// What [`crate::Store::import`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Experiments new to this store.
    pub experiments_added: u64,
    /// S3 objects new to this store.
    pub objects_added: u64,
    /// Models new to this store.
    pub models_added: u64,
    /// Versions new to this store.
    pub versions_added: u64,
    /// Blobs new to this store.
    pub blobs_added: u64,
    /// Chunks the bundle carried.
    pub chunks_received: u64,
    /// Chunks the bundle named only (this store held them, or the bundle
    /// carried them before).
    pub chunks_named: u64,
    /// The bundle's length.
    pub bundle_bytes: u64,
    /// What was not imported, and why: a model whose name this store gives
    /// another id, a version both have with other files, a version a model
    /// finalized here lacks, an experiment this store has in another state,
    /// an S3 object this store holds with other content.
    /// Nothing here was changed.
    pub conflicts: Vec<String>,
}
