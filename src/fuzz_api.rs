//! Entry points for the fuzz targets in `fuzz/` (feature `__fuzz`, off by
//! default, not part of the API). Each function feeds hostile bytes to one
//! decoder and, when it accepts them, checks that encoding the result and
//! decoding again gives the same value. A violated invariant panics, which
//! is what the fuzzer looks for; a rejected input is fine.

use crate::meta::registry_records as reg;
use crate::meta::{keys, records};
use crate::pack::{PackHeader, RecordHeader};
use crate::query::{Value, MAX_VALUE_DEPTH};

/// A bundle's framing: whatever the reader accepts whole (the trailer
/// checked) writes back, frame by frame, to the same bytes.
pub fn bundle(data: &[u8]) {
    use crate::archive::bundle::{BundleReader, BundleWriter};
    let Ok(mut r) = BundleReader::new(data) else {
        return;
    };
    let mut frames = Vec::new();
    loop {
        match r.next() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let mut w = BundleWriter::new(Vec::new()).unwrap();
    for f in &frames {
        w.frame(f.kind, &[&f.payload]).unwrap();
    }
    let (out, len) = w.finish().unwrap();
    assert_eq!(out, data);
    assert_eq!(len, data.len() as u64);
}

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
        // An accepted entry never asks a reader for more than the format's
        // largest record, nor for bytes past the end of a u64 offset.
        assert!(l.raw_len >= 1 && l.raw_len <= crate::pack::MAX_RAW_CHUNK);
        assert!(l.stored_len <= crate::pack::MAX_STORED_CHUNK);
        assert!(l.offset >= crate::pack::PACK_HEADER_LEN as u64);
        assert!(l
            .offset
            .checked_add(crate::pack::RECORD_HEADER_LEN as u64 + u64::from(l.stored_len))
            .is_some());
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
    // A typed value on its own: decoding one nested too deep is an error,
    // never a stack overflow; one accepted is within the limit.
    if let Ok(v) = records::decode_postcard::<Value>("fuzz", data) {
        assert!(v.depth() <= MAX_VALUE_DEPTH);
    }
    postcard_round_trip::<Value>(data);
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
