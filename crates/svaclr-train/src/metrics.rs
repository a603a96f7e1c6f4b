//! The metrics logs: JSON Lines, one record per optimiser step (`metrics.jsonl`) and one per monitor evaluation
//! (`monitor.jsonl`, see [`crate::monitor`]).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
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

/// One line of a run's JSON Lines log, tied to the optimiser step after which it was written.
pub trait LogRecord: Serialize + DeserializeOwned {
    fn step(&self) -> usize;
}

impl LogRecord for StepRecord {
    fn step(&self) -> usize {
        self.step
    }
}

/// The monitor set's statistics after `step` optimiser steps (0: the initial weights), see [`crate::monitor`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub step: usize,
    /// Epochs completed.
    pub epochs: usize,
    /// Clips scored.
    pub clips: usize,
    #[serde(flatten)]
    pub stats: LossStats,
}

impl LogRecord for MonitorRecord {
    fn step(&self) -> usize {
        self.step
    }
}

/// Records with `step <= max_step`, skipping a torn last line (a kill mid-write).
pub fn read_records<R: LogRecord>(path: &Path, max_step: usize) -> Result<Vec<R>, TrainError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let f = fs::File::open(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        if let Ok(r) = serde_json::from_str::<R>(&line) {
            if r.step() <= max_step {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Replace the log with exactly these records (used on resume to drop steps after the checkpoint).
pub fn rewrite<R: LogRecord>(path: &Path, records: &[R]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).map_err(|e| TrainError::Other(e.to_string()))?);
        text.push('\n');
    }
    crate::run_dir::write_atomic(path, text.as_bytes())
}

/// An open log of a run: on opening, the records up to the resumed step are kept (later ones, written after the
/// checkpoint, are dropped) and returned; every record then appends one flushed line.
pub struct MetricsLog<R: LogRecord = StepRecord> {
    path: PathBuf,
    file: fs::File,
    _record: std::marker::PhantomData<R>,
}

impl<R: LogRecord> MetricsLog<R> {
    /// Open the log at `path` at `step`; returns the log and the records kept.
    pub fn open(path: PathBuf, step: usize) -> Result<(Self, Vec<R>), TrainError> {
        let records = read_records(&path, step)?;
        rewrite(&path, &records)?;
        let file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|source| TrainError::Io { path: path.clone(), source })?;
        Ok((Self { path, file, _record: std::marker::PhantomData }, records))
    }

    /// Append one record as a line and flush it.
    pub fn append(&mut self, rec: &R) -> Result<(), TrainError> {
        let line = serde_json::to_string(rec).map_err(|e| TrainError::Other(e.to_string()))?;
        writeln!(self.file, "{line}").map_err(|source| TrainError::Io { path: self.path.clone(), source })?;
        self.file.flush().map_err(|source| TrainError::Io { path: self.path.clone(), source })
    }
}

/// What a finished run reports (written as `RUN_DIR/summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainSummary {
    pub steps: usize,
    pub epochs: usize,
    pub first_loss: Option<f64>,
    pub final_loss: Option<f64>,
    pub final_top1_acc: Option<f64>,
    pub clips_per_s: f64,
    pub wall_s: f64,
    pub device: String,
    pub config_hash: String,
    /// Ranks that trained: processes of an MPI job or devices of one process (1 for one device).
    #[serde(default = "one")]
    pub processes: usize,
    /// 64-bit hash of the final weights (every float tensor, bit for bit), for comparing runs and ranks.
    #[serde(default)]
    pub weights_hash: String,
    /// The monitor set's statistics on the initial weights and after the last epoch (`run.monitor_clips` > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_first: Option<LossStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_final: Option<LossStats>,
}

fn one() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed run reads its records back and writes them again: every f64 must come back bit for bit. serde_json's
    /// default float parser is not correctly rounded (a last-digit error for some 17-digit values, seen in `lambda_pq`
    /// after a resume); the workspace enables its `float_roundtrip` feature, without which this test fails.
    #[test]
    fn rewriting_records_keeps_every_float_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitor.jsonl");
        // Deterministic values spread over the magnitudes a log holds (xorshift bits -> [0, 1) -> scaled).
        let mut s = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let records: Vec<MonitorRecord> = (0..2000)
            .map(|i| {
                let mut v = [0.0; 9];
                for (k, x) in v.iter_mut().enumerate() {
                    *x = next() * 10f64.powi(k as i32 - 4);
                }
                MonitorRecord {
                    step: i,
                    epochs: i,
                    clips: 64,
                    stats: LossStats {
                        loss: v[0],
                        pos_sim: v[1],
                        neg_sim: -v[2],
                        top1_acc: v[3],
                        top1_pq: Some([[v[3], v[4] * 0.1], [v[5], v[6] + v[7]]]),
                        lambda_mean: Some(v[4]),
                        lambda_std: Some(v[5]),
                        lambda_min: Some(v[6]),
                        lambda_max: Some(v[7]),
                        lambda_pq: Some([[v[8], v[0] + v[1]], [v[2] * 3.0, 1.0 / (1.0 + v[3])]]),
                    },
                }
            })
            .collect();
        rewrite(&path, &records).unwrap();
        let first = fs::read(&path).unwrap();
        let back: Vec<MonitorRecord> = read_records(&path, usize::MAX).unwrap();
        assert_eq!(back.len(), records.len());
        for (a, b) in records.iter().zip(&back) {
            assert_eq!(a, b, "record {} changed on reading back", a.step);
        }
        rewrite(&path, &back).unwrap();
        assert!(fs::read(&path).unwrap() == first, "rewriting the records read back changed the file");
    }
}
