//! FlatBuffer-based formats: TensorFlow Lite (`TFL3` file identifier) and
//! MegEngine dumps (`MGBC`/`MGBS` v1, size-prefixed `mgv2`, `packed_model`).
//! Limits: a root-table offset must lie within the file.

use super::bytes::u32_le;

pub(super) fn is_tflite(head: &[u8], len: u64) -> bool {
    if head.get(4..8) != Some(b"TFL3".as_slice()) {
        return false;
    }
    // FlatBuffer: u32 offset to the root table, which must lie in the file.
    match u32_le(head, 0) {
        Some(root) => root >= 8 && u64::from(root) < len,
        None => false,
    }
}

pub(super) fn is_megengine(head: &[u8], len: u64) -> bool {
    // FlatBuffers v1 dumps: u32 magic "MGBC" (or the older "MGBS") followed by
    // four reserved zero bytes.
    let v1 = matches!(head.get(0..4), Some(b"MGBC") | Some(b"MGBS"))
        && head.get(4..8) == Some([0u8; 4].as_slice());
    // FlatBuffers v2: size-prefixed buffer with file identifier "mgv2".
    let v2 = head.get(8..12) == Some(b"mgv2".as_slice())
        && u32_le(head, 0).is_some_and(|size| u64::from(size) + 4 <= len)
        && u32_le(head, 4).is_some_and(|root| root >= 8);
    // MegEngine Lite packed model.
    let packed = head.starts_with(b"packed_model");
    v1 || v2 || packed
}
