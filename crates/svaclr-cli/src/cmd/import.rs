//! `svaclr import`: convert a torchvision checkpoint (`.pth`, `.pt`, `.safetensors`) into our format (burnpack
//! `.bpk`), checking that every tensor finds its parameter and every parameter its tensor.

use std::path::PathBuf;

use svaclr_models::weights;
use svaclr_models::{SizePreset, TorchvisionArch, count_parameters};
use svaclr_train::device::parse_device;

#[derive(clap::Args)]
pub struct Args {
    /// Network: r2plus1d_18, r3d_18 or audio_resnet9.
    #[arg(long)]
    arch: TorchvisionArch,
    /// The torchvision state_dict (.pth, .pt or .safetensors).
    #[arg(long)]
    from: PathBuf,
    /// Output checkpoint (.bpk is appended when there is no extension).
    #[arg(long)]
    out: PathBuf,
    /// Width preset of the weights (torchvision's are full).
    #[arg(long, default_value = "full")]
    preset: SizePreset,
    /// Classes of the fc (400 for torchvision's Kinetics-400 checkpoints).
    #[arg(long, default_value_t = 400)]
    num_classes: usize,
    /// Device used while converting.
    #[arg(long, default_value = "flex")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (_, device) = parse_device(&args.device)?;
    let net = weights::load_torchvision(args.arch, &args.from, args.preset, args.num_classes, &device)?;
    let params = match &net {
        svaclr_models::TorchvisionNet::Video(v) => count_parameters(v),
        svaclr_models::TorchvisionNet::Audio(a) => count_parameters(a),
    };
    let written = weights::save_net(&net, &args.out)?;
    println!("imported {} ({params} parameters) from {} -> {}", args.arch, args.from.display(), written.display());
    Ok(())
}
