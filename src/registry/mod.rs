//! The registry: experiments and models on top of blobs, with the secondary
//! indexes that link them.
//!
//! - [`experiment`]: code execution sessions and their captures.
//! - [`model`]: models with ids, versions, metadata, aliases, URLs.
//! - `version_upload`: a version of many staged files in bounded memory.
//! - [`put`]: version policy: storing files as a model's next version
//!   (delta base choice, reverse delta, creating the model).
//! - `search`: answering queries from the secondary indexes (their key
//!   layouts are `meta::registry_index`).
//! - [`repair`]: `Store::verify_index` and `Store::rebuild_index` (the
//!   comparison itself is `verify::index`).
//! - Format detection is `crate::formats::detect`; the query language is
//!   [`crate::query`].

#[cfg(feature = "store")]
mod common;
#[cfg(feature = "store")]
pub mod delete;
#[cfg(feature = "store")]
pub mod experiment;
#[cfg(feature = "store")]
pub mod model;
#[cfg(all(test, feature = "store"))]
mod plan_tests;
#[cfg(feature = "store")]
pub mod put;
#[cfg(feature = "store")]
pub mod repair;
#[cfg(feature = "store")]
mod search;
#[cfg(feature = "store")]
pub mod usage;
#[cfg(all(test, feature = "store"))]
mod usage_tests;
#[cfg(feature = "store")]
pub mod version;
#[cfg(feature = "store")]
pub(crate) mod version_upload;
