//! Typed accessors, one module per table: the only code that names a column
//! family or builds a key. Layers above read and write through these with
//! ids and records; the byte layouts stay in [`super::keys`] and
//! [`super::records`].

pub(crate) mod blobs;
pub(crate) mod buckets;
pub(crate) mod chunks;
pub(crate) mod gc_queue;
pub(crate) mod multipart;
pub(crate) mod objects;
pub(crate) mod packs;
pub(crate) mod singletons;
pub(crate) mod uploads;

use crate::error::Result;

use super::{Cf, Meta, Snapshot};

/// Point reads from the live database or from a snapshot, for accessors
/// used on either.
pub(crate) trait Read {
    /// The value under `key` in `cf`, if any.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

impl Read for Meta {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Meta::get(self, cf, key)
    }
}

impl Read for Snapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Snapshot::get(self, cf, key)
    }
}
