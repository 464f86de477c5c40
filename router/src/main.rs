//! `gp`: parses the command line and hands over to [`gatepulse::cli`].

use clap::Parser;

fn main() {
    let cli = gatepulse::cli::Cli::parse();
    std::process::exit(gatepulse::cli::main(cli));
}
