//! safetensors: a little-endian `u64` header length `N`, `N` bytes of JSON,
//! then the data section (offsets in the JSON are relative to byte `8 + N`).
//!
//! One parser serves format detection, the tensor-aware cutter and the
//! tensor reader, with one set of limits:
//!
//! * the header is at most [`MAX_HEADER_BYTES`] = 100,000,000 bytes: the
//!   limit of the reference implementation (the `safetensors` crate's
//!   `MAX_HEADER_SIZE`, which the Python package uses too), so no file that
//!   library can load is refused, and none it refuses is parsed here;
//! * the header must begin with `{` (the format's specification: "the
//!   header data MUST begin with a `{` character"; trailing spaces are
//!   allowed, leading whitespace is not);
//! * at most [`MAX_TENSORS`] tensors and a rank of at most [`MAX_RANK`]
//!   (numpy's limit);
//! * each tensor names a unique key, has `begin <= end` and
//!   `end - begin == product(shape) × element size` for every dtype whose
//!   size is known; spans do not overlap and end within the file when its
//!   length is known.
//!
//! Tolerated: gaps between spans, any JSON as `__metadata__`, unknown fields
//! in a tensor entry, unknown dtypes ([`DType::Other`], size unchecked).

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

use super::json::json_root;
use super::tensor::{
    elements, finish, len64, need, DType, Probe, TensorSpan, MAX_HEADER_BYTES, MAX_TENSORS,
};

/// The largest rank accepted for a tensor (numpy's limit).
pub(crate) const MAX_RANK: usize = 64;

/// One tensor entry of the JSON header, before validation.
struct RawTensor {
    name: String,
    info: RawInfo,
}

/// The value of a tensor entry.
#[derive(Deserialize)]
struct RawInfo {
    dtype: String,
    #[serde(deserialize_with = "bounded_shape")]
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The whole JSON header: `__metadata__` is skipped, every other key is
/// a tensor.
struct RawHeader(Vec<RawTensor>);

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a safetensors header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                let mut tensors = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name == "__metadata__" {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    if tensors.len() >= MAX_TENSORS {
                        return Err(de::Error::custom("too many tensors"));
                    }
                    let info = map.next_value::<RawInfo>()?;
                    tensors.push(RawTensor { name, info });
                }
                Ok(RawHeader(tensors))
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

/// A shape array of at most [`MAX_RANK`] non-negative integers.
fn bounded_shape<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    struct ShapeVisitor;
    impl<'de> Visitor<'de> for ShapeVisitor {
        type Value = Vec<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a shape array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut shape = Vec::new();
            while let Some(d) = seq.next_element::<u64>()? {
                if shape.len() >= MAX_RANK {
                    return Err(de::Error::custom("rank too large"));
                }
                shape.push(d);
            }
            Ok(shape)
        }
    }
    d.deserialize_seq(ShapeVisitor)
}

/// Our dtype and the element size in bits (`None`: unknown, unchecked).
fn dtype(name: &str) -> (DType, Option<u64>) {
    match name {
        "F64" => (DType::F64, Some(64)),
        "F32" => (DType::F32, Some(32)),
        "F16" => (DType::F16, Some(16)),
        "BF16" => (DType::BF16, Some(16)),
        "I64" => (DType::I64, Some(64)),
        "I32" => (DType::I32, Some(32)),
        "I16" => (DType::I16, Some(16)),
        "I8" => (DType::I8, Some(8)),
        "U8" => (DType::U8, Some(8)),
        "BOOL" => (DType::Bool, Some(8)),
        "F8_E4M3" | "F8_E5M2" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => (DType::F8, Some(8)),
        "U64" | "C64" => (DType::Other, Some(64)),
        "U32" => (DType::Other, Some(32)),
        "U16" => (DType::Other, Some(16)),
        "F6_E2M3" | "F6_E3M2" => (DType::Other, Some(6)),
        "F4" => (DType::Other, Some(4)),
        _ => (DType::Other, None),
    }
}

/// Parses a safetensors prefix; see [`super::tensor::probe`] for the
/// meaning of `file_len` and the answer.
pub(super) fn probe(prefix: &[u8], file_len: Option<u64>) -> Probe {
    let Some(n) = prefix
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
    else {
        return Probe::NotContainer;
    };
    // The smallest header is `{}`.
    if !(2..=len64(MAX_HEADER_BYTES)).contains(&n) {
        return Probe::NotContainer;
    }
    let Some(header_end) = n.checked_add(8) else {
        return Probe::NotContainer;
    };
    if file_len.is_some_and(|l| header_end > l) {
        return Probe::NotContainer;
    }
    // The format requires the header to begin with `{`.
    if prefix.get(8).is_some_and(|&b| b != b'{') {
        return Probe::NotContainer;
    }
    let Ok(header_end_us) = usize::try_from(header_end) else {
        return Probe::NotContainer;
    };
    let Some(header) = prefix.get(8..header_end_us) else {
        return need(header_end);
    };
    let Ok(RawHeader(raw)) = serde_json::from_slice::<RawHeader>(header) else {
        return Probe::NotContainer;
    };
    let data_start = header_end;
    let mut spans = Vec::with_capacity(raw.len());
    for RawTensor { name, info } in raw {
        let (begin, end) = info.data_offsets;
        if end < begin {
            return Probe::NotContainer;
        }
        let (dtype, bits) = dtype(&info.dtype);
        if let Some(bits) = bits {
            let Some(nbits) = elements(&info.shape).and_then(|e| e.checked_mul(bits)) else {
                return Probe::NotContainer;
            };
            if nbits % 8 != 0 || nbits / 8 != end - begin {
                return Probe::NotContainer;
            }
        }
        let (Some(start), Some(end)) = (data_start.checked_add(begin), data_start.checked_add(end))
        else {
            return Probe::NotContainer;
        };
        spans.push(TensorSpan {
            name,
            dtype,
            shape: info.shape,
            start,
            end,
        });
    }
    finish("safetensors", data_start, spans, file_len)
}

/// Whether `head` (a file's first bytes; the file is `len` bytes long) is a
/// safetensors file, for format detection: [`probe`] accepts it, or its
/// header runs past `head` and the part shown plausibly starts the JSON
/// object (text, `{`, then a key or `}`: [`json_root`] on a truncated head).
pub(super) fn detect(head: &[u8], len: u64) -> bool {
    match probe(head, Some(len)) {
        Probe::Layout(_) => true,
        Probe::NotContainer => false,
        Probe::NeedBytes(_) => {
            // `probe` checked the length and that any byte 8 is `{`; the
            // header shown must be able to continue a JSON object.
            let header = head.get(8..).unwrap_or(&[]);
            header.first() == Some(&b'{') && json_root(header, false) == Some(b'{')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tensor::probe;
    use super::*;

    /// The header limit is the reference library's 100,000,000 bytes (it was
    /// 100 MiB for the cutter, 100,000,000 for detection): a header just
    /// past it is refused even while streaming, one at it is waited for.
    #[test]
    fn header_limit_is_the_reference_one() {
        let mut f = b"\0\0\0\0\0\0\0\0{\"a\":{\"dtype\":\"F32\",\"shape\":[1],".to_vec();
        f[..8].copy_from_slice(&100_000_000u64.to_le_bytes());
        assert_eq!(probe(&f, None), Probe::NeedBytes(100_000_008));
        assert_eq!(probe(&f, Some(200_000_000)), Probe::NeedBytes(100_000_008));
        assert!(detect(&f, 200_000_000));
        for n in [100_000_001u64, 100 * 1024 * 1024] {
            f[..8].copy_from_slice(&n.to_le_bytes());
            assert_eq!(probe(&f, None), Probe::NotContainer, "{n}");
            assert!(!detect(&f, 200_000_000), "{n}");
        }
    }
}
