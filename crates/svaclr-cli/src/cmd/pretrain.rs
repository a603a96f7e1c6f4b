//! `svaclr pretrain --config FILE --out RUN_DIR [--device D] [--resume]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use svaclr_train::{PretrainConfig, PretrainOptions, ddp, parse_device, pretrain};

#[derive(clap::Args)]
pub struct Args {
    /// Pre-training config (JSON), e.g. configs/pretrain/synth_speed14_soft.json.
    #[arg(long)]
    config: PathBuf,
    /// Run directory: resolved config, metrics.jsonl, checkpoints/, summary.json, metrics.png.
    #[arg(long)]
    out: PathBuf,
    /// flex (default), cuda[:N], tch-cpu, tch-cuda[:N]; several CUDA devices for data-parallel training:
    /// cuda:0,1,2,3 (needs the `cuda` feature and NCCL; see docs/training.md).
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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = PretrainConfig::load(&args.config, args.manifest.as_deref())?;
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if args.max_steps.is_some() {
        cfg.run.max_steps = args.max_steps;
    }
    let opts = PretrainOptions { resume: args.resume, progress: !args.quiet && std::io::stderr().is_terminal() };
    let s = if args.device.contains(',') {
        let specs = ddp::parse_device_list(&args.device)?;
        ddp::pretrain_ddp(&cfg, &args.out, &specs, &opts)
    } else {
        let (spec, device) = parse_device(&args.device)?;
        pretrain(&cfg, &args.out, &device, &spec.to_string(), &opts)
    }
    .with_context(|| format!("pre-training {}", args.out.display()))?;
    println!(
        "pre-trained {} steps ({} epochs) on {} in {:.1} s: loss {} -> {}, positive top-1 {}, {:.1} clips/s; run in {}",
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
