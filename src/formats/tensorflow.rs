//! TensorFlow formats without a magic number, recognised by name plus a
//! sanity check: checkpoint index tables, checkpoint data shards, and TF.js
//! weight shards.

use super::bytes::{contains_ci, has_suffix_ci, looks_like_text, strip_suffix_ci};

pub(super) fn is_tf_index(name: &str, head: &[u8]) -> bool {
    if !has_suffix_ci(name, ".index") || head.is_empty() || looks_like_text(head, true) {
        return false;
    }
    // The table's first entry is the bundle header under the empty key:
    // shared = 0, unshared = 0, value length, then BundleHeaderProto (field 1).
    let header_entry = head.starts_with(&[0, 0])
        && head.get(2).is_some_and(|&n| n < 0x80)
        && head.get(3) == Some(&0x08);
    header_entry || name.eq_ignore_ascii_case("variables.index") || contains_ci(name, "ckpt")
}

/// `<prefix>.data-NNNNN-of-NNNNN`.
pub(super) fn is_tf_data_name(name: &str) -> bool {
    let Some(pos) = name.rfind(".data-") else {
        return false;
    };
    let Some(rest) = name.get(pos + ".data-".len()..) else {
        return false;
    };
    let Some((a, b)) = rest.split_once("-of-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|c| c.is_ascii_digit());
    pos > 0 && digits(a) && digits(b)
}

/// `group1-shard1of2.bin`, `group1-shard1of2`, or `*shard<N>of<M>.bin`.
pub(super) fn is_tfjs_shard_name(name: &str) -> bool {
    let (stem, has_bin) = match strip_suffix_ci(name, ".bin") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let lower = stem.to_ascii_lowercase();
    let Some(pos) = lower.rfind("shard") else {
        return false;
    };
    let Some(tail) = lower.get(pos + "shard".len()..) else {
        return false;
    };
    let Some((a, b)) = tail.split_once("of") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return false;
    }
    if has_bin {
        return true;
    }
    // Without an extension only the canonical `group<N>-shard…` names.
    lower
        .strip_prefix("group")
        .and_then(|r| r.split_once("-shard"))
        .is_some_and(|(g, _)| digits(g))
}
