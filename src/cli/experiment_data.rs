//! What an experiment captured: `experiment artifact add|get`,
//! `experiment artifacts`, `experiment scalar|scalars` and `experiment env`.
//! Each is a thin call on [`modelvault::Experiment`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use modelvault::{Artifact, ArtifactBody, Environment, Experiment, RunInfo, Store};
use serde_json::json;

use super::args::ArtifactCmd;
use super::exit::Usage;
use super::sizes::human;

/// Points from stdin committed together (as `experiment log` does lines).
const SCALAR_BATCH: usize = 1000;

/// The JSON of one artifact revision (docs/CLI.md, "JSON output").
fn artifact_json(a: &Artifact) -> serde_json::Value {
    let (size, blob, inline) = match &a.body {
        ArtifactBody::Blob { blob, size } => (Some(*size), Some(blob.to_string()), None),
        ArtifactBody::Inline(v) => (None, None, Some(v)),
    };
    json!({
        "name": a.name,
        "revision": a.revision,
        "size": size,
        "blob": blob,
        "inline": inline,
        "metadata": a.metadata,
        "created_ms": a.created_ms,
    })
}

pub(super) fn artifact_cmd(store: &Store, e: &Experiment, cmd: ArtifactCmd) -> Result<()> {
    match cmd {
        ArtifactCmd::Add {
            name, file, json, ..
        } => {
            // Streamed through a blob writer, staged, and committed with the
            // artifact record: memory stays bounded whatever the size.
            let mut w = store.blob_writer();
            if file.as_os_str() == "-" {
                io::copy(&mut io::stdin().lock(), &mut w).context("storing stdin")?;
            } else {
                let mut f =
                    File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
                io::copy(&mut f, &mut w).with_context(|| format!("storing {}", file.display()))?;
            }
            let revision = e.add_artifact_staged(&name, w.stage()?, BTreeMap::new())?;
            let a = e.artifact(&name, Some(revision))?;
            if json.json {
                println!("{}", artifact_json(&a));
            } else {
                print_artifact(&a);
            }
        }
        ArtifactCmd::Get {
            name,
            revision,
            out,
            ..
        } => {
            let a = e
                .artifact(&name, revision)
                .with_context(|| match revision {
                    Some(r) => format!("revision {r} of artifact {name:?}"),
                    None => format!("artifact {name:?}"),
                })?;
            let mut src: Box<dyn Read> = match a.body {
                ArtifactBody::Blob { blob, .. } => Box::new(store.blob_reader(&blob)?),
                ArtifactBody::Inline(v) => Box::new(io::Cursor::new(serde_json::to_vec(&v)?)),
            };
            match out {
                Some(path) => write_file(&mut src, &path)?,
                None => {
                    let mut stdout = io::stdout().lock();
                    io::copy(&mut src, &mut stdout)?;
                    stdout.flush()?;
                }
            }
        }
    }
    Ok(())
}

fn print_artifact(a: &Artifact) {
    match &a.body {
        ArtifactBody::Blob { blob, size } => println!(
            "{}  revision {}  {:>10}  {blob}",
            a.name,
            a.revision,
            human(*size)
        ),
        ArtifactBody::Inline(v) => println!("{}  revision {}  inline {v}", a.name, a.revision),
    }
}

pub(super) fn artifacts(e: &Experiment, json: bool) -> Result<()> {
    let list = e.artifacts()?;
    if json {
        let all: Vec<_> = list.iter().map(artifact_json).collect();
        println!("{}", serde_json::Value::Array(all));
    } else {
        for a in &list {
            print_artifact(a);
        }
    }
    Ok(())
}

/// Copies `src` to `path` through a temporary file in the same folder,
/// fsynced and renamed over `path` once complete: a failed read (a damaged
/// chunk) leaves no partial file behind.
pub(super) fn write_file(src: &mut dyn Read, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Mode 0666 less the umask, as a file `get` or a shell redirection
    // creates (a temporary file's default is 0600).
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    {
        let mut w = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        io::copy(src, &mut w).with_context(|| format!("writing {}", path.display()))?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One point `METRIC SERIES ITERATION VALUE`, its parts checked: the
/// iteration a non-negative integer, the value a finite number (JSON has
/// no NaN or infinity).
fn point<'a>(
    metric: &'a str,
    series: &'a str,
    iteration: &str,
    value: &str,
) -> Result<(&'a str, &'a str, u64, f64)> {
    let it: u64 = iteration
        .parse()
        .map_err(|_| anyhow!("ITERATION {iteration:?} is not a non-negative integer"))?;
    let v: f64 = value
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| anyhow!("VALUE {value:?} is not a finite number"))?;
    Ok((metric, series, it, v))
}

/// `experiment scalar`: one point from the arguments, or the lines of
/// stdin with `--stdin`.
pub(super) fn scalar(
    e: &Experiment,
    args: [Option<String>; 4],
    stdin: bool,
    json: bool,
) -> Result<()> {
    let written = if stdin {
        scalars_from(e, io::stdin().lock())?
    } else {
        let [Some(m), Some(s), Some(i), Some(v)] = args else {
            return Err(Usage("give METRIC SERIES ITERATION VALUE, or --stdin".into()).into());
        };
        e.report_scalars([point(&m, &s, &i, &v)?])?;
        1
    };
    if json {
        println!("{}", json!({"id": e.id(), "points": written}));
    }
    Ok(())
}

/// Reports the points of `input`'s lines, [`SCALAR_BATCH`] per commit.
/// Returns how many were written.
fn scalars_from(e: &Experiment, input: impl BufRead) -> Result<u64> {
    let mut lines: Vec<(usize, String)> = Vec::with_capacity(SCALAR_BATCH);
    let mut written = 0u64;
    // Line number of the last line written (0: none).
    let mut done = 0usize;
    let commit =
        |lines: &mut Vec<(usize, String)>, done: &mut usize, written: &mut u64| -> Result<()> {
            let first = lines.first().map_or(0, |(n, _)| *n);
            let not_written = || written_so_far(*done, first);
            let mut points = Vec::with_capacity(lines.len());
            for (n, l) in lines.iter() {
                let f: Vec<&str> = l.split_whitespace().collect();
                let p = match f[..] {
                    [m, s, i, v] => point(m, s, i, v),
                    _ => Err(anyhow!(
                        "expected METRIC SERIES ITERATION VALUE, got {} fields",
                        f.len()
                    )),
                }
                .with_context(|| format!("stdin line {n} ({})", not_written()))?;
                points.push(p);
            }
            e.report_scalars(points.iter().copied()).with_context(|| {
                let last = lines.last().map_or(0, |(n, _)| *n);
                format!("stdin lines {first} to {last} ({})", not_written())
            })?;
            *written += points.len() as u64;
            *done = lines.last().map_or(*done, |(n, _)| *n);
            lines.clear();
            Ok(())
        };
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| {
            let first = lines.first().map_or(n, |(f, _)| *f);
            format!("reading stdin line {n} ({})", written_so_far(done, first))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        lines.push((n, line));
        if lines.len() == SCALAR_BATCH {
            commit(&mut lines, &mut done, &mut written)?;
        }
    }
    if !lines.is_empty() {
        commit(&mut lines, &mut done, &mut written)?;
    }
    Ok(written)
}

/// What a failed batch starting at line `first` leaves: the lines up to
/// `done` written, nothing from `first` on.
fn written_so_far(done: usize, first: usize) -> String {
    if done == 0 {
        "nothing written".to_string()
    } else {
        format!("lines 1 to {done} were written, nothing from line {first} on")
    }
}

pub(super) fn scalars(e: &Experiment, metric: &str, json: bool) -> Result<()> {
    let series = e.scalars(metric)?;
    if json {
        let all: Vec<_> = series
            .iter()
            .map(|(s, i, v)| json!({"series": s, "iteration": i, "value": v}))
            .collect();
        println!("{}", serde_json::Value::Array(all));
    } else {
        let mut out = io::stdout().lock();
        for (s, i, v) in &series {
            writeln!(out, "{s}  {i}  {v}")?;
        }
    }
    Ok(())
}

/// `experiment env`: records what `capture` and `set` say (each record only
/// if it changed), then shows both.
pub(super) fn env(e: &Experiment, capture: bool, set: &[String], json: bool) -> Result<()> {
    let info = e.info()?;
    let mut environment = info.environment.clone().unwrap_or_default();
    let mut run = info.run.clone().unwrap_or_default();
    if capture {
        capture_run(&mut run);
    }
    for kv in set {
        set_field(&mut environment, &mut run, kv)?;
    }
    if info.environment.as_ref().unwrap_or(&Environment::default()) != &environment {
        e.set_environment(environment)?;
    }
    if info.run.as_ref().unwrap_or(&RunInfo::default()) != &run {
        e.set_run_info(run)?;
    }
    let info = e.info()?;
    if json {
        println!(
            "{}",
            json!({"id": info.id, "environment": info.environment, "run": info.run})
        );
        return Ok(());
    }
    match &info.environment {
        None => println!("environment: none recorded"),
        Some(env) => {
            println!("interpreter  {}", env.interpreter);
            for (p, v) in &env.packages {
                println!("package      {p} {v}");
            }
            if !env.requirements.is_empty() {
                println!("requirements");
                for l in env.requirements.lines() {
                    println!("  {l}");
                }
            }
        }
    }
    match &info.run {
        None => println!("run: none recorded"),
        Some(r) => {
            println!("host         {}", r.host);
            println!("user         {}", r.user);
            println!("command      {}", r.command.join(" "));
            println!("working_dir  {}", r.working_dir);
            println!("git_repo     {}", r.git_repo.as_deref().unwrap_or(""));
            println!("git_commit   {}", r.git_commit.as_deref().unwrap_or(""));
            if let Some(d) = &r.git_diff {
                println!("git_diff     {} lines", d.lines().count());
            }
        }
    }
    Ok(())
}

/// Fills in what this process can find out about where it runs; leaves a
/// field it cannot find as it was.
fn capture_run(run: &mut RunInfo) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()));
    if let Some(h) = host {
        run.host = h;
    }
    if let Some(u) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|u| !u.is_empty()))
    {
        run.user = u;
    }
    if let Ok(d) = std::env::current_dir() {
        run.working_dir = d.display().to_string();
    }
    // The git repository (its top folder) and commit of the working directory.
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8(o.stdout).ok()?.trim().to_string();
        (o.status.success() && !s.is_empty()).then_some(s)
    };
    if let Some(top) = git(&["rev-parse", "--show-toplevel"]) {
        run.git_repo = Some(top);
        run.git_commit = git(&["rev-parse", "HEAD"]);
    }
}

/// Applies one `--set KEY=VALUE`.
fn set_field(env: &mut Environment, run: &mut RunInfo, kv: &str) -> Result<()> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| Usage(format!("--set {kv:?}: expected KEY=VALUE")))?;
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
    match k {
        "interpreter" => env.interpreter = v.to_string(),
        "requirements" => env.requirements = v.to_string(),
        "host" => run.host = v.to_string(),
        "user" => run.user = v.to_string(),
        "working_dir" => run.working_dir = v.to_string(),
        "command" => run.command = v.split_whitespace().map(str::to_string).collect(),
        "git_repo" => run.git_repo = opt(v),
        "git_commit" => run.git_commit = opt(v),
        "git_diff" => run.git_diff = opt(v),
        _ => match k.strip_prefix("package.") {
            Some("") | None => bail!(Usage(format!(
                "--set {kv:?}: unknown key {k:?} (interpreter, requirements, package.NAME, \
                 host, user, working_dir, command, git_repo, git_commit, git_diff)"
            ))),
            Some(p) if v.is_empty() => {
                env.packages.remove(p);
            }
            Some(p) => {
                env.packages.insert(p.to_string(), v.to_string());
            }
        },
    }
    Ok(())
}
