//! The pre-training loop, the one loop of every launch mode (one device, several devices of one process, several
//! processes over MPI: they differ only in the [`Collective`] a rank is given, see [`crate::launch`]). A custom loop
//! (not burn-train's Learner), because a two-tower contrastive model with gradient caching, step-level checkpoints
//! and exact resume fits it better. The step itself is [`crate::step`]; the files are [`RunDir`]'s.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use svaclr_data::{BatchLoader, ClipDataset, Manifest};
use svaclr_models::AvModel;

use crate::config::PretrainConfig;
use crate::distributed::{self, Collective, Single};
use crate::error::TrainError;
use crate::metrics::{MetricsLog, MonitorRecord, PretrainSummary, StepRecord};
use crate::monitor::Monitor;
use crate::run_dir::{CHECKPOINTS_KEPT, RunDir, TrainState};
use crate::schedule::learning_rate;
use crate::step::{precise_bn, step_gradients};

/// How to run: resume or not, show a progress bar or not.
#[derive(Clone, Debug, Default)]
pub struct PretrainOptions {
    /// Continue from the newest checkpoint of `run_dir` (the config must be the same).
    pub resume: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
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
    let run = RunDir::new(run_dir);
    let existing = run.open_for_training(cfg, opts.resume, is_root)?;

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
    if let Some(ckpt) = existing {
        let saved = ckpt.read_state()?;
        if saved.config_hash != hash {
            return Err(TrainError::Other(format!(
                "{}: --resume with a different config (hash {} vs the run's {})",
                run_dir.display(),
                hash,
                saved.config_hash
            )));
        }
        model = svaclr_models::weights::load_model(&cfg.model, &ckpt.model_file(), &train_device)?;
        optim = optim
            .load(ckpt.optim_file())
            .map_err(|e| TrainError::Checkpoint { path: ckpt.optim_file(), message: format!("{e:?}") })?;
        state = saved;
        if is_root {
            eprintln!(
                "resuming {} at step {} (epoch {}, batch {})",
                run_dir.display(),
                state.step,
                state.epoch,
                state.batch
            );
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
            let (log, records) = MetricsLog::open(run.metrics_file(), state.step)?;
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
            let (log, records) = MetricsLog::<MonitorRecord>::open(run.monitor_file(), state.step)?;
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
                    run.save_checkpoint(&model, &optim, &state, CHECKPOINTS_KEPT)?;
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
            run.save_checkpoint(&model, &optim, &state, CHECKPOINTS_KEPT)?;
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
        run.write_end(&summary, &records, &monitor_records, steps_per_epoch)?;
    }
    Ok(summary)
}
