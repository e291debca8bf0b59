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
//! Nothing here unpickles, decompresses, or executes anything: bytes are only
//! compared, and every read is bounds-checked, so hostile input can at worst
//! produce [`FileFormat::Unknown`].
//!
//! [`guess_framework`] turns the formats of a model's files into one
//! [`Framework`]; [`refine_with_siblings`] upgrades per-file results that need
//! the other files of the model to be decided (TF.js weight files with custom
//! names).

use serde::{Deserialize, Serialize};

/// How many leading bytes [`detect`] wants to see (64 KiB). Longer heads are
/// cut to this length, so the answer never depends on how much a caller read.
pub const HEAD_LEN: usize = 65536;

/// Format of one stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileFormat {
    /// safetensors: u64 LE header length, JSON header, raw tensor data.
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
    /// GGUF (llama.cpp) model.
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

const ALL_FORMATS: [FileFormat; 23] = [
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

const ALL_FRAMEWORKS: [Framework; 14] = [
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

const HDF5_SIG: &[u8] = b"\x89HDF\r\n\x1a\n";
const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
/// `pickle.dump(0x1950a86a20f9469cfc6c, protocol=2)`: protocol 2, LONG1 of 10 bytes.
const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

fn detect_magic(name: &str, head: &[u8], len: u64) -> Option<FileFormat> {
    if is_gguf(head) {
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
    if is_safetensors(head, len) {
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

fn is_gguf(head: &[u8]) -> bool {
    if !head.starts_with(b"GGUF") {
        return false;
    }
    // The version is written in the file's byte order; accept either.
    match read_array::<4>(head, 4) {
        Some(v) => {
            let le = u32::from_le_bytes(v);
            let be = u32::from_be_bytes(v);
            (1..=3).contains(&le) || (1..=3).contains(&be)
        }
        None => false,
    }
}

fn is_tflite(head: &[u8], len: u64) -> bool {
    if head.get(4..8) != Some(b"TFL3".as_slice()) {
        return false;
    }
    // FlatBuffer: u32 offset to the root table, which must lie in the file.
    match u32_le(head, 0) {
        Some(root) => root >= 8 && u64::from(root) < len,
        None => false,
    }
}

fn is_megengine(head: &[u8], len: u64) -> bool {
    // FlatBuffers v1 dumps: u32 magic "MGBC" (or the older "MGBS") followed by
    // four reserved zero bytes.
    let v1 = matches!(head.get(0..4), Some(b"MGBC") | Some(b"MGBS"))
        && head.get(4..8) == Some([0u8; 4].as_slice());
    // FlatBuffers v2: size-prefixed buffer with file identifier "mgv2".
    let v2 = head.get(8..12) == Some(b"mgv2".as_slice())
        && u32_le(head, 0).is_some_and(|size| u64::from(size) + 4 <= len)
        && u32_le(head, 4).is_some_and(|root| root >= 8);
    // MegEngine Lite packed model.
    let packed = head.starts_with(b"packed_model");
    v1 || v2 || packed
}

fn hdf5_after_userblock(head: &[u8]) -> bool {
    // A user block shifts the superblock to 512, 1024, 2048, … bytes.
    let mut off: usize = 512;
    while off < head.len() {
        if head.get(off..).is_some_and(|t| t.starts_with(HDF5_SIG)) {
            return true;
        }
        off = match off.checked_mul(2) {
            Some(o) => o,
            None => break,
        };
    }
    false
}

// --- safetensors -----------------------------------------------------------

const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

fn is_safetensors(head: &[u8], len: u64) -> bool {
    let n = match read_array::<8>(head, 0) {
        Some(b) => u64::from_le_bytes(b),
        None => return false,
    };
    if !(2..=SAFETENSORS_MAX_HEADER).contains(&n) || 8 + n > len {
        return false;
    }
    // n ≤ 100 MB, so it fits in usize on every supported target.
    let end = usize::try_from(8 + n).unwrap_or(usize::MAX);
    let whole = end <= head.len();
    let header = head.get(8..end.min(head.len())).unwrap_or(&[]);
    let i = skip_json_ws(header, 0);
    if header.get(i) != Some(&b'{') {
        return false;
    }
    if whole {
        return serde_json::from_slice::<serde::de::IgnoredAny>(header).is_ok();
    }
    if !looks_like_text(header, true) {
        return false;
    }
    matches!(
        header.get(skip_json_ws(header, i + 1)),
        None | Some(b'"') | Some(b'}')
    )
}

// --- zip archives ------------------------------------------------------------

/// Names of the zip entries whose local headers lie within `head`.
fn zip_entry_names(head: &[u8]) -> Vec<&[u8]> {
    const MAX_ENTRIES: usize = 256;
    let mut names = Vec::new();
    let mut p: usize = 0;
    while names.len() < MAX_ENTRIES {
        if head.get(p..).is_none_or(|t| !t.starts_with(ZIP_LOCAL)) {
            break;
        }
        let (flags, csize, n, e) = match (
            u16_le(head, p + 6),
            u32_le(head, p + 18),
            u16_le(head, p + 26),
            u16_le(head, p + 28),
        ) {
            (Some(f), Some(c), Some(n), Some(e)) => (f, c, usize::from(n), usize::from(e)),
            _ => break,
        };
        let name_start = p + 30;
        let name = match head.get(name_start..name_start + n) {
            Some(name) => name,
            None => break,
        };
        names.push(name);
        let extra = match head.get(name_start + n..name_start + n + e) {
            Some(x) => x,
            None => break,
        };
        let mut size = u64::from(csize);
        if csize == u32::MAX {
            // Zip64: the real sizes are in the 0x0001 extra field.
            match zip64_compressed_size(extra) {
                Some(s) => size = s,
                None => break,
            }
        }
        let has_descriptor = flags & 0x0008 != 0;
        if has_descriptor && size == 0 {
            // Sizes follow the data; the next header cannot be located.
            break;
        }
        let data_start = (name_start + n + e) as u64;
        let mut next = match data_start.checked_add(size) {
            Some(x) if x <= head.len() as u64 => x as usize,
            _ => break,
        };
        if has_descriptor {
            // Optional signature, crc32, compressed and uncompressed sizes.
            next += if head
                .get(next..)
                .is_some_and(|t| t.starts_with(b"PK\x07\x08"))
            {
                16
            } else {
                12
            };
        }
        p = next;
    }
    names
}

fn zip64_compressed_size(extra: &[u8]) -> Option<u64> {
    let mut i = 0usize;
    while i + 4 <= extra.len() {
        let id = u16_le(extra, i)?;
        let size = usize::from(u16_le(extra, i + 2)?);
        if id == 0x0001 {
            // Uncompressed size, then compressed size.
            return read_array::<8>(extra, i + 12).map(u64::from_le_bytes);
        }
        i += 4 + size;
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

// --- pickles -----------------------------------------------------------------

/// How an opcode's argument is encoded.
enum PickleArg {
    /// No argument.
    NoArg,
    Fixed(usize),
    /// A little-endian length of this many bytes, then that many bytes.
    Counted(usize),
    /// This many newline-terminated ASCII lines.
    Lines(usize),
}

/// The argument encoding of every opcode defined by pickle protocols 0–5.
fn pickle_arg(op: u8) -> Option<PickleArg> {
    use PickleArg::*;
    Some(match op {
        b'('
        | b'.'
        | b'0'
        | b'1'
        | b'2'
        | b'N'
        | b'Q'
        | b'R'
        | b'a'
        | b'b'
        | b'd'
        | b'}'
        | b'e'
        | b'l'
        | b']'
        | b'o'
        | b's'
        | b't'
        | b')'
        | b'u'
        | 0x81
        | 0x85..=0x89
        | 0x8f..=0x94
        | 0x97
        | 0x98 => NoArg,
        b'K' | b'h' | b'q' | 0x80 | 0x82 => Fixed(1),
        b'M' | 0x83 => Fixed(2),
        b'J' | b'j' | b'r' | 0x84 => Fixed(4),
        b'G' | 0x95 => Fixed(8),
        b'U' | b'C' | 0x8c | 0x8a => Counted(1),
        b'T' | b'X' | b'B' | 0x8b => Counted(4),
        0x8d | 0x8e | 0x96 => Counted(8),
        b'F' | b'I' | b'L' | b'P' | b'S' | b'V' | b'g' | b'p' => Lines(1),
        b'c' | b'i' => Lines(2),
        _ => return None,
    })
}

/// Walks the first opcodes of a pickle starting at `start`: every opcode must
/// exist and its argument must be well formed, up to STOP, the end of `head`,
/// or 32 opcodes. Nothing is interpreted.
fn pickle_walk_ok(head: &[u8], start: usize, len: u64) -> bool {
    let mut i = start;
    for _ in 0..32 {
        let Some(&op) = head.get(i) else {
            return true;
        };
        i += 1;
        let Some(arg) = pickle_arg(op) else {
            return false;
        };
        match arg {
            PickleArg::NoArg => {
                if op == b'.' {
                    return true;
                }
            }
            PickleArg::Fixed(n) => {
                if op == 0x95 {
                    // FRAME: the frame must fit in the file.
                    match read_array::<8>(head, i).map(u64::from_le_bytes) {
                        Some(f) if f > len.saturating_sub(i as u64 + 8) => return false,
                        Some(_) => {}
                        None => return true,
                    }
                }
                if op == 0x80 && head.get(i).is_some_and(|&p| p > 5) {
                    return false;
                }
                i += n;
            }
            PickleArg::Counted(w) => {
                let Some(bytes) = head.get(i..i + w) else {
                    return true;
                };
                let n = bytes
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                if n > len {
                    return false;
                }
                i = match usize::try_from(n).ok().and_then(|n| (i + w).checked_add(n)) {
                    Some(next) => next,
                    None => return true,
                };
            }
            PickleArg::Lines(k) => {
                for _ in 0..k {
                    let rest = head.get(i..).unwrap_or(&[]);
                    let window = rest.get(..rest.len().min(512)).unwrap_or(rest);
                    match window.iter().position(|&b| b == b'\n') {
                        Some(nl) => {
                            if window.iter().take(nl).any(|&b| !(0x20..0x7f).contains(&b)) {
                                return false;
                            }
                            i += nl + 1;
                        }
                        None => return rest.len() < 512 && looks_like_text(rest, true),
                    }
                }
            }
        }
    }
    true
}

fn is_pickle_v2plus(head: &[u8], len: u64) -> bool {
    // PROTO opcode, protocol 2..=5, then well-formed opcodes. The smallest
    // pickle (`PROTO n; NONE; STOP`) is four bytes.
    let (Some(&0x80), Some(&proto), Some(_)) = (head.first(), head.get(1), head.get(2)) else {
        return false;
    };
    (2..=5).contains(&proto) && len >= 4 && pickle_walk_ok(head, 2, len)
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

/// zlib, gzip, bzip2, xz, lzma-alone, lz4-frame, or old joblib "ZF" streams.
fn is_compressed_stream(head: &[u8]) -> bool {
    let zlib = match (head.first(), head.get(1)) {
        (Some(&0x78), Some(&flg)) => {
            (0x7800u16 | u16::from(flg)).is_multiple_of(31) && flg & 0x20 == 0
        }
        _ => false,
    };
    zlib || head.starts_with(b"\x1f\x8b\x08")
        || (head.starts_with(b"BZh") && head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)))
        || head.starts_with(b"\xfd7zXZ\x00")
        || head.starts_with(b"\x5d\x00\x00")
        || head.starts_with(b"\x04\x22\x4d\x18")
        || head.starts_with(b"ZF0x")
}

// --- CTranslate2 ---------------------------------------------------------------

/// Reads a CTranslate2 string: u16 LE length including a trailing NUL, bytes.
fn ct2_string<'a>(head: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let n = usize::from(u16_le(head, *i)?);
    if !(1..=4096).contains(&n) {
        return None;
    }
    let s = head.get(*i + 2..*i + 2 + n)?;
    let (&last, body) = s.split_last()?;
    if last != 0 || body.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    std::str::from_utf8(body).ok()?;
    *i += 2 + n;
    Some(body)
}

fn is_ctranslate2(name: &str, head: &[u8]) -> bool {
    ct2_layout(name, head).is_some()
}

fn ct2_layout(name: &str, head: &[u8]) -> Option<()> {
    // u32 binary version; since version 2: spec name, u32 spec revision; then
    // u32 variable count and the first variable (name, u8 rank, u32 dims,
    // u8 dtype, u32 byte size).
    let version = u32_le(head, 0)?;
    if !(1..=10).contains(&version) {
        return None;
    }
    if version == 1 && !name.eq_ignore_ascii_case("model.bin") {
        return None;
    }
    let mut i = 4usize;
    if version >= 2 {
        let spec = ct2_string(head, &mut i)?;
        if !spec.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            return None;
        }
        let revision = u32_le(head, i)?;
        if revision > 1000 {
            return None;
        }
        i += 4;
    }
    let count = u32_le(head, i)?;
    if !(1..=1_000_000).contains(&count) {
        return None;
    }
    i += 4;
    let var = ct2_string(head, &mut i)?;
    if var.is_empty() {
        return None;
    }
    let rank = *head.get(i)?;
    if rank > 8 {
        return None;
    }
    // The dims, dtype and size must at least fit in the file's head when the
    // head is long enough to show them.
    let after = i + 1 + 4 * usize::from(rank);
    if head.len() >= after + 5 {
        let dtype = *head.get(after)?;
        if dtype > 15 {
            return None;
        }
    }
    Some(())
}

// --- UBJSON (XGBoost) ----------------------------------------------------------

fn ubj_int(head: &[u8], i: &mut usize) -> Option<u64> {
    let marker = *head.get(*i)?;
    *i += 1;
    let v: i64 = match marker {
        b'i' => i64::from(i8::from_be_bytes(read_array::<1>(head, *i)?)),
        b'U' => i64::from(u8::from_be_bytes(read_array::<1>(head, *i)?)),
        b'I' => i64::from(i16::from_be_bytes(read_array::<2>(head, *i)?)),
        b'l' => i64::from(i32::from_be_bytes(read_array::<4>(head, *i)?)),
        b'L' => i64::from_be_bytes(read_array::<8>(head, *i)?),
        _ => return None,
    };
    *i += match marker {
        b'i' | b'U' => 1,
        b'I' => 2,
        b'l' => 4,
        _ => 8,
    };
    u64::try_from(v).ok()
}

/// The first key of a UBJSON object at the start of `head`, if it parses.
fn ubj_first_key(head: &[u8]) -> Option<&[u8]> {
    if head.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1usize;
    if head.get(i) == Some(&b'$') {
        i += 2;
    }
    if head.get(i) == Some(&b'#') {
        i += 1;
        ubj_int(head, &mut i)?;
    }
    let n = usize::try_from(ubj_int(head, &mut i)?).ok()?;
    if !(1..=4096).contains(&n) {
        return None;
    }
    let key = head.get(i..i + n)?;
    let s = std::str::from_utf8(key).ok()?;
    if s.chars().any(char::is_control) {
        return None;
    }
    Some(key)
}

// --- ONNX (protobuf ModelProto) ------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum OnnxCheck {
    /// Not a plausible ModelProto start.
    No,
    /// `ir_version` then a valid field: enough together with a `.onnx` name.
    Weak,
    /// A fully parsed printable `producer_name` and more valid fields.
    Strong,
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn onnx_check(head: &[u8]) -> OnnxCheck {
    // Field 1 (ir_version, varint) comes first in every writer.
    if head.first() != Some(&0x08) {
        return OnnxCheck::No;
    }
    let mut i = 1usize;
    match varint(head, &mut i) {
        Some(v) if (1..=20).contains(&v) => {}
        _ => return OnnxCheck::No,
    }
    let after_version = i;
    let mut fields = 1usize;
    let mut producer = false;
    let mut structural = false; // graph (7) or opset_import (8)
    while i < head.len() && fields < 64 {
        let tag = match varint(head, &mut i) {
            Some(t) => t,
            None => break,
        };
        let (field, wire) = (tag >> 3, tag & 7);
        let known = matches!(
            (field, wire),
            (2..=4, 2) | (5, 0) | (6..=8, 2) | (14, 2) | (20, 2) | (25, 2)
        );
        if !known {
            return if fields >= 2 {
                OnnxCheck::Weak
            } else {
                OnnxCheck::No
            };
        }
        fields += 1;
        if wire == 0 {
            if varint(head, &mut i).is_none() {
                break;
            }
            continue;
        }
        let n = match varint(head, &mut i).and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => break,
        };
        let end = i.saturating_add(n);
        if matches!(field, 7 | 8) {
            structural = true;
        }
        if field == 2 {
            match head.get(i..end) {
                Some(s)
                    if !s.is_empty()
                        && std::str::from_utf8(s)
                            .is_ok_and(|t| !t.chars().any(char::is_control)) =>
                {
                    producer = true
                }
                _ => return OnnxCheck::Weak,
            }
        }
        if end > head.len() {
            break;
        }
        i = end;
    }
    if producer && structural && fields >= 3 {
        OnnxCheck::Strong
    } else if fields >= 2 || after_version == head.len() {
        OnnxCheck::Weak
    } else {
        OnnxCheck::No
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

fn is_tf_index(name: &str, head: &[u8]) -> bool {
    if !has_suffix_ci(name, ".index") || head.is_empty() || looks_like_text(head, true) {
        return false;
    }
    // The table's first entry is the bundle header under the empty key:
    // shared = 0, unshared = 0, value length, then BundleHeaderProto (field 1).
    let header_entry = head.starts_with(&[0, 0])
        && head.get(2).is_some_and(|&n| n < 0x80)
        && head.get(3) == Some(&0x08);
    header_entry || name.eq_ignore_ascii_case("variables.index") || contains_ci(name, "ckpt")
}

/// `<prefix>.data-NNNNN-of-NNNNN`.
fn is_tf_data_name(name: &str) -> bool {
    let Some(pos) = name.rfind(".data-") else {
        return false;
    };
    let Some(rest) = name.get(pos + ".data-".len()..) else {
        return false;
    };
    let Some((a, b)) = rest.split_once("-of-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|c| c.is_ascii_digit());
    pos > 0 && digits(a) && digits(b)
}

/// `group1-shard1of2.bin`, `group1-shard1of2`, or `*shard<N>of<M>.bin`.
fn is_tfjs_shard_name(name: &str) -> bool {
    let (stem, has_bin) = match strip_suffix_ci(name, ".bin") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let lower = stem.to_ascii_lowercase();
    let Some(pos) = lower.rfind("shard") else {
        return false;
    };
    let Some(tail) = lower.get(pos + "shard".len()..) else {
        return false;
    };
    let Some((a, b)) = tail.split_once("of") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return false;
    }
    if has_bin {
        return true;
    }
    // Without an extension only the canonical `group<N>-shard…` names.
    lower
        .strip_prefix("group")
        .and_then(|r| r.split_once("-shard"))
        .is_some_and(|(g, _)| digits(g))
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

/// `{` or `[` if `head` plausibly starts a JSON document: valid UTF-8 without
/// stray control characters, and either the whole file parses or the bytes
/// after the opening bracket can continue one.
fn json_root(head: &[u8], complete: bool) -> Option<u8> {
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let i = skip_json_ws(body, 0);
    let root = *body.get(i)?;
    if root != b'{' && root != b'[' {
        return None;
    }
    if !looks_like_text(body, !complete) {
        return None;
    }
    if complete {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
        return Some(root);
    }
    let ok = match body.get(skip_json_ws(body, i + 1)) {
        None => true,
        Some(&c) if root == b'{' => c == b'"' || c == b'}',
        Some(&c) => matches!(
            c,
            b'{' | b'[' | b']' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
        ),
    };
    ok.then_some(root)
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

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn read_array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    read_array::<2>(b, at).map(u16::from_le_bytes)
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    read_array::<4>(b, at).map(u32::from_le_bytes)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len().max(1))
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn skip_json_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Valid UTF-8 (a character cut by the end of a truncated head is allowed)
/// with no control characters other than tab, newline, form feed and CR.
fn looks_like_text(b: &[u8], truncated: bool) -> bool {
    let utf8 = match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => truncated && e.error_len().is_none(),
    };
    utf8 && !b
        .iter()
        .any(|&c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | 0x0c)) || c == 0x7f)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    if !s.is_char_boundary(cut) {
        return None;
    }
    let (stem, tail) = s.split_at(cut);
    tail.eq_ignore_ascii_case(suffix).then_some(stem)
}

fn has_suffix_ci(s: &str, suffix: &str) -> bool {
    strip_suffix_ci(s, suffix).is_some()
}

/// The name without one trailing compression extension (joblib appends them).
fn strip_compression_ext(name: &str) -> &str {
    [".z", ".gz", ".bz2", ".xz", ".lzma", ".lz4"]
        .iter()
        .find_map(|x| strip_suffix_ci(name, x))
        .unwrap_or(name)
}

fn joblib_name(name: &str) -> bool {
    let base = strip_compression_ext(name);
    has_suffix_ci(base, ".joblib") || has_suffix_ci(base, ".jbl")
}

fn pickle_like_name(name: &str) -> bool {
    let base = strip_compression_ext(name);
    joblib_name(name) || has_suffix_ci(base, ".pkl") || has_suffix_ci(base, ".pickle")
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn det(path: &str, bytes: &[u8]) -> FileFormat {
        detect(path, bytes, bytes.len() as u64)
    }

    /// Deterministic xorshift bytes.
    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
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
        // Leading whitespace is fine.
        assert_eq!(
            det("m.safetensors", &safetensors("  {}", 0)),
            FileFormat::Safetensors
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
        let mj =
            br#"{"format": "graph-model", "modelTopology": {"node": []}, "weightsManifest": []}"#;
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
        let j = br#"{"learner":{"attributes":{},"gradient_booster":{"name":"gbtree"}},"version":[2,0,3]}"#;
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
}
