//! `svaclr export`: write weights as a torchvision `state_dict` in `.safetensors`, for PyTorch users:
//! `model.load_state_dict(safetensors.torch.load_file(FILE), strict=True)`.
//!
//! Two sources: a network with its fc (`--weights` is our `.bpk` from `svaclr import`, or a torchvision file), or,
//! with `--model-config`, a pre-training checkpoint of the two-tower model, from which the encoder of `--arch` is
//! written without an fc (load it after `model.fc = torch.nn.Identity()`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use svaclr_models::weights;
use svaclr_models::{ModelConfig, SizePreset, TorchvisionArch};
use svaclr_train::device::parse_device;

#[derive(clap::Args)]
pub struct Args {
    /// Network: r2plus1d_18, r3d_18 or audio_resnet9.
    #[arg(long)]
    arch: TorchvisionArch,
    /// Our checkpoint (.bpk) or a torchvision file.
    #[arg(long)]
    weights: PathBuf,
    /// Output file (.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Width preset of the weights.
    #[arg(long, default_value = "full")]
    preset: SizePreset,
    /// Classes of the fc.
    #[arg(long, default_value_t = 400)]
    num_classes: usize,
    /// The model config (JSON) of a pre-training checkpoint: export that checkpoint's encoder instead.
    #[arg(long)]
    model_config: Option<PathBuf>,
    /// Device used while converting.
    #[arg(long, default_value = "flex")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (_, device) = parse_device(&args.device)?;
    match &args.model_config {
        None => {
            let net = weights::load_net(args.arch, &args.weights, args.preset, args.num_classes, &device)?;
            weights::export_torchvision(&net, &args.out)?;
            println!("exported {} with fc from {} -> {}", args.arch, args.weights.display(), args.out.display());
        }
        Some(cfg_path) => {
            let text =
                std::fs::read_to_string(cfg_path).with_context(|| format!("{}: cannot read", cfg_path.display()))?;
            let cfg: ModelConfig =
                serde_json::from_str(&text).with_context(|| format!("{}: not a model config", cfg_path.display()))?;
            let model = weights::load_model(&cfg, &args.weights, &device)?;
            match args.arch.video_arch() {
                Some(a) if a != cfg.video_arch => {
                    bail!("--arch {} but {} describes a {} model", args.arch, cfg_path.display(), cfg.video_arch)
                }
                Some(_) => weights::export_video_encoder(&model.video, &args.out)?,
                None => weights::export_audio_encoder(&model.audio, &args.out)?,
            }
            println!(
                "exported the {} encoder ({} preset, no fc) of {} -> {}",
                args.arch,
                cfg.preset,
                args.weights.display(),
                args.out.display()
            );
        }
    }
    Ok(())
}
