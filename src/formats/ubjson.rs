//! Universal Binary JSON (XGBoost `.ubj`): the first key of the root object.
//! Limits: a key of 1–4096 bytes of UTF-8 without control characters.

use super::bytes::read_array;

fn ubj_int(head: &[u8], i: &mut usize) -> Option<u64> {
    let marker = *head.get(*i)?;
    *i += 1;
    let v: i64 = match marker {
        b'i' => i64::from(i8::from_be_bytes(read_array::<1>(head, *i)?)),
        b'U' => i64::from(u8::from_be_bytes(read_array::<1>(head, *i)?)),
        b'I' => i64::from(i16::from_be_bytes(read_array::<2>(head, *i)?)),
        b'l' => i64::from(i32::from_be_bytes(read_array::<4>(head, *i)?)),
        b'L' => i64::from_be_bytes(read_array::<8>(head, *i)?),
        _ => return None,
    };
    *i += match marker {
        b'i' | b'U' => 1,
        b'I' => 2,
        b'l' => 4,
        _ => 8,
    };
    u64::try_from(v).ok()
}

/// The first key of a UBJSON object at the start of `head`, if it parses.
pub(super) fn ubj_first_key(head: &[u8]) -> Option<&[u8]> {
    if head.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1usize;
    if head.get(i) == Some(&b'$') {
        i += 2;
    }
    if head.get(i) == Some(&b'#') {
        i += 1;
        ubj_int(head, &mut i)?;
    }
    let n = usize::try_from(ubj_int(head, &mut i)?).ok()?;
    if !(1..=4096).contains(&n) {
        return None;
    }
    let key = head.get(i..i + n)?;
    let s = std::str::from_utf8(key).ok()?;
    if s.chars().any(char::is_control) {
        return None;
    }
    Some(key)
}
