//! Model versions: `name@N` → files. Versions are immutable and numbered
//! from 1; committing a version checks that every blob it names is stored.

use std::time::{SystemTime, UNIX_EPOCH};

use super::names::{check_name, check_path};
use crate::error::{Error, Result};
use crate::meta::records::{self, FileEntry, ModelRecord, VersionRecord};
use crate::meta::{keys, Batch, Cf};
use crate::store::Store;

/// One committed version of a model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModelVersion {
    /// Model name.
    pub name: String,
    /// Version number, from 1.
    pub version: u32,
    /// Files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Commit time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl ModelVersion {
    /// Total bytes of all files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The file at `path`, if any.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// A model and its latest version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Highest version number.
    pub latest: u32,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Commits `files` as the next version of model `name` and returns its
    /// number. Durable when it returns.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name or path or two files with one
    /// path; [`Error::NotFound`] if a blob is not stored. Nothing is written
    /// then.
    pub fn commit_version(&self, name: &str, mut files: Vec<FileEntry>) -> Result<u32> {
        check_name(name)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for w in files.windows(2) {
            if w[0].path == w[1].path {
                return Err(Error::invalid(
                    "path",
                    &w[0].path,
                    "two files claim this path",
                ));
            }
        }
        for f in &files {
            check_path(&f.path)?;
        }
        let logical: u64 = files.iter().map(|f| f.size).sum();
        self.inner
            .commit(&[], Batch::default(), |meta, stats, batch| {
                for f in &files {
                    let rec = meta
                        .with(Cf::Blobs, f.blob.as_bytes(), records::decode_blob)?
                        .ok_or_else(|| Error::not_found("blob", f.blob))?;
                    if rec.size != f.size {
                        return Err(Error::invalid(
                            "file size",
                            f.size,
                            format!("blob {} holds {} bytes", f.blob, rec.size),
                        ));
                    }
                }
                let model: Option<ModelRecord> = meta
                    .get(Cf::Models, name.as_bytes())?
                    .map(|b| records::decode_postcard("model record", &b))
                    .transpose()?;
                let created_ms = now_ms();
                let version = match &model {
                    Some(m) => m
                        .latest
                        .checked_add(1)
                        .ok_or_else(|| Error::invalid("model", name, "has 2^32 versions"))?,
                    None => 1,
                };
                let rec = ModelRecord {
                    latest: version,
                    created_ms: model.map_or(created_ms, |m| m.created_ms),
                };
                batch.put(
                    Cf::Models,
                    name.as_bytes().to_vec(),
                    records::encode_postcard(&rec),
                );
                batch.put(
                    Cf::Versions,
                    keys::version(name, version),
                    records::encode_postcard(&VersionRecord {
                        files: files.clone(),
                        created_ms,
                    }),
                );
                stats.logical_bytes += logical;
                stats.versions += 1;
                Ok(version)
            })
    }

    /// A version of model `name`: the given one, or the latest.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown model or version.
    pub fn version(&self, name: &str, version: Option<u32>) -> Result<ModelVersion> {
        check_name(name)?;
        let v = match version {
            Some(v) => v,
            None => {
                let b = self
                    .inner
                    .meta
                    .get(Cf::Models, name.as_bytes())?
                    .ok_or_else(|| Error::not_found("model", name))?;
                records::decode_postcard::<ModelRecord>("model record", &b)?.latest
            }
        };
        let b = self
            .inner
            .meta
            .get(Cf::Versions, &keys::version(name, v))?
            .ok_or_else(|| Error::not_found("version", format!("{name}@{v}")))?;
        let rec: VersionRecord = records::decode_postcard("version record", &b)?;
        for f in &rec.files {
            check_path(&f.path)
                .map_err(|e| Error::corrupt(format!("version record {name}@{v}"), e))?;
        }
        Ok(ModelVersion {
            name: name.to_string(),
            version: v,
            files: rec.files,
            created_ms: rec.created_ms,
        })
    }

    /// All models, by name.
    pub fn models(&self) -> Result<Vec<ModelSummary>> {
        self.inner
            .meta
            .scan_prefix(Cf::Models, &[], &[])
            .map(|kv| {
                let (k, v) = kv?;
                let name = String::from_utf8(k.to_vec())
                    .map_err(|_| Error::corrupt("models column family", "key is not UTF-8"))?;
                let rec: ModelRecord = records::decode_postcard("model record", &v)?;
                Ok(ModelSummary {
                    name,
                    latest: rec.latest,
                })
            })
            .collect()
    }

    /// The version numbers of model `name`, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>> {
        check_name(name)?;
        let prefix = keys::version_prefix(name);
        let mut out = Vec::new();
        for kv in self.inner.meta.scan_prefix(Cf::Versions, &prefix, &prefix) {
            let (k, _) = kv?;
            let (_, v) = keys::parse_version(&k)
                .ok_or_else(|| Error::corrupt("versions column family", "malformed key"))?;
            out.push(v);
        }
        if out.is_empty() {
            return Err(Error::not_found("model", name));
        }
        Ok(out)
    }
}
