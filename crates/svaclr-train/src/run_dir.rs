//! The run directory: the one type that knows the file names inside a pre-training run, and the checkpoints,
//! written atomically and read back for resume and by evaluation.
//!
//! Layout of a run directory:
//! ```text
//! RUN_DIR/config.json            the resolved PretrainConfig
//! RUN_DIR/metrics.jsonl          one line per optimiser step
//! RUN_DIR/monitor.jsonl          one line per monitor evaluation (run.monitor_clips > 0)
//! RUN_DIR/checkpoints/step-00000040/{model.bpk, optim.bpk, state.json}
//! RUN_DIR/checkpoints/last.json  which checkpoint is the newest complete one
//! RUN_DIR/summary.json, metrics.png   written at the end
//! ```
//! A checkpoint folder is written under a temporary name and renamed into place, and `last.json` is replaced by
//! rename only after that, so a kill at any moment leaves the previous checkpoint intact and findable.
//! The learning-rate schedule is a pure function of the step and the data order and augmentation are pure
//! functions of (seed, epoch, index), so the position (step, epoch, batch) is all the scheduler, data-order and RNG
//! state there is.

use std::fs;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use svaclr_models::AvModel;

use crate::config::PretrainConfig;
use crate::error::TrainError;
use crate::metrics::{MonitorRecord, PretrainSummary, StepRecord, read_records};

/// How many checkpoints a run keeps: the newest ones; older ones are deleted as new ones are written (the final
/// precise-BN checkpoint counts as one).
pub const CHECKPOINTS_KEPT: usize = 2;

/// About how many bytes one checkpoint of `model` takes: `model.bpk` holds every parameter and BatchNorm running
/// statistic, `optim.bpk` the SGD momentum of every learnable parameter, all as f32 (4 bytes); the records' own
/// framing and `state.json` are a few kB more. Counted from the model's shapes, without drawing any weight.
pub fn checkpoint_bytes(model: &svaclr_models::ModelConfig) -> Result<u64, TrainError> {
    let m = model.init(&Device::flex())?;
    let weights = m.num_params() as u64;
    let momentum = svaclr_models::count_parameters(&m) as u64;
    Ok(4 * (weights + momentum))
}

/// A pre-training run's folder. Only this type names the files inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

/// One complete checkpoint folder of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The model's weights (Burn record).
    pub fn model_file(&self) -> PathBuf {
        self.dir.join("model.bpk")
    }
    /// The optimiser's state (Burn record).
    pub fn optim_file(&self) -> PathBuf {
        self.dir.join("optim.bpk")
    }
    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The training position saved with it.
    pub fn read_state(&self) -> Result<TrainState, TrainError> {
        let p = self.state_file();
        let text = fs::read_to_string(&p).map_err(io(&p))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint { path: p, message: e.to_string() })
    }
}

impl RunDir {
    /// The run at `root` (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.json`: the resolved config.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// `metrics.jsonl`: one record per optimiser step.
    pub fn metrics_file(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `monitor.jsonl`: one record per monitor evaluation.
    pub fn monitor_file(&self) -> PathBuf {
        self.root.join("monitor.jsonl")
    }
    /// `summary.json`: written when the run has finished (a table's done marker).
    pub fn summary_file(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    /// `metrics.png`: the plot of the logs.
    pub fn plot_file(&self) -> PathBuf {
        self.root.join("metrics.png")
    }
    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Create the folder, refuse to overwrite a run there unless `resume`, write the resolved config (when
    /// `write`: rank 0 of a multi-process run) and return the newest checkpoint to resume from.
    pub fn open_for_training(
        &self,
        cfg: &PretrainConfig,
        resume: bool,
        write: bool,
    ) -> Result<Option<Checkpoint>, TrainError> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let existing = self.latest()?;
        if existing.is_some() && !resume {
            return Err(TrainError::Other(format!(
                "{}: already holds a run; pass --resume to continue it or choose another --out",
                self.root.display()
            )));
        }
        if write {
            let cfg_json = serde_json::to_vec_pretty(cfg).map_err(|e| TrainError::Other(e.to_string()))?;
            write_atomic(&self.config_file(), &cfg_json)?;
        }
        Ok(existing)
    }

    /// Save a checkpoint and make it the newest. Keeps the newest `keep` checkpoints.
    pub fn save_checkpoint(
        &self,
        model: &AvModel,
        optim: &ModuleOptimizer,
        state: &TrainState,
        keep: usize,
    ) -> Result<Checkpoint, TrainError> {
        let root = self.checkpoints();
        fs::create_dir_all(&root).map_err(io(&root))?;
        // The precise-BN model of the last step gets its own folder, which sorts after the plain one, so that it
        // never replaces a complete checkpoint in place.
        let name = format!("step-{:08}{}", state.step, if state.precise_bn { "-precise-bn" } else { "" });
        let tmp = Checkpoint { dir: root.join(format!(".{name}.tmp")) };
        if tmp.dir.exists() {
            fs::remove_dir_all(&tmp.dir).map_err(io(&tmp.dir))?;
        }
        fs::create_dir_all(&tmp.dir).map_err(io(&tmp.dir))?;
        svaclr_models::weights::save_model(model, &tmp.model_file())?;
        optim
            .save(tmp.optim_file())
            .map_err(|e| TrainError::Checkpoint { path: tmp.optim_file(), message: format!("{e:?}") })?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Other(e.to_string()))?;
        fs::write(tmp.state_file(), json).map_err(io(&tmp.dir))?;
        let dst = root.join(&name);
        if dst.exists() {
            fs::remove_dir_all(&dst).map_err(io(&dst))?;
        }
        fs::rename(&tmp.dir, &dst).map_err(io(&dst))?;
        let ptr = serde_json::to_vec(&LastPointer { dir: name.clone(), step: state.step })
            .map_err(|e| TrainError::Other(e.to_string()))?;
        write_atomic(&root.join("last.json"), &ptr)?;
        prune(&root, keep)?;
        Ok(Checkpoint { dir: dst })
    }

    /// The newest complete checkpoint of the run, if any.
    pub fn latest(&self) -> Result<Option<Checkpoint>, TrainError> {
        let ptr_path = self.checkpoints().join("last.json");
        if !ptr_path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&ptr_path).map_err(io(&ptr_path))?;
        let ptr: LastPointer = serde_json::from_str(&text)
            .map_err(|e| TrainError::Checkpoint { path: ptr_path.clone(), message: e.to_string() })?;
        let ckpt = Checkpoint { dir: self.checkpoints().join(ptr.dir) };
        if !ckpt.state_file().exists() {
            return Err(TrainError::Checkpoint { path: ckpt.dir, message: "checkpoint folder is incomplete".into() });
        }
        Ok(Some(ckpt))
    }

    /// The run's resolved config (no weights are read).
    pub fn read_config(&self) -> Result<PretrainConfig, TrainError> {
        if !self.root.is_dir() {
            return Err(TrainError::Checkpoint {
                path: self.root.clone(),
                message: "not a pre-training run directory (it does not exist)".into(),
            });
        }
        read_json(&self.config_file(), |path, message| TrainError::Config { path, message })
    }

    /// The run's config and the model of its newest checkpoint (for evaluation).
    pub fn load_pretrained(&self, device: &Device) -> Result<(PretrainConfig, AvModel), TrainError> {
        let cfg = self.read_config()?;
        let ckpt = self.latest()?.ok_or_else(|| TrainError::Checkpoint {
            path: self.root.clone(),
            message: "run has no checkpoint (was it pre-trained?)".into(),
        })?;
        let model = svaclr_models::weights::load_model(&cfg.model, &ckpt.model_file(), device)?;
        Ok((cfg, model))
    }

    /// Every step record of the run.
    pub fn read_metrics(&self) -> Result<Vec<StepRecord>, TrainError> {
        read_records(&self.metrics_file(), usize::MAX)
    }

    /// Every monitor record of the run.
    pub fn read_monitor(&self) -> Result<Vec<MonitorRecord>, TrainError> {
        read_records(&self.monitor_file(), usize::MAX)
    }

    /// The summary of a finished run.
    pub fn read_summary(&self) -> Result<PretrainSummary, TrainError> {
        read_json(&self.summary_file(), |path, message| TrainError::Checkpoint { path, message })
    }

    /// The end of a run: `summary.json` and the plot of its logs.
    pub fn write_end(
        &self,
        summary: &PretrainSummary,
        records: &[StepRecord],
        monitor: &[MonitorRecord],
        steps_per_epoch: usize,
    ) -> Result<(), TrainError> {
        let json = serde_json::to_vec_pretty(summary).map_err(|e| TrainError::Other(e.to_string()))?;
        write_atomic(&self.summary_file(), &json)?;
        crate::plot::plot_run(records, monitor, steps_per_epoch, &self.plot_file())
    }
}

fn read_json<T: DeserializeOwned>(path: &Path, bad: impl Fn(PathBuf, String) -> TrainError) -> Result<T, TrainError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| bad(path.to_path_buf(), e.to_string()))
}

/// Where training stands after the last completed optimiser step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Epoch of the next batch.
    pub epoch: usize,
    /// Index (within `epoch`) of the next batch.
    pub batch: usize,
    /// Config hash of the run (resume refuses a different config).
    pub config_hash: String,
    /// The BatchNorm running statistics were re-estimated after the last step (precise BN).
    #[serde(default)]
    pub precise_bn: bool,
}

#[derive(Serialize, Deserialize)]
struct LastPointer {
    dir: String,
    step: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Write `bytes` to `path` via a temporary file and a rename (a reader never sees a partial file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn prune(root: &Path, keep: usize) -> Result<(), TrainError> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .map_err(io(root))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-")))
        .collect();
    dirs.sort();
    let n = dirs.len();
    for d in dirs.into_iter().take(n.saturating_sub(keep.max(1))) {
        fs::remove_dir_all(&d).map_err(io(&d))?;
    }
    Ok(())
}
