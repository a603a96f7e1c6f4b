//! The pre-training config: one JSON file, every field written out, unknown fields rejected, validated before work.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use svaclr_data::DataConfig;
use svaclr_loss::LossConfig;
use svaclr_models::ModelConfig;

use crate::error::TrainError;

/// Everything a pre-training run needs. Saved resolved (paths absolute) as `RUN_DIR/config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Seeds weight initialisation, data order, clip sampling and augmentation.
    pub seed: u64,
    /// Pre-training manifest (JSON Lines), relative to the config file or absolute.
    pub manifest: PathBuf,
    /// Split of the manifest to train on (`None`: every entry).
    pub split: Option<String>,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub optim: OptimConfig,
    pub schedule: ScheduleConfig,
    pub run: RunConfig,
}

/// SGD with momentum, PyTorch semantics (no dampening).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub momentum: f64,
    pub weight_decay: f64,
    /// Exempt BatchNorm parameters and biases from weight decay.
    pub no_decay_on_norm_and_bias: bool,
}

/// Linear warm-up then cosine decay, stepped every iteration (optimiser step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Learning rate at the first iteration.
    pub lr_start: f64,
    /// Learning rate at the end of warm-up (the peak).
    pub lr_peak: f64,
    /// Learning rate at the end of training.
    pub lr_end: f64,
    pub warmup_epochs: f64,
    pub epochs: usize,
}

/// Batch, accumulation, checkpoints and logging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Clips per optimiser step (the effective batch; every view of every clip is in the loss).
    pub batch_size: usize,
    /// Micro-batches per optimiser step. With k > 1 the loss still sees the whole effective batch's negatives:
    /// embeddings are computed without a graph, the loss and its gradient with respect to the embeddings are computed
    /// over the whole batch, then each micro-batch is re-run with a graph and back-propagated from those gradients
    /// (gradient caching). Memory holds one micro-batch's activations at a time.
    pub micro_batches: usize,
    /// Write a checkpoint every this many optimiser steps (and always at the end of an epoch).
    pub checkpoint_every: usize,
    /// Data loading threads.
    pub workers: usize,
    /// Stop after this many optimiser steps (`None`: run all epochs). For smoke tests and benchmarks.
    pub max_steps: Option<usize>,
    /// After the last step, re-estimate every BatchNorm's running statistics as the mean batch statistics of this
    /// many training batches through the final weights ("precise BN"; 0 keeps the moving averages). Short, fast
    /// schedules leave the moving averages far from the final weights' statistics, which makes inference-mode
    /// features (probes, retrieval) nearly constant. See `svaclr_models::norm`.
    #[serde(default)]
    pub precise_bn_batches: usize,
    /// Score this many fixed training clips (fixed views) with the loss on the initial weights and after every epoch,
    /// into `RUN_DIR/monitor.jsonl` (0: no monitor; a multiple of `batch_size / micro_batches`). Less noisy than the
    /// per-step statistics; changes nothing in the run (see [`crate::monitor`]). The set is decoded once and held in
    /// host memory (M clips x views x frames x crop^2 x 3 floats: small at the CPU presets, gigabytes at the paper's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub monitor_clips: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RunConfig {
    /// Clips in one training forward pass of a single-process run (one micro-batch).
    pub fn forward_clips(&self) -> usize {
        self.batch_size / self.micro_batches.max(1)
    }
}

impl PretrainConfig {
    /// Read a config file; relative paths in it are resolved against the file's folder. `manifest` replaces the
    /// config's dataset manifest (as `svaclr pretrain --manifest` does). The result is validated.
    pub fn load(path: &Path, manifest: Option<&Path>) -> Result<Self, TrainError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        let cfg = Self::parse(&text, path, manifest)?;
        cfg.check_manifest().map_err(|message| TrainError::Config { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// [`PretrainConfig::load`] without the filesystem: parse `text` (the contents of `path`, which errors name and
    /// relative paths are resolved against), replace the manifest, and check every field, but not that the
    /// manifest exists.
    pub fn parse(text: &str, path: &Path, manifest: Option<&Path>) -> Result<Self, TrainError> {
        let config_error = |message: String| TrainError::Config { path: path.to_path_buf(), message };
        let mut cfg: Self = serde_json::from_str(text).map_err(|e| config_error(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(m) = manifest {
            cfg.manifest = m.to_path_buf();
        } else if cfg.manifest.is_relative() {
            cfg.manifest = base.join(&cfg.manifest);
        }
        cfg.validate_fields().map_err(config_error)?;
        Ok(cfg)
    }

    /// Check everything that can be checked before any work: ranges, divisibility, the manifest's existence.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_fields()?;
        self.check_manifest()
    }

    fn check_manifest(&self) -> Result<(), String> {
        if !self.manifest.is_file() {
            return Err(format!("dataset manifest {} does not exist", self.manifest.display()));
        }
        Ok(())
    }

    /// The checks of [`PretrainConfig::validate`] that need no filesystem: ranges, divisibility, combinations.
    pub fn validate_fields(&self) -> Result<(), String> {
        self.data.validate().map_err(|e| e.to_string())?;
        self.model.validate().map_err(|e| e.to_string())?;
        self.loss.validate().map_err(|e| e.to_string())?;
        let r = &self.run;
        if r.batch_size < 2 {
            return Err(format!("run.batch_size = {} (contrastive learning needs at least 2 clips)", r.batch_size));
        }
        if r.micro_batches == 0 || r.batch_size % r.micro_batches != 0 {
            return Err(format!(
                "run.batch_size = {} is not divisible by run.micro_batches = {}",
                r.batch_size, r.micro_batches
            ));
        }
        if r.monitor_clips % r.forward_clips() != 0 {
            return Err(format!(
                "run.monitor_clips = {} is not a multiple of run.batch_size / run.micro_batches = {}",
                r.monitor_clips,
                r.forward_clips()
            ));
        }
        if r.checkpoint_every == 0 {
            return Err("run.checkpoint_every must be at least 1".into());
        }
        let s = &self.schedule;
        for (name, v) in [("lr_start", s.lr_start), ("lr_peak", s.lr_peak), ("lr_end", s.lr_end)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("schedule.{name} = {v} must be a finite non-negative number"));
            }
        }
        if s.epochs == 0 {
            return Err("schedule.epochs must be at least 1".into());
        }
        if !(s.warmup_epochs >= 0.0 && s.warmup_epochs <= s.epochs as f64) {
            return Err(format!(
                "schedule.warmup_epochs = {} must be within [0, epochs = {}]",
                s.warmup_epochs, s.epochs
            ));
        }
        if !(0.0..1.0).contains(&self.optim.momentum) || !(self.optim.weight_decay >= 0.0) {
            return Err("optim.momentum must be in [0, 1) and optim.weight_decay >= 0".into());
        }
        if self.model.video_input == svaclr_models::VideoInput::TemporalResidual && self.data.frames < 2 {
            return Err(format!(
                "model.video_input = temporal_residual needs data.frames >= 2 (a one-frame clip is all mean), got {}",
                self.data.frames
            ));
        }
        if self.loss.kind == svaclr_loss::LossKind::SoftInfoNce && self.data.views() != 2 {
            return Err("loss.kind = soft_info_nce needs speed co-augmentation (2 views): set data.speeds".into());
        }
        Ok(())
    }

    /// A short stable hash of what determines the results (SHA-256 of the resolved config's JSON, first 12 hex
    /// digits). Thread counts, the decoded-frame cache and the `max_steps` stop are left out: they do not change any
    /// step's numbers, so a run stopped early can be resumed with a larger budget.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let mut c = self.clone();
        c.run.max_steps = None;
        c.run.workers = 0;
        c.data = c.data.without_runtime_settings();
        let json = serde_json::to_string(&c).unwrap_or_default();
        let digest = sha2::Sha256::digest(json.as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}
