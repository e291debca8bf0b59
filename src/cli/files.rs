//! Turning command-line inputs into (relative path, file) pairs, and writing
//! files back out without ever leaving the output directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use modelvault::check_path;

/// Expands files and folders into a map from stored path to source file.
/// A file is stored under its file name; a folder's files under their paths
/// relative to it. Two inputs claiming one path is an error.
pub fn collect(inputs: &[PathBuf]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for input in inputs {
        let meta =
            fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if meta.is_dir() {
            walk(input, input, &mut out)?;
        } else if meta.is_file() {
            let name = input
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{}: file name is not valid UTF-8", input.display()))?;
            insert(&mut out, name.to_string(), input.clone())?;
        } else {
            bail!("{}: not a regular file or directory", input.display());
        }
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = e
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            let rel = path.strip_prefix(root).expect("walked from root");
            let parts: Option<Vec<&str>> =
                rel.components().map(|c| c.as_os_str().to_str()).collect();
            let parts =
                parts.ok_or_else(|| anyhow!("{}: path is not valid UTF-8", path.display()))?;
            insert(out, parts.join("/"), path)?;
        } else {
            bail!(
                "{}: not a regular file or directory (symlinked folders are not followed)",
                path.display()
            );
        }
    }
    Ok(())
}

fn insert(out: &mut BTreeMap<String, PathBuf>, rel: String, src: PathBuf) -> Result<()> {
    check_path(&rel)?;
    if let Some(prev) = out.get(&rel) {
        bail!(
            "{} and {} would both be stored as {rel:?}",
            prev.display(),
            src.display()
        );
    }
    out.insert(rel, src);
    Ok(())
}

/// The destination of stored path `rel` under `out`, creating parent
/// folders. Refuses paths that are not plain relative paths and any existing
/// symlink on the way, so nothing is written outside `out`.
pub fn destination(out: &Path, rel: &str) -> Result<PathBuf> {
    check_path(rel)?;
    let mut dst = out.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let comp = Path::new(part);
        if comp.components().count() != 1
            || !matches!(comp.components().next(), Some(Component::Normal(_)))
        {
            bail!("refusing stored path {rel:?}: {part:?} is not a plain name");
        }
        dst.push(part);
        match fs::symlink_metadata(&dst) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("refusing to write through symlink {}", dst.display())
            }
            Ok(m) if i + 1 < parts.len() && !m.is_dir() => {
                bail!("{} exists and is not a folder", dst.display())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if i + 1 < parts.len() {
                    fs::create_dir(&dst)
                        .with_context(|| format!("cannot create {}", dst.display()))?;
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", dst.display())),
        }
    }
    Ok(dst)
}
