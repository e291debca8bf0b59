//! One function per command.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use modelvault::{FileEntry, ModelVersion, Store};

use super::args::{Args, Command};
use super::files;

/// Runs one parsed command line.
pub fn run(args: Args) -> Result<()> {
    let repo = args
        .repo
        .clone()
        .ok_or_else(|| anyhow!("no store given: pass --repo DIR or set MODELVAULT_REPO"))?;
    match args.command {
        Command::Init => {
            if repo.join("MODELVAULT").exists() {
                bail!("{} is already a modelvault store", repo.display());
            }
            let store = Store::create(&repo)?;
            println!("created store {} in {}", store.id(), repo.display());
        }
        Command::Put { name, paths } => put(&repo, &name, &paths)?,
        Command::Get { model, out } => get(&open(&repo)?, &model, &out)?,
        Command::Cat { model, path } => {
            let store = open(&repo)?;
            let v = resolve(&store, &model)?;
            let f = v
                .file(&path)
                .ok_or_else(|| anyhow!("{}@{} has no file {path:?}", v.name, v.version))?;
            let mut r = store.blob_reader(&f.blob)?;
            let mut out = io::stdout().lock();
            io::copy(&mut r, &mut out)?;
            out.flush()?;
        }
        Command::List { json } => {
            let models = open(&repo)?.models()?;
            if json {
                println!("{}", serde_json::to_string(&models)?);
            } else {
                for m in models {
                    println!("{}@{}", m.name, m.latest);
                }
            }
        }
        Command::Versions { name, json } => {
            let versions = open(&repo)?.versions(&name)?;
            if json {
                println!("{}", serde_json::to_string(&versions)?);
            } else {
                for v in versions {
                    println!("{name}@{v}");
                }
            }
        }
        Command::Show { model, json } => {
            let v = resolve(&open(&repo)?, &model)?;
            if json {
                println!("{}", serde_json::to_string(&version_json(&v))?);
            } else {
                println!(
                    "{}@{}  {} files, {} bytes",
                    v.name,
                    v.version,
                    v.files.len(),
                    v.size()
                );
                for f in &v.files {
                    println!("{:>14}  {}  {}", f.size, f.blob, f.path);
                }
            }
        }
        Command::Stats { json } => {
            let s = open(&repo)?.stats();
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("logical bytes      {}", s.logical_bytes);
                println!("unique chunk bytes {}", s.unique_bytes);
                println!("stored bytes       {}", s.stored_bytes);
                println!("chunks             {}", s.chunks);
                println!("blobs              {}", s.blobs);
                println!("versions           {}", s.versions);
                println!("packs              {}", s.packs);
                println!("dedup ratio        {:.3}", s.dedup_ratio);
                println!("compression ratio  {:.3}", s.compression_ratio);
                println!("stored / logical   {:.3}", s.stored_fraction);
            }
        }
    }
    Ok(())
}

fn open(repo: &Path) -> Result<Store> {
    Ok(Store::open(repo)?)
}

/// `NAME` or `NAME@VERSION`.
fn resolve(store: &Store, spec: &str) -> Result<ModelVersion> {
    let (name, version) = match spec.rsplit_once('@') {
        Some((n, v)) => {
            let v: u32 =
                v.parse().ok().filter(|&v| v > 0).ok_or_else(|| {
                    anyhow!("invalid version in {spec:?}: expected a number from 1")
                })?;
            (n, Some(v))
        }
        None => (spec, None),
    };
    Ok(store.version(name, version)?)
}

fn version_json(v: &ModelVersion) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "version": v.version,
        "created_ms": v.created_ms,
        "size": v.size(),
        "files": v.files.iter().map(|f| serde_json::json!({
            "path": f.path, "blob": f.blob.to_string(), "size": f.size,
        })).collect::<Vec<_>>(),
    })
}

fn put(repo: &Path, name: &str, paths: &[PathBuf]) -> Result<()> {
    modelvault::check_name(name)?;
    // Everything is checked before anything is written.
    let inputs = files::collect(paths)?;
    let store = Store::create(repo)?;
    let mut entries = Vec::with_capacity(inputs.len());
    for (rel, src) in &inputs {
        let f = File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
        let blob = store
            .put_blob(io::BufReader::with_capacity(1 << 20, f))
            .with_context(|| format!("storing {}", src.display()))?;
        let size = store.blob_record(&blob)?.map_or(0, |r| r.size);
        entries.push(FileEntry {
            path: rel.clone(),
            blob,
            size,
        });
    }
    let v = store.commit_version(name, entries)?;
    println!("{name}@{v}");
    Ok(())
}

fn get(store: &Store, spec: &str, out: &Path) -> Result<()> {
    let v = resolve(store, spec)?;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for f in &v.files {
        let dst = files::destination(out, &f.path)?;
        let tmp = dst.with_file_name(format!(
            ".{}.modelvault-tmp",
            dst.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        let mut r = store.blob_reader(&f.blob)?;
        let mut w = BufWriter::with_capacity(
            1 << 20,
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        let copied = io::copy(&mut r, &mut w).and_then(|n| w.flush().map(|_| n));
        match copied {
            Ok(n) if n == f.size => {}
            Ok(n) => {
                let _ = fs::remove_file(&tmp);
                bail!("{}: read {n} bytes, expected {}", f.path, f.size);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("restoring {}", f.path));
            }
        }
        drop(w);
        fs::rename(&tmp, &dst).with_context(|| format!("cannot write {}", dst.display()))?;
    }
    println!(
        "{}@{}: {} files, {} bytes -> {}",
        v.name,
        v.version,
        v.files.len(),
        v.size(),
        out.display()
    );
    Ok(())
}
