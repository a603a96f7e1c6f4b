//! `cargo xtask build [--debug] [--features F]`: build the `svaclr` binary (release by default) with what it needs.
//!
//! Installs the Debian packages first (with `--features wgpu` also the Vulkan loader and lavapipe, see `setup`); with
//! `--features tch` also the PyTorch venv (`~/.cache/svaclr/torch-2.9.0` or
//! `SVACLR_TORCH_VENV`), and builds against its LibTorch. The binary finds LibTorch at run time by itself.

use anyhow::{Context, Result, bail};

use crate::{parity, setup, torch, util};

pub fn run(args: &[String]) -> Result<()> {
    let mut release = true;
    let mut features: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => release = false,
            "--release" => release = true,
            "--features" => features = Some(it.next().cloned().context("build: --features needs a value")?),
            other => bail!("build: unknown option '{other}' (expected --debug, --features F)"),
        }
    }
    // `--features wgpu` brings the Vulkan loader and lavapipe, as `cargo xtask setup --wgpu` does.
    let wgpu =
        features.as_deref().is_some_and(|f| f.split(',').any(|f| f.trim().trim_start_matches("svaclr-cli/") == "wgpu"));
    let setup_args: Vec<String> = if wgpu { vec!["--wgpu".to_string()] } else { Vec::new() };
    setup::run(&setup_args)?;
    let mut cmd = torch::cargo_for_features(features.as_deref())?;
    cmd.args(["build", "-p", "svaclr-cli", "--bin", "svaclr"]);
    if release {
        cmd.arg("--release");
    }
    if let Some(f) = &features {
        cmd.args(["--features", f]);
    }
    util::run(&mut cmd)?;
    eprintln!("build: {} (`svaclr info` lists its backends)", parity::svaclr_binary(release).display());
    Ok(())
}
