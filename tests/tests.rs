//! Integration tests, one binary. Each module is one area:
//! - `blob_roundtrip`: byte-identical round trips, ranged reads and seeks.
//! - `blob_dedup`: what is and is not stored again.
//! - `blob_delta`: chunks stored as deltas against the previous version of a file.
//! - `blob_reverse`: older versions re-encoded as deltas against the newest (reverse deltas).
//! - `blob_corruption`: damaged packs and records fail loudly, never return wrong bytes.
//! - `blob_concurrency`: many threads writing and reading one store.
//! - `store_lifecycle`: create, reopen, locking, crash leftovers, partial and unreadable stores.
//! - `store_disk_full`: a store on a small tmpfs running out of space (needs root to mount).
//! - `crash_kill`: a child process (`examples/crash_child.rs`) SIGKILLed mid-workload and mid-upload.
//! - `cli`: the `modelvault` binary's contract.
//! - `cli_archive`: `export`, `import`, `have` and `sync` through the binary.
//! - `cli_files`: which files `put` reads (symlinks) and what `get` refuses to write.
//! - `cli_commands`: `experiment artifact|artifacts|scalar|scalars|env`, `tensor`, `index verify|rebuild`, `put --resume` of a killed put.
//! - `cli_registry`: register, delete, prune, experiment delete, uploads, and every dry run.
//! - `hostile_input`: traversal and look-alike names and paths, through the API and the CLI.
//! - `meta_corruption`: damaged RocksDB files (SST, MANIFEST, CURRENT, WAL) fail loudly, never return wrong bytes.
//! - `meta_lengths`: hostile lengths, offsets and nesting in metadata records give clean errors.
//! - `gc_model_based`: random put/release/gc/suspend/resume/reopen sequences against an in-memory model of holds and chunks.
//! - `registry_entities`: experiments, models, links, queries, listings, reopen.
//! - `registry_model_based`: random operation sequences against an in-memory model.
//! - `registry_put`: `Store::put_version`: delta base choice, reverse delta, creating or refusing the model.
//! - `registry_delete`: deleting versions, models, experiments; retention; dry runs; gc.
//! - `registry_concurrency`: many threads on experiments and models at once.
//! - `format_v1`: a store written by format version 1 (a committed fixture) opens and reads back.
//! - `layering`: each module of the library uses only the layers below it.
//! - `upload_staging`: staged blobs bound to their store; versions of many files committed in groups.
//! - `readonly`: `Store::open_read_only` beside a writer (in this process, and `examples/readonly_writer.rs` in another): catching up, refused writes, compaction, the CLI.
//! - `remote_get`: `modelvault get URL` of a version on a server, verified on arrival.
//! - `sync_remote`: `sync --from URL` through a server's `POST /_api/v1/export`.
//! - `aio`: the async reader, stream and writer (feature `tokio`) on current_thread runtimes; `examples/axum_blobs.rs` as a process.
//! - `objects`: buckets, objects, listings and multipart uploads (`Store::objects`) and their blob references.
//! - `archive`: bundles: export, import (all or nothing, idempotent, incremental), conflicts.
//! - `api`: the registry's HTTP API (`/_api/v1/`) of `modelvault serve`, through a real HTTP client.

mod common;

#[cfg(feature = "tokio")]
mod aio;
mod api;
mod archive;
mod blob_concurrency;
mod blob_corruption;
mod blob_dedup;
mod blob_delta;
mod blob_reverse;
mod blob_roundtrip;
mod blob_tensors;
mod cli;
mod cli_archive;
mod cli_commands;
mod cli_files;
mod cli_output;
mod cli_registry;
mod crash_kill;
mod format_v1;
mod gc_model_based;
mod hostile_input;
mod layering;
mod meta_corruption;
mod meta_lengths;
mod objects;
mod readonly;
mod registry_concurrency;
mod registry_delete;
mod registry_entities;
mod registry_model_based;
mod registry_put;
mod remote_get;
mod store_disk_full;
mod store_lifecycle;
mod sync_remote;
mod upload_staging;
