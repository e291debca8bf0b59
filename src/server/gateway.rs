//! The S3 operations over the object namespace ([`crate::Objects`]) and the
//! registry bucket. Each handler checks what it can from the request, runs
//! the engine calls on a blocking thread, and maps the engine's errors to
//! S3's (`errors.rs`). Bodies stream through `body.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use tokio::sync::Semaphore;

use super::body::{self, Limits, Received};
use super::conditions;
use super::errors::{joined, s3};
use super::registry_bucket;
use crate::error::from_io;
use crate::objects::{
    CompletedPart as DonePart, ListQuery, ObjectInfo, ObjectMeta, PartMeta, MAX_LIST_KEYS,
    MAX_PARTS,
};
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

/// A Content-MD5 header (base64 of 16 bytes) as hex.
fn decode_md5(b64: &str) -> S3Result<String> {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
        Ok(d) if d.len() == 16 => Ok(hex::encode(d)),
        _ => Err(s3_error!(
            InvalidDigest,
            "the Content-MD5 you specified is not valid"
        )),
    }
}

/// The checksum names S3 uses, with the field of each in [`Checksum`].
fn checksum_fields(c: &Checksum) -> [(&'static str, &Option<String>); 5] {
    [
        ("CRC32", &c.checksum_crc32),
        ("CRC32C", &c.checksum_crc32c),
        ("CRC64NVME", &c.checksum_crc64nvme),
        ("SHA1", &c.checksum_sha1),
        ("SHA256", &c.checksum_sha256),
    ]
}

fn checksum_field_mut<'a>(c: &'a mut Checksum, name: &str) -> Option<&'a mut Option<String>> {
    Some(match name {
        "CRC32" => &mut c.checksum_crc32,
        "CRC32C" => &mut c.checksum_crc32c,
        "CRC64NVME" => &mut c.checksum_crc64nvme,
        "SHA1" => &mut c.checksum_sha1,
        "SHA256" => &mut c.checksum_sha256,
        _ => return None,
    })
}

/// A hasher computing each checksum the client sent, and the one its
/// algorithm header names (whose value may come later, in a trailer).
fn hasher_for(
    declared: &Checksum,
    algorithm: Option<&ChecksumAlgorithm>,
) -> S3Result<ChecksumHasher> {
    let mut names: Vec<String> = checksum_fields(declared)
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| (*n).to_owned())
        .collect();
    if let Some(a) = algorithm {
        names.push(a.as_str().to_ascii_uppercase());
    }
    let mut h = ChecksumHasher::default();
    for n in names {
        match n.as_str() {
            "CRC32" => h.crc32 = Some(Default::default()),
            "CRC32C" => h.crc32c = Some(Default::default()),
            "CRC64NVME" => h.crc64nvme = Some(Default::default()),
            "SHA1" => h.sha1 = Some(Default::default()),
            "SHA256" => h.sha256 = Some(Default::default()),
            other => {
                return Err(s3_error!(
                    InvalidRequest,
                    "checksum algorithm {other} is not supported"
                ))
            }
        }
    }
    Ok(h)
}

/// Takes the checksums an aws-chunked body's trailer carries.
fn from_trailers(into: &mut Checksum, t: &hyper::HeaderMap) -> S3Result<()> {
    for (name, value) in t {
        let Some(alg) = name.as_str().strip_prefix("x-amz-checksum-") else {
            continue;
        };
        let Some(slot) = checksum_field_mut(into, &alg.to_ascii_uppercase()) else {
            continue;
        };
        let v = value
            .to_str()
            .map_err(|_| s3_error!(InvalidArgument, "trailer {name} is not text"))?;
        *slot = Some(v.to_owned());
    }
    Ok(())
}

/// The first checksum `expected` names that `got` disagrees with.
fn mismatch(got: &Checksum, expected: &Checksum) -> Option<&'static str> {
    checksum_fields(expected)
        .into_iter()
        .zip(checksum_fields(got))
        .find(|((_, want), (_, have))| want.is_some() && want != have)
        .map(|((name, _), _)| name)
}

/// The checksums as stored with an object: name → value.
fn checksum_map(c: &Checksum) -> BTreeMap<String, String> {
    checksum_fields(c)
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n.to_owned(), v)))
        .collect()
}

/// Stored checksums back into S3's fields.
fn checksum_of(m: &BTreeMap<String, String>) -> Checksum {
    let mut c = Checksum::default();
    for (name, v) in m {
        if let Some(slot) = checksum_field_mut(&mut c, name) {
            *slot = Some(v.clone());
        }
    }
    c
}

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

/// The entity tag of a multipart object: the MD5 of the parts' MD5s, then
/// `-` and the number of parts (what S3 gives, and what clients expect).
fn multipart_etag(parts: &[DonePart]) -> S3Result<String> {
    let mut md5 = Md5::new();
    for p in parts {
        let bin = hex::decode(&p.etag)
            .ok()
            .filter(|b| b.len() == 16)
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "part {} has entity tag {:?}, which this server did not give",
                    p.number,
                    p.etag
                )
            })?;
        md5.update(&bin);
    }
    Ok(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
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

impl Gateway {
    /// S3's size rules for a completion: every part it names but the last
    /// is at least [`MIN_PART_SIZE`] (EntityTooSmall), and the object is at
    /// most the size limit (EntityTooLarge). The sizes are the uploaded
    /// parts'; a part named with another entity tag is left for the
    /// completion to refuse (the tag is the part's MD5, so a part that
    /// passes here with its tag is the part completed).
    async fn check_part_sizes(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[DonePart],
    ) -> S3Result<()> {
        let (b, k, u) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let uploaded = self
            .run(move |s| {
                let mut all = BTreeMap::new();
                let mut after = 0;
                loop {
                    let page = s.objects().list_parts(&b, &k, &u, after, 1000)?;
                    for p in page.parts {
                        all.insert(p.number, (p.size, p.etag));
                    }
                    match page.next_part_number_marker {
                        Some(n) if page.is_truncated => after = n,
                        _ => return Ok(all),
                    }
                }
            })
            .await?;
        let mut total = 0u64;
        for (i, p) in parts.iter().enumerate() {
            let Some((size, tag)) = uploaded.get(&p.number) else {
                continue;
            };
            if tag.trim_matches('"') != p.etag.trim_matches('"') {
                continue;
            }
            if i + 1 < parts.len() && *size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "part {} is {size} bytes; every part but the last must be at least {MIN_PART_SIZE}",
                    p.number
                ));
            }
            total += size;
        }
        if total > self.limits.max {
            return Err(s3_error!(
                EntityTooLarge,
                "the object would be {total} bytes, more than this server accepts ({} bytes)",
                self.limits.max
            ));
        }
        Ok(())
    }
}

/// S3's smallest part, but for the last one.
const MIN_PART_SIZE: u64 = 5 << 20;

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
        if let Some(cond) = &input.if_none_match {
            if cond.is_any() {
                let (b, k) = (input.bucket.clone(), input.key.clone());
                if self.run(move |s| s.objects().head(&b, &k)).await?.is_some() {
                    return Err(s3_error!(PreconditionFailed, "the object exists"));
                }
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
        self.run(move |s| s.objects().put_staged(&b, &k, staged, meta))
            .await?;
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
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let max = clamp(input.max_keys, MAX_LIST_KEYS);
        let (contents, prefixes, next) = if self.is_registry(&input.bucket) {
            let after = input
                .continuation_token
                .clone()
                .or_else(|| input.start_after.clone());
            let (p, d) = (prefix.clone(), delimiter.clone());
            let page = self
                .run(move |s| registry_bucket::list(s, &p, &d, after.as_deref(), max))
                .await?;
            (
                page.entries.iter().map(registry_object).collect::<Vec<_>>(),
                page.prefixes,
                page.next,
            )
        } else {
            let q = ListQuery {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                start_after: input.start_after.clone(),
                continuation_token: input.continuation_token.clone(),
                max_keys: Some(max),
            };
            let b = input.bucket.clone();
            let page = self.run(move |s| s.objects().list(&b, &q)).await?;
            (
                page.objects.iter().map(object_of).collect(),
                page.common_prefixes,
                page.next_continuation_token,
            )
        };
        let count = (contents.len() + prefixes.len()) as i32;
        // Keys go back percent-encoded when the client asks (boto3 always
        // does, and decodes them: a raw `+` or `%` would come back changed).
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let contents = contents
            .into_iter()
            .map(|mut o| {
                o.key = o.key.map(enc);
                o
            })
            .collect();
        let prefixes: Vec<String> = prefixes.into_iter().map(enc).collect();
        let prefix = enc(prefix);
        let delimiter = enc(delimiter);
        let start_after = input.start_after.map(enc);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(prefix),
            delimiter: (!delimiter.is_empty()).then_some(delimiter),
            max_keys: Some(max as i32),
            key_count: Some(count),
            is_truncated: Some(next.is_some()),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after,
            encoding_type: input.encoding_type,
            contents: Some(contents),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        // Version 1 of the listing: a marker (the last key of the previous
        // page) instead of a continuation token.
        let url = req
            .input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let marker = req
            .input
            .marker
            .clone()
            .map(|m| if url { url_encode(&m) } else { m });
        let v2 = req.map_input(|i| ListObjectsV2Input {
            bucket: i.bucket,
            delimiter: i.delimiter,
            encoding_type: i.encoding_type,
            max_keys: i.max_keys,
            prefix: i.prefix,
            start_after: i.marker,
            ..Default::default()
        });
        let out = self.list_objects_v2(v2).await?.output;
        let contents = out.contents.unwrap_or_default();
        let prefixes = out.common_prefixes.unwrap_or_default();
        let truncated = out.is_truncated.unwrap_or(false);
        // The next marker: the greatest key or prefix on this page.
        let last_key = contents.last().and_then(|o| o.key.clone());
        let last_prefix = prefixes.last().and_then(|p| p.prefix.clone());
        let next_marker = truncated.then(|| last_key.max(last_prefix)).flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: out.name,
            prefix: out.prefix,
            delimiter: out.delimiter,
            marker,
            max_keys: out.max_keys,
            is_truncated: Some(truncated),
            next_marker,
            encoding_type: out.encoding_type,
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let (b, k) = (input.bucket.clone(), input.key.clone());
        let meta = ObjectMeta {
            content_type: input.content_type.map(|c| c.to_string()),
            metadata: user_metadata(input.metadata),
            headers: standard_headers(
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
            ),
            ..Default::default()
        };
        let id = self
            .run(move |s| s.objects().create_multipart(&b, &k, meta))
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let number = part_number(input.part_number)?;
        // Refuse an unknown upload before reading its body.
        let (b, k, u) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        self.run(move |s| s.objects().list_parts(&b, &k, &u, 0, 0))
            .await?;
        let got = receive_upload!(self, input, req.trailing_headers).await?;
        let meta = PartMeta {
            etag: got.md5_hex.clone(),
            checksums: checksum_map(&got.checksums),
        };
        let (b, k, u, staged) = (input.bucket, input.key, input.upload_id, got.staged);
        self.run(move |s| {
            s.objects()
                .upload_part_staged(&b, &k, &u, number, staged, meta)
        })
        .await?;
        Ok(S3Response::new(with_checksums!(
            got.checksums,
            UploadPartOutput {
                e_tag: Some(etag(&got.md5_hex)),
            }
        )))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let number = part_number(input.part_number)?;
        let CopySource::Bucket {
            bucket: from_bucket,
            key: from_key,
            ..
        } = input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket/key copy sources are supported"
            ));
        };
        let src = self.find(&from_bucket, &from_key).await?;
        let range = match &input.copy_source_range {
            None => 0..src.size,
            Some(r) => Range::parse(r)
                .ok()
                .and_then(|r| r.check(src.size).ok())
                .ok_or_else(|| s3_error!(InvalidRange, "copy source range {r:?} is not valid"))?,
        };
        let (b, k, u, blob) = (input.bucket, input.key, input.upload_id, src.blob);
        let _permit = self
            .uploads
            .acquire()
            .await
            .map_err(|_| s3_error!(ServiceUnavailable, "the server is shutting down"))?;
        // The range's bytes become the part's blob: they are read (and
        // verified), hashed for the part's entity tag, and deduplicated
        // against the source's chunks as they are written.
        let part = self
            .run(move |s| {
                use std::io::{Read, Seek, SeekFrom};
                let mut r = s.blob_reader(&blob)?;
                let io = |e| from_io("copy source", e);
                r.seek(SeekFrom::Start(range.start)).map_err(io)?;
                let mut md5 = Md5::new();
                let mut w = s.blob_writer();
                let mut left = range.end - range.start;
                let mut buf = vec![0u8; 1 << 20];
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    r.read_exact(&mut buf[..n]).map_err(io)?;
                    md5.update(&buf[..n]);
                    std::io::Write::write_all(&mut w, &buf[..n]).map_err(io)?;
                    left -= n as u64;
                }
                let staged = w.stage()?;
                let meta = PartMeta {
                    etag: hex::encode(md5.finalize()),
                    checksums: BTreeMap::new(),
                };
                s.objects()
                    .upload_part_staged(&b, &k, &u, number, staged, meta)
            })
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(timestamp(part.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let after = input.part_number_marker.map_or(0, |m| m.max(0) as u32);
        let max = clamp(input.max_parts, 1000);
        let (b, k, u) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let page = self
            .run(move |s| s.objects().list_parts(&b, &k, &u, after, max))
            .await?;
        let parts = page
            .parts
            .iter()
            .map(|p| {
                with_checksums!(
                    checksum_of(&p.checksums),
                    Part {
                        part_number: Some(p.number as i32),
                        e_tag: Some(etag(&p.etag)),
                        size: Some(p.size as i64),
                        last_modified: Some(timestamp(p.modified_ms)),
                    }
                )
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: page.next_part_number_marker.map(|n| n as i32),
            is_truncated: Some(page.is_truncated),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        if input.delimiter.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(s3_error!(
                NotImplemented,
                "listing multipart uploads with a delimiter is not supported"
            ));
        }
        let max = clamp(input.max_uploads, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let (b, km, um) = (
            input.bucket.clone(),
            input.key_marker.clone(),
            input.upload_id_marker.clone(),
        );
        let page = self
            .run(move |s| {
                let marker = km.as_deref().map(|k| (k, um.as_deref()));
                s.objects().list_uploads(&b, &prefix, marker, max)
            })
            .await?;
        let uploads = page
            .uploads
            .iter()
            .map(|u| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(u.upload_id.clone()),
                initiated: Some(timestamp(u.created_ms)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        let (next_key, next_id) = page.next_marker.unzip();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: Some(max as i32),
            is_truncated: Some(page.is_truncated),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let (b, k, u) = (input.bucket, input.key, input.upload_id);
        self.run(move |s| s.objects().abort_multipart(&b, &k, &u))
            .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        self.writable(&input.bucket)?;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if listed.len() > MAX_PARTS as usize {
            return Err(s3_error!(
                MalformedXML,
                "a completion lists at most {MAX_PARTS} parts"
            ));
        }
        let parts = listed
            .into_iter()
            .map(|p| {
                let number = part_number(p.part_number.unwrap_or(0))?;
                let tag = p
                    .e_tag
                    .map(|e| e.value().to_owned())
                    .ok_or_else(|| s3_error!(InvalidPart, "part {number} has no entity tag"))?;
                Ok(DonePart { number, etag: tag })
            })
            .collect::<S3Result<Vec<_>>>()?;
        let tag = multipart_etag(&parts)?;
        self.check_part_sizes(&input.bucket, &input.key, &input.upload_id, &parts)
            .await?;
        let (b, k, u) = (input.bucket.clone(), input.key.clone(), input.upload_id);
        let t = tag.clone();
        let o = self
            .run(move |s| {
                s.objects()
                    .complete_multipart(&b, &k, &u, &parts, &t, BTreeMap::new())
            })
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&o.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }
}

/// `s` percent-encoded as S3 does for `encoding-type=url`: every byte but
/// the unreserved characters and `/`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A part number as the engine takes it (1..=[`MAX_PARTS`]).
fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "part number {n} is not between 1 and {MAX_PARTS}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_entity_tag_is_the_md5_of_the_part_md5s() {
        // Two parts whose MD5s are known: "a" and "b".
        let a = hex::encode(Md5::checksum(b"a"));
        let b = hex::encode(Md5::checksum(b"b"));
        let mut both = hex::decode(&a).unwrap();
        both.extend(hex::decode(&b).unwrap());
        let want = format!("{}-2", hex::encode(Md5::checksum(&both)));
        let parts = [
            DonePart { number: 1, etag: a },
            DonePart { number: 2, etag: b },
        ];
        assert_eq!(multipart_etag(&parts).unwrap(), want);
        let bad = [DonePart {
            number: 1,
            etag: "not-an-md5".into(),
        }];
        assert_eq!(
            *multipart_etag(&bad).unwrap_err().code(),
            s3s::S3ErrorCode::InvalidPart
        );
    }

    #[test]
    fn checksums_compare_only_what_the_client_sent() {
        let got = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            checksum_sha256: Some("x".into()),
            ..Default::default()
        };
        let mut want = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            ..Default::default()
        };
        assert_eq!(mismatch(&got, &want), None);
        want.checksum_sha256 = Some("y".into());
        assert_eq!(mismatch(&got, &want), Some("SHA256"));
        want.checksum_sha256 = None;
        want.checksum_crc64nvme = Some("z".into());
        assert_eq!(mismatch(&got, &want), Some("CRC64NVME"));
    }

    #[test]
    fn content_md5_must_be_sixteen_bytes_of_base64() {
        assert_eq!(
            decode_md5("XUFAKrxLKna5cZ2REBfFkg==").unwrap(),
            "5d41402abc4b2a76b9719d911017c592" // MD5("hello")
        );
        for bad in ["", "not base64!", "aGVsbG8="] {
            assert_eq!(
                *decode_md5(bad).unwrap_err().code(),
                s3s::S3ErrorCode::InvalidDigest
            );
        }
    }

    #[test]
    fn url_encoding_keeps_only_unreserved_characters_and_slashes() {
        assert_eq!(url_encode("a/b c+d%e"), "a/b%20c%2Bd%25e");
        assert_eq!(url_encode("ü"), "%C3%BC");
        assert_eq!(url_encode("A-Z_0.9~"), "A-Z_0.9~");
    }

    #[test]
    fn part_numbers_outside_one_to_ten_thousand_are_refused() {
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        for bad in [0, -1, 10_001] {
            assert!(part_number(bad).is_err(), "{bad}");
        }
    }
}
