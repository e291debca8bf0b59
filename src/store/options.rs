//! Tuning of a store: [`Options`] and [`Durability`].

use std::path::Path;
use std::sync::Arc;

use crate::chunking::CdcParams;
use crate::codec::delta::MAX_DELTA_DEPTH;
use crate::codec::EncodeOptions;
use crate::error::Result;

use super::Store;

/// Tuning for [`Store`]; every setting has a default.
#[derive(Clone, Debug)]
#[must_use]
pub struct Options {
    pub(crate) pack_size: u64,
    pub(crate) cdc: CdcParams,
    pub(crate) encode: EncodeOptions,
    pub(crate) threads: usize,
    pub(crate) create: bool,
    pub(crate) durability: Durability,
    pub(crate) max_delta_depth: u8,
    pub(crate) delta_min_saving: f64,
    /// File operations of the pack writer (a fault-injecting layer in tests).
    pub(crate) pack_io: Arc<dyn crate::pack::io::PackIo>,
    /// Most pack files the reader keeps open (see `pack::reader`).
    pub(crate) max_open_packs: usize,
}

impl std::fmt::Debug for dyn crate::pack::io::PackIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackIo")
    }
}

/// When a commit's metadata reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit fsyncs the RocksDB WAL before returning (the default):
    /// what a call acknowledged survives a crash.
    #[default]
    Immediate,
    /// Commits write the WAL without fsyncing it; [`Store::sync`] or the next
    /// `Immediate` commit makes them durable. A crash may lose the newest
    /// commits, as a whole and in order, never corrupt the store: pack data
    /// is still fsynced before any index entry that points at it is written.
    Eventual,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pack_size: 64 << 20,
            cdc: CdcParams::default(),
            encode: EncodeOptions::default(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            create: true,
            durability: Durability::Immediate,
            max_delta_depth: 9,
            delta_min_saving: 0.03,
            pack_io: Arc::new(crate::pack::io::OsIo),
            max_open_packs: crate::pack::MAX_OPEN_PACKS,
        }
    }
}

impl Options {
    /// Target pack file size. Default 64 MiB; range 1 MiB ..= 4 GiB.
    pub fn pack_size(mut self, bytes: u64) -> Self {
        self.pack_size = bytes.clamp(1 << 20, 4 << 30);
        self
    }

    /// Content-defined chunking bounds for a new store. Default 16 / 64 /
    /// 128 KiB. An existing store keeps the bounds it was created with.
    pub fn chunking(mut self, params: CdcParams) -> Self {
        self.cdc = params;
        self
    }

    /// zstd level for whole-chunk payloads (byte-plane payloads have their
    /// own tuning, see [`EncodeOptions`]). Default 3; range 1 ..= 19.
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.encode.level = level.clamp(1, 19);
        self
    }

    /// Worker threads for hashing and compression. Default: one per core.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.clamp(1, 256);
        self
    }

    /// Whether [`Options::open`] may create a new store. Default true.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Durability of commits. Default [`Durability::Immediate`].
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// The longest delta chain a write may create or extend: an upload
    /// with a base ([`BlobWriter::delta_base`]) stores a chunk as a delta
    /// only while its base is fewer than `depth` deltas deep, and a reverse
    /// delta ([`Store::reverse_delta`]) rebases a chunk only while the
    /// chain through it stays within `depth`; a read decodes at most
    /// `depth + 1` records. Default 9: with reverse deltas (what
    /// [`Store::put_version`] does by default) a chain holds ten versions,
    /// the newest whole and the oldest nine records away. A writer of
    /// forward deltas, whose newest version is at the far end, may want 3
    /// or less. 0 turns deltas off; at most
    /// [`crate::codec::delta::MAX_DELTA_DEPTH`].
    pub fn max_delta_depth(mut self, depth: u8) -> Self {
        self.max_delta_depth = depth.min(MAX_DELTA_DEPTH);
        self
    }

    /// A chunk is stored as a delta only if that is at least this fraction
    /// smaller than storing it alone: a delta costs a second record read on
    /// every restore. Default 0.03 (on the corpus's HDF5 and TensorFlow.js
    /// version pairs, 0.1 kept a third of the deltas and 2.0 of the 5.7 MB
    /// they save; 0.03 keeps 5.5 MB). Range 0 ..= 1.
    pub fn delta_min_saving(mut self, fraction: f64) -> Self {
        self.delta_min_saving = if fraction.is_nan() {
            0.03
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Opens (or, if allowed, creates) the store in `dir`.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir.as_ref(), self)
    }
}
