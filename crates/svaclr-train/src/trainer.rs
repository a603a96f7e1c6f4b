//! The pre-training loop: a custom loop (not burn-train's Learner), because a two-tower contrastive model with
//! gradient caching, step-level checkpoints and exact resume fits it better.

use std::fs;
use std::io::Write;
use std::path::Path;
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
use crate::error::TrainError;
use crate::metrics::StepRecord;
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
struct ViewOutputs {
    za: Tensor<3>,
    zv: Tensor<3>,
    la: Tensor<3>,
    lv: Tensor<3>,
}

/// Forward every view of clips `range` of the batch through the model in one pass (views stacked on the batch axis).
fn forward_views(model: &AvModel, batch: &HostBatch, views: usize, start: usize, len: usize, device: &Device) -> ViewOutputs {
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

/// The configured loss on `[V, N, D]` embeddings; returns (loss, lambda if SoftInfoNCE).
fn loss_of(cfg: &PretrainConfig, o: &ViewOutputs) -> (Tensor<1>, Option<Tensor<3>>) {
    let eta = cfg.loss.temperature;
    match cfg.loss.kind {
        LossKind::InfoNce => (svaclr_loss::info_nce(o.za.clone(), o.zv.clone(), eta), None),
        LossKind::SoftInfoNce => {
            let lambda = svaclr_loss::cross_affinity(
                o.la.clone(),
                o.lv.clone(),
                cfg.loss.lambda_temperature,
                cfg.loss.lambda_mode,
                cfg.loss.detach_lambda,
            );
            (svaclr_loss::soft_info_nce(o.za.clone(), o.zv.clone(), lambda.clone(), eta), Some(lambda))
        }
    }
}

/// One optimiser step's gradients, loss value and statistics for `batch` (every view of every clip in one loss).
/// With `micro_batches > 1` this is gradient caching (see [`crate::config::RunConfig::micro_batches`]); with 1 it is a
/// plain forward/backward. Public for the pre-training benchmark and the multi-device loop.
pub fn step_gradients(
    cfg: &PretrainConfig,
    model: &AvModel,
    batch: &HostBatch,
    views: usize,
    device: &Device,
) -> (GradientsParams, f64, LossStats) {
    let n = batch.specs.len();
    let k = cfg.run.micro_batches;
    let eta = cfg.loss.temperature;
    if k == 1 {
        let o = forward_views(model, batch, views, 0, n, device);
        let (loss, lambda) = loss_of(cfg, &o);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let stats = svaclr_loss::loss_stats(o.za.detach(), o.zv.detach(), lambda.map(|l| l.detach()), eta, value);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return (grads, value, stats);
    }
    let b = n / k;
    // Pass 1: embeddings of every micro-batch without keeping a graph.
    let parts: Vec<ViewOutputs> = (0..k).map(|m| forward_views(model, batch, views, m * b, b, device)).collect();
    let cat = |f: fn(&ViewOutputs) -> Tensor<3>| {
        Tensor::cat(parts.iter().map(|p| f(p).detach()).collect(), 1).require_grad()
    };
    let whole = ViewOutputs { za: cat(|p| p.za.clone()), zv: cat(|p| p.zv.clone()), la: cat(|p| p.la.clone()), lv: cat(|p| p.lv.clone()) };
    drop(parts);
    let (loss, lambda) = loss_of(cfg, &whole);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let stats = svaclr_loss::loss_stats(whole.za.clone().detach(), whole.zv.clone().detach(), lambda.map(|l| l.detach()), eta, value);
    let g = loss.backward();
    let grad_of = |t: &Tensor<3>| t.grad(&g).map(|x| Tensor::<3>::from_data(x.into_data(), device));
    let (gza, gzv, gla, glv) = (grad_of(&whole.za), grad_of(&whole.zv), grad_of(&whole.la), grad_of(&whole.lv));
    // Pass 2: re-run each micro-batch with a graph and back-propagate the cached embedding gradients.
    let mut acc = GradientsAccumulator::<AvModel>::new();
    for m in 0..k {
        let o = forward_views(model, batch, views, m * b, b, device);
        let mut surrogate: Option<Tensor<1>> = None;
        for (t, gt) in [(o.za, &gza), (o.zv, &gzv), (o.la, &gla), (o.lv, &glv)] {
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
    (acc.grads(), value, stats)
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

/// Pre-train per `cfg`, writing everything into `run_dir`. `device` is the plain device; autodiff is added here.
pub fn pretrain(
    cfg: &PretrainConfig,
    run_dir: &Path,
    device: &Device,
    device_name: &str,
    opts: &PretrainOptions,
) -> Result<PretrainSummary, TrainError> {
    let started = Instant::now();
    let hash = cfg.hash();
    fs::create_dir_all(run_dir).map_err(|source| TrainError::Io { path: run_dir.to_path_buf(), source })?;
    let existing = checkpoint::latest(run_dir)?;
    if existing.is_some() && !opts.resume {
        return Err(TrainError::Other(format!(
            "{}: already holds a run; pass --resume to continue it or choose another --out",
            run_dir.display()
        )));
    }
    let cfg_json = serde_json::to_vec_pretty(cfg).map_err(|e| TrainError::Other(e.to_string()))?;
    checkpoint::write_atomic(&run_dir.join("config.json"), &cfg_json)?;

    let manifest = Manifest::load(&cfg.manifest)?;
    let dataset = Arc::new(ClipDataset::new(&manifest, cfg.split.as_deref(), cfg.data.clone())?);
    let loader = BatchLoader::new(dataset.clone(), cfg.run.batch_size, cfg.seed, cfg.run.workers, 2);
    let steps_per_epoch = loader.batches_per_epoch();
    if steps_per_epoch == 0 {
        return Err(TrainError::Other(format!(
            "{}: {} clips are fewer than one batch of {}",
            cfg.manifest.display(),
            dataset.len(),
            cfg.run.batch_size
        )));
    }
    let views = cfg.data.views();
    let total_steps = cfg.run.max_steps.unwrap_or(usize::MAX).min(cfg.schedule.epochs * steps_per_epoch);

    let train_device = device.clone().autodiff();
    // Weights are drawn on flex and moved, so a seed means the same initial model on every backend.
    Device::flex().seed(cfg.seed);
    train_device.seed(cfg.seed);
    let mut model = cfg.model.init_portable(&train_device)?;
    let mut optim = build_optimizer(cfg);
    let mut state = TrainState { step: 0, epoch: 0, batch: 0, config_hash: hash.clone(), precise_bn: false };
    if let Some(dir) = existing {
        let saved = checkpoint::read_state(&dir)?;
        if saved.config_hash != hash {
            return Err(TrainError::Other(format!(
                "{}: --resume with a different config (hash {} vs the run's {})",
                run_dir.display(),
                hash,
                saved.config_hash
            )));
        }
        model = svaclr_models::weights::load_model(&cfg.model, &dir.join("model.bpk"), &train_device)?;
        optim = optim
            .load(dir.join("optim.bpk"))
            .map_err(|e| TrainError::Checkpoint { path: dir.join("optim.bpk"), message: format!("{e:?}") })?;
        state = saved;
        eprintln!("resuming {} at step {} (epoch {}, batch {})", run_dir.display(), state.step, state.epoch, state.batch);
    }
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut records = crate::metrics::read_records(&metrics_path, state.step)?;
    crate::metrics::rewrite(&metrics_path, &records)?;
    let mut log = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&metrics_path)
        .map_err(|source| TrainError::Io { path: metrics_path.clone(), source })?;

    let bar = crate::progress::bar(opts.progress, total_steps as u64, state.step as u64);
    let mut clips_done = 0usize;
    let loop_start = Instant::now();
    let mut last_ckpt_step = state.step;
    'epochs: while state.step < total_steps {
        let epoch = state.epoch;
        for item in loader.epoch(epoch as u64, state.batch) {
            let batch = item?;
            let t0 = Instant::now();
            let lr = learning_rate(&cfg.schedule, steps_per_epoch, state.step);
            let (grads, value, stats) = step_gradients(cfg, &model, &batch, views, &train_device);
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
            clips_done += batch.specs.len();
            let rec = StepRecord {
                step: state.step,
                epoch,
                lr,
                stats,
                clips_per_s: batch.specs.len() as f64 / dt.max(1e-9),
                wall_s: started.elapsed().as_secs_f64(),
            };
            let line = serde_json::to_string(&rec).map_err(|e| TrainError::Other(e.to_string()))?;
            writeln!(log, "{line}").map_err(|source| TrainError::Io { path: metrics_path.clone(), source })?;
            log.flush().map_err(|source| TrainError::Io { path: metrics_path.clone(), source })?;
            bar.set_position(state.step as u64);
            bar.set_message(format!("epoch {epoch} loss {:.4} lr {:.4} {:.1} clips/s", rec.stats.loss, lr, rec.clips_per_s));
            records.push(rec);
            let end_of_epoch = state.batch >= steps_per_epoch;
            if end_of_epoch {
                state.epoch += 1;
                state.batch = 0;
            }
            if state.step % cfg.run.checkpoint_every == 0 || end_of_epoch || state.step == total_steps {
                checkpoint::save(run_dir, &model, &optim, &state, 2)?;
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
        model = precise_bn(cfg, model, &loader, views, &train_device)?;
        state.precise_bn = true;
        checkpoint::save(run_dir, &model, &optim, &state, 2)?;
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
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| TrainError::Other(e.to_string()))?;
    checkpoint::write_atomic(&run_dir.join("summary.json"), &json)?;
    crate::plot::plot_run(&records, steps_per_epoch, &run_dir.join("metrics.png"))?;
    Ok(summary)
}

/// Read every step record of a run (for tests and tables).
pub fn read_metrics(run_dir: &Path) -> Result<Vec<StepRecord>, TrainError> {
    crate::metrics::read_records(&run_dir.join("metrics.jsonl"), usize::MAX)
}

