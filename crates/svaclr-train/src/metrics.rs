//! The metrics log: JSON Lines, one record per optimiser step.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};
use svaclr_loss::LossStats;

use crate::error::TrainError;

/// One optimiser step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Optimiser steps done, including this one (1-based).
    pub step: usize,
    pub epoch: usize,
    pub lr: f64,
    #[serde(flatten)]
    pub stats: LossStats,
    /// Clips per second of this step (data loading excluded).
    pub clips_per_s: f64,
    /// Seconds since the process started the run.
    pub wall_s: f64,
}

/// Records with `step <= max_step`, skipping a torn last line (a kill mid-write).
pub fn read_records(path: &Path, max_step: usize) -> Result<Vec<StepRecord>, TrainError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let f = fs::File::open(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        if let Ok(r) = serde_json::from_str::<StepRecord>(&line) {
            if r.step <= max_step {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Replace the log with exactly these records (used on resume to drop steps after the checkpoint).
pub fn rewrite(path: &Path, records: &[StepRecord]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).map_err(|e| TrainError::Other(e.to_string()))?);
        text.push('\n');
    }
    crate::checkpoint::write_atomic(path, text.as_bytes())
}
