//! The metadata layer: RocksDB behind one wall.
//!
//! Only this module talks to RocksDB. It owns the schema: the column
//! families, the key layouts ([`keys`]), the record encodings ([`records`];
//! the registry's records in [`registry_records`], the keys of its secondary
//! indexes in `registry_index`), the order-preserving
//! encoding of typed values in index keys ([`index_key`]) and the rules
//! stored names and paths follow ([`names`]). Layers above speak in typed
//! records and atomic [`Batch`]es.

#[cfg(feature = "store")]
mod db;
pub(crate) mod index_key;
pub(crate) mod keys;
pub(crate) mod names;
pub(crate) mod object_records;
pub(crate) mod records;
#[cfg(feature = "store")]
pub(crate) mod registry_index;
pub(crate) mod registry_records;
#[cfg(feature = "store")]
pub(crate) mod tables;

#[cfg(all(feature = "store", test))]
pub(crate) use db::power_cut;
#[cfg(feature = "store")]
pub(crate) use db::{Batch, Meta, Pair, Scan, Snapshot};
// Column families stay inside this module: layers above name tables through
// `tables`, never a column family.
#[cfg(feature = "store")]
use db::Cf;
