//! Integration tests, one binary. Each module is one area:
//! - `blob_roundtrip`: byte-identical round trips, ranged reads and seeks.
//! - `blob_dedup`: what is and is not stored again.
//! - `blob_corruption`: damaged packs and records fail loudly, never return wrong bytes.
//! - `blob_concurrency`: many threads writing and reading one store.
//! - `store_lifecycle`: create, reopen, locking, crash leftovers.
//! - `cli`: the `modelvault` binary's contract.

mod common;

mod blob_concurrency;
mod blob_corruption;
mod blob_dedup;
mod blob_roundtrip;
mod cli;
mod store_lifecycle;
