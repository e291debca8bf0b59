//! Multipart uploads: an object uploaded as numbered parts, from any
//! number of threads and in any order, then completed from the client's
//! part list without reading or rewriting a byte.
//!
//! Each part is ingested as a blob of its own (in parallel: each upload is
//! its own blob writer) and kept by its part record's reference. Completing
//! builds the object's blob from the parts' chunk lists end to end
//! (`blob::apply_concat`), and in the same commit writes the object record,
//! releases every part and deletes the upload. An upload not completed is
//! kept across reopening until it is aborted; it is never an object.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use crate::blob::{apply_concat, check_same_store, StagedBlob};
use crate::error::{Error, Result};
use crate::id::{BlobId, Hash32};
use crate::meta::object_records::{MultipartRecord, ObjectRecord, PartRecord};
use crate::meta::records::now_ms;
use crate::meta::tables::multipart::{self as table, After, UploadKey};
use crate::meta::tables::objects;
use crate::meta::{Batch, Meta};

use super::{names, need_bucket, stage_from, ObjectInfo, ObjectMeta, Objects};

/// The most parts an upload has, and the highest part number (S3's).
pub const MAX_PARTS: u32 = 10_000;

/// An uploaded part.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartInfo {
    /// Its number, 1..=[`MAX_PARTS`].
    pub number: u32,
    /// The blob holding its bytes.
    pub blob: BlobId,
    /// Its length in bytes.
    pub size: u64,
    /// The entity tag it was uploaded with.
    pub etag: String,
    /// The checksums it was uploaded with.
    pub checksums: BTreeMap<String, String>,
    /// When it was uploaded, in milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

impl PartInfo {
    fn of(number: u32, r: PartRecord) -> PartInfo {
        PartInfo {
            number,
            blob: BlobId(Hash32(r.blob)),
            size: r.size,
            etag: r.etag,
            checksums: r.checksums,
            modified_ms: r.modified_ms,
        }
    }
}

/// A multipart upload begun and not completed or aborted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MultipartInfo {
    /// The bucket it uploads into.
    pub bucket: String,
    /// The key its object will have.
    pub key: String,
    /// Its id.
    pub upload_id: String,
    /// When it was begun, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The content type its object will have.
    pub content_type: Option<String>,
    /// The user metadata its object will have.
    pub metadata: BTreeMap<String, String>,
    /// The standard HTTP headers its object will have.
    pub headers: BTreeMap<String, String>,
}

/// What a caller says about a part it uploads: kept as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartMeta {
    /// The entity tag (at most 1,024 bytes), which the completion must name.
    pub etag: String,
    /// Checksums, algorithm → value.
    pub checksums: BTreeMap<String, String>,
}

/// A part named in a completion, as the client lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// The part's number.
    pub number: u32,
    /// The entity tag the client got when it uploaded the part (quotes
    /// around it are ignored).
    pub etag: String,
}

/// One page of an upload's parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartsPage {
    /// The parts, in number order.
    pub parts: Vec<PartInfo>,
    /// Whether more parts follow.
    pub is_truncated: bool,
    /// When truncated: the number to list after next.
    pub next_part_number_marker: Option<u32>,
}

/// One page of a bucket's unfinished uploads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadsPage {
    /// The uploads, in key order, then in the order they were begun.
    pub uploads: Vec<MultipartInfo>,
    /// Whether more uploads follow.
    pub is_truncated: bool,
    /// When truncated: the key and upload id to list after next.
    pub next_marker: Option<(String, String)>,
}

/// Parses an upload id (32 hex digits). Anything else names no upload.
fn parse_id(id: &str) -> Result<UploadKey> {
    let no = || Error::not_found("multipart upload", id);
    if id.len() != 32 {
        return Err(no());
    }
    let mut k = [0u8; 16];
    hex::decode_to_slice(id, &mut k).map_err(|_| no())?;
    Ok(k)
}

fn check_number(n: u32) -> Result<()> {
    if !(1..=MAX_PARTS).contains(&n) {
        return Err(Error::invalid(
            "part number",
            n,
            format!("must be 1 to {MAX_PARTS}"),
        ));
    }
    Ok(())
}

/// The upload `id` of `key` in `bucket` (as of `meta`).
fn need_upload(
    meta: &Meta,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<(UploadKey, MultipartRecord)> {
    let k = parse_id(id)?;
    match table::get(meta, &k)? {
        Some(r) if r.bucket == bucket && r.key == key => Ok((k, r)),
        _ => Err(Error::not_found(
            "multipart upload",
            format!("{id} of {bucket}/{key}"),
        )),
    }
}

/// Adds to `batch` the abort of upload `id` (record `rec`): its parts
/// deleted and their references released, the upload deleted.
fn abort(meta: &Meta, batch: &mut Batch, id: &UploadKey, rec: &MultipartRecord) -> Result<()> {
    for p in table::parts(meta, id, 0) {
        let (n, r) = p?;
        table::delete_part(batch, id, n, &r);
    }
    table::delete(batch, id, rec);
    Ok(())
}

fn unquote(etag: &str) -> &str {
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

impl Objects<'_> {
    /// Begins a multipart upload of object `key` of `bucket`, whose object
    /// will have the content type, user metadata and headers of `meta`;
    /// returns its id. The entity tag and checksums are the completion's,
    /// so `meta` must leave them empty.
    ///
    /// # Errors
    /// As [`Objects::put`]; [`Error::InvalidInput`] (`upload meta`) for an
    /// entity tag or checksums given here.
    pub fn create_multipart(&self, bucket: &str, key: &str, meta: ObjectMeta) -> Result<String> {
        self.check_target(bucket, key)?;
        if !meta.etag.is_empty() || !meta.checksums.is_empty() {
            return Err(Error::invalid(
                "upload meta",
                key,
                "the entity tag and checksums of a multipart object are given at completion",
            ));
        }
        if let Some(c) = &meta.content_type {
            names::check_field("content type", c)?;
        }
        names::check_metadata(&meta.metadata, &meta.headers)?;
        let ObjectMeta {
            content_type,
            metadata,
            headers,
            ..
        } = meta;
        // Time-ordered: a key's uploads list in the order they were begun.
        let id = *uuid::Uuid::now_v7().as_bytes();
        let rec = MultipartRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            created_ms: now_ms(),
            content_type,
            metadata,
            headers,
        };
        self.change(|m, batch| {
            need_bucket(m, bucket)?;
            table::put(batch, &id, &rec);
            Ok(())
        })?;
        Ok(hex::encode(id))
    }

    /// Uploads part `number` of upload `upload_id` from `src`, replacing a
    /// part of that number uploaded before. Parts may be uploaded from
    /// several threads at once.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an upload that does not exist (or not for
    /// this key), [`Error::InvalidInput`] for a number outside
    /// 1..=[`MAX_PARTS`] (both before any byte is read).
    pub fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        src: impl Read,
        meta: PartMeta,
    ) -> Result<PartInfo> {
        self.check_target(bucket, key)?;
        check_number(number)?;
        need_upload(self.core.chunks().meta(), bucket, key, upload_id)?;
        let staged = stage_from(self.core, src)?;
        self.upload_part_staged(bucket, key, upload_id, number, staged, meta)
    }

    /// [`Objects::upload_part`] of a staged blob (see
    /// [`Objects::put_staged`]).
    pub fn upload_part_staged(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        staged: StagedBlob,
        meta: PartMeta,
    ) -> Result<PartInfo> {
        self.check_target(bucket, key)?;
        check_number(number)?;
        names::check_field("entity tag", &meta.etag)?;
        names::check_checksums(&meta.checksums)?;
        check_same_store(
            || format!("staged blob {}", staged.id()),
            staged.store(),
            self.core,
        )?;
        let rec = PartRecord {
            blob: *staged.id().as_bytes(),
            size: staged.len(),
            etag: meta.etag,
            checksums: meta.checksums,
            modified_ms: now_ms(),
        };
        self.core
            .chunks()
            .commit(&staged.chunks, Batch::default(), |m, stats, batch| {
                let (id, _) = need_upload(m, bucket, key, upload_id)?;
                staged.apply(m, stats, batch, &mut HashSet::new(), |_| false)?;
                let old = table::get_part(m, &id, number)?;
                table::put_part(batch, &id, number, &rec, old.as_ref());
                Ok(())
            })?;
        staged.committed();
        Ok(PartInfo::of(number, rec))
    }

    /// Up to `max` parts of an upload numbered above `after`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an upload that does not exist.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<PartsPage> {
        self.check_target(bucket, key)?;
        let meta = self.core.chunks().meta();
        let (id, _) = need_upload(meta, bucket, key, upload_id)?;
        let mut page = PartsPage::default();
        for p in table::parts(meta, &id, after) {
            let (n, r) = p?;
            if page.parts.len() == max {
                page.is_truncated = true;
                page.next_part_number_marker = page.parts.last().map(|p| p.number);
                break;
            }
            page.parts.push(PartInfo::of(n, r));
        }
        Ok(page)
    }

    /// Up to `max` unfinished uploads of `bucket` whose key starts with
    /// `prefix`, after `marker` (a key alone: past all of its uploads; a
    /// key and an upload id: past that upload).
    ///
    /// # Errors
    /// [`Error::NotFound`] for a bucket, or a marker's upload id, that does
    /// not exist.
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        marker: Option<(&str, Option<&str>)>,
        max: usize,
    ) -> Result<UploadsPage> {
        names::check_bucket(bucket)?;
        let meta = self.core.chunks().meta();
        need_bucket(meta, bucket)?;
        let marker_id = match marker {
            Some((_, Some(id))) => Some(parse_id(id)?),
            _ => None,
        };
        let after = match (marker, &marker_id) {
            (Some((k, _)), Some(id)) => After::Upload(k, id),
            (Some((k, None)), _) => After::Key(k),
            _ => After::Start,
        };
        let mut page = UploadsPage::default();
        for id in table::in_bucket(meta, bucket, prefix, after) {
            let id = id?;
            if page.uploads.len() == max {
                page.is_truncated = true;
                page.next_marker = page
                    .uploads
                    .last()
                    .map(|u| (u.key.clone(), u.upload_id.clone()));
                break;
            }
            let r = table::get(meta, &id)?.ok_or_else(|| {
                Error::corrupt(
                    format!("multipart upload {}", hex::encode(id)),
                    "indexed in its bucket but has no record",
                )
            })?;
            page.uploads.push(MultipartInfo {
                bucket: r.bucket,
                key: r.key,
                upload_id: hex::encode(id),
                created_ms: r.created_ms,
                content_type: r.content_type,
                metadata: r.metadata,
                headers: r.headers,
            });
        }
        Ok(page)
    }

    /// Aborts an upload: its parts are released (their chunks freed by a
    /// later collection, unless something else keeps them).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an upload that does not exist.
    pub fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.check_target(bucket, key)?;
        self.change(|m, batch| {
            let (id, rec) = need_upload(m, bucket, key, upload_id)?;
            abort(m, batch, &id, &rec)
        })
    }

    /// Aborts every upload (of any bucket) begun before `before_ms`
    /// (milliseconds since the Unix epoch), as S3's lifecycle rule for
    /// incomplete multipart uploads does (a server passes now minus the
    /// age), and returns them. Each is aborted in a commit of its own that
    /// checks it is still there (one completed meanwhile is left alone).
    ///
    /// # Errors
    /// Metadata errors; a record that does not decode is
    /// [`Error::Corrupt`] (the uploads aborted before it stay aborted).
    pub fn abort_uploads_begun_before(&self, before_ms: u64) -> Result<Vec<MultipartInfo>> {
        let old: Vec<(UploadKey, MultipartRecord)> = table::all(self.core.chunks().meta())
            .filter(|r| r.as_ref().map_or(true, |(_, u)| u.created_ms < before_ms))
            .collect::<Result<_>>()?;
        let mut aborted = Vec::new();
        for (id, up) in old {
            let gone = self.change(|m, batch| {
                let Some(rec) = table::get(m, &id)? else {
                    return Ok(false);
                };
                abort(m, batch, &id, &rec)?;
                Ok(true)
            })?;
            if gone {
                aborted.push(MultipartInfo {
                    bucket: up.bucket,
                    key: up.key,
                    upload_id: hex::encode(id),
                    created_ms: up.created_ms,
                    content_type: up.content_type,
                    metadata: up.metadata,
                    headers: up.headers,
                });
            }
        }
        Ok(aborted)
    }

    /// Completes an upload into object `key` of `bucket` from the parts
    /// `parts` names, in its order (numbers strictly ascending, each with
    /// the entity tag its upload returned), with entity tag `etag` and
    /// `checksums`. No byte is read or written: the object's blob lists the
    /// parts' chunks end to end. Parts not listed are discarded, and the
    /// upload is gone once this returns. Parts of any size are joined:
    /// S3's minimum part size (5 MiB for every part but the last) is the
    /// server's to enforce, with the sizes [`Objects::list_parts`] gives.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an upload or bucket that does not exist;
    /// [`Error::InvalidInput`]: `part list` if empty or too long,
    /// `part order` if the numbers are not strictly ascending, `part` for
    /// a part not uploaded or with another entity tag. Nothing changes then.
    pub fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        etag: &str,
        checksums: BTreeMap<String, String>,
    ) -> Result<ObjectInfo> {
        self.check_target(bucket, key)?;
        names::check_field("entity tag", etag)?;
        names::check_checksums(&checksums)?;
        if parts.is_empty() {
            return Err(Error::invalid(
                "part list",
                "[]",
                "a completion must name at least one part",
            ));
        }
        if parts.len() > MAX_PARTS as usize {
            return Err(Error::invalid(
                "part list",
                format!("{} parts", parts.len()),
                format!("at most {MAX_PARTS}"),
            ));
        }
        for w in parts.windows(2) {
            if w[1].number <= w[0].number {
                return Err(Error::invalid(
                    "part order",
                    format!("{} after {}", w[1].number, w[0].number),
                    "part numbers must be listed in strictly ascending order",
                ));
            }
        }
        for p in parts {
            check_number(p.number)?;
        }
        // Used only if a new manifest is written; an id left unused is a
        // gap, never a reuse.
        let manifest = self.core.chunks().new_manifest()?;
        let rec = self
            .core
            .chunks()
            .commit(&[], Batch::default(), |m, stats, batch| {
                let (id, up) = need_upload(m, bucket, key, upload_id)?;
                need_bucket(m, bucket)?;
                let uploaded: HashMap<u32, PartRecord> =
                    table::parts(m, &id, 0).collect::<Result<_>>()?;
                let mut blobs = Vec::with_capacity(parts.len());
                for p in parts {
                    let Some(r) = uploaded.get(&p.number) else {
                        return Err(Error::invalid(
                            "part",
                            p.number,
                            "was not uploaded (or was discarded)",
                        ));
                    };
                    if unquote(&r.etag) != unquote(&p.etag) {
                        return Err(Error::invalid(
                            "part",
                            p.number,
                            format!(
                                "its entity tag is {:?}, the completion names {:?}",
                                r.etag, p.etag
                            ),
                        ));
                    }
                    blobs.push(BlobId(Hash32(r.blob)));
                }
                let (blob, size) = apply_concat(m, stats, batch, &blobs, manifest)?;
                for (n, r) in &uploaded {
                    table::delete_part(batch, &id, *n, r);
                }
                table::delete(batch, &id, &up);
                let rec = ObjectRecord {
                    blob: *blob.as_bytes(),
                    size,
                    etag: etag.to_owned(),
                    content_type: up.content_type,
                    metadata: up.metadata,
                    headers: up.headers,
                    checksums,
                    modified_ms: now_ms(),
                    parts: parts.len() as u32,
                };
                let old = objects::get(m, bucket, key)?;
                objects::put(batch, bucket, key, &rec, old.as_ref());
                Ok(rec)
            })?;
        Ok(ObjectInfo::of(bucket, key, rec))
    }
}
