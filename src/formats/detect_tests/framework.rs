//! Tests of the framework guess, of detection against the layout parser,
//! and that detection never panics.

use super::*;

// --- frameworks ---------------------------------------------------------------

fn files(v: &[(&str, FileFormat)]) -> Vec<(String, FileFormat)> {
    v.iter().map(|(p, f)| (p.to_string(), *f)).collect()
}

#[test]
fn framework_guesses() {
    use FileFormat as F;
    let idx = b"\x00\x00\x06\x08\x01\x1a\x02\x08\x01";
    let tf = vec![
        (
            "saved_model.pb".to_string(),
            det("saved_model.pb", b"\x08\x01\x12\x05"),
        ),
        (
            "variables/variables.index".to_string(),
            det("variables/variables.index", idx),
        ),
        (
            "variables/variables.data-00000-of-00001".to_string(),
            det("variables/variables.data-00000-of-00001", &noise(3, 64)),
        ),
        (
            "fingerprint.pb".to_string(),
            det("fingerprint.pb", &noise(4, 64)),
        ),
    ];
    assert_eq!(tf[0].1, F::TfSavedModelPb);
    assert_eq!(tf[1].1, F::TfCheckpointIndex);
    assert_eq!(guess_framework(&tf), Framework::Tensorflow);

    let tfjs = files(&[
        ("model.json", F::TfjsModelJson),
        ("group1-shard1of2.bin", F::TfjsWeights),
        ("group1-shard2of2.bin", F::TfjsWeights),
    ]);
    assert_eq!(guess_framework(&tfjs), Framework::Tfjs);

    let hf = files(&[
        ("config.json", F::Json),
        ("tokenizer.json", F::Json),
        ("model.safetensors", F::Safetensors),
    ]);
    assert_eq!(guess_framework(&hf), Framework::Safetensors);
    let mut hf_pt = hf.clone();
    hf_pt.push(("pytorch_model.bin".into(), F::PytorchZip));
    assert_eq!(guess_framework(&hf_pt), Framework::Pytorch);
    let mut hf_onnx = hf.clone();
    hf_onnx.push(("onnx/model.onnx".into(), F::Onnx));
    assert_eq!(guess_framework(&hf_onnx), Framework::Safetensors);

    let z = zip_entry("archive/data.pkl", &pickle_v2(b"}q\x00"), false);
    let pt = vec![("model.pt".to_string(), det("model.pt", &z))];
    assert_eq!(guess_framework(&pt), Framework::Pytorch);

    let h5 = vec![("model.h5".to_string(), det("model.h5", HDF5_SIG))];
    assert_eq!(guess_framework(&h5), Framework::Keras);
    assert_eq!(
        guess_framework(&files(&[("m.keras", F::Keras3)])),
        Framework::Keras
    );

    let sk = pickle_v2(b"csklearn.ensemble._forest\nRandomForestClassifier\nq\x00");
    let skf = vec![("model.pkl".to_string(), det("model.pkl", &sk))];
    assert_eq!(guess_framework(&skf), Framework::ScikitLearn);

    assert_eq!(
        guess_framework(&files(&[("export.pkl", F::FastaiPkl)])),
        Framework::Fastai
    );
    assert_eq!(
        guess_framework(&files(&[("m.ubj", F::XgboostUbj)])),
        Framework::Xgboost
    );
    assert_eq!(
        guess_framework(&files(&[("m.cbm", F::CatBoost)])),
        Framework::Catboost
    );
    assert_eq!(
        guess_framework(&files(&[("m.mge", F::MegEngine)])),
        Framework::Megengine
    );
    assert_eq!(
        guess_framework(&files(&[("m.gguf", F::Gguf)])),
        Framework::Gguf
    );
    assert_eq!(
        guess_framework(&files(&[("m.tflite", F::Tflite)])),
        Framework::Tensorflow
    );
    assert_eq!(
        guess_framework(&files(&[("m.onnx", F::Onnx)])),
        Framework::Onnx
    );
    assert_eq!(
        guess_framework(&files(&[
            ("model.bin", F::Ctranslate2),
            ("config.json", F::Json)
        ])),
        Framework::Ctranslate2
    );
    assert_eq!(
        guess_framework(&files(&[("data.pkl", F::Pickle)])),
        Framework::Unknown
    );
    assert_eq!(
        guess_framework(&files(&[("config.json", F::Json)])),
        Framework::Unknown
    );
    assert_eq!(guess_framework(&[]), Framework::Unknown);
}

#[test]
fn siblings_upgrade_custom_named_tfjs_weights() {
    use FileFormat as F;
    let mut v = files(&[
        ("human/age.json", F::TfjsModelJson),
        ("human/age.bin", F::Unknown),
        ("human/README.md", F::Unknown),
        ("other/age.bin", F::Unknown),
        ("human/model.bin", F::Ctranslate2),
    ]);
    refine_with_siblings(&mut v);
    assert_eq!(v[1].1, F::TfjsWeights);
    assert_eq!(v[2].1, F::Unknown);
    assert_eq!(v[3].1, F::Unknown);
    assert_eq!(v[4].1, F::Ctranslate2);
    let mut none = files(&[("a.bin", F::Unknown)]);
    refine_with_siblings(&mut none);
    assert_eq!(none[0].1, F::Unknown);
}

// --- one parser ------------------------------------------------------------------

/// Detection and the tensor layout parser agree: whatever whole file is
/// detected as safetensors or GGUF has a layout of that format.
#[test]
fn detection_agrees_with_the_layout_parser() {
    for (i, seed) in seeds().into_iter().enumerate() {
        for cut in 0..=seed.len() {
            for flip in 0..seed.len().min(40) {
                let mut b = seed[..cut].to_vec();
                if let Some(x) = b.get_mut(flip) {
                    *x ^= 0x5a;
                }
                let f = det("model.bin", &b);
                let want = match f {
                    FileFormat::Safetensors => "safetensors",
                    FileFormat::Gguf => "gguf",
                    _ => continue,
                };
                match crate::formats::tensor::probe(&b, Some(b.len() as u64)) {
                    crate::formats::tensor::Probe::Layout(l) => assert_eq!(l.format, want),
                    other => panic!("seed {i} cut {cut} flip {flip}: {f:?} but {other:?}"),
                }
            }
        }
    }
}

// --- never panics ----------------------------------------------------------------

fn seeds() -> Vec<Vec<u8>> {
    let mut k = zip_entry("metadata.json", b"{}", false);
    k.extend(zip_entry("a/data.pkl", b"\x80\x02}.", true));
    vec![
        safetensors(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        ),
        k,
        TORCH_LEGACY_MAGIC.to_vec(),
        b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
        ct2(6, "TransformerSpec", "encoder/w"),
        onnx_bytes(),
        b"{L\0\0\0\0\0\0\0\x07learner{}".to_vec(),
        br#"{"modelTopology": {}, "weightsManifest": []}"#.to_vec(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn detect_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        path in "\\PC{0,40}",
        len in any::<u64>(),
    ) {
        let _ = detect(&path, &bytes, len);
        let _ = detect(&path, &bytes, bytes.len() as u64);
    }

    #[test]
    fn mutated_headers_never_panic(
        which in 0usize..8,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        name in prop::sample::select(vec![
            "model.bin", "m.onnx", "m.ubj", "m.mge", "m.pkl", "model.pt", "saved_model.pb",
            "variables.index", "group1-shard1of1", "model.json", "x",
        ]),
        extra_len in 0u64..1_000_000,
    ) {
        let mut b = seeds()[which].clone();
        for (at, v) in flips {
            let n = b.len();
            if n > 0 { b[at % n] = v; }
        }
        let cut = cut % (b.len() + 1);
        let head = &b[..cut];
        let f = detect(name, head, cut as u64 + extra_len);
        prop_assert!(FileFormat::from_name(f.name()) == Some(f));
        let _ = guess_framework(&[(name.to_string(), f)]);
    }
}
