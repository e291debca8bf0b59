//! Argument definitions (clap derive).

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Content-addressed, deduplicated storage for model weights and the
/// experiments that made them.
#[derive(Parser, Debug)]
#[command(name = "modelvault", version, about, after_help = super::exit::HELP)]
pub struct Args {
    /// The store directory.
    #[arg(long, global = true, env = "MODELVAULT_REPO", value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Log what the store does to stderr: -v for each put, get, gc, verify and
    /// compaction, -vv for more detail. RUST_LOG (e.g. `modelvault=debug`), when
    /// set, chooses instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store.
    Init(Json),
    /// Store files and folders as the next version of a model; prints NAME@VERSION last.
    ///
    /// A path named on the command line is read whatever it is (a symlink to
    /// a file or folder is followed). A symlink found inside a folder is
    /// refused, naming it, with nothing stored, unless --follow-symlinks.
    ///
    /// With --resume UPLOAD_ID, continues a `put` of ONE file that was
    /// interrupted (see `uploads`) from its durable prefix instead: give the
    /// same source file. Its first bytes are compared with what the session
    /// stored, and a source that changed since is refused with the session
    /// left as it was. The model and the file's path in the version come
    /// from the session (`put NAME: PATH`). The rest of the file is stored
    /// without a delta base (a resumed upload has none): the chunks after the
    /// durable prefix are stored whole, compressed and deduplicated but not
    /// as deltas against the previous version, so it can take more space
    /// than the uninterrupted put would have.
    Put {
        /// Model name (a new model is created if none has this name). With
        /// --resume, optional: it must be the session's if given.
        #[arg(long, required_unless_present = "resume")]
        name: Option<String>,
        /// Continue the interrupted upload session UPLOAD_ID (as `uploads`
        /// lists it) of a put of one file, from the same source file.
        #[arg(long, value_name = "UPLOAD_ID",
              conflicts_with_all = ["base", "no_delta", "reverse_delta", "forward_delta", "max_delta_depth", "follow_symlinks"])]
        resume: Option<String>,
        /// The experiment that created this model version.
        #[arg(long, value_name = "ID")]
        experiment: Option<String>,
        /// Project of a newly created model.
        #[arg(long, default_value = "default")]
        project: String,
        /// Store float tensors as deltas against the files of this version
        /// (same path), e.g. the model a fine-tune started from. Default: the
        /// latest version of NAME, if any.
        #[arg(long, value_name = "MODEL[@VERSION]", conflicts_with = "no_delta")]
        base: Option<String>,
        /// Store every file whole, without a delta base.
        #[arg(long)]
        no_delta: bool,
        /// Reverse delta, the default: store the new files whole (cut like
        /// the base's), then re-encode the base's files as deltas against
        /// them, so the newest version restores fastest and older ones pay
        /// for the chain. Packs the replaced records left under 90% live
        /// are compacted at the end of the put.
        #[arg(long, conflicts_with_all = ["no_delta", "forward_delta"])]
        reverse_delta: bool,
        /// Forward delta: store the new files as deltas against the base's,
        /// leaving the base as it is: a faster put, and the newest version
        /// pays for the chain on every read.
        #[arg(long, conflicts_with = "no_delta")]
        forward_delta: bool,
        /// The longest delta chain this put may create or extend (1 to 16):
        /// a chunk is stored whole once its base is this many deltas deep.
        /// Longer chains store less and make the versions at their far end
        /// slower to read (with reverse deltas, the oldest). Default: 9
        /// with reverse deltas (ten versions to a chain), 3 with
        /// --forward-delta.
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u8).range(1..=16),
              conflicts_with = "no_delta")]
        max_delta_depth: Option<u8>,
        /// Follow symlinks inside folders, to files and folders alike: what
        /// they point to is stored under the link's path (a link back to a
        /// folder it is in is refused as a loop).
        #[arg(long)]
        follow_symlinks: bool,
        /// Files (stored under their file name) and folders (their files under paths relative to the folder).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// Write a version's files into a directory, byte-identical.
    ///
    /// Each file is written to a temporary file, fsynced, and renamed into
    /// place; the folders are fsynced last. A version with two paths that
    /// differ only in case (A.bin, a.bin) is refused before anything is
    /// written: they would overwrite each other on a case-insensitive
    /// filesystem.
    Get {
        /// Model: id, name, NAME@VERSION, NAME@ALIAS or model URL (latest version when none is given).
        model: String,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Restore paths that differ only in case (for an output directory
        /// on a case-sensitive filesystem).
        #[arg(long)]
        allow_case_collisions: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Stream one file of a version to stdout.
    Cat {
        /// Model: id, name, NAME@VERSION, NAME@ALIAS or model URL.
        model: String,
        /// Path of the file within the version.
        path: String,
    },
    /// List models (same as `model list`).
    List(Json),
    /// List the versions of a model (same as `model versions`).
    Versions {
        /// Model.
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// Show the files of a version.
    Show {
        /// Model.
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// Space and dedup figures.
    Stats(Json),
    /// Write models with their versions and blobs to one bundle file (stdout without -o),
    /// for another store to import: WHAT is NAME, NAME@V, NAME@A..B, or nothing for every model
    Export {
        /// NAME, NAME@VERSION or NAME@FIRST..LAST; the whole store when absent (and no --experiment)
        what: Option<String>,
        /// An experiment (id or PROJECT/NAME) with its console, scalars, artifacts and the models it created
        #[arg(long = "experiment", value_name = "ID")]
        experiments: Vec<String>,
        /// With --experiment: also the model versions the experiments used
        #[arg(long, requires = "experiments")]
        with_used: bool,
        /// The bundle file (written complete or not at all); stdout when absent
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Leave out the chunks listed in FILE (`modelvault have` run on the target)
        #[arg(long, value_name = "FILE")]
        exclude_have: Option<PathBuf>,
        /// Leave out the chunks an earlier bundle carried (the target imported it)
        #[arg(long, value_name = "BUNDLE")]
        since: Vec<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// Add a bundle's models, versions and blobs to the store, keeping their ids: checked
    /// whole before anything is committed, all or nothing, and idempotent
    Import {
        /// The bundle file, or - for stdin
        bundle: PathBuf,
        /// Import what does not conflict and list the conflicts (default: import nothing)
        #[arg(long)]
        skip_conflicts: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Print the id of every chunk the store holds, one per line (for `export --exclude-have`)
    Have,
    /// Copy models from this store into the store DEST without a bundle file, sending only
    /// the chunks DEST lacks (DEST is created if missing); with --from URL, from a
    /// `modelvault serve` into this store instead: `sync --from URL [WHAT]`
    Sync {
        /// The target store directory; with --from, WHAT instead (this store is the target)
        #[arg(value_name = "DEST")]
        dest: Option<String>,
        /// NAME, NAME@VERSION or NAME@FIRST..LAST; every model when absent (and no --experiment)
        what: Option<String>,
        /// Copy from the server at URL (modelvault://HOST:PORT or http://HOST:PORT) into --repo
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// An experiment (id; PROJECT/NAME too without --from) with its console, scalars,
        /// artifacts and the models it created
        #[arg(long = "experiment", value_name = "ID")]
        experiments: Vec<String>,
        /// With --experiment: also the model versions the experiments used
        #[arg(long, requires = "experiments")]
        with_used: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Check the store: every record (fast), and with --read-data every chunk's bytes.
    Verify {
        /// Re-read, decode and re-hash every chunk.
        #[arg(long)]
        read_data: bool,
        /// With --read-data, only part N of M (e.g. 1/4); parts 1..=M cover everything once.
        #[arg(long, value_name = "N/M")]
        subset: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Collect garbage: expire stale uploads, free unreferenced chunks, compact packs.
    Gc {
        /// Give up upload sessions with no progress for this long (e.g. 30m, 24h, 7d).
        #[arg(long, default_value = "24h")]
        expire_uploads_after: String,
        /// Rewrite packs whose live fraction is below this (0 = only delete empty packs).
        #[arg(long, default_value_t = 0.5)]
        compact_below: f64,
        /// Also compact the metadata database, whatever this collection freed
        /// (by default only when it freed an eighth of the index or more).
        #[arg(long)]
        compact_metadata: bool,
        #[command(flatten)]
        json: Json,
    },
    /// List upload sessions that can be resumed (durable progress, no blob yet).
    Uploads(Json),
    /// Space per model, version and experiment: logical bytes, stored
    /// bytes, unique bytes (what deleting it would free) and shared bytes.
    Du {
        /// Order of each table: size (stored, largest first), unique
        /// (largest first) or name.
        #[arg(long, value_enum, default_value_t = DuSort::Size)]
        sort: DuSort,
        #[command(flatten)]
        json: Json,
    },
    /// What references a blob (version files, artifacts, S3 objects), or
    /// which blobs contain a chunk.
    Who {
        /// A blob or chunk id (64 hex digits); `blob:ID` or `chunk:ID` to
        /// ask for one kind only.
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// The tensors of a stored safetensors or GGUF file (name, dtype,
    /// shape, bytes), or, given TENSOR, that tensor's bytes (to stdout, or
    /// to a file with -o), read without the rest of the file.
    Tensor {
        /// Model: id, name, NAME@VERSION, NAME@ALIAS or model URL (latest version when none is given).
        model: String,
        /// Path of the file within the version.
        file: String,
        /// A tensor's name: write its bytes instead of listing the tensors.
        tensor: Option<String>,
        /// Write the tensor's bytes to FILE (replaced once complete) instead of stdout.
        #[arg(short, long, value_name = "FILE", requires = "tensor")]
        out: Option<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// The registry's secondary indexes (by name, tag, metadata, ...):
    /// compare them with the records, or rebuild them from the records.
    #[command(subcommand)]
    Index(IndexCmd),
    /// Experiments: code execution sessions.
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Models: ids, versions, metadata, aliases, URLs.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Print a completion script for SHELL on stdout (needs no store), e.g.
    /// `modelvault completions bash > /etc/bash_completion.d/modelvault`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Serve the store over an S3-compatible endpoint (the store is created if missing).
    ///
    /// Clients sign with the access key and secret key in
    /// MODELVAULT_S3_ACCESS_KEY and MODELVAULT_S3_SECRET_KEY (or the file
    /// --credentials names); without them the server refuses to start unless
    /// --anonymous. When it accepts connections it prints
    /// `modelvault: serving S3 on http://ADDR` on stdout. SIGTERM or Ctrl-C
    /// stops it after the requests in flight.
    Serve(ServeArgs),
}

#[derive(ClapArgs, Debug)]
pub struct ServeArgs {
    /// The address to listen on (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Serve without authentication: anyone who reaches the address may
    /// read and write every bucket.
    #[arg(long)]
    pub anonymous: bool,
    /// A file with two lines, the access key and the secret key (instead of
    /// the environment variables).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// The read-only bucket that shows the model registry as
    /// MODEL/VERSION/PATH (also MODEL/latest/PATH and MODEL/ALIAS/PATH).
    #[arg(
        long,
        default_value = "models",
        value_name = "NAME",
        conflicts_with = "no_registry_bucket"
    )]
    pub registry_bucket: String,
    /// Do not show the registry as a bucket.
    #[arg(long)]
    pub no_registry_bucket: bool,
    /// The largest object, in bytes: one put, one multipart part, or the
    /// sum of a multipart upload's parts.
    /// (One put or part is at most 5 GiB whatever this says, as in S3.)
    #[arg(long, default_value_t = 5 << 40, value_name = "BYTES")]
    pub max_object_size: u64,
    /// The most uploads (puts and parts) received at once; more wait.
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_concurrent_uploads: u32,
    /// How long a connection may send nothing while its request headers or
    /// body are awaited (30s, 2m, ...).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub idle_timeout: String,
    /// Multipart uploads begun longer ago than this are aborted.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub multipart_expiry: String,
}

/// How `du` orders its tables.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuSort {
    /// Stored bytes, largest first.
    Size,
    /// Unique bytes (freed by deleting it), largest first.
    Unique,
    /// Name (then version).
    Name,
}

#[derive(ClapArgs, Debug, Clone, Copy)]
pub struct Json {
    /// Print one JSON value instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCmd {
    /// Create an experiment; prints its id.
    Create {
        /// Project.
        #[arg(long)]
        project: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Type, e.g. training.
        #[arg(long = "type")]
        kind: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Show an experiment (with the ids of the models it created and used).
    Show {
        /// Experiment id, or PROJECT/NAME for the latest of that name.
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// List experiments, oldest first, a page at a time.
    List {
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Only names starting with this.
        #[arg(long)]
        name_prefix: Option<String>,
        /// Only this status (created, running, completed, failed, stopped).
        #[arg(long)]
        status: Option<String>,
        /// Only this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this id (the last of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Mark an experiment running.
    Start {
        /// Experiment id.
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Append console lines (the arguments, or stdin line by line).
    Log {
        /// Experiment id.
        id: String,
        /// Log to stderr's stream instead of stdout's.
        #[arg(long)]
        stderr: bool,
        /// Lines; read from stdin when none are given.
        text: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Print console lines.
    Console {
        /// Experiment id.
        id: String,
        /// First line number.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        #[command(flatten)]
        json: Json,
    },
    /// Show or set progress (0-100).
    Progress {
        /// Experiment id.
        id: String,
        /// New value; shows the current one when absent.
        value: Option<u8>,
        #[command(flatten)]
        json: Json,
    },
    /// Set hyperparameters: Section/key=value (typed: 3, 0.5, true, text).
    Param {
        /// Experiment id.
        id: String,
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Record a model version the experiment used as input.
    Use {
        /// Experiment id.
        id: String,
        /// Model (latest version unless NAME@VERSION).
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// Artifacts: store a file as an experiment's artifact, or read one back.
    #[command(subcommand)]
    Artifact(ArtifactCmd),
    /// List an experiment's artifacts: name, revision, size, blob id.
    Artifacts {
        /// Experiment id, or PROJECT/NAME.
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Report scalars: one point `METRIC SERIES ITERATION VALUE`, or with
    /// --stdin one point per line of stdin (those four, separated by
    /// whitespace; blank lines are skipped).
    ///
    /// Lines from stdin are committed 1000 at a time. A malformed line is
    /// an error naming its number and what is wrong: the batches before
    /// the one holding it are written (the error says up to which line),
    /// nothing from that batch on.
    Scalar {
        /// Experiment id, or PROJECT/NAME.
        id: String,
        /// Metric name, e.g. loss.
        #[arg(required_unless_present = "stdin")]
        metric: Option<String>,
        /// Series (variant) of the metric, e.g. train.
        #[arg(required_unless_present = "stdin")]
        series: Option<String>,
        /// Iteration: a non-negative integer.
        #[arg(required_unless_present = "stdin", allow_hyphen_values = true)]
        iteration: Option<String>,
        /// Value: a finite number.
        #[arg(required_unless_present = "stdin", allow_hyphen_values = true)]
        value: Option<String>,
        /// Read the points from stdin instead.
        #[arg(long, conflicts_with_all = ["metric", "series", "iteration", "value"])]
        stdin: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Print the series of one metric: series, iteration, value.
    Scalars {
        /// Experiment id, or PROJECT/NAME.
        id: String,
        /// Metric name.
        metric: String,
        #[command(flatten)]
        json: Json,
    },
    /// Show the environment and run information recorded for an
    /// experiment; with --capture or --set, record them first.
    ///
    /// --capture records what this process can tell honestly about where
    /// it runs: host name, user, working directory, and the git repository
    /// and commit of the working directory when it is in one (the command
    /// line, the uncommitted diff, the interpreter and packages are left as
    /// they were). --set KEY=VALUE sets one field, after --capture: the
    /// environment's `interpreter`, `requirements`, `package.NAME` (its
    /// version; empty removes it), and the run's `host`, `user`,
    /// `working_dir`, `command` (split at whitespace), `git_repo`,
    /// `git_commit`, `git_diff` (empty clears these three).
    Env {
        /// Experiment id, or PROJECT/NAME.
        id: String,
        /// Record host, user, working directory and git repository and commit.
        #[arg(long)]
        capture: bool,
        /// Set one field (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Finish the experiment; it is immutable afterwards.
    Finalize {
        /// Experiment id.
        id: String,
        /// Final status.
        #[arg(long, default_value = "completed")]
        status: String,
        #[command(flatten)]
        json: Json,
    },
    /// Delete an experiment with its console, scalars and artifacts.
    Delete {
        /// Experiment id.
        id: String,
        /// Also delete the models it created.
        #[arg(long)]
        with_models: bool,
        #[command(flatten)]
        del: DeleteFlags,
    },
}

#[derive(Subcommand, Debug)]
pub enum IndexCmd {
    /// Compare the indexes with what the records imply; print what is
    /// missing or extra (exit code 3 if anything is).
    Verify(Json),
    /// Rebuild the indexes from the records; print what was wrong.
    Rebuild(Json),
}

#[derive(Subcommand, Debug)]
pub enum ArtifactCmd {
    /// Store FILE (stdin with `-`, streamed) as the next revision of artifact NAME.
    Add {
        /// Experiment id, or PROJECT/NAME.
        id: String,
        /// Artifact name.
        name: String,
        /// The file, or `-` for stdin.
        file: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Write an artifact's bytes to stdout (or to a file with -o); an
    /// inline artifact is written as its JSON value.
    Get {
        /// Experiment id, or PROJECT/NAME.
        id: String,
        /// Artifact name.
        name: String,
        /// This revision (default: the latest).
        #[arg(long, value_name = "N")]
        revision: Option<u32>,
        /// Write to FILE (replaced once complete) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(ClapArgs, Debug, Clone, Copy)]
pub struct DeleteFlags {
    /// Delete finalized models too.
    #[arg(long)]
    pub force: bool,
    /// Only report what would be deleted and how many bytes it frees.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON value instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Show a model (with its creating experiment's id).
    Show {
        /// Model: id, name, NAME@VERSION, NAME@ALIAS or model URL.
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// List models, optionally filtered by a query.
    List {
        /// e.g. 'metadata.accuracy > 0.9 AND framework = pytorch' (grammar in docs/CLI.md).
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List versions with their files.
    Versions {
        /// Model.
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// Print the model URL of a version (latest when none is given).
    Url {
        /// Model.
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// Add tags, or remove them with --remove.
    Tag {
        /// Model.
        model: String,
        /// Remove instead of add.
        #[arg(long)]
        remove: bool,
        /// Tags.
        #[arg(required = true)]
        tags: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Set typed metadata KEY=VALUE (3, 0.5, true, [1,2], text), or remove keys with --remove.
    Meta {
        /// Model.
        model: String,
        /// Remove the named keys.
        #[arg(long)]
        remove: bool,
        /// KEY=VALUE pairs (KEY with --remove).
        #[arg(required = true)]
        pairs: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Point an alias at a version (--move to move an existing one, --remove to delete it).
    Alias {
        /// Model.
        model: String,
        /// Alias name.
        alias: String,
        /// Version number.
        version: Option<u32>,
        /// Move an existing alias.
        #[arg(long = "move")]
        move_: bool,
        /// Remove the alias.
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Finalize (publish) a model: every later change is an error.
    Finalize {
        /// Model.
        model: String,
        #[command(flatten)]
        json: Json,
    },
    /// Delete a model (NAME) or one version (NAME@VERSION).
    Delete {
        /// Model, or NAME@VERSION for one version.
        model: String,
        #[command(flatten)]
        del: DeleteFlags,
    },
    /// Delete the versions a retention rule does not keep (aliased versions and finalized models are kept).
    Prune {
        /// Model; all models with --all.
        model: Option<String>,
        /// Every model.
        #[arg(long, conflicts_with = "model")]
        all: bool,
        /// Keep the newest N versions.
        #[arg(long)]
        keep_last: Option<u32>,
        /// Keep versions younger than this (e.g. 12h, 30d).
        #[arg(long)]
        keep_within: Option<String>,
        /// Only report what would be deleted and how many bytes it frees.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Register a model by URL without storing bytes (the same URL again returns the same model).
    Register {
        /// Model name.
        #[arg(long)]
        name: String,
        /// Project.
        #[arg(long, default_value = "default")]
        project: String,
        /// Expected checksum, e.g. sha256:...
        #[arg(long)]
        checksum: Option<String>,
        /// Where the bytes are.
        url: String,
        #[command(flatten)]
        json: Json,
    },
}
