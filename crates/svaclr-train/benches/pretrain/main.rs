//! Pre-training throughput and peak memory on burn-flex or LibTorch (the Rust half of `cargo xtask bench pretrain`).
//!
//!     cargo bench -p svaclr-train --bench pretrain [--features tch] -- [--device flex|tch-cpu] [--config FILE]
//!         [--warmup N] [--steps N] [--json PATH] [--e2e DIR]
//!
//! Runs the training step of `svaclr pretrain` ([`svaclr_train::step::step_gradients`] then the SGD step of
//! [`svaclr_train::trainer::build_optimizer`]) on synthetic in-memory batches of the config's shape (batch size,
//! views, frames, crop, mel bins and frames), so that video decoding and augmentation are not measured: the PyTorch
//! side (`scripts/bench/pretrain_torch.py`) gets the same kind of input. The learning rate is the config's peak.
//! Prints one line and, with `--json`, writes the per-step times, steady-state clips/s (batch size over the median
//! time of the steps after `--warmup` steps; also the mean-based figure), the resident set size before the first
//! step and its peak (`VmRSS`, `VmHWM` from /proc/self/status). Thread count: the rayon pool (set
//! RAYON_NUM_THREADS) on flex, LibTorch's intra-op pool (set OMP_NUM_THREADS) on `tch-cpu`.
//!
//! `--e2e DIR` then also times the real loop of `svaclr pretrain` on SynthAV clips generated in DIR ([`e2e`]) and
//! adds its rates under `"e2e"` in the JSON.

mod e2e;

use std::path::{Path, PathBuf};
use std::time::Instant;

use svaclr_data::{ClipSpec, HostBatch};
use svaclr_train::PretrainConfig;
use svaclr_train::step::step_gradients;
use svaclr_train::trainer::build_optimizer;

const DEFAULT_CONFIG: &str = "configs/pretrain/synth_s14.json";

struct Args {
    device: String,
    config: PathBuf,
    warmup: usize,
    steps: usize,
    json: Option<PathBuf>,
    e2e: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a =
        Args { device: "flex".into(), config: root.join(DEFAULT_CONFIG), warmup: 2, steps: 8, json: None, e2e: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--device" => a.device = value()?,
            "--config" => a.config = PathBuf::from(value()?),
            "--warmup" => a.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--steps" => a.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "--e2e" => a.e2e = Some(PathBuf::from(value()?)),
            "--bench" => {} // cargo bench passes this to harness = false benches
            other => {
                return Err(format!(
                    "unknown option '{other}' (expected --device, --config, --warmup, --steps, --json, --e2e)"
                ));
            }
        }
    }
    if a.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    Ok(a)
}

/// The config without its dataset: the bench needs only the shapes, the model, the loss and the optimiser.
fn load_config(path: &Path) -> Result<PretrainConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg: PretrainConfig =
        serde_json::from_str(&text).map_err(|e| format!("{}: bad config: {e}", path.display()))?;
    cfg.data.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    cfg.model.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    cfg.loss.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// A batch of the config's shape filled with uniform noise in [-1, 1) (a fixed xorshift stream per `seed`).
fn synthetic_batch(cfg: &PretrainConfig, seed: u64) -> HostBatch {
    let b = cfg.run.batch_size;
    let views = cfg.data.views();
    let [c, t, h, w] = cfg.data.video_view_shape();
    let [ac, f, ts] = cfg.data.audio_view_shape();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    };
    let video = (0..views).map(|_| noise(b * c * t * h * w)).collect();
    let audio = (0..views).map(|_| noise(b * ac * f * ts)).collect();
    let specs = (0..b)
        .map(|i| ClipSpec {
            video_id: format!("synthetic-{i}"),
            index: i,
            start_sec: 0.0,
            speed_video: 1.0,
            speed_audio: 1.0,
            epoch: 0,
            seed,
        })
        .collect();
    HostBatch { video, audio, video_shape: [b, c, t, h, w], audio_shape: [b, ac, f, ts], specs, labels: vec![None; b] }
}

/// A field of /proc/self/status in MiB (`VmRSS`, `VmHWM`); `None` off Linux.
fn status_mib(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The threads the step runs on: rayon's pool on flex, LibTorch's intra-op pool on LibTorch.
fn threads(spec: &svaclr_train::device::DeviceSpec) -> Option<usize> {
    match spec {
        #[cfg(feature = "tch")]
        svaclr_train::device::DeviceSpec::TchCpu => usize::try_from(tch::get_num_threads()).ok(),
        _ => {
            let _ = spec;
            Some(rayon::current_num_threads())
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("pretrain bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let cfg = load_config(&args.config)?;
    let (spec, device) = svaclr_train::device::parse_device(&args.device).map_err(|e| e.to_string())?;
    let device = device.autodiff();
    let side = format!("burn-{spec}");
    device.seed(cfg.seed);
    let mut model = cfg.model.init(&device).map_err(|e| e.to_string())?;
    let params = svaclr_models::count_parameters(&model);
    let mut optim = build_optimizer(&cfg);
    let views = cfg.data.views();
    // Two different batches, alternated, so that no step sees exactly the input of the previous one.
    let batches = [synthetic_batch(&cfg, 1), synthetic_batch(&cfg, 2)];
    let rss_before = status_mib("VmRSS:");
    let lr = cfg.schedule.lr_peak;
    let (mut step_ms, mut losses) = (Vec::new(), Vec::new());
    for s in 0..args.warmup + args.steps {
        let t0 = Instant::now();
        let (grads, loss, _stats) =
            step_gradients(&cfg, &model, &batches[s % 2], views, &device, &svaclr_train::distributed::Single)
                .expect("training step");
        model = optim.step(lr, model, grads);
        // Read one parameter back so that the step's work is finished before the clock stops (flex is eager, but
        // this keeps the measurement honest on lazy backends too).
        let _ = model.proj_video.fc2.weight.val().slice([0..1, 0..1]).into_scalar::<f32>();
        step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        losses.push(loss);
    }
    let peak = status_mib("VmHWM:");
    let steady = &step_ms[args.warmup..];
    let mut sorted = steady.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median_ms = sorted[sorted.len() / 2];
    // Clips per second of the median measured step: robust to a step slowed down by other work on the machine.
    let clips_per_s = cfg.run.batch_size as f64 / (median_ms / 1e3);
    let mean_clips_per_s = (cfg.run.batch_size * steady.len()) as f64 / (steady.iter().sum::<f64>() / 1e3);
    let threads = threads(&spec);
    println!(
        "{side}: batch {} x {} views, {} params: {:.1} clips/s (median step {:.0} ms over {} steps \
         after {} warm-up), RSS {:.0} MiB before the first step, peak {:.0} MiB, {} threads",
        cfg.run.batch_size,
        views,
        params,
        clips_per_s,
        median_ms,
        steady.len(),
        args.warmup,
        rss_before.unwrap_or(f64::NAN),
        peak.unwrap_or(f64::NAN),
        threads.map_or("?".to_string(), |t| t.to_string()),
    );
    let mut doc = serde_json::json!({
        "side": side,
        "device": spec.to_string(),
        "config": args.config.display().to_string(),
        "batch_size": cfg.run.batch_size,
        "views": views,
        "video_shape": batches[0].video_shape,
        "audio_shape": batches[0].audio_shape,
        "loss": cfg.loss,
        "lr": lr,
        "momentum": cfg.optim.momentum,
        "weight_decay": cfg.optim.weight_decay,
        "no_decay_on_norm_and_bias": cfg.optim.no_decay_on_norm_and_bias,
        "model": cfg.model,
        "params": params,
        "warmup": args.warmup,
        "steps": steady.len(),
        "step_ms": step_ms,
        "median_step_ms": median_ms,
        "clips_per_s": clips_per_s,
        "mean_clips_per_s": mean_clips_per_s,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak,
        "threads": threads,
        "losses": losses,
    });
    if let Some(dir) = &args.e2e {
        let mut e2e = e2e::run(&cfg, &args.device, dir, args.warmup, args.steps)?;
        let loop_rate = e2e["loop_clips_per_s"].as_f64().unwrap_or(f64::NAN);
        // Against the step on in-memory batches measured above: what the data path costs the loop, both the wait
        // for batches and the cores its threads take from the step.
        e2e["loop_over_bench_step"] = serde_json::json!(loop_rate / clips_per_s);
        println!(
            "{side}, the whole loop on SynthAV: {loop_rate:.1} clips/s, its own steps {:.1} clips/s (loop / its steps \
             {:.2}, loop / the in-memory step above {:.2})",
            e2e["step_clips_per_s"].as_f64().unwrap_or(f64::NAN),
            e2e["loop_over_step"].as_f64().unwrap_or(f64::NAN),
            loop_rate / clips_per_s,
        );
        doc["e2e"] = e2e;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
