//! `cargo xtask <task>`: project automation that never links Burn.
//!
//! One module per task, each with a `run(args)` function. Tasks call `cargo` and the `svaclr` binary.

mod setup;
mod test;
mod tidy;
mod util;

use anyhow::Result;

const HELP: &str = "\
cargo xtask <task> [options]

Tasks:
  setup [--torch] [--mpi]   install the Debian packages the build needs (FFmpeg, libclang, fonts);
                            --torch also creates the PyTorch venv (torch 2.9.0) used by parity, bench and tch;
                            --mpi also installs Open MPI
  test                      setup, then the workspace tests, the CUDA type-check and the PyTorch parity checks
  help                      this text

Environment:
  SVACLR_TORCH_VENV         an existing venv with torch==2.9.0 (default: ~/.cache/svaclr/torch-2.9.0)
  SVACLR_REFERENCE_DIR      folder of reference fixtures for parity tests (default: tests/fixtures)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result: Result<()> = match task {
        "setup" => setup::run(rest),
        "test" => test::run(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown task '{other}'; `cargo xtask help` lists the tasks")),
    };
    if let Err(e) = result {
        eprintln!("xtask error: {e:#}");
        std::process::exit(1);
    }
}
