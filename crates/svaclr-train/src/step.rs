//! One training step: views -> embeddings -> the configured loss -> gradients, for one device of however many take
//! part (see [`crate::distributed`]). The loop ([`crate::trainer`]), the monitor ([`crate::monitor`]) and the
//! pre-training benchmark call it; it knows nothing about runs, logs or checkpoints.

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use svaclr_data::{BatchLoader, HostBatch};
use svaclr_loss::{Anchors, LossStats, view_major};
use svaclr_models::AvModel;

use crate::config::PretrainConfig;
use crate::distributed::{self, Collective};
use crate::error::TrainError;

/// The encoders' outputs for one batch arranged as `[V, N, D]` per modality, ready for the loss.
pub struct ViewOutputs {
    /// Audio projections `[V, N, D]`.
    pub za: Tensor<3>,
    /// Video projections `[V, N, D]`.
    pub zv: Tensor<3>,
    /// Audio representations mapped by the cross-affinity module, `[V, N, Dy]`.
    pub la: Tensor<3>,
    /// Video representations mapped by the cross-affinity module, `[V, N, Dy]`.
    pub lv: Tensor<3>,
}

impl ViewOutputs {
    /// The same outputs without their autodiff graph (which frees the activations it holds).
    pub fn detached(self) -> Self {
        Self { za: self.za.detach(), zv: self.zv.detach(), la: self.la.detach(), lv: self.lv.detach() }
    }

    /// The outputs of consecutive clip ranges joined along the clip axis, without their autodiff graphs.
    pub fn cat_detached(parts: &[ViewOutputs]) -> Self {
        let cat =
            |f: fn(&ViewOutputs) -> &Tensor<3>| Tensor::cat(parts.iter().map(|p| f(p).clone().detach()).collect(), 1);
        Self { za: cat(|p| &p.za), zv: cat(|p| &p.zv), la: cat(|p| &p.la), lv: cat(|p| &p.lv) }
    }

    /// The configured loss over `anchors` and, for SoftInfoNCE, the lambda of the whole batch.
    ///
    /// # Shapes
    /// Returns `[1]` and `[N, V, V]`.
    pub fn loss(&self, cfg: &PretrainConfig, anchors: Anchors) -> Result<(Tensor<1>, Option<Tensor<3>>), TrainError> {
        let affinity = Some((self.la.clone(), self.lv.clone()));
        Ok(cfg.loss.loss(self.za.clone(), self.zv.clone(), affinity, anchors)?)
    }

    /// The loss statistics of these outputs (host side, no gradient).
    pub fn stats(&self, cfg: &PretrainConfig, lambda: Option<Tensor<3>>, loss: f64) -> Result<LossStats, TrainError> {
        let lambda = lambda.map(|l| l.detach());
        Ok(svaclr_loss::loss_stats(
            self.za.clone().detach(),
            self.zv.clone().detach(),
            lambda,
            cfg.loss.temperature,
            loss,
        )?)
    }
}

/// Forward every view of clips `start..start + len` of the batch through the model in one pass (views stacked on the
/// batch axis).
///
/// # Shapes
/// Every output is `[views, len, D]`.
pub fn forward_views(
    model: &AvModel,
    batch: &HostBatch,
    views: usize,
    start: usize,
    len: usize,
    device: &Device,
) -> Result<ViewOutputs, TrainError> {
    let video: Vec<Tensor<5>> = (0..views).map(|v| batch.video_tensor(v, device).narrow(0, start, len)).collect();
    let audio: Vec<Tensor<4>> = (0..views).map(|v| batch.audio_tensor(v, device).narrow(0, start, len)).collect();
    let out = model.forward(Tensor::cat(video, 0), Tensor::cat(audio, 0));
    Ok(ViewOutputs {
        za: view_major(out.z_audio, views)?,
        zv: view_major(out.z_video, views)?,
        la: view_major(out.l_audio, views)?,
        lv: view_major(out.l_video, views)?,
    })
}

/// One optimiser step's gradients (this rank's; [`distributed::average_gradients`] averages them) and the global
/// batch's loss and statistics.
///
/// With one rank and `micro_batches == 1` this is a plain forward/backward. Otherwise it is gradient caching (see
/// [`crate::config::RunConfig::micro_batches`]) with the embeddings of every rank gathered between the passes:
/// pass 1 embeds this rank's clips, the embeddings of all ranks are gathered as leaves of a new graph, this rank's
/// share of the loss (its own clips as anchors, every clip as negatives: [`Anchors::Share`]) is differentiated with
/// respect to them, the ranks' gradients are summed (one all-reduce: the exact backward of the gather, since a rank's
/// embeddings are the other ranks' negatives), and pass 2 back-propagates this rank's slice through its encoders.
/// The sum over ranks makes each rank's parameter gradient P times its part of the global one, so the average over
/// ranks is the gradient of the single-process loss on the global batch.
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
    let (rank, world) = (comm.rank(), comm.size());
    if k == 1 && world == 1 {
        let o = forward_views(model, batch, views, 0, n, device)?;
        let (loss, lambda) = o.loss(cfg, Anchors::All)?;
        let value = loss.clone().into_scalar::<f32>() as f64;
        let stats = o.stats(cfg, lambda, value)?;
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return Ok((grads, value, stats));
    }
    let b = n / k;
    let soft = cfg.loss.kind == svaclr_loss::LossKind::SoftInfoNce;
    // Pass 1: embeddings of every micro-batch. With a single micro-batch its graph is kept for pass 2.
    let mut parts: Vec<ViewOutputs> =
        (0..k).map(|m| forward_views(model, batch, views, m * b, b, device)).collect::<Result<_, _>>()?;
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
    let anchors = if world == 1 { Anchors::All } else { Anchors::Share { rank, world } };
    let (loss, lambda) = whole.loss(cfg, anchors)?;
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
    let stats = whole.stats(cfg, lambda, value)?;
    // Pass 2: back-propagate this rank's slice of the cached embedding gradients through each micro-batch.
    let mut acc = GradientsAccumulator::<AvModel>::new();
    for m in 0..k {
        let o = match parts.pop() {
            Some(o) => o,
            None => forward_views(model, batch, views, m * b, b, device)?,
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
pub fn precise_bn(
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
            drop(forward_views(&model, &batch, views, m * micro, micro, device)?);
            acc.record(&model);
            if m + 1 < cfg.run.micro_batches {
                model = acc.prepare(model);
            }
        }
    }
    Ok(acc.finish(model))
}
