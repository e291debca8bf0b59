//! Reference counting, garbage collection and pack compaction.
//!
//! What keeps what (docs/ARCHITECTURE.md, "GC", has the whole protocol):
//! registry records and caller holds keep blobs; a blob, or an upload
//! session, keeps its manifest; every manifest segment entry keeps a chunk;
//! an upload in flight holds the chunks it has looked up until a committed
//! segment references them. Counts change only inside commits
//! (`chunk::refs::resolve`); collection ([`collect`]) turns what fell to zero into
//! deleted index entries, and compaction rewrites packs that became mostly
//! dead; [`reclaim`] compacts the packs a reverse delta just emptied.

mod collect;
pub(crate) mod estimate;
mod reclaim;
pub(crate) mod recount;

#[cfg(test)]
pub(crate) use collect::CrashAt;
pub use collect::{GcOptions, GcReport, SkippedPack, UploadInfo};
pub(crate) use reclaim::PUT_RECLAIM_BELOW;

#[cfg(test)]
mod tests;
