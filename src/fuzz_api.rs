//! Entry points for the fuzz targets in `fuzz/` (feature `__fuzz`, off by
//! default, not part of the API). Each function feeds hostile bytes to one
//! decoder and, when it accepts them, checks that encoding the result and
//! decoding again gives the same value. A violated invariant panics, which
//! is what the fuzzer looks for; a rejected input is fine.

use crate::meta::{keys, records};
use crate::pack::{PackHeader, RecordHeader};
use crate::registry::records as reg;

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
        assert_eq!(
            &b[..],
            &data[..b.len()],
            "accepted header must re-encode to its own bytes"
        );
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
    postcard_round_trip::<records::StatsRecord>(data);
    postcard_round_trip::<reg::ModelRecord>(data);
    postcard_round_trip::<reg::VersionRecord>(data);
    postcard_round_trip::<reg::ExperimentRecord>(data);
    postcard_round_trip::<reg::ArtifactRecord>(data);
    postcard_round_trip::<reg::ConsoleRecord>(data);
}

/// A postcard record that decodes must re-encode and decode to itself.
fn postcard_round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug + PartialEq,
{
    if let Ok(v) = records::decode_postcard::<T>("fuzz", data) {
        let again = records::decode_postcard::<T>("fuzz", &records::encode_postcard(&v)).unwrap();
        // NaN metadata values are not equal to themselves; compare encodings then.
        if again != v {
            assert_eq!(
                records::encode_postcard(&again),
                records::encode_postcard(&v)
            );
        }
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
}
