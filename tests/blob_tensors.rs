use std::io::Read;

use crate::common::{put, safetensors, temp_store, weights};

#[test]
fn one_tensor_reads_back_by_name() {
    let (_d, store) = temp_store();
    let a = weights(4 * 300_000, 1);
    let b: Vec<u8> = (0..2 * 50_000u32).map(|i| (i % 251) as u8).collect();
    let c = weights(4 * 17, 2);
    let file = safetensors(&[
        ("layer.0.weight", "F32", 300_000, &a),
        ("embed", "F16", 50_000, &b),
        ("bias", "F32", 17, &c),
    ]);
    let id = put(&store, &file);

    let layout = store
        .tensor_layout(&id)
        .unwrap()
        .expect("a safetensors layout");
    assert_eq!(layout.tensors.len(), 3);
    for (name, want) in [("layer.0.weight", &a), ("embed", &b), ("bias", &c)] {
        let (span, mut r) = store.tensor_reader(&id, name).unwrap();
        assert_eq!(span.end - span.start, want.len() as u64, "{name}");
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(&got, want, "{name}");
    }
    let err = store.tensor_reader(&id, "missing").err().unwrap();
    assert!(err.is_not_found(), "{err}");

    // Content that is not a tensor container has no layout.
    let plain = put(&store, &weights(100_000, 3));
    assert!(store.tensor_layout(&plain).unwrap().is_none());
    assert!(store
        .tensor_reader(&plain, "x")
        .err()
        .unwrap()
        .is_not_found());
    let empty = put(&store, b"");
    assert!(store.tensor_layout(&empty).unwrap().is_none());
}
