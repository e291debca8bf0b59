//! The metadata layer: RocksDB behind one wall.
//!
//! Only this module talks to RocksDB. It owns the column families, the key
//! layouts ([`keys`]) and the record encodings ([`records`]); layers above
//! speak in typed records and atomic [`Batch`]es.

#[cfg(feature = "store")]
mod db;
pub mod index_key;
pub(crate) mod keys;
pub(crate) mod records;

#[cfg(all(feature = "store", test))]
pub(crate) use db::power_cut;
#[cfg(feature = "store")]
pub(crate) use db::{Batch, Cf, Meta, Pair, Scan, Snapshot};
