//! The `vpc-resolver` binary: parses the command line, sets up logging and the runtime, maps errors to exit codes.
//! Exit codes: 0 ok, 1 problems found (invalid topology), 2 usage or I/O error.

// Only the command line (`cli.rs`) prints to stdout.
#![warn(clippy::print_stdout)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
