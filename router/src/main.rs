//! `gp`: parses the command line and hands over to [`gatepulse::cli`].

use clap::Parser;

/// mimalloc: the server allocates many small, short-lived buffers per request; glibc
/// malloc spent ~15% of CPU under load on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = gatepulse::cli::Cli::parse();
    std::process::exit(gatepulse::cli::main(cli));
}
