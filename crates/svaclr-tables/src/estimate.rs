//! What a plan will cost, printed by `--dry-run`: the GPU-hours of its pre-training runs scaled from the paper's
//! one published figure, the disk its runs' checkpoints take, and a warning when a preset sized for GPUs is about
//! to run on a CPU.
//!
//! **GPU-hours.** The paper: "64 V100 GPUs ... around 30 hours for 100 epochs" (Sec. 3.1), 1920 GPU-hours. It does
//! not say on which dataset; we take it as 100 epochs of Kinetics-Sounds ([`REFERENCE_CLIPS`] training clips, the
//! dataset of its ablations) at its input size (30 frames of 112 px), so the estimate is an upper bound if the
//! figure was measured on the larger K400. A run costs
//!
//! ```text
//! 1920 x (epochs / 100) x (clips / 22000) x (frames x crop^2) / (30 x 112^2)   GPU-hours
//! ```
//!
//! with `clips` the pre-training split's size (the prepared manifest's count; Kinetics-Sounds' size when it is not
//! prepared yet), `epochs` the config's, or fewer when the preset's `max_steps` stops the run first, and the plan's
//! distinct runs summed (rows x seeds; runs shared between rows counted once). Model width is not scaled (every
//! paper row is the full R(2+1)D-18 or R3D-18); fine-tuning and retrieval are not counted (small beside it).
//!
//! **Disk.** Per run, [`CHECKPOINTS_KEPT`] checkpoints of [`checkpoint_bytes`] each: 4 bytes per weight and
//! BatchNorm statistic plus 4 per SGD momentum entry, from the model config's parameter counts.

use std::path::Path;

use svaclr_data::Manifest;
use svaclr_train::{CHECKPOINTS_KEPT, DeviceSpec, checkpoint_bytes};

use crate::error::TablesError;
use crate::plan::Plan;
use crate::spec::{Dataset, Preset, SizedFor, TableSpec};

/// The paper's pre-training cost: 30 h on 64 V100s for 100 epochs.
pub const PAPER_GPU_HOURS: f64 = 30.0 * PAPER_GPUS;
/// GPUs of the paper's runs.
pub const PAPER_GPUS: f64 = 64.0;
/// Training clips of Kinetics-Sounds (about 22k in GDT's and SeLaVi's copies; the count varies with what is still
/// downloadable): the dataset size [`PAPER_GPU_HOURS`] is taken for.
pub const REFERENCE_CLIPS: u64 = 22_000;
/// The paper's input: 30 frames of 112 x 112 px.
pub const REFERENCE_FRAMES: usize = 30;
/// See [`REFERENCE_FRAMES`].
pub const REFERENCE_CROP: usize = 112;

/// The pre-training split's size, and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Clips {
    pub count: u64,
    /// For people: `manifest.jsonl split 'train'`, or why the reference size is assumed.
    pub source: String,
}

/// One distinct pre-training run's share.
#[derive(Clone, Debug, PartialEq)]
pub struct RunCost {
    /// The row (0-based) and its name.
    pub row: usize,
    pub name: String,
    pub seed: u64,
    /// Epochs it runs (fewer than the config's when `max_steps` stops it first).
    pub epochs: f64,
    pub frames: usize,
    pub crop: usize,
    /// Clips per optimiser step.
    pub batch: usize,
    pub gpu_hours: f64,
    /// Bytes of one of its checkpoints.
    pub checkpoint_bytes: u64,
}

/// A plan's cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub clips: Clips,
    pub runs: Vec<RunCost>,
}

impl Estimate {
    /// Total GPU-hours of pre-training.
    pub fn gpu_hours(&self) -> f64 {
        self.runs.iter().map(|r| r.gpu_hours).sum()
    }

    /// Total bytes of the checkpoints the runs keep.
    pub fn disk_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.checkpoint_bytes * CHECKPOINTS_KEPT as u64).sum()
    }

    /// The lines `--dry-run` prints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "compute estimate (pre-training only; fine-tuning and retrieval are small beside it):\n  the paper: 30 h \
             on {PAPER_GPUS:.0} V100s per 100 epochs = {PAPER_GPU_HOURS:.0} GPU-hours, taken as 100 epochs of \
             Kinetics-Sounds ({REFERENCE_CLIPS} training clips) at {REFERENCE_FRAMES} frames of {REFERENCE_CROP} px \
             (the paper does not name the dataset; were it K400, this is an upper bound)\n  GPU-hours of a run = \
             {PAPER_GPU_HOURS:.0} x (epochs / 100) x (clips / {REFERENCE_CLIPS}) x (frames x crop^2) / \
             ({REFERENCE_FRAMES} x {REFERENCE_CROP}^2)\n  clips: {} ({})\n",
            self.clips.count, self.clips.source
        ));
        let mut rows: Vec<usize> = self.runs.iter().map(|r| r.row).collect();
        rows.dedup();
        for row in rows {
            let runs: Vec<&RunCost> = self.runs.iter().filter(|r| r.row == row).collect();
            let r = runs[0];
            if (r.batch as u64) > self.clips.count {
                s.push_str(&format!(
                    "  warning: row {} ({}) takes batches of {} clips, more than the split's {}: it cannot take a \
                     step\n",
                    row + 1,
                    r.name,
                    r.batch,
                    self.clips.count
                ));
            }
            s.push_str(&format!(
                "  row {} ({}), {} seed(s): {} epochs, {} frames of {} px: {} GPU-hours per run; checkpoint {}\n",
                row + 1,
                r.name,
                runs.len(),
                number(r.epochs),
                r.frames,
                r.crop,
                number(r.gpu_hours),
                bytes(r.checkpoint_bytes)
            ));
        }
        let total = self.gpu_hours();
        s.push_str(&format!(
            "  total: {} runs, {} GPU-hours (= {} h on {PAPER_GPUS:.0} V100s)\n",
            self.runs.len(),
            number(total),
            number(total / PAPER_GPUS)
        ));
        s.push_str(&format!(
            "disk: {} runs x {CHECKPOINTS_KEPT} checkpoints kept x (4 bytes per weight and BatchNorm statistic + 4 per \
             SGD momentum entry, from the parameter counts) = {}\n",
            self.runs.len(),
            bytes(self.disk_bytes())
        ));
        s
    }
}

/// The cost of `plan`'s pre-training runs (of `spec`'s rows), the pre-training split having `clips` clips.
pub fn estimate(spec: &TableSpec, plan: &Plan, clips: Clips) -> Result<Estimate, TablesError> {
    let mut sizes: Vec<(String, u64)> = Vec::new();
    let mut runs = Vec::new();
    for run in &plan.runs {
        let cfg = &run.config;
        let model = serde_json::to_string(&cfg.model).unwrap_or_default();
        let size = match sizes.iter().find(|(m, _)| *m == model) {
            Some((_, b)) => *b,
            None => {
                let b = checkpoint_bytes(&cfg.model)?;
                sizes.push((model, b));
                b
            }
        };
        let steps_per_epoch = clips.count / cfg.run.batch_size.max(1) as u64;
        let mut epochs = cfg.schedule.epochs as f64;
        if let Some(max) = cfg.run.max_steps {
            epochs = epochs.min(if steps_per_epoch == 0 { 0.0 } else { max as f64 / steps_per_epoch as f64 });
        }
        let (frames, crop) = (cfg.data.frames, cfg.data.crop);
        let input = (frames * crop * crop) as f64 / (REFERENCE_FRAMES * REFERENCE_CROP * REFERENCE_CROP) as f64;
        let gpu_hours = PAPER_GPU_HOURS * epochs / 100.0 * clips.count as f64 / REFERENCE_CLIPS as f64 * input;
        let name = spec.rows.get(run.row).map(|r| r.name.clone()).unwrap_or_default();
        runs.push(RunCost {
            row: run.row,
            name,
            seed: run.seed,
            epochs,
            frames,
            crop,
            batch: cfg.run.batch_size,
            gpu_hours,
            checkpoint_bytes: size,
        });
    }
    Ok(Estimate { clips, runs })
}

/// The size of `preset`'s pre-training split under `data_root`: the manifest's count when it reads, else the
/// SynthAV preset's clip count or Kinetics-Sounds' size, saying which.
pub fn pretrain_clips(preset: &Preset, data_root: &Path) -> Clips {
    let data = &preset.pretrain_data;
    let path = data_root.join(preset.dataset.dir()).join(&data.manifest);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match Manifest::load_split(&path, Some(&data.split)) {
        Ok(m) => Clips {
            count: m.split(&data.split).len() as u64,
            source: format!("{} split '{}'", path.display(), data.split),
        },
        Err(_) => match &preset.dataset {
            Dataset::Synthav { clips, .. } => {
                Clips { count: *clips, source: format!("{name} not generated yet: the SynthAV preset's clip count") }
            }
            Dataset::Prepared(_) => Clips {
                count: REFERENCE_CLIPS,
                source: format!("{name} split '{}' not prepared yet: Kinetics-Sounds' size assumed", data.split),
            },
        },
    }
}

/// A warning when `preset` (named `name`) is sized for GPUs and `device` names a CPU.
pub fn cpu_warning(name: &str, preset: &Preset, device: &str, gpu_hours: f64) -> Option<String> {
    let on_cpu = device.split(',').filter_map(|d| d.parse::<DeviceSpec>().ok()).any(|d| d.is_cpu());
    (preset.sized_for == SizedFor::Gpus && on_cpu).then(|| {
        format!(
            "warning: preset '{name}' has the paper's settings (about {} GPU-hours of pre-training) and --device \
             {device} is a CPU, orders of magnitude slower: check the path with --preset paper-tiny, and run this \
             one with --device cuda or tch-cuda",
            number(gpu_hours)
        )
    })
}

/// A number for people: three significant digits, no exponent.
fn number(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.1}"),
        a if a >= 0.01 => format!("{x:.2}"),
        _ => format!("{x:.1e}"),
    }
}

/// Bytes for people (decimal units).
fn bytes(b: u64) -> String {
    let b = b as f64;
    match b {
        _ if b >= 1e12 => format!("{:.1} TB", b / 1e12),
        _ if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        _ if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.0} kB", b / 1e3),
    }
}
