//! `cargo xtask <task>`: project automation that never links Burn.
//!
//! One module per task, each with a `run(args)` function. Tasks call `cargo` and the `svaclr` binary.

mod bench;
mod bench_gate;
mod bench_models;
mod bench_pretrain;
mod build;
mod libtorch_stub;
mod parity;
mod reproduce;
mod setup;
mod test;
mod tidy;
mod torch;
mod util;

use anyhow::Result;

const HELP: &str = "\
cargo xtask <task> [options]

Tasks:
  reproduce table1|table2|table3 [--preset smoke|synth|paper|paper-tiny] [--data-root DIR] [--device D]
            [--seeds N] [--out DIR] [--dry-run] [--force] [--debug] [--features tch|cuda]
                            the main job: set-up, release build, then every row of the table -> results/table1.md
  build [--debug] [--features tch|cuda|wgpu]
                            set-up, then build `svaclr` (release unless --debug); with tch, against the torch
                            venv's LibTorch (created when missing); the binary finds LibTorch without LD_LIBRARY_PATH
  setup [--torch] [--mpi] [--gate] [--wgpu]
                            install the Debian packages the build needs (FFmpeg, libclang, fonts);
                            --torch also creates the PyTorch venv (torch 2.9.0) used by parity, bench and tch;
                            --mpi also installs Open MPI; --gate also Valgrind and gungraun-runner;
                            --wgpu the Vulkan loader and Mesa's lavapipe
  test [--wgpu]             setup, then the workspace tests, the CUDA type-check, the PyTorch parity checks and
                            the instruction-count gate (bench-gate); --wgpu also builds the wgpu backend and runs
                            its tests on Mesa's lavapipe (not in CI: it adds about half to the cold build)
  bench-gate [--record]     the loss kernels' instruction counts (callgrind, gungraun) against the committed
                            baseline crates/svaclr-loss/benches/icount/baseline.json; fails on growth beyond the
                            tolerance; --record rewrites the baseline (accepting an intended change)
  bench loss [--quick] [--tch] [--save NAME] [--baseline NAME]
                            loss kernels vs PyTorch (--tch: also on burn's LibTorch backend);
                            writes results/bench/loss.{json,md}
  bench pretrain [--quick] [--steps N] [--warmup N] [--rounds N] [--config FILE]
                            pre-training clips/s and peak memory, burn-flex vs PyTorch on the same network and
                            data shape (CPU preset); writes results/bench/pretrain.{json,md}
  parity [--tol T] [--keep] [--features F]
                            our r2plus1d_18 / r3d_18 / audio_resnet9 against torchvision: forward from .pth and
                            .safetensors, import/export round trip loaded by torchvision with strict=True
  bench-models [--iters N] [--threads T] [--tch] [--case ARCH:PRESET:SHAPE]
                            encoder fwd and fwd+bwd times, burn-flex (--tch: and LibTorch) vs PyTorch;
                            writes results/bench/models.*
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
        "build" => build::run(rest),
        "bench" => bench::run(rest),
        "bench-models" => bench_models::run(rest),
        "bench-gate" => bench_gate::run(rest),
        "parity" => parity::run(rest),
        "test" => test::run(rest),
        "reproduce" => reproduce::run(rest),
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
