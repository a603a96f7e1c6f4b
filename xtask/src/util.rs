//! Small helpers shared by the tasks: running commands and locating the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (the folder holding the root Cargo.toml).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or_else(|| here.to_path_buf())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when relative), else `target/`.
pub fn target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    if target.is_absolute() { target } else { root().join(target) }
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

/// `cargo`, as invoked by the running cargo when there is one, without the variables `cargo run` set for xtask
/// itself ([`is_xtask_package_var`]). Build scripts may watch them (ring's does: `rerun-if-env-changed` on
/// `CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...), so a build started here and one started from a shell saw different
/// values and each rebuilt ring and what stands on it, LibTorch's bindings and all of Burn, for the other.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        if is_xtask_package_var(&key.to_string_lossy()) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The variables cargo sets for the package it runs (here xtask): `CARGO_PKG_*`, `CARGO_MANIFEST_*`,
/// `CARGO_CRATE_NAME`, `CARGO_BIN_NAME`, `CARGO_PRIMARY_PACKAGE`. Not `CARGO`, `CARGO_HOME` or `CARGO_TARGET_DIR`.
fn is_xtask_package_var(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(key, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE")
}

/// Whether this process runs as root (needed for apt-get).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Run a `cargo bench|test --no-run --message-format=json-render-diagnostics` command (from the workspace root, its
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_runs_without_xtasks_package_variables() {
        for key in ["CARGO_PKG_NAME", "CARGO_PKG_VERSION_PRE", "CARGO_MANIFEST_DIR", "CARGO_CRATE_NAME"] {
            assert!(is_xtask_package_var(key), "{key}");
        }
        for key in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_INCREMENTAL", "PATH"] {
            assert!(!is_xtask_package_var(key), "{key}");
        }
        // Under `cargo test` this process has CARGO_PKG_NAME = xtask: the command must not pass it on.
        let cmd = cargo();
        let removed: Vec<_> = cmd.get_envs().filter(|(_, v)| v.is_none()).map(|(k, _)| k.to_owned()).collect();
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some(), "cargo sets CARGO_PKG_NAME for tests");
        assert!(removed.iter().any(|k| k == "CARGO_PKG_NAME"), "{removed:?}");
    }
}
