//! `svaclr forward`: eval-mode forward pass of a torchvision-shaped network on a tensor file.
//!
//! Reads tensor `input` from `--input` (`[B,3,T,H,W]` for the video nets, `[B,1,F,T]` for `audio_resnet9`), runs
//! the network with BatchNorm on its running statistics, and writes `features` (pooled, before the fc) and
//! `logits` to `--output`. `--weights` may be a torchvision checkpoint (`.pth`, `.pt`, `.safetensors`) or our own
//! (`.bpk`, from `svaclr import`). This is what `cargo xtask parity` compares against PyTorch.

use std::path::PathBuf;

use anyhow::Context;
use svaclr_models::weights;
use svaclr_models::{SizePreset, TorchvisionArch};
use svaclr_train::device::parse_device;

#[derive(clap::Args)]
pub struct Args {
    /// Network: r2plus1d_18, r3d_18 or audio_resnet9.
    #[arg(long)]
    arch: TorchvisionArch,
    /// Weights: torchvision .pth/.pt/.safetensors, or our .bpk.
    #[arg(long)]
    weights: PathBuf,
    /// A .safetensors file holding the tensor "input".
    #[arg(long)]
    input: PathBuf,
    /// Where to write "features" and "logits" (.safetensors).
    #[arg(long)]
    output: PathBuf,
    /// Width preset of the weights (torchvision's are full).
    #[arg(long, default_value = "full")]
    preset: SizePreset,
    /// Classes of the fc (torchvision's Kinetics-400 heads: 400).
    #[arg(long, default_value_t = 400)]
    num_classes: usize,
    /// Compute device: flex, cuda[:N], tch-cpu, tch-cuda[:N], wgpu[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (spec, device) = parse_device(&args.device)?;
    let net = weights::load_net(args.arch, &args.weights, args.preset, args.num_classes, &device)?.valid();
    let input = weights::read_tensor(&args.input, "input")?;
    let shape = input.shape().to_vec();
    let out = net.forward_data(input, &device).with_context(|| format!("{}", args.input.display()))?;
    let (features, logits) = (out.features.into_data(), out.logits.into_data());
    let (fs, ls) = (features.shape().to_vec(), logits.shape().to_vec());
    weights::write_tensors(&args.output, &[("features", features), ("logits", logits)])?;
    if args.json {
        let v = serde_json::json!({
            "arch": args.arch.name(), "weights": args.weights, "device": spec.to_string(), "input": shape,
            "features": fs, "logits": ls, "output": args.output,
        });
        println!("{}", serde_json::to_string(&v).context("serialising the summary")?);
    } else {
        println!(
            "{} on {spec}: input {shape:?} -> features {fs:?}, logits {ls:?}; wrote {}",
            args.arch,
            args.output.display()
        );
    }
    Ok(())
}
