//! Exit codes: which class of failure a command ended with, decided from
//! the error's type (never its message), so scripts can tell a missing
//! store from a locked one from damaged data. Modelled on restic's
//! (1 fatal, 3 incomplete, 10 no repository, 11 lock failed).

use std::fmt;

/// Any failure not in a class below.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap exits with this too).
pub const USAGE: u8 = 2;
/// Stored data is damaged: `verify` found problems, or a read met a
/// checksum mismatch or a corrupt record.
pub const INTEGRITY: u8 = 3;
/// The store exists but the model, version, alias, file, experiment,
/// artifact, tensor, upload session or blob named does not.
pub const NOT_FOUND: u8 = 4;
/// The directory is missing or is not a modelvault store.
pub const NO_STORE: u8 = 10;
/// Another process holds the store.
pub const LOCKED: u8 = 11;

/// The table printed after `--help` (and copied in README and docs/CLI.md).
pub const HELP: &str = "\
Exit codes:
   0  success
   1  failure (any other error)
   2  usage error (bad arguments, no --repo)
   3  integrity problem (verify or index verify found problems, or data read back is damaged)
   4  not found (model, version, alias, file, experiment, artifact, tensor, upload, blob, chunk)
  10  not a store (the directory is missing or holds something else)
  11  locked (another process holds the store)";

/// A usage mistake found after parsing (exit code 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `verify` found problems in the store (exit code 3).
#[derive(Debug)]
pub struct ProblemsFound(pub usize);

impl fmt::Display for ProblemsFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verify found {} problems", self.0)
    }
}

impl std::error::Error for ProblemsFound {}

/// An error answer of a server's registry API (`get URL`, `sync --from`):
/// its status, and a message naming the URL, the status and what the
/// server said. 404 is exit code 4, as a missing name in a local store.
#[derive(Debug)]
pub struct ServerError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

/// The exit code of a library error.
fn of_store_error(e: &modelvault::Error) -> Option<u8> {
    use modelvault::Error as E;
    Some(match e {
        E::NotAStore { .. } => NO_STORE,
        E::Locked { .. } | E::ReadOnly { .. } => LOCKED,
        E::NotFound { .. } => NOT_FOUND,
        e if e.is_integrity() => INTEGRITY,
        _ => return None,
    })
}

/// The exit code for `e`: the first error in its chain (looking inside
/// `io::Error`s, which carry the library's errors through `Read`) whose
/// type has a class; [`FAILURE`] when none has.
pub fn code(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if c.is::<Usage>() {
            return USAGE;
        }
        if c.is::<ProblemsFound>() {
            return INTEGRITY;
        }
        if let Some(e) = c.downcast_ref::<ServerError>() {
            return if e.status == 404 { NOT_FOUND } else { FAILURE };
        }
        let inner = c.downcast_ref::<modelvault::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<modelvault::Error>())
        });
        if let Some(code) = inner.and_then(of_store_error) {
            return code;
        }
    }
    FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_error_type_through_context_and_io() {
        let nf = modelvault::Error::NotFound {
            kind: "model",
            name: "x".into(),
        };
        let e = anyhow::Error::new(nf).context("cannot delete x");
        assert_eq!(code(&e), NOT_FOUND);
        let corrupt = modelvault::Error::Corrupt {
            what: "pack".into(),
            detail: "bad".into(),
        };
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, corrupt);
        assert_eq!(
            code(&anyhow::Error::new(io).context("restoring f")),
            INTEGRITY
        );
        assert_eq!(code(&anyhow::anyhow!("not found")), FAILURE);
        assert_eq!(code(&anyhow::Error::new(Usage("x".into()))), USAGE);
        assert_eq!(code(&anyhow::Error::new(ProblemsFound(2))), INTEGRITY);
        let server = |status| {
            anyhow::Error::new(ServerError {
                status,
                message: "x".into(),
            })
            .context("syncing")
        };
        assert_eq!(code(&server(404)), NOT_FOUND);
        assert_eq!(code(&server(500)), FAILURE);
    }
}
