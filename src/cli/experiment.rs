//! `modelvault experiment ...`: create, inspect, log to and finish experiments.

use std::io::{self, BufRead, Write};

use anyhow::{bail, Context, Result};
use modelvault::{EntityId, Experiment, NewExperiment, Status, Store, Stream};

use super::args::{ArtifactCmd, ExperimentCmd};
use super::commands::{delete_options, pair, print_delete, resolve};
use super::experiment_data;

pub(super) fn find(store: &Store, spec: &str) -> Result<Experiment> {
    if let Ok(id) = spec.parse::<EntityId>() {
        return Ok(store.experiment(id)?);
    }
    match spec.split_once('/') {
        Some((project, name)) => Ok(store.experiment_by_name(project, name)?),
        None => bail!("{spec:?} is neither an experiment id nor PROJECT/NAME"),
    }
}

/// The `experiment show --json` object.
fn experiment_json(e: &Experiment) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(e.info()?)?)
}

/// After a change: with `--json`, the experiment as `experiment show
/// --json` prints it.
fn changed(e: &Experiment, json: bool) -> Result<()> {
    if json {
        println!("{}", experiment_json(e)?);
    }
    Ok(())
}

pub(super) fn experiment_cmd(store: &Store, cmd: ExperimentCmd) -> Result<()> {
    match cmd {
        ExperimentCmd::Create {
            project,
            name,
            tags,
            kind,
            json,
        } => {
            let mut spec = NewExperiment::new(project, name).tags(tags);
            if let Some(k) = kind {
                spec = spec.kind(k);
            }
            let e = store.create_experiment(spec)?;
            if json.json {
                println!("{}", experiment_json(&e)?);
            } else {
                println!("{}", e.id());
            }
        }
        ExperimentCmd::Show { id, json } => {
            let e = find(store, &id)?;
            let info = e.info()?;
            if json.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "experiment {}  {}/{}  {}  progress {}%",
                    info.id,
                    info.project,
                    info.name,
                    info.status.name(),
                    info.progress
                );
                if !info.tags.is_empty() {
                    println!("tags: {}", info.tags.join(", "));
                }
                for (k, v) in &info.params {
                    println!("param {k} = {v}");
                }
                for m in &info.created_models {
                    println!("created model {m}");
                }
                for (m, v) in &info.input_models {
                    println!("used model {m}@{v}");
                }
                println!("console lines: {}", info.console_lines);
            }
        }
        ExperimentCmd::List {
            project,
            name_prefix,
            status,
            tag,
            limit,
            after,
            json,
        } => {
            let mut q = store.experiments().limit(limit);
            if let Some(p) = project {
                q = q.project(p);
            }
            if let Some(p) = name_prefix {
                q = q.name_prefix(p);
            }
            if let Some(s) = status {
                q = q.status(s.parse::<Status>()?);
            }
            if let Some(t) = tag {
                q = q.tag(t);
            }
            if let Some(a) = after {
                q = q.after(a.parse()?);
            }
            let list = q.run()?;
            if json.json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for e in list {
                    println!(
                        "{}  {:<10} {:>3}%  {}/{}",
                        e.id,
                        e.status.name(),
                        e.progress,
                        e.project,
                        e.name
                    );
                }
            }
        }
        ExperimentCmd::Start { id, json } => {
            let e = find(store, &id)?;
            e.start()?;
            changed(&e, json.json)?;
        }
        ExperimentCmd::Log {
            id,
            stderr,
            text,
            json,
        } => {
            let e = find(store, &id)?;
            let stream = if stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            if text.is_empty() {
                let stdin = io::stdin().lock();
                let mut batch = Vec::new();
                for line in stdin.lines() {
                    batch.push(line.context("reading stdin")?);
                    if batch.len() == 1000 {
                        e.log_lines(batch.iter().map(|l| (stream, l.as_str())))?;
                        batch.clear();
                    }
                }
                if !batch.is_empty() {
                    e.log_lines(batch.iter().map(|l| (stream, l.as_str())))?;
                }
            } else {
                e.log_lines(text.iter().map(|l| (stream, l.as_str())))?;
            }
            changed(&e, json.json)?;
        }
        ExperimentCmd::Console {
            id,
            from,
            tail,
            json,
        } => {
            let e = find(store, &id)?;
            let lines = match tail {
                Some(n) => e.console_tail(n)?,
                None => e.console(from, usize::MAX)?,
            };
            if json.json {
                println!("{}", serde_json::to_string(&lines)?);
            } else {
                let mut out = io::stdout().lock();
                for l in lines {
                    writeln!(out, "{}", l.text)?;
                }
            }
        }
        ExperimentCmd::Progress { id, value, json } => {
            let e = find(store, &id)?;
            match (value, json.json) {
                (Some(v), _) => {
                    e.set_progress(v)?;
                    changed(&e, json.json)?;
                }
                (None, true) => changed(&e, true)?,
                (None, false) => println!("{}", e.progress()?),
            }
        }
        ExperimentCmd::Param { id, pairs, json } => {
            let e = find(store, &id)?;
            e.set_params(pairs.iter().map(|p| pair(p)).collect::<Result<Vec<_>>>()?)?;
            changed(&e, json.json)?;
        }
        ExperimentCmd::Use { id, model, json } => {
            let e = find(store, &id)?;
            let v = resolve(store, &model)?;
            e.use_model(v.model, v.version)?;
            changed(&e, json.json)?;
        }
        ExperimentCmd::Delete {
            id,
            with_models,
            del,
        } => {
            let r = find(store, &id)?.delete(delete_options(del).with_models(with_models))?;
            print_delete(&r, del.json)?;
        }
        ExperimentCmd::Artifact(cmd) => {
            let id = match &cmd {
                ArtifactCmd::Add { id, .. } | ArtifactCmd::Get { id, .. } => id,
            };
            let e = find(store, id)?;
            experiment_data::artifact_cmd(store, &e, cmd)?;
        }
        ExperimentCmd::Artifacts { id, json } => {
            experiment_data::artifacts(&find(store, &id)?, json.json)?
        }
        ExperimentCmd::Scalar {
            id,
            metric,
            series,
            iteration,
            value,
            stdin,
            json,
        } => experiment_data::scalar(
            &find(store, &id)?,
            [metric, series, iteration, value],
            stdin,
            json.json,
        )?,
        ExperimentCmd::Scalars { id, metric, json } => {
            experiment_data::scalars(&find(store, &id)?, &metric, json.json)?
        }
        ExperimentCmd::Env {
            id,
            capture,
            set,
            json,
        } => experiment_data::env(&find(store, &id)?, capture, &set, json.json)?,
        ExperimentCmd::Finalize { id, status, json } => {
            let e = find(store, &id)?;
            e.finish(status.parse()?)?;
            changed(&e, json.json)?;
        }
    }
    Ok(())
}
