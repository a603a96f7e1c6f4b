//! `svaclr info`: what this build can run on.

use anyhow::Context;
use burn::prelude::*;
use svaclr_train::device::{compiled_backends, parse_device, visible_devices};

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
        checked = Some(spec.to_string());
    }
    let backends = compiled_backends();
    let devices = visible_devices();
    if args.json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backends": backends,
            "devices": devices,
            "threads": threads,
            "checked_device": checked,
        });
        println!("{}", serde_json::to_string_pretty(&v).context("serialising info")?);
    } else {
        println!("svaclr {}", env!("CARGO_PKG_VERSION"));
        println!("backends compiled in: {}", backends.join(", "));
        println!("devices found:        {}", devices.join(", "));
        println!("CPU threads (rayon):  {threads} (set RAYON_NUM_THREADS to change)");
        if let Some(d) = checked {
            println!("device check:         {d} ok");
        }
    }
    Ok(())
}
