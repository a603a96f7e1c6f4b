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
