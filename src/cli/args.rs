//! Argument definitions (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Content-addressed, deduplicated storage for model weights.
#[derive(Parser, Debug)]
#[command(name = "modelvault", version, about)]
pub struct Args {
    /// The store directory.
    #[arg(long, global = true, env = "MODELVAULT_REPO", value_name = "DIR")]
    pub repo: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store.
    Init,
    /// Store files and folders as the next version of a model; prints NAME@VERSION last.
    Put {
        /// Model name.
        #[arg(long)]
        name: String,
        /// Files (stored under their file name) and folders (their files under paths relative to the folder).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write a version's files into a directory, byte-identical.
    Get {
        /// NAME or NAME@VERSION (latest when no version is given).
        model: String,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Stream one file of a version to stdout.
    Cat {
        /// NAME or NAME@VERSION.
        model: String,
        /// Path of the file within the version.
        path: String,
    },
    /// List models.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the versions of a model.
    Versions {
        /// Model name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the files of a version.
    Show {
        /// NAME or NAME@VERSION.
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Space and dedup figures.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
