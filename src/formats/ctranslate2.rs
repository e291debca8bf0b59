//! CTranslate2 `model.bin`: binary version, spec name and revision, then the
//! first variable's header. Limits: versions 1–10 (version 1 only as
//! `model.bin`), strings of 1–4096 bytes, 1–1,000,000 variables, rank ≤ 8,
//! dtype ≤ 15.

use super::bytes::{u16_le, u32_le};

/// Reads a CTranslate2 string: u16 LE length including a trailing NUL, bytes.
fn ct2_string<'a>(head: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let n = usize::from(u16_le(head, *i)?);
    if !(1..=4096).contains(&n) {
        return None;
    }
    let s = head.get(*i + 2..*i + 2 + n)?;
    let (&last, body) = s.split_last()?;
    if last != 0 || body.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    std::str::from_utf8(body).ok()?;
    *i += 2 + n;
    Some(body)
}

pub(super) fn is_ctranslate2(name: &str, head: &[u8]) -> bool {
    ct2_layout(name, head).is_some()
}

fn ct2_layout(name: &str, head: &[u8]) -> Option<()> {
    // u32 binary version; since version 2: spec name, u32 spec revision; then
    // u32 variable count and the first variable (name, u8 rank, u32 dims,
    // u8 dtype, u32 byte size).
    let version = u32_le(head, 0)?;
    if !(1..=10).contains(&version) {
        return None;
    }
    if version == 1 && !name.eq_ignore_ascii_case("model.bin") {
        return None;
    }
    let mut i = 4usize;
    if version >= 2 {
        let spec = ct2_string(head, &mut i)?;
        if !spec.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            return None;
        }
        let revision = u32_le(head, i)?;
        if revision > 1000 {
            return None;
        }
        i += 4;
    }
    let count = u32_le(head, i)?;
    if !(1..=1_000_000).contains(&count) {
        return None;
    }
    i += 4;
    let var = ct2_string(head, &mut i)?;
    if var.is_empty() {
        return None;
    }
    let rank = *head.get(i)?;
    if rank > 8 {
        return None;
    }
    // The dims, dtype and size must at least fit in the file's head when the
    // head is long enough to show them.
    let after = i + 1 + 4 * usize::from(rank);
    if head.len() >= after + 5 {
        let dtype = *head.get(after)?;
        if dtype > 15 {
            return None;
        }
    }
    Some(())
}
