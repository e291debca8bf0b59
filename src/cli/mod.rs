//! Command-line front end: argument definitions and one function per command.

mod args;
mod commands;
mod experiment;
mod files;
mod log;
mod model;
mod remote;
mod serve;

pub use args::Args;
pub use commands::run;
pub use log::init as init_logging;

#[cfg(test)]
mod tests;
