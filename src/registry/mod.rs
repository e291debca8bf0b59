//! The registry: named things on top of blobs. For now, models with numbered
//! versions, each version a set of (relative path → blob).

mod names;
mod versions;

pub use names::{check_name, check_path};
pub use versions::{ModelSummary, ModelVersion};
