//! A read-only store whose view of the metadata is older than the writer's
//! compaction: the pack its index names is gone, and the read catches up
//! and looks again instead of failing.

use std::io::Read;

use crate::test_support::noise;
use crate::{GcOptions, Store};

fn read_all(store: &Store, id: &crate::BlobId) -> crate::Result<Vec<u8>> {
    let mut out = Vec::new();
    store
        .blob_reader(id)?
        .read_to_end(&mut out)
        .map_err(|e| crate::Error::from_io("<blob reader>", e))?;
    Ok(out)
}

#[test]
fn a_stale_reader_finds_the_pack_gone_catches_up_and_reads_the_moved_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let writer = Store::options().pack_size(1 << 20).open(&dir).unwrap();
    let x = noise(20, 1_200_000);
    let y = noise(21, 1_200_000);
    let blob_x = writer.put_blob(&x[..]).unwrap();
    let blob_y = writer.put_blob(&y[..]).unwrap();

    let reader = Store::open_read_only(&dir).unwrap();
    let meta = reader.inner.chunks().meta();
    // The reader's view stays as it is now until it catches up itself.
    meta.set_auto_catch_up(false);
    let before = meta.generation();

    writer.release_blob(&blob_y).unwrap();
    let report = writer.gc(&GcOptions::new().compact_below(0.9)).unwrap();
    assert!(report.packs_compacted > 0, "nothing compacted: {report:?}");

    // The stale view still lists y and places x's chunks in a deleted pack.
    assert!(reader.blob_info(&blob_y).unwrap().is_some());
    assert_eq!(meta.generation(), before, "the reader caught up early");
    let got = read_all(&reader, &blob_x).expect("the stale reader's read of x");
    assert!(got == x, "the stale reader read other bytes");
    assert!(
        meta.generation() > before,
        "the read succeeded without catching up: the test did not reach a gone pack"
    );
    // Having caught up, it sees the writer's present.
    assert!(reader.blob_info(&blob_y).unwrap().is_none());
}
