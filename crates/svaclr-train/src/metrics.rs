//! The metrics log: JSON Lines, one record per optimiser step.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

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

/// The open metrics log of a run: on opening, the records up to the resumed step are kept (later ones, written
/// after the checkpoint, are dropped) and returned; every step then appends one flushed line.
pub struct MetricsLog {
    path: PathBuf,
    file: fs::File,
}

impl MetricsLog {
    /// Open `run_dir/metrics.jsonl` at `step`; returns the log and the records kept.
    pub fn open(run_dir: &Path, step: usize) -> Result<(Self, Vec<StepRecord>), TrainError> {
        let path = run_dir.join("metrics.jsonl");
        let records = read_records(&path, step)?;
        rewrite(&path, &records)?;
        let file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|source| TrainError::Io { path: path.clone(), source })?;
        Ok((Self { path, file }, records))
    }

    /// Append one record as a line and flush it.
    pub fn append(&mut self, rec: &StepRecord) -> Result<(), TrainError> {
        let line = serde_json::to_string(rec).map_err(|e| TrainError::Other(e.to_string()))?;
        writeln!(self.file, "{line}").map_err(|source| TrainError::Io { path: self.path.clone(), source })?;
        self.file.flush().map_err(|source| TrainError::Io { path: self.path.clone(), source })
    }
}
