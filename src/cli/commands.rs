//! One function per command.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use modelvault::query::Value;
use modelvault::{
    BlobWriter, DeleteOptions, DeleteReport, GcOptions, ModelVersion, StagedBlob, Store,
    VersionFile,
};

use super::archive;
use super::args::{Args, ArtifactCmd, Command, DeleteFlags, ExperimentCmd, IndexCmd, ModelCmd};
use super::exit::{ProblemsFound, Usage};
use super::experiment::{self, experiment_cmd};
use super::files;
use super::model::model_cmd;
use super::progress;
use super::remote;
use super::sizes::human;

/// The reads a `put` makes of its files: whole input blocks of the blob
/// writer, not `io::copy`'s 8 KiB, which cost a system call and a writer
/// call each. One buffer serves every file of a put (see [`copy_through`]).
const COPY_BUF: usize = 4 << 20;

/// Copies `src` into `dst` through `buf`, counting the bytes on `bar`;
/// returns how many. The caller's buffer is allocated (and zeroed) once
/// for all the files of a put: a `BufReader` per file zeroed its whole
/// buffer for every file: 80% of a put of 64 KiB files.
fn copy_through(
    src: &mut impl io::Read,
    dst: &mut impl Write,
    buf: &mut [u8],
    bar: &indicatif::ProgressBar,
) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match src.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..k])?;
        bar.inc(k as u64);
        n += k as u64;
    }
}

/// Most files a `put` has read and not yet staged (each has a blob
/// writer's buffers).
const STAGE_AHEAD_FILES: usize = 8;
/// Most bytes of such files (each holds at most its writer's run-ahead).
const STAGE_AHEAD_BYTES: u64 = 32 << 20;

/// Files a `get` restores at once. Small files wait on the file system
/// (create, write, fsync, rename: about 0.8 ms each here), so more of them
/// in flight overlap those waits; each has its own reader.
const RESTORE_WORKERS: usize = 8;

/// Each restoring thread's copy buffer, reused for all its files.
const RESTORE_BUF: usize = 1 << 20;

/// `put --forward-delta`'s chain bound: the newest version is at the far
/// end of a forward chain, so it is kept short.
const FORWARD_DELTA_DEPTH: u8 = 3;

/// Runs one parsed command line.
pub fn run(args: Args) -> Result<()> {
    // Completion scripts come from the argument definitions alone.
    if let Command::Completions { shell } = &args.command {
        print_completions(*shell);
        return Ok(());
    }
    // A model on a server needs no local store.
    if let Command::Get {
        model,
        out,
        allow_case_collisions,
        json,
    } = &args.command
    {
        if let Some(spec) = remote::parse(model)? {
            return get_remote(&spec, out, *allow_case_collisions, json.json);
        }
    }
    let repo = args
        .repo
        .clone()
        .ok_or_else(|| Usage("no store given: pass --repo DIR or set MODELVAULT_REPO".into()))?;
    match args.command {
        Command::Init(json) => {
            if Store::exists(&repo) {
                bail!("{} is already a modelvault store", repo.display());
            }
            let store = Store::create(&repo)?;
            if json.json {
                println!(
                    "{}",
                    serde_json::json!({"id": store.id().to_string(), "path": repo})
                );
            } else {
                println!("created store {} in {}", store.id(), repo.display());
            }
        }
        Command::Put {
            name,
            resume: Some(id),
            experiment,
            project,
            paths,
            json,
            ..
        } => {
            let [file] = &paths[..] else {
                return Err(
                    Usage("put --resume takes the one file the put was storing".into()).into(),
                );
            };
            let store = open(&repo)?;
            let experiment = match experiment {
                Some(e) => Some(experiment::find(&store, &e)?.id()),
                None => None,
            };
            let to = super::resume::Target {
                name: name.as_deref(),
                project,
                experiment,
            };
            super::resume::put_resume(&store, &id, to, file, json.json)?
        }
        Command::Put {
            name,
            resume: None,
            experiment,
            project,
            base,
            no_delta,
            reverse_delta: _,
            forward_delta,
            max_delta_depth,
            follow_symlinks,
            paths,
            json,
        } => {
            // Clap requires --name without --resume.
            let name = name.ok_or_else(|| Usage("put needs --name".into()))?;
            // Everything is checked before anything (even the store) is created.
            modelvault::check_name(&name)?;
            let inputs = files::collect(&paths, follow_symlinks)?;
            // Reverse deltas use the store's default bound.
            let mut store = Store::options().create(true);
            if let Some(d) = max_delta_depth.or(forward_delta.then_some(FORWARD_DELTA_DEPTH)) {
                store = store.max_delta_depth(d);
            }
            let store = store.open(&repo)?;
            let mut opts = store
                .put_version(&name)
                .project(project)
                .reverse_delta(!forward_delta);
            if let Some(e) = experiment {
                opts = opts.experiment(experiment::find(&store, &e)?.id());
            }
            opts = match (no_delta, base) {
                (true, _) => opts.no_delta(),
                (false, Some(b)) => opts.base(b),
                (false, None) => opts,
            };
            put(&store, opts, &name, &inputs, json.json)?
        }
        Command::Get {
            model,
            out,
            allow_case_collisions,
            json,
        } => get(
            &open_for_reading(&repo)?,
            &model,
            &out,
            allow_case_collisions,
            json.json,
        )?,
        Command::Cat { model, path } => {
            let store = open_for_reading(&repo)?;
            let v = resolve(&store, &model)?;
            let f = v.file(&path).ok_or_else(|| modelvault::Error::NotFound {
                kind: "file",
                name: format!("{path:?} in {}@{}", v.name, v.version),
            })?;
            let mut r = store.blob_reader(&f.blob)?;
            let mut out = io::stdout().lock();
            io::copy(&mut r, &mut out)?;
            out.flush()?;
        }
        Command::List(json) => model_cmd(
            &open_for_reading(&repo)?,
            ModelCmd::List { query: None, json },
        )?,
        Command::Versions { model, json } => model_cmd(
            &open_for_reading(&repo)?,
            ModelCmd::Versions { model, json },
        )?,
        Command::Show { model, json } => {
            let v = resolve(&open_for_reading(&repo)?, &model)?;
            if json.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                print_version(&v);
            }
        }
        Command::Export {
            what,
            experiments,
            with_used,
            out,
            exclude_have,
            since,
            json,
        } => archive::export(
            &open_for_reading(&repo)?,
            what.as_deref(),
            (&experiments, with_used),
            out.as_deref(),
            exclude_have.as_deref(),
            &since,
            json.json,
        )?,
        Command::Import {
            bundle,
            skip_conflicts,
            json,
        } => archive::import(
            &Store::options().create(true).open(&repo)?,
            &bundle,
            skip_conflicts,
            json.json,
        )?,
        Command::Have => archive::have(&open_for_reading(&repo)?)?,
        Command::Sync {
            dest,
            what,
            from,
            experiments,
            with_used,
            json,
        } => match from {
            // With --from the one positional is WHAT: this store is the target.
            Some(url) => {
                if what.is_some() {
                    return Err(Usage(
                        "with --from, sync takes one WHAT: the target is --repo".into(),
                    )
                    .into());
                }
                archive::sync_from(
                    &url,
                    &Store::options().create(true).open(&repo)?,
                    dest.as_deref(),
                    (&experiments, with_used),
                    json.json,
                )?
            }
            None => {
                let dest = dest.ok_or_else(|| {
                    Usage("sync needs DEST (a store directory) or --from URL".into())
                })?;
                archive::sync(
                    &open_for_reading(&repo)?,
                    &Store::options().create(true).open(&dest)?,
                    what.as_deref(),
                    (&experiments, with_used),
                    json.json,
                )?
            }
        },
        Command::Stats(json) => {
            let s = open_for_reading(&repo)?.stats();
            if json.json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("logical bytes      {}", human(s.logical_bytes));
                println!("unique chunk bytes {}", human(s.unique_bytes));
                if s.upload_bytes > 0 {
                    println!(
                        "  of which uploads {}  (interrupted uploads; see `uploads`)",
                        human(s.upload_bytes)
                    );
                }
                println!("stored bytes       {}", human(s.stored_bytes));
                println!("chunks             {}", s.chunks);
                println!("blobs              {}", s.blobs);
                println!("versions           {}", s.versions);
                println!("packs              {}", s.packs);
                println!("dedup ratio        {:.3}", s.dedup_ratio);
                println!("compression ratio  {:.3}", s.compression_ratio);
                println!("stored / logical   {:.3}", s.stored_fraction);
            }
        }
        Command::Verify {
            read_data,
            subset,
            json,
        } => {
            let store = open_for_reading(&repo)?;
            let mut opts = modelvault::VerifyOptions::new().read_data(read_data);
            let mut parts = None;
            if let Some(s) = subset {
                let (n, m) = s
                    .split_once('/')
                    .ok_or_else(|| Usage(format!("--subset takes N/M, got {s:?}")))?;
                let n: u64 = n.parse().context("--subset N")?;
                let m: u64 = m.parse().context("--subset M")?;
                opts = opts.subset(n, m)?;
                parts = Some((n, m));
            }
            let bar = if read_data {
                let mut total = store.stats().unique_bytes;
                if let Some((_, m)) = parts {
                    total /= m.max(1);
                }
                progress::bytes("verify", total)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let r = store.verify_with_progress(opts, &|n| bar.set_position(n))?;
            bar.finish();
            if json.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                for p in &r.problems {
                    println!("{}: {}: {}", p.kind, p.object, p.detail);
                    for a in &p.affected {
                        println!("    affects {a}");
                    }
                }
                println!(
                    "checked {} chunks ({} deltas, {} read, {}), {} blobs, {} versions: {} problems",
                    r.chunks,
                    r.delta_chunks,
                    r.chunks_read,
                    human(r.bytes_read),
                    r.blobs,
                    r.versions,
                    r.problems.len()
                );
            }
            if !r.is_clean() {
                return Err(ProblemsFound(r.problems.len()).into());
            }
        }
        Command::Gc {
            expire_uploads_after,
            compact_below,
            compact_metadata,
            json,
        } => {
            let opts = GcOptions::new()
                .expire_uploads_after(parse_duration(&expire_uploads_after)?)
                .compact_below(compact_below)
                .compact_metadata(compact_metadata);
            let bar = progress::bytes("gc: compacting", 0);
            let r = open(&repo)?.gc_with_progress(&opts, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            // Nothing to compact: nothing to show.
            if bar.length().unwrap_or(0) > 0 {
                bar.finish();
            } else {
                bar.finish_and_clear();
            }
            if json.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "expired {} uploads, released {} manifests, deleted {} chunks ({}; {} held by uploads in flight), compacted {} packs and deleted {} ({} copied, {} reclaimed{}){}",
                    r.uploads_expired,
                    r.manifests_released,
                    r.chunks_deleted,
                    human(r.chunk_bytes_deleted),
                    r.chunks_held,
                    r.packs_compacted,
                    r.packs_deleted,
                    human(r.bytes_copied),
                    human(r.bytes_reclaimed),
                    if r.packs_busy > 0 { format!("; {} packs busy, next time", r.packs_busy) } else { String::new() },
                    if r.metadata_compacted { "; metadata compacted" } else { "" }
                );
            }
            // Compaction went on without them: say which and why.
            for p in &r.packs_skipped {
                eprintln!("pack {:08x} skipped: {}", p.pack, p.error);
            }
        }
        Command::Uploads(json) => {
            let list = open_for_reading(&repo)?.uploads()?;
            if json.json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for u in list {
                    println!(
                        "{}  {} durable{}{}",
                        u.id,
                        human(u.durable_bytes),
                        if u.open { "  (open)" } else { "" },
                        u.label.as_ref().map_or(String::new(), |l| format!("  {l}"))
                    );
                }
            }
        }
        Command::Tensor {
            model,
            file,
            tensor,
            out,
            json,
        } => super::tensor::tensor(
            &open_for_reading(&repo)?,
            &model,
            &file,
            tensor.as_deref(),
            out,
            json.json,
        )?,
        Command::Index(cmd) => {
            let store = match cmd {
                IndexCmd::Verify(_) => open_for_reading(&repo)?,
                IndexCmd::Rebuild(_) => open(&repo)?,
            };
            super::tensor::index(&store, cmd)?
        }
        Command::Du { sort, json } => super::usage::du(&open_for_reading(&repo)?, sort, json.json)?,
        Command::Who { id, json } => super::usage::who(&open_for_reading(&repo)?, &id, json.json)?,
        Command::Experiment(cmd) => {
            let reads_only = matches!(
                cmd,
                ExperimentCmd::Show { .. }
                    | ExperimentCmd::List { .. }
                    | ExperimentCmd::Console { .. }
                    | ExperimentCmd::Progress { value: None, .. }
                    | ExperimentCmd::Artifacts { .. }
                    | ExperimentCmd::Artifact(ArtifactCmd::Get { .. })
                    | ExperimentCmd::Scalars { .. }
            ) || matches!(&cmd, ExperimentCmd::Env { capture: false, set, .. } if set.is_empty());
            let store = if reads_only {
                open_for_reading(&repo)?
            } else if matches!(cmd, ExperimentCmd::Create { .. }) {
                open_creating(&repo)?
            } else {
                open(&repo)?
            };
            experiment_cmd(&store, cmd)?
        }
        Command::Model(cmd) => {
            let reads_only = matches!(
                cmd,
                ModelCmd::Show { .. }
                    | ModelCmd::List { .. }
                    | ModelCmd::Versions { .. }
                    | ModelCmd::Url { .. }
            );
            let store = if reads_only {
                open_for_reading(&repo)?
            } else if matches!(cmd, ModelCmd::Register { .. }) {
                open_creating(&repo)?
            } else {
                open(&repo)?
            };
            model_cmd(&store, cmd)?
        }
        Command::Serve(a) => super::serve::serve(&repo, a)?,
        // Answered above, before a store is needed.
        Command::Completions { shell } => print_completions(shell),
    }
    Ok(())
}

/// Writes the completion script for `shell` on stdout.
fn print_completions(shell: clap_complete::Shell) {
    let mut cmd = <Args as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "modelvault", &mut io::stdout());
}

/// `30s`, `15m`, `24h`, `7d`, `2w` (a bare number is seconds).
pub(super) fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow!("duration {s:?}: expected a number and a unit (s, m, h, d, w)"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("duration {s:?}: unknown unit {unit:?} (use s, m, h, d or w)"),
    };
    let total = n
        .checked_mul(secs)
        .ok_or_else(|| anyhow!("duration {s:?} is too long"))?;
    Ok(std::time::Duration::from_secs(total))
}

pub(super) fn delete_options(d: DeleteFlags) -> DeleteOptions {
    DeleteOptions::new().force(d.force).dry_run(d.dry_run)
}

pub(super) fn print_delete(r: &DeleteReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    for e in &r.experiments {
        println!("{verb} experiment {e}");
    }
    for m in &r.models {
        println!("{verb} model {m}");
    }
    for (m, v) in &r.versions {
        println!("{verb} version {m}@{v}");
    }
    println!(
        "{} {} experiments, {} models, {} versions; frees {} blobs and {} stored{}",
        verb,
        r.experiments.len(),
        r.models.len(),
        r.versions.len(),
        r.blobs_freed,
        human(r.bytes_freed),
        if r.dry_run { "" } else { " at the next gc" }
    );
    Ok(())
}

fn open(repo: &Path) -> Result<Store> {
    Ok(Store::open(repo)?)
}

/// The store for a command that creates something new (`put`, `experiment
/// create`, `model register`; `serve` too): created if `repo` is missing or
/// an empty folder, as `init` would. Every other command needs an existing
/// store and fails with "not a modelvault store" (exit code 10) without one.
fn open_creating(repo: &Path) -> Result<Store> {
    Ok(Store::create(repo)?)
}

/// The store for a command that only reads: opened normally, or, when
/// another process holds it (a writer at work), read-only beside that
/// process, saying so once on stderr.
fn open_for_reading(repo: &Path) -> Result<Store> {
    match Store::open(repo) {
        Err(modelvault::Error::Locked { holder, .. }) => {
            let store = Store::open_read_only(repo)?;
            eprintln!("modelvault: read-only: the store is held by {holder}");
            Ok(store)
        }
        r => Ok(r?),
    }
}

/// A model spec → the version it names (latest when none).
pub(super) fn resolve(store: &Store, spec: &str) -> Result<ModelVersion> {
    let (model, version) = store.resolve_model(spec)?;
    Ok(model.version(version)?)
}

fn parse_value(s: &str) -> Value {
    fn from_json(v: serde_json::Value) -> Option<Value> {
        Some(match v {
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64()?),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => {
                Value::List(a.into_iter().map(from_json).collect::<Option<_>>()?)
            }
            _ => return None,
        })
    }
    serde_json::from_str(s)
        .ok()
        .and_then(from_json)
        .unwrap_or_else(|| Value::Str(s.to_string()))
}

pub(super) fn pair(s: &str) -> Result<(String, Value)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("{s:?} is not KEY=VALUE"))?;
    Ok((k.to_string(), parse_value(v)))
}

pub(super) fn print_version(v: &ModelVersion) {
    println!(
        "{}@{}  model {}  {} files, {}",
        v.name,
        v.version,
        v.model,
        v.files.len(),
        human(v.size())
    );
    for f in &v.files {
        println!(
            "{:>10}  {:<16} {}  {}",
            human(f.size),
            f.format.name(),
            f.blob,
            f.path
        );
    }
}

/// Stores `inputs` as the next version of `name` with the library's
/// version policy ([`modelvault::PutVersion`]), printing `NAME@VERSION`
/// (or, with `json`, one object: docs/CLI.md, "JSON output").
fn put(
    store: &Store,
    opts: modelvault::PutVersion,
    name: &str,
    inputs: &BTreeMap<String, files::Source>,
    json: bool,
) -> Result<()> {
    // Each file's size, for choosing delta bases by size (a renamed file).
    let mut sized = Vec::with_capacity(inputs.len());
    for (rel, src) in inputs {
        let len = fs::metadata(&src.path)
            .with_context(|| format!("cannot read {}", src.path.display()))?
            .len();
        sized.push((rel.as_str(), len));
    }
    let total: u64 = sized.iter().map(|(_, n)| n).sum();
    let files_count = sized.len();
    // Everything is checked before anything is written.
    let mut version = opts.begin(sized)?;
    let bar = progress::bytes(&format!("put {name}"), total);
    // Each file is written, its input ended (its last chunks handed to the
    // workers), and staged (its chunks waited for) on a thread of its own
    // while the next files are read, so the workers are not left idle at
    // every file boundary, and a folder of small files keeps several in
    // compression at once. Up to STAGE_AHEAD_FILES files and
    // STAGE_AHEAD_BYTES of them wait for their staging (at least one file),
    // so memory stays bounded whatever the number of files; the commit
    // makes them all visible.
    std::thread::scope(|s| -> Result<()> {
        let (to_stage, staging) = std::sync::mpsc::channel::<(&str, &Path, u64, BlobWriter)>();
        let (staged_tx, staged) = std::sync::mpsc::channel();
        s.spawn(move || {
            for (rel, path, n, w) in staging {
                if staged_tx.send((rel, path, n, w.stage())).is_err() {
                    return;
                }
            }
        });
        type Staged<'a> = (&'a str, &'a Path, u64, modelvault::Result<StagedBlob>);
        // Files handed to the staging thread and not back yet, and their bytes.
        let ahead = std::cell::Cell::new((0usize, 0u64));
        let add = |version: &mut modelvault::VersionPut, (rel, path, n, r): Staged| {
            let (files, bytes) = ahead.get();
            ahead.set((files - 1, bytes - n));
            r.and_then(|b| version.add_staged(rel, b))
                .with_context(|| format!("storing {}", path.display()))
        };
        let mut buf = vec![0u8; COPY_BUF];
        for (rel, src) in inputs {
            // Within the budget before reading another file.
            while ahead.get().0 > 0
                && (ahead.get().0 >= STAGE_AHEAD_FILES || ahead.get().1 >= STAGE_AHEAD_BYTES)
            {
                let done = staged
                    .recv()
                    .map_err(|_| anyhow!("the staging thread stopped"))?;
                add(&mut version, done)?;
            }
            let mut f = src.open()?;
            let mut w = version.writer(rel)?;
            let n = copy_through(&mut f, &mut w, &mut buf, &bar)
                .and_then(|n| w.finish_input().map(|()| n).map_err(io::Error::other))
                .with_context(|| format!("storing {}", src.path.display()))?;
            to_stage
                .send((rel, &src.path, n, w))
                .map_err(|_| anyhow!("the staging thread stopped"))?;
            let (files, bytes) = ahead.get();
            ahead.set((files + 1, bytes + n));
            while let Ok(done) = staged.try_recv() {
                add(&mut version, done)?;
            }
        }
        drop(to_stage);
        staged.iter().try_for_each(|done| add(&mut version, done))
    })?;
    let base = version
        .base_version()
        .map_or(String::new(), |b| format!("{}@{}", b.name, b.version));
    let r = version.commit()?;
    bar.finish();
    let v = r.version;
    if r.reverse.rebased > 0 {
        let (n, before, after, freed) = (
            r.reverse.rebased,
            human(r.reverse.bytes_before),
            human(r.reverse.bytes_after),
            human(r.reverse.bytes_reclaimed),
        );
        eprintln!(
            "reverse delta: {n} chunks of {base} re-encoded against {name}@{v} \
             ({before} -> {after}; {freed} of packs reclaimed)"
        );
    }
    if json {
        let model = store.model_by_name(name)?.id();
        println!(
            "{}",
            serde_json::json!({
                "name": name,
                "model": model,
                "version": v,
                "files": files_count,
                "bytes": total,
                "base": (!base.is_empty()).then_some(base),
                "rebased_files": r.rebased_files,
                "rebased_chunks": r.reverse.rebased,
                "bytes_reclaimed": r.reverse.bytes_reclaimed,
            })
        );
    } else {
        println!("{name}@{v}");
    }
    Ok(())
}

/// Numbers the temporary files of `get`.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Restores version `spec` into `out`. Durable on return: each file is
/// fsynced before it is renamed into place, then every folder whose entries
/// changed (each file's folder up to `out`, and the parent of each folder
/// created) is fsynced.
fn get(store: &Store, spec: &str, out: &Path, allow_case: bool, json: bool) -> Result<()> {
    let v = resolve(store, spec)?;
    restore(store, &v.name, v.version, &v.files, out, allow_case, json)
}

/// [`get`] of a version on a server (`modelvault://HOST:PORT/models/…`).
fn get_remote(spec: &remote::RemoteSpec, out: &Path, allow_case: bool, json: bool) -> Result<()> {
    let server = remote::Server::new(spec)?;
    let v = server.version(spec.version())?;
    let source = remote::Files {
        server: &server,
        version: v.version,
    };
    restore(&source, &v.name, v.version, &v.files, out, allow_case, json)
}

/// Where `get` reads a version's files: this store, or a server.
pub(super) trait FileSource: Sync {
    /// The content of `f`, verified (a reader that fails rather than give
    /// other bytes).
    fn open(&self, f: &VersionFile) -> Result<Box<dyn io::Read + Send + '_>>;
}

impl FileSource for Store {
    fn open(&self, f: &VersionFile) -> Result<Box<dyn io::Read + Send + '_>> {
        Ok(Box::new(self.blob_reader(&f.blob)?))
    }
}

/// Restores the files of version `version` of `name` into `out`, read from
/// `source`, with `get`'s durability.
fn restore(
    source: &dyn FileSource,
    name: &str,
    version: u32,
    files: &[VersionFile],
    out: &Path,
    allow_case: bool,
    json: bool,
) -> Result<()> {
    files::check_restorable(
        files.iter().map(|f| f.path.as_str()),
        allow_case,
        &format!("{name}@{version}"),
    )?;
    let mut dirs: BTreeSet<PathBuf> = files::create_out(out)?.into_iter().collect();
    let jobs = files
        .iter()
        .map(|f| Ok((f, files::destination(out, &f.path)?)))
        .collect::<Result<Vec<_>>>()?;
    let destinations: std::collections::HashSet<&Path> =
        jobs.iter().map(|(_, dst)| dst.as_path()).collect();
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    let bar = progress::bytes(&format!("get {name}@{version}"), bytes);
    // Files are restored several at a time (each reader decodes on its own
    // threads): one file's writes, fsync and rename overlap the others'
    // decoding and I/O, which is what a version of many small files waits
    // on. The first error stops the rest.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let worker = || -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut buf = vec![0u8; RESTORE_BUF];
        while !failed.load(Relaxed) {
            let Some((f, dst)) = jobs.get(next.fetch_add(1, Relaxed)) else {
                break;
            };
            restore_file(source, f, dst, &destinations, &bar, &mut buf)
                .inspect_err(|_| failed.store(true, Relaxed))?;
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..jobs.len().min(RESTORE_WORKERS))
            .map(|_| s.spawn(worker))
            .collect();
        let mut result = worker();
        for h in others {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a restore thread panicked")));
            result = result.and(r);
        }
        result
    })?;
    for (_, dst) in &jobs {
        let mut d = dst.parent();
        while let Some(p) = d.filter(|p| p.starts_with(out)) {
            if !dirs.insert(p.to_path_buf()) {
                break; // and the folders above it, already
            }
            d = p.parent();
        }
    }
    dirs.insert(out.to_path_buf());
    // Deepest first: a folder's entry in its parent is synced after it.
    for d in dirs.iter().rev() {
        files::sync_dir(d)?;
    }
    bar.finish();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "name": name,
                "version": version,
                "files": files.len(),
                "bytes": bytes,
                "out": out,
            })
        );
    } else {
        println!(
            "{name}@{version}: {} files, {} -> {}",
            files.len(),
            human(bytes),
            out.display()
        );
    }
    Ok(())
}

/// Restores one file of a version to `dst` through a fresh temporary file in
/// the same directory, renamed over `dst` once complete. `destinations` are
/// the destinations of all the version's files.
fn restore_file(
    source: &dyn FileSource,
    f: &VersionFile,
    dst: &Path,
    destinations: &std::collections::HashSet<&Path>,
    bar: &indicatif::ProgressBar,
    buf: &mut [u8],
) -> Result<()> {
    // A short, fresh name created exclusively: never follows a planted
    // symlink, fits any name length, and is never another file's
    // destination (whose rename would replace it while it is written).
    let tmp = loop {
        let tmp = dst.with_file_name(modelvault::restore_temp_name(
            std::process::id(),
            TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ));
        if !destinations.contains(tmp.as_path()) {
            break tmp;
        }
    };
    let mut r = source.open(f)?;
    let mut w = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    // Written and fsynced before the rename: a crash never leaves a renamed
    // file whose bytes did not reach the disk.
    let copied = (|| {
        let n = copy_through(&mut r, &mut w, buf, bar)?;
        w.sync_all()?;
        files::trace::record(|| files::trace::Event::SyncFile(tmp.clone()));
        Ok::<_, io::Error>(n)
    })();
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
    fs::rename(&tmp, dst).with_context(|| format!("cannot write {}", dst.display()))?;
    files::trace::record(|| files::trace::Event::Rename(tmp.clone(), dst.to_path_buf()));
    Ok(())
}

/// `get` with the default options, for the unit tests.
#[cfg(test)]
pub(super) fn get_for_test(store: &Store, spec: &str, out: &Path) {
    get(store, spec, out, false, false).unwrap()
}
