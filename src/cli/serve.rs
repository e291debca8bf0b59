//! `modelvault serve`: the options and credentials of the S3 endpoint
//! (`modelvault::server`), and the ready line scripts wait for.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use modelvault::server::{serve as run, ServeOptions};
use modelvault::Store;

use super::args::ServeArgs;
use super::commands::parse_duration;

/// The environment variables holding the credentials.
const ACCESS_ENV: &str = "MODELVAULT_S3_ACCESS_KEY";
const SECRET_ENV: &str = "MODELVAULT_S3_SECRET_KEY";

pub(super) fn serve(repo: &Path, a: ServeArgs) -> Result<()> {
    let credentials = credentials(&a)?;
    let mut opts = ServeOptions::new();
    opts.listen = a.listen;
    opts.credentials = credentials;
    opts.registry_bucket = (!a.no_registry_bucket).then_some(a.registry_bucket);
    opts.max_object_size = a.max_object_size;
    opts.max_concurrent_uploads = a.max_concurrent_uploads as usize;
    opts.idle_timeout = parse_duration(&a.idle_timeout)?;
    opts.multipart_expiry = parse_duration(&a.multipart_expiry)?;
    if opts.idle_timeout.is_zero() {
        bail!("--idle-timeout must be more than 0");
    }
    let store = if Store::exists(repo) {
        Store::open(repo)?
    } else {
        Store::create(repo)?
    };
    run(store, opts, |addr| {
        // Scripts and tests wait for this line.
        println!("modelvault: serving S3 on http://{addr}");
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("modelvault: stopped");
    Ok(())
}

/// The access key and secret key: from --credentials, else the
/// environment; none only with --anonymous.
fn credentials(a: &ServeArgs) -> Result<Option<(String, String)>> {
    let pair = match &a.credentials {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("read credentials {}", file.display()))?;
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            match (lines.next(), lines.next(), lines.next()) {
                (Some(k), Some(s), None) => Some((k.to_owned(), s.to_owned())),
                _ => bail!(
                    "credentials {}: expected two lines, the access key and the secret key",
                    file.display()
                ),
            }
        }
        None => match (std::env::var(ACCESS_ENV), std::env::var(SECRET_ENV)) {
            (Ok(k), Ok(s)) if !k.is_empty() && !s.is_empty() => Some((k, s)),
            (Err(_), Err(_)) => None,
            _ => bail!("set both {ACCESS_ENV} and {SECRET_ENV}, not empty"),
        },
    };
    match (pair, a.anonymous) {
        (Some(_), true) => Err(anyhow!(
            "--anonymous and credentials exclude each other: pick one"
        )),
        (Some(p), false) => Ok(Some(p)),
        (None, true) => Ok(None),
        (None, false) => Err(anyhow!(
            "no credentials: set {ACCESS_ENV} and {SECRET_ENV} (or --credentials FILE), \
             or pass --anonymous to serve without authentication"
        )),
    }
}
