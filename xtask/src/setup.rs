//! `cargo xtask setup [--torch] [--mpi] [--gate] [--wgpu]`: install what the build and the tests need on a fresh
//! Debian machine.
//!
//! System packages come from Debian (installed with apt-get when running as root; otherwise the exact command is
//! printed and the task stops). `--torch` creates the PyTorch venv from PyPI; `--mpi` adds Open MPI; `--gate` adds
//! Valgrind and `gungraun-runner` (cargo install, the version of the gungraun crate) for the instruction-count gate;
//! `--wgpu` adds the Vulkan loader and Mesa's Vulkan drivers, among them lavapipe (Vulkan on the CPU) for the wgpu
//! tests.

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

/// The instruction-count gate (`--gate`): Valgrind, and binutils' readelf and nm for the LibTorch stubs.
pub const GATE_PACKAGES: &[&str] = &["valgrind", "binutils"];

/// The Vulkan loader and Mesa's Vulkan drivers (lavapipe among them: Vulkan on the CPU), for the `wgpu` backend and
/// its tests (`--wgpu`). A machine with a GPU needs its vendor's Vulkan driver instead of or beside these.
pub const WGPU_PACKAGES: &[&str] = &["libvulkan1", "mesa-vulkan-drivers"];

pub fn run(args: &[String]) -> Result<()> {
    let mut torch = false;
    let mut mpi = false;
    let mut gate = false;
    let mut wgpu = false;
    for a in args {
        match a.as_str() {
            "--torch" => torch = true,
            "--mpi" => mpi = true,
            "--gate" => gate = true,
            "--wgpu" => wgpu = true,
            other => bail!("setup: unknown option '{other}' (expected --torch, --mpi, --gate, --wgpu)"),
        }
    }
    let mut wanted: Vec<&str> = DEBIAN_PACKAGES.to_vec();
    if mpi {
        wanted.extend(MPI_PACKAGES);
    }
    if gate {
        wanted.extend(GATE_PACKAGES);
    }
    if wgpu {
        wanted.extend(WGPU_PACKAGES);
    }
    ensure_debian_packages(&wanted)?;
    if torch {
        crate::torch::ensure_venv()?;
    }
    if gate {
        crate::bench_gate::ensure_runner()?;
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
