//! The `vpc-resolver` binary: parses the command line, sets up logging and the runtime, maps errors to exit codes.
//! Exit codes: 0 ok, 1 problems found (invalid topology), 2 usage or I/O error.

// Only the command line (`cli.rs`) prints to stdout.
#![warn(clippy::print_stdout)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc with background purging: a reload builds the new snapshot, swaps it in and frees the old one, and the
/// freed pages go back to the OS within seconds (glibc's arenas kept them: RSS grew with every reload).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Purging on a background thread, so the query path never pays for returning memory.
    #[cfg(feature = "jemalloc")]
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
