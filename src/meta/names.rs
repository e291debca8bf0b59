//! Validation of user-supplied names and paths: the rules every model name
//! and version file path in the registry's records follows (writes refuse
//! others; verify reports a stored path that breaks them). Nothing a user
//! names ever becomes a file-system path outside the directory it is meant
//! for.

use crate::error::{Error, Result};

/// Longest model name.
pub const MAX_NAME: usize = 128;
/// Longest relative path inside a version.
pub const MAX_PATH: usize = 4096;

/// A model name: 1–128 characters of `A–Z a–z 0–9 . _ -`, not starting
/// with `.` or `-`.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid("model name", name, reason));
    if name.is_empty() || name.len() > MAX_NAME {
        return bad("must be 1 to 128 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// A relative path inside a model version: `/`-separated UTF-8 components,
/// none empty, `.` or `..`, no backslash, NUL or other control character,
/// not absolute, at most 4096 bytes.
pub fn check_path(path: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid("path", path, reason));
    if path.is_empty() || path.len() > MAX_PATH {
        return bad("must be 1 to 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("must be relative");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("must not contain control characters or backslashes");
    }
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return bad("components must not be empty, '.' or '..'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["resnet", "bert-base.v2", "A_1"] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            "a\0b",
            &"x".repeat(129),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn traversal_corpus_is_rejected() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a/./b",
            "a//b",
            "a\\..\\b",
            "C:\\x",
            "a\0b",
            "a/",
            "..",
            ".",
            "x\n",
            "",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "model.safetensors",
            "a/b/c.bin",
            "%2e%2e/x",
            "…/x",
            "a;b",
            "ﾠ/x",
        ] {
            check_path(ok).unwrap();
        }
    }
}
