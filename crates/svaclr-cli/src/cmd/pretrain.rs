//! `svaclr pretrain --config FILE --out RUN_DIR [--device D] [--resume] [--distributed auto|none|mpi]`.
//!
//! Under `mpirun -np P` (or `srun`) every process runs this command; see docs/distributed.md.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use svaclr_data::Manifest;
use svaclr_train::distributed::DistributedMode;
use svaclr_train::{PretrainConfig, PretrainOptions, PretrainSummary, launch};

#[derive(clap::Args)]
pub struct Args {
    /// Pre-training config (JSON), e.g. configs/pretrain/synth_speed14_soft.json.
    #[arg(long)]
    config: PathBuf,
    /// Run directory: resolved config, metrics.jsonl, checkpoints/, summary.json, metrics.png.
    #[arg(long)]
    out: PathBuf,
    /// flex (default), cuda[:N], tch-cpu, tch-cuda[:N], wgpu[:N]; several devices for data-parallel training in one
    /// process: cuda:0,1,2,3 (one thread per device, negatives gathered from all; see docs/training.md). In a
    /// multi-process job `cuda` / `tch-cuda` without N is the device of the process' local rank.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Dataset manifest to train on, replacing the config's `manifest`.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Split of the manifest to train on (e.g. `train` of a prepared Kinetics-Sounds manifest), replacing the
    /// config's `split`.
    #[arg(long)]
    split: Option<String>,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Stop after this many optimiser steps (overrides the config's run.max_steps).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Seed, replacing the config's `seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Data-parallel training over processes: auto (MPI when launched by mpirun/srun with more than one rank),
    /// none, or mpi (needs the `mpi` feature).
    #[arg(long, default_value = "auto")]
    distributed: DistributedMode,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = PretrainConfig::load(&args.config, args.manifest.as_deref())?;
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if args.split.is_some() {
        cfg.split = args.split.clone();
    }
    // A split the manifest does not have is one line naming both, before the run directory is made.
    if let Some(split) = &cfg.split {
        Manifest::load_split(&cfg.manifest, Some(split))?;
    }
    if args.max_steps.is_some() {
        cfg.run.max_steps = args.max_steps;
    }
    let opts = PretrainOptions { resume: args.resume, progress: !args.quiet && std::io::stderr().is_terminal() };
    let done = launch(&cfg, &args.out, &args.device, args.distributed, &opts)
        .with_context(|| format!("pre-training {}", args.out.display()))?;
    if let Some(who) = &done.describe {
        eprintln!("{who}: final weights {}", done.summary.weights_hash);
    }
    if done.rank != 0 {
        return Ok(());
    }
    let ranks = done.summary.processes;
    let procs = match (&done.describe, ranks) {
        (Some(_), p) => format!(" x {p} processes"),
        (None, p) if p > 1 => format!(" ({p} devices)"),
        _ => String::new(),
    };
    report(&args, &done.summary, &procs)
}

/// The one-line summary of a finished run (stdout).
fn report(args: &Args, s: &PretrainSummary, procs: &str) -> anyhow::Result<()> {
    let monitor = match (&s.monitor_first, &s.monitor_final) {
        (Some(a), Some(b)) => {
            let original = match (a.top1_pq, b.top1_pq) {
                (Some(x), Some(y)) => format!(" (original views {:.3} -> {:.3})", x[0][0], y[0][0]),
                _ => String::new(),
            };
            format!(
                "; monitor loss {:.4} -> {:.4}, top-1 {:.3} -> {:.3}{original}",
                a.loss, b.loss, a.top1_acc, b.top1_acc
            )
        }
        _ => String::new(),
    };
    println!(
        "pre-trained {} steps ({} epochs) on {}{procs} in {:.1} s: loss {} -> {}, positive top-1 {}{monitor}, \
         {:.1} clips/s; run in {}",
        s.steps,
        s.epochs,
        s.device,
        s.wall_s,
        s.first_loss.map_or("-".into(), |v| format!("{v:.4}")),
        s.final_loss.map_or("-".into(), |v| format!("{v:.4}")),
        s.final_top1_acc.map_or("-".into(), |v| format!("{v:.3}")),
        s.clips_per_s,
        args.out.display()
    );
    Ok(())
}
