//! Listing a bucket's objects as S3's ListObjectsV2 does: prefix,
//! delimiter (common prefixes), start-after, continuation tokens and a
//! page size, in key order.
//!
//! The scan seeks to where the page starts (the prefix, or past the
//! start-after key or the token's position) and reads only what the page
//! shows plus one entry to tell whether more follow: a common prefix is
//! one entry, after which the scan seeks past every key under it.

use crate::error::{Error, Result};
use crate::meta::tables::objects;

use super::{names, ObjectInfo, Objects};

/// The most entries (objects and common prefixes) a page holds (S3's).
pub const MAX_LIST_KEYS: usize = 1000;

/// The longest continuation token accepted, in characters.
const MAX_TOKEN_LEN: usize = 2 * (names::MAX_KEY_LEN + 1);

/// What to list (S3's ListObjectsV2 parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// If not empty: keys whose rest after the prefix contains it are
    /// rolled up into one common prefix each, up to and with its first
    /// occurrence.
    pub delimiter: String,
    /// Only keys after this one.
    pub start_after: Option<String>,
    /// Where the previous page ended ([`ListPage::next_continuation_token`]).
    pub continuation_token: Option<String>,
    /// The most entries (objects and common prefixes) to return: at most
    /// [`MAX_LIST_KEYS`] (larger values are lowered to it); `None` is
    /// [`MAX_LIST_KEYS`].
    pub max_keys: Option<usize>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListPage {
    /// The objects, in key order.
    pub objects: Vec<ObjectInfo>,
    /// The common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// When truncated: where the next page starts (opaque).
    pub next_continuation_token: Option<String>,
}

/// The smallest byte string above every string starting with `p`, if any.
fn past_prefix(p: &[u8]) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xFF {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

/// The smallest byte string above `k`.
fn past_key(k: &[u8]) -> Vec<u8> {
    let mut v = k.to_vec();
    v.push(0);
    v
}

fn decode_token(t: &str) -> Result<Vec<u8>> {
    if t.len() > MAX_TOKEN_LEN {
        return Err(Error::invalid(
            "continuation token",
            format!("{}…", t.chars().take(32).collect::<String>()),
            "too long to be one this store gave",
        ));
    }
    hex::decode(t).map_err(|e| {
        Error::invalid(
            "continuation token",
            t,
            format!("not one this store gave ({e})"),
        )
    })
}

impl Objects<'_> {
    /// One page of the objects of `bucket` (see [`ListQuery`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the bucket does not exist;
    /// [`Error::InvalidInput`] for a malformed continuation token; a record
    /// that does not decode is [`Error::Corrupt`].
    pub fn list(&self, bucket: &str, q: &ListQuery) -> Result<ListPage> {
        names::check_bucket(bucket)?;
        let meta = self.core.chunks().meta();
        super::need_bucket(meta, bucket)?;
        let prefix = q.prefix.as_bytes();
        // Where the page starts (inclusive), in key bytes.
        let mut pos = prefix.to_vec();
        if let Some(a) = &q.start_after {
            pos = pos.max(past_key(a.as_bytes()));
        }
        if let Some(t) = &q.continuation_token {
            pos = pos.max(decode_token(t)?);
        }
        let max = q.max_keys.unwrap_or(MAX_LIST_KEYS).min(MAX_LIST_KEYS);
        let delim = q.delimiter.as_bytes();
        let mut page = ListPage::default();
        if max == 0 {
            return Ok(page);
        }
        let mut taken = 0;
        // Where the entry last taken ends: the next page starts there.
        let mut resume: Vec<u8> = Vec::new();
        'seek: loop {
            for item in objects::scan(meta, bucket, &pos) {
                let (key, rec) = item?;
                let k = key.as_bytes();
                if !k.starts_with(prefix) {
                    break 'seek;
                }
                if taken == max {
                    page.is_truncated = true;
                    page.next_continuation_token = Some(hex::encode(&resume));
                    break 'seek;
                }
                taken += 1;
                let rest = &k[prefix.len()..];
                let at = if delim.is_empty() {
                    None
                } else {
                    rest.windows(delim.len()).position(|w| w == delim)
                };
                match at {
                    Some(i) => {
                        let cp = &key[..prefix.len() + i + delim.len()];
                        page.common_prefixes.push(cp.to_owned());
                        match past_prefix(cp.as_bytes()) {
                            Some(next) => {
                                resume.clone_from(&next);
                                pos = next;
                                continue 'seek;
                            }
                            None => break 'seek,
                        }
                    }
                    None => {
                        resume = past_key(k);
                        page.objects.push(ObjectInfo::of(bucket, &key, rec));
                    }
                }
            }
            break;
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_past_keys_and_prefixes() {
        assert_eq!(past_prefix(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(past_prefix(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(past_prefix(&[0xFF, 0xFF]), None);
        assert_eq!(past_key(b"a"), b"a\0".to_vec());
        assert!(decode_token("zz").is_err());
        assert!(decode_token(&"0".repeat(MAX_TOKEN_LEN + 2)).is_err());
        assert_eq!(decode_token(&hex::encode(b"k\0")).unwrap(), b"k\0");
    }
}
