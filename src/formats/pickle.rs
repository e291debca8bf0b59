//! Python pickles (legacy `torch.save`, joblib, fastai, scikit-learn): a scan
//! of the first opcodes, never an unpickling. Also the compressed-stream
//! magics joblib writes.
//!
//! Limits: at most 32 opcodes are walked; a line argument (protocol 0/1
//! text opcodes) must end within 512 bytes; a counted argument or FRAME may
//! not claim more bytes than the file holds; protocols 0–5 only.

use super::bytes::{has_suffix_ci, looks_like_text, read_array, strip_suffix_ci};

/// `pickle.dump(0x1950a86a20f9469cfc6c, protocol=2)`: protocol 2, LONG1 of 10 bytes.
pub(super) const TORCH_LEGACY_MAGIC: &[u8] =
    b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// How an opcode's argument is encoded.
enum PickleArg {
    /// No argument.
    NoArg,
    Fixed(usize),
    /// A little-endian length of this many bytes, then that many bytes.
    Counted(usize),
    /// This many newline-terminated ASCII lines.
    Lines(usize),
}

/// The argument encoding of every opcode defined by pickle protocols 0–5.
fn pickle_arg(op: u8) -> Option<PickleArg> {
    use PickleArg::*;
    Some(match op {
        b'('
        | b'.'
        | b'0'
        | b'1'
        | b'2'
        | b'N'
        | b'Q'
        | b'R'
        | b'a'
        | b'b'
        | b'd'
        | b'}'
        | b'e'
        | b'l'
        | b']'
        | b'o'
        | b's'
        | b't'
        | b')'
        | b'u'
        | 0x81
        | 0x85..=0x89
        | 0x8f..=0x94
        | 0x97
        | 0x98 => NoArg,
        b'K' | b'h' | b'q' | 0x80 | 0x82 => Fixed(1),
        b'M' | 0x83 => Fixed(2),
        b'J' | b'j' | b'r' | 0x84 => Fixed(4),
        b'G' | 0x95 => Fixed(8),
        b'U' | b'C' | 0x8c | 0x8a => Counted(1),
        b'T' | b'X' | b'B' | 0x8b => Counted(4),
        0x8d | 0x8e | 0x96 => Counted(8),
        b'F' | b'I' | b'L' | b'P' | b'S' | b'V' | b'g' | b'p' => Lines(1),
        b'c' | b'i' => Lines(2),
        _ => return None,
    })
}

/// Walks the first opcodes of a pickle starting at `start`: every opcode must
/// exist and its argument must be well formed, up to STOP, the end of `head`,
/// or 32 opcodes. Nothing is interpreted.
pub(super) fn pickle_walk_ok(head: &[u8], start: usize, len: u64) -> bool {
    let mut i = start;
    for _ in 0..32 {
        let Some(&op) = head.get(i) else {
            return true;
        };
        i += 1;
        let Some(arg) = pickle_arg(op) else {
            return false;
        };
        match arg {
            PickleArg::NoArg => {
                if op == b'.' {
                    return true;
                }
            }
            PickleArg::Fixed(n) => {
                if op == 0x95 {
                    // FRAME: the frame must fit in the file.
                    match read_array::<8>(head, i).map(u64::from_le_bytes) {
                        Some(f) if f > len.saturating_sub(i as u64 + 8) => return false,
                        Some(_) => {}
                        None => return true,
                    }
                }
                if op == 0x80 && head.get(i).is_some_and(|&p| p > 5) {
                    return false;
                }
                i += n;
            }
            PickleArg::Counted(w) => {
                let Some(bytes) = head.get(i..i + w) else {
                    return true;
                };
                let n = bytes
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                if n > len {
                    return false;
                }
                i = match usize::try_from(n).ok().and_then(|n| (i + w).checked_add(n)) {
                    Some(next) => next,
                    None => return true,
                };
            }
            PickleArg::Lines(k) => {
                for _ in 0..k {
                    let rest = head.get(i..).unwrap_or(&[]);
                    let window = rest.get(..rest.len().min(512)).unwrap_or(rest);
                    match window.iter().position(|&b| b == b'\n') {
                        Some(nl) => {
                            if window.iter().take(nl).any(|&b| !(0x20..0x7f).contains(&b)) {
                                return false;
                            }
                            i += nl + 1;
                        }
                        None => return rest.len() < 512 && looks_like_text(rest, true),
                    }
                }
            }
        }
    }
    true
}

pub(super) fn is_pickle_v2plus(head: &[u8], len: u64) -> bool {
    // PROTO opcode, protocol 2..=5, then well-formed opcodes. The smallest
    // pickle (`PROTO n; NONE; STOP`) is four bytes.
    let (Some(&0x80), Some(&proto), Some(_)) = (head.first(), head.get(1), head.get(2)) else {
        return false;
    };
    (2..=5).contains(&proto) && len >= 4 && pickle_walk_ok(head, 2, len)
}

/// zlib, gzip, bzip2, xz, lzma-alone, lz4-frame, or old joblib "ZF" streams.
pub(super) fn is_compressed_stream(head: &[u8]) -> bool {
    let zlib = match (head.first(), head.get(1)) {
        (Some(&0x78), Some(&flg)) => {
            (0x7800u16 | u16::from(flg)).is_multiple_of(31) && flg & 0x20 == 0
        }
        _ => false,
    };
    zlib || head.starts_with(b"\x1f\x8b\x08")
        || (head.starts_with(b"BZh") && head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)))
        || head.starts_with(b"\xfd7zXZ\x00")
        || head.starts_with(b"\x5d\x00\x00")
        || head.starts_with(b"\x04\x22\x4d\x18")
        || head.starts_with(b"ZF0x")
}

/// The name without one trailing compression extension (joblib appends them).
pub(super) fn strip_compression_ext(name: &str) -> &str {
    [".z", ".gz", ".bz2", ".xz", ".lzma", ".lz4"]
        .iter()
        .find_map(|x| strip_suffix_ci(name, x))
        .unwrap_or(name)
}

pub(super) fn joblib_name(name: &str) -> bool {
    let base = strip_compression_ext(name);
    has_suffix_ci(base, ".joblib") || has_suffix_ci(base, ".jbl")
}

pub(super) fn pickle_like_name(name: &str) -> bool {
    let base = strip_compression_ext(name);
    joblib_name(name) || has_suffix_ci(base, ".pkl") || has_suffix_ci(base, ".pickle")
}
