//! The rules bucket names, object keys and what callers say about objects
//! follow. Each refusal is an [`Error::InvalidInput`] naming the value and
//! what is wrong with it.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The longest object key, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;
/// The most user metadata an object keeps: names and values together, in
/// bytes (S3's limit).
pub const MAX_METADATA_BYTES: usize = 2048;
/// The longest entity tag, content type, checksum name or value, in bytes.
pub const MAX_FIELD_LEN: usize = 1024;
/// The most checksums an object or part keeps.
pub const MAX_CHECKSUMS: usize = 8;

/// Checks a bucket name against S3's rules for general-purpose buckets:
/// 3 to 63 characters of lowercase letters, digits, `.` and `-`, starting
/// and ending with a letter or digit, no `..`, not an IPv4 address, none of
/// the reserved prefixes and suffixes.
pub(crate) fn check_bucket(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid("bucket name", name, reason));
    if !(3..=63).contains(&name.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(Error::invalid(
            "bucket name",
            name,
            format!("{c:?} is not allowed: only lowercase letters, digits, '.' and '-'"),
        ));
    }
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return bad("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("must not contain two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not be formatted as an IP address");
    }
    for p in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(p) {
            return Err(Error::invalid(
                "bucket name",
                name,
                format!("must not start with the reserved prefix {p:?}"),
            ));
        }
    }
    for s in ["-s3alias", "--ol-s3", "--x-s3", ".mrap"] {
        if name.ends_with(s) {
            return Err(Error::invalid(
                "bucket name",
                name,
                format!("must not end with the reserved suffix {s:?}"),
            ));
        }
    }
    Ok(())
}

/// Checks an object key: 1 to [`MAX_KEY_LEN`] bytes. Keys are opaque:
/// `/`, `..`, NUL and any other character are just part of the key.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("object key", key, "must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(
            "object key",
            format!("{}…", key.chars().take(64).collect::<String>()),
            format!("{} bytes, the limit is {MAX_KEY_LEN}", key.len()),
        ));
    }
    Ok(())
}

/// Checks one caller-given field (an entity tag, a content type).
pub(crate) fn check_field(what: &'static str, v: &str) -> Result<()> {
    if v.len() > MAX_FIELD_LEN {
        return Err(Error::invalid(
            what,
            format!("{}…", v.chars().take(64).collect::<String>()),
            format!("{} bytes, the limit is {MAX_FIELD_LEN}", v.len()),
        ));
    }
    Ok(())
}

/// Checks user metadata: non-empty names, at most [`MAX_METADATA_BYTES`]
/// in all.
/// Checks user metadata and standard headers, which share one size limit.
pub(crate) fn check_metadata(
    m: &BTreeMap<String, String>,
    headers: &BTreeMap<String, String>,
) -> Result<()> {
    for (name, value) in headers {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::invalid(
                "header",
                name,
                "a header name is lower-case letters, digits and '-'",
            ));
        }
        check_field("header value", value)?;
    }
    let total: usize = m
        .iter()
        .chain(headers)
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if total > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            "user metadata",
            format!("{} entries", m.len()),
            format!(
                "{total} bytes of names and values with the headers, the limit is {MAX_METADATA_BYTES}"
            ),
        ));
    }
    if m.contains_key("") {
        return Err(Error::invalid(
            "user metadata",
            "\"\"",
            "a name must not be empty",
        ));
    }
    Ok(())
}

/// Checks caller-given checksums (algorithm → value).
pub(crate) fn check_checksums(c: &BTreeMap<String, String>) -> Result<()> {
    if c.len() > MAX_CHECKSUMS {
        return Err(Error::invalid(
            "checksums",
            format!("{} entries", c.len()),
            format!("at most {MAX_CHECKSUMS}"),
        ));
    }
    for (k, v) in c {
        check_field("checksum algorithm", k)?;
        check_field("checksum value", v)?;
        if k.is_empty() {
            return Err(Error::invalid("checksum algorithm", k, "must not be empty"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules_and_say_what_is_wrong() {
        for ok in ["abc", "my-bucket.v2", "a1b", &"a".repeat(63)] {
            check_bucket(ok).unwrap();
        }
        for (bad, why) in [
            ("ab", "3 to 63"),
            (&"a".repeat(64)[..], "3 to 63"),
            ("My-bucket", "'M' is not allowed"),
            ("a_b", "'_' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("-ab", "start and end"),
            ("ab.", "start and end"),
            ("a..b", "adjacent periods"),
            ("192.168.1.1", "IP address"),
            ("xn--abc", "reserved prefix"),
            ("abc-s3alias", "reserved suffix"),
            ("a\0b", "is not allowed"),
        ] {
            let e = check_bucket(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
            assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        }
    }

    #[test]
    fn keys_are_opaque_but_bounded() {
        for ok in [
            "../../etc/passwd",
            "a\0b",
            "/",
            " ",
            "é/ü",
            &"k".repeat(MAX_KEY_LEN),
        ] {
            check_key(ok).unwrap();
        }
        assert!(check_key("").unwrap_err().to_string().contains("empty"));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(check_key(&long)
            .unwrap_err()
            .to_string()
            .contains("1025 bytes"));
    }
}
