//! A stored key as it is, for reports about rows whose key or record does
//! not decode: callers name such a row without knowing its table's layout.

use std::fmt;

/// The bytes of a key, shown as hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawKey(pub(super) Box<[u8]>);

impl fmt::Display for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}
