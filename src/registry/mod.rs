//! The registry: named things on top of blobs. For now, models with numbered
//! versions, each version a set of (relative path → blob).

pub mod detect;
mod names;
pub mod query;
#[cfg(feature = "store")]
mod versions;

pub use names::{check_name, check_path};
#[cfg(feature = "store")]
pub use versions::{ModelSummary, ModelVersion};
