//! `cargo xtask test [--wgpu]`: the command CI runs. Set-up (Debian packages, Open MPI, the PyTorch venv, Valgrind
//! and gungraun-runner), the workspace tests (the smoke reproduction of Table 1, the flex/LibTorch agreement tests and
//! the MPI tests among them), the CUDA type-check, the torchvision parity checks and the loss kernels'
//! instruction-count gate.
//!
//! `--wgpu` (not in CI, see docs/backends.md for what it costs) adds the `wgpu` feature to the one workspace build,
//! installs the Vulkan loader and Mesa's lavapipe, and so also runs the flex/wgpu agreement tests and the CLI's wgpu
//! tests on lavapipe (Vulkan on the CPU).

use anyhow::Result;

use crate::{bench_gate, parity, setup, torch, util};

/// The optional features CI turns on, all in one build of the workspace: building again with another feature set
/// would recompile Burn and everything above it. `tch` builds against the torch venv's LibTorch.
pub const FEATURES: &str = "svaclr-cli/tch,svaclr-cli/mpi";

/// CI's features and `wgpu` (`cargo xtask test --wgpu`): Burn's CubeCL crates and wgpu add about half again to the
/// cold build (docs/backends.md), so CI leaves them out.
pub const FEATURES_WGPU: &str = "svaclr-cli/tch,svaclr-cli/mpi,svaclr-cli/wgpu";

pub fn run(args: &[String]) -> Result<()> {
    let wgpu = match args {
        [] => false,
        [a] if a == "--wgpu" => true,
        _ => anyhow::bail!("test: usage: cargo xtask test [--wgpu]"),
    };
    let features = if wgpu { FEATURES_WGPU } else { FEATURES };
    let mut setup_args: Vec<String> = ["--torch", "--mpi", "--gate"].map(String::from).to_vec();
    if wgpu {
        setup_args.push("--wgpu".to_string());
    }
    setup::run(&setup_args)?;
    // The workspace tests (xtask's own tidy tests included). Fixtures are in-project unless overridden. With the
    // `mpi` feature the multi-process tests (crates/svaclr-cli/tests/mpi.rs) launch `mpirun -np 2`.
    // SVACLR_PYTHON: the venv's python, whose PyAV the data tests decode with as an independent reference.
    let mut test = torch::cargo_for_features(Some(features))?;
    test.env("SVACLR_PYTHON", torch::python()?);
    util::run(test.args(["test", "--workspace", "--features", features]))?;
    // Keep the CUDA path compiling: burn's cuda backend cannot be linked here (its build downloads LLVM), but with
    // DOCS_RS set its build scripts skip the download and everything type-checks.
    util::run(util::cargo().env("DOCS_RS", "1").args(["check", "-p", "svaclr-cli", "--features", "cuda"]))?;
    // Our encoders against torchvision's, from .pth and .safetensors, and the export round trip, with the `svaclr`
    // binary the workspace test build made for the CLI's integration tests (a separate `cargo build -p svaclr-cli`
    // resolves features differently and would compile Burn a second time).
    parity::check(&parity::svaclr_binary(false), parity::DEFAULT_TOL, false)?;
    // The loss kernels' instruction counts under callgrind against the committed baseline (fails on growth beyond
    // the tolerance): built in this same dev-profile build, only the bench file is compiled.
    bench_gate::gate(false, features)?;
    // The timing benchmarks (`cargo xtask bench loss|pretrain`, `bench-models`) are not run here: each needs its own
    // optimised build of Burn, which CI's time is better spent without; they print tables, they gate nothing.
    Ok(())
}
