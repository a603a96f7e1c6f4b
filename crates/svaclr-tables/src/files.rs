//! The files the pipeline reads from its steps' folders: a pre-training run's through svaclr-train's [`RunDir`]
//! (the one type that names them) and an evaluation's `results.json` (svaclr-eval's).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use svaclr_eval::report::RESULTS_JSON;
use svaclr_eval::{FinetuneResult, RetrievalResult};
use svaclr_train::{PretrainSummary, RunDir};

use crate::error::TablesError;
use crate::spec::{Direction, Metric};

/// A pre-training run's done marker (`summary.json`, written when the run ends), as [`RunDir`] names it.
pub fn summary_file(run_dir: &Path) -> PathBuf {
    RunDir::new(run_dir).summary_file()
}

/// Whether a run has a checkpoint to resume from.
pub fn has_checkpoint(run_dir: &Path) -> Result<bool, TablesError> {
    Ok(RunDir::new(run_dir).latest()?.is_some())
}

/// A finished run's summary.
pub fn read_summary(run_dir: &Path) -> Result<PretrainSummary, TablesError> {
    Ok(RunDir::new(run_dir).read_summary()?)
}

/// DIR/results.json: an evaluation's numbers (its step's done marker).
pub fn results_file(eval_dir: &Path) -> PathBuf {
    eval_dir.join(RESULTS_JSON)
}

/// An evaluation's results, by its kind.
#[derive(Clone, Debug)]
pub enum EvalResult {
    /// `svaclr finetune`.
    Classification(Box<FinetuneResult>),
    /// `svaclr retrieve`.
    Retrieval(Box<RetrievalResult>),
}

impl EvalResult {
    /// Read `eval_dir`'s results.json as a retrieval or a classification result.
    pub fn read(eval_dir: &Path, retrieval: bool) -> Result<Self, TablesError> {
        let path = results_file(eval_dir);
        Ok(if retrieval {
            EvalResult::Retrieval(Box::new(read_json(&path)?))
        } else {
            EvalResult::Classification(Box::new(read_json(&path)?))
        })
    }

    /// The number `metric` names, in [0, 1] (`None` when the result does not have it).
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match (self, metric) {
            (EvalResult::Classification(r), Metric::Top1) => Some(r.top1),
            (EvalResult::Classification(r), Metric::Top5) => Some(r.top5),
            (EvalResult::Classification(r), Metric::KnnTop1) => r.knn_top1,
            (EvalResult::Retrieval(r), Metric::Recall { direction, k }) => {
                let recall = match direction {
                    Direction::VideoToAudio => &r.v2a,
                    Direction::AudioToVideo => &r.a2v,
                };
                recall.get(&k.to_string()).copied()
            }
            _ => None,
        }
    }

    /// Its measured wall time, seconds.
    pub fn wall_seconds(&self) -> f64 {
        match self {
            EvalResult::Classification(r) => r.wall_seconds,
            EvalResult::Retrieval(r) => r.wall_seconds,
        }
    }
}

/// Read and parse a JSON file a step wrote.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TablesError> {
    let text = std::fs::read_to_string(path).map_err(TablesError::io(path))?;
    serde_json::from_str(&text).map_err(|e| TablesError::Output { path: path.to_path_buf(), message: e.to_string() })
}
