//! The monitor set: a fixed set of training clips with fixed views, scored with the configured loss on the initial
//! weights and after every epoch (`run.monitor_clips`; `RUN_DIR/monitor.jsonl`).
//!
//! The per-step statistics in `metrics.jsonl` come from a different batch and fresh augmentations every step, so at
//! small scale their changes drown in sampling noise. The monitor scores the same clips, cut and augmented the same
//! way, every time: its loss and positive-pair top-1 differ between evaluations only because the weights did. The
//! forward passes are training-mode (batch statistics, as the loss saw them during training), in slices of the
//! training forward's size, and every BatchNorm's running statistics are put back afterwards, so monitoring changes
//! nothing in the run: the same seed gives the same weights with and without it.

use std::sync::Arc;

use burn::prelude::*;
use svaclr_data::{BatchLoader, ClipDataset, HostBatch};
use svaclr_loss::{Anchors, LossStats};
use svaclr_models::{AvModel, SavedRunningStats};

use crate::config::PretrainConfig;
use crate::error::TrainError;
use crate::step::{ViewOutputs, forward_views};

/// Epoch index the monitor's clips and views are drawn with: outside any schedule (and apart from precise BN's), so
/// fixed for a seed.
const MONITOR_EPOCH: u64 = (1 << 40) + 1;

/// The monitor set of a run, held on the host.
pub struct Monitor {
    batches: Vec<HostBatch>,
}

impl Monitor {
    /// The first `cfg.run.monitor_clips` clips of a fixed shuffle of `dataset` (`None` when the setting is 0), in
    /// slices of one training forward (`batch_size / micro_batches` clips).
    pub fn new(cfg: &PretrainConfig, dataset: Arc<ClipDataset>) -> Result<Option<Self>, TrainError> {
        let clips = cfg.run.monitor_clips;
        if clips == 0 {
            return Ok(None);
        }
        if clips > dataset.len() {
            return Err(TrainError::Other(format!(
                "{}: run.monitor_clips = {clips} but the dataset has {} clips",
                cfg.manifest.display(),
                dataset.len()
            )));
        }
        let slice = cfg.run.forward_clips();
        let loader = BatchLoader::new(dataset, slice, cfg.seed, cfg.run.workers, 2);
        let batches = loader.epoch(MONITOR_EPOCH, 0).take(clips / slice).collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self { batches }))
    }

    /// Clips in the set.
    pub fn clips(&self) -> usize {
        self.batches.iter().map(|b| b.specs.len()).sum()
    }

    /// The configured loss and its statistics over the whole set (every clip's views are the others' negatives).
    /// Returns the model with its running statistics as they were.
    pub fn score(
        &self,
        cfg: &PretrainConfig,
        model: AvModel,
        views: usize,
        device: &Device,
    ) -> Result<(AvModel, LossStats), TrainError> {
        let saved = SavedRunningStats::save(&model);
        // Each slice's graph is dropped as soon as it is embedded: one slice's activations at a time.
        let parts: Vec<ViewOutputs> = self
            .batches
            .iter()
            .map(|b| Ok(forward_views(&model, b, views, 0, b.specs.len(), device)?.detached()))
            .collect::<Result<_, TrainError>>()?;
        let whole = ViewOutputs::cat_detached(&parts);
        let (loss, lambda) = whole.loss(cfg, Anchors::All)?;
        let value = loss.into_scalar::<f32>() as f64;
        let stats = whole.stats(cfg, lambda, value)?;
        Ok((saved.restore(model), stats))
    }
}
