//! Entry points for the fuzz targets in `fuzz/` (feature `__fuzz`, off by
//! default, not part of the API). Each function feeds hostile bytes to one
//! decoder and, when it accepts them, checks that encoding the result and
//! decoding again gives the same value. A violated invariant panics, which
//! is what the fuzzer looks for; a rejected input is fine.

use crate::meta::{keys, records};
use crate::pack::{PackHeader, RecordHeader};

/// Pack file header.
pub fn pack_header(data: &[u8]) {
    if let Ok(h) = PackHeader::decode(data, "fuzz") {
        assert_eq!(PackHeader::decode(&h.encode(), "fuzz").unwrap(), h);
    }
}

/// Chunk record header.
pub fn record_header(data: &[u8]) {
    if let Ok(h) = RecordHeader::decode(data, &"fuzz") {
        let b = h.encode();
        assert_eq!(&b[..], &data[..b.len()], "accepted header must re-encode to its own bytes");
    }
}

/// Every fixed and postcard record kind in the metadata database.
pub fn records(data: &[u8]) {
    if let Ok(l) = records::decode_chunk_loc(data) {
        assert_eq!(&records::encode_chunk_loc(&l)[..], data);
    }
    if let Ok(p) = records::decode_pack(data) {
        assert_eq!(&records::encode_pack(&p)[..], data);
    }
    if let Ok(b) = records::decode_blob(data) {
        assert_eq!(&records::encode_blob(&b)[..], data);
    }
    if let Ok(s) = records::decode_segment(data) {
        assert_eq!(records::encode_segment(&s), data);
    }
    if let Ok(v) = records::decode_postcard::<records::VersionRecord>("fuzz", data) {
        let again = records::decode_postcard::<records::VersionRecord>("fuzz", &records::encode_postcard(&v)).unwrap();
        assert_eq!(again, v);
    }
    if let Ok(m) = records::decode_postcard::<records::ModelRecord>("fuzz", data) {
        let again = records::decode_postcard::<records::ModelRecord>("fuzz", &records::encode_postcard(&m)).unwrap();
        assert_eq!(again, m);
    }
    if let Ok(s) = records::decode_postcard::<records::StatsRecord>("fuzz", data) {
        let again = records::decode_postcard::<records::StatsRecord>("fuzz", &records::encode_postcard(&s)).unwrap();
        assert_eq!(again, s);
    }
}

/// RocksDB key codecs.
pub fn keys(data: &[u8]) {
    if let Some((m, o)) = keys::parse_segment(data) {
        assert_eq!(&keys::segment(m, o)[..], data);
    }
    if let Some(p) = keys::parse_pack(data) {
        assert_eq!(&keys::pack(p)[..], data);
    }
    if let Some((name, v)) = keys::parse_version(data) {
        assert_eq!(keys::version(name, v), data);
    }
}
