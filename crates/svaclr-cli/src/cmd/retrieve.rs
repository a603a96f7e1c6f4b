//! `svaclr retrieve`: audio-visual retrieval R@K (video -> audio and audio -> video, instance level and optionally
//! class level) with a pre-trained model on a test split. Prints a table; with `--out` also writes
//! `OUT/{config.json, results.json, results.md}` (schema in docs/evaluation.md).

use std::path::PathBuf;

use anyhow::Context;
use svaclr_data::{ClipDataset, Manifest};
use svaclr_eval::retrieval::parse_ks;
use svaclr_eval::retrieve::{self, EmbeddingKind, RetrieveConfig};
use svaclr_eval::{load_model, report};
use svaclr_train::device::parse_device;

#[derive(clap::Args)]
pub struct Args {
    /// Pre-training run directory (its config.json and newest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Test manifest (JSON Lines).
    #[arg(long)]
    data: PathBuf,
    /// Split of the manifest (default: every entry).
    #[arg(long)]
    split: Option<String>,
    /// The K of R@K, comma-separated.
    #[arg(long, default_value = "1,5,10,20")]
    k: String,
    /// Clips per video whose embeddings are averaged (evenly spaced).
    #[arg(long, default_value_t = 1)]
    clips: usize,
    /// Also report class-level retrieval (a hit when a top-K item shares the query's class; needs labels).
    #[arg(long)]
    class_level: bool,
    /// Embeddings compared: z (projections, the contrastive space; default) or y (encoder representations).
    #[arg(long, default_value = "z")]
    embedding: String,
    /// Views per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Output folder for results.json / results.md (default: print only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compute device: flex, cuda[:N], tch-cpu, tch-cuda[:N], wgpu[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// The baseline: the run's architecture with random weights (seeded with the run's seed).
    #[arg(long)]
    random_init: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Print results.json to stdout instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (spec, device) = parse_device(&args.device)?;
    let ks = parse_ks(&args.k)?;
    let embedding: EmbeddingKind = args.embedding.parse()?;
    let run_cfg = svaclr_eval::source::read_run_config(&args.checkpoint)?;
    let source = load_model(Some(&args.checkpoint), args.random_init, None, run_cfg.seed, &device)?;
    let manifest = Manifest::load_split(&args.data, args.split.as_deref())?;
    let cfg = RetrieveConfig {
        checkpoint: Some(args.checkpoint.clone()),
        random_init: args.random_init,
        manifest: args.data.clone(),
        split: args.split.clone(),
        ks,
        clips: args.clips,
        class_level: args.class_level,
        embedding,
        batch_size: args.batch_size,
        data: run_cfg.data.clone(),
        seed: run_cfg.seed,
        weights_sha256: source.weights_sha256.clone(),
    };
    cfg.validate()?;
    let ds = ClipDataset::new(&manifest, args.split.as_deref(), cfg.data.clone())?;
    let result = retrieve::run(&cfg, &source.model, &ds, &device, &spec.to_string(), !args.quiet)?;
    if let Some(out) = &args.out {
        report::write_retrieval(out, &cfg, &result)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result).context("serialising the results")?);
    } else {
        print!("{}", report::retrieval_markdown(&result));
        if let Some(out) = &args.out {
            println!("\nwrote {}", out.join(report::RESULTS_JSON).display());
        }
    }
    Ok(())
}
