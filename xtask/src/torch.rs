//! The one place that knows the PyTorch venv: where it lives, creating it from PyPI, its python (for the reference
//! scripts, parity and the benchmarks), and LibTorch's build environment for `--features tch` builds
//! ([`cargo_for_features`]).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::util;

/// The PyTorch version every torch-using command pins (tch 0.22 needs exactly this LibTorch).
pub const TORCH_VERSION: &str = "2.9.0";
/// Python packages of the torch venv.
pub const TORCH_PACKAGES: &[&str] =
    &["torch==2.9.0", "torchvision==0.24.0", "torchaudio==2.9.0", "safetensors", "numpy", "av"];

/// Where the torch venv lives: `SVACLR_TORCH_VENV`, else a per-user cache shared by every clone on the machine.
pub fn venv_path() -> PathBuf {
    if let Some(v) = std::env::var_os("SVACLR_TORCH_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/svaclr").join(format!("torch-{TORCH_VERSION}"))
}

/// The venv's python if the venv exists and imports the pinned torch with torchvision and torchaudio.
pub fn python_if_ready() -> Option<PathBuf> {
    let py = venv_path().join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", &format!(
            "import torch, torchvision, torchaudio, safetensors; assert torch.__version__.startswith('{TORCH_VERSION}')"
        )])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(py)
}

/// Whether a cargo `--features` list turns on LibTorch (`tch`, or `PKG/tch` for any package).
pub fn wants_tch(features: &str) -> bool {
    features.split([',', ' ']).any(|f| f == "tch" || f.ends_with("/tch"))
}

/// Make a cargo command build LibTorch code against the torch venv (creating the venv first when it is missing).
///
/// torch-sys finds LibTorch by running `python` when `VIRTUAL_ENV` is set and `LIBTORCH_USE_PYTORCH` is on, so the
/// venv's bin goes first on PATH. Nothing is needed at run time: every svaclr executable built with `tch` carries
/// the LibTorch directory as its run-time search path (build/torch_rpath.rs), so LD_LIBRARY_PATH is never set.
pub fn with_torch_env(cmd: &mut Command) -> Result<()> {
    ensure_venv()?;
    let venv = venv_path();
    let mut path = std::ffi::OsString::from(venv.join("bin"));
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    cmd.env("LIBTORCH_USE_PYTORCH", "1").env("VIRTUAL_ENV", &venv).env("PATH", path);
    Ok(())
}

/// `cargo` with the torch environment when `features` asks for `tch`, plain otherwise.
pub fn cargo_for_features(features: Option<&str>) -> Result<Command> {
    let mut cmd = util::cargo();
    if features.is_some_and(wants_tch) {
        with_torch_env(&mut cmd)?;
    }
    Ok(cmd)
}

/// The venv's python, creating the venv when it is missing.
pub fn python() -> Result<PathBuf> {
    match python_if_ready() {
        Some(py) => Ok(py),
        None => ensure_venv(),
    }
}

/// Create the torch venv from PyPI unless a usable one exists (it is cached per user, so reruns are instant).
pub fn ensure_venv() -> Result<PathBuf> {
    if let Some(py) = python_if_ready() {
        eprintln!("setup: torch venv ready at {}", venv_path().display());
        return Ok(py);
    }
    let venv = venv_path();
    eprintln!("setup: creating the torch venv at {} (torch {}; a few minutes)", venv.display(), TORCH_VERSION);
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)?;
    }
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    util::run(
        Command::new(venv.join("bin/pip")).args(["install", "-q", "--disable-pip-version-check"]).args(TORCH_PACKAGES),
    )?;
    python_if_ready().ok_or_else(|| {
        anyhow::anyhow!("setup: {} does not import torch {} after install", venv.display(), TORCH_VERSION)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tch_features_are_recognised() {
        assert!(wants_tch("tch"));
        assert!(wants_tch("svaclr-cli/tch,svaclr-cli/mpi"));
        assert!(wants_tch("mpi tch"));
        assert!(!wants_tch("cuda"));
        assert!(!wants_tch("svaclr-cli/mpi"));
        assert!(!wants_tch("notch"));
    }
}
