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
