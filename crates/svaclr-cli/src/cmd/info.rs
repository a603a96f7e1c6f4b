//! `svaclr info`: what this build can run on.

use anyhow::Context;
use burn::prelude::*;
use svaclr_train::device::{adapter_name, compiled_backends, libtorch_info, parse_device, visible_devices};

#[derive(clap::Args)]
pub struct Args {
    /// Also construct this device and run a small tensor op on it.
    #[arg(long)]
    device: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    let mut checked = None;
    if let Some(name) = &args.device {
        let (spec, device) = parse_device(name)?;
        // A tiny matmul proves the backend really runs, not just that it was compiled.
        let x = Tensor::<2>::ones([4, 4], &device);
        let s: f32 = x.clone().matmul(x).sum().into_scalar::<f32>();
        anyhow::ensure!((s - 64.0).abs() < 1e-3, "device {spec}: a 4x4 matmul gave {s}, expected 64");
        // A wgpu adapter names itself (lavapipe: "llvmpipe (LLVM ...)"), so the check says which one ran.
        checked = Some(match adapter_name(&device) {
            Some(name) => format!("{spec} ({name})"),
            None => spec.to_string(),
        });
    }
    let backends = compiled_backends();
    let devices = visible_devices();
    let torch = libtorch_info();
    if args.json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backends": backends,
            "devices": devices,
            "threads": threads,
            "libtorch": torch.as_ref().map(|t| serde_json::json!({
                "version": t.version, "lib_dir": t.lib_dir, "cuda_devices": t.cuda_devices,
            })),
            "checked_device": checked,
        });
        println!("{}", serde_json::to_string_pretty(&v).context("serialising info")?);
    } else {
        println!("svaclr {}", env!("CARGO_PKG_VERSION"));
        println!("backends compiled in: {}", backends.join(", "));
        println!("devices found:        {}", devices.join(", "));
        match &torch {
            Some(t) => println!(
                "LibTorch:             {} from {} ({} CUDA device(s) visible to it)",
                t.version, t.lib_dir, t.cuda_devices
            ),
            None => println!("LibTorch:             not in this build (feature `tch` off; see docs/backends.md)"),
        }
        println!("CPU threads (rayon):  {threads} (set RAYON_NUM_THREADS to change)");
        if let Some(d) = checked {
            println!("device check:         {d} ok");
        }
    }
    Ok(())
}
