//! Checking and rebuilding the secondary indexes from the primary records.
//!
//! The index is derived data: every entry follows from an experiment, model
//! or version record. [`Store::verify_index`] recomputes the full key set
//! and compares it with the `index` column family; [`Store::rebuild_index`]
//! makes them equal in one batch. The comparison is `verify::index`.

use std::sync::Arc;

use crate::blob::Core;
use crate::error::Result;
use crate::meta::Batch;
use crate::verify::index::compare;
use crate::verify::IndexReport;

impl Core {
    /// See [`crate::Store::verify_index`].
    pub(crate) fn verify_index(self: &Arc<Self>) -> Result<IndexReport> {
        Ok(compare(self.chunks().meta())?.0)
    }

    /// See [`crate::Store::rebuild_index`].
    pub(crate) fn rebuild_index(self: &Arc<Self>) -> Result<IndexReport> {
        self.chunks()
            .commit(&[], Batch::default(), |meta, _, batch| {
                let (report, fix) = compare(meta)?;
                batch.extend(fix);
                Ok(report)
            })
    }
}
