//! `svaclr prepare`: index a real dataset (manifests with splits, durations, audio extracted to wav), reporting
//! unusable files instead of failing the run. See svaclr_data::prepare and docs/data.md for the layouts.

use std::path::PathBuf;

use anyhow::Context;
use svaclr_data::prepare::{DatasetKind, PrepareOptions, prepare};

#[derive(clap::Args)]
pub struct Args {
    /// kinetics-sounds, k400, vggsound, ucf101 or hmdb51.
    #[arg(long)]
    dataset: String,
    /// The dataset's root folder, in the layout it ships in.
    #[arg(long)]
    root: PathBuf,
    /// Output folder: manifests, audio/*.wav, classes.txt, prepare_report.json.
    #[arg(long)]
    out: PathBuf,
    /// Sample rate of the extracted wavs; 0 keeps each file's native rate.
    #[arg(long, default_value_t = 24_000)]
    audio_rate: u32,
    /// Videos (and, for the audio-visual sets, audio tracks) shorter than this many seconds are unusable.
    #[arg(long, default_value_t = 1.0)]
    min_duration: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset: DatasetKind = args.dataset.parse()?;
    anyhow::ensure!(args.min_duration >= 0.0, "--min-duration must be >= 0, got {}", args.min_duration);
    let opts = PrepareOptions {
        audio_rate: (args.audio_rate > 0).then_some(args.audio_rate),
        min_duration: args.min_duration,
        progress: !args.quiet,
        ..PrepareOptions::new(dataset, &args.root, &args.out)
    };
    let report = match args.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .context("starting the worker pool")?
            .install(|| prepare(&opts)),
        None => prepare(&opts),
    }?;
    println!("{}", report.summary());
    Ok(())
}
