//! Turning command-line inputs into (relative path, file) pairs, and writing
//! files back out without ever leaving the output directory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use modelvault::check_path;

/// A file to store: its path, and its identity (device, inode) when it was
/// listed, so that a file replaced between listing and reading (say, by a
/// symlink) is noticed rather than stored.
pub struct Source {
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Source {
    fn new(path: PathBuf, meta: &fs::Metadata) -> Self {
        Source {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Opens the file, refusing one that is no longer the file listed.
    pub fn open(&self) -> Result<File> {
        let f = File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let m = f
            .metadata()
            .with_context(|| format!("cannot stat {}", self.path.display()))?;
        if (m.dev(), m.ino()) != (self.dev, self.ino) {
            bail!(
                "{} was replaced while being stored; nothing stored",
                self.path.display()
            );
        }
        Ok(f)
    }
}

/// Expands files and folders into a map from stored path to source file.
/// A file is stored under its file name; a folder's files under their paths
/// relative to it. Two inputs claiming one path is an error.
///
/// Symbolic links: a path named here is read whatever it is (a link to a
/// file or a folder is followed: the caller chose it). A link met inside a
/// folder is refused, naming it, unless `follow`: then the file or folder
/// it points to is stored under the link's path, and a link back to a
/// folder it is inside (a loop) is refused. Files and folders alike.
pub fn collect(inputs: &[PathBuf], follow: bool) -> Result<BTreeMap<String, Source>> {
    let mut out = BTreeMap::new();
    for input in inputs {
        let meta =
            fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if meta.is_dir() {
            let mut ancestors = vec![(meta.dev(), meta.ino())];
            walk(input, input, follow, &mut ancestors, &mut out)?;
        } else if meta.is_file() {
            let name = input
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{}: file name is not valid UTF-8", input.display()))?;
            insert(
                &mut out,
                name.to_string(),
                Source::new(input.clone(), &meta),
            )?;
        } else {
            bail!("{}: not a regular file or directory", input.display());
        }
    }
    Ok(out)
}

/// Adds the files under `dir` (a folder of `root`); `ancestors` are the
/// (device, inode) of `dir` and the folders above it, up to `root`.
fn walk(
    root: &Path,
    dir: &Path,
    follow: bool,
    ancestors: &mut Vec<(u64, u64)>,
    out: &mut BTreeMap<String, Source>,
) -> Result<()> {
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
        let meta = if ft.is_symlink() {
            if !follow {
                bail!(
                    "{} is a symbolic link: not stored without --follow-symlinks \
                     (which stores what links inside folders point to); nothing stored",
                    path.display()
                );
            }
            fs::metadata(&path).with_context(|| {
                format!(
                    "{} is a symbolic link to nothing that can be read",
                    path.display()
                )
            })?
        } else {
            fs::symlink_metadata(&path)
                .with_context(|| format!("cannot stat {}", path.display()))?
        };
        if meta.is_dir() {
            let key = (meta.dev(), meta.ino());
            if ancestors.contains(&key) {
                bail!(
                    "{} is a symbolic link loop (it leads back to a folder it is in); nothing stored",
                    path.display()
                );
            }
            ancestors.push(key);
            walk(root, &path, follow, ancestors, out)?;
            ancestors.pop();
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).expect("walked from root");
            let parts: Option<Vec<&str>> =
                rel.components().map(|c| c.as_os_str().to_str()).collect();
            let parts =
                parts.ok_or_else(|| anyhow!("{}: path is not valid UTF-8", path.display()))?;
            insert(out, parts.join("/"), Source::new(path.clone(), &meta))?;
        } else {
            bail!("{}: not a regular file or directory", path.display());
        }
    }
    Ok(())
}

fn insert(out: &mut BTreeMap<String, Source>, rel: String, src: Source) -> Result<()> {
    check_path(&rel)?;
    if let Some(prev) = out.get(&rel) {
        bail!(
            "{} and {} would both be stored as {rel:?}",
            prev.path.display(),
            src.path.display()
        );
    }
    out.insert(rel, src);
    Ok(())
}

/// Refuses, before anything is written, a version (`what`) whose files
/// cannot all be restored as they are: a path that is both a file and a
/// folder (`a` and `a/b`), and, unless `allow_case`, two paths that differ
/// only in case (`A.bin` and `a.bin`, or folders `Dir` and `dir`), which
/// would overwrite each other on a case-insensitive filesystem (macOS and
/// Windows by default). Case is compared with Unicode lowercasing; other
/// equivalences some filesystems apply (normalization forms) are not.
pub fn check_restorable<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    allow_case: bool,
    what: &str,
) -> Result<()> {
    let files: BTreeSet<&str> = paths.into_iter().collect();
    // Each folder on the way, with a file inside it.
    let mut folders: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &files {
        for (i, _) in p.match_indices('/') {
            folders.entry(&p[..i]).or_insert(p);
        }
    }
    if let Some((f, inside)) = files
        .iter()
        .find_map(|f| folders.get(f).map(|inside| (f, inside)))
    {
        bail!(
            "{what}: {f:?} is both a file and a folder (holding {inside:?}), \
             so the version cannot be restored as files; nothing written"
        );
    }
    if allow_case {
        return Ok(());
    }
    let all: BTreeSet<&str> = files.iter().chain(folders.keys()).copied().collect();
    let mut folded: HashMap<String, &str> = HashMap::new();
    for p in all {
        if let Some(prev) = folded.insert(p.to_lowercase(), p) {
            bail!(
                "{what}: {prev:?} and {p:?} differ only in case and would overwrite each other \
                 on a case-insensitive filesystem (macOS, Windows); nothing written \
                 (pass --allow-case-collisions if the output folder is case-sensitive, \
                 or restore them one at a time with `cat`)"
            );
        }
    }
    Ok(())
}

/// Creates `out` and any missing parents; returns the folders whose entries
/// that changed (the parent of each folder created), to be fsynced.
pub fn create_out(out: &Path) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let mut p = out;
    while !p.as_os_str().is_empty()
        && matches!(fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    {
        created.push(p.to_path_buf());
        match p.parent() {
            Some(q) => p = q,
            None => break,
        }
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    Ok(created
        .iter()
        .filter_map(|d| d.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .collect())
}

/// Fsyncs folder `dir`, so that the entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync folder {}", dir.display()))?;
    trace::record(|| trace::Event::SyncDir(dir.to_path_buf()));
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

/// What `get` did to the filesystem, in order, recorded only in this
/// binary's unit tests: the durability test checks each file is fsynced
/// before its rename and every folder it changed after the renames.
pub mod trace {
    use std::path::PathBuf;

    /// One filesystem step of a restore.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Event {
        /// A restored file's temporary file was fsynced.
        SyncFile(PathBuf),
        /// The temporary file (first) was renamed over its destination.
        Rename(PathBuf, PathBuf),
        /// A folder was fsynced.
        SyncDir(PathBuf),
    }

    #[cfg(test)]
    static EVENTS: std::sync::Mutex<Vec<Event>> = std::sync::Mutex::new(Vec::new());

    /// Records `e` (a no-op outside tests).
    #[inline]
    pub fn record(e: impl FnOnce() -> Event) {
        #[cfg(test)]
        EVENTS.lock().unwrap_or_else(|p| p.into_inner()).push(e());
        #[cfg(not(test))]
        let _ = e;
    }

    /// Takes the events about paths under `root` (tests run in parallel).
    #[cfg(test)]
    pub fn take_under(root: &std::path::Path) -> Vec<Event> {
        let mut all = EVENTS.lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest): (Vec<Event>, Vec<Event>) = all.drain(..).partition(|e| match e {
            Event::SyncFile(p) | Event::SyncDir(p) | Event::Rename(p, _) => p.starts_with(root),
        });
        *all = rest;
        mine
    }
}
