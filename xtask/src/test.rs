//! `cargo xtask test`: the command CI runs. Set-up (Debian packages, Open MPI and the PyTorch venv), the workspace
//! tests (the smoke reproduction of Table 1, the flex/LibTorch agreement tests and the MPI tests among them), the CUDA
//! type-check, the torchvision parity checks, and the loss benchmark's quick mode (printed, never failed on speed).

use anyhow::Result;

use crate::{bench, parity, setup, util};

/// The optional features CI turns on, all in one build of the workspace: building again with another feature set
/// would recompile Burn and everything above it. `tch` builds against the torch venv's LibTorch.
const FEATURES: &str = "svaclr-cli/tch,svaclr-cli/mpi";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        anyhow::bail!("test: unknown option '{a}'");
    }
    setup::run(&["--torch".to_string(), "--mpi".to_string()])?;
    // The workspace tests (xtask's own tidy tests included). Fixtures are in-project unless overridden. With the
    // `mpi` feature the multi-process tests (crates/svaclr-cli/tests/mpi.rs) launch `mpirun -np 2`.
    let mut test = util::cargo_for_features(Some(FEATURES))?;
    util::run(test.args(["test", "--workspace", "--features", FEATURES]))?;
    // Keep the CUDA path compiling: burn's cuda backend cannot be linked here (its build downloads LLVM), but with
    // DOCS_RS set its build scripts skip the download and everything type-checks.
    util::run(util::cargo().env("DOCS_RS", "1").args(["check", "-p", "svaclr-cli", "--features", "cuda"]))?;
    // Our encoders against torchvision's, from .pth and .safetensors, and the export round trip (reusing the build).
    parity::run(&["--features".to_string(), FEATURES.to_string()])?;
    // The loss kernels against PyTorch on the same shapes (quick mode; a table, not a gate).
    bench::run(&["loss".to_string(), "--quick".to_string()])?;
    Ok(())
}
