//! Hostile names and paths: traversal (`../`, `..\`, absolute, drive
//! letters), percent and double-percent encoding, NUL and other control
//! bytes, `;`, newlines, over-long values, empty, `.`/`..`, Unicode
//! look-alikes of `/` and `.`, and bidi overrides.
//!
//! Each is fed as a model name, experiment name and project, version file
//! path (`Model::add_version` and `add_version_staged`), artifact name and
//! artifact metadata key, model metadata key, hyperparameter key, alias and
//! tag, and through the CLI (`put --name`, `put` of files with such names,
//! `get`, `cat`, `model meta`, `model alias`, `experiment create`). The rule:
//! either a clear error naming the field, with the store unchanged, or the
//! value is accepted as an opaque name and reads back as given; in both cases
//! nothing appears on the file system outside the store and, for `get`, the
//! target directory. Never a panic.
//!
//! `get` is also run on a store whose version records were rewritten (with
//! the raw RocksDB API, store closed) to hold traversal paths, and into
//! target directories holding symlinks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modelvault::query::Value;
use modelvault::{
    ArtifactBody, BlobId, EntityId, Experiment, FileEntry, Model, NewExperiment, NewModel, Store,
    VersionFile,
};

use crate::common::{noise, put};

/// The traversal corpus.
fn corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        "../",
        "..",
        ".",
        "",
        "../etc/passwd",
        "../../../../../../../../tmp/modelvault-escape",
        "..\\",
        "..\\..\\windows\\win.ini",
        "/etc/passwd",
        "/",
        "//",
        "C:\\x",
        "C:x",
        "\\\\server\\share\\x",
        "a/../../b",
        "a/./b",
        "a//b",
        "./a",
        "a/",
        "a\\b",
        "a\\..\\..\\b",
        "%2e%2e%2f",
        "%2e%2e/%2e%2e/x",
        "..%2fx",
        "%252e%252e%252f",
        "%c0%ae%c0%ae/x",
        "a\0b",
        "\0",
        "../\0x",
        "a;b",
        "a; rm -rf ~",
        "a\nb",
        "a\rb",
        "\n",
        "a\tb",
        "\x1b[31mred",
        "\x7f",
        "a\u{2215}..\u{2215}b",
        "\u{2215}etc\u{2215}passwd",
        "\u{FF0E}\u{FF0E}/x",
        "\u{FF0E}\u{FF0E}\u{FF0F}x",
        "\u{2024}\u{2024}/x",
        "\u{2024}\u{2024}",
        "\u{202E}txt.exe",
        "model\u{202E}nib.exe",
        "\u{200F}..",
        "\u{2066}../x\u{2069}",
        "\u{FEFF}x",
        "\u{2028}x",
        " ..",
        ".. ",
        "...",
        "~",
        "~/x",
        "$HOME",
        "*",
        "a:b",
        "CON",
        "é",
        "名前/ファイル",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(129)); // just past the model name limit
    v.push("x".repeat(200)); // a long but legal file name
    v.push("x".repeat(300)); // longer than a file-system name
    v.push("x".repeat(5000)); // longer than any limit
    v.push("é".repeat(2100)); // 4200 bytes
    v.push("a/".repeat(2100) + "x"); // 4201 bytes of plain components
    v
}

/// Traversal in the strict sense: anything a file-system join could
/// resolve outside the directory it is joined to (or that is not a
/// well-formed relative path at all).
fn is_traversal(s: &str) -> bool {
    s.is_empty()
        || s.starts_with('/')
        || s.contains('\\')
        || s.chars().any(char::is_control)
        || s.split('/').any(|c| c.is_empty() || c == "." || c == "..")
}

fn show(s: &str) -> String {
    let d = format!("{s:?}");
    if d.len() > 60 {
        format!(
            "{}…({} bytes)",
            d.chars().take(40).collect::<String>(),
            s.len()
        )
    } else {
        d
    }
}

/// Every path under `root` (not following symlinks), relative, except
/// RocksDB's own files (`*/meta/*`), which change on any open.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel.components().any(|c| c.as_os_str() == "meta") {
                continue;
            }
            out.insert(rel);
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// New paths in `after` not under one of `allowed`.
fn escaped(
    before: &BTreeSet<PathBuf>,
    after: &BTreeSet<PathBuf>,
    allowed: &[&Path],
) -> Vec<PathBuf> {
    after
        .difference(before)
        .filter(|p| !allowed.iter().any(|a| p.starts_with(a)))
        .cloned()
        .collect()
}

/// A store with one model (one version), one running experiment and a blob.
struct Env {
    root: PathBuf,
    store: Store,
    model: Model,
    exp: Experiment,
    blob: BlobId,
    data: Vec<u8>,
}

impl Env {
    fn new(root: &Path) -> Env {
        let store = Store::create(root.join("store")).unwrap();
        let data = noise(10_000, 1);
        let blob = put(&store, &data);
        let model = store.create_model(NewModel::new("m")).unwrap();
        model
            .add_version(vec![entry("w.bin", blob, &data)])
            .unwrap();
        let exp = store
            .create_experiment(NewExperiment::new("p", "e"))
            .unwrap();
        exp.start().unwrap();
        fs::create_dir_all(root.join("outside")).unwrap();
        fs::write(root.join("outside/victim"), b"precious").unwrap();
        Env {
            root: root.to_path_buf(),
            store,
            model,
            exp,
            blob,
            data,
        }
    }

    /// Everything a rejected call must leave as it was.
    fn state(&self) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            self.store.models().unwrap(),
            self.store.stats(),
            self.model.info().unwrap(),
            self.exp.info().unwrap(),
            self.exp.artifacts().unwrap(),
            self.store.experiments().limit(10_000).run().unwrap(),
        )
    }
}

fn entry(path: &str, blob: BlobId, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        blob,
        size: data.len() as u64,
    }
}

/// Outcomes per field: value → accepted?
type Table = BTreeMap<&'static str, Vec<(String, bool)>>;

/// Runs `op` on hostile `value` for `field`: no panic; no file appears
/// outside the store; an error names `word` and changes nothing.
fn probe<T>(
    env: &Env,
    table: &mut Table,
    field: &'static str,
    word: &str,
    value: &str,
    op: impl FnOnce() -> modelvault::Result<T>,
) -> Option<T> {
    let (state, files) = (env.state(), tree(&env.root));
    let r = catch_unwind(AssertUnwindSafe(op))
        .unwrap_or_else(|_| panic!("{field} {}: panicked", show(value)));
    let out = escaped(&files, &tree(&env.root), &[]);
    assert!(out.is_empty(), "{field} {}: created {out:?}", show(value));
    assert_eq!(
        fs::read(env.root.join("outside/victim")).unwrap(),
        b"precious"
    );
    let accepted = match r {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(word),
                "{field} {}: error {msg:?} does not name the {word}",
                show(value)
            );
            assert_eq!(
                env.state(),
                state,
                "{field} {}: rejected, but the store changed",
                show(value)
            );
            None
        }
        Ok(t) => Some(t),
    };
    // NUL separates strings in index keys, and no field is meant to hold
    // control characters.
    if value.chars().any(char::is_control) {
        assert!(
            accepted.is_none(),
            "{field} {}: accepted a control character",
            show(value)
        );
    }
    table
        .entry(field)
        .or_default()
        .push((value.to_string(), accepted.is_some()));
    accepted
}

fn print_table(table: &Table) {
    for (field, rows) in table {
        let acc: Vec<String> = rows.iter().filter(|r| r.1).map(|r| show(&r.0)).collect();
        println!(
            "{field}: {} rejected, {} accepted as opaque: {}",
            rows.len() - acc.len(),
            acc.len(),
            acc.join(" ")
        );
    }
}

fn mv(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelvault"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("MODELVAULT_REPO")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed command: non-zero exit, one line on stderr containing `needle`.
fn fails_naming(o: &Output, needle: &str, what: &str) {
    assert!(!o.status.success(), "{what}: unexpected success");
    let err = stderr(o);
    assert_eq!(err.trim().lines().count(), 1, "{what}: stderr {err:?}");
    assert!(
        err.contains(needle),
        "{what}: stderr {err:?} lacks {needle:?}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
}

fn stats(repo: &Path) -> String {
    let o = mv(repo, &["stats", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn library_api_rejects_or_keeps_hostile_names_opaque() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    let mut table = Table::new();
    // Versions holding an accepted hostile path: (version, path).
    let mut stored_paths = Vec::new();
    for (i, v) in corpus().iter().enumerate() {
        let v = v.as_str();
        let t = &mut table;

        // Model names.
        if let Some(m) = probe(&env, t, "model name", "model name", v, || {
            env.store.create_model(NewModel::new(v))
        }) {
            assert_eq!(m.info().unwrap().name, v);
            assert_eq!(env.store.model_by_name(v).unwrap().id(), m.id());
        }
        if v.contains('/') || v.contains('\\') || v.starts_with('.') {
            assert!(
                !t["model name"].last().unwrap().1,
                "model name {} accepted",
                show(v)
            );
        }
        probe(
            &env,
            t,
            "model name (commit_version)",
            "model name",
            v,
            || {
                env.store
                    .commit_version(v, vec![entry("w.bin", env.blob, &env.data)])
            },
        );
        // Lookups by hostile name never panic and never find another model.
        let found = [
            env.store.model_by_name(v).map(|m| m.id()),
            env.store.resolve_model(v).map(|m| m.0.id()),
        ];
        for id in found.into_iter().flatten() {
            assert_eq!(env.store.model(id).unwrap().info().unwrap().name, v);
        }

        // Experiment names and projects.
        if let Some(e) = probe(&env, t, "experiment name", "experiment name", v, || {
            env.store.create_experiment(NewExperiment::new("p", v))
        }) {
            assert_eq!(e.info().unwrap().name, v);
            assert_eq!(env.store.experiment_by_name("p", v).unwrap().id(), e.id());
        }
        if let Some(e) = probe(&env, t, "project", "project", v, || {
            env.store.create_experiment(NewExperiment::new(v, "e"))
        }) {
            assert_eq!(e.info().unwrap().project, v);
        }

        // Version file paths, committed and staged.
        if let Some(n) = probe(&env, t, "path", "path", v, || {
            env.model.add_version(vec![entry(v, env.blob, &env.data)])
        }) {
            let files = env.model.version(Some(n)).unwrap().files;
            assert_eq!(files.len(), 1);
            assert_eq!(files[0].path, v);
            stored_paths.push((n, v.to_string()));
        }
        if is_traversal(v) {
            assert!(!t["path"].last().unwrap().1, "path {} accepted", show(v));
        }
        // One good file and the hostile one: all or nothing.
        probe(&env, t, "path (with a good file)", "path", v, || {
            env.model.add_version(vec![
                entry("good.bin", env.blob, &env.data),
                entry(v, env.blob, &env.data),
            ])
        });
        let staged_data = noise(3_000, i as u64 + 1000);
        let staged = {
            let mut w = env.store.blob_writer();
            w.write_all(&staged_data).unwrap();
            w.stage().unwrap()
        };
        let staged_id = staged.id();
        if probe(&env, t, "path (staged)", "path", v, || {
            env.model
                .add_version_staged(vec![(v.to_string(), staged)], None)
        })
        .is_none()
        {
            assert!(!env.store.contains_blob(&staged_id).unwrap());
        }

        // Artifacts.
        if let Some(rev) = probe(&env, t, "artifact name", "artifact name", v, || {
            env.exp
                .add_artifact(v, ArtifactBody::Inline(Value::Int(7)), BTreeMap::new())
        }) {
            let a = env.exp.artifact(v, Some(rev)).unwrap();
            assert_eq!(
                (a.name.as_str(), a.body),
                (v, ArtifactBody::Inline(Value::Int(7)))
            );
        }
        let _ = env.exp.artifact(v, None);
        probe(
            &env,
            t,
            "artifact metadata key",
            "artifact metadata key",
            v,
            || {
                env.exp.add_artifact(
                    "a",
                    ArtifactBody::Inline(Value::Int(1)),
                    [(v.to_string(), Value::Int(1))].into(),
                )
            },
        );

        // Keys: model metadata, hyperparameters.
        if probe(&env, t, "metadata key", "metadata key", v, || {
            env.model.set_metadata(v, Value::Int(1))
        })
        .is_some()
        {
            assert_eq!(
                env.model.info().unwrap().metadata.get(v),
                Some(&Value::Int(1))
            );
        }
        probe(
            &env,
            t,
            "metadata key (new model)",
            "metadata key",
            v,
            || {
                env.store
                    .create_model(NewModel::new("n").metadata(v, Value::Int(1)))
            },
        );
        if probe(&env, t, "hyperparameter", "hyperparameter", v, || {
            env.exp.set_param(v, Value::Int(1))
        })
        .is_some()
        {
            assert_eq!(env.exp.info().unwrap().params.get(v), Some(&Value::Int(1)));
        }

        // Aliases and tags.
        if probe(&env, t, "alias", "alias", v, || env.model.set_alias(v, 1)).is_some() {
            let (m, ver) = env.store.resolve_model(&format!("m@{v}")).unwrap();
            assert_eq!((m.id(), ver), (env.model.id(), Some(1)));
        }
        if probe(&env, t, "tag", "tag", v, || env.model.add_tags([v])).is_some() {
            assert!(env.model.info().unwrap().tags.iter().any(|x| x == v));
        }
        // Removals and reads by hostile key: opaque, no panic.
        let _ = env.model.remove_alias(v);
        let _ = env.model.remove_metadata(v);
        let _ = env.model.remove_tag(v);
        let _ = env.exp.scalars(v);
        let _ = env.store.experiment_by_name(v, v);
    }
    print_table(&table);
    let store_dir = env.store.path().to_path_buf();
    drop(env);

    // Restore every version with an accepted hostile path through the CLI:
    // the file lands inside the target directory under exactly that path,
    // or `get` fails; nothing appears anywhere else.
    let data = noise(10_000, 1);
    let mut restored = 0;
    for (n, path) in &stored_paths {
        let out = tmp.path().join(format!("out{n}"));
        let before = tree(tmp.path());
        let o = mv(
            &store_dir,
            &["get", &format!("m@{n}"), "--out", out.to_str().unwrap()],
        );
        let rel = Path::new("store");
        let new = escaped(
            &before,
            &tree(tmp.path()),
            &[rel, Path::new(&format!("out{n}"))],
        );
        assert!(new.is_empty(), "get of {}: created {new:?}", show(path));
        if o.status.success() {
            restored += 1;
            assert_eq!(fs::read(out.join(path)).unwrap(), data, "{}", show(path));
            let files = tree(&out);
            let last = Path::new(path).to_path_buf();
            assert!(files.contains(&last), "{files:?}");
            assert!(files.iter().all(|f| last.starts_with(f)), "{files:?}");
        } else {
            fails_naming(&o, "", &format!("get of {}", show(path)));
        }
    }
    println!(
        "{} versions with accepted hostile paths, {restored} restored inside the target",
        stored_paths.len()
    );
    assert_eq!(
        fs::read(tmp.path().join("outside/victim")).unwrap(),
        b"precious"
    );
}

#[test]
fn cli_rejects_hostile_model_names_and_specs_with_one_line_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("store");
    let f = root.join("w.bin");
    fs::write(&f, b"weights").unwrap();
    assert!(mv(&repo, &["put", "--name", "m", f.to_str().unwrap()])
        .status
        .success());
    fs::create_dir(root.join("outside")).unwrap();
    fs::write(root.join("outside/victim"), b"precious").unwrap();
    let before_stats = stats(&repo);
    let before = tree(root);
    let unchanged = |what: &str| {
        let new = escaped(&before, &tree(root), &[Path::new("store")]);
        assert!(new.is_empty(), "{what}: created {new:?}");
    };

    // Arguments cannot hold NUL.
    let values: Vec<String> = corpus().into_iter().filter(|v| !v.contains('\0')).collect();
    let mut accepted_names = Vec::new();
    for v in &values {
        let what = format!("put --name={}", show(v));
        let o = mv(&repo, &["put", &format!("--name={v}"), f.to_str().unwrap()]);
        if o.status.success() {
            assert!(modelvault::check_name(v).is_ok(), "{what}");
            accepted_names.push(v.clone());
        } else {
            fails_naming(&o, "model name", &what);
        }
        unchanged(&what);
        let out = root.join("restore");
        let o = mv(&repo, &["get", v, "--out", out.to_str().unwrap()]);
        if !accepted_names.contains(v) {
            fails_naming(&o, "", &format!("get {}", show(v)));
            assert!(!out.exists(), "get {} created the target", show(v));
        } else {
            assert_eq!(fs::read(out.join("w.bin")).unwrap(), b"weights");
            fs::remove_dir_all(&out).unwrap();
        }
        let o = mv(&repo, &["cat", "m", v]);
        fails_naming(&o, "", &format!("cat m {}", show(v)));
        assert!(o.stdout.is_empty());
        let o = mv(&repo, &["model", "meta", "m", &format!("{v}=1")]);
        if !o.status.success() {
            fails_naming(&o, "metadata key", &format!("model meta {}", show(v)));
        }
        unchanged(&what);
    }
    println!("put --name accepted: {accepted_names:?}");
    // Only accepted names made versions.
    let after: serde_json::Value = serde_json::from_str(&stats(&repo)).unwrap();
    let was: serde_json::Value = serde_json::from_str(&before_stats).unwrap();
    assert_eq!(
        after["versions"].as_u64().unwrap(),
        was["versions"].as_u64().unwrap() + accepted_names.len() as u64
    );
    assert_eq!(fs::read(root.join("outside/victim")).unwrap(), b"precious");
}

#[test]
fn cli_put_and_get_of_files_with_hostile_names_stay_inside_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("store");
    fs::create_dir(root.join("outside")).unwrap();
    fs::write(root.join("outside/victim"), b"precious").unwrap();
    let f = root.join("seed.bin");
    fs::write(&f, b"seed").unwrap();
    assert!(mv(&repo, &["put", "--name", "m", f.to_str().unwrap()])
        .status
        .success());

    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    for (i, v) in corpus().iter().enumerate() {
        // Only names a Linux file system can hold as the given relative
        // path: no NUL, plain components of at most 200 bytes (longer
        // ones: see `get_restores_long_file_names`).
        if v.contains('\0')
            || v.len() > 1000
            || v.split('/')
                .any(|c| c.is_empty() || c == "." || c == ".." || c.len() > 200)
        {
            continue;
        }
        let src = root.join(format!("src{i}"));
        let file = src.join(v);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        let content = format!("content of {i}");
        fs::write(&file, &content).unwrap();
        let before_stats = stats(&repo);
        let before = tree(root);
        let what = format!("put of a file named {}", show(v));
        let o = mv(&repo, &["put", "--name", "m", src.to_str().unwrap()]);
        let new = escaped(&before, &tree(root), &[Path::new("store")]);
        assert!(new.is_empty(), "{what}: created {new:?}");
        if !o.status.success() {
            fails_naming(&o, "path", &what);
            assert_eq!(stats(&repo), before_stats, "{what}");
            rejected.push(show(v));
            continue;
        }
        assert!(!is_traversal(v), "{what}: accepted");
        accepted.push(show(v));
        let version = String::from_utf8(o.stdout).unwrap();
        let version = version.lines().last().unwrap().to_string();
        let out = root.join(format!("out{i}"));
        let o = mv(&repo, &["get", &version, "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "get {version}: {}", stderr(&o));
        let new = escaped(
            &before,
            &tree(root),
            &[Path::new("store"), Path::new(&format!("out{i}"))],
        );
        assert!(new.is_empty(), "get of {}: created {new:?}", show(v));
        assert_eq!(fs::read_to_string(out.join(v)).unwrap(), content);
        let got: Vec<PathBuf> = tree(&out).into_iter().collect();
        assert!(
            got.iter().all(|p| Path::new(v).starts_with(p)),
            "{}: restored {got:?}",
            show(v)
        );
        let o = mv(&repo, &["cat", &version, v]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(o.stdout, content.as_bytes());
    }
    println!("file names accepted by put: {}", accepted.join(" "));
    println!("file names rejected by put: {}", rejected.join(" "));
    assert!(!accepted.is_empty() && !rejected.is_empty());
    assert_eq!(fs::read(root.join("outside/victim")).unwrap(), b"precious");
}

#[test]
fn cli_registry_commands_with_hostile_values_fail_naming_the_field_or_stay_opaque() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("store");
    let f = root.join("w.bin");
    fs::write(&f, b"weights").unwrap();
    assert!(mv(&repo, &["put", "--name", "m", f.to_str().unwrap()])
        .status
        .success());
    let before = tree(root);
    // A sample (each command opens the store).
    for v in [
        "../x",
        "a/../../b",
        "..\\x",
        "/etc/passwd",
        "%2e%2e%2f",
        "a\nb",
        "a;b",
        "\u{FF0E}\u{FF0E}\u{2215}x",
        "\u{202E}x",
        &"x".repeat(5000),
    ] {
        let o = mv(&repo, &["model", "alias", "m", v, "1"]);
        if o.status.success() {
            let o = mv(&repo, &["cat", &format!("m@{v}"), "w.bin"]);
            assert_eq!(o.stdout, b"weights", "alias {}: {}", show(v), stderr(&o));
        } else {
            fails_naming(&o, "alias", &format!("alias {}", show(v)));
        }
        let o = mv(
            &repo,
            &[
                "experiment",
                "create",
                "--project=p",
                &format!("--name={v}"),
            ],
        );
        if o.status.success() {
            let id = String::from_utf8(o.stdout).unwrap();
            let o = mv(&repo, &["experiment", "show", id.trim(), "--json"]);
            let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(info["name"], v);
        } else {
            fails_naming(&o, "experiment name", &format!("experiment {}", show(v)));
        }
        let o = mv(&repo, &["model", "tag", "m", v]);
        if !o.status.success() {
            fails_naming(&o, "tag", &format!("tag {}", show(v)));
        }
        let new = escaped(&before, &tree(root), &[Path::new("store")]);
        assert!(new.is_empty(), "{}: created {new:?}", show(v));
    }
}

/// The versions CF rewritten with the raw RocksDB API: postcard behind a
/// version byte (docs/FORMAT.md), `VersionRecord` mirrored field by field.
#[derive(serde::Serialize, serde::Deserialize)]
struct VersionRecord {
    files: Vec<VersionFile>,
    created_ms: u64,
    experiment: Option<EntityId>,
}

/// Rewrites the first file path of version `v` of every model via `paths[v]`.
fn forge_paths(store: &Path, paths: &BTreeMap<u32, &str>) {
    let meta = store.join("meta");
    let mut o = rocksdb::Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::None);
    let cfs = rocksdb::DB::list_cf(&o, &meta).unwrap();
    let cfs = cfs
        .iter()
        .map(|n| rocksdb::ColumnFamilyDescriptor::new(n, o.clone()));
    let db = rocksdb::DB::open_cf_descriptors(&o, &meta, cfs).unwrap();
    let cf = db.cf_handle("versions").unwrap();
    let mut forged = 0;
    let entries: Vec<_> = db
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap())
        .collect();
    for (k, val) in entries {
        let v = u32::from_be_bytes(k[k.len() - 4..].try_into().unwrap());
        let Some(p) = paths.get(&v) else { continue };
        assert_eq!(val[0], 1, "record version byte");
        let mut rec: VersionRecord = postcard::from_bytes(&val[1..]).unwrap();
        rec.files[0].path = p.to_string();
        let mut b = vec![1u8];
        b.extend(postcard::to_stdvec(&rec).unwrap());
        db.put_cf(cf, &k, b).unwrap();
        forged += 1;
    }
    db.flush_wal(true).unwrap();
    assert_eq!(forged, paths.len());
}

const FORGED: [&str; 10] = [
    "../escape",
    "../../escape",
    "sub/../../escape",
    "/tmp/modelvault-absolute-escape",
    "..\\escape",
    "..",
    ".",
    "",
    "sub//x",
    "a\0b",
];

/// A store whose versions 2.. were rewritten to hold traversal paths.
fn forged_store(root: &Path) -> (PathBuf, BTreeMap<u32, &'static str>) {
    let repo = root.join("store");
    let data = b"forged".to_vec();
    {
        let store = Store::create(&repo).unwrap();
        let blob = put(&store, &data);
        for _ in 0..=FORGED.len() {
            store
                .commit_version("m", vec![entry("w.bin", blob, &data)])
                .unwrap();
        }
    }
    let paths: BTreeMap<u32, &str> = FORGED
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32 + 2, *p))
        .collect();
    forge_paths(&repo, &paths);
    (repo, paths)
}

#[test]
fn get_refuses_stored_traversal_paths_and_writes_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("inner");
    fs::create_dir(&root).unwrap();
    let (repo, paths) = forged_store(&root);
    let before = tree(tmp.path());
    // Untouched version 1 still restores.
    let out = root.join("out");
    let o = mv(&repo, &["get", "m@1", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(out.join("w.bin")).unwrap(), b"forged");
    for (v, p) in &paths {
        let spec = format!("m@{v}");
        let out = root.join(format!("out{v}"));
        let o = mv(&repo, &["get", &spec, "--out", out.to_str().unwrap()]);
        fails_naming(&o, "corrupt version record", &format!("get of {}", show(p)));
        assert!(stderr(&o).contains("path"), "{}", stderr(&o));
        assert!(!out.exists(), "get of {} created the target", show(p));
        if !p.contains('\0') {
            let o = mv(&repo, &["cat", &spec, p]);
            fails_naming(&o, "corrupt version record", &format!("cat of {}", show(p)));
            assert!(o.stdout.is_empty());
        }
        let o = mv(&repo, &["show", &spec]);
        fails_naming(
            &o,
            "corrupt version record",
            &format!("show of {}", show(p)),
        );
    }
    let new = escaped(
        &before,
        &tree(tmp.path()),
        &[Path::new("inner/store"), Path::new("inner/out")],
    );
    assert!(new.is_empty(), "created {new:?}");
    assert!(!Path::new("/tmp/modelvault-absolute-escape").exists());
    // The library refuses them the same way.
    let store = Store::open(&repo).unwrap();
    for v in paths.keys() {
        let e = store.version("m", Some(*v)).unwrap_err().to_string();
        assert!(
            e.contains("corrupt version record") && e.contains("path"),
            "{e}"
        );
    }
}

#[test]
fn get_refuses_to_write_through_symlinks_in_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("store");
    let src = root.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/x"), b"new").unwrap();
    fs::write(src.join("top"), b"new").unwrap();
    assert!(mv(&repo, &["put", "--name", "m", src.to_str().unwrap()])
        .status
        .success());
    let outside = root.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("x"), b"precious").unwrap();
    fs::write(outside.join("top"), b"precious").unwrap();

    // A folder on the way is a symlink out.
    let out = root.join("out1");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("sub")).unwrap();
    let o = mv(&repo, &["get", "m", "--out", out.to_str().unwrap()]);
    fails_naming(&o, "symlink", "get through a symlinked folder");
    // The file itself is a symlink out.
    let out = root.join("out2");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(outside.join("top"), out.join("top")).unwrap();
    let o = mv(&repo, &["get", "m", "--out", out.to_str().unwrap()]);
    fails_naming(&o, "symlink", "get onto a symlinked file");
    assert_eq!(fs::read(outside.join("x")).unwrap(), b"precious");
    assert_eq!(fs::read(outside.join("top")).unwrap(), b"precious");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 2);
}

// ---------------------------------------------------------------------------
// Regressions: bugs this suite found (all fixed). Each test states the
// rule it checks.

/// How many restores' worth of temporary names the tests below claim: more
/// than the files of the versions they restore.
const TEMP_NAMES: u64 = 16;

/// A `modelvault get` that waits to start: the shell holds the process (its
/// pid is the pid `modelvault` will have, as `exec` keeps it) until
/// [`HeldGet::run`], so a test can first plant files at the temporary names
/// that process will use ([`modelvault::restore_temp_name`]).
struct HeldGet {
    child: std::process::Child,
}

impl HeldGet {
    fn spawn(repo: &Path, args: &[&str]) -> HeldGet {
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r _ && exec "$0" "$@""#)
            .arg(env!("CARGO_BIN_EXE_modelvault"))
            .arg("--repo")
            .arg(repo)
            .args(args)
            .env_remove("MODELVAULT_REPO")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        HeldGet { child }
    }

    /// The temporary names the held process will restore through, in
    /// `dir`, for its first [`TEMP_NAMES`] files.
    fn temp_names(&self, dir: &Path) -> Vec<PathBuf> {
        (0..TEMP_NAMES)
            .map(|seq| dir.join(modelvault::restore_temp_name(self.child.id(), seq)))
            .collect()
    }

    /// Lets the process run, and waits for it.
    fn run(mut self) -> Output {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        self.child.wait_with_output().unwrap()
    }
}

#[test]
fn get_does_not_write_through_a_planted_temp_file_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("store");
    let f = root.join("w.bin");
    let bytes = noise(300_000, 41);
    fs::write(&f, &bytes).unwrap();
    assert!(mv(&repo, &["put", "--name", "m", f.to_str().unwrap()])
        .status
        .success());
    fs::create_dir(root.join("outside")).unwrap();
    let victim = root.join("outside/victim");
    fs::write(&victim, b"precious").unwrap();
    let out = root.join("out");
    fs::create_dir(&out).unwrap();
    // Whoever can write into the target folder plants symlinks at every
    // temporary name the restoring process will use (its pid is known
    // before it starts: see `HeldGet`).
    let get = HeldGet::spawn(&repo, &["get", "m", "--out", out.to_str().unwrap()]);
    let planted = get.temp_names(&out);
    for p in &planted {
        std::os::unix::fs::symlink(&victim, p).unwrap();
    }
    let o = get.run();
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"precious",
        "get wrote the restored file through a symlink to outside the target"
    );
    assert_eq!(fs::read_dir(root.join("outside")).unwrap().count(), 1);
    for p in &planted {
        assert_eq!(
            fs::read_link(p).ok().as_deref(),
            Some(victim.as_path()),
            "planted symlink {} replaced",
            p.display()
        );
    }
    // Either the file was restored (through some other name), or get
    // failed naming what it could not create and restored nothing.
    if o.status.success() {
        assert_eq!(fs::read(out.join("w.bin")).unwrap(), bytes);
    } else {
        fails_naming(&o, "cannot create", "get into a folder of planted symlinks");
        assert!(!out.join("w.bin").exists());
    }
}

/// A version whose files are named like the temporary files `get` will
/// restore through is restored whole: a temporary file is never the
/// destination of another file of the version (whose rename would replace
/// it while it is being written, losing both files).
#[test]
fn get_restores_files_named_like_its_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for round in 0..3u64 {
        let repo = root.join(format!("store{round}"));
        let out = root.join(format!("out{round}"));
        let src = root.join(format!("src{round}"));
        fs::create_dir(&src).unwrap();
        let get = HeldGet::spawn(&repo, &["get", "m", "--out", out.to_str().unwrap()]);
        // Stored before the waiting `get` starts: a small file named like
        // its second temporary file, restored first (names sort before
        // "x"), while "x", large, is restored through that very name.
        let temp = get.temp_names(&src)[1].clone();
        let name = temp.file_name().unwrap().to_str().unwrap().to_string();
        let want = BTreeMap::from([
            (name, noise(100, 10 + round)),
            ("x".to_string(), noise(4 << 20, 20 + round)),
        ]);
        for (name, bytes) in &want {
            fs::write(src.join(name), bytes).unwrap();
        }
        let o = mv(&repo, &["put", "--name", "m", src.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = get.run();
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
        for (name, bytes) in &want {
            assert!(
                fs::read(out.join(name)).ok().as_ref() == Some(bytes),
                "round {round}: get reported success but {name} is missing or wrong"
            );
        }
        assert_eq!(
            fs::read_dir(&out).unwrap().count(),
            want.len(),
            "round {round}"
        );
    }
}

#[test]
fn get_restores_long_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("store");
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    let name = "w".repeat(250);
    fs::write(src.join(&name), b"long").unwrap();
    let o = mv(&repo, &["put", "--name", "m", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = root.join("out");
    let o = mv(&repo, &["get", "m", "--out", out.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "put stored it, get cannot restore it: {}",
        stderr(&o)
    );
    assert_eq!(fs::read(out.join(&name)).unwrap(), b"long");
}

#[test]
fn add_version_rejects_a_file_that_is_also_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path().join("store")).unwrap();
    let data = b"bytes".to_vec();
    let blob = put(&store, &data);
    let r = store.commit_version(
        "m",
        vec![entry("a", blob, &data), entry("a/b", blob, &data)],
    );
    let e = r.expect_err("a version with both `a` and `a/b` was accepted");
    assert!(e.to_string().contains("path"), "{e}");
}

#[test]
fn verify_reports_a_version_record_with_a_traversal_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, paths) = forged_store(tmp.path());
    let store = Store::open(&repo).unwrap();
    let r = store.verify(modelvault::VerifyOptions::new()).unwrap();
    assert!(
        r.problems.len() >= paths.len(),
        "verify is clean on {} version records that get refuses as corrupt: {:?}",
        paths.len(),
        r.problems
    );
}

#[test]
fn artifact_lookup_by_a_name_with_nul_finds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::options()
        .durability(modelvault::Durability::Eventual)
        .open(tmp.path().join("store"))
        .unwrap();
    let exp = store
        .create_experiment(NewExperiment::new("p", "e"))
        .unwrap();
    for i in 1..=256 {
        exp.add_artifact("a", ArtifactBody::Inline(Value::Int(i)), BTreeMap::new())
            .unwrap();
    }
    // Key of revision 256 of "a": id ‖ "a" ‖ 0 ‖ 00 00 01 00, which is also
    // the prefix id ‖ name ‖ 0 of this name.
    let hostile = "a\0\0\0\u{1}";
    match exp.artifact(hostile, None) {
        Err(e) => assert!(e.to_string().contains("artifact name"), "{e}"),
        Ok(a) => panic!(
            "lookup of {hostile:?} returned revision {} holding {:?} of artifact \"a\"",
            a.revision, a.body
        ),
    }
}
