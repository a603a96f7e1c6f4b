//! `cargo xtask setup [--torch] [--mpi]`: install what the build and the tests need on a fresh Debian machine.
//!
//! System packages come from Debian (installed with apt-get when running as root; otherwise the exact command is
//! printed and the task stops). `--torch` creates the PyTorch venv from PyPI; `--mpi` adds Open MPI.

use std::process::Command;

use anyhow::{Result, bail};

use crate::util;

/// FFmpeg's seven dev packages (video-rs -> ffmpeg-next links all of them), libclang for bindgen, pkg-config, the
/// font libraries plotters links for text in figures, and the ffmpeg command-line tool, which the tests use to write
/// media in real encodings (and to check our rotation handling against its own).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "libavcodec-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswscale-dev",
    "libswresample-dev",
    "libavfilter-dev",
    "libavdevice-dev",
    "libclang-dev",
    "pkg-config",
    "libfontconfig1-dev",
    "libfreetype-dev",
    "python3-venv",
    "ffmpeg",
];

/// Open MPI, for multi-process training (`--mpi`).
pub const MPI_PACKAGES: &[&str] = &["libopenmpi-dev", "openmpi-bin"];

pub fn run(args: &[String]) -> Result<()> {
    let mut torch = false;
    let mut mpi = false;
    for a in args {
        match a.as_str() {
            "--torch" => torch = true,
            "--mpi" => mpi = true,
            other => bail!("setup: unknown option '{other}' (expected --torch, --mpi)"),
        }
    }
    let mut wanted: Vec<&str> = DEBIAN_PACKAGES.to_vec();
    if mpi {
        wanted.extend(MPI_PACKAGES);
    }
    ensure_debian_packages(&wanted)?;
    if torch {
        ensure_torch_venv()?;
    }
    Ok(())
}

fn is_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Install the missing packages, or say exactly how to.
pub fn ensure_debian_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: system packages present ({})", pkgs.len());
        return Ok(());
    }
    let install = format!("apt-get install -y --no-install-recommends {}", missing.join(" "));
    if !util::is_root() {
        bail!("setup: missing Debian packages; run as root:\n  apt-get update && {install}");
    }
    eprintln!("setup: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").arg("update").arg("-qq"))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}

/// Create the torch venv from PyPI unless a usable one exists (it is cached per user, so reruns are instant).
pub fn ensure_torch_venv() -> Result<std::path::PathBuf> {
    if let Some(py) = util::torch_python() {
        eprintln!("setup: torch venv ready at {}", util::torch_venv_path().display());
        return Ok(py);
    }
    let venv = util::torch_venv_path();
    eprintln!("setup: creating the torch venv at {} (torch {}; a few minutes)", venv.display(), util::TORCH_VERSION);
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)?;
    }
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    util::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(util::TORCH_PACKAGES),
    )?;
    util::torch_python().ok_or_else(|| {
        anyhow::anyhow!("setup: {} does not import torch {} after install", venv.display(), util::TORCH_VERSION)
    })
}
