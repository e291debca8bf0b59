//! Logging for the command line: the library emits `tracing` spans and events and
//! installs nothing; the command line prints them on stderr when asked to.

use tracing_subscriber::EnvFilter;

/// Installs a subscriber printing the library's events on stderr: with no `-v`, warnings
/// only; `-v` adds what each operation did (info), `-vv` details (debug), `-vvv` all. A
/// set `RUST_LOG` takes precedence over the flags.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(format!("modelvault={level}")),
    };
    // Only fails when a subscriber is installed already, which the binary never does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
