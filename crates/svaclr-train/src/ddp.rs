//! Data-parallel pre-training on several CUDA devices of one node, with Burn 0.22's distributed-data-parallel
//! machinery (`svaclr pretrain --device cuda:0,1,...`).
//!
//! How it works (the custom-loop form of burn-train's DDP strategy):
//! - One replica of the model per device: the model is initialised on the first device (same seed as a single-device
//!   run) and forked to the others; every float parameter is marked distributed with its parameter id
//!   (`Tensor::set_distributed`), which makes `backward()` all-reduce (mean) each parameter's gradient over the
//!   devices through NCCL as soon as it is ready, overlapped with the rest of the backward pass.
//! - A [`burn::tensor::distributed::DistributedContext`] over the devices runs the gradient sync server for the
//!   whole run.
//! - Every optimiser step, the data loader's batch of `run.batch_size` clips is cut into one contiguous shard per
//!   device; each device runs [`step_gradients`] on its shard in its own thread (so the all-reduces of all devices can
//!   meet), then its own SGD step with the averaged gradients. Replicas start equal and see equal gradients, so they
//!   stay equal; checkpoints, the metrics log and the plot come from the first device.
//!
//! Caveats (Burn 0.22.1 offers only `all_reduce`, no all-gather, and no SyncBN):
//! - **Negatives are not gathered across devices**: each device's InfoNCE / SoftInfoNCE sees only its own shard's
//!   clips as negatives, `batch_size / devices` clips (times the views) instead of the whole batch. With the paper's
//!   batch of 512 on 8 GPUs that is 64 clips per loss, not 512. Gradient caching (`run.micro_batches`) still works
//!   inside each device's shard.
//! - BatchNorm statistics are per device (no SyncBN); the running statistics of the first device are saved.
//! - The logged loss is the mean of the devices' losses; the other statistics (similarities, top-1, lambda) are the
//!   first device's.
//! - It needs NCCL at run time: only Burn's CUDA backend implements collectives. Other backends are refused before
//!   any work.
//! - Untested on hardware here (the development machine has no GPU): it type-checks with `--features cuda`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
use svaclr_data::{BatchLoader, ClipDataset, HostBatch, Manifest};
use svaclr_models::AvModel;

use crate::checkpoint::{self, TrainState};
use crate::config::PretrainConfig;
use crate::device::{DeviceError, DeviceSpec};
use crate::error::TrainError;
use crate::metrics::{MetricsLog, StepRecord};
use crate::schedule::learning_rate;
use crate::trainer::{
    PretrainOptions, PretrainSummary, build_optimizer, initial_model, open_run_dir, resume_message, resume_state,
    step_gradients, steps_per_epoch, write_run_end,
};

/// Parse a comma-separated `--device` list (`cuda:0,1`, `cuda:0,cuda:1`): a bare number after the first entry
/// repeats the first entry's backend. Returns one spec per device.
pub fn parse_device_list(s: &str) -> Result<Vec<DeviceSpec>, DeviceError> {
    let mut specs: Vec<DeviceSpec> = Vec::new();
    for part in s.split(',').map(str::trim) {
        let spec = match (specs.first(), part.parse::<usize>()) {
            (Some(DeviceSpec::Cuda(_)), Ok(i)) => DeviceSpec::Cuda(i),
            (Some(DeviceSpec::TchCuda(_)), Ok(i)) => DeviceSpec::TchCuda(i),
            _ => part.parse::<DeviceSpec>().map_err(|_| DeviceError::Unknown(s.to_string()))?,
        };
        specs.push(spec);
    }
    Ok(specs)
}

/// Check a device list for data-parallel training: at least two distinct CUDA devices.
pub fn validate_devices(specs: &[DeviceSpec]) -> Result<(), TrainError> {
    let list = specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    if specs.len() < 2 {
        return Err(TrainError::Other(format!("--device {list}: data-parallel training needs at least two devices")));
    }
    if let Some(other) = specs.iter().find(|s| !matches!(s, DeviceSpec::Cuda(_))) {
        return Err(TrainError::Other(format!(
            "--device {list}: multi-device training runs on CUDA devices only (Burn 0.22 implements its collectives \
             with NCCL), not on {other}"
        )));
    }
    for (i, a) in specs.iter().enumerate() {
        if specs[..i].contains(a) {
            return Err(TrainError::Other(format!("--device {list}: {a} is listed twice")));
        }
    }
    Ok(())
}

/// Cut a batch into `parts` contiguous shards of equal size (clip order kept).
pub fn shard(batch: &HostBatch, parts: usize) -> Result<Vec<HostBatch>, TrainError> {
    let n = batch.specs.len();
    if parts == 0 || !n.is_multiple_of(parts) {
        return Err(TrainError::Other(format!("a batch of {n} clips cannot be split evenly over {parts} devices")));
    }
    let b = n / parts;
    let [_, c, t, h, w] = batch.video_shape;
    let [_, ac, f, ts] = batch.audio_shape;
    let (vlen, alen) = (c * t * h * w, ac * f * ts);
    Ok((0..parts)
        .map(|p| {
            let clips = p * b..(p + 1) * b;
            HostBatch {
                video: batch.video.iter().map(|v| v[clips.start * vlen..clips.end * vlen].to_vec()).collect(),
                audio: batch.audio.iter().map(|a| a[clips.start * alen..clips.end * alen].to_vec()).collect(),
                video_shape: [b, c, t, h, w],
                audio_shape: [b, ac, f, ts],
                specs: batch.specs[clips.clone()].to_vec(),
                labels: batch.labels[clips].to_vec(),
            }
        })
        .collect())
}

/// Marks every float parameter as distributed under its own id, so that `backward()` all-reduces its gradient.
struct MarkDistributed;

impl ModuleMapper for MarkDistributed {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let id = param.id;
        param.map(|t| t.set_distributed(id))
    }
}

/// One device's replica: its device (with autodiff), model and optimiser.
struct Replica {
    device: Device,
    model: AvModel,
    optim: ModuleOptimizer,
}

/// Pre-train per `cfg` on several CUDA devices (data parallel), writing the same run directory as
/// [`crate::trainer::pretrain`]. `specs` must pass [`validate_devices`]; `run.batch_size` is the global batch, split
/// evenly over the devices. See the module docs for what differs from a single-device run.
pub fn pretrain_ddp(
    cfg: &PretrainConfig,
    run_dir: &Path,
    specs: &[DeviceSpec],
    opts: &PretrainOptions,
) -> Result<PretrainSummary, TrainError> {
    validate_devices(specs)?;
    let k = specs.len();
    let per_device = cfg.run.batch_size / k;
    if !cfg.run.batch_size.is_multiple_of(k) || per_device < 2 || !per_device.is_multiple_of(cfg.run.micro_batches) {
        return Err(TrainError::Other(format!(
            "run.batch_size = {} must split into {k} equal shards of at least 2 clips, each divisible by \
             run.micro_batches = {}",
            cfg.run.batch_size, cfg.run.micro_batches
        )));
    }
    let devices = specs
        .iter()
        .map(|s| s.device())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrainError::Other(e.to_string()))?;
    let device_name = specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");

    let started = Instant::now();
    let hash = cfg.hash();
    let existing = open_run_dir(cfg, run_dir, opts, true)?;
    if cfg.run.monitor_clips > 0 {
        eprintln!(
            "note: run.monitor_clips is not implemented by the multi-device loop; this run writes no monitor.jsonl"
        );
    }

    let manifest = Manifest::load(&cfg.manifest)?;
    let dataset = Arc::new(ClipDataset::new(&manifest, cfg.split.as_deref(), cfg.data.clone())?);
    let loader = BatchLoader::new(dataset.clone(), cfg.run.batch_size, cfg.seed, cfg.run.workers, 2);
    let steps_per_epoch = steps_per_epoch(cfg, &loader)?;
    let views = cfg.data.views();
    let total_steps = cfg.run.max_steps.unwrap_or(usize::MAX).min(cfg.schedule.epochs * steps_per_epoch);

    // The model of device 0, initialised (or restored) exactly as a single-device run would, then forked.
    let first = devices[0].clone().autodiff();
    let mut state = TrainState { step: 0, epoch: 0, batch: 0, config_hash: hash.clone(), precise_bn: false };
    let mut base = initial_model(cfg, &first)?;
    let mut optim_file = None;
    if let Some(dir) = existing {
        let saved = resume_state(&dir, run_dir, &hash)?;
        base = svaclr_models::weights::load_model(&cfg.model, &dir.join("model.bpk"), &first)?;
        optim_file = Some(dir.join("optim.bpk"));
        state = saved;
        eprintln!("{}", resume_message(run_dir, &state));
    }
    let _sync = DistributedContext::init(devices.clone(), DistributedConfig { all_reduce_op: ReduceOperation::Mean });
    let mut replicas = Vec::with_capacity(k);
    for d in &devices {
        let device = d.clone().autodiff();
        let model = base.clone().fork(&device).map(&mut MarkDistributed);
        let mut optim = build_optimizer(cfg);
        if let Some(path) = &optim_file {
            optim = optim
                .load(path)
                .map_err(|e| TrainError::Checkpoint { path: path.clone(), message: format!("{e:?}") })?;
        }
        replicas.push(Replica { device, model, optim });
    }
    drop(base);

    let (mut log, mut records) = MetricsLog::open(run_dir, "metrics.jsonl", state.step)?;
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
            let shards = shard(&batch, k)?;
            // One thread per device: each backward blocks in the gradient all-reduce until every device reaches it.
            let results = std::thread::scope(|scope| {
                let handles: Vec<_> = std::mem::take(&mut replicas)
                    .into_iter()
                    .zip(&shards)
                    .map(|(r, part)| {
                        scope.spawn(move || {
                            let Replica { device, model, mut optim } = r;
                            let (grads, value, stats) =
                                step_gradients(cfg, &model, part, views, &device, &crate::distributed::Single)?;
                            let model = optim.step(lr, model, grads).map(&mut MarkDistributed);
                            Ok::<_, TrainError>((Replica { device, model, optim }, value, stats))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
            })
            .map_err(|_| TrainError::Other(format!("a device thread panicked at step {}", state.step + 1)))?
            .into_iter()
            .collect::<Result<Vec<_>, TrainError>>()?;
            let mut values = Vec::with_capacity(k);
            let mut first_stats = None;
            for (r, v, s) in results {
                replicas.push(r);
                values.push(v);
                first_stats.get_or_insert(s);
            }
            let value = values.iter().sum::<f64>() / k as f64;
            if !value.is_finite() {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    step: state.step + 1,
                    epoch,
                    value,
                    kept: format!("step {last_ckpt_step}"),
                });
            }
            let mut stats = first_stats.unwrap_or_default();
            stats.loss = value;
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
            log.append(&rec)?;
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
            }
            if state.step.is_multiple_of(cfg.run.checkpoint_every) || end_of_epoch || state.step == total_steps {
                checkpoint::save(run_dir, &replicas[0].model, &replicas[0].optim, &state, 2)?;
                last_ckpt_step = state.step;
            }
            if state.step >= total_steps {
                break 'epochs;
            }
        }
        if state.batch != 0 {
            state.epoch += 1;
            state.batch = 0;
        }
    }
    bar.finish_and_clear();
    if cfg.run.precise_bn_batches > 0 && !state.precise_bn {
        // Precise BN on device 0's replica (whole batches, as a single-device run does).
        let r = &mut replicas[0];
        r.model = crate::trainer::precise_bn(cfg, r.model.clone(), &loader, views, &r.device)?;
        state.precise_bn = true;
        checkpoint::save(run_dir, &r.model, &r.optim, &state, 2)?;
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
        device: device_name,
        config_hash: hash,
        processes: 1,
        weights_hash: format!("{:016x}", crate::distributed::module_hash(&replicas[0].model)?),
        monitor_first: None,
        monitor_final: None,
    };
    write_run_end(run_dir, &summary, &records, &[], steps_per_epoch)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_parse() {
        assert_eq!(
            parse_device_list("cuda:0,1,3"),
            Ok(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1), DeviceSpec::Cuda(3)])
        );
        assert_eq!(parse_device_list("cuda:2, cuda:0"), Ok(vec![DeviceSpec::Cuda(2), DeviceSpec::Cuda(0)]));
        assert_eq!(parse_device_list("cuda,1"), Ok(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]));
        assert!(matches!(parse_device_list("cuda:0,gpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse_device_list("0,1"), Err(DeviceError::Unknown(_))));
    }

    #[test]
    fn only_two_or_more_distinct_cuda_devices_are_accepted() {
        let msg = |specs: &[DeviceSpec]| validate_devices(specs).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(validate_devices(&[DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]).is_ok());
        assert!(msg(&[DeviceSpec::Cuda(0)]).contains("at least two"));
        assert!(msg(&[DeviceSpec::Cuda(0), DeviceSpec::Flex]).contains("CUDA devices only"));
        assert!(msg(&[DeviceSpec::TchCuda(0), DeviceSpec::TchCuda(1)]).contains("not on tch-cuda:0"));
        assert!(msg(&[DeviceSpec::Cuda(1), DeviceSpec::Cuda(1)]).contains("listed twice"));
    }

    fn batch(n: usize) -> HostBatch {
        // Video [n, 1, 1, 1, 2] and audio [n, 1, 1, 3] with values that name their clip, two views.
        let video = (0..2).map(|v| (0..n * 2).map(|x| (v * 1000 + x / 2) as f32).collect()).collect();
        let audio = (0..2).map(|v| (0..n * 3).map(|x| (v * 1000 + x / 3) as f32).collect()).collect();
        let specs = (0..n)
            .map(|i| svaclr_data::ClipSpec {
                video_id: format!("c{i}"),
                index: i,
                start_sec: 0.0,
                speed_video: 1.0,
                speed_audio: 1.0,
                epoch: 0,
                seed: 0,
            })
            .collect();
        HostBatch {
            video,
            audio,
            video_shape: [n, 1, 1, 1, 2],
            audio_shape: [n, 1, 1, 3],
            specs,
            labels: (0..n).map(Some).collect(),
        }
    }

    #[test]
    fn shards_are_contiguous_and_keep_every_view() {
        let parts = shard(&batch(6), 3).expect("6 clips split over 3 devices");
        assert_eq!(parts.len(), 3);
        for (p, s) in parts.iter().enumerate() {
            let clips = [2 * p, 2 * p + 1];
            assert_eq!(s.video_shape, [2, 1, 1, 1, 2]);
            assert_eq!(s.audio_shape, [2, 1, 1, 3]);
            assert_eq!(s.specs.iter().map(|c| c.index).collect::<Vec<_>>(), clips);
            assert_eq!(s.labels, clips.map(Some).to_vec());
            for v in 0..2 {
                let want =
                    |per: usize| clips.iter().flat_map(|&c| vec![(v * 1000 + c) as f32; per]).collect::<Vec<_>>();
                assert_eq!(s.video[v], want(2), "video view {v} of shard {p}");
                assert_eq!(s.audio[v], want(3), "audio view {v} of shard {p}");
            }
        }
        assert!(shard(&batch(6), 4).is_err());
        assert!(shard(&batch(6), 0).is_err());
    }
}
