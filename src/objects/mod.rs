//! An S3-style object namespace in the store: buckets of objects named by
//! opaque keys, each object a blob of the chunk store held by a reference
//! (docs/ARCHITECTURE.md, "Objects"). [`Objects`] is the handle
//! (`Store::objects`); an S3 server is a thin adapter over it.
//!
//! Every change is one commit through the chunk layer's commit door, whose
//! closure checks and writes under the commit lock: a bucket cannot vanish
//! under a put, two writers of one key cannot both win, and an object's
//! record and the reference it holds on its blob (and the release of the
//! reference the record it replaces held) are one atomic batch.
//!
//! Errors, as an S3 server maps them:
//! - [`Error::NotFound`] with kind `bucket` (NoSuchBucket), `object`
//!   (NoSuchKey), `multipart upload` (NoSuchUpload), `blob`;
//! - [`Error::Exists`] for a bucket created twice (BucketAlreadyOwnedByYou);
//! - [`Error::InvalidInput`] naming what is wrong: `bucket name`
//!   (InvalidBucketName), `object key` (KeyTooLongError or an empty key),
//!   `bucket to delete` (BucketNotEmpty), `part order` (InvalidPartOrder),
//!   `part` (InvalidPart), `part number` (InvalidArgument), `part list`
//!   (MalformedXML: no parts), `user metadata` (MetadataTooLarge),
//!   `continuation token` (InvalidArgument).

mod list;
mod multipart;
pub(crate) mod names;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::Arc;

pub use list::{ListPage, ListQuery, MAX_LIST_KEYS};

/// A condition a put must meet, checked in its commit
/// ([`Objects::put_staged_when`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutCondition {
    /// None: the put replaces any object of the key.
    #[default]
    Always,
    /// Only if no object has the key (S3's `If-None-Match: *`).
    Absent,
}
pub use multipart::{
    CompletedPart, MultipartInfo, PartInfo, PartMeta, PartsPage, UploadsPage, MAX_PARTS,
};
pub use names::{MAX_KEY_LEN, MAX_METADATA_BYTES};

use crate::blob::{check_same_store, copy_into, BlobReader, Core, StagedBlob};
use crate::error::{Error, Result};
use crate::id::{BlobId, Hash32};
use crate::meta::object_records::{BucketRecord, ObjectRecord};
use crate::meta::records::now_ms;
use crate::meta::tables::{blobs, buckets, multipart as parts_table, objects};
use crate::meta::{Batch, Meta};

/// The object namespace of one open store (see the module docs). A cheap
/// handle borrowing the store: `store.objects().put(…)`.
#[derive(Clone, Copy)]
pub struct Objects<'a> {
    core: &'a Arc<Core>,
}

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketInfo {
    /// Its name.
    pub name: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// What a caller says about an object it stores: kept as given, with the
/// bytes. The server computes the entity tag (S3 clients expect the MD5 of
/// a single-part object) and verifies checksums before storing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The entity tag (at most 1,024 bytes).
    pub etag: String,
    /// The content type, if given.
    pub content_type: Option<String>,
    /// User metadata, name → value (at most [`MAX_METADATA_BYTES`] in all).
    pub metadata: BTreeMap<String, String>,
    /// Checksums, algorithm → value (e.g. `CRC32` → its base64).
    pub checksums: BTreeMap<String, String>,
    /// Standard HTTP headers to keep and return with the object, by
    /// lower-case name (`cache-control`, `content-disposition`,
    /// `content-encoding`, `content-language`, `expires`); counted with the
    /// user metadata against [`MAX_METADATA_BYTES`].
    pub headers: BTreeMap<String, String>,
}

/// An object: where its bytes are and what was said about them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The bucket it is in.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// The blob holding its bytes.
    pub blob: BlobId,
    /// Its length in bytes.
    pub size: u64,
    /// The entity tag it was stored with.
    pub etag: String,
    /// Its content type, if given.
    pub content_type: Option<String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Checksums it was stored with.
    pub checksums: BTreeMap<String, String>,
    /// Standard HTTP headers it was stored with, by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// When it was written, in milliseconds since the Unix epoch.
    pub modified_ms: u64,
    /// The number of parts it was completed from (0: stored in one piece).
    pub parts: u32,
}

impl ObjectInfo {
    fn of(bucket: &str, key: &str, r: ObjectRecord) -> ObjectInfo {
        ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            blob: BlobId(Hash32(r.blob)),
            size: r.size,
            etag: r.etag,
            content_type: r.content_type,
            metadata: r.metadata,
            checksums: r.checksums,
            headers: r.headers,
            modified_ms: r.modified_ms,
            parts: r.parts,
        }
    }
}

fn check_meta(m: &ObjectMeta) -> Result<()> {
    names::check_field("entity tag", &m.etag)?;
    if let Some(c) = &m.content_type {
        names::check_field("content type", c)?;
    }
    names::check_metadata(&m.metadata, &m.headers)?;
    names::check_checksums(&m.checksums)
}

/// Fails unless bucket `name` exists (as of `meta`).
fn need_bucket(meta: &Meta, name: &str) -> Result<BucketRecord> {
    buckets::get(meta, name)?.ok_or_else(|| Error::not_found("bucket", name))
}

/// Copies `src` into a new blob writer and stages it (bounded memory: the
/// writer streams).
fn stage_from(core: &Arc<Core>, src: impl Read) -> Result<StagedBlob> {
    let mut w = core.blob_writer();
    copy_into(&mut w, src)?;
    w.stage()
}

impl<'a> Objects<'a> {
    pub(crate) fn new(core: &'a Arc<Core>) -> Self {
        Objects { core }
    }

    /// Commits the namespace change `f` makes, with no new chunks.
    fn change<T: Send>(&self, f: impl FnOnce(&Meta, &mut Batch) -> Result<T> + Send) -> Result<T> {
        self.core
            .chunks()
            .commit(&[], Batch::default(), |meta, _, batch| f(meta, batch))
    }

    /// Creates bucket `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name S3 would refuse (saying which
    /// rule it breaks); [`Error::Exists`] if the bucket exists.
    pub fn create_bucket(&self, name: &str) -> Result<BucketInfo> {
        names::check_bucket(name)?;
        let rec = BucketRecord {
            created_ms: now_ms(),
        };
        self.change(|meta, batch| {
            if buckets::get(meta, name)?.is_some() {
                return Err(Error::Exists {
                    what: format!("bucket {name}"),
                });
            }
            buckets::put(batch, name, &rec);
            Ok(())
        })?;
        Ok(BucketInfo {
            name: name.to_owned(),
            created_ms: rec.created_ms,
        })
    }

    /// Deletes bucket `name`, which must be empty: no object and no
    /// unfinished multipart upload.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it does not exist; [`Error::InvalidInput`]
    /// (`bucket to delete`) if it is not empty.
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        names::check_bucket(name)?;
        self.change(|meta, batch| {
            need_bucket(meta, name)?;
            if objects::any_in(meta, name)? {
                return Err(Error::invalid(
                    "bucket to delete",
                    name,
                    "it is not empty: it holds objects",
                ));
            }
            if parts_table::in_bucket(meta, name, "", parts_table::After::Start)
                .next()
                .transpose()?
                .is_some()
            {
                return Err(Error::invalid(
                    "bucket to delete",
                    name,
                    "it has unfinished multipart uploads: complete or abort them first",
                ));
            }
            buckets::delete(batch, name);
            Ok(())
        })
    }

    /// Every bucket, in name order.
    pub fn buckets(&self) -> Result<Vec<BucketInfo>> {
        buckets::all(self.core.chunks().meta())
            .map(|r| {
                let (name, rec) = r?;
                Ok(BucketInfo {
                    name,
                    created_ms: rec.created_ms,
                })
            })
            .collect()
    }

    /// Bucket `name`, if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name no bucket can have.
    pub fn bucket(&self, name: &str) -> Result<Option<BucketInfo>> {
        names::check_bucket(name)?;
        Ok(
            buckets::get(self.core.chunks().meta(), name)?.map(|r| BucketInfo {
                name: name.to_owned(),
                created_ms: r.created_ms,
            }),
        )
    }

    /// Whether bucket `name` exists.
    pub fn bucket_exists(&self, name: &str) -> Result<bool> {
        Ok(self.bucket(name)?.is_some())
    }

    fn check_target(&self, bucket: &str, key: &str) -> Result<()> {
        names::check_bucket(bucket)?;
        names::check_key(key)
    }

    /// Stores the bytes of `src` as object `key` of `bucket`, replacing any
    /// object of that key (whose blob reference is released in the same
    /// commit). Streams through the blob writer in bounded memory; the same
    /// bytes stored anywhere before are not stored again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, key or field (before any
    /// byte is read); [`Error::NotFound`] if the bucket does not exist;
    /// I/O errors of `src`. Nothing is visible unless it succeeds.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        src: impl Read,
        meta: ObjectMeta,
    ) -> Result<ObjectInfo> {
        self.check_target(bucket, key)?;
        check_meta(&meta)?;
        need_bucket(self.core.chunks().meta(), bucket)?;
        let staged = stage_from(self.core, src)?;
        self.put_staged(bucket, key, staged, meta)
    }

    /// Stores a staged blob ([`crate::BlobWriter::stage`]) as object `key`
    /// of `bucket`: for a server that writes the body into a blob writer
    /// itself (computing its entity tag and checksums on the way) and
    /// decides only then whether to keep it. Dropping a staged blob instead
    /// leaves nothing visible.
    ///
    /// # Errors
    /// As [`Objects::put`]; [`Error::WrongStore`] if another store handle
    /// staged the blob.
    pub fn put_staged(
        &self,
        bucket: &str,
        key: &str,
        staged: StagedBlob,
        meta: ObjectMeta,
    ) -> Result<ObjectInfo> {
        self.put_staged_when(bucket, key, staged, meta, PutCondition::Always)
    }

    /// [`Objects::put_staged`] only if `cond` holds, checked in the commit
    /// itself: two puts of the same key with [`PutCondition::Absent`]
    /// cannot both succeed, however they interleave.
    ///
    /// # Errors
    /// As [`Objects::put_staged`]; [`Error::Exists`] if `cond` is
    /// [`PutCondition::Absent`] and the key has an object (nothing is
    /// changed; the staged blob is the caller's to drop).
    pub fn put_staged_when(
        &self,
        bucket: &str,
        key: &str,
        staged: StagedBlob,
        meta: ObjectMeta,
        cond: PutCondition,
    ) -> Result<ObjectInfo> {
        self.check_target(bucket, key)?;
        check_meta(&meta)?;
        check_same_store(
            || format!("staged blob {}", staged.id()),
            staged.store(),
            self.core,
        )?;
        let rec =
            self.core
                .chunks()
                .commit(&staged.chunks, Batch::default(), |m, stats, batch| {
                    need_bucket(m, bucket)?;
                    let old = objects::get(m, bucket, key)?;
                    if cond == PutCondition::Absent && old.is_some() {
                        return Err(Error::Exists {
                            what: format!("object {key:?} of bucket {bucket}"),
                        });
                    }
                    staged.apply(m, stats, batch, &mut HashSet::new(), |_| false)?;
                    let rec = record(staged.id(), staged.len(), meta, 0);
                    objects::put(batch, bucket, key, &rec, old.as_ref());
                    Ok(rec)
                })?;
        staged.committed();
        Ok(ObjectInfo::of(bucket, key, rec))
    }

    /// Makes object `key` of `bucket` name blob `blob`, already stored (by
    /// [`crate::Store::put_blob`], as a model version's file, as another
    /// object): no byte is read or written.
    ///
    /// # Errors
    /// As [`Objects::put`]; [`Error::NotFound`] (kind `blob`) if the blob
    /// is not stored.
    pub fn put_blob(
        &self,
        bucket: &str,
        key: &str,
        blob: &BlobId,
        meta: ObjectMeta,
    ) -> Result<ObjectInfo> {
        self.check_target(bucket, key)?;
        check_meta(&meta)?;
        let rec = self.change(|m, batch| {
            need_bucket(m, bucket)?;
            let b = blobs::get(m, blob)?.ok_or_else(|| Error::not_found("blob", blob))?;
            let rec = record(*blob, b.size, meta, 0);
            let old = objects::get(m, bucket, key)?;
            objects::put(batch, bucket, key, &rec, old.as_ref());
            Ok(rec)
        })?;
        Ok(ObjectInfo::of(bucket, key, rec))
    }

    /// Object `key` of `bucket`, if it exists.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the bucket does not exist; a record that does
    /// not decode is [`Error::Corrupt`].
    pub fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        self.check_target(bucket, key)?;
        let meta = self.core.chunks().meta();
        need_bucket(meta, bucket)?;
        Ok(objects::get(meta, bucket, key)?.map(|r| ObjectInfo::of(bucket, key, r)))
    }

    /// Object `key` of `bucket` and a reader of its bytes (`Read + Seek`: a
    /// range is a seek and a bounded read).
    ///
    /// # Errors
    /// [`Error::NotFound`] (kind `object` or `bucket`) if either does not
    /// exist; [`Error::Corrupt`] if the record is damaged or names a blob
    /// that is not stored or has another size.
    pub fn get(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, BlobReader)> {
        // A delete or an overwrite may release the blob between reading the
        // record and opening the blob: read the record again then.
        for _ in 0..3 {
            let info = self
                .head(bucket, key)?
                .ok_or_else(|| Error::not_found("object", format!("{bucket}/{key}")))?;
            match self.core.blob_reader(&info.blob) {
                Ok(r) if r.len() == info.size => return Ok((info, r)),
                Ok(r) => {
                    return Err(Error::corrupt(
                        format!("object {bucket}/{key}"),
                        format!(
                            "its record says {} bytes, its blob {} holds {}",
                            info.size,
                            info.blob,
                            r.len()
                        ),
                    ))
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::corrupt(
            format!("object {bucket}/{key}"),
            "its blob is not stored",
        ))
    }

    /// Deletes object `key` of `bucket`, releasing its blob reference (its
    /// chunks are freed by a later collection if nothing else keeps them).
    /// Returns whether it existed (deleting a missing key is no error, as
    /// in S3).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the bucket does not exist.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<bool> {
        self.check_target(bucket, key)?;
        self.change(|m, batch| {
            need_bucket(m, bucket)?;
            match objects::get(m, bucket, key)? {
                Some(old) => {
                    objects::delete(batch, bucket, key, &old);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Server-side copy: object `to_key` of `to_bucket` names the same blob
    /// as `from_key` of `from_bucket` (no byte is read or written), with the
    /// source's entity tag, content type, metadata and checksums, or with
    /// `replace`'s if given.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing bucket or source object.
    pub fn copy(
        &self,
        from_bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
        replace: Option<ObjectMeta>,
    ) -> Result<ObjectInfo> {
        self.check_target(from_bucket, from_key)?;
        self.check_target(to_bucket, to_key)?;
        if let Some(m) = &replace {
            check_meta(m)?;
        }
        let rec = self.change(|m, batch| {
            need_bucket(m, from_bucket)?;
            need_bucket(m, to_bucket)?;
            let src = objects::get(m, from_bucket, from_key)?
                .ok_or_else(|| Error::not_found("object", format!("{from_bucket}/{from_key}")))?;
            let mut rec = match replace {
                Some(meta) => record(BlobId(Hash32(src.blob)), src.size, meta, src.parts),
                None => src,
            };
            rec.modified_ms = now_ms();
            let old = objects::get(m, to_bucket, to_key)?;
            objects::put(batch, to_bucket, to_key, &rec, old.as_ref());
            Ok(rec)
        })?;
        Ok(ObjectInfo::of(to_bucket, to_key, rec))
    }
}

/// An object record of blob `blob` (`size` bytes) with what `meta` says.
fn record(blob: BlobId, size: u64, meta: ObjectMeta, parts: u32) -> ObjectRecord {
    ObjectRecord {
        blob: *blob.as_bytes(),
        size,
        etag: meta.etag,
        content_type: meta.content_type,
        metadata: meta.metadata,
        checksums: meta.checksums,
        modified_ms: now_ms(),
        parts,
        headers: meta.headers,
    }
}
