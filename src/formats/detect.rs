//! Format detection for stored model files, and a framework guess for a model.
//!
//! [`detect`] classifies one file from its first bytes (up to [`HEAD_LEN`]),
//! its total length and its relative path. Content decides first: formats
//! with a magic number or a checkable binary layout are recognised whatever
//! the file is called. The name is only a tiebreaker, for formats that have
//! no magic at all (TensorFlow checkpoint shards, TF.js weight shards,
//! `saved_model.pb`, ONNX) or to pick between readings of the same bytes
//! (a compressed joblib dump, an unrecognised zip called `.keras`).
//!
//! Each container is recognised by its parser in `src/formats/` (the same
//! safetensors and GGUF parsers the tensor-aware cutter and the tensor reader
//! use, with the same limits). Nothing here unpickles, decompresses, or
//! executes anything: bytes are only compared, and every read is
//! bounds-checked, so hostile input can at worst produce
//! [`FileFormat::Unknown`].
//!
//! [`guess_framework`] turns the formats of a model's files into one
//! [`Framework`]; [`refine_with_siblings`] upgrades per-file results that need
//! the other files of the model to be decided (TF.js weight files with custom
//! names).

use serde::{Deserialize, Serialize};

use super::bytes::{contains, file_name, has_suffix_ci, looks_like_text, parent_dir, skip_json_ws};
use super::ctranslate2::is_ctranslate2;
use super::flatbuffers::{is_megengine, is_tflite};
use super::hdf5::{hdf5_after_userblock, HDF5_SIG};
use super::json::json_root;
use super::onnx::{onnx_check, OnnxCheck};
use super::pickle::{
    is_compressed_stream, is_pickle_v2plus, joblib_name, pickle_like_name, pickle_walk_ok,
    TORCH_LEGACY_MAGIC,
};
use super::tensorflow::{is_tf_data_name, is_tf_index, is_tfjs_shard_name};
use super::ubjson::ubj_first_key;
use super::zip::{zip_entry_names, ZIP_LOCAL};
use super::{gguf, safetensors};

/// How many leading bytes [`detect`] wants to see (64 KiB). Longer heads are
/// cut to this length, so the answer never depends on how much a caller read.
pub const HEAD_LEN: usize = 65536;

/// Format of one stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum FileFormat {
    /// safetensors: u64 LE header length, JSON header (at most 100,000,000
    /// bytes, starting with `{`), raw tensor data.
    Safetensors,
    /// PyTorch `torch.save` zip archive (`<name>/data.pkl`, `<name>/data/0`…).
    PytorchZip,
    /// Pickle-based legacy `torch.save` (`.pt`/`.pth`/`.bin`), starting with
    /// the pickled torch magic number.
    PytorchLegacy,
    /// A generic Python pickle.
    Pickle,
    /// A joblib dump (plain or compressed pickle), or a pickle of
    /// scikit-learn objects (which `joblib.load` reads as well).
    Joblib,
    /// A fastai export (`export.pkl`): a torch save or pickle of fastai objects.
    FastaiPkl,
    /// TensorFlow SavedModel graph file (`saved_model.pb` / `.pbtxt`).
    TfSavedModelPb,
    /// TensorFlow checkpoint index (`variables.index`, `*.ckpt*.index`).
    TfCheckpointIndex,
    /// TensorFlow checkpoint data shard (`*.data-00000-of-00001`).
    TfCheckpointData,
    /// Keras 3 `.keras` zip archive (`metadata.json`, `config.json`,
    /// `model.weights.h5`).
    Keras3,
    /// HDF5 file (Keras `.h5`, legacy `.keras`, `.weights.h5`).
    Hdf5,
    /// ONNX protobuf `ModelProto`.
    Onnx,
    /// MegEngine serialized graph (`.mge`).
    MegEngine,
    /// CatBoost binary model (`.cbm`).
    CatBoost,
    /// XGBoost model saved as JSON.
    XgboostJson,
    /// XGBoost model saved as Universal Binary JSON (`.ubj`).
    XgboostUbj,
    /// GGUF (llama.cpp) model: version 2 or 3, little-endian (what the
    /// layout parser reads).
    Gguf,
    /// TensorFlow Lite FlatBuffer (`.tflite`).
    Tflite,
    /// TensorFlow.js `model.json` (topology plus weights manifest).
    TfjsModelJson,
    /// TensorFlow.js binary weight shard (`group1-shard1of2.bin`).
    TfjsWeights,
    /// CTranslate2 `model.bin`.
    Ctranslate2,
    /// Any other JSON document (configs, tokenizers…).
    Json,
    /// Not recognised.
    Unknown,
}

/// Framework guess for a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum Framework {
    /// PyTorch.
    Pytorch,
    /// TensorFlow (SavedModel, checkpoints, TFLite).
    Tensorflow,
    /// Keras (HDF5 or `.keras`).
    Keras,
    /// ONNX.
    Onnx,
    /// scikit-learn (joblib / pickle).
    ScikitLearn,
    /// XGBoost.
    Xgboost,
    /// CatBoost.
    Catboost,
    /// fastai.
    Fastai,
    /// MegEngine.
    Megengine,
    /// TensorFlow.js.
    Tfjs,
    /// GGUF (llama.cpp).
    Gguf,
    /// CTranslate2.
    Ctranslate2,
    /// safetensors only: framework-neutral weights.
    Safetensors,
    /// Nothing fits.
    Unknown,
}

pub(super) const ALL_FORMATS: [FileFormat; 23] = [
    FileFormat::Safetensors,
    FileFormat::PytorchZip,
    FileFormat::PytorchLegacy,
    FileFormat::Pickle,
    FileFormat::Joblib,
    FileFormat::FastaiPkl,
    FileFormat::TfSavedModelPb,
    FileFormat::TfCheckpointIndex,
    FileFormat::TfCheckpointData,
    FileFormat::Keras3,
    FileFormat::Hdf5,
    FileFormat::Onnx,
    FileFormat::MegEngine,
    FileFormat::CatBoost,
    FileFormat::XgboostJson,
    FileFormat::XgboostUbj,
    FileFormat::Gguf,
    FileFormat::Tflite,
    FileFormat::TfjsModelJson,
    FileFormat::TfjsWeights,
    FileFormat::Ctranslate2,
    FileFormat::Json,
    FileFormat::Unknown,
];

pub(super) const ALL_FRAMEWORKS: [Framework; 14] = [
    Framework::Pytorch,
    Framework::Tensorflow,
    Framework::Keras,
    Framework::Onnx,
    Framework::ScikitLearn,
    Framework::Xgboost,
    Framework::Catboost,
    Framework::Fastai,
    Framework::Megengine,
    Framework::Tfjs,
    Framework::Gguf,
    Framework::Ctranslate2,
    Framework::Safetensors,
    Framework::Unknown,
];

impl FileFormat {
    /// The snake_case name, the same as the serde representation.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Safetensors => "safetensors",
            FileFormat::PytorchZip => "pytorch_zip",
            FileFormat::PytorchLegacy => "pytorch_legacy",
            FileFormat::Pickle => "pickle",
            FileFormat::Joblib => "joblib",
            FileFormat::FastaiPkl => "fastai_pkl",
            FileFormat::TfSavedModelPb => "tf_saved_model_pb",
            FileFormat::TfCheckpointIndex => "tf_checkpoint_index",
            FileFormat::TfCheckpointData => "tf_checkpoint_data",
            FileFormat::Keras3 => "keras3",
            FileFormat::Hdf5 => "hdf5",
            FileFormat::Onnx => "onnx",
            FileFormat::MegEngine => "meg_engine",
            FileFormat::CatBoost => "cat_boost",
            FileFormat::XgboostJson => "xgboost_json",
            FileFormat::XgboostUbj => "xgboost_ubj",
            FileFormat::Gguf => "gguf",
            FileFormat::Tflite => "tflite",
            FileFormat::TfjsModelJson => "tfjs_model_json",
            FileFormat::TfjsWeights => "tfjs_weights",
            FileFormat::Ctranslate2 => "ctranslate2",
            FileFormat::Json => "json",
            FileFormat::Unknown => "unknown",
        }
    }

    /// Parses a name produced by [`FileFormat::name`]; `None` for anything else.
    pub fn from_name(s: &str) -> Option<Self> {
        ALL_FORMATS.iter().copied().find(|f| f.name() == s)
    }
}

impl Framework {
    /// The snake_case name, the same as the serde representation.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Pytorch => "pytorch",
            Framework::Tensorflow => "tensorflow",
            Framework::Keras => "keras",
            Framework::Onnx => "onnx",
            Framework::ScikitLearn => "scikit_learn",
            Framework::Xgboost => "xgboost",
            Framework::Catboost => "catboost",
            Framework::Fastai => "fastai",
            Framework::Megengine => "megengine",
            Framework::Tfjs => "tfjs",
            Framework::Gguf => "gguf",
            Framework::Ctranslate2 => "ctranslate2",
            Framework::Safetensors => "safetensors",
            Framework::Unknown => "unknown",
        }
    }

    /// Parses a name produced by [`Framework::name`]; `None` for anything else.
    pub fn from_name(s: &str) -> Option<Self> {
        ALL_FRAMEWORKS.iter().copied().find(|f| f.name() == s)
    }
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Detects a file's format from its first bytes (`head`, up to [`HEAD_LEN`]
/// of them; may be shorter than the file), its total length and its relative
/// path (`/`-separated; used for the name/extension and for
/// sibling-independent hints only).
///
/// Content is checked first; the name only breaks ties for formats without a
/// magic number. Bytes past `len` or past [`HEAD_LEN`] are ignored. Never
/// panics, whatever the input.
pub fn detect(path: &str, head: &[u8], len: u64) -> FileFormat {
    let cap = head
        .len()
        .min(HEAD_LEN)
        .min(usize::try_from(len).unwrap_or(usize::MAX));
    let head = head.get(..cap).unwrap_or(&[]);
    let complete = head.len() as u64 == len;
    let name = file_name(path);

    if let Some(f) = detect_magic(name, head, len) {
        return f;
    }
    if let Some(f) = detect_by_name(name, head) {
        return f;
    }
    if let Some(f) = detect_text(head, complete) {
        return f;
    }
    detect_tiebreak(name, head, complete).unwrap_or(FileFormat::Unknown)
}

/// Upgrades per-file results that only the other files of the same model can
/// decide: a `.bin` file left [`FileFormat::Unknown`] in a folder that holds a
/// TF.js `model.json` ([`FileFormat::TfjsModelJson`]) is a TF.js weight file
/// whatever its name (weights manifests may name shards freely).
pub fn refine_with_siblings(files: &mut [(String, FileFormat)]) {
    let tfjs_dirs: Vec<String> = files
        .iter()
        .filter(|(_, f)| *f == FileFormat::TfjsModelJson)
        .map(|(p, _)| parent_dir(p).to_owned())
        .collect();
    if tfjs_dirs.is_empty() {
        return;
    }
    for (path, format) in files.iter_mut() {
        if *format == FileFormat::Unknown
            && has_suffix_ci(file_name(path), ".bin")
            && tfjs_dirs.iter().any(|d| d == parent_dir(path))
        {
            *format = FileFormat::TfjsWeights;
        }
    }
}

/// Guesses a model's framework from its files' (path, format) pairs, e.g. a
/// folder with `saved_model.pb` + `variables/variables.index` ⇒ Tensorflow;
/// `model.json` + `*.bin` shards ⇒ Tfjs; a `.pt` zip ⇒ Pytorch; `*.h5` /
/// `.keras` ⇒ Keras; a scikit-learn pickle ([`FileFormat::Joblib`]) ⇒
/// ScikitLearn. [`Framework::Unknown`] if nothing fits.
///
/// When a folder mixes formats, framework-specific formats win over exports
/// and neutral containers, in this order: TF.js `model.json`, TensorFlow
/// graph/checkpoint, fastai, PyTorch, Keras 3, HDF5 (Keras), CatBoost,
/// XGBoost, joblib, MegEngine, safetensors, TF.js weight shards, ONNX,
/// TFLite, GGUF, CTranslate2. Generic pickles and JSON decide nothing. So a
/// Hugging Face folder with `model.safetensors` and `pytorch_model.bin` is
/// Pytorch, one with only safetensors is Safetensors, and one with
/// safetensors plus an `onnx/` export stays Safetensors.
pub fn guess_framework(files: &[(String, FileFormat)]) -> Framework {
    files
        .iter()
        .filter_map(|(_, f)| framework_rank(*f))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, fw)| fw)
        .unwrap_or(Framework::Unknown)
}

/// The framework a format points to, with its priority (lower wins).
fn framework_rank(f: FileFormat) -> Option<(u8, Framework)> {
    use FileFormat as F;
    Some(match f {
        F::TfjsModelJson => (0, Framework::Tfjs),
        F::TfSavedModelPb | F::TfCheckpointIndex | F::TfCheckpointData => {
            (1, Framework::Tensorflow)
        }
        F::FastaiPkl => (2, Framework::Fastai),
        F::PytorchZip | F::PytorchLegacy => (3, Framework::Pytorch),
        F::Keras3 => (4, Framework::Keras),
        F::Hdf5 => (5, Framework::Keras),
        F::CatBoost => (6, Framework::Catboost),
        F::XgboostJson | F::XgboostUbj => (7, Framework::Xgboost),
        F::Joblib => (8, Framework::ScikitLearn),
        F::MegEngine => (9, Framework::Megengine),
        F::Safetensors => (10, Framework::Safetensors),
        F::TfjsWeights => (11, Framework::Tfjs),
        F::Onnx => (12, Framework::Onnx),
        F::Tflite => (13, Framework::Tensorflow),
        F::Gguf => (14, Framework::Gguf),
        F::Ctranslate2 => (15, Framework::Ctranslate2),
        F::Pickle | F::Json | F::Unknown => return None,
    })
}

// ---------------------------------------------------------------------------
// Stage 1: content with a magic number or a checkable layout
// ---------------------------------------------------------------------------

fn detect_magic(name: &str, head: &[u8], len: u64) -> Option<FileFormat> {
    if gguf::detect(head, len) {
        return Some(FileFormat::Gguf);
    }
    if is_tflite(head, len) {
        return Some(FileFormat::Tflite);
    }
    if head.starts_with(b"CBM1") {
        return Some(FileFormat::CatBoost);
    }
    if is_megengine(head, len) {
        return Some(FileFormat::MegEngine);
    }
    if head.starts_with(HDF5_SIG) {
        return Some(FileFormat::Hdf5);
    }
    if head.starts_with(ZIP_LOCAL) {
        return Some(classify_zip(name, head));
    }
    if head.starts_with(TORCH_LEGACY_MAGIC) {
        return Some(if contains(head, b"fastai") {
            FileFormat::FastaiPkl
        } else {
            FileFormat::PytorchLegacy
        });
    }
    if is_pickle_v2plus(head, len) {
        return Some(classify_pickle(name, head));
    }
    if is_compressed_stream(head) && pickle_like_name(name) {
        return Some(FileFormat::Joblib);
    }
    if safetensors::detect(head, len) {
        return Some(FileFormat::Safetensors);
    }
    if is_ctranslate2(name, head) {
        return Some(FileFormat::Ctranslate2);
    }
    if ubj_first_key(head) == Some(b"learner".as_slice()) {
        return Some(FileFormat::XgboostUbj);
    }
    if onnx_check(head) == OnnxCheck::Strong {
        return Some(FileFormat::Onnx);
    }
    if hdf5_after_userblock(head) {
        return Some(FileFormat::Hdf5);
    }
    None
}

fn classify_zip(name: &str, head: &[u8]) -> FileFormat {
    let entries = zip_entry_names(head);
    let torch = entries.iter().any(|e| {
        let nested = e.contains(&b'/');
        let leaf = e.rsplit(|&b| b == b'/').next().unwrap_or(e);
        nested && (leaf == b"data.pkl" || leaf == b"constants.pkl")
    });
    if torch {
        return if contains(head, b"fastai") {
            FileFormat::FastaiPkl
        } else {
            FileFormat::PytorchZip
        };
    }
    let has = |n: &[u8]| entries.contains(&n);
    let keras = has(b"model.weights.h5")
        || has(b"model.weights.npz")
        || (has(b"metadata.json") && (has(b"config.json") || contains(head, b"keras_version")));
    if keras || has_suffix_ci(name, ".keras") {
        return FileFormat::Keras3;
    }
    let torch_ext = [".pt", ".pth", ".pt2", ".ptl", ".ckpt"]
        .iter()
        .any(|x| has_suffix_ci(name, x));
    if torch_ext && entries.first().is_none_or(|e| e.contains(&b'/')) {
        return FileFormat::PytorchZip;
    }
    FileFormat::Unknown
}

fn classify_pickle(name: &str, head: &[u8]) -> FileFormat {
    if contains(head, b"fastai") {
        FileFormat::FastaiPkl
    } else if contains(head, b"joblib.numpy_pickle")
        || contains(head, b"NumpyArrayWrapper")
        || joblib_name(name)
        || contains(head, b"sklearn")
    {
        FileFormat::Joblib
    } else {
        FileFormat::Pickle
    }
}

// ---------------------------------------------------------------------------
// Stage 2: formats without a magic number, recognised by name plus a sanity
// check of the content
// ---------------------------------------------------------------------------

fn detect_by_name(name: &str, head: &[u8]) -> Option<FileFormat> {
    if name.eq_ignore_ascii_case("saved_model.pb")
        && matches!(head.first(), Some(0x08) | Some(0x12))
    {
        return Some(FileFormat::TfSavedModelPb);
    }
    if name.eq_ignore_ascii_case("saved_model.pbtxt") {
        let body = head.get(skip_json_ws(head, 0)..).unwrap_or(&[]);
        if body.starts_with(b"saved_model_schema_version") || body.starts_with(b"meta_graphs") {
            return Some(FileFormat::TfSavedModelPb);
        }
    }
    if is_tf_index(name, head) {
        return Some(FileFormat::TfCheckpointIndex);
    }
    if is_tf_data_name(name) {
        return Some(FileFormat::TfCheckpointData);
    }
    if has_suffix_ci(name, ".onnx") && onnx_check(head) != OnnxCheck::No {
        return Some(FileFormat::Onnx);
    }
    if is_tfjs_shard_name(name) && !head.is_empty() && !looks_like_text(head, true) {
        return Some(FileFormat::TfjsWeights);
    }
    None
}

// ---------------------------------------------------------------------------
// Stage 3: text (JSON family)
// ---------------------------------------------------------------------------

fn detect_text(head: &[u8], complete: bool) -> Option<FileFormat> {
    let root = json_root(head, complete)?;
    if root == b'{' {
        if contains(head, b"\"modelTopology\"") || contains(head, b"\"weightsManifest\"") {
            return Some(FileFormat::TfjsModelJson);
        }
        if contains(head, b"\"learner\"")
            && (contains(head, b"\"version\"")
                || contains(head, b"\"gradient_booster\"")
                || contains(head, b"\"learner_model_param\""))
        {
            return Some(FileFormat::XgboostJson);
        }
    }
    Some(FileFormat::Json)
}
// ---------------------------------------------------------------------------
// Stage 4: extension tiebreaks for weak content
// ---------------------------------------------------------------------------

fn detect_tiebreak(name: &str, head: &[u8], complete: bool) -> Option<FileFormat> {
    if has_suffix_ci(name, ".ubj") && ubj_first_key(head).is_some() {
        return Some(FileFormat::XgboostUbj);
    }
    if has_suffix_ci(name, ".mge") && !head.is_empty() && !looks_like_text(head, !complete) {
        return Some(FileFormat::MegEngine);
    }
    // Protocol 0/1 pickles carry no PROTO opcode: a pickle name plus a
    // typical first opcode (MARK, empty dict/list/tuple, GLOBAL).
    if pickle_like_name(name)
        && matches!(head.first(), Some(b'(' | b'}' | b']' | b')' | b'c'))
        && head.len() >= 2
        && pickle_walk_ok(head, 0, head.len() as u64)
    {
        return Some(classify_pickle(name, head));
    }
    None
}
