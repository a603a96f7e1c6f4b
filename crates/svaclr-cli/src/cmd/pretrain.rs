//! `svaclr pretrain --config FILE --out RUN_DIR [--device D] [--resume] [--distributed auto|none|mpi]`.
//!
//! Under `mpirun -np P` (or `srun`) every process runs this command; see docs/distributed.md.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use svaclr_train::distributed::{self, Collective, DistributedMode};
use svaclr_train::{PretrainConfig, PretrainOptions, PretrainSummary, ddp, parse_device, pretrain_on};

#[derive(clap::Args)]
pub struct Args {
    /// Pre-training config (JSON), e.g. configs/pretrain/synth_speed14_soft.json.
    #[arg(long)]
    config: PathBuf,
    /// Run directory: resolved config, metrics.jsonl, checkpoints/, summary.json, metrics.png.
    #[arg(long)]
    out: PathBuf,
    /// flex (default), cuda[:N], tch-cpu, tch-cuda[:N]; several CUDA devices for data-parallel training in one
    /// process: cuda:0,1,2,3 (needs the `cuda` feature and NCCL; see docs/training.md). In a multi-process job
    /// `cuda` / `tch-cuda` without N is the device of the process' local rank.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Dataset manifest to train on, replacing the config's `manifest`.
    #[arg(long)]
    manifest: Option<PathBuf>,
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
    let comm = distributed::init(args.distributed)?;
    if comm.size() == 1 {
        return train(args, comm.as_ref());
    }
    // Several processes: a rank that fails must end the whole job (its peers would otherwise wait in the next
    // collective forever), and say which rank it was.
    let who = comm.describe();
    match train(args, comm.as_ref()) {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("error: {who}: {}", crate::one_line(&e));
            comm.abort(1)
        }
    }
}

fn train(args: Args, comm: &dyn Collective) -> anyhow::Result<()> {
    let mut cfg = PretrainConfig::load(&args.config, args.manifest.as_deref())?;
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if args.max_steps.is_some() {
        cfg.run.max_steps = args.max_steps;
    }
    let opts = PretrainOptions { resume: args.resume, progress: !args.quiet && std::io::stderr().is_terminal() };
    if args.device.contains(',') {
        if comm.size() > 1 {
            anyhow::bail!(
                "--device {}: a device list (one-process data parallel) cannot be combined with an MPI job of {} \
                 processes; give each process one device",
                args.device,
                comm.size()
            );
        }
        let specs = ddp::parse_device_list(&args.device)?;
        let s = ddp::pretrain_ddp(&cfg, &args.out, &specs, &opts)
            .with_context(|| format!("pre-training {}", args.out.display()))?;
        return report(&args, &s, "");
    }
    let device_arg = if comm.size() > 1 {
        distributed::device_for_local_rank(&args.device, distributed::local_rank())
    } else {
        args.device.clone()
    };
    let (spec, device) = parse_device(&device_arg)?;
    let s = pretrain_on(&cfg, &args.out, &device, &spec.to_string(), &opts, comm)
        .with_context(|| format!("pre-training {}", args.out.display()))?;
    if comm.size() > 1 {
        eprintln!("{}: final weights {}", comm.describe(), s.weights_hash);
    }
    if comm.rank() != 0 {
        return Ok(());
    }
    let procs = if comm.size() > 1 { format!(" x {} processes", comm.size()) } else { String::new() };
    report(&args, &s, &procs)
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
