//! The `paratime-node` binary: parse the command line, run, exit with its code.

fn main() {
    std::process::exit(paratime_node::cli::run());
}
