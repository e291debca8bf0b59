//! Command-line front end: argument definitions and one function per command.

mod archive;
mod args;
mod commands;
mod exit;
mod experiment;
mod experiment_data;
mod files;
mod log;
mod model;
mod progress;
mod remote;
mod resume;
mod serve;
mod sizes;
mod tensor;
mod usage;

pub use args::Args;
pub use commands::run;
pub use exit::code as exit_code;
pub use log::init as init_logging;

#[cfg(test)]
mod tests;
