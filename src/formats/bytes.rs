//! Bounds-checked byte and name helpers shared by the format parsers: every
//! read returns `None` instead of panicking past the end of its slice.

pub(super) fn read_array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

pub(super) fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    read_array::<2>(b, at).map(u16::from_le_bytes)
}

pub(super) fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    read_array::<4>(b, at).map(u32::from_le_bytes)
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len().max(1))
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

pub(super) fn skip_json_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Valid UTF-8 (a character cut by the end of a truncated head is allowed)
/// with no control characters other than tab, newline, form feed and CR.
pub(super) fn looks_like_text(b: &[u8], truncated: bool) -> bool {
    let utf8 = match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => truncated && e.error_len().is_none(),
    };
    utf8 && !b
        .iter()
        .any(|&c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | 0x0c)) || c == 0x7f)
}

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(super) fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

pub(super) fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    if !s.is_char_boundary(cut) {
        return None;
    }
    let (stem, tail) = s.split_at(cut);
    tail.eq_ignore_ascii_case(suffix).then_some(stem)
}

pub(super) fn has_suffix_ci(s: &str, suffix: &str) -> bool {
    strip_suffix_ci(s, suffix).is_some()
}

pub(super) fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}
