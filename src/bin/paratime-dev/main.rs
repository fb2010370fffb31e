//! `paratime-dev`: developer tooling, kept out of the operator's binary — a local network with
//! load (`localnet`) and host benchmarks (`bench`). It drives `paratime-node` processes (the
//! binary next to this one) through their config files and typed control API.

mod bench;
mod bench_consensus;
mod bench_state;
mod gen_docs;
mod load;
mod localnet;

use clap::{Parser, Subcommand};

/// paratime-dev: a local network and benchmarks for paratime-node developers.
#[derive(Parser, Debug)]
#[command(name = "paratime-dev", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local network on this machine (validators, compute nodes, client) until Ctrl-C.
    Localnet(Box<localnet::Args>),
    /// Print host benchmarks against their physical floor.
    Bench(bench::BenchArgs),
    /// Measure a round's cost on a large runtime state against a small one.
    BenchState(bench_state::Args),
    /// Measure a consensus block's cost on a large state against a small one.
    BenchConsensus(bench_consensus::Args),
    /// Write the man pages, shell completions and docs/commands.md (`--out .` updates the
    /// committed ones).
    GenDocs(gen_docs::Args),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Localnet(a) => localnet::run(*a),
        Command::Bench(a) => {
            paratime_node::cli::init_cli_logging();
            bench::bench(a)
        }
        Command::BenchState(a) => bench_state::run(a),
        Command::BenchConsensus(a) => bench_consensus::run(a),
        Command::GenDocs(a) => gen_docs::run(a),
    };
    std::process::exit(code);
}
