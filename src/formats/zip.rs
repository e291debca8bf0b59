//! Zip archives (PyTorch `torch.save`, Keras 3 `.keras`): the names of the
//! entries whose local headers lie within the bytes given, walked from offset
//! 0 (the central directory at the end of the file is never read).
//!
//! Limits: at most [`MAX_ENTRIES`] names; zip64 sizes are read from the
//! `0x0001` extra field; an entry whose sizes follow its data (a data
//! descriptor with a zero size in the header) ends the walk, since the next
//! header cannot be located without decompressing.

use super::bytes::{read_array, u16_le, u32_le};

/// The most entry names read.
pub(super) const MAX_ENTRIES: usize = 256;

/// A local file header's signature.
pub(super) const ZIP_LOCAL: &[u8] = b"PK\x03\x04";

/// Names of the zip entries whose local headers lie within `head`.
pub(super) fn zip_entry_names(head: &[u8]) -> Vec<&[u8]> {
    let mut names = Vec::new();
    let mut p: usize = 0;
    while names.len() < MAX_ENTRIES {
        if head.get(p..).is_none_or(|t| !t.starts_with(ZIP_LOCAL)) {
            break;
        }
        let (flags, csize, n, e) = match (
            u16_le(head, p + 6),
            u32_le(head, p + 18),
            u16_le(head, p + 26),
            u16_le(head, p + 28),
        ) {
            (Some(f), Some(c), Some(n), Some(e)) => (f, c, usize::from(n), usize::from(e)),
            _ => break,
        };
        let name_start = p + 30;
        let name = match head.get(name_start..name_start + n) {
            Some(name) => name,
            None => break,
        };
        names.push(name);
        let extra = match head.get(name_start + n..name_start + n + e) {
            Some(x) => x,
            None => break,
        };
        let mut size = u64::from(csize);
        if csize == u32::MAX {
            // Zip64: the real sizes are in the 0x0001 extra field.
            match zip64_compressed_size(extra) {
                Some(s) => size = s,
                None => break,
            }
        }
        let has_descriptor = flags & 0x0008 != 0;
        if has_descriptor && size == 0 {
            // Sizes follow the data; the next header cannot be located.
            break;
        }
        let data_start = (name_start + n + e) as u64;
        let mut next = match data_start.checked_add(size) {
            Some(x) if x <= head.len() as u64 => x as usize,
            _ => break,
        };
        if has_descriptor {
            // Optional signature, crc32, compressed and uncompressed sizes.
            next += if head
                .get(next..)
                .is_some_and(|t| t.starts_with(b"PK\x07\x08"))
            {
                16
            } else {
                12
            };
        }
        p = next;
    }
    names
}

fn zip64_compressed_size(extra: &[u8]) -> Option<u64> {
    let mut i = 0usize;
    while i + 4 <= extra.len() {
        let id = u16_le(extra, i)?;
        let size = usize::from(u16_le(extra, i + 2)?);
        if id == 0x0001 {
            // Uncompressed size, then compressed size.
            return read_array::<8>(extra, i + 12).map(u64::from_le_bytes);
        }
        i += 4 + size;
    }
    None
}
