//! Action recognition from the pre-trained video encoder: end-to-end fine-tuning (GDT's protocol) and the linear
//! probe, each with multi-view testing, per fold.
//!
//! - **Fine-tuning:** the encoder and a new [`Classifier`] (dropout + linear) train together with cross-entropy on
//!   one randomly augmented clip per training video per epoch (`ClipDataset::train_sample`, speed 1), SGD with
//!   momentum (no dampening), separate learning rates and weight decay for head and encoder, and the
//!   [`crate::schedule::StepSchedule`] stepped per epoch. BatchNorm runs in training mode while training.
//! - **Linear probe:** the encoder is frozen (`valid()`: no autodiff, BatchNorm on running statistics). Features of
//!   `linear_probe.train_clips x train_crops` deterministic views of every training video (each view one example)
//!   and of `test.clips x test.crops` views of every test video are extracted once (cached in memory across folds
//!   and optionally on disk), and only the linear head is trained on them. A test video's feature is the mean of its
//!   views' features. Features are normalised per `linear_probe.feature_norm` (standardisation uses the training
//!   features' per-dimension mean and deviation for both sets).
//! - **Testing:** every test video is seen as `clips x crops` views; fine-tuning averages the views' logits per
//!   video (for the linear probe, averaging features first is the same thing up to the optional normalisation);
//!   top-1 and top-5 per fold and their mean over folds. The model after the last epoch is tested (GDT reports the
//!   best test epoch; we do not select on the test set).
//! - **Seeding:** the head's initial weights come from ChaCha8 seeded with the config's seed ([`init_head`]); data
//!   order and augmentation are pure functions of (seed, epoch, clip); dropout masks come from Burn's device RNG,
//!   re-seeded at the start of every fold (process-global on flex, so only single-run deterministic).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use svaclr_data::{BatchLoader, ClipDataset, DataConfig, Manifest};
use svaclr_models::{Classifier, ClassifierConfig, ModelConfig, VideoEncoder};

use crate::classify::{ConfusionMatrix, argmax, score_views};
use crate::config::{FinetuneConfig, FoldConfig, OptimConfig, Protocol, SplitRef};
use crate::error::EvalError;
use crate::source::LoadedModel;
use crate::views::{bar, for_each_eval_batch, label_tensor, to_host};

/// Added to the variance when standardising features (BatchNorm's epsilon).
pub const STANDARDIZE_EPS: f64 = 1e-5;

/// Bump when the feature extraction changes, so old cache files are not reused.
pub const FEATURE_CACHE_VERSION: u32 = 1;

/// Run-time options that are not part of the experiment (and so not in the config hash).
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Folder of the on-disk feature cache (used by the linear probe when `linear_probe.cache_features`).
    pub feature_cache: Option<PathBuf>,
    /// The `--device` spelling, recorded in the results.
    pub device_name: String,
}

/// One training epoch's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Head learning rate used.
    pub lr_head: f64,
    /// Encoder learning rate used (0 for the linear probe).
    pub lr_backbone: f64,
    /// Mean cross-entropy over the epoch's steps.
    pub loss: f64,
    /// Top-1 accuracy of the training batches (single augmented view, before each step's update).
    pub train_top1: f64,
}

/// The result of one fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// The fold's name.
    pub name: String,
    /// Video-level top-1 accuracy on the test set, in [0, 1].
    pub top1: f64,
    /// Video-level top-5 accuracy, in [0, 1].
    pub top5: f64,
    /// Top-1 of the kNN classifier on the probe's frozen features (`linear_probe.knn`), if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_top1: Option<f64>,
    /// Classes of the classifier.
    pub num_classes: usize,
    /// Training videos.
    pub train_videos: usize,
    /// Training examples per epoch (videos for fine-tuning; videos x views for the probe).
    pub train_examples: usize,
    /// Test videos.
    pub test_videos: usize,
    /// Views averaged per test video.
    pub views_per_video: usize,
    /// Per-epoch training statistics.
    pub epochs: Vec<EpochLog>,
    /// Confusion matrix of the test videos (arg-max predictions).
    pub confusion: ConfusionMatrix,
    /// Seconds spent on the fold (training, feature extraction and testing).
    pub seconds: f64,
}

/// Everything `svaclr finetune` reports (written as `results.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneResult {
    /// `"action_recognition"`.
    pub task: String,
    /// `finetune` or `linear_probe`.
    pub protocol: Protocol,
    /// Mean over folds of the video-level top-1 accuracy, in [0, 1].
    pub top1: f64,
    /// Mean over folds of the top-5 accuracy.
    pub top5: f64,
    /// Mean over folds of [`FoldResult::knn_top1`], if every fold has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_top1: Option<f64>,
    /// Population standard deviation of top-1 over folds (0 for one fold).
    pub top1_std: f64,
    /// Per-fold results.
    pub folds: Vec<FoldResult>,
    /// Class names by label (from the manifests' `label_name`, else `class <i>`).
    pub class_names: Vec<String>,
    /// SHA-256 of the resolved config JSON.
    pub config_hash: String,
    /// The pre-training run evaluated (`null` for a random-init baseline without a run).
    pub checkpoint: Option<PathBuf>,
    /// Whether the encoder was randomly initialised (the baseline).
    pub random_init: bool,
    /// The config's seed.
    pub seed: u64,
    /// The device the run used.
    pub device: String,
    /// Wall time of the whole evaluation, seconds.
    pub wall_seconds: f64,
    /// The encoder's architecture.
    pub model: ModelConfig,
    /// Parameters of the video encoder.
    pub encoder_params: usize,
    /// SHA-256 of the evaluated model's weights (before fine-tuning).
    pub weights_sha256: String,
}

/// A fold's datasets, label lists and class count.
pub(crate) struct FoldData {
    pub(crate) train: Arc<ClipDataset>,
    pub(crate) test: ClipDataset,
    pub(crate) train_labels: Vec<usize>,
    pub(crate) test_labels: Vec<usize>,
    pub(crate) classes: usize,
    pub(crate) names: Vec<String>,
}

fn labels_of(ds: &ClipDataset, split: &SplitRef, classes: usize) -> Result<Vec<usize>, EvalError> {
    (0..ds.len())
        .map(|i| {
            let item = ds.item(i)?;
            let label = item.label.ok_or_else(|| EvalError::Unlabelled {
                manifest: split.manifest.clone(),
                split: split.split.clone().unwrap_or_else(|| "*".into()),
                id: item.id.clone(),
            })?;
            if label >= classes {
                return Err(EvalError::LabelOutOfRange {
                    manifest: split.manifest.clone(),
                    id: item.id.clone(),
                    label,
                    classes,
                });
            }
            Ok(label)
        })
        .collect()
}

/// A fold's side: the manifest (its split checked: named and present when the manifest holds several) and its clips.
fn open_split(split: &SplitRef, data: &DataConfig) -> Result<(Manifest, ClipDataset), EvalError> {
    let manifest = Manifest::load_split(&split.manifest, split.split.as_deref())?;
    let splits = manifest.split_names();
    if split.split.is_none() && splits.len() > 1 {
        return Err(EvalError::SplitNotNamed { manifest: split.manifest.clone(), splits: splits.join(", ") });
    }
    let ds = ClipDataset::new(&manifest, split.split.as_deref(), data.clone())?;
    Ok((manifest, ds))
}

/// Refuse a fold whose test set shares a clip with its training set (by id, or by video file, canonicalised so a
/// copy under another id or path spelling is caught when it is the same file).
fn check_disjoint(fold: &FoldConfig, train: &ClipDataset, test: &ClipDataset) -> Result<(), EvalError> {
    let key = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut ids = std::collections::HashSet::new();
    let mut files = std::collections::HashSet::new();
    for i in 0..train.len() {
        let item = train.item(i)?;
        ids.insert(item.id.clone());
        files.insert(key(&item.video));
    }
    for i in 0..test.len() {
        let item = test.item(i)?;
        if ids.contains(&item.id) || files.contains(&key(&item.video)) {
            return Err(EvalError::TestInTraining {
                fold: fold.name.clone(),
                id: item.id.clone(),
                path: item.video.clone(),
            });
        }
    }
    Ok(())
}

fn open_fold(cfg: &FinetuneConfig, fold: &FoldConfig) -> Result<FoldData, EvalError> {
    let (train_m, train) = open_split(&fold.train, &cfg.train_data)?;
    let (test_m, test) = open_split(&fold.test, &cfg.test_data)?;
    check_disjoint(fold, &train, &test)?;
    let classes = cfg.num_classes.unwrap_or_else(|| train.num_classes().max(test.num_classes()));
    if classes == 0 {
        return Err(EvalError::Unlabelled {
            manifest: fold.train.manifest.clone(),
            split: fold.train.split.clone().unwrap_or_else(|| "*".into()),
            id: train.item(0).map(|i| i.id.clone()).unwrap_or_default(),
        });
    }
    let train_labels = labels_of(&train, &fold.train, classes)?;
    let test_labels = labels_of(&test, &fold.test, classes)?;
    let mut names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
    for e in train_m.entries.iter().chain(&test_m.entries) {
        if let (Some(l), Some(n)) = (e.label, &e.label_name)
            && l < classes
        {
            names[l] = n.clone();
        }
    }
    Ok(FoldData { train: Arc::new(train), test, train_labels, test_labels, classes, names })
}

/// Domain tag of the head-initialisation random stream.
const HEAD_STREAM: u64 = 0x5356_4143_4c52_0e01;

/// A new classifier head whose linear layer is initialised as PyTorch's `nn.Linear` (weights and bias uniform in
/// `±1/sqrt(in_dim)`), drawn from ChaCha8 seeded with `seed`: independent of Burn's process-global device RNG, so a
/// fold's head does not depend on what else ran before it (or in parallel, in tests).
pub fn init_head(cfg: &ClassifierConfig, seed: u64, device: &Device) -> Result<Classifier, EvalError> {
    use rand::{Rng, SeedableRng};
    let mut head = cfg.init(device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ HEAD_STREAM);
    let bound = 1.0 / (cfg.in_dim as f64).sqrt();
    let mut draw = |n: usize| (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect::<Vec<f32>>();
    let weight = draw(cfg.in_dim * cfg.num_classes); // Burn's Linear weight is [in, out]
    let bias = draw(cfg.num_classes);
    head.fc.weight =
        Param::from_tensor(Tensor::from_data(TensorData::new(weight, [cfg.in_dim, cfg.num_classes]), device));
    head.fc.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [cfg.num_classes]), device)));
    Ok(head)
}

/// SGD with PyTorch's momentum semantics (dampening 0) and coupled L2 weight decay.
pub fn sgd(momentum: f64, weight_decay: f64) -> ModuleOptimizer {
    let m = (momentum > 0.0).then(|| MomentumConfig::new().with_momentum(momentum).with_dampening(0.0));
    let wd = (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32));
    SgdConfig::new().with_momentum(m).with_weight_decay(wd).init()
}

/// Clip-level hits of a batch of logits (arg-max), for the training accuracy.
fn batch_hits(logits: Tensor<2>, labels: &[usize]) -> Result<usize, EvalError> {
    let (v, c) = to_host(logits)?;
    Ok(labels.iter().enumerate().filter(|&(i, &y)| argmax(&v[i * c..(i + 1) * c]) == y).count())
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

fn std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    mean(&xs.iter().map(|x| (x - m) * (x - m)).collect::<Vec<_>>()).sqrt()
}

/// Evaluate `source.model.video` on every fold of `cfg` with its protocol.
///
/// `device` is the plain device; autodiff is added where training needs it.
pub fn run(
    cfg: &FinetuneConfig,
    source: &LoadedModel,
    device: &Device,
    opts: &EvalOptions,
) -> Result<FinetuneResult, EvalError> {
    let started = Instant::now();
    let encoder = source.model.video.valid();
    let mut folds = Vec::with_capacity(cfg.folds.len());
    let mut names = Vec::new();
    let mut cache = crate::probe::FeatureCache::new(cfg, &source.weights_sha256, opts);
    for (k, fold) in cfg.folds.iter().enumerate() {
        if opts.progress {
            eprintln!("fold {}/{} '{}' ({})", k + 1, cfg.folds.len(), fold.name, cfg.protocol.name());
        }
        let data = open_fold(cfg, fold)?;
        let t0 = Instant::now();
        let mut result = match cfg.protocol {
            Protocol::Finetune => finetune_fold(cfg, fold, &data, &encoder, device, opts)?,
            Protocol::LinearProbe => crate::probe::probe_fold(cfg, fold, &data, &encoder, device, opts, &mut cache)?,
        };
        result.seconds = t0.elapsed().as_secs_f64();
        if names.len() < data.names.len() {
            names = data.names.clone();
        }
        folds.push(result);
    }
    let top1: Vec<f64> = folds.iter().map(|f| f.top1).collect();
    let top5: Vec<f64> = folds.iter().map(|f| f.top5).collect();
    Ok(FinetuneResult {
        task: "action_recognition".into(),
        protocol: cfg.protocol,
        top1: mean(&top1),
        top5: mean(&top5),
        knn_top1: folds.iter().map(|f| f.knn_top1).collect::<Option<Vec<f64>>>().map(|v| mean(&v)),
        top1_std: std(&top1),
        folds,
        class_names: names,
        config_hash: cfg.hash(),
        checkpoint: source.checkpoint.clone(),
        random_init: source.random_init,
        seed: cfg.seed,
        device: opts.device_name.clone(),
        wall_seconds: started.elapsed().as_secs_f64(),
        model: source.model_config.clone(),
        encoder_params: encoder.num_params(),
        weights_sha256: source.weights_sha256.clone(),
    })
}

/// One training step's shared logic: forward, loss, hits. Returns (loss tensor, loss value, hits).
pub(crate) fn step_loss(
    logits: Tensor<2>,
    labels: &[usize],
    device: &Device,
    fold: &str,
    epoch: usize,
) -> Result<(Tensor<1>, f64, usize), EvalError> {
    let targets = label_tensor(labels, device);
    let loss = CrossEntropyLossConfig::new().init(device).forward(logits.clone(), targets);
    let value = f64::from(loss.clone().into_scalar::<f32>());
    if !value.is_finite() {
        return Err(EvalError::NonFinite { what: "loss", fold: fold.to_string(), epoch, value });
    }
    let hits = batch_hits(logits.detach(), labels)?;
    Ok((loss, value, hits))
}

fn finetune_fold(
    cfg: &FinetuneConfig,
    fold: &FoldConfig,
    data: &FoldData,
    encoder: &VideoEncoder,
    device: &Device,
    opts: &EvalOptions,
) -> Result<FoldResult, EvalError> {
    let ad = device.clone().autodiff();
    let workers = cfg.train_data.workers;
    let loader = BatchLoader::new(Arc::clone(&data.train), cfg.batch_size, cfg.seed, workers, 2 * workers.max(1));
    let steps = loader.batches_per_epoch();
    if steps == 0 {
        return Err(EvalError::invalid(
            "batch_size",
            format!(
                "fold '{}': {} training clips are fewer than one batch of {}",
                fold.name,
                data.train.len(),
                cfg.batch_size
            ),
        ));
    }
    ad.seed(cfg.seed);
    // `valid()` then `train()` gives a trainable copy on the autodiff device whatever device `encoder` is on.
    let mut enc = encoder.valid().train();
    let mut head = init_head(&ClassifierConfig::new(enc.feature_dim(), data.classes, cfg.dropout), cfg.seed, &ad)?;
    let o: &OptimConfig = &cfg.optim;
    let (mut opt_enc, mut opt_head) = (sgd(o.momentum, o.backbone_weight_decay), sgd(o.momentum, o.weight_decay));
    let pb = bar(opts.progress, (cfg.epochs * steps) as u64, "steps");
    let mut logs = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let (lr_h, lr_b) = (o.schedule.lr(o.head_lr, epoch), o.schedule.lr(o.backbone_lr, epoch));
        let (mut loss_sum, mut hits, mut seen) = (0.0, 0usize, 0usize);
        for batch in loader.epoch(epoch as u64, 0) {
            let batch = batch?;
            let labels: Vec<usize> = batch
                .labels
                .iter()
                .zip(&batch.specs)
                .map(|(l, s)| {
                    l.ok_or_else(|| EvalError::Unlabelled {
                        manifest: fold.train.manifest.clone(),
                        split: fold.train.split.clone().unwrap_or_else(|| "*".into()),
                        id: s.video_id.clone(),
                    })
                })
                .collect::<Result<_, _>>()?;
            let logits = head.forward(enc.forward(batch.video_tensor(0, &ad))); // [B, classes]
            let (loss, value, h) = step_loss(logits, &labels, &ad, &fold.name, epoch)?;
            let mut grads = loss.backward();
            let g_enc = GradientsParams::from_module(&mut grads, &enc);
            let g_head = GradientsParams::from_module(&mut grads, &head);
            enc = opt_enc.step(lr_b, enc, g_enc);
            head = opt_head.step(lr_h, head, g_head);
            loss_sum += value;
            hits += h;
            seen += labels.len();
            pb.set_message(format!("epoch {epoch} loss {value:.4}"));
            pb.inc(1);
        }
        logs.push(EpochLog {
            epoch,
            lr_head: lr_h,
            lr_backbone: lr_b,
            loss: loss_sum / steps as f64,
            train_top1: hits as f64 / seen.max(1) as f64,
        });
    }
    pb.finish_and_clear();

    let (enc, head) = (enc.valid(), head.valid());
    let (clips, crops) = (cfg.test.clips, cfg.test.crops);
    let tb = bar(opts.progress, data.test.len() as u64, "test videos");
    let mut logits = Vec::new();
    let mut classes = data.classes;
    for_each_eval_batch(&data.test, clips, crops, cfg.test.batch_size, &tb, |batch| {
        let out = head.forward(enc.forward(batch.video_tensor(0, device))); // [views, classes]
        let (v, c) = to_host(out)?;
        classes = c;
        logits.extend(v);
        Ok(())
    })?;
    tb.finish_and_clear();
    if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite {
            what: "logits",
            fold: fold.name.clone(),
            epoch: cfg.epochs,
            value: f64::from(*v),
        });
    }
    let scores = score_views(&logits, classes, clips * crops, &data.test_labels)?;
    Ok(FoldResult {
        name: fold.name.clone(),
        top1: scores.top1,
        top5: scores.top5,
        knn_top1: None,
        num_classes: data.classes,
        train_videos: data.train.len(),
        train_examples: steps * cfg.batch_size,
        test_videos: scores.videos,
        views_per_video: scores.views_per_video,
        epochs: logs,
        confusion: scores.confusion,
        seconds: 0.0,
    })
}
