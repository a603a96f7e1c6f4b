//! The pre-training loop: a custom loop (not burn-train's Learner), because a two-tower contrastive model with
//! gradient caching, step-level checkpoints and exact resume fits it better.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use svaclr_data::{BatchLoader, ClipDataset, HostBatch, Manifest};
use svaclr_loss::{LossKind, LossStats};
use svaclr_models::AvModel;

use crate::checkpoint::{self, TrainState};
use crate::config::PretrainConfig;
use crate::distributed::{self, Collective, Single};
use crate::error::TrainError;
use crate::metrics::{MetricsLog, MonitorRecord, StepRecord};
use crate::monitor::Monitor;
use crate::schedule::learning_rate;

/// How to run: resume or not, show a progress bar or not.
#[derive(Clone, Debug, Default)]
pub struct PretrainOptions {
    /// Continue from the newest checkpoint of `run_dir` (the config must be the same).
    pub resume: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// What a finished run reports (also written as `RUN_DIR/summary.json`).
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
    /// Processes that trained (1 without MPI).
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

/// SGD with PyTorch's momentum semantics (dampening 0), weight decay, optionally none on BatchNorm and biases.
pub fn build_optimizer(cfg: &PretrainConfig) -> ModuleOptimizer {
    let momentum = Some(MomentumConfig::new().with_momentum(cfg.optim.momentum).with_dampening(0.0));
    let wd = (cfg.optim.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.optim.weight_decay as f32));
    let base = SgdConfig::new().with_momentum(momentum.clone()).with_weight_decay(wd);
    let optim = base.init();
    if cfg.optim.no_decay_on_norm_and_bias && cfg.optim.weight_decay > 0.0 {
        // BatchNorm scale/shift are `gamma`/`beta` in Burn; biases end in `bias`.
        if let Ok(group) = ParamGroup::from_regex(r"(gamma|beta|bias)$") {
            return optim.with_group(group, SgdConfig::new().with_momentum(momentum).build(), None);
        }
    }
    optim
}

/// The encoders' outputs for one batch arranged as `[V, N, D]` per modality, ready for the loss.
pub(crate) struct ViewOutputs {
    pub(crate) za: Tensor<3>,
    pub(crate) zv: Tensor<3>,
    pub(crate) la: Tensor<3>,
    pub(crate) lv: Tensor<3>,
}

impl ViewOutputs {
    /// The same outputs without their autodiff graph (which frees the activations it holds).
    pub(crate) fn detached(self) -> Self {
        Self { za: self.za.detach(), zv: self.zv.detach(), la: self.la.detach(), lv: self.lv.detach() }
    }

    /// The outputs of consecutive clip ranges joined along the clip axis, without their autodiff graphs.
    pub(crate) fn cat_detached(parts: &[ViewOutputs]) -> Self {
        let cat =
            |f: fn(&ViewOutputs) -> &Tensor<3>| Tensor::cat(parts.iter().map(|p| f(p).clone().detach()).collect(), 1);
        Self { za: cat(|p| &p.za), zv: cat(|p| &p.zv), la: cat(|p| &p.la), lv: cat(|p| &p.lv) }
    }
}

/// Forward every view of clips `range` of the batch through the model in one pass (views stacked on the batch axis).
pub(crate) fn forward_views(
    model: &AvModel,
    batch: &HostBatch,
    views: usize,
    start: usize,
    len: usize,
    device: &Device,
) -> ViewOutputs {
    let video: Vec<Tensor<5>> = (0..views).map(|v| batch.video_tensor(v, device).narrow(0, start, len)).collect();
    let audio: Vec<Tensor<4>> = (0..views).map(|v| batch.audio_tensor(v, device).narrow(0, start, len)).collect();
    // [V*len, ...], view-major, so reshaping [V*len, D] -> [V, len, D] recovers views.
    let out = model.forward(Tensor::cat(video, 0), Tensor::cat(audio, 0));
    let split = |t: Tensor<2>| {
        let [_, d] = t.dims();
        t.reshape([views, len, d])
    };
    ViewOutputs { za: split(out.z_audio), zv: split(out.z_video), la: split(out.l_audio), lv: split(out.l_video) }
}

/// The cross-affinity weights of SoftInfoNCE for `o`, with the config's settings.
fn lambda_of(cfg: &PretrainConfig, o: &ViewOutputs) -> Tensor<3> {
    svaclr_loss::cross_affinity(
        o.la.clone(),
        o.lv.clone(),
        cfg.loss.lambda_temperature,
        cfg.loss.lambda_mode,
        cfg.loss.detach_lambda,
    )
}

/// The configured loss on `[V, N, D]` embeddings; returns (loss, lambda if SoftInfoNCE).
pub(crate) fn loss_of(cfg: &PretrainConfig, o: &ViewOutputs) -> (Tensor<1>, Option<Tensor<3>>) {
    let eta = cfg.loss.temperature;
    match cfg.loss.kind {
        LossKind::InfoNce => (svaclr_loss::info_nce(o.za.clone(), o.zv.clone(), eta), None),
        LossKind::SoftInfoNce => {
            let lambda = lambda_of(cfg, o);
            (svaclr_loss::soft_info_nce(o.za.clone(), o.zv.clone(), lambda.clone(), eta), Some(lambda))
        }
    }
}

/// Rank `rank`'s share of the loss as SoftInfoNCE weights: `world` on the rank's own clips
/// (`rank*n..(rank+1)*n` of the global batch), 0 on the others. The loss is a mean over the global batch's
/// clips, so with these weights it is the mean over the rank's own anchors (against every clip's negatives), and the
/// mean of the ranks' shares is the single-process loss.
///
/// # Shapes
/// Returns `[world*n, V, V]`.
fn own_clip_weights(rank: usize, world: usize, n: usize, views: usize, device: &Device) -> Tensor<3> {
    let per_clip = views * views;
    let mut w = vec![0f32; world * n * per_clip];
    w[rank * n * per_clip..(rank + 1) * n * per_clip].fill(world as f32);
    Tensor::from_data(TensorData::new(w, [world * n, views, views]), device)
}

/// The configured loss on gathered `[V, P*n, D]` embeddings, restricted to this rank's anchors by `weights`
/// ([`own_clip_weights`]); returns (loss share, lambda of the whole batch if SoftInfoNCE).
fn own_loss_of(cfg: &PretrainConfig, o: &ViewOutputs, weights: Tensor<3>) -> (Tensor<1>, Option<Tensor<3>>) {
    let eta = cfg.loss.temperature;
    match cfg.loss.kind {
        LossKind::InfoNce => (svaclr_loss::soft_info_nce(o.za.clone(), o.zv.clone(), weights, eta), None),
        LossKind::SoftInfoNce => {
            let lambda = lambda_of(cfg, o);
            let loss = svaclr_loss::soft_info_nce(o.za.clone(), o.zv.clone(), lambda.clone() * weights, eta);
            (loss, Some(lambda))
        }
    }
}

/// One optimiser step's gradients (this rank's; [`distributed::average_gradients`] averages them) and the global
/// batch's loss and statistics.
///
/// With one process and `micro_batches == 1` this is a plain forward/backward. Otherwise it is gradient caching (see
/// [`crate::config::RunConfig::micro_batches`]) with the embeddings of every rank gathered between the passes:
/// pass 1 embeds this rank's clips, the embeddings of all ranks are gathered as leaves of a new graph, this rank's
/// share of the loss (its own clips as anchors, every clip as negatives) is differentiated with respect to them, the
/// ranks' gradients are summed (one all-reduce: the exact backward of the gather, since a rank's embeddings are the
/// other ranks' negatives), and pass 2 back-propagates this rank's slice through its encoders. The sum over ranks
/// makes each rank's parameter gradient P times its part of the global one, so the average over ranks is the
/// gradient of the single-process loss on the global batch. Public for the pre-training benchmark and the
/// multi-device loop.
pub fn step_gradients(
    cfg: &PretrainConfig,
    model: &AvModel,
    batch: &HostBatch,
    views: usize,
    device: &Device,
    comm: &dyn Collective,
) -> Result<(GradientsParams, f64, LossStats), TrainError> {
    let n = batch.specs.len();
    let k = cfg.run.micro_batches;
    let eta = cfg.loss.temperature;
    let (rank, world) = (comm.rank(), comm.size());
    if k == 1 && world == 1 {
        let o = forward_views(model, batch, views, 0, n, device);
        let (loss, lambda) = loss_of(cfg, &o);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let stats = svaclr_loss::loss_stats(o.za.detach(), o.zv.detach(), lambda.map(|l| l.detach()), eta, value);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return Ok((grads, value, stats));
    }
    let b = n / k;
    let soft = cfg.loss.kind == LossKind::SoftInfoNce;
    // Pass 1: embeddings of every micro-batch. With a single micro-batch its graph is kept for pass 2.
    let mut parts: Vec<ViewOutputs> = (0..k).map(|m| forward_views(model, batch, views, m * b, b, device)).collect();
    let local = ViewOutputs::cat_detached(&parts);
    let leaf =
        |t: Tensor<3>| -> Result<Tensor<3>, TrainError> { Ok(distributed::gather_clips(comm, t)?.require_grad()) };
    let whole = ViewOutputs {
        za: leaf(local.za)?,
        zv: leaf(local.zv)?,
        // The cross-affinity inputs only matter to SoftInfoNCE; InfoNCE never reads them.
        la: if soft { leaf(local.la)? } else { local.la },
        lv: if soft { leaf(local.lv)? } else { local.lv },
    };
    if k > 1 {
        parts.clear();
    }
    let (loss, lambda) = if world == 1 {
        loss_of(cfg, &whole)
    } else {
        own_loss_of(cfg, &whole, own_clip_weights(rank, world, n, views, device))
    };
    let own_value = loss.clone().into_scalar::<f32>();
    let g = loss.backward();
    let grad_of = |t: &Tensor<3>| t.grad(&g).map(|x| Tensor::<3>::from_data(x.into_data(), device));
    let grads = [grad_of(&whole.za), grad_of(&whole.zv), grad_of(&whole.la), grad_of(&whole.lv)];
    // One all-reduce: the embedding gradients of every rank's loss share, and the shares themselves.
    let mut packed: Vec<Tensor<3>> = grads.iter().flatten().cloned().collect();
    packed.push(Tensor::from_data(TensorData::new(vec![own_value], [1, 1, 1]), device));
    let mut summed = distributed::all_reduce_sum_tensors(comm, packed)?;
    let value = summed.pop().map_or(own_value, |t| t.into_scalar::<f32>()) as f64 / world as f64;
    let mut summed = summed.into_iter();
    let own: Vec<Option<Tensor<3>>> =
        grads.iter().map(|g| g.as_ref().and_then(|_| summed.next()).map(|t| t.narrow(1, rank * n, n))).collect();
    let stats = svaclr_loss::loss_stats(whole.za.detach(), whole.zv.detach(), lambda.map(|l| l.detach()), eta, value);
    // Pass 2: back-propagate this rank's slice of the cached embedding gradients through each micro-batch.
    let mut acc = GradientsAccumulator::<AvModel>::new();
    for m in 0..k {
        let o = match parts.pop() {
            Some(o) => o,
            None => forward_views(model, batch, views, m * b, b, device),
        };
        let mut surrogate: Option<Tensor<1>> = None;
        for (t, gt) in [(o.za, &own[0]), (o.zv, &own[1]), (o.la, &own[2]), (o.lv, &own[3])] {
            if let Some(gt) = gt {
                let term = (t * gt.clone().narrow(1, m * b, b)).sum();
                surrogate = Some(match surrogate {
                    Some(s) => s + term,
                    None => term,
                });
            }
        }
        if let Some(s) = surrogate {
            acc.accumulate(model, GradientsParams::from_grads(s.backward(), model));
        }
    }
    Ok((acc.grads(), value, stats))
}

/// Epoch index of the batches precise BN draws: outside any schedule, so they are fresh augmentations, and fixed, so
/// the result is deterministic.
const PRECISE_BN_EPOCH: u64 = 1 << 40;

/// Re-estimate the BatchNorm running statistics of `model` from `cfg.run.precise_bn_batches` training batches
/// (training-mode forwards, no optimiser step; see `svaclr_models::norm`).
pub(crate) fn precise_bn(
    cfg: &PretrainConfig,
    mut model: AvModel,
    loader: &BatchLoader,
    views: usize,
    device: &Device,
) -> Result<AvModel, TrainError> {
    let mut acc = svaclr_models::PreciseBn::new();
    for item in loader.epoch(PRECISE_BN_EPOCH, 0).take(cfg.run.precise_bn_batches) {
        let batch = item?;
        model = acc.prepare(model);
        let n = batch.specs.len();
        let micro = n / cfg.run.micro_batches;
        for m in 0..cfg.run.micro_batches {
            // Each micro-batch forward is one batch-statistics sample, as in training.
            drop(forward_views(&model, &batch, views, m * micro, micro, device));
            acc.record(&model);
            if m + 1 < cfg.run.micro_batches {
                model = acc.prepare(model);
            }
        }
    }
    Ok(acc.finish(model))
}

/// Create `run_dir`, refuse to overwrite a run there unless resuming, write the resolved config (when `write`) and
/// return the newest checkpoint to resume from.
pub(crate) fn open_run_dir(
    cfg: &PretrainConfig,
    run_dir: &Path,
    opts: &PretrainOptions,
    write: bool,
) -> Result<Option<PathBuf>, TrainError> {
    fs::create_dir_all(run_dir).map_err(|source| TrainError::Io { path: run_dir.to_path_buf(), source })?;
    let existing = checkpoint::latest(run_dir)?;
    if existing.is_some() && !opts.resume {
        return Err(TrainError::Other(format!(
            "{}: already holds a run; pass --resume to continue it or choose another --out",
            run_dir.display()
        )));
    }
    if write {
        let cfg_json = serde_json::to_vec_pretty(cfg).map_err(|e| TrainError::Other(e.to_string()))?;
        checkpoint::write_atomic(&run_dir.join("config.json"), &cfg_json)?;
    }
    Ok(existing)
}

/// Optimiser steps per epoch of `loader`; an error naming the manifest when there is not one whole batch.
pub(crate) fn steps_per_epoch(cfg: &PretrainConfig, loader: &BatchLoader) -> Result<usize, TrainError> {
    match loader.batches_per_epoch() {
        0 => Err(TrainError::Other(format!(
            "{}: {} clips are fewer than one batch of {}",
            cfg.manifest.display(),
            loader.dataset().len(),
            cfg.run.batch_size
        ))),
        n => Ok(n),
    }
}

/// The initial model for `cfg.seed` on `device`: drawn on flex and moved, so a seed means the same weights on every
/// backend (and the random-init baseline of a run is exactly the weights its pre-training started from). Seeding
/// and drawing is one critical section: the generator is global to the process, and another thread (a parallel
/// test, a second run in the same process) must not draw from it in between.
pub fn initial_model(cfg: &PretrainConfig, device: &Device) -> Result<AvModel, TrainError> {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _init = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Device::flex().seed(cfg.seed);
    device.seed(cfg.seed);
    Ok(cfg.model.init_portable(device)?)
}

/// The training position saved in checkpoint `dir`; an error if the run was made with another config.
pub(crate) fn resume_state(dir: &Path, run_dir: &Path, hash: &str) -> Result<TrainState, TrainError> {
    let saved = checkpoint::read_state(dir)?;
    if saved.config_hash != hash {
        return Err(TrainError::Other(format!(
            "{}: --resume with a different config (hash {} vs the run's {})",
            run_dir.display(),
            hash,
            saved.config_hash
        )));
    }
    Ok(saved)
}

/// What a resumed run prints.
pub(crate) fn resume_message(run_dir: &Path, state: &TrainState) -> String {
    format!("resuming {} at step {} (epoch {}, batch {})", run_dir.display(), state.step, state.epoch, state.batch)
}

/// The end of a run: `summary.json` and the plot of its metrics.
pub(crate) fn write_run_end(
    run_dir: &Path,
    summary: &PretrainSummary,
    records: &[StepRecord],
    monitor: &[MonitorRecord],
    steps_per_epoch: usize,
) -> Result<(), TrainError> {
    let json = serde_json::to_vec_pretty(summary).map_err(|e| TrainError::Other(e.to_string()))?;
    checkpoint::write_atomic(&run_dir.join("summary.json"), &json)?;
    crate::plot::plot_run(records, monitor, steps_per_epoch, &run_dir.join("metrics.png"))
}

/// Pre-train per `cfg`, writing everything into `run_dir`. `device` is the plain device; autodiff is added here.
pub fn pretrain(
    cfg: &PretrainConfig,
    run_dir: &Path,
    device: &Device,
    device_name: &str,
    opts: &PretrainOptions,
) -> Result<PretrainSummary, TrainError> {
    pretrain_on(cfg, run_dir, device, device_name, opts, &Single)
}

/// [`pretrain`] as one of the `comm.size()` processes of a data-parallel run (docs/distributed.md): every rank
/// calls it with the same arguments; `cfg.run.batch_size` is the global batch (each rank takes `batch_size / P`
/// clips of it); rank 0 alone writes the run directory; `--resume` needs `run_dir` readable by every rank.
pub fn pretrain_on(
    cfg: &PretrainConfig,
    run_dir: &Path,
    device: &Device,
    device_name: &str,
    opts: &PretrainOptions,
    comm: &dyn Collective,
) -> Result<PretrainSummary, TrainError> {
    let started = Instant::now();
    let hash = cfg.hash();
    let (rank, world) = (comm.rank(), comm.size());
    let is_root = rank == 0;
    if !cfg.run.batch_size.is_multiple_of(world * cfg.run.micro_batches) {
        return Err(TrainError::Distributed(format!(
            "run.batch_size = {} is not divisible by {world} processes x run.micro_batches = {}",
            cfg.run.batch_size, cfg.run.micro_batches
        )));
    }
    let existing = open_run_dir(cfg, run_dir, opts, is_root)?;

    let manifest = Manifest::load(&cfg.manifest)?;
    let dataset = Arc::new(ClipDataset::new(&manifest, cfg.split.as_deref(), cfg.data.clone())?);
    let per_rank = cfg.run.batch_size / world;
    let loader = BatchLoader::new(dataset.clone(), per_rank, cfg.seed, cfg.run.workers, 2).sharded(rank, world);
    let steps_per_epoch = steps_per_epoch(cfg, &loader)?;
    let views = cfg.data.views();
    let total_steps = cfg.run.max_steps.unwrap_or(usize::MAX).min(cfg.schedule.epochs * steps_per_epoch);

    let train_device = device.clone().autodiff();
    // Seeding and drawing the initial weights is one step: the generator is global to the process, and another
    // thread (a parallel test, a second run in the same process) must not draw from it in between.
    let mut model = initial_model(cfg, &train_device)?;
    let mut optim = build_optimizer(cfg);
    let mut state = TrainState { step: 0, epoch: 0, batch: 0, config_hash: hash.clone(), precise_bn: false };
    if let Some(dir) = existing {
        let saved = resume_state(&dir, run_dir, &hash)?;
        model = svaclr_models::weights::load_model(&cfg.model, &dir.join("model.bpk"), &train_device)?;
        optim = optim
            .load(dir.join("optim.bpk"))
            .map_err(|e| TrainError::Checkpoint { path: dir.join("optim.bpk"), message: format!("{e:?}") })?;
        state = saved;
        if is_root {
            eprintln!("{}", resume_message(run_dir, &state));
        }
    }
    if world > 1 {
        // Every rank must resume from the same position; rank 0's weights are everyone's.
        let steps = comm.all_gather_u64(state.step as u64)?;
        if let Some((r, s)) = steps.iter().enumerate().find(|(_, s)| **s != steps[0]) {
            return Err(TrainError::Distributed(format!(
                "rank {r} found step {s} in {} but rank 0 found step {} (--resume needs the run directory on a file \
                 system every rank reads)",
                run_dir.display(),
                steps[0]
            )));
        }
        model = distributed::broadcast_module(comm, model)?;
    }
    let (mut log, mut records) = match is_root {
        true => {
            let (log, records) = MetricsLog::open(run_dir, "metrics.jsonl", state.step)?;
            (Some(log), records)
        }
        false => (None, Vec::new()),
    };
    let bar = crate::progress::bar(opts.progress && is_root, total_steps as u64, state.step as u64);
    // The monitor is rank 0's alone: it reads and changes nothing the other ranks depend on.
    let monitor = match is_root {
        true => Monitor::new(cfg, dataset.clone())?,
        false => None,
    };
    let (mut monitor_log, mut monitor_records) = match &monitor {
        Some(_) => {
            let (log, records) = MetricsLog::<MonitorRecord>::open(run_dir, "monitor.jsonl", state.step)?;
            (Some(log), records)
        }
        None => (None, Vec::new()),
    };
    // A restart before the first checkpoint keeps the initial weights' record (and draws the same weights).
    let scored_initial = monitor_records.iter().any(|r| r.step == 0);
    let mut score = |model: AvModel, step: usize, epochs: usize| -> Result<AvModel, TrainError> {
        let (Some(m), Some(log)) = (&monitor, monitor_log.as_mut()) else {
            return Ok(model);
        };
        let (model, stats) = m.score(cfg, model, views, &train_device)?;
        let rec = MonitorRecord { step, epochs, clips: m.clips(), stats };
        // Above the progress bar (nothing when it is hidden).
        let original = rec.stats.top1_pq.map(|t| format!(" (original views {:.3})", t[0][0])).unwrap_or_default();
        bar.println(format!(
            "monitor after {epochs} epoch(s), step {step}: loss {:.4}, positive top-1 {:.3}{original}, pos-neg cosine \
             {:+.3} ({} clips)",
            rec.stats.loss,
            rec.stats.top1_acc,
            rec.stats.pos_sim - rec.stats.neg_sim,
            rec.clips
        ));
        log.append(&rec)?;
        monitor_records.push(rec);
        Ok(model)
    };
    if state.step == 0 && !scored_initial {
        model = score(model, 0, 0)?;
    }

    let mut clips_done = 0usize;
    let loop_start = Instant::now();
    let mut last_ckpt_step = state.step;
    'epochs: while state.step < total_steps {
        let epoch = state.epoch;
        for item in loader.epoch(epoch as u64, state.batch) {
            let batch = item?;
            let t0 = Instant::now();
            let lr = learning_rate(&cfg.schedule, steps_per_epoch, state.step);
            let (grads, value, stats) = step_gradients(cfg, &model, &batch, views, &train_device, comm)?;
            let grads = distributed::average_gradients(comm, &model, grads)?;
            if !value.is_finite() {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    step: state.step + 1,
                    epoch,
                    value,
                    kept: format!("step {last_ckpt_step}"),
                });
            }
            model = optim.step(lr, model, grads);
            state.step += 1;
            state.batch += 1;
            let dt = t0.elapsed().as_secs_f64();
            let global_clips = batch.specs.len() * world;
            clips_done += global_clips;
            let rec = StepRecord {
                step: state.step,
                epoch,
                lr,
                stats,
                clips_per_s: global_clips as f64 / dt.max(1e-9),
                wall_s: started.elapsed().as_secs_f64(),
            };
            if let Some(log) = log.as_mut() {
                log.append(&rec)?;
            }
            bar.set_position(state.step as u64);
            bar.set_message(format!(
                "epoch {epoch} loss {:.4} lr {:.4} {:.1} clips/s",
                rec.stats.loss, lr, rec.clips_per_s
            ));
            records.push(rec);
            let end_of_epoch = state.batch >= steps_per_epoch;
            if end_of_epoch {
                state.epoch += 1;
                state.batch = 0;
                // Before the checkpoint: a kill in between resumes from the previous one and scores again.
                model = score(model, state.step, state.epoch)?;
            }
            if state.step.is_multiple_of(cfg.run.checkpoint_every) || end_of_epoch || state.step == total_steps {
                if world > 1 {
                    // BatchNorm statistics come from each rank's own clips: keep their average, then make sure
                    // every rank holds the same weights.
                    model = distributed::average_buffers(comm, model)?;
                    distributed::check_same_weights(comm, &model, state.step)?;
                }
                if is_root {
                    checkpoint::save(run_dir, &model, &optim, &state, 2)?;
                }
                last_ckpt_step = state.step;
            }
            if state.step >= total_steps {
                break 'epochs;
            }
        }
        if state.batch != 0 {
            // The loader ended the epoch early (it only yields whole batches).
            state.epoch += 1;
            state.batch = 0;
        }
    }
    bar.finish_and_clear();
    if cfg.run.precise_bn_batches > 0 && !state.precise_bn {
        // Each rank re-estimates on its shard of the same batches; the ranks' estimates are averaged.
        model = precise_bn(cfg, model, &loader, views, &train_device)?;
        if world > 1 {
            model = distributed::average_buffers(comm, model)?;
        }
        state.precise_bn = true;
        if is_root {
            checkpoint::save(run_dir, &model, &optim, &state, 2)?;
        }
    }
    let wall = loop_start.elapsed().as_secs_f64();
    let summary = PretrainSummary {
        steps: state.step,
        epochs: state.epoch,
        first_loss: records.first().map(|r| r.stats.loss),
        final_loss: records.last().map(|r| r.stats.loss),
        final_top1_acc: records.last().map(|r| r.stats.top1_acc),
        clips_per_s: clips_done as f64 / wall.max(1e-9),
        wall_s: started.elapsed().as_secs_f64(),
        device: device_name.to_string(),
        config_hash: hash,
        processes: world,
        weights_hash: format!("{:016x}", distributed::module_hash(&model)?),
        monitor_first: monitor_records.first().map(|r| r.stats.clone()),
        monitor_final: monitor_records.last().map(|r| r.stats.clone()),
    };
    if is_root {
        write_run_end(run_dir, &summary, &records, &monitor_records, steps_per_epoch)?;
    }
    Ok(summary)
}

/// Read every step record of a run (for tests and tables).
pub fn read_metrics(run_dir: &Path) -> Result<Vec<StepRecord>, TrainError> {
    crate::metrics::read_records(&run_dir.join("metrics.jsonl"), usize::MAX)
}
