//! `modelvault put --resume UPLOAD_ID FILE`: continues an interrupted `put`
//! of one file from its upload session's durable prefix, after checking
//! that the file still starts with the bytes the session stored, then
//! commits the version as `put` does.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use modelvault::{EntityId, Store, UploadId};

use super::progress;
use super::sizes::human;

/// What a resume continues: the session and what its label says.
struct Session {
    id: UploadId,
    durable_bytes: u64,
    /// The model the put was storing a version of.
    name: String,
    /// The file's path in that version.
    path: String,
}

/// The session `id`, which must be a `put`'s (its label `put NAME: PATH`).
fn session(store: &Store, id: &str) -> Result<Session> {
    let id: UploadId = id.parse()?;
    let info = store
        .uploads()?
        .into_iter()
        .find(|u| u.id == id.get())
        .ok_or_else(|| modelvault::Error::NotFound {
            kind: "upload session",
            name: id.to_string(),
        })?;
    let label = info.label.as_deref().unwrap_or("");
    let Some((name, path)) = label.strip_prefix("put ").and_then(|l| l.split_once(": ")) else {
        bail!(
            "upload session {id} was not made by `put` (its label is {:?}): \
             nothing says which model and file it was",
            info.label
        );
    };
    // Labels are cut at 1 KiB: a label that long may have lost the end of
    // the path. (Model names have no ": ", so the first one ends the name.)
    if label.len() > 1020 {
        bail!("upload session {id}: its label may be cut short, so the file's path is not known");
    }
    modelvault::check_name(name)?;
    modelvault::check_path(path)?;
    Ok(Session {
        id,
        durable_bytes: info.durable_bytes,
        name: name.to_string(),
        path: path.to_string(),
    })
}

/// Fails unless `src`'s first `s.durable_bytes` bytes are those the session
/// stored. Reads both in step, in bounded memory; changes nothing.
fn check_prefix(store: &Store, s: &Session, src: &mut File, shown: &Path) -> Result<()> {
    let len = src
        .metadata()
        .with_context(|| format!("cannot stat {}", shown.display()))?
        .len();
    let changed = |why: String| {
        anyhow!(
            "{} is not the file upload session {} was storing: {why}; \
             nothing stored, the session is left as it was",
            shown.display(),
            s.id
        )
    };
    if len < s.durable_bytes {
        return Err(changed(format!(
            "it has {len} bytes, fewer than the {} the session holds already",
            s.durable_bytes
        )));
    }
    let mut stored = store.upload_prefix(s.id)?;
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < s.durable_bytes {
        let n = (s.durable_bytes - off).min(a.len() as u64) as usize;
        stored
            .read_exact(&mut a[..n])
            .with_context(|| format!("reading upload session {}", s.id))?;
        src.read_exact(&mut b[..n])
            .with_context(|| format!("reading {}", shown.display()))?;
        if a[..n] != b[..n] {
            let at = off
                + a[..n]
                    .iter()
                    .zip(&b[..n])
                    .position(|(x, y)| x != y)
                    .unwrap_or(0) as u64;
            return Err(changed(format!("its bytes differ from byte {at} on")));
        }
        off += n as u64;
    }
    Ok(())
}

/// The `put` options a resume takes: the model name (the session's if
/// given), and the project and experiment of a model it creates.
pub(super) struct Target<'a> {
    pub name: Option<&'a str>,
    pub project: String,
    pub experiment: Option<EntityId>,
}

/// Resumes session `id` from `file` and commits the version; prints what
/// `put` prints (with `json`, its object and a `resumed` member).
pub(super) fn put_resume(
    store: &Store,
    id: &str,
    to: Target<'_>,
    file: &Path,
    json: bool,
) -> Result<()> {
    let s = session(store, id)?;
    if let Some(n) = to.name.filter(|n| *n != s.name) {
        bail!(
            "upload session {} was a put of model {:?}, not {n:?}",
            s.id,
            s.name
        );
    }
    let mut src = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    if !src
        .metadata()
        .with_context(|| format!("cannot stat {}", file.display()))?
        .is_file()
    {
        bail!("{}: not a regular file", file.display());
    }
    check_prefix(store, &s, &mut src, file)?;
    let total = src.metadata()?.len();
    // The resumed writer has no delta base (`BlobWriter::delta_base` must
    // come before the first byte): the version is put without one.
    let mut opts = store.put_version(&s.name).project(to.project).no_delta();
    if let Some(e) = to.experiment {
        opts = opts.experiment(e);
    }
    let mut version = opts.begin([(s.path.as_str(), total)])?;
    let mut w = store.resume_upload(s.id)?;
    // The writer continues from the session's durable bytes, checked above.
    let from = w.len();
    let bar = progress::bytes(&format!("put {} (resumed)", s.name), total);
    bar.set_position(from);
    let copied = src
        .seek(SeekFrom::Start(from))
        .and_then(|_| io::copy(&mut bar.wrap_read(&mut src), &mut w));
    if let Err(e) = copied {
        // Keep what is durable for another try rather than drop the session.
        let kept = match w.suspend() {
            Ok(id) => format!("the upload is suspended again as session {id}"),
            Err(s) => format!("the session could not be kept: {s}"),
        };
        return Err(anyhow::Error::new(e).context(format!("storing {} ({kept})", file.display())));
    }
    version
        .add_writer(&s.path, w)
        .with_context(|| format!("storing {}", file.display()))?;
    let r = version.commit()?;
    bar.finish();
    if json {
        let model = store.model_by_name(&s.name)?.id();
        println!(
            "{}",
            serde_json::json!({
                "name": s.name,
                "model": model,
                "version": r.version,
                "files": 1,
                "bytes": total,
                "base": null,
                "rebased_files": r.rebased_files,
                "rebased_chunks": r.reverse.rebased,
                "bytes_reclaimed": r.reverse.bytes_reclaimed,
                "resumed": {"upload": s.id.get(), "durable_bytes": from, "path": s.path},
            })
        );
    } else {
        eprintln!(
            "resumed upload {} of {}: {} were durable, {} stored now",
            s.id,
            s.path,
            human(from),
            human(total - from)
        );
        println!("{}@{}", s.name, r.version);
    }
    Ok(())
}
