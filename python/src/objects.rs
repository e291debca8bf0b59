//! The store's methods over its S3 object namespace (buckets and objects),
//! the same objects the S3 server serves.

use std::path::PathBuf;

use modelvault::{ListQuery, ObjectMeta};
use pyo3::prelude::*;

use crate::blobs::{copy_to_file, open_local, NativeReader};
use crate::errors::{map, R};
use crate::store::NativeStore;

/// An object listing: (key, size) of each object, and the common prefixes.
type Listing = (Vec<(String, u64)>, Vec<String>);

#[pymethods]
impl NativeStore {
    fn ensure_bucket(&self, py: Python<'_>, bucket: &str) -> R<()> {
        map(py.allow_threads(|| {
            let o = self.store.objects();
            if !o.bucket_exists(bucket)? {
                match o.create_bucket(bucket) {
                    Ok(_) => {}
                    Err(modelvault::Error::Exists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }))
    }

    /// Stores a local file as object `key` of `bucket` (replacing any);
    /// returns its size.
    fn put_object_file(&self, py: Python<'_>, bucket: &str, key: &str, path: PathBuf) -> R<u64> {
        let info = map(py.allow_threads(|| {
            self.store
                .objects()
                .put(bucket, key, open_local(&path)?, ObjectMeta::default())
        }))?;
        Ok(info.size)
    }

    fn put_object_bytes(&self, py: Python<'_>, bucket: &str, key: &str, data: Vec<u8>) -> R<u64> {
        let info = map(py.allow_threads(|| {
            self.store
                .objects()
                .put(bucket, key, &data[..], ObjectMeta::default())
        }))?;
        Ok(info.size)
    }

    fn open_object(&self, py: Python<'_>, bucket: &str, key: &str) -> R<NativeReader> {
        let (_, r) = map(py.allow_threads(|| self.store.objects().get(bucket, key)))?;
        Ok(NativeReader::new(r))
    }

    /// Copies object `key` of `bucket` into the local file `dest`
    /// (created or truncated); returns its size.
    fn get_object_file(&self, py: Python<'_>, bucket: &str, key: &str, dest: PathBuf) -> R<u64> {
        py.allow_threads(|| {
            let (_, r) = map(self.store.objects().get(bucket, key))?;
            copy_to_file(r, &dest)
        })
    }

    fn head_object(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
    ) -> R<Option<(u64, String, u64)>> {
        let h = map(py.allow_threads(|| self.store.objects().head(bucket, key)))?;
        Ok(h.map(|i| (i.size, i.blob.to_string(), i.modified_ms)))
    }

    fn delete_object(&self, py: Python<'_>, bucket: &str, key: &str) -> R<bool> {
        map(py.allow_threads(|| self.store.objects().delete(bucket, key)))
    }

    /// Every object under `prefix` (keys and sizes), and with a delimiter
    /// the common prefixes, following the pages to the end.
    #[pyo3(signature = (bucket, prefix = String::new(), delimiter = String::new()))]
    fn list_objects(
        &self,
        py: Python<'_>,
        bucket: &str,
        prefix: String,
        delimiter: String,
    ) -> R<Listing> {
        map(py.allow_threads(|| {
            let o = self.store.objects();
            let mut objects = Vec::new();
            let mut prefixes = Vec::new();
            let mut q = ListQuery {
                prefix,
                delimiter,
                ..ListQuery::default()
            };
            loop {
                let page = o.list(bucket, &q)?;
                objects.extend(page.objects.into_iter().map(|i| (i.key, i.size)));
                prefixes.extend(page.common_prefixes);
                match page.next_continuation_token {
                    Some(next) if page.is_truncated => q.continuation_token = Some(next),
                    _ => break,
                }
            }
            Ok((objects, prefixes))
        }))
    }
}
