//! `modelvault model ...`: show, list, search, label, delete and retire models.

use anyhow::{bail, Context, Result};
use modelvault::detect::Framework;
use modelvault::query;
use modelvault::{EntityId, Model, NewModel, Retention, Store};
use serde_json::json;

use super::args::ModelCmd;
use super::commands::{delete_options, pair, parse_duration, print_delete, print_version};

fn model(store: &Store, spec: &str) -> Result<Model> {
    Ok(store.resolve_model(spec)?.0)
}

/// The `model show --json` object: the model's info with its URL and
/// version numbers. The commands that change a model print it too.
fn model_json(m: &Model) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(m.info()?)?;
    v["url"] = json!(m.url(None));
    v["versions"] = json!(m.versions()?);
    Ok(v)
}

/// After a change: with `--json`, the model as `model show --json` prints it.
fn changed(m: &Model, json: bool) -> Result<()> {
    if json {
        println!("{}", model_json(m)?);
    }
    Ok(())
}

pub(super) fn model_cmd(store: &Store, cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Show { model: spec, json } => {
            let m = model(store, &spec)?;
            let info = m.info()?;
            if json.json {
                println!("{}", model_json(&m)?);
            } else {
                println!(
                    "model {}  {} ({})  framework {}",
                    info.id,
                    info.name,
                    info.project,
                    info.framework.name()
                );
                println!("url {}", m.url(None));
                println!(
                    "latest version {}{}",
                    info.latest,
                    if info.finalized_ms.is_some() {
                        "  [finalized]"
                    } else {
                        ""
                    }
                );
                if let Some(e) = info.experiment {
                    println!("created by experiment {e}");
                }
                if !info.tags.is_empty() {
                    println!("tags: {}", info.tags.join(", "));
                }
                for (k, v) in &info.metadata {
                    println!("metadata {k} = {v}");
                }
                for (a, v) in &info.aliases {
                    println!("alias {a} -> {v}");
                }
                if let Some(x) = &info.external {
                    println!("external {}", x.url);
                }
            }
        }
        ModelCmd::List { query: q, json } => {
            // One shape with or without a query: id, name, latest, framework.
            let entry = |id: EntityId, name: &str, latest: u32, framework: Framework| json!({"id": id, "name": name, "latest": latest, "framework": framework});
            let list: Vec<serde_json::Value> = match q {
                Some(q) => {
                    let q = query::parse(&q)?;
                    store
                        .find_models(&q)?
                        .into_iter()
                        .map(|m| entry(m.id, &m.name, m.latest, m.framework))
                        .collect()
                }
                None => store
                    .models()?
                    .into_iter()
                    .map(|m| {
                        let info = store.model(m.id)?.info()?;
                        Ok(entry(m.id, &m.name, m.latest, info.framework))
                    })
                    .collect::<Result<_>>()?,
            };
            if json.json {
                println!("{}", serde_json::Value::Array(list));
            } else {
                for m in list {
                    println!(
                        "{}@{}  {}",
                        m["name"].as_str().unwrap_or(""),
                        m["latest"],
                        m["id"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ModelCmd::Versions { model: spec, json } => {
            let m = model(store, &spec)?;
            let versions = m
                .versions()?
                .into_iter()
                .map(|v| m.version(Some(v)))
                .collect::<Result<Vec<_>, _>>()?;
            if json.json {
                println!("{}", serde_json::to_string(&versions)?);
            } else {
                for v in &versions {
                    print_version(v);
                }
            }
        }
        ModelCmd::Url { model: spec, json } => {
            let (m, v) = store.resolve_model(&spec)?;
            let v = match v {
                Some(v) => v,
                None => m.info()?.latest,
            };
            let url = m.url(Some(v).filter(|&v| v > 0));
            if json.json {
                println!("{}", json!({ "url": url }));
            } else {
                println!("{url}");
            }
        }
        ModelCmd::Tag {
            model: spec,
            remove,
            tags,
            json,
        } => {
            let m = model(store, &spec)?;
            if remove {
                for t in &tags {
                    m.remove_tag(t)?;
                }
            } else {
                m.add_tags(tags)?;
            }
            changed(&m, json.json)?;
        }
        ModelCmd::Meta {
            model: spec,
            remove,
            pairs,
            json,
        } => {
            let m = model(store, &spec)?;
            for p in &pairs {
                if remove {
                    m.remove_metadata(p)?;
                } else {
                    let (k, v) = pair(p)?;
                    m.set_metadata(&k, v)?;
                }
            }
            changed(&m, json.json)?;
        }
        ModelCmd::Alias {
            model: spec,
            alias,
            version,
            move_,
            remove,
            json,
        } => {
            let m = model(store, &spec)?;
            match (remove, version) {
                (true, _) => m.remove_alias(&alias)?,
                (false, Some(v)) if move_ => m.move_alias(&alias, v)?,
                (false, Some(v)) => m.set_alias(&alias, v)?,
                (false, None) => bail!("give a VERSION for alias {alias:?}, or --remove"),
            }
            changed(&m, json.json)?;
        }
        ModelCmd::Finalize { model: spec, json } => {
            let m = model(store, &spec)?;
            m.finalize()?;
            changed(&m, json.json)?;
        }
        ModelCmd::Delete { model: spec, del } => {
            let (m, version) = store.resolve_model(&spec)?;
            let r = match version {
                Some(v) => m.delete_version(v, delete_options(del)),
                None => m.delete(delete_options(del)),
            }
            .with_context(|| format!("cannot delete {spec}"))?;
            print_delete(&r, del.json)?;
        }
        ModelCmd::Prune {
            model: spec,
            all,
            keep_last,
            keep_within,
            dry_run,
            json,
        } => {
            let mut rule = Retention::new();
            if let Some(n) = keep_last {
                rule = rule.keep_last(n);
            }
            if let Some(d) = keep_within {
                rule = rule.keep_within(parse_duration(&d)?);
            }
            // All models are pruned in one deletion, so that the freed
            // figures of a dry run are those of the real run (a blob shared
            // by two models is freed once both drop it).
            let total = match (spec, all) {
                (Some(spec), _) => model(store, &spec)?.prune(&rule, dry_run)?,
                (None, true) => store.prune_all(&rule, dry_run)?,
                (None, false) => bail!("name a model, or pass --all"),
            };
            print_delete(&total, json.json)?;
        }
        ModelCmd::Register {
            name,
            project,
            checksum,
            url,
            json,
        } => {
            let m = store.register_external_model(
                NewModel::new(name).project(project),
                &url,
                checksum.as_deref(),
            )?;
            if json.json {
                println!("{}", serde_json::to_string(&m.info()?)?);
            } else {
                println!("{}", m.id());
            }
        }
    }
    Ok(())
}
