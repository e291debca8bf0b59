//! The `modelvault` command line. `main` only dispatches and turns errors
//! into one line on stderr and an exit code; the commands live in `cli/`.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = <cli::Args as clap::Parser>::parse();
    cli::init_logging(args.verbose);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`modelvault cat … | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("modelvault: error: {msg}");
            // The class of failure, from the error's type (README, "Exit codes").
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
