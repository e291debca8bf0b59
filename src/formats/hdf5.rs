//! HDF5 (Keras `.h5`, legacy `.keras`, `.weights.h5`): the 8-byte format
//! signature, at offset 0 or after a user block (512, 1024, 2048, … bytes).
//! Limits: only the signature is checked; a user block is looked for within
//! the bytes given (detection's [`HEAD_LEN`](super::detect::HEAD_LEN)).

/// The HDF5 superblock signature.
pub(super) const HDF5_SIG: &[u8] = b"\x89HDF\r\n\x1a\n";
pub(super) fn hdf5_after_userblock(head: &[u8]) -> bool {
    // A user block shifts the superblock to 512, 1024, 2048, … bytes.
    let mut off: usize = 512;
    while off < head.len() {
        if head.get(off..).is_some_and(|t| t.starts_with(HDF5_SIG)) {
            return true;
        }
        off = match off.checked_mul(2) {
            Some(o) => o,
            None => break,
        };
    }
    false
}
