//! Container formats: detection and one parser per container.
//!
//! Every format modelvault recognises is parsed by exactly one module here,
//! with one set of limits, whoever asks: format detection ([`detect`]), the
//! tensor-aware cutter (`chunking::aware`, through [`tensor::probe`]) and the
//! tensor reader (`Store::tensor_reader`, likewise).
//!
//! - [`tensor`]: tensor layouts ([`tensor::probe`], [`tensor::TensorLayout`]),
//!   read by [`safetensors`] and [`gguf`], the two containers whose tensors
//!   modelvault cuts and reads by name.
//! - [`zip`] (PyTorch and Keras 3 archives), [`pickle`] (a scan of the first
//!   opcodes, never an unpickling), [`hdf5`], [`onnx`], [`flatbuffers`]
//!   (TFLite, MegEngine), [`ctranslate2`], [`ubjson`] (XGBoost),
//!   [`tensorflow`] (checkpoints and TF.js shards by name), [`json`]: the
//!   checks detection makes of the other formats.
//! - [`detect`]: the file format and framework of stored files, from those
//!   parsers.
//!
//! This layer sits below chunking and imports nothing of the crate but its
//! own modules: every parser takes bytes and answers, never panics, and
//! treats every byte as hostile.

mod bytes;
mod ctranslate2;
pub mod detect;
mod flatbuffers;
mod gguf;
mod hdf5;
mod json;
mod onnx;
mod pickle;
mod safetensors;
pub mod tensor;
mod tensorflow;
mod ubjson;
mod zip;

#[cfg(test)]
mod detect_tests;
#[cfg(test)]
mod tensor_tests;

#[cfg(test)]
mod layering {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file below `dir`.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The formats layer sits below chunking: its files name nothing of the
    /// crate but `formats` itself, `id` and `error` (and, in tests, the
    /// shared test data of `test_support`).
    #[test]
    fn formats_uses_only_lower_layers() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/formats");
        let mut files = Vec::new();
        sources(&dir, &mut files);
        assert!(
            files.len() > 10,
            "{} files in {}",
            files.len(),
            dir.display()
        );
        // Built so that this file does not match its own needle.
        let needle = ["crate", "::"].concat();
        for path in files {
            let src = std::fs::read_to_string(&path).unwrap();
            for (i, line) in src.lines().enumerate() {
                for used in line.split(needle.as_str()).skip(1) {
                    assert!(
                        ["formats", "id", "error", "test_support"]
                            .iter()
                            .any(|m| used.starts_with(m) && !used[m.len()..].starts_with('_')),
                        "{}:{}: {line}",
                        path.display(),
                        i + 1
                    );
                }
            }
        }
    }
}
