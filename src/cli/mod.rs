//! Command-line front end: argument definitions and one function per command.

mod args;
mod commands;
mod files;

pub use args::Args;
pub use commands::run;

#[cfg(test)]
mod tests;
