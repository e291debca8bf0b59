//! `modelvault tensor` (the tensors of a stored file, or one tensor's
//! bytes) and `modelvault index verify|rebuild`: thin calls on
//! [`Store::tensor_layout`], [`Store::tensor_reader`],
//! [`Store::verify_index`] and [`Store::rebuild_index`].

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use modelvault::{IndexReport, Store};
use serde_json::json;

use super::args::IndexCmd;
use super::commands::resolve;
use super::exit::{ProblemsFound, Usage};
use super::experiment_data::write_file;
use super::sizes::human;

/// Lists the tensors of file `path` of version `spec`, or writes the bytes
/// of tensor `name` to stdout or `out`.
pub(super) fn tensor(
    store: &Store,
    spec: &str,
    path: &str,
    name: Option<&str>,
    out: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let v = resolve(store, spec)?;
    let f = v.file(path).ok_or_else(|| modelvault::Error::NotFound {
        kind: "file",
        name: format!("{path:?} in {}@{}", v.name, v.version),
    })?;
    if let Some(name) = name {
        if json && out.is_none() {
            // Stdout carries the bytes.
            return Err(Usage("--json with TENSOR needs -o FILE".into()).into());
        }
        let (span, mut r) = store
            .tensor_reader(&f.blob, name)
            .with_context(|| format!("{path:?} in {}@{}", v.name, v.version))?;
        match out {
            Some(out) => {
                write_file(&mut r, &out)?;
                if json {
                    println!("{}", span_json(&span));
                }
            }
            None => {
                let mut stdout = io::stdout().lock();
                io::copy(&mut r, &mut stdout)?;
                stdout.flush()?;
            }
        }
        return Ok(());
    }
    let layout = store
        .tensor_layout(&f.blob)?
        .ok_or_else(|| modelvault::Error::NotFound {
            kind: "tensor layout",
            name: format!(
                "{path:?} in {}@{} (not a safetensors or GGUF file)",
                v.name, v.version
            ),
        })?;
    if json {
        let tensors: Vec<_> = layout.tensors.iter().map(span_json).collect();
        println!(
            "{}",
            json!({
                "name": v.name,
                "version": v.version,
                "path": path,
                "format": layout.format,
                "data_start": layout.data_start,
                "tensors": tensors,
            })
        );
    } else {
        let mut stdout = io::stdout().lock();
        writeln!(
            stdout,
            "{}@{} {path}: {}, {} tensors",
            v.name,
            v.version,
            layout.format,
            layout.tensors.len()
        )?;
        for t in &layout.tensors {
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            writeln!(
                stdout,
                "{:>10}  {:<9} [{}]  {}",
                human(t.end - t.start),
                format!("{:?}", t.dtype),
                shape.join(", "),
                t.name
            )?;
        }
    }
    Ok(())
}

/// One tensor in `tensor --json`.
fn span_json(t: &modelvault::TensorSpan) -> serde_json::Value {
    json!({
        "name": t.name,
        "dtype": format!("{:?}", t.dtype),
        "shape": t.shape,
        "start": t.start,
        "end": t.end,
        "bytes": t.end - t.start,
    })
}

pub(super) fn index(store: &Store, cmd: IndexCmd) -> Result<()> {
    let (r, json, verb) = match cmd {
        IndexCmd::Verify(j) => (store.verify_index()?, j.json, "found"),
        IndexCmd::Rebuild(j) => (store.rebuild_index()?, j.json, "repaired"),
    };
    print_index(&r, json, verb)?;
    if verb == "found" && !r.is_clean() {
        return Err(ProblemsFound(r.missing.len() + r.extra.len()).into());
    }
    Ok(())
}

fn print_index(r: &IndexReport, json: bool, verb: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    for k in &r.missing {
        println!("missing {k}");
    }
    for k in &r.extra {
        println!("extra   {k}");
    }
    println!(
        "index: {verb} {} missing and {} extra entries",
        r.missing.len(),
        r.extra.len()
    );
    Ok(())
}
