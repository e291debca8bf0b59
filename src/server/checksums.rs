//! The integrity headers of an upload: Content-MD5, and the
//! `x-amz-checksum-*` values a client sends in headers or in an aws-chunked
//! trailer, checked against what the server computed while the body
//! streamed; and checksums as an object keeps them (algorithm → value).

use std::collections::BTreeMap;

use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{s3_error, S3Result};

/// A Content-MD5 header (base64 of 16 bytes) as hex.
pub(super) fn decode_md5(b64: &str) -> S3Result<String> {
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
pub(super) fn checksum_fields(c: &Checksum) -> [(&'static str, &Option<String>); 5] {
    [
        ("CRC32", &c.checksum_crc32),
        ("CRC32C", &c.checksum_crc32c),
        ("CRC64NVME", &c.checksum_crc64nvme),
        ("SHA1", &c.checksum_sha1),
        ("SHA256", &c.checksum_sha256),
    ]
}

pub(super) fn checksum_field_mut<'a>(
    c: &'a mut Checksum,
    name: &str,
) -> Option<&'a mut Option<String>> {
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
pub(super) fn hasher_for(
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
pub(super) fn from_trailers(into: &mut Checksum, t: &hyper::HeaderMap) -> S3Result<()> {
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
pub(super) fn mismatch(got: &Checksum, expected: &Checksum) -> Option<&'static str> {
    checksum_fields(expected)
        .into_iter()
        .zip(checksum_fields(got))
        .find(|((_, want), (_, have))| want.is_some() && want != have)
        .map(|((name, _), _)| name)
}

/// The checksums as stored with an object: name → value.
pub(super) fn checksum_map(c: &Checksum) -> BTreeMap<String, String> {
    checksum_fields(c)
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n.to_owned(), v)))
        .collect()
}

/// Stored checksums back into S3's fields.
pub(super) fn checksum_of(m: &BTreeMap<String, String>) -> Checksum {
    let mut c = Checksum::default();
    for (name, v) in m {
        if let Some(slot) = checksum_field_mut(&mut c, name) {
            *slot = Some(v.clone());
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
