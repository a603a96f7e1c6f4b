//! Small helpers shared by the tasks: running commands, locating the workspace and the PyTorch venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (the folder holding the root Cargo.toml).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or_else(|| here.to_path_buf())
}

/// Run a command in the workspace root, echoing it, and fail if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd.current_dir(root()).status().with_context(|| format!("cannot start {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", show(cmd));
    }
    Ok(())
}

/// Render a command for messages.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `cargo`, as invoked by the running cargo when there is one.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Whether this process runs as root (needed for apt-get).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The PyTorch version every torch-using command pins (tch 0.22 needs exactly this LibTorch).
pub const TORCH_VERSION: &str = "2.9.0";
/// Python packages of the torch venv.
pub const TORCH_PACKAGES: &[&str] =
    &["torch==2.9.0", "torchvision==0.24.0", "torchaudio==2.9.0", "safetensors", "numpy", "av"];

/// Where the torch venv lives: `SVACLR_TORCH_VENV`, else a per-user cache shared by every clone on the machine.
pub fn torch_venv_path() -> PathBuf {
    if let Some(v) = std::env::var_os("SVACLR_TORCH_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/svaclr").join(format!("torch-{TORCH_VERSION}"))
}

/// The venv's python if the venv exists and imports the pinned torch with torchvision and torchaudio.
pub fn torch_python() -> Option<PathBuf> {
    let py = torch_venv_path().join("bin/python");
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
    crate::setup::ensure_torch_venv()?;
    let venv = torch_venv_path();
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
    let mut cmd = cargo();
    if features.is_some_and(wants_tch) {
        with_torch_env(&mut cmd)?;
    }
    Ok(cmd)
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
