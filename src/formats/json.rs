//! JSON documents (configs, TF.js `model.json`, XGBoost JSON): whether bytes
//! start one. A complete file must parse (serde_json, whose recursion limit
//! bounds the stack); a truncated head only has to be able to continue one.

use super::bytes::{looks_like_text, skip_json_ws};

/// `{` or `[` if `head` plausibly starts a JSON document: valid UTF-8 without
/// stray control characters, and either the whole file parses or the bytes
/// after the opening bracket can continue one.
pub(super) fn json_root(head: &[u8], complete: bool) -> Option<u8> {
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let i = skip_json_ws(body, 0);
    let root = *body.get(i)?;
    if root != b'{' && root != b'[' {
        return None;
    }
    if !looks_like_text(body, !complete) {
        return None;
    }
    if complete {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
        return Some(root);
    }
    let ok = match body.get(skip_json_ws(body, i + 1)) {
        None => true,
        Some(&c) if root == b'{' => c == b'"' || c == b'}',
        Some(&c) => matches!(
            c,
            b'{' | b'[' | b']' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
        ),
    };
    ok.then_some(root)
}
