//! The linear probe: features of the frozen encoder extracted once per split (cached in memory across folds and
//! optionally on disk, keyed by the encoder's weights, the data config, the split and the views), then a linear
//! head trained on them (see [`crate::finetune`] for the protocol).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::prelude::*;
use sha2::Digest;
use svaclr_data::{ClipDataset, DataConfig, epoch_order};
use svaclr_models::{Classifier, ClassifierConfig, VideoEncoder};

use crate::classify::{score_views, topk_accuracy};
use crate::config::{FeatureNorm, FinetuneConfig, FoldConfig, Protocol, SplitRef, hex};
use crate::error::EvalError;
use crate::finetune::{
    EpochLog, EvalOptions, FEATURE_CACHE_VERSION, FoldData, FoldResult, STANDARDIZE_EPS, init_head, sgd, step_loss,
};
use crate::knn::knn_scores;
use crate::retrieval::Embeddings;
use crate::views::{bar, for_each_eval_batch, label_tensor, to_host};

/// Features of every view of every clip of one split, `[clips * views, dim]`.
#[derive(Clone, Debug)]
pub struct SplitFeatures {
    /// Row-major features; the views of a clip are consecutive.
    pub rows: Embeddings,
    /// Views per clip.
    pub views: usize,
}

/// In-memory (and optionally on-disk) cache of frozen-encoder features, keyed by the encoder's weights, the data
/// config, the split and the views.
pub struct FeatureCache {
    encoder_fingerprint: String,
    dir: Option<PathBuf>,
    memory: HashMap<String, SplitFeatures>,
}

impl FeatureCache {
    pub(crate) fn new(cfg: &FinetuneConfig, weights_sha256: &str, opts: &EvalOptions) -> Self {
        let probe = cfg.protocol == Protocol::LinearProbe;
        let dir = if probe && cfg.linear_probe.cache_features { opts.feature_cache.clone() } else { None };
        Self { encoder_fingerprint: weights_sha256.to_string(), dir, memory: HashMap::new() }
    }

    fn key(&self, split: &SplitRef, data: &DataConfig, clips: usize, crops: usize) -> String {
        let desc = serde_json::json!({
            "version": FEATURE_CACHE_VERSION,
            "encoder": self.encoder_fingerprint,
            "manifest": split.manifest,
            "split": split.split,
            "data": data,
            "clips": clips,
            "crops": crops,
        });
        hex(&sha2::Sha256::digest(desc.to_string().as_bytes()))[..24].to_string()
    }

    fn file(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("features-{key}.safetensors")))
    }

    /// Features of `ds` (the clips of `split` sampled with `data`), from memory, disk or the encoder.
    #[allow(clippy::too_many_arguments)]
    fn get(
        &mut self,
        ds: &ClipDataset,
        split: &SplitRef,
        data: &DataConfig,
        clips: usize,
        crops: usize,
        encoder: &VideoEncoder,
        device: &Device,
        views_per_batch: usize,
        progress: bool,
    ) -> Result<SplitFeatures, EvalError> {
        let key = self.key(split, data, clips, crops);
        if let Some(f) = self.memory.get(&key) {
            return Ok(f.clone());
        }
        let views = clips * crops;
        let expected_rows = ds.len() * views;
        if let Some(path) = self.file(&key).filter(|p| p.is_file()) {
            let t = svaclr_models::weights::read_tensor(&path, "features")?;
            let shape = t.shape().to_vec();
            let values = t
                .try_into_vec::<f32>()
                .map_err(|e| EvalError::invalid("feature cache", format!("{}: {e:?}", path.display())))?;
            if shape.len() == 2 && shape[0] == expected_rows {
                let f = SplitFeatures { rows: Embeddings::new(values, shape[0], shape[1])?, views };
                self.memory.insert(key, f.clone());
                return Ok(f);
            }
            // A stale or foreign file: recompute and overwrite.
        }
        let pb = bar(progress, ds.len() as u64, "clips (features)");
        let mut rows = Vec::with_capacity(expected_rows * encoder.feature_dim());
        let mut dim = encoder.feature_dim();
        for_each_eval_batch(ds, clips, crops, views_per_batch, &pb, |batch| {
            let (v, d) = to_host(encoder.forward(batch.video_tensor(0, device)))?; // [views, dim]
            dim = d;
            rows.extend(v);
            Ok(())
        })?;
        pb.finish_and_clear();
        let f = SplitFeatures { rows: Embeddings::new(rows, expected_rows, dim)?, views };
        if let Some(path) = self.file(&key) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(EvalError::io(parent))?;
            }
            let td = TensorData::new(f.rows.as_slice().to_vec(), [expected_rows, dim]);
            svaclr_models::weights::write_tensors(&path, &[("features", td)])?;
        }
        self.memory.insert(key, f.clone());
        Ok(f)
    }
}

pub(crate) fn probe_fold(
    cfg: &FinetuneConfig,
    fold: &FoldConfig,
    data: &FoldData,
    encoder: &VideoEncoder,
    device: &Device,
    opts: &EvalOptions,
    cache: &mut FeatureCache,
) -> Result<FoldResult, EvalError> {
    let p = &cfg.linear_probe;
    let vb = cfg.test.batch_size;
    let train = cache.get(
        &data.train,
        &fold.train,
        &cfg.train_data,
        p.train_clips,
        p.train_crops,
        encoder,
        device,
        vb,
        opts.progress,
    )?;
    let test = cache.get(
        &data.test,
        &fold.test,
        &cfg.test_data,
        cfg.test.clips,
        cfg.test.crops,
        encoder,
        device,
        vb,
        opts.progress,
    )?;
    let test_mean = test.rows.group_mean(test.views)?;
    let knn_top1 = match &p.knn {
        Some(knn) => {
            let train_mean = train.rows.group_mean(train.views)?;
            let scores = knn_scores(&train_mean, &data.train_labels, &test_mean, data.classes, knn)?;
            Some(topk_accuracy(&scores, data.classes, &data.test_labels, 1)?)
        }
        None => None,
    };
    let (x_train, x_test) = match p.feature_norm {
        FeatureNorm::None => (train.rows, test_mean),
        FeatureNorm::L2 => (train.rows.l2_normalized(), test_mean.l2_normalized()),
        FeatureNorm::Standardize => {
            let (mean, std) = train.rows.column_stats();
            (
                train.rows.standardized(&mean, &std, STANDARDIZE_EPS)?,
                test_mean.standardized(&mean, &std, STANDARDIZE_EPS)?,
            )
        }
    };
    let y_train: Vec<usize> = data.train_labels.iter().flat_map(|&y| std::iter::repeat_n(y, train.views)).collect();
    let (n, dim) = (x_train.rows(), x_train.dim());

    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let mut head: Classifier = init_head(&ClassifierConfig::new(dim, data.classes, cfg.dropout), cfg.seed, &ad)?;
    let o = &cfg.optim;
    let mut opt = sgd(o.momentum, o.weight_decay);
    let x_all: Tensor<2> = Tensor::from_data(TensorData::new(x_train.as_slice().to_vec(), [n, dim]), &ad);
    let batch = cfg.batch_size.min(n);
    let steps = n.div_ceil(batch);
    let pb = bar(opts.progress, (cfg.epochs * steps) as u64, "steps");
    let mut logs = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let lr = o.schedule.lr(o.head_lr, epoch);
        let order = epoch_order(cfg.seed, epoch as u64, n);
        let (mut loss_sum, mut hits) = (0.0, 0usize);
        for chunk in order.chunks(batch) {
            let labels: Vec<usize> = chunk.iter().map(|&i| y_train[i]).collect();
            let xb = x_all.clone().select(0, label_tensor(chunk, &ad)); // [b, dim]
            let (loss, value, h) = step_loss(head.forward(xb), &labels, &ad, &fold.name, epoch)?;
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = opt.step(lr, head, grads);
            loss_sum += value;
            hits += h;
            pb.inc(1);
        }
        logs.push(EpochLog {
            epoch,
            lr_head: lr,
            lr_backbone: 0.0,
            loss: loss_sum / steps as f64,
            train_top1: hits as f64 / n as f64,
        });
    }
    pb.finish_and_clear();

    let head = head.valid();
    let xt: Tensor<2> = Tensor::from_data(TensorData::new(x_test.as_slice().to_vec(), [x_test.rows(), dim]), device);
    let (logits, classes) = to_host(head.forward(xt))?; // [videos, classes]
    if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite {
            what: "logits",
            fold: fold.name.clone(),
            epoch: cfg.epochs,
            value: f64::from(*v),
        });
    }
    let scores = score_views(&logits, classes, 1, &data.test_labels)?;
    Ok(FoldResult {
        name: fold.name.clone(),
        top1: scores.top1,
        top5: scores.top5,
        knn_top1,
        num_classes: data.classes,
        train_videos: data.train.len(),
        train_examples: n,
        test_videos: scores.videos,
        views_per_video: test.views,
        epochs: logs,
        confusion: scores.confusion,
        seconds: 0.0,
    })
}

/// Where `svaclr finetune` keeps the feature cache when no folder is given: `OUT/features`.
pub fn default_feature_cache(out: &Path) -> PathBuf {
    out.join("features")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fingerprint;
    use burn::tensor::Distribution;
    use svaclr_models::{SizePreset, VideoArch, VideoEncoderConfig};

    /// The encoder arrives on a plain device; `valid().train()` must give a copy whose parameters receive gradients
    /// and move under SGD, while the original keeps its weights (folds restart from it).
    #[test]
    fn a_plain_device_encoder_becomes_trainable() {
        let dev = Device::flex();
        let enc = VideoEncoderConfig::new(VideoArch::R2Plus1d18, SizePreset::Tiny).init(&dev);
        let before = fingerprint(&enc).expect("fingerprint");
        let ad = dev.clone().autodiff();
        let t = enc.valid().train();
        let x = Tensor::<5>::random([2, 3, 4, 16, 16], Distribution::Normal(0.0, 1.0), &ad);
        let loss = t.forward(x).square().sum(); // [2, 64] -> scalar
        let mut grads = loss.backward();
        let g = GradientsParams::from_module(&mut grads, &t);
        assert!(!g.is_empty(), "no gradients reached the encoder");
        let stepped = sgd(0.9, 0.0).step(0.1, t, g);
        assert_ne!(fingerprint(&stepped).expect("fingerprint"), before, "SGD did not move the weights");
        assert_eq!(fingerprint(&enc).expect("fingerprint"), before, "the original encoder must not change");
    }
}
