//! Small helpers shared by the tasks: running commands and locating the workspace.

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

/// Run a `cargo bench --no-run --message-format=json-render-diagnostics` command (from the workspace root, its
/// diagnostics on stderr) and return the executable of the bench target `name`.
pub fn bench_executable(mut cmd: Command, name: &str) -> Result<PathBuf> {
    cmd.current_dir(root()).stderr(std::process::Stdio::inherit());
    eprintln!("$ {}", show(&cmd));
    let out = cmd.output().with_context(|| format!("cannot start {}", show(&cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed ({})", show(&cmd), out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo did not report the executable of bench `{name}`"))
}
