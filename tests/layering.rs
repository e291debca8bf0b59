//! The library's layers, bottom up, and a check that each module uses only the modules
//! below it. docs/ARCHITECTURE.md ("Layers") explains what each layer owns.
//!
//! Every `crate::<module>` path in a module's code counts (a `use` line or a path written
//! inline); comments do not. Test code is left out: a file named `tests.rs` or
//! `*_tests.rs`, and everything after a `#[cfg(test)]` line that opens a module, since
//! tests of a low layer may build a whole store to exercise it. The command line (`src/cli`,
//! `src/main.rs`) is a separate binary crate that uses the library's public API only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom up. A module may use the modules listed before it, never one listed after it.
const LAYERS: &[&str] = &[
    "id",       // blob, chunk and hash ids
    "query",    // typed values and the query language, evaluated over values
    "error",    // the error enum
    "formats",  // container detection and one parser per container format
    "chunking", // content-defined and tensor-aware cut points
    "codec",    // per-chunk compression and deltas
    "pack",     // append-only pack files
    "meta",     // the metadata schema: column families, keys, records
    "chunk",    // chunks end to end: pending holds, index, read path, the commit door
    "blob",     // streaming upload and download, upload sessions, reverse deltas
    "gc",       // collection and compaction
    "verify",   // integrity checks
    "registry", // experiments, models, indexes and queries over them
    "objects",  // buckets, objects and multipart uploads over blobs (the S3 namespace)
    "archive",  // bundles: export and import of models with their blobs
    "store",    // the public handle: options, open, recovery
    "aio",      // async adapters over blob readers and writers (feature `tokio`)
    "server",   // the S3-compatible endpoint over objects and the registry (feature `server`)
];

/// Modules outside the layers, with why.
const OUTSIDE: &[(&str, &str)] = &[
    ("lib", "the crate root declares and re-exports every layer"),
    (
        "fuzz_api",
        "a facade for the fuzz targets, above every layer it exposes",
    ),
    (
        "internals",
        "a hidden facade over chunking and codec for benches, examples, fuzz targets and tests",
    ),
    (
        "fault_tests",
        "test-only: fault injection into whole stores",
    ),
    (
        "test_support",
        "test-only: deterministic test data, used by the unit tests of any layer and using none",
    ),
];

/// Allowed exceptions: (from, to, why). Keep this short; each entry is a debt.
const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "id",
    "error",
    "ids parse from text with the crate's error type, which carries digests: two leaf types that name each other",
)];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer-relevant code of a file: comments, string literals' contents and test code
/// removed.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod ") && n.trim_end().ends_with('{'))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The modules named by `crate::<name>` paths in `code`.
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `modelvault_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c}`: every top-level name in the group.
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

/// Names the crate root re-exports (`pub use module::...::{A, B}` or `pub use module::A`),
/// each with the module it comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let code = code_of(lib);
    let mut rest = code.as_str();
    while let Some(i) = rest.find("pub use ") {
        rest = &rest[i + "pub use ".len()..];
        let end = rest.find(';').unwrap_or(rest.len());
        let stmt = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        let module = stmt.split("::").next().unwrap_or("").trim().to_string();
        let names = match (stmt.find('{'), stmt.rfind('}')) {
            (Some(a), Some(b)) if a < b => stmt[a + 1..b].to_string(),
            _ => stmt.rsplit("::").next().unwrap_or("").to_string(),
        };
        for part in names.split(',') {
            // `a::B`, `B as C`, `self`: the name it is reachable by at the root.
            let last = part.rsplit("::").next().unwrap_or("").trim();
            let name = last.rsplit(" as ").next().unwrap_or(last).trim();
            if !name.is_empty() && name != "self" {
                out.insert(name.to_string(), module.clone());
            }
        }
    }
    out
}

#[test]
fn each_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let reexports = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "cli" || module == "main" {
            continue;
        }
        let name = rel.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        if OUTSIDE.iter().any(|(m, _)| *m == module) {
            continue;
        }
        let Some(&from) = rank.get(module.as_str()) else {
            unknown.push(rel.display().to_string());
            continue;
        };
        checked += 1;
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for used in uses(&code) {
            if used == module || used == "self" || used == "super" {
                continue;
            }
            // A crate-root re-export counts as the layer it comes from; other crate-root
            // items (functions of lib.rs) belong to no layer.
            let layer = reexports.get(&used).map_or(used.as_str(), String::as_str);
            if let Some(&to) = rank.get(layer) {
                let allowed = EXCEPTIONS
                    .iter()
                    .any(|(f, t, _)| *f == module && *t == layer);
                if to >= from && !allowed {
                    wrong.push(format!(
                        "{} uses {layer} (via crate::{used}), a layer above {module}",
                        rel.display()
                    ));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules in no layer (add them to LAYERS or OUTSIDE): {unknown:?}"
    );
    assert!(
        checked > 20,
        "only {checked} files checked: is src/ where it should be?"
    );
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "{} upward uses:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_inline_paths_groups_and_skips_comments_and_tests() {
    let code = code_of(
        "use crate::{pack::X, meta};\n\
         // crate::store in a comment\n\
         fn f() { crate::blob::g(); }\n\
         #[cfg(test)]\n\
         mod tests {\n\
         use crate::store::Store;\n\
         }\n",
    );
    assert_eq!(uses(&code), vec!["pack", "meta", "blob"]);
}

/// The crates a build of the library with `features` (and no default
/// features) links, from `cargo tree` (offline: Cargo.lock decides).
fn linked_crates(features: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--no-default-features", "--features", features])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_engine_without_the_server_links_no_async_runtime_or_http_crate() {
    let server_only = [
        "tokio",
        "hyper",
        "hyper-util",
        "s3s",
        "futures",
        "http-body",
    ];
    let engine = linked_crates("store");
    for c in server_only {
        assert!(
            !engine.iter().any(|e| e == c),
            "the engine alone links {c}: {engine:?}"
        );
    }
    // The check can fail: the server feature does link them.
    let server = linked_crates("server");
    for c in ["tokio", "hyper", "s3s"] {
        assert!(
            server.iter().any(|e| e == c),
            "the server does not link {c}"
        );
    }
}
