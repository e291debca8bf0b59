//! `detect::detect(path, head, len)` on arbitrary paths, heads and lengths:
//! it must never panic, and its answer must be a format `from_name` knows.
//! The per-model helpers (`refine_with_siblings`, `guess_framework`) run on
//! the result too. Detection and the tensor layout parser are one parser per
//! container (src/formats/): a whole file detected as safetensors or GGUF
//! must have a layout of that format.
//!
//! Input: `[name, len_mode, k, folder (k bytes, lossy UTF-8), head…]`.
//! `name` < 0xF0 appends a known model file name to the folder, else the
//! folder is the whole path; `len_mode & 3` makes the file length the head
//! length, longer than it, a u64 read from the head, or shorter than it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelvault::internals::chunking::tensors::{probe, Probe};
use modelvault::detect::{detect, guess_framework, refine_with_siblings, FileFormat, Framework, HEAD_LEN};

/// File names whose extension or full name `detect` looks at.
const NAMES: &[&str] = &[
    "model.safetensors", "pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.pt2",
    "model.ptl", "data.pkl", "archive/data.pkl", "export.pkl", "model.pickle", "model.joblib",
    "model.jbl", "model.joblib.gz", "model.joblib.bz2", "model.joblib.xz", "model.joblib.lzma",
    "model.joblib.z", "model.joblib.lz4", "saved_model.pb", "saved_model.pbtxt", "fingerprint.pb",
    "variables/variables.index", "variables/variables.data-00000-of-00001",
    "ckpt/model.ckpt-100.index", "model.ckpt-100.data-00000-of-00002", "model.keras", "model.h5",
    "model.weights.h5", "data.hdf5", "model.onnx", "model.mge", "model.cbm", "model.json",
    "model.ubj", "model.gguf", "model.tflite", "group1-shard1of2.bin", "group1-shard1of1",
    "config.json", "tokenizer.json", "README.md", "faiss.index", "bundle.zip", "blob",
];

fuzz_target!(|data: &[u8]| {
    let [name, mode, k, rest @ ..] = data else { return };
    let k = (*k as usize).min(rest.len());
    let (folder, head) = rest.split_at(k);
    let mut path = String::from_utf8_lossy(folder).into_owned();
    if *name < 0xF0 {
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(NAMES[*name as usize % NAMES.len()]);
    }
    let n = head.len() as u64;
    let len = match mode & 3 {
        0 => n,
        1 => n + 1 + u64::from(mode >> 2) * 1000,
        2 => head.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap())),
        _ => n.saturating_sub(u64::from(mode >> 2)),
    };

    let f = detect(&path, head, len);
    assert_eq!(FileFormat::from_name(f.name()), Some(f));
    let container = match f {
        FileFormat::Safetensors => Some("safetensors"),
        FileFormat::Gguf => Some("gguf"),
        _ => None,
    };
    if let Some(want) = container.filter(|_| len == n && head.len() <= HEAD_LEN) {
        match probe(head, Some(len)) {
            Probe::Layout(l) => assert_eq!(l.format, want, "detected {f:?}"),
            other => panic!("detected {f:?} but the layout parser answers {other:?}"),
        }
    }

    let mut files = vec![(path.clone(), f), (format!("{path}.bin"), FileFormat::Unknown)];
    refine_with_siblings(&mut files);
    let fw = guess_framework(&files);
    assert_eq!(Framework::from_name(fw.name()), Some(fw));
});
