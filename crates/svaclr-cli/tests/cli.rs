//! The `svaclr` binary as a user runs it: one-line errors, and pre-training that survives `kill -9`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn svaclr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svaclr"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn info_runs_and_missing_backend_is_a_one_line_error() {
    let out = svaclr().arg("info").output().expect("run svaclr");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("backends compiled in: flex"), "{text}");
    if !cfg!(feature = "tch") {
        let out = svaclr().args(["info", "--device", "tch-cpu"]).output().expect("run svaclr");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("tch"), "{err}");
    }
}

fn losses(run: &Path) -> Vec<(usize, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["step"].as_u64().unwrap_or(0) as usize, v["loss"].as_f64().unwrap_or(f64::NAN)))
        .collect()
}

#[test]
fn kill_9_then_resume_continues_the_same_loss_curve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("synth");
    let st = svaclr()
        .args(["synth", "--preset", "small", "--clips", "64", "--seed", "5", "--out"])
        .arg(&data)
        .stderr(Stdio::null())
        .status()
        .expect("synth");
    assert!(st.success());
    let manifest = data.join("pretrain.jsonl");
    let cfg = workspace().join("configs/pretrain/smoke.json");
    let steps = "6";
    let pretrain = |out: &Path, resume: bool| {
        let mut c = svaclr();
        c.args(["pretrain", "--quiet", "--max-steps", steps, "--config"]).arg(&cfg).arg("--manifest").arg(&manifest);
        c.arg("--out").arg(out);
        if resume {
            c.arg("--resume");
        }
        c
    };
    // The uninterrupted reference.
    let full = tmp.path().join("full");
    assert!(pretrain(&full, false).stdout(Stdio::null()).status().expect("pretrain").success());
    let reference = losses(&full);
    assert_eq!(reference.len(), 6);

    // Kill -9 as soon as the step-2 checkpoint exists and step 3 has started, then resume.
    let cut = tmp.path().join("cut");
    let mut child = pretrain(&cut, false).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let t0 = Instant::now();
    loop {
        let ckpt = cut.join("checkpoints/last.json");
        if ckpt.exists() && losses(&cut).len() >= 3 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) || child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = child.try_wait().ok().flatten().is_none();
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    assert!(killed, "the run finished before it could be killed; the test needs a longer run");
    assert!(losses(&cut).len() < 6);
    let out = pretrain(&cut, true).output().expect("resume");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(losses(&cut), reference, "resumed curve must equal the uninterrupted one");
}

#[test]
fn pretrain_with_a_missing_config_is_a_one_line_error() {
    let out = svaclr()
        .args(["pretrain", "--config", "/nonexistent/cfg.json", "--out", "/tmp/never"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/cfg.json"), "{err}");
}
