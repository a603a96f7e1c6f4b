//! `svaclr finetune`: action recognition from a pre-trained video encoder (fine-tuning or linear probe, per the
//! config's `protocol`), with multi-view testing per fold. Writes `OUT/{config.json, results.json, results.md,
//! confusion.png}`; see docs/evaluation.md for the schema.

use std::path::PathBuf;

use anyhow::Context;
use svaclr_eval::finetune::{self, EvalOptions};
use svaclr_eval::probe::default_feature_cache;
use svaclr_eval::{FinetuneConfig, load_model, report};
use svaclr_train::device::parse_device;

#[derive(clap::Args)]
pub struct Args {
    /// Fine-tuning config (JSON), e.g. configs/finetune/synth_linear.json.
    #[arg(long)]
    config: PathBuf,
    /// Pre-training run directory (its config.json and newest checkpoint). Optional with --random-init when the
    /// config names a "model".
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Compute device: flex, cuda[:N], tch-cpu, tch-cuda[:N], wgpu[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// The baseline: a randomly initialised encoder, same architecture and protocol. With --checkpoint, the weights
    /// that run's pre-training started from (its seed); without, the config's model drawn with the config's seed.
    #[arg(long)]
    random_init: bool,
    /// Folder that relative manifest paths in the config are resolved against (overrides the config's data_root).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Folder of the linear probe's feature cache (default OUT/features; used when linear_probe.cache_features).
    #[arg(long)]
    feature_cache: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (spec, device) = parse_device(&args.device)?;
    let mut cfg = FinetuneConfig::load(&args.config, args.data_root.as_deref())?;
    cfg.random_init |= args.random_init;
    let source = load_model(args.checkpoint.as_deref(), cfg.random_init, cfg.model.as_ref(), cfg.seed, &device)
        .with_context(|| "loading the model to evaluate".to_string())?;
    let opts = EvalOptions {
        progress: !args.quiet,
        feature_cache: Some(args.feature_cache.clone().unwrap_or_else(|| default_feature_cache(&args.out))),
        device_name: spec.to_string(),
    };
    let result = finetune::run(&cfg, &source, &device, &opts)?;
    report::write_finetune(&args.out, &cfg, &result)?;
    let folds: Vec<String> = result.folds.iter().map(|f| format!("{} {:.1}", f.name, 100.0 * f.top1)).collect();
    println!(
        "{}{}: top-1 {:.1} % (folds: {}), top-5 {:.1} %, {:.1} s -> {}",
        result.protocol.name(),
        if result.random_init { " (random init)" } else { "" },
        100.0 * result.top1,
        folds.join(", "),
        100.0 * result.top5,
        result.wall_seconds,
        args.out.join(report::RESULTS_JSON).display()
    );
    Ok(())
}
