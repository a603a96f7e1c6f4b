//! What the CLI's integration tests share: the binary, the workspace, SynthAV's small smoke data, a smoke
//! pre-training run on a device, and a run's loss curve. Each test file uses its own subset.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `svaclr` binary this test build made.
pub fn svaclr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svaclr"))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `svaclr synth --preset small --clips 64 --seed 5` into `DIR/synth` (the data smoke.json is sized for).
pub fn smoke_data(dir: &Path) -> PathBuf {
    let data = dir.join("synth");
    let st = svaclr()
        .args(["synth", "--preset", "small", "--clips", "64", "--seed", "5", "--out"])
        .arg(&data)
        .stderr(Stdio::null())
        .status()
        .expect("synth");
    assert!(st.success());
    data
}

/// README's smoke pre-training, `svaclr pretrain --quiet --device DEVICE --max-steps STEPS --config
/// configs/pretrain/smoke.json`, on the smoke data in `dir` (see [`smoke_data`]), into `dir/run`, with `edit` applied
/// to the command (an environment variable, say). Returns the process's output and the run folder.
pub fn smoke_pretrain(dir: &Path, device: &str, steps: usize, edit: impl FnOnce(&mut Command)) -> (Output, PathBuf) {
    let data = smoke_data(dir);
    let run = dir.join("run");
    let mut cmd = svaclr();
    cmd.args(["pretrain", "--quiet", "--device", device, "--max-steps", &steps.to_string(), "--config"])
        .arg(workspace().join("configs/pretrain/smoke.json"))
        .arg("--manifest")
        .arg(data.join("pretrain.jsonl"))
        .arg("--out")
        .arg(&run);
    edit(&mut cmd);
    (cmd.output().expect("run svaclr"), run)
}

/// The `summary.json` a finished run wrote.
pub fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("summary")).expect("json")
}

/// (step, loss) of every line of a run's metrics log.
pub fn losses(run: &Path) -> Vec<(usize, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["step"].as_u64().unwrap_or(0) as usize, v["loss"].as_f64().unwrap_or(f64::NAN)))
        .collect()
}
