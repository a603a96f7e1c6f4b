//! The end-to-end side of the bench (`--e2e DIR`): the real pre-training loop of `svaclr pretrain`
//! ([`svaclr_train::launch`]: data loader threads decoding and augmenting clips, log-mel, the step, the monitor,
//! checkpoints, logging) on generated SynthAV clips, timed from its own `metrics.jsonl`.
//!
//! Two rates come from the same run, over the steps after the warm-up:
//! - loop clips/s: the clips of those steps over the wall time between the end of the last warm-up step and the end
//!   of the last step (`wall_s` of the records), so everything the loop waits for is counted;
//! - step clips/s: batch size over the median step time (each record's `clips_per_s`, which excludes the wait for
//!   the next batch).
//!
//! Their ratio says how much of the step rate the data path lets the loop keep on this machine (the loader's
//! threads share the cores with the step).

use std::path::Path;

use serde_json::{Value, json};
use svaclr_synth::{GenerateOptions, Preset, SynthConfig, generate};
use svaclr_train::distributed::DistributedMode;
use svaclr_train::{PretrainConfig, PretrainOptions, RunDir, launch};

/// SynthAV's Table 1 preset with `clips` pre-training clips in `dir` (generated once, reused when complete).
fn dataset(dir: &Path, clips: usize) -> Result<std::path::PathBuf, String> {
    let synth = SynthConfig::preset(Preset::Default).with_pretrain_clips(clips);
    generate(&synth, dir, GenerateOptions { progress: false, force: false }).map_err(|e| e.to_string())?;
    Ok(dir.join(svaclr_synth::Split::Pretrain.manifest_file()))
}

/// Run `warmup + steps` steps of `cfg`'s loop on `device` in `dir/run` over SynthAV in `dir/synthav`.
pub fn run(cfg: &PretrainConfig, device: &str, dir: &Path, warmup: usize, steps: usize) -> Result<Value, String> {
    let total = warmup + steps;
    // Two batches more than the steps: the loader never wraps into a second epoch inside the window.
    let clips = (total + 2) * cfg.run.batch_size;
    let mut cfg = cfg.clone();
    cfg.manifest = dataset(&dir.join("synthav"), clips)?;
    cfg.split = None;
    cfg.run.max_steps = Some(total);
    let run_dir = dir.join("run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    }
    let opts = PretrainOptions { resume: false, progress: false };
    launch(&cfg, &run_dir, device, DistributedMode::None, &opts).map_err(|e| e.to_string())?;
    let records = RunDir::new(&run_dir).read_metrics().map_err(|e| e.to_string())?;
    if records.len() != total {
        return Err(format!("the run logged {} steps, expected {total}", records.len()));
    }
    let window = &records[warmup.max(1) - 1..];
    let span = window[window.len() - 1].wall_s - window[0].wall_s;
    let clips_in_window = ((window.len() - 1) * cfg.run.batch_size) as f64;
    let loop_clips_per_s = clips_in_window / span.max(1e-9);
    let mut step_rates: Vec<f64> = window[1..].iter().map(|r| r.clips_per_s).collect();
    step_rates.sort_by(f64::total_cmp);
    let step_clips_per_s = step_rates[step_rates.len() / 2];
    Ok(json!({
        "device": device,
        "clips": clips,
        "loader_workers": cfg.run.workers,
        "loop_clips_per_s": loop_clips_per_s,
        "step_clips_per_s": step_clips_per_s,
        "loop_over_step": loop_clips_per_s / step_clips_per_s,
        "wall_s": records.iter().map(|r| r.wall_s).collect::<Vec<_>>(),
    }))
}
