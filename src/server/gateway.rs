//! The S3 operations over the object namespace ([`crate::Objects`]) and the
//! registry bucket. Each handler checks what it can from the request, runs
//! the engine calls on a blocking thread, and maps the engine's errors to
//! S3's (`errors.rs`). Bodies stream through `body.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use tokio::sync::Semaphore;

use super::body::{self, Limits, Received};
use super::checksums::{
    checksum_map, checksum_of, decode_md5, from_trailers, hasher_for, mismatch,
};
use super::conditions;
use super::errors::{joined, s3};
use super::registry_bucket;
use crate::objects::{ObjectInfo, ObjectMeta, PutCondition, MAX_LIST_KEYS};
use crate::Store;

/// The S3 service of one store.
pub(crate) struct Gateway {
    store: Store,
    /// The read-only bucket that shows the registry, if any.
    registry: Option<String>,
    limits: Limits,
    /// Bounds the uploads (puts and parts) in progress at once.
    uploads: Arc<Semaphore>,
}

impl Gateway {
    pub(crate) fn new(
        store: Store,
        registry: Option<String>,
        limits: Limits,
        max_uploads: usize,
    ) -> Gateway {
        Gateway {
            store,
            registry,
            limits,
            uploads: Arc::new(Semaphore::new(max_uploads.max(1))),
        }
    }

    /// The uploads bound, which the registry API's uploads share.
    pub(crate) fn uploads(&self) -> Arc<Semaphore> {
        self.uploads.clone()
    }

    /// Runs `f` on a blocking thread with the store.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> crate::Result<T> + Send + 'static,
    ) -> S3Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(joined)?
            .map_err(s3)
    }

    fn is_registry(&self, bucket: &str) -> bool {
        self.registry.as_deref() == Some(bucket)
    }

    /// Refuses a change to the registry bucket.
    fn writable(&self, bucket: &str) -> S3Result<()> {
        if self.is_registry(bucket) {
            return Err(s3_error!(
                AccessDenied,
                "bucket {bucket} shows the model registry and is read-only"
            ));
        }
        Ok(())
    }

    /// Fails unless `bucket` exists: checked before a body is read, so
    /// that a put into a missing bucket is refused without storing it.
    async fn need_bucket(&self, bucket: &str) -> S3Result<()> {
        let b = bucket.to_owned();
        if self.run(move |s| s.objects().bucket_exists(&b)).await? {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket, "bucket {bucket} not found"))
        }
    }

    /// Receives an upload's body under the uploads bound, checking its
    /// declared length, its Content-MD5 and the checksums the client sent
    /// (in headers or in aws-chunked trailers).
    async fn receive(
        &self,
        body: Option<StreamingBlob>,
        length: Option<i64>,
        content_md5: Option<String>,
        declared: Checksum,
        algorithm: Option<&ChecksumAlgorithm>,
        trailers: Option<s3s::TrailingHeaders>,
    ) -> S3Result<Received> {
        let body = body.ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
        if let Some(n) = length {
            if n < 0 || n as u64 > self.limits.body() {
                return Err(s3_error!(
                    EntityTooLarge,
                    "{n} bytes is more than this server accepts in one request ({} bytes)",
                    self.limits.body()
                ));
            }
        }
        let expected_md5 = match content_md5 {
            Some(b64) => Some(decode_md5(&b64)?),
            None => None,
        };
        let hasher = hasher_for(&declared, algorithm)?;
        let _permit = self
            .uploads
            .acquire()
            .await
            .map_err(|_| s3_error!(ServiceUnavailable, "the server is shutting down"))?;
        let got = body::receive(&self.store, body, hasher, self.limits).await?;
        if let Some(want) = expected_md5 {
            if want != got.md5_hex {
                return Err(s3_error!(
                    BadDigest,
                    "the Content-MD5 you specified did not match what was received"
                ));
            }
        }
        let mut expected = declared;
        if let Some(t) = trailers.and_then(|t| t.take()) {
            from_trailers(&mut expected, &t)?;
        }
        if let Some(name) = mismatch(&got.checksums, &expected) {
            return Err(s3_error!(
                BadDigest,
                "the {name} checksum you specified did not match what was received"
            ));
        }
        Ok(got)
    }
}

/// An S3 output struct `$ty { .. }` with the five checksum fields taken
/// from `$c` (a [`Checksum`]) and the rest defaulted.
macro_rules! with_checksums {
    ($c:expr, $ty:ident { $($field:ident: $value:expr),* $(,)? }) => {{
        let c: Checksum = $c;
        // Some outputs (`Part`) have no other fields.
        #[allow(clippy::needless_update)]
        let out = $ty {
            $($field: $value,)*
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            ..Default::default()
        };
        out
    }};
}

/// What a GET or HEAD output says of object `$f` (a `Found`): entity tag,
/// date, content type, metadata, parts, standard headers and checksums
/// `$c`, with the extra fields given.
macro_rules! describing {
    ($f:expr, $c:expr, $ty:ident { $($field:ident: $value:expr),* $(,)? }) => {{
        let f: Found = $f;
        with_checksums!($c, $ty {
            $($field: $value,)*
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&f.etag)),
            last_modified: Some(timestamp(f.modified_ms)),
            cache_control: header(&f.headers, "cache-control"),
            content_disposition: header(&f.headers, "content-disposition"),
            content_encoding: header(&f.headers, "content-encoding"),
            content_language: header(&f.headers, "content-language"),
            content_type: f.content_type.and_then(|c| c.parse().ok()),
            metadata: (!f.metadata.is_empty()).then(|| f.metadata.into_iter().collect()),
            parts_count: (f.parts > 0).then_some(f.parts as i32),
        })
    }};
}

/// Receives the body of a PutObject or UploadPart input (the two have the
/// same body, length, Content-MD5 and checksum fields).
macro_rules! receive_upload {
    ($gateway:expr, $input:expr, $trailers:expr) => {
        $gateway.receive(
            $input.body,
            $input.content_length,
            $input.content_md5,
            Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                ..Default::default()
            },
            $input.checksum_algorithm.as_ref(),
            $trailers,
        )
    };
}

/// The conditional headers of a GET or HEAD input.
macro_rules! asked {
    ($input:expr) => {
        conditions::Asked {
            if_match: $input.if_match.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
        }
    };
}

mod list;
// After the macros, which it uses.
mod multipart;

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

/// An S3 list size: the client's, within 0..=`most`.
fn clamp(n: Option<i32>, most: usize) -> usize {
    n.map_or(most, |n| (n.max(0) as usize).min(most))
}

/// The standard headers S3 keeps with an object, as given on a put, a
/// copy with REPLACE or a multipart creation.
fn standard_headers(
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
) -> BTreeMap<String, String> {
    [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding),
        ("content-language", content_language),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n.to_owned(), v)))
    .collect()
}

fn header(h: &BTreeMap<String, String>, name: &str) -> Option<String> {
    h.get(name).cloned()
}

fn user_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().collect()).unwrap_or_default()
}

fn object_of(o: &ObjectInfo) -> Object {
    Object {
        key: Some(o.key.clone()),
        e_tag: Some(etag(&o.etag)),
        size: Some(o.size as i64),
        last_modified: Some(timestamp(o.modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn registry_object(e: &registry_bucket::Entry) -> Object {
    Object {
        key: Some(e.key.clone()),
        e_tag: Some(etag(&e.file.blob.to_string())),
        size: Some(e.file.size as i64),
        last_modified: Some(timestamp(e.created_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

/// What a GET or HEAD answers with: the object's description, and the blob
/// to read.
struct Found {
    blob: crate::BlobId,
    size: u64,
    etag: String,
    modified_ms: u64,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    checksums: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    parts: u32,
}

impl Gateway {
    async fn find(&self, bucket: &str, key: &str) -> S3Result<Found> {
        let (b, k) = (bucket.to_owned(), key.to_owned());
        if self.is_registry(bucket) {
            let e = self.run(move |s| registry_bucket::lookup(s, &k)).await?;
            return Ok(Found {
                blob: e.file.blob,
                size: e.file.size,
                etag: e.file.blob.to_string(),
                modified_ms: e.created_ms,
                content_type: None,
                metadata: BTreeMap::new(),
                checksums: BTreeMap::new(),
                headers: BTreeMap::new(),
                parts: 0,
            });
        }
        let o = self
            .run(move |s| {
                s.objects()
                    .head(&b, &k)?
                    .ok_or_else(|| crate::Error::not_found("object", format!("{b}/{k}")))
            })
            .await?;
        Ok(Found {
            blob: o.blob,
            size: o.size,
            etag: o.etag,
            modified_ms: o.modified_ms,
            content_type: o.content_type,
            metadata: o.metadata,
            checksums: o.checksums,
            headers: o.headers,
            parts: o.parts,
        })
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut buckets: Vec<Bucket> = self
            .run(|s| s.objects().buckets())
            .await?
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                ..Default::default()
            })
            .collect();
        if let Some(r) = &self.registry {
            buckets.push(Bucket {
                name: Some(r.clone()),
                creation_date: Some(timestamp(0)),
                ..Default::default()
            });
            buckets.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("modelvault".into()),
                id: Some("modelvault".into()),
            }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = req.input.bucket;
        if self.is_registry(&name) {
            return Err(s3_error!(
                BucketAlreadyExists,
                "bucket {name} shows the model registry"
            ));
        }
        let n = name.clone();
        self.run(move |s| s.objects().create_bucket(&n)).await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let name = req.input.bucket;
        self.writable(&name)?;
        self.run(move |s| s.objects().delete_bucket(&name)).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let name = req.input.bucket;
        if !self.is_registry(&name) {
            self.need_bucket(&name).await?;
        }
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let name = req.input.bucket;
        if !self.is_registry(&name) {
            self.need_bucket(&name).await?;
        }
        // No location constraint: us-east-1.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        self.need_bucket(&input.bucket).await?;
        // `If-None-Match: *`: refused before the body is read if the key
        // has an object now, and checked again in the commit, which alone
        // decides (two such puts racing: one wins, the other gets 412).
        let absent = input.if_none_match.as_ref().is_some_and(|c| c.is_any());
        if absent {
            let (b, k) = (input.bucket.clone(), input.key.clone());
            if self.run(move |s| s.objects().head(&b, &k)).await?.is_some() {
                return Err(s3_error!(PreconditionFailed, "the object exists"));
            }
        }
        let headers = standard_headers(
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
        );
        let got = receive_upload!(self, input, req.trailing_headers).await?;
        let meta = ObjectMeta {
            etag: got.md5_hex.clone(),
            content_type: input.content_type.map(|c| c.to_string()),
            metadata: user_metadata(input.metadata),
            checksums: checksum_map(&got.checksums),
            headers,
        };
        let (b, k, staged) = (input.bucket, input.key, got.staged);
        let cond = if absent {
            PutCondition::Absent
        } else {
            PutCondition::Always
        };
        // `false`: another put took the free key first.
        let stored = self
            .run(
                move |s| match s.objects().put_staged_when(&b, &k, staged, meta, cond) {
                    Ok(_) => Ok(true),
                    Err(crate::Error::Exists { .. }) if absent => Ok(false),
                    Err(e) => Err(e),
                },
            )
            .await?;
        if !stored {
            return Err(s3_error!(PreconditionFailed, "the object exists"));
        }
        Ok(S3Response::new(with_checksums!(
            got.checksums,
            PutObjectOutput {
                e_tag: Some(etag(&got.md5_hex)),
            }
        )))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let f = self.find(&input.bucket, &input.key).await?;
        conditions::check(&f.etag, f.modified_ms, asked!(input))?;
        let (range, content_range) = match &input.range {
            None => (0..f.size, None),
            Some(r) => {
                let r = r
                    .check(f.size)
                    .map_err(|_| s3_error!(InvalidRange, "the range is outside the object"))?;
                let cr = format!("bytes {}-{}/{}", r.start, r.end - 1, f.size);
                (r, Some(cr))
            }
        };
        let whole = range.start == 0 && range.end == f.size;
        let blob = f.blob;
        let reader = self.run(move |s| s.blob_reader(&blob)).await?;
        let body = body::send(reader, range.start, range.end - range.start);
        let c = if whole {
            checksum_of(&f.checksums)
        } else {
            Checksum::default()
        };
        let length = (range.end - range.start) as i64;
        Ok(S3Response::new(describing!(
            f,
            c,
            GetObjectOutput {
                body: Some(body),
                content_length: Some(length),
                content_range: content_range,
            }
        )))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let f = self.find(&input.bucket, &input.key).await?;
        conditions::check(&f.etag, f.modified_ms, asked!(input))?;
        let (c, size) = (checksum_of(&f.checksums), f.size as i64);
        Ok(S3Response::new(describing!(
            f,
            c,
            HeadObjectOutput {
                content_length: Some(size),
            }
        )))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let (b, k) = (input.bucket, input.key);
        self.run(move |s| s.objects().delete(&b, &k)).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        if input.delete.objects.len() > MAX_LIST_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "at most {MAX_LIST_KEYS} keys may be deleted at once"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket;
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        let results = self
            .run(move |s| {
                let o = s.objects();
                Ok(keys
                    .into_iter()
                    .map(|k| {
                        let r = o.delete(&bucket, &k);
                        (k, r)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, r) in results {
            match r {
                Ok(_) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(key),
                            ..Default::default()
                        })
                    }
                }
                Err(e) => {
                    let e = s3(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(key),
                        message: e.message().map(str::to_owned),
                        version_id: None,
                    })
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let CopySource::Bucket {
            bucket: from_bucket,
            key: from_key,
            version_id,
        } = input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket/key copy sources are supported"
            ));
        };
        if version_id.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "this server keeps one version of each object"
            ));
        }
        let src = self.find(&from_bucket, &from_key).await?;
        if let Some(c) = &input.copy_source_if_match {
            conditions::check(
                &src.etag,
                src.modified_ms,
                conditions::Asked {
                    if_match: Some(c),
                    ..Default::default()
                },
            )?;
        }
        if let Some(c) = &input.copy_source_if_none_match {
            conditions::check(
                &src.etag,
                src.modified_ms,
                conditions::Asked {
                    if_none_match: Some(c),
                    ..Default::default()
                },
            )
            .map_err(|_| s3_error!(PreconditionFailed, "the source matches If-None-Match"))?;
        }
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let meta = ObjectMeta {
            etag: src.etag.clone(),
            content_type: if replace {
                input.content_type.map(|c| c.to_string())
            } else {
                src.content_type.clone()
            },
            metadata: if replace {
                user_metadata(input.metadata)
            } else {
                src.metadata.clone()
            },
            checksums: src.checksums.clone(),
            headers: if replace {
                standard_headers(
                    input.cache_control,
                    input.content_disposition,
                    input.content_encoding,
                    input.content_language,
                )
            } else {
                src.headers.clone()
            },
        };
        let (to_b, to_k, blob) = (input.bucket, input.key, src.blob);
        // The new key names the source's blob: no byte is copied. (The
        // registry bucket has no object records, so its files are named
        // by blob too.)
        let o = self
            .run(move |s| s.objects().put_blob(&to_b, &to_k, &blob, meta))
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(timestamp(o.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }
}
