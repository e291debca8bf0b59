//! `export`, `import`, `have` and `sync`: bundles between stores.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use modelvault::{ChunkId, EntityId, ExportReport, ExportSpec, ImportOptions, ImportReport, Store};
use serde_json::json;

use super::exit::Usage;
use super::progress;
use super::remote;
use super::sizes::human;

/// `WHAT` of `export` and `sync`: nothing (the whole store), `NAME`,
/// `NAME@V` or `NAME@A..B`.
pub(super) fn spec(what: Option<&str>) -> Result<ExportSpec> {
    let Some(what) = what else {
        return Ok(ExportSpec::store());
    };
    model_spec(ExportSpec::default(), what)
}

/// Adds `NAME`, `NAME@V` or `NAME@A..B` to `spec`: a malformed one is a
/// usage error.
fn model_spec(spec: ExportSpec, what: &str) -> Result<ExportSpec> {
    spec.model_spec(what)
        .map_err(|e| Usage(e.to_string()).into())
}

/// What `export` and `sync` copy: `what` and the experiments (id or
/// PROJECT/NAME, found in `store`); the whole store when neither is given.
fn selection(
    store: &Store,
    what: Option<&str>,
    (experiments, with_used): (&[String], bool),
) -> Result<ExportSpec> {
    if experiments.is_empty() {
        return spec(what);
    }
    let mut spec = ExportSpec::default();
    for e in experiments {
        spec = spec.experiment(super::experiment::find(store, e)?.id(), with_used);
    }
    match what {
        Some(w) => model_spec(spec, w),
        None => Ok(spec),
    }
}

/// Reads a `have` list: one chunk id (64 hex digits) per line.
fn read_have(path: &Path, mut spec: ExportSpec) -> Result<ExportSpec> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ids = Vec::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let id: ChunkId = line.parse().map_err(|e| {
            Usage(format!(
                "{} line {}: not a chunk id: {e}",
                path.display(),
                n + 1
            ))
        })?;
        ids.push(id);
    }
    spec = spec.exclude_chunks(ids);
    Ok(spec)
}

fn print_export(r: &ExportReport, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "experiments": r.experiments, "objects": r.objects, "models": r.models, "versions": r.versions, "blobs": r.blobs,
                "chunks_carried": r.chunks_carried, "chunks_named": r.chunks_named,
                "raw_bytes_carried": r.raw_bytes_carried, "bundle_bytes": r.bundle_bytes,
            })
        );
    } else {
        eprintln!(
            "exported {} experiments, {} models, {} versions, {} blobs: {} chunks carried ({} raw), {} named only; bundle {}",
            r.experiments,
            r.models,
            r.versions,
            r.blobs,
            r.chunks_carried,
            human(r.raw_bytes_carried),
            r.chunks_named,
            human(r.bundle_bytes)
        );
    }
}

fn print_import(r: &ImportReport, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "experiments_added": r.experiments_added, "objects_added": r.objects_added,
                "models_added": r.models_added, "versions_added": r.versions_added,
                "blobs_added": r.blobs_added, "chunks_received": r.chunks_received,
                "bundle_bytes": r.bundle_bytes, "conflicts": r.conflicts,
            })
        );
    } else {
        for c in &r.conflicts {
            println!("conflict, skipped: {c}");
        }
        println!(
            "imported {} new experiments, {} new models, {} new versions, {} new blobs ({} chunks received, bundle {})",
            r.experiments_added,
            r.models_added,
            r.versions_added,
            r.blobs_added,
            r.chunks_received,
            human(r.bundle_bytes)
        );
    }
}

/// `export`: to `out` (written beside it and renamed when complete, so a
/// failed export leaves no partial bundle) or to stdout.
pub(super) fn export(
    store: &Store,
    what: Option<&str>,
    (experiments, with_used): (&[String], bool),
    out: Option<&Path>,
    exclude_have: Option<&Path>,
    since: &[PathBuf],
    json: bool,
) -> Result<()> {
    let mut spec = selection(store, what, (experiments, with_used))?;
    if let Some(p) = exclude_have {
        spec = read_have(p, spec)?;
    }
    for b in since {
        let f = File::open(b).with_context(|| format!("opening {}", b.display()))?;
        spec = spec
            .exclude_bundle(BufReader::new(f))
            .with_context(|| format!("reading the earlier bundle {}", b.display()))?;
    }
    let bar = progress::bytes("export", store.stats().logical_bytes);
    let report = match out {
        Some(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
                .with_context(|| format!("creating a file beside {}", path.display()))?;
            let (w, report) = store.export(&spec, BufWriter::new(tmp), &|n| bar.set_position(n))?;
            let tmp = w.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            report
        }
        None => {
            let out = BufWriter::new(io::stdout().lock());
            let (mut w, report) = store.export(&spec, out, &|n| bar.set_position(n))?;
            w.flush()?;
            report
        }
    };
    bar.finish();
    // With the bundle on stdout, the report goes to stderr only.
    print_export(&report, json && out.is_some());
    Ok(())
}

/// `import FILE` (`-`: stdin).
pub(super) fn import(store: &Store, input: &Path, skip_conflicts: bool, json: bool) -> Result<()> {
    let opts = ImportOptions::default().skip_conflicts(skip_conflicts);
    let report = if input == Path::new("-") {
        store.import(io::stdin().lock(), &opts, &|_| {})?
    } else {
        let f = File::open(input).with_context(|| format!("opening {}", input.display()))?;
        let bar = progress::bytes("import", f.metadata()?.len());
        let r = store.import(BufReader::new(f), &opts, &|n| bar.set_position(n))?;
        bar.finish();
        r
    };
    print_import(&report, json);
    Ok(())
}

/// `have`: every chunk id of the store, one per line.
pub(super) fn have(store: &Store) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    store.chunk_ids(|id| {
        writeln!(out, "{id}").map_err(|e| modelvault::Error::from_io("writing the list", e))
    })?;
    out.flush()?;
    Ok(())
}

/// `sync`: an export of `what` from `src` into `dst` through a pipe,
/// leaving out the chunks `dst` holds; no bundle file is written.
pub(super) fn sync(
    src: &Store,
    dst: &Store,
    what: Option<&str>,
    experiments: (&[String], bool),
    json: bool,
) -> Result<()> {
    let mut held = Vec::new();
    dst.chunk_ids(|id| {
        held.push(*id);
        Ok(())
    })?;
    let spec = selection(src, what, experiments)?.exclude_chunks(held);
    let (reader, writer) = io::pipe()?;
    let bar = progress::bytes("sync", src.stats().logical_bytes);
    let imported = std::thread::scope(|s| {
        let importer =
            s.spawn(move || dst.import(BufReader::new(reader), &ImportOptions::default(), &|_| {}));
        let exported = src.export(&spec, BufWriter::new(writer), &|n| bar.set_position(n));
        // The writer is dropped with the export's result: the importer sees
        // the end of the pipe either way.
        let exported = exported.map(|(w, r)| (drop(w), r).1);
        let imported = importer.join().expect("the import thread panicked");
        (exported, imported)
    });
    bar.finish();
    let (exported, imported) = match imported {
        (Ok(e), Ok(i)) => (e, i),
        // The importer stopped reading (it found a problem): its error is
        // the one that says what.
        (Err(modelvault::Error::Io { source, .. }), Err(i))
            if source.kind() == io::ErrorKind::BrokenPipe =>
        {
            return Err(i.into())
        }
        (Err(e), _) | (_, Err(e)) => return Err(e.into()),
    };
    let way = "through the pipe";
    print_sync(
        &imported,
        exported.chunks_carried,
        exported.chunks_named,
        way,
        json,
    );
    Ok(())
}

/// `sync --from URL`: posts the chunk ids `dst` holds to the server's
/// `POST /_api/v1/export` and imports the bundle it answers as it arrives
/// (no bundle file; all or nothing, as `import`).
pub(super) fn sync_from(
    url: &str,
    dst: &Store,
    what: Option<&str>,
    (experiments, with_used): (&[String], bool),
    json: bool,
) -> Result<()> {
    let api = remote::Api::new(remote::server_api(url)?)?;
    // The selection is checked here too: a malformed one is the command
    // line's mistake, found before any request.
    let mut query = Vec::new();
    if let Some(w) = what {
        model_spec(ExportSpec::default(), w)?;
        query.push(("model", w.to_owned()));
    }
    for e in experiments {
        e.parse::<EntityId>().map_err(|_| {
            Usage(format!(
                "--experiment {e:?}: with --from, an experiment is given by its id"
            ))
        })?;
        query.push(("experiment", e.clone()));
    }
    if with_used {
        query.push(("with_used", "true".to_owned()));
    }
    let mut have = Vec::new();
    dst.chunk_ids(|id| {
        have.extend_from_slice(id.as_bytes());
        Ok(())
    })?;
    let resp = api.export(&query, have)?;
    let imported = dst
        .import(BufReader::new(resp), &ImportOptions::default(), &|_| {})
        .with_context(|| format!("importing the bundle from {url}"))?;
    let way = format!("from {url}");
    print_sync(
        &imported,
        imported.chunks_received,
        imported.chunks_named,
        &way,
        json,
    );
    Ok(())
}

/// The report of `sync`: what was imported, and how much crossed `way`.
fn print_sync(imported: &ImportReport, carried: u64, named: u64, way: &str, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "bundle_bytes": imported.bundle_bytes, "chunks_carried": carried,
                "chunks_named": named, "models_added": imported.models_added,
                "versions_added": imported.versions_added, "blobs_added": imported.blobs_added,
            })
        );
    } else {
        print_import(imported, false);
        println!(
            "sent {} {way}: {carried} chunks carried, {named} the target held",
            human(imported.bundle_bytes),
        );
    }
}
