//! The registry as a read-only bucket: every model version's files as
//! `MODEL/VERSION/PATH`, and the same files under `MODEL/latest/PATH` and
//! `MODEL/ALIAS/PATH`, so that any S3 client downloads a model
//! (`aws s3 sync s3://models/resnet/latest ./resnet`). Objects here are the
//! versions' blobs: nothing is copied, and their entity tag is the blob id
//! (64 hex digits, which no client takes for an MD5).
//!
//! A model name is the key up to its first `/`; a model whose name holds a
//! `/` is not shown. Where two models share a name, the most recent one is
//! shown (as `modelvault model show NAME` does).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::Store;
use crate::{Model, VersionFile};

/// One object of the registry bucket.
pub(crate) struct Entry {
    pub key: String,
    pub file: VersionFile,
    pub created_ms: u64,
}

/// A listing's page: objects, rolled-up prefixes, and where to go on.
pub(crate) struct Page {
    pub entries: Vec<Entry>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// What the key `key` names: its model, version and file.
pub(crate) fn lookup(store: &Store, key: &str) -> Result<Entry> {
    let missing = || Error::not_found("object", key);
    let mut parts = key.splitn(3, '/');
    let (Some(name), Some(spec), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(missing());
    };
    let model = match store.model_by_name(name) {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(e),
    };
    let Some(version) = version_of(&model, spec)? else {
        return Err(missing());
    };
    let v = match model.version(Some(version)) {
        Ok(v) => v,
        Err(Error::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(e),
    };
    let file = v.file(path).cloned().ok_or_else(missing)?;
    Ok(Entry {
        key: key.to_owned(),
        file,
        created_ms: v.created_ms,
    })
}

/// The version `spec` names: a number, `latest`, or an alias.
fn version_of(model: &Model, spec: &str) -> Result<Option<u32>> {
    let info = model.info()?;
    if spec == "latest" {
        return Ok((info.latest > 0).then_some(info.latest));
    }
    if let Ok(n) = spec.parse::<u32>() {
        if spec == n.to_string() && n >= 1 && n <= info.latest {
            return Ok(Some(n));
        }
        return Ok(None);
    }
    Ok(info.aliases.get(spec).copied())
}

/// The keys under `prefix` after `after`, rolled up at `delimiter` (when
/// not empty), at most `max` entries and prefixes in all.
pub(crate) fn list(
    store: &Store,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page> {
    let mut all = Vec::new();
    for name in model_names(store, prefix)? {
        let model = store.model_by_name(&name)?;
        let info = model.info()?;
        let mut specs: Vec<(String, u32)> = (1..=info.latest).map(|v| (v.to_string(), v)).collect();
        if info.latest > 0 {
            specs.push(("latest".to_owned(), info.latest));
        }
        specs.extend(info.aliases.iter().map(|(a, v)| (a.clone(), *v)));
        for (spec, version) in specs {
            let head = format!("{name}/{spec}/");
            if !(head.starts_with(prefix) || prefix.starts_with(&head)) {
                continue;
            }
            let v = model.version(Some(version))?;
            for file in v.files {
                let key = format!("{head}{}", file.path);
                if key.starts_with(prefix) {
                    all.push(Entry {
                        key,
                        file,
                        created_ms: v.created_ms,
                    });
                }
            }
        }
    }
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(page(all, prefix, delimiter, after, max))
}

/// The names of the models whose keys may start with `prefix`.
fn model_names(store: &Store, prefix: &str) -> Result<BTreeSet<String>> {
    if let Some((name, _)) = prefix.split_once('/') {
        return Ok(match store.model_by_name(name) {
            Ok(_) => BTreeSet::from([name.to_owned()]),
            Err(Error::NotFound { .. }) => BTreeSet::new(),
            Err(e) => return Err(e),
        });
    }
    Ok(store
        .models()?
        .into_iter()
        .map(|m| m.name)
        .filter(|n| n.starts_with(prefix) && !n.contains('/'))
        .collect())
}

/// S3's listing over sorted `all`: keys after `after`, the part after
/// `prefix` rolled up at the first `delimiter` into one common prefix,
/// `max` entries and prefixes at most.
fn page(all: Vec<Entry>, prefix: &str, delimiter: &str, after: Option<&str>, max: usize) -> Page {
    let mut out = Page {
        entries: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    let mut last: Option<String> = None;
    for e in all {
        if !e.key.starts_with(prefix) || after.is_some_and(|a| e.key.as_str() <= a) {
            continue;
        }
        let rolled = (!delimiter.is_empty())
            .then(|| e.key[prefix.len()..].find(delimiter))
            .flatten()
            .map(|i| e.key[..prefix.len() + i + delimiter.len()].to_owned());
        if let Some(p) = &rolled {
            if out.prefixes.last() == Some(p) {
                continue;
            }
            // A prefix that the previous page ended inside is done.
            if after.is_some_and(|a| a.starts_with(p.as_str())) {
                continue;
            }
        }
        if out.entries.len() + out.prefixes.len() == max {
            out.next = last;
            break;
        }
        match rolled {
            Some(p) => {
                // Resume after every key under this prefix.
                last = Some(format!("{p}\u{10FFFF}"));
                out.prefixes.push(p);
            }
            None => {
                last = Some(e.key.clone());
                out.entries.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::detect::FileFormat;

    fn entry(key: &str) -> Entry {
        Entry {
            key: key.to_owned(),
            file: VersionFile {
                path: String::new(),
                blob: crate::BlobId(crate::Hash32([0; 32])),
                size: 0,
                format: FileFormat::Unknown,
            },
            created_ms: 0,
        }
    }

    fn keys(p: &Page) -> Vec<&str> {
        p.entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn pages_roll_up_at_the_delimiter_and_resume_where_they_ended() {
        let all = || {
            [
                "a/1/w.bin",
                "a/1/x/y.bin",
                "a/2/w.bin",
                "a/latest/w.bin",
                "b/1/w.bin",
            ]
            .map(entry)
            .into_iter()
            .collect::<Vec<_>>()
        };
        let p = page(all(), "", "/", None, 1000);
        assert_eq!(p.prefixes, ["a/", "b/"]);
        assert!(p.entries.is_empty() && p.next.is_none());

        let p = page(all(), "a/", "/", None, 2);
        assert_eq!(p.prefixes, ["a/1/", "a/2/"]);
        let next = p.next.expect("truncated");
        let p = page(all(), "a/", "/", Some(&next), 2);
        assert_eq!(p.prefixes, ["a/latest/"]);
        assert!(p.next.is_none());

        let p = page(all(), "a/1/", "/", None, 1000);
        assert_eq!(keys(&p), ["a/1/w.bin"]);
        assert_eq!(p.prefixes, ["a/1/x/"]);

        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let p = page(all(), "", "", after.as_deref(), 2);
            seen.extend(keys(&p).into_iter().map(String::from));
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let want: Vec<String> = all().into_iter().map(|e| e.key).collect();
        assert_eq!(seen, want);
    }
}
