//! The `vpc-resolver` binary: parses the command line, sets up logging and the runtime, maps errors to exit codes.
//! Exit codes: 0 ok, 1 problems found (invalid topology), 2 usage or I/O error.

// Only the command line (`cli.rs`) prints to stdout.
#![warn(clippy::print_stdout)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc: a reload builds the new snapshot, swaps it in and frees the old one, and the freed pages go back to the
/// OS (glibc's arenas kept them: RSS grew with every reload).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A server returns freed pages to the OS as soon as they are free, not after jemalloc's default ten seconds: a
/// reload frees a whole snapshot and the load's scratch at once, and RSS should show that at once (benches/scale.sh:
/// 1,000 VPCs serve in 131 MB, and 151 MB right after 10 reloads, against 213 and 393 MB with a one-second decay).
/// Local answers and cache hits allocate nothing per query, so they do not pay for it (dnsperf, from cache and
/// NXDOMAIN: the same q/s either way). One-shot commands keep the default: purging would only slow them down.
#[cfg(feature = "jemalloc")]
fn return_memory_at_once() {
    use tikv_jemalloc_ctl::{Access, AsName};
    // Arenas made from now on, and arena 0, which already serves this thread.
    let _ = b"arenas.dirty_decay_ms\0".name().write(0isize);
    let _ = b"arena.0.dirty_decay_ms\0".name().write(0isize);
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    #[cfg(feature = "jemalloc")]
    if args.serves() {
        return_memory_at_once();
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
