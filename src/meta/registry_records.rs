//! The registry's records as stored (postcard behind a version byte, see
//! [`super::records`]), and the public types they hold. The registry
//! (`crate::registry`) builds its public views from them; gc and verify read
//! them to count and check the blobs they name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::formats::detect::{FileFormat, Framework};
use crate::id::BlobId;
use crate::query::Value;

/// A 128-bit entity id: a UUID v7, so ids sort by creation time.
/// Serialized as 16 bytes in records and as the UUID string in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(pub [u8; 16]);

impl Serialize for EntityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(EntityId)
        }
    }
}

impl EntityId {
    pub(crate) fn new_v7() -> Self {
        EntityId(*uuid::Uuid::now_v7().as_bytes())
    }

    /// The id as a UUID.
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.0)
    }

    /// The smallest v7 id created at or after `ms` (Unix milliseconds): a
    /// lower bound for time-range scans.
    pub fn lower_bound_at(ms: u64) -> Self {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        EntityId(b)
    }

    /// Creation time encoded in a v7 id, Unix milliseconds.
    pub fn created_ms(&self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(b)
    }
}

impl EntityId {
    /// The id stored in `b`; an error unless it is 16 bytes.
    #[cfg(feature = "store")]
    pub(crate) fn try_from_slice(b: &[u8]) -> crate::error::Result<Self> {
        <[u8; 16]>::try_from(b)
            .map(EntityId)
            .map_err(|_| Error::corrupt("entity id", format!("{} bytes, expected 16", b.len())))
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uuid(), f)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EntityId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        uuid::Uuid::parse_str(s)
            .map(|u| EntityId(*u.as_bytes()))
            .map_err(|e| Error::invalid("id", s, e))
    }
}

/// Where an experiment is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum Status {
    /// Created, not started.
    Created,
    /// Running: captures may be written.
    Running,
    /// Finished successfully (final).
    Completed,
    /// Finished with an error (final).
    Failed,
    /// Stopped by a user (final).
    Stopped,
}

impl Status {
    /// Completed, failed and stopped are final: nothing changes afterwards.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Stopped)
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }

    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "stopped" => Status::Stopped,
            _ => {
                return Err(Error::invalid(
                    "status",
                    s,
                    "expected created, running, completed, failed or stopped",
                ))
            }
        })
    }
}

/// The Python (or other) environment an experiment ran in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Environment {
    /// Interpreter and version, e.g. `CPython 3.11.7`.
    pub interpreter: String,
    /// Installed packages: name → version.
    pub packages: BTreeMap<String, String>,
    /// Free-form requirements text (`requirements.txt`, a lock file…).
    pub requirements: String,
}

/// Where and how an experiment ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunInfo {
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
    /// Command line.
    pub command: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// Git repository URL or path.
    pub git_repo: Option<String>,
    /// Git commit.
    pub git_commit: Option<String>,
    /// Uncommitted diff at start.
    pub git_diff: Option<String>,
}

/// `experiments` value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExperimentRecord {
    pub project: String,
    pub name: String,
    pub tags: Vec<String>,
    pub kind: Option<String>,
    pub status: Status,
    pub progress: u8,
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub updated_ms: u64,
    pub environment: Option<Environment>,
    pub run: Option<RunInfo>,
    /// `Section/key` → value.
    pub params: BTreeMap<String, Value>,
    /// Models used: (model, version).
    pub inputs: Vec<(EntityId, u32)>,
    pub console_lines: u64,
}

/// Which stream a console line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One console line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ConsoleLine {
    /// Position in the experiment's console, from 0.
    pub seq: u64,
    /// When it was logged, Unix milliseconds.
    pub ts_ms: u64,
    /// Which stream.
    pub stream: Stream,
    /// The text, without a trailing newline.
    pub text: String,
}

/// `console` value (the sequence number is in the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConsoleRecord {
    pub ts_ms: u64,
    pub stream: Stream,
    pub text: String,
}

/// What an artifact holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum ArtifactBody {
    /// Stored bytes.
    Blob {
        /// The content.
        blob: BlobId,
        /// Its length.
        size: u64,
    },
    /// A small inline value (a dict becomes a list of pairs or a JSON string).
    Inline(Value),
}

/// One revision of a named artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Artifact {
    /// Artifact name.
    pub name: String,
    /// Revision, from 1; uploading the same name again adds one.
    pub revision: u32,
    /// The content.
    pub body: ArtifactBody,
    /// Free metadata.
    pub metadata: BTreeMap<String, Value>,
    /// Upload time, Unix milliseconds.
    pub created_ms: u64,
}

/// `artifacts` value (name and revision are in the key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArtifactRecord {
    pub body: ArtifactBody,
    pub metadata: BTreeMap<String, Value>,
    pub created_ms: u64,
}

/// A model that lives elsewhere, registered by URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct External {
    /// Where the bytes are.
    pub url: String,
    /// Optional checksum as given (e.g. `sha256:…`).
    pub checksum: Option<String>,
}

/// `models` value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelRecord {
    pub name: String,
    pub project: String,
    pub framework: Framework,
    pub framework_set: bool,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, i64>,
    pub design: Option<String>,
    pub metadata: BTreeMap<String, Value>,
    pub comment: Option<String>,
    pub experiment: Option<EntityId>,
    pub parent: Option<EntityId>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finalized_ms: Option<u64>,
    pub latest: u32,
    pub aliases: BTreeMap<String, u32>,
    pub external: Option<External>,
}

/// One file of a model version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct VersionFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Content.
    pub blob: BlobId,
    /// Length in bytes.
    pub size: u64,
    /// Format detected from the content.
    pub format: FileFormat,
}

/// `versions` value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    pub files: Vec<VersionFile>,
    pub created_ms: u64,
    pub experiment: Option<EntityId>,
}
