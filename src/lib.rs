//! # modelvault
//!
//! An embedded storage engine for machine-learning model weights:
//! content-addressed (blake3), deduplicated (content-defined chunking),
//! compressed per chunk with codecs tuned to float data (zstd over byte
//! planes), stored in append-only pack files with RocksDB for metadata.
//!
//! - Streaming in and out: [`BlobWriter`] is `std::io::Write`,
//!   [`BlobReader`] is `std::io::Read + Seek`; memory stays bounded
//!   whatever the size.
//! - Every read is verified against the chunk's blake3 address.
//! - `finish()` and `commit_version()` return only once data is durable.
//! - One handle, `Send + Sync`, cheap to clone; one process at a time.
//! - Successive checkpoints are stored as deltas: against the previous one
//!   ([`BlobWriter::delta_base`]), or the other way round, the newest whole
//!   and the previous one re-encoded against it ([`Store::reverse_delta`]).
//!
//! ```
//! # #[cfg(feature = "store")] {
//! use std::io::{Read, Write};
//! use modelvault::{FileEntry, Store};
//!
//! # fn main() -> modelvault::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::create(dir.path().join("vault"))?;
//!
//! let weights = vec![0.25f32; 100_000].iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
//! let mut w = store.blob_writer();
//! w.write_all(&weights).unwrap();
//! let blob = w.finish()?;
//!
//! let v = store.commit_version("tiny", vec![FileEntry {
//!     path: "model.bin".into(), blob, size: weights.len() as u64,
//! }])?;
//! assert_eq!(v, 1);
//!
//! let mut back = Vec::new();
//! store.blob_reader(&blob)?.read_to_end(&mut back).unwrap();
//! assert_eq!(back, weights);
//! # Ok(()) }
//! # }
//! # #[cfg(not(feature = "store"))] fn main() {}
//! ```
//!
//! Layers, bottom up: [`query`] and container formats ([`detect`]) → `chunking` → `codec` → `pack`
//! → `meta` → `chunk` → `blob` → `gc` → `verify` → `registry` → [`Store`]. See `docs/ARCHITECTURE.md`
//! and `docs/FORMAT.md`.

// One exception, allowed where it stands: the commit combiner
// (`chunk/combine.rs`) runs a committer's closure, which borrows from the
// committer's stack, on the thread that holds the commit lock while the
// committer waits for it (the pattern of scoped threads).
#![deny(unsafe_code)]
// Without `store` only the pure layers build (for fuzzing); their store-side helpers go unused.
#![cfg_attr(not(feature = "store"), allow(dead_code))]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
pub mod aio;
mod archive;
#[cfg(feature = "store")]
mod blob;
#[cfg(feature = "store")]
mod chunk;
mod chunking;
mod codec;
mod error;
mod formats;
#[cfg(feature = "store")]
mod gc;
mod id;
mod meta;
#[cfg(feature = "store")]
mod objects;
mod pack;
pub mod query;
mod registry;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "store")]
mod store;
#[cfg(feature = "store")]
mod verify;

#[cfg(feature = "store")]
pub use archive::{ExportReport, ExportSpec, ImportOptions, ImportReport};
#[cfg(feature = "store")]
pub use blob::{BlobReader, BlobWriter, ReverseDeltaReport, StagedBlob, UploadId};
pub use chunking::CdcParams;
pub use error::{Error, Result};
pub use formats::detect;
pub use formats::tensor::{DType, TensorLayout, TensorSpan};
#[cfg(feature = "store")]
pub use gc::{GcOptions, GcReport, SkippedPack, UploadInfo};
pub use id::{BlobId, ChunkId, Hash32};
pub use meta::index_key::{decode_index_key, index_key};
pub use meta::names::{check_name, check_path};
pub use meta::records::FileEntry;
pub use meta::registry_records::{
    Artifact, ArtifactBody, ConsoleLine, EntityId, Environment, External, RunInfo, Status, Stream,
    VersionFile,
};
#[cfg(feature = "store")]
pub use objects::{
    BucketInfo, CompletedPart, ListPage, ListQuery, MultipartInfo, ObjectInfo, ObjectMeta, Objects,
    PartInfo, PartMeta, PartsPage, PutCondition, UploadsPage, MAX_KEY_LEN, MAX_LIST_KEYS,
    MAX_METADATA_BYTES, MAX_PARTS,
};
#[cfg(feature = "store")]
pub use registry::delete::{DeleteOptions, DeleteReport, Retention};
#[cfg(feature = "store")]
pub use registry::experiment::{Experiment, ExperimentInfo, ExperimentQuery, NewExperiment};
#[cfg(feature = "store")]
pub use registry::model::{Model, ModelInfo, ModelSummary, NewModel};
#[cfg(feature = "store")]
pub use registry::put::{PutReport, PutVersion, VersionPut};
#[cfg(feature = "store")]
pub use registry::usage::{
    ArtifactRef, BlobUsers, ChunkUsers, ObjectRef, SpaceReport, SpaceUse, VersionRef,
};
#[cfg(feature = "store")]
pub use registry::version::ModelVersion;
#[cfg(feature = "store")]
pub use registry::version_upload::VersionUpload;
#[cfg(feature = "store")]
pub use store::{BlobInfo, Durability, Options, Stats, Store};
#[cfg(feature = "store")]
pub use verify::{IndexReport, Problem, VerifyOptions, VerifyReport};

/// The name of the temporary file through which `modelvault get` restores a
/// file (created exclusively in the file's destination folder, then renamed
/// over it): the `seq`-th of process `pid`. Public so that tests can plant
/// files at exactly the names the command line uses.
#[doc(hidden)]
pub fn restore_temp_name(pid: u32, seq: u64) -> String {
    format!(".mv-{pid}-{seq}.tmp")
}

#[cfg(all(test, feature = "store"))]
mod fault_tests;
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod fuzz_api;
#[doc(hidden)]
pub mod internals;
#[cfg(test)]
mod test_support;
