//! Batching: host-side batches, the deterministic multi-threaded [`BatchLoader`] that training uses, and a
//! burn `Batcher` for users of burn's own `DataLoader`.
//!
//! **Invariant:** the batches of an epoch depend only on (dataset, batch size, seed, epoch): the order is a
//! seeded permutation, each sample is a pure function of (seed, epoch, index), and batches are delivered in
//! order whatever the number of workers. Resuming at batch `k` yields exactly batches `k..` of the same epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{AvSample, ClipDataset, DataConfig};
use crate::error::DataError;
use crate::sampler::{ClipSpec, mix64};

/// Domain tag of the epoch-order generator (distinct from the per-sample one).
const ORDER_STREAM: u64 = 0x5356_4143_4c52_0002;

/// A batch on the host: contiguous buffers ready for `Tensor::from_data(TensorData::new(buf, shape), device)`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    /// Per view, `[B, 3, T, H, W]` row-major.
    pub video: Vec<Vec<f32>>,
    /// Per view, `[B, 1, F, Tspec]` row-major.
    pub audio: Vec<Vec<f32>>,
    /// Shape of each video buffer.
    pub video_shape: [usize; 5],
    /// Shape of each audio buffer.
    pub audio_shape: [usize; 4],
    /// One spec per sample, in batch order.
    pub specs: Vec<ClipSpec>,
    /// One label per sample, in batch order.
    pub labels: Vec<Option<usize>>,
}

impl HostBatch {
    /// Stack samples (all with the same number of views) into per-view buffers. Every buffer must have the
    /// size `cfg` implies; a mismatch is an error naming the sample.
    pub fn from_samples(samples: Vec<AvSample>, cfg: &DataConfig) -> Result<Self, DataError> {
        let b = samples.len();
        let Some(first) = samples.first() else {
            return Err(DataError::Batch("no samples".into()));
        };
        let views = first.video.len();
        let [c, t, h, w] = cfg.video_view_shape();
        let [ac, f, ts] = cfg.audio_view_shape();
        let (vlen, alen) = (c * t * h * w, ac * f * ts);
        let mut video: Vec<Vec<f32>> = (0..views).map(|_| Vec::with_capacity(b * vlen)).collect();
        let mut audio: Vec<Vec<f32>> = (0..views).map(|_| Vec::with_capacity(b * alen)).collect();
        let mut specs = Vec::with_capacity(b);
        let mut labels = Vec::with_capacity(b);
        for s in samples {
            if s.video.len() != views || s.audio.len() != views {
                return Err(DataError::Batch(format!(
                    "clip '{}' has {}/{} views, the batch has {views}",
                    s.spec.video_id,
                    s.video.len(),
                    s.audio.len()
                )));
            }
            for v in 0..views {
                if s.video[v].len() != vlen || s.audio[v].len() != alen {
                    return Err(DataError::Batch(format!(
                        "clip '{}' view {v}: video {} / audio {} values, expected {vlen} / {alen}",
                        s.spec.video_id,
                        s.video[v].len(),
                        s.audio[v].len()
                    )));
                }
                video[v].extend_from_slice(&s.video[v]);
                audio[v].extend_from_slice(&s.audio[v]);
            }
            specs.push(s.spec);
            labels.push(s.label);
        }
        Ok(Self { video, audio, video_shape: [b, c, t, h, w], audio_shape: [b, ac, f, ts], specs, labels })
    }

    /// Samples in the batch.
    pub fn batch_size(&self) -> usize {
        self.specs.len()
    }

    /// Views per modality (1 or 2).
    pub fn views(&self) -> usize {
        self.video.len()
    }

    /// Video of one view as a tensor.
    ///
    /// # Shapes
    /// `[B, 3, T, H, W]`.
    ///
    /// # Panics
    /// If `view >= self.views()`.
    pub fn video_tensor(&self, view: usize, device: &Device) -> Tensor<5> {
        Tensor::from_data(TensorData::new(self.video[view].clone(), self.video_shape), device)
    }

    /// Audio of one view as a tensor.
    ///
    /// # Shapes
    /// `[B, 1, F, Tspec]`.
    ///
    /// # Panics
    /// If `view >= self.views()`.
    pub fn audio_tensor(&self, view: usize, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.audio[view].clone(), self.audio_shape), device)
    }
}

/// The order of clips in an epoch: a permutation of `0..len` that depends only on (seed, epoch).
pub fn epoch_order(seed: u64, epoch: u64, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(mix64(mix64(seed ^ ORDER_STREAM) ^ epoch));
    order.shuffle(&mut rng);
    order
}

/// Where this process' part of a global batch starts: `shard = (rank, world)` splits each global batch of
/// `batch_size * world` consecutive entries of the epoch order into `world` consecutive parts.
fn part_start(batch: usize, batch_size: usize, (rank, world): (usize, usize)) -> usize {
    (batch * world + rank) * batch_size
}

fn build_batch(
    dataset: &ClipDataset,
    order: &[usize],
    batch: usize,
    batch_size: usize,
    shard: (usize, usize),
    epoch: u64,
    seed: u64,
) -> Result<HostBatch, DataError> {
    let start = part_start(batch, batch_size, shard);
    let indices = &order[start..start + batch_size];
    let mut samples = Vec::with_capacity(batch_size);
    for &i in indices {
        let s = dataset.train_sample(i, epoch, seed).map_err(|e| DataError::Sample {
            index: i,
            id: dataset.id_of(i).to_string(),
            source: Box::new(e),
        })?;
        samples.push(s);
    }
    HostBatch::from_samples(samples, dataset.config())
}

/// Deterministic epoch order (a seeded permutation of 0..len, same for a given (seed, epoch)), batches
/// assembled by `workers` threads with a bounded prefetch queue, delivered IN ORDER; drop_last.
/// `start_batch` skips ahead for resume.
///
/// Sharded ([`BatchLoader::sharded`]) for data-parallel training over `world` processes, batch `b` of rank `r` is
/// entries `(b*world + r)*batch_size ..` of the epoch order: the `world` ranks' batches `b` together are the global
/// batch `b` of a single process with a batch of `batch_size * world` (same clips, same order, same augmentation), no
/// clip is in two ranks' batches in an epoch, and every rank has the same number of batches (the last
/// `len % (batch_size * world)` clips of the epoch order are dropped, as a single process drops them).
///
/// Worker `w` builds batches `start + w, start + w + workers, ...` and hands them over through its own bounded
/// channel of `ceil(prefetch / workers)` (at least 1) finished batches; the consumer reads the channels round
/// robin, so order never depends on timing. `workers == 0` builds batches on the calling thread.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    dataset: Arc<ClipDataset>,
    batch_size: usize,
    seed: u64,
    workers: usize,
    prefetch: usize,
    /// (rank, world) of data-parallel training; (0, 1) for one process.
    shard: (usize, usize),
}

impl BatchLoader {
    /// A loader over `dataset`; a `batch_size` of 0 is treated as 1.
    pub fn new(dataset: Arc<ClipDataset>, batch_size: usize, seed: u64, workers: usize, prefetch: usize) -> Self {
        Self { dataset, batch_size: batch_size.max(1), seed, workers, prefetch, shard: (0, 1) }
    }

    /// This loader's share for process `rank` of `world` (`batch_size` is then the per-process batch); see the type's
    /// documentation. `world` 0 is treated as 1 and `rank` must be below it.
    pub fn sharded(mut self, rank: usize, world: usize) -> Self {
        let world = world.max(1);
        self.shard = (rank.min(world - 1), world);
        self
    }

    /// Full batches per epoch (the remainder is dropped; sharded: full global batches).
    pub fn batches_per_epoch(&self) -> usize {
        self.dataset.len() / (self.batch_size * self.shard.1)
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<ClipDataset> {
        &self.dataset
    }

    /// The batches of `epoch` from `start_batch` on, in order.
    pub fn epoch(&self, epoch: u64, start_batch: usize) -> impl Iterator<Item = Result<HostBatch, DataError>> + '_ {
        let order = Arc::new(epoch_order(self.seed, epoch, self.dataset.len()));
        let end = self.batches_per_epoch();
        let start = start_batch.min(end);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        if self.workers > 0 {
            let cap = self.prefetch.div_ceil(self.workers).max(1);
            for w in 0..self.workers.min(end - start) {
                let (tx, rx) = sync_channel::<Result<HostBatch, DataError>>(cap);
                let (dataset, order_w, stop_w) = (Arc::clone(&self.dataset), Arc::clone(&order), Arc::clone(&stop));
                let (bs, seed, step, shard) = (self.batch_size, self.seed, self.workers, self.shard);
                let join = std::thread::Builder::new().name(format!("svaclr-loader-{w}")).spawn(move || {
                    for b in (start + w..end).step_by(step) {
                        if stop_w.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = build_batch(&dataset, &order_w, b, bs, shard, epoch, seed);
                        if tx.send(r).is_err() {
                            break;
                        }
                    }
                });
                match join {
                    Ok(j) => workers.push(Worker { rx: Some(rx), join: Some(j) }),
                    Err(_) => {
                        // Thread creation failed: stop the ones started and build every batch inline.
                        shut_down(&stop, &mut workers);
                        workers.clear();
                        break;
                    }
                }
            }
        }
        EpochIter { loader: self, epoch, order, next: start, start, end, workers, stop }
    }
}

struct Worker {
    rx: Option<Receiver<Result<HostBatch, DataError>>>,
    join: Option<JoinHandle<()>>,
}

struct EpochIter<'a> {
    loader: &'a BatchLoader,
    epoch: u64,
    order: Arc<Vec<usize>>,
    next: usize,
    start: usize,
    end: usize,
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
}

impl Iterator for EpochIter<'_> {
    type Item = Result<HostBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let b = self.next;
        self.next += 1;
        let l = self.loader;
        if !self.workers.is_empty() {
            let w = (b - self.start) % l.workers;
            let received = self.workers[w].rx.as_ref().map(|rx| rx.recv());
            return Some(match received {
                Some(Ok(r)) => r,
                _ => Err(DataError::Batch(format!("loader worker {w} stopped before batch {b} (it panicked)"))),
            });
        }
        Some(build_batch(&l.dataset, &self.order, b, l.batch_size, l.shard, self.epoch, l.seed))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

/// Stop workers: raise the flag, drop the receivers (unblocking workers waiting to send), join them.
fn shut_down(stop: &AtomicBool, workers: &mut [Worker]) {
    stop.store(true, Ordering::Relaxed);
    for w in workers.iter_mut() {
        w.rx.take();
    }
    for w in workers.iter_mut() {
        if let Some(j) = w.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for EpochIter<'_> {
    fn drop(&mut self) {
        shut_down(&self.stop, &mut self.workers);
    }
}

/// A batch of tensors, produced by [`ClipBatcher`] for burn's `DataLoader`.
#[derive(Clone, Debug)]
pub struct AvBatch {
    /// Per view, `[B, 3, T, H, W]`.
    pub video: Vec<Tensor<5>>,
    /// Per view, `[B, 1, F, Tspec]`.
    pub audio: Vec<Tensor<4>>,
    /// One spec per sample.
    pub specs: Vec<ClipSpec>,
    /// One label per sample.
    pub labels: Vec<Option<usize>>,
}

/// burn `Batcher` for [`AvSample`]s of one [`ClipDataset`]. Prefer [`BatchLoader`] for training: burn's loader
/// does not deliver batches in a deterministic order when it has several workers.
#[derive(Clone, Debug)]
pub struct ClipBatcher {
    cfg: DataConfig,
}

impl ClipBatcher {
    /// A batcher for samples drawn with `cfg`.
    pub fn new(cfg: DataConfig) -> Self {
        Self { cfg }
    }
}

impl Batcher<AvSample, AvBatch> for ClipBatcher {
    /// # Panics
    /// If the items have different shapes, which cannot happen for samples of one dataset (burn's `Batcher`
    /// cannot return an error).
    fn batch(&self, items: Vec<AvSample>, device: &Device) -> AvBatch {
        let hb = match HostBatch::from_samples(items, &self.cfg) {
            Ok(hb) => hb,
            Err(e) => panic!("ClipBatcher: {e}"),
        };
        AvBatch {
            video: (0..hb.views()).map(|v| hb.video_tensor(v, device)).collect(),
            audio: (0..hb.views()).map(|v| hb.audio_tensor(v, device)).collect(),
            specs: hb.specs,
            labels: hb.labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(5, 2, 100);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(5, 2, 100));
        assert_ne!(a, epoch_order(5, 3, 100));
        assert_ne!(a, epoch_order(6, 2, 100));
    }

    #[test]
    fn shards_split_each_global_batch_without_overlap() {
        // 3 ranks x 4 clips: global batch b is entries 12b..12b+12 of the order, rank r has the r-th third of it...
        let (bs, world) = (4, 3);
        let mut seen = Vec::new();
        for b in 0..2 {
            for r in 0..world {
                let s = part_start(b, bs, (r, world));
                assert_eq!(s, b * bs * world + r * bs);
                seen.extend(s..s + bs);
            }
        }
        // ...so ranks in rank order cover the single-process batches exactly once.
        assert_eq!(seen, (0..2 * bs * world).collect::<Vec<_>>());
    }
}
