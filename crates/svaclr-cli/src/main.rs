//! The `svaclr` command-line tool: thin subcommands over the svaclr libraries.
//!
//! Each subcommand lives in `cmd/<name>.rs` with a clap `Args` struct and a `run(args) -> anyhow::Result<()>`.
//! Errors end the process with a one-line cause on stderr and exit code 1.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "svaclr", version, about = "SvaCLR: speed co-augmentation for audio-visual pre-training")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Version, backends compiled in, devices found, thread count.
    Info(cmd::info::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => cmd::info::run(a),
    };
    if let Err(e) = result {
        // One line: the chain of causes joined, never a backtrace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
