//! ONNX `ModelProto` (protobuf): a walk over the first top-level fields.
//! Limits: `ir_version` 1–20 first, at most 64 fields walked, only the field
//! numbers and wire types `ModelProto` defines.

use super::bytes::varint;

/// How much of a `ModelProto` the bytes show.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OnnxCheck {
    /// Not a plausible ModelProto start.
    No,
    /// `ir_version` then a valid field: enough together with a `.onnx` name.
    Weak,
    /// A fully parsed printable `producer_name` and more valid fields.
    Strong,
}

pub(super) fn onnx_check(head: &[u8]) -> OnnxCheck {
    // Field 1 (ir_version, varint) comes first in every writer.
    if head.first() != Some(&0x08) {
        return OnnxCheck::No;
    }
    let mut i = 1usize;
    match varint(head, &mut i) {
        Some(v) if (1..=20).contains(&v) => {}
        _ => return OnnxCheck::No,
    }
    let after_version = i;
    let mut fields = 1usize;
    let mut producer = false;
    let mut structural = false; // graph (7) or opset_import (8)
    while i < head.len() && fields < 64 {
        let tag = match varint(head, &mut i) {
            Some(t) => t,
            None => break,
        };
        let (field, wire) = (tag >> 3, tag & 7);
        let known = matches!(
            (field, wire),
            (2..=4, 2) | (5, 0) | (6..=8, 2) | (14, 2) | (20, 2) | (25, 2)
        );
        if !known {
            return if fields >= 2 {
                OnnxCheck::Weak
            } else {
                OnnxCheck::No
            };
        }
        fields += 1;
        if wire == 0 {
            if varint(head, &mut i).is_none() {
                break;
            }
            continue;
        }
        let n = match varint(head, &mut i).and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => break,
        };
        let end = i.saturating_add(n);
        if matches!(field, 7 | 8) {
            structural = true;
        }
        if field == 2 {
            match head.get(i..end) {
                Some(s)
                    if !s.is_empty()
                        && std::str::from_utf8(s)
                            .is_ok_and(|t| !t.chars().any(char::is_control)) =>
                {
                    producer = true
                }
                _ => return OnnxCheck::Weak,
            }
        }
        if end > head.len() {
            break;
        }
        i = end;
    }
    if producer && structural && fields >= 3 {
        OnnxCheck::Strong
    } else if fields >= 2 || after_version == head.len() {
        OnnxCheck::Weak
    } else {
        OnnxCheck::No
    }
}
