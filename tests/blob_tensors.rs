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

/// A GGUF v3 file: `kv` metadata pairs (key, type, encoded value) and
/// tensors (name, shape, ggml type, data), each placed at the next multiple
/// of `align` after the previous one, as llama.cpp writes them.
fn gguf(
    align: u64,
    kv: &[(&str, u32, Vec<u8>)],
    tensors: &[(&str, &[u64], u32, &[u8])],
) -> Vec<u8> {
    let string = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    };
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (key, ty, value) in kv {
        string(&mut out, key.as_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(value);
    }
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    for (name, shape, ty, data) in tensors {
        string(&mut out, name.as_bytes());
        out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in *shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + data.len() as u64).next_multiple_of(align);
    }
    let data_start = (out.len() as u64).next_multiple_of(align);
    out.resize(data_start as usize, 0);
    for ((_, _, _, data), off) in tensors.iter().zip(offsets) {
        out.resize((data_start + off) as usize, 0);
        out.extend_from_slice(data);
    }
    out
}

#[test]
fn gguf_tensors_read_back_by_name() {
    use modelvault::DType;
    let (_d, store) = temp_store();
    let embed = weights(4 * 256 * 1000, 4); // F32 [256, 1000]
    let half: Vec<u8> = (0..2 * 30_000u32).map(|i| (i * 7 % 253) as u8).collect(); // F16
    let q8: Vec<u8> = (0..34 * 128u32).map(|i| (i % 241) as u8).collect(); // Q8_0, 4096 values
    let opaque: Vec<u8> = (0..1000u32).map(|i| (i % 199) as u8).collect(); // a type nobody sizes
    let s = |v: &str| {
        let mut b = (v.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(v.as_bytes());
        b
    };
    // An array of two strings, to be skipped on the way to the tensors.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&2u64.to_le_bytes());
    arr.extend(s("<s>"));
    arr.extend(s("</s>"));
    let kv = [
        ("general.architecture", 8, s("llama")),
        ("general.alignment", 4, 64u32.to_le_bytes().to_vec()),
        ("tokenizer.ggml.tokens", 9, arr),
        ("llama.block_count", 4, 1u32.to_le_bytes().to_vec()),
    ];
    let tensors: [(&str, &[u64], u32, &[u8]); 4] = [
        ("token_embd.weight", &[1000, 256], 0, &embed),
        ("blk.0.attn_q.weight", &[30_000], 1, &half),
        ("blk.0.ffn_down.weight", &[128, 32], 8, &q8),
        ("output.opaque", &[1000], 200, &opaque),
    ];
    let file = gguf(64, &kv, &tensors);
    let id = put(&store, &file);

    let layout = store.tensor_layout(&id).unwrap().expect("a GGUF layout");
    assert_eq!(layout.format, "gguf");
    assert_eq!(layout.data_start % 64, 0);
    assert_eq!(layout.tensors.len(), 4);
    let dtypes = [DType::F32, DType::F16, DType::Quantized, DType::Other];
    for ((name, shape, _, want), dtype) in tensors.iter().zip(dtypes) {
        let t = layout
            .find(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(t.dtype, dtype, "{name}");
        assert_eq!(&t.shape, shape, "{name}");
        assert_eq!(t.start % 64, 0, "{name} not aligned");
        let (span, mut r) = store.tensor_reader(&id, name).unwrap();
        assert_eq!(&span, t);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(&got, want, "{name}");
        assert_eq!(&file[span.start as usize..span.end as usize], *want);
    }
    assert!(store
        .tensor_reader(&id, "blk.1.attn_q.weight")
        .err()
        .unwrap()
        .is_not_found());

    // A tensor whose data would run past the end of the file: no layout.
    let cut = put(&store, &file[..file.len() - 1001]);
    assert!(store.tensor_layout(&cut).unwrap().is_none());
    assert!(store
        .tensor_reader(&cut, "token_embd.weight")
        .err()
        .unwrap()
        .is_not_found());
}
