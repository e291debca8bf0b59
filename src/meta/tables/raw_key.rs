//! [`RawKey`]: the key of a stored record as its table holds it, for the
//! records that do not parse or decode.

use std::fmt;

use crate::meta::{Batch, Cf};

/// The key of one stored record, kept as stored: what a caller reports (in
/// hex) when the key is malformed or the record's value does not decode, and
/// deletes to repair or release it. Callers never see its column family or
/// layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawKey {
    cf: Cf,
    key: Box<[u8]>,
}

impl RawKey {
    pub(super) fn new(cf: Cf, key: &[u8]) -> Self {
        RawKey {
            cf,
            key: key.into(),
        }
    }

    /// The stored bytes (meta-internal: paging resumes after them).
    pub(super) fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// Deletes the record under this key.
    pub(crate) fn delete(&self, batch: &mut Batch) {
        batch.delete(self.cf, self.key.to_vec());
    }
}

/// The key's bytes in hex, as problem reports show a malformed key.
impl fmt::Display for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.key))
    }
}
