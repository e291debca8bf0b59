//! Multipart uploads over S3: creation, parts (streamed like a put, or
//! copied from a range of another object), listings, abort, and completion
//! with S3's size rules and its entity tag. Each part is its own staged
//! blob; a completion joins the parts' chunk lists without reading them.

use std::collections::BTreeMap;

use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::{clamp, etag, standard_headers, timestamp, user_metadata, Gateway};
use crate::objects::{CompletedPart as DonePart, ObjectMeta, PartMeta, MAX_PARTS};
use crate::server::checksums::{checksum_map, checksum_of};

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

pub(super) async fn create_multipart_upload(
    g: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    g.writable(&input.bucket)?;
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
    let id = g
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

pub(super) async fn upload_part(
    g: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    g.writable(&input.bucket)?;
    let number = part_number(input.part_number)?;
    // Refuse an unknown upload before reading its body.
    let (b, k, u) = (
        input.bucket.clone(),
        input.key.clone(),
        input.upload_id.clone(),
    );
    g.run(move |s| s.objects().list_parts(&b, &k, &u, 0, 0))
        .await?;
    let got = receive_upload!(g, input, req.trailing_headers).await?;
    let meta = PartMeta {
        etag: got.md5_hex.clone(),
        checksums: checksum_map(&got.checksums),
    };
    let (b, k, u, staged) = (input.bucket, input.key, input.upload_id, got.staged);
    g.run(move |s| {
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

pub(super) async fn upload_part_copy(
    g: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    g.writable(&input.bucket)?;
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
    let src = g.find(&from_bucket, &from_key).await?;
    let range = match &input.copy_source_range {
        None => 0..src.size,
        Some(r) => Range::parse(r)
            .ok()
            .and_then(|r| r.check(src.size).ok())
            .ok_or_else(|| s3_error!(InvalidRange, "copy source range {r:?} is not valid"))?,
    };
    let (b, k, u, blob) = (input.bucket, input.key, input.upload_id, src.blob);
    let _permit = g
        .uploads
        .acquire()
        .await
        .map_err(|_| s3_error!(ServiceUnavailable, "the server is shutting down"))?;
    // The range's bytes become the part's blob: they are read (and
    // verified), hashed for the part's entity tag, and deduplicated
    // against the source's chunks as they are written.
    let part = g
        .run(move |s| {
            use std::io::{Read, Seek, SeekFrom};
            let mut r = s.blob_reader(&blob)?;
            let io = |e| crate::Error::from_io("copy source", e);
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

pub(super) async fn list_parts(
    g: &Gateway,
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
    let page = g
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

pub(super) async fn list_multipart_uploads(
    g: &Gateway,
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
    let page = g
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

pub(super) async fn abort_multipart_upload(
    g: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    g.writable(&input.bucket)?;
    let (b, k, u) = (input.bucket, input.key, input.upload_id);
    g.run(move |s| s.objects().abort_multipart(&b, &k, &u))
        .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn complete_multipart_upload(
    g: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    g.writable(&input.bucket)?;
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
    g.check_part_sizes(&input.bucket, &input.key, &input.upload_id, &parts)
        .await?;
    let (b, k, u) = (input.bucket.clone(), input.key.clone(), input.upload_id);
    let t = tag.clone();
    let o = g
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
    fn part_numbers_outside_one_to_ten_thousand_are_refused() {
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        for bad in [0, -1, 10_001] {
            assert!(part_number(bad).is_err(), "{bad}");
        }
    }
}
