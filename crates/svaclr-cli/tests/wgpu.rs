//! `--device wgpu` as a user runs it (feature `wgpu`; `cargo xtask test --wgpu` runs it on Mesa's lavapipe):
//! `svaclr info` names the adapter, README's smoke pre-training runs, and a machine without an adapter gets a
//! one-line error that says how to install one.

use std::process::Command;

mod common;
use common::{smoke_pretrain, summary, svaclr, workspace};

#[test]
fn info_names_the_adapter_and_runs_an_op_on_it() {
    let out = svaclr().args(["info", "--device", "wgpu"]).output().expect("run svaclr");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wgpu[:N]"), "{text}");
    // "devices found: flex (CPU), wgpu:0 (llvmpipe (LLVM 15.0.6, 256 bits); ...)" on lavapipe.
    assert!(text.contains("wgpu:0 ("), "{text}");
    assert!(text.contains("device check:         wgpu ("), "{text}");
}

/// README: `svaclr pretrain --device wgpu --config configs/pretrain/smoke.json --max-steps 4` (2 steps here).
#[test]
fn smoke_pretraining_runs_on_wgpu() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, run) = smoke_pretrain(tmp.path(), "wgpu", 2, |_| {});
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    assert_eq!(summary(&run)["device"], "wgpu");
}

/// With the Vulkan loader pointed at no driver and glvnd's EGL at no vendor library (wgpu falls back from Vulkan to
/// OpenGL, where Mesa's llvmpipe answers), as on a machine without either, `--device wgpu` fails in one line that
/// says what is missing and how to install lavapipe, before any work, and never with a panic.
#[test]
fn no_adapter_is_a_one_line_error_saying_how_to_install_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nowhere = tmp.path().join("no-such-icd.json");
    let hide = |cmd: &mut Command| {
        cmd.env("VK_ICD_FILENAMES", &nowhere)
            .env("VK_DRIVER_FILES", &nowhere)
            .env("__EGL_VENDOR_LIBRARY_FILENAMES", &nowhere);
    };
    let run = tmp.path().join("run");
    let mut info = svaclr();
    info.args(["info", "--device", "wgpu"]);
    let mut pretrain = svaclr();
    pretrain
        .args(["pretrain", "--device", "wgpu", "--config"])
        .arg(workspace().join("configs/pretrain/smoke.json"))
        .arg("--manifest")
        .arg(workspace().join("Cargo.toml"))
        .arg("--out")
        .arg(&run);
    for cmd in [&mut info, &mut pretrain] {
        hide(cmd);
        let out = cmd.output().expect("run svaclr");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // wgpu logs its own `error: XDG_RUNTIME_DIR is invalid ...` lines on a machine without a desktop session;
        // ours is the other `error:` line.
        let ours: Vec<&str> =
            err.lines().filter(|l| l.starts_with("error") && !l.contains("XDG_RUNTIME_DIR")).collect();
        assert_eq!(ours.len(), 1, "{err}");
        assert!(ours[0].contains("no wgpu adapter") && ours[0].contains("mesa-vulkan-drivers"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!run.exists(), "no run directory without a device");
}
