//! Tests of format detection and the framework guess.

use super::detect::*;
use super::detect::{ALL_FORMATS, ALL_FRAMEWORKS};
use super::hdf5::HDF5_SIG;
use super::pickle::TORCH_LEGACY_MAGIC;
use super::zip::ZIP_LOCAL;
use proptest::prelude::*;

use crate::test_support::noise;

fn det(path: &str, bytes: &[u8]) -> FileFormat {
    detect(path, bytes, bytes.len() as u64)
}

fn safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(std::iter::repeat_n(0u8, data));
    v
}

/// One stored zip entry (local header + data), optionally zip64.
fn zip_entry(name: &str, data: &[u8], zip64: bool) -> Vec<u8> {
    let mut v = ZIP_LOCAL.to_vec();
    v.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
    v.extend_from_slice(&[0, 0, 0, 0]); // crc32 (not checked)
    let extra: Vec<u8> = if zip64 {
        let mut x = vec![1, 0, 16, 0];
        x.extend_from_slice(&(data.len() as u64).to_le_bytes());
        x.extend_from_slice(&(data.len() as u64).to_le_bytes());
        x
    } else {
        Vec::new()
    };
    let size = if zip64 { u32::MAX } else { data.len() as u32 };
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&(name.len() as u16).to_le_bytes());
    v.extend_from_slice(&(extra.len() as u16).to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(&extra);
    v.extend_from_slice(data);
    v
}

fn ct2(version: u32, spec: &str, var: &str) -> Vec<u8> {
    let s = |v: &mut Vec<u8>, t: &str| {
        v.extend_from_slice(&((t.len() + 1) as u16).to_le_bytes());
        v.extend_from_slice(t.as_bytes());
        v.push(0);
    };
    let mut v = version.to_le_bytes().to_vec();
    if version >= 2 {
        s(&mut v, spec);
        v.extend_from_slice(&3u32.to_le_bytes());
    }
    v.extend_from_slice(&2u32.to_le_bytes());
    s(&mut v, var);
    v.push(1); // rank
    v.extend_from_slice(&4u32.to_le_bytes());
    v.push(0); // dtype float32
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&[0u8; 16]);
    v
}

fn onnx_bytes() -> Vec<u8> {
    let mut v = vec![0x08, 0x07, 0x12, 0x07];
    v.extend_from_slice(b"pytorch");
    v.extend_from_slice(&[0x1a, 0x03]);
    v.extend_from_slice(b"2.1");
    v.extend_from_slice(&[0x3a, 0x04, 0x0a, 0x02, 0x08, 0x01]);
    v.extend_from_slice(&[0x42, 0x02, 0x10, 0x11]);
    v
}

fn pickle_v2(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x02];
    v.extend_from_slice(body);
    v.push(b'.');
    v
}

// --- names --------------------------------------------------------------

#[test]
fn names_round_trip_and_match_serde() {
    for f in ALL_FORMATS {
        assert_eq!(FileFormat::from_name(f.name()), Some(f));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            format!("\"{}\"", f.name())
        );
        let back: FileFormat = serde_json::from_str(&format!("\"{}\"", f.name())).unwrap();
        assert_eq!(back, f);
    }
    for f in ALL_FRAMEWORKS {
        assert_eq!(Framework::from_name(f.name()), Some(f));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            format!("\"{}\"", f.name())
        );
    }
    let names: std::collections::HashSet<_> = ALL_FORMATS.iter().map(|f| f.name()).collect();
    assert_eq!(names.len(), ALL_FORMATS.len());
    assert_eq!(FileFormat::from_name("Safetensors"), None);
    assert_eq!(FileFormat::from_name(""), None);
    assert_eq!(Framework::from_name("torch"), None);
}

// --- safetensors ----------------------------------------------------------

#[test]
fn safetensors_detected_and_bounded() {
    let h = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   "#;
    let f = safetensors(h, 4);
    assert_eq!(det("model.safetensors", &f), FileFormat::Safetensors);
    // Content decides, not the name.
    assert_eq!(det("weights.dat", &f), FileFormat::Safetensors);
    // Header longer than the head we were given: partial check.
    assert_eq!(
        detect("m.safetensors", &f[..20], f.len() as u64),
        FileFormat::Safetensors
    );
    // Lying length: the header cannot fit.
    assert_eq!(detect("m.safetensors", &f, 20), FileFormat::Unknown);
    assert_eq!(
        detect("m.safetensors", &f, (h.len() + 7) as u64),
        FileFormat::Unknown
    );
    // Absurd header length.
    let mut big = f.clone();
    big[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    assert_eq!(detect("m.safetensors", &big, u64::MAX), FileFormat::Unknown);
    // Not JSON after the length.
    assert_eq!(
        det("m.safetensors", &safetensors("{x: 1}", 0)),
        FileFormat::Unknown
    );
    assert_eq!(
        det("m.safetensors", &safetensors("[1, 2]", 0)),
        FileFormat::Unknown
    );
    assert_eq!(
        det("m.safetensors", &safetensors("{\x01}", 0)),
        FileFormat::Unknown
    );
    // The header must begin with `{` (the format's rule, and the one parser
    // the cutter and tensor reader use): leading whitespace is refused.
    assert_eq!(
        det("m.safetensors", &safetensors("  {}", 0)),
        FileFormat::Unknown
    );
    assert_eq!(
        det("m.safetensors", &safetensors("{}  ", 0)),
        FileFormat::Safetensors
    );
    // A whole header is parsed as the tensor reader parses it: a JSON object
    // whose entries are not tensors, or a tensor past the end of the file,
    // is not safetensors.
    assert_eq!(
        det("m.safetensors", &safetensors(r#"{"a": 1}"#, 0)),
        FileFormat::Unknown
    );
    assert_eq!(det("m.safetensors", &f[..f.len() - 1]), FileFormat::Unknown);
    // The header limit is the reference library's 100,000,000 bytes; a
    // header that long (shown in part) is checked as far as it is shown.
    let mut limit = f[..8 + h.len()].to_vec();
    limit[..8].copy_from_slice(&100_000_000u64.to_le_bytes());
    assert_eq!(
        detect("m.safetensors", &limit, 200_000_000),
        FileFormat::Safetensors
    );
    limit[..8].copy_from_slice(&100_000_001u64.to_le_bytes());
    assert_eq!(
        detect("m.safetensors", &limit, 200_000_000),
        FileFormat::Unknown
    );
    // Too short / zero length.
    assert_eq!(det("m.safetensors", &[0u8; 8]), FileFormat::Unknown);
    assert_eq!(det("m.safetensors", &f[..5]), FileFormat::Unknown);
}

// --- zips -----------------------------------------------------------------

#[test]
fn pytorch_zip_keras3_and_other_zips() {
    let pkl = pickle_v2(b"}q\x00");
    let mut z = zip_entry("archive/data.pkl", &pkl, false);
    z.extend(zip_entry("archive/version", b"3\n", false));
    assert_eq!(det("model.pt", &z), FileFormat::PytorchZip);
    assert_eq!(det("pytorch_model.bin", &z), FileFormat::PytorchZip);
    assert_eq!(det("anything", &z), FileFormat::PytorchZip);

    // data.pkl found only by walking past a first entry.
    let mut z2 = zip_entry("mymodel/.format_version", b"1", false);
    z2.extend(zip_entry("mymodel/data.pkl", &pkl, false));
    assert_eq!(det("x.zip", &z2), FileFormat::PytorchZip);

    // Walking past a zip64 entry.
    let mut z3 = zip_entry("first/blob", &[7u8; 40], true);
    z3.extend(zip_entry("archive/data.pkl", &pkl, false));
    assert_eq!(det("x.zip", &z3), FileFormat::PytorchZip);

    // fastai learner saved with torch.save.
    let fa = pickle_v2(b"cfastai.learner\nLearner\nq\x00)\x81q\x01");
    let zf = zip_entry("export/data.pkl", &fa, false);
    assert_eq!(det("export.pkl", &zf), FileFormat::FastaiPkl);

    let mut k = zip_entry("metadata.json", br#"{"keras_version": "3.3.3"}"#, false);
    k.extend(zip_entry("config.json", b"{}", false));
    k.extend(zip_entry("model.weights.h5", HDF5_SIG, false));
    assert_eq!(det("model.keras", &k), FileFormat::Keras3);
    assert_eq!(det("model.zip", &k), FileFormat::Keras3);

    let other = zip_entry("notes.txt", b"hello", false);
    assert_eq!(det("bundle.zip", &other), FileFormat::Unknown);
    assert_eq!(det("model.keras", &other), FileFormat::Keras3);
    // Unreadable entries: the .pt name breaks the tie.
    let mut dd = zip_entry("archive/x", b"", false);
    dd[6] = 0x08; // data descriptor, sizes unknown
    assert_eq!(det("model.pt", &dd), FileFormat::PytorchZip);
    assert_eq!(det("model.npz", &dd), FileFormat::Unknown);
    // Truncated local headers.
    for cut in 0..z.len().min(60) {
        let f = detect("x.bin", &z[..cut], z.len() as u64);
        assert!(
            matches!(f, FileFormat::Unknown | FileFormat::PytorchZip),
            "{cut}: {f:?}"
        );
    }
    assert_eq!(det("x.bin", b"PK\x03\x04\x14"), FileFormat::Unknown);
}

// --- pickles ---------------------------------------------------------------

#[test]
fn pickles_torch_legacy_joblib_fastai_sklearn() {
    let mut legacy = TORCH_LEGACY_MAGIC.to_vec();
    legacy.extend_from_slice(b".\x80\x02M\xe9\x03.");
    assert_eq!(det("model.pth", &legacy), FileFormat::PytorchLegacy);
    assert_eq!(det("pytorch_model.bin", &legacy), FileFormat::PytorchLegacy);

    let sk = pickle_v2(b"csklearn.linear_model._base\nLinearRegression\nq\x00)\x81q\x01");
    assert_eq!(det("model.pkl", &sk), FileFormat::Joblib);
    let mut p4 = vec![0x80, 0x04, 0x95];
    p4.extend_from_slice(&20u64.to_le_bytes());
    p4.extend_from_slice(b"\x8c\x08builtins\x94\x8c\x04dict\x94\x93)R.");
    assert_eq!(det("state.pkl", &p4), FileFormat::Pickle);
    // FRAME length larger than the file.
    let mut lying = p4.clone();
    lying[3..11].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(det("state.pkl", &lying), FileFormat::Unknown);

    let jl = pickle_v2(b"cjoblib.numpy_pickle\nNumpyArrayWrapper\nq\x00");
    assert_eq!(det("arr.dat", &jl), FileFormat::Joblib);
    assert_eq!(
        det("thing.joblib", &pickle_v2(b"}q\x00")),
        FileFormat::Joblib
    );
    assert_eq!(det("thing.pkl", &pickle_v2(b"}q\x00")), FileFormat::Pickle);

    let fa = pickle_v2(b"cfastai.basic_train\nLearner\nq\x00");
    assert_eq!(det("export.pkl", &fa), FileFormat::FastaiPkl);

    let zlib = [0x78, 0x9c, 0x6b, 0x60, 0x99, 0x5a, 0xcb, 0x00];
    assert_eq!(det("model.joblib", &zlib), FileFormat::Joblib);
    assert_eq!(det("model.pkl", &zlib), FileFormat::Joblib);
    assert_eq!(det("model.pkl.z", &zlib), FileFormat::Joblib);
    assert_eq!(det("blob.txt", &zlib), FileFormat::Unknown);
    assert_eq!(
        det("model.joblib.gz", b"\x1f\x8b\x08\x00\x00\x00"),
        FileFormat::Joblib
    );

    // Not pickles: bad protocol, bad next opcode, too short.
    assert_eq!(det("x.pkl", b"\x80\x07}."), FileFormat::Unknown);
    assert_eq!(det("x.pkl", b"\x80\x02\xff."), FileFormat::Unknown);
    assert_eq!(det("x.pkl", b"\x80\x02"), FileFormat::Unknown);
    // Protocol 0 needs the pickle name.
    assert_eq!(det("x.pkl", b"(dp0\nS'a'\np1\nI1\ns."), FileFormat::Pickle);
    assert_eq!(det("x.dat", b"(dp0\nS'a'\np1\nI1\ns."), FileFormat::Unknown);
}

// --- simple magics -----------------------------------------------------------

#[test]
fn hdf5_gguf_tflite_catboost_megengine() {
    let mut h = HDF5_SIG.to_vec();
    h.extend_from_slice(&[0u8; 100]);
    assert_eq!(det("model.h5", &h), FileFormat::Hdf5);
    assert_eq!(det("model.keras", &h), FileFormat::Hdf5);
    let mut ub = vec![0u8; 512];
    ub.extend_from_slice(&h);
    assert_eq!(det("data.hdf5", &ub), FileFormat::Hdf5);
    let mut off = vec![1u8; 3];
    off.extend_from_slice(&h);
    assert_eq!(det("model.h5", &off), FileFormat::Unknown);

    let mut g = b"GGUF".to_vec();
    g.extend_from_slice(&3u32.to_le_bytes());
    g.extend_from_slice(&[0u8; 16]);
    assert_eq!(det("m.gguf", &g), FileFormat::Gguf);
    assert_eq!(det("m.bin", &g), FileFormat::Gguf);
    g[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert_eq!(det("m.gguf", &g), FileFormat::Unknown);
    assert_eq!(det("m.gguf", b"GGUF"), FileFormat::Unknown);
    assert_eq!(detect("m.gguf", b"GGUF\x03\0\0\0", 0), FileFormat::Unknown);
    // The GGUF parser the cutter and tensor reader use decides: versions 2
    // and 3, little-endian (llama.cpp refuses version 1 and byte-swapped
    // files), and a header well formed as far as the head shows it.
    g[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(det("m.gguf", &g), FileFormat::Gguf);
    g[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(det("m.gguf", &g), FileFormat::Unknown);
    g[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(det("m.gguf", &g), FileFormat::Unknown);
    g[4..8].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(detect("m.gguf", &g[..12], 1 << 20), FileFormat::Gguf);
    assert_eq!(detect("m.gguf", &g[..7], 1 << 20), FileFormat::Unknown);
    let mut lying = g.clone();
    lying[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // tensor count
    assert_eq!(det("m.gguf", &lying), FileFormat::Unknown);

    let mut t = 0x1cu32.to_le_bytes().to_vec();
    t.extend_from_slice(b"TFL3");
    t.extend_from_slice(&[0u8; 60]);
    assert_eq!(det("model.tflite", &t), FileFormat::Tflite);
    t[..4].copy_from_slice(&10_000u32.to_le_bytes());
    assert_eq!(det("model.tflite", &t), FileFormat::Unknown);

    assert_eq!(
        det("model.cbm", b"CBM1\x10\0\0\0rest"),
        FileFormat::CatBoost
    );

    assert_eq!(
        det("m.mge", b"MGBC\0\0\0\0\x10\0\0\0"),
        FileFormat::MegEngine
    );
    assert_eq!(
        det("m.bin", b"MGBS\0\0\0\0\x10\0\0\0"),
        FileFormat::MegEngine
    );
    assert_eq!(
        det("m.bin", b"MGBC\x01\0\0\0\x10\0\0\0"),
        FileFormat::Unknown
    );
    let mut v2 = 28u32.to_le_bytes().to_vec();
    v2.extend_from_slice(&12u32.to_le_bytes());
    v2.extend_from_slice(b"mgv2");
    v2.extend_from_slice(&[0u8; 20]);
    assert_eq!(det("m.mge", &v2), FileFormat::MegEngine);
    assert_eq!(
        det("m.mge", b"\x01\x02\x00\x93binary"),
        FileFormat::MegEngine
    );
    assert_eq!(det("m.mge", b"just some text"), FileFormat::Unknown);
}

// --- ONNX, TF, TF.js, XGBoost, CTranslate2 --------------------------------------

#[test]
fn onnx_needs_protobuf_shape() {
    let o = onnx_bytes();
    assert_eq!(det("model.onnx", &o), FileFormat::Onnx);
    assert_eq!(det("weights", &o), FileFormat::Onnx); // strong content
    assert_eq!(
        det("model.onnx", &[0x08, 0x08, 0x3a, 0x10]),
        FileFormat::Onnx
    );
    assert_eq!(det("blob", &[0x08, 0x08, 0x3a, 0x10]), FileFormat::Unknown);
    assert_eq!(
        det("model.onnx", b"hello world, not a model"),
        FileFormat::Unknown
    );
    assert_eq!(
        det("model.onnx", &[0x08, 0x00, 0x12, 0x01, b'a']),
        FileFormat::Unknown
    );
    assert_eq!(
        det("model.onnx", &[0x08, 0x07, 0xff, 0xff]),
        FileFormat::Unknown
    );
    assert_eq!(det("model.onnx", &[]), FileFormat::Unknown);
}

#[test]
fn tensorflow_savedmodel_and_checkpoints() {
    assert_eq!(
        det("m/saved_model.pb", b"\x08\x01\x12\x8c\x02\x0a"),
        FileFormat::TfSavedModelPb
    );
    assert_eq!(
        det("m/other.pb", b"\x08\x01\x12\x8c\x02\x0a"),
        FileFormat::Unknown
    );
    assert_eq!(det("m/saved_model.pb", b"{}"), FileFormat::Json);
    assert_eq!(
        det(
            "saved_model.pbtxt",
            b"saved_model_schema_version: 1\nmeta_graphs {"
        ),
        FileFormat::TfSavedModelPb
    );
    let idx = b"\x00\x00\x06\x08\x01\x1a\x02\x08\x01\x00\x11\x1a";
    assert_eq!(
        det("m/variables/variables.index", idx),
        FileFormat::TfCheckpointIndex
    );
    assert_eq!(
        det("ckpt/model.ckpt-100.index", idx),
        FileFormat::TfCheckpointIndex
    );
    assert_eq!(
        det("x/variables.index", b"\x01\x02\x00snappy"),
        FileFormat::TfCheckpointIndex
    );
    assert_eq!(det("docs.index", b"plain text index"), FileFormat::Unknown);
    assert_eq!(det("faiss.index", b"IxF2\x00\x01"), FileFormat::Unknown);
    let data = noise(1, 256);
    assert_eq!(
        det("v/variables.data-00000-of-00001", &data),
        FileFormat::TfCheckpointData
    );
    assert_eq!(
        det("v/model.ckpt-5.data-00001-of-00002", &data),
        FileFormat::TfCheckpointData
    );
    assert_eq!(
        det("v/variables.data-0a-of-00001", &data),
        FileFormat::Unknown
    );
}

#[test]
fn tfjs_model_json_and_shards() {
    let mj = br#"{"format": "graph-model", "modelTopology": {"node": []}, "weightsManifest": []}"#;
    assert_eq!(det("web/model.json", mj), FileFormat::TfjsModelJson);
    assert_eq!(det("web/age.json", mj), FileFormat::TfjsModelJson);
    // Truncated head of a big model.json.
    assert_eq!(
        detect("web/model.json", &mj[..50], 1 << 20),
        FileFormat::TfjsModelJson
    );
    assert_eq!(
        detect("web/model.json", &mj[..30], 1 << 20),
        FileFormat::Json
    );
    let w = noise(7, 1024);
    assert_eq!(det("web/group1-shard1of2.bin", &w), FileFormat::TfjsWeights);
    assert_eq!(det("web/group1-shard2of2", &w), FileFormat::TfjsWeights);
    assert_eq!(det("web/shard1of3.bin", &w), FileFormat::TfjsWeights);
    assert_eq!(det("web/age.bin", &w), FileFormat::Unknown);
    assert_eq!(det("web/shardXofY.bin", &w), FileFormat::Unknown);
    assert_eq!(det("web/other-shard1of2", &w), FileFormat::Unknown);
}

#[test]
fn xgboost_json_and_ubj() {
    let j =
        br#"{"learner":{"attributes":{},"gradient_booster":{"name":"gbtree"}},"version":[2,0,3]}"#;
    assert_eq!(det("model.json", j), FileFormat::XgboostJson);
    assert_eq!(det("model.json", br#"{"learner": "me"}"#), FileFormat::Json);

    let mut u = b"{L".to_vec();
    u.extend_from_slice(&7i64.to_be_bytes());
    u.extend_from_slice(b"learner{L");
    u.extend_from_slice(&10i64.to_be_bytes());
    u.extend_from_slice(b"attributes{}");
    assert_eq!(det("model.ubj", &u), FileFormat::XgboostUbj);
    assert_eq!(det("model.bin", &u), FileFormat::XgboostUbj);
    assert_eq!(
        det("model.ubj", b"{i\x03abcSi\x01x}"),
        FileFormat::XgboostUbj
    );
    assert_eq!(det("model.bin", b"{i\x03abcSi\x01x}"), FileFormat::Unknown);
    assert_eq!(det("model.ubj", b"{i\xffabc"), FileFormat::Unknown);
    assert_eq!(
        det("model.ubj", b"{L\x7f\xff\xff\xff\xff\xff\xff\xff"),
        FileFormat::Unknown
    );
}

#[test]
fn ctranslate2_layout() {
    let m = ct2(6, "WhisperSpec", "decoder/activation");
    assert_eq!(det("ct2/model.bin", &m), FileFormat::Ctranslate2);
    assert_eq!(det("ct2/renamed.bin", &m), FileFormat::Ctranslate2);
    assert_eq!(
        det("ct2/model.bin", &ct2(1, "", "encoder/w")),
        FileFormat::Ctranslate2
    );
    assert_eq!(
        det("ct2/other.bin", &ct2(1, "", "encoder/w")),
        FileFormat::Unknown
    );
    assert_eq!(
        det("ct2/model.bin", &ct2(0, "Spec", "a")),
        FileFormat::Unknown
    );
    assert_eq!(
        det("ct2/model.bin", &ct2(11, "Spec", "a")),
        FileFormat::Unknown
    );
    assert_eq!(
        det("ct2/model.bin", &ct2(6, "Bad Spec", "a")),
        FileFormat::Unknown
    );
    let mut no_nul = m.clone();
    no_nul[4 + 2 + 11] = b'x'; // the spec name's NUL terminator
    assert_eq!(det("ct2/model.bin", &no_nul), FileFormat::Unknown);
    for cut in 0..30 {
        assert_eq!(
            detect("ct2/model.bin", &m[..cut], m.len() as u64),
            FileFormat::Unknown,
            "{cut}"
        );
    }
}

// --- JSON and garbage ----------------------------------------------------------

#[test]
fn generic_json_text_and_garbage() {
    assert_eq!(
        det("config.json", br#"{"hidden_size": 384}"#),
        FileFormat::Json
    );
    assert_eq!(det("data.json", b"  [\n {\"a\": 1}\n]\n"), FileFormat::Json);
    assert_eq!(
        det("config.json", b"\xef\xbb\xbf{\"a\": 1}"),
        FileFormat::Json
    );
    assert_eq!(det("config.json", br#"{"a": 1"#), FileFormat::Unknown); // complete but invalid
    assert_eq!(detect("config.json", br#"{"a": 1,"#, 100), FileFormat::Json); // truncated head
    assert_eq!(
        detect("config.json", b"{\"a\": \xe2\x82", 100),
        FileFormat::Json
    ); // cut char
    assert_eq!(
        det("config.json", b"{\"a\": \xe2\x82}"),
        FileFormat::Unknown
    );
    assert_eq!(det("config.json", b"{\"a\0\": 1}"), FileFormat::Unknown);
    assert_eq!(detect("config.json", b"{x", 100), FileFormat::Unknown);
    assert_eq!(
        det("README.md", b"# Title\n\nSome text."),
        FileFormat::Unknown
    );
    assert_eq!(det("anything", b""), FileFormat::Unknown);
    assert_eq!(detect("anything", b"", 1000), FileFormat::Unknown);
    // Deep nesting is still valid JSON and must not exhaust the stack.
    let deep: Vec<u8> = std::iter::repeat_n(b'[', 30_000)
        .chain(std::iter::repeat_n(b']', 30_000))
        .collect();
    assert_eq!(det("deep.json", &deep), FileFormat::Json);
    let unbalanced = &deep[..deep.len() - 1];
    assert_eq!(det("deep.json", unbalanced), FileFormat::Unknown);
    assert_eq!(
        detect("deep.json", unbalanced, deep.len() as u64),
        FileFormat::Json
    );
}

#[test]
fn random_bytes_are_unknown() {
    let names = [
        "blob.dat",
        "model.bin",
        "x",
        "weights.pt",
        "a/b/c.onnx",
        "m.safetensors",
        "m.gguf",
    ];
    for seed in 0..3000u64 {
        let n = (seed as usize * 37) % 5000;
        let b = noise(seed, n);
        let name = names[seed as usize % names.len()];
        assert_eq!(
            det(name, &b),
            FileFormat::Unknown,
            "seed {seed} name {name}"
        );
    }
}

#[test]
fn head_is_capped_and_len_respected() {
    // Bytes past HEAD_LEN are ignored: a HDF5 signature at 65536 is unseen.
    let mut v = vec![0u8; HEAD_LEN];
    v.extend_from_slice(HDF5_SIG);
    assert_eq!(det("x.h5", &v), FileFormat::Unknown);
    v.truncate(HEAD_LEN);
    v[32768..32776].copy_from_slice(HDF5_SIG);
    assert_eq!(det("x.h5", &v), FileFormat::Hdf5);
    // Bytes past the declared length are ignored too.
    assert_eq!(detect("x.h5", HDF5_SIG, 4), FileFormat::Unknown);
}

mod framework;
