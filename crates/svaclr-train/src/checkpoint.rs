//! Checkpoints: model, optimiser, and the training position, written atomically; read back for resume and by
//! evaluation.
//!
//! Layout of a run directory:
//! ```text
//! RUN_DIR/config.json            the resolved PretrainConfig
//! RUN_DIR/metrics.jsonl          one line per optimiser step
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
use serde::{Deserialize, Serialize};
use svaclr_models::AvModel;

use crate::config::PretrainConfig;
use crate::error::TrainError;

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

/// Write `bytes` to `path` via a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Save a checkpoint and make it the newest. Keeps the newest `keep` checkpoints.
pub fn save(
    run_dir: &Path,
    model: &AvModel,
    optim: &ModuleOptimizer,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf, TrainError> {
    let root = run_dir.join("checkpoints");
    fs::create_dir_all(&root).map_err(io(&root))?;
    // The precise-BN model of the last step gets its own folder, which sorts after the plain one, so that it never
    // replaces a complete checkpoint in place.
    let name = format!("step-{:08}{}", state.step, if state.precise_bn { "-precise-bn" } else { "" });
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    svaclr_models::weights::save_model(model, &tmp.join("model.bpk"))?;
    optim
        .save(tmp.join("optim.bpk"))
        .map_err(|e| TrainError::Checkpoint { path: tmp.join("optim.bpk"), message: format!("{e:?}") })?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Other(e.to_string()))?;
    fs::write(tmp.join("state.json"), json).map_err(io(&tmp))?;
    let dst = root.join(&name);
    if dst.exists() {
        fs::remove_dir_all(&dst).map_err(io(&dst))?;
    }
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    let ptr = serde_json::to_vec(&LastPointer { dir: name.clone(), step: state.step })
        .map_err(|e| TrainError::Other(e.to_string()))?;
    write_atomic(&root.join("last.json"), &ptr)?;
    prune(&root, keep)?;
    Ok(dst)
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

/// The newest complete checkpoint folder of a run, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let ptr_path = run_dir.join("checkpoints").join("last.json");
    if !ptr_path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&ptr_path).map_err(io(&ptr_path))?;
    let ptr: LastPointer = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint { path: ptr_path.clone(), message: e.to_string() })?;
    let dir = run_dir.join("checkpoints").join(ptr.dir);
    if !dir.join("state.json").exists() {
        return Err(TrainError::Checkpoint { path: dir, message: "checkpoint folder is incomplete".into() });
    }
    Ok(Some(dir))
}

/// Read a checkpoint's training position.
pub fn read_state(dir: &Path) -> Result<TrainState, TrainError> {
    let p = dir.join("state.json");
    let text = fs::read_to_string(&p).map_err(io(&p))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint { path: p, message: e.to_string() })
}

/// Load a run's config and the model of its newest checkpoint (for evaluation).
pub fn load_pretrained(run_dir: &Path, device: &Device) -> Result<(PretrainConfig, AvModel), TrainError> {
    let cfg_path = run_dir.join("config.json");
    if !run_dir.is_dir() {
        return Err(TrainError::Checkpoint {
            path: run_dir.to_path_buf(),
            message: "run directory does not exist".into(),
        });
    }
    let text = fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let cfg: PretrainConfig = serde_json::from_str(&text)
        .map_err(|e| TrainError::Config { path: cfg_path.clone(), message: e.to_string() })?;
    let dir = latest(run_dir)?.ok_or_else(|| TrainError::Checkpoint {
        path: run_dir.to_path_buf(),
        message: "run has no checkpoint (was it pre-trained?)".into(),
    })?;
    let model = svaclr_models::weights::load_model(&cfg.model, &dir.join("model.bpk"), device)?;
    Ok((cfg, model))
}
