//! `svaclr synth`: write the SynthAV benchmark (videos, wavs, manifests, synthav.json; optionally a preview PNG).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use svaclr_synth::{GenerateOptions, PREVIEW_FILE, Preset, Split, SynthConfig, generate, write_preview};

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (created; a previous SynthAV dataset in it is replaced, other contents are refused).
    #[arg(long)]
    out: PathBuf,
    /// Dataset seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sizes: `small` (48x48, 8 classes, 200 pre-training clips) or `default` (64x64, 12 classes, 2000).
    #[arg(long, default_value = "default")]
    preset: String,
    /// Number of pre-training clips (overrides the preset; the labelled splits keep their sizes).
    #[arg(long)]
    clips: Option<usize>,
    /// Labelled test clips per class (overrides the preset: a larger test split measures accuracy with less noise).
    #[arg(long)]
    test_per_class: Option<usize>,
    /// Retrieval clips (overrides the preset).
    #[arg(long)]
    retrieval_clips: Option<usize>,
    /// Also write a contact sheet of the classes to OUT/synthav_preview.png.
    #[arg(long)]
    preview: bool,
    /// Regenerate even when an identical complete dataset is already in OUT.
    #[arg(long)]
    force: bool,
    /// Print the generation summary as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let preset: Preset = args.preset.parse()?;
    let mut cfg = SynthConfig::preset(preset).with_seed(args.seed);
    if let Some(n) = args.clips {
        cfg = cfg.with_pretrain_clips(n);
    }
    if let Some(n) = args.test_per_class {
        cfg.test_per_class = n;
    }
    if let Some(n) = args.retrieval_clips {
        cfg.retrieval_clips = n;
    }
    cfg.validate()?;
    let started = Instant::now();
    // Errors name the file they concern (which lies inside OUT).
    let summary = generate(&cfg, &args.out, GenerateOptions { progress: !args.json, force: args.force })?;
    let seconds = started.elapsed().as_secs_f64();
    let preview = if args.preview {
        let path = args.out.join(PREVIEW_FILE);
        write_preview(&cfg, &path)?;
        Some(path)
    } else {
        None
    };
    let counts: Vec<(&str, usize)> = Split::ALL.iter().map(|&s| (s.name(), cfg.count(s))).collect();
    if args.json {
        let v = serde_json::json!({
            "out": args.out,
            "preset": preset.name(),
            "seed": cfg.seed,
            "classes": cfg.num_classes(),
            "splits": counts.iter().map(|(n, c)| (n.to_string(), *c)).collect::<std::collections::BTreeMap<_, _>>(),
            "clips_written": summary.written,
            "reused": summary.reused,
            "bytes": summary.bytes,
            "seconds": seconds,
            "preview": preview,
        });
        println!("{}", serde_json::to_string_pretty(&v).context("serialising the summary")?);
    } else {
        let splits: Vec<String> = counts.iter().map(|(n, c)| format!("{n} {c}")).collect();
        if summary.reused {
            println!(
                "SynthAV in {} is up to date (preset {}, seed {}); nothing written",
                args.out.display(),
                preset.name(),
                cfg.seed
            );
        } else {
            println!(
                "SynthAV: {} clips ({}) of {} classes, {}x{} at {} fps, {:.2} s, in {:.1} s ({:.1} MB) -> {}",
                summary.written,
                splits.join(", "),
                cfg.num_classes(),
                cfg.width,
                cfg.height,
                cfg.fps,
                cfg.duration(),
                seconds,
                summary.bytes as f64 / 1e6,
                args.out.display()
            );
        }
        if let Some(p) = preview {
            println!("preview: {}", p.display());
        }
    }
    Ok(())
}
