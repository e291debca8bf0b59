//! Checking and rebuilding the secondary indexes from the primary records.
//!
//! The index is derived data: every entry follows from an experiment, model
//! or version record. [`Store::verify_index`] recomputes the full key set
//! and compares it with the `index` column family; [`Store::rebuild_index`]
//! makes them equal in one batch. The comparison is `verify::index`.

use crate::error::Result;
use crate::meta::Batch;
use crate::store::Store;
use crate::verify::index::compare;
use crate::verify::IndexReport;

impl Store {
    /// Compares the secondary indexes with what the records imply.
    pub fn verify_index(&self) -> Result<IndexReport> {
        Ok(compare(&self.inner.meta)?.0)
    }

    /// Rebuilds the secondary indexes from the records (the repair path);
    /// returns what was wrong.
    pub fn rebuild_index(&self) -> Result<IndexReport> {
        self.inner.commit(&[], Batch::default(), |meta, _, batch| {
            let (report, fix) = compare(meta)?;
            batch.extend(fix);
            Ok(report)
        })
    }
}
