//! The fine-tuning / linear-probe config: one JSON file, every field written out, unknown fields rejected, validated
//! (manifests included) before any work. See `configs/finetune/*.json` and docs/evaluation.md.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;
use svaclr_data::DataConfig;
use svaclr_models::ModelConfig;

use crate::error::EvalError;
use crate::schedule::StepSchedule;

/// What is trained on top of the pre-trained video encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// The whole network (encoder + new linear head) is trained end to end (GDT's fine-tuning).
    Finetune,
    /// The encoder is frozen; its features are extracted once and a linear classifier is trained on them.
    LinearProbe,
}

impl Protocol {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Finetune => "finetune",
            Protocol::LinearProbe => "linear_probe",
        }
    }
}

/// One split of one manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRef {
    /// Manifest (JSON Lines); relative paths are resolved against the data root.
    pub manifest: PathBuf,
    /// Split to keep (`null`: every entry of the manifest).
    pub split: Option<String>,
}

/// A train/test pair; results are reported per fold and averaged (UCF101 and HMDB51 have three).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldConfig {
    /// Name used in results (`fold1`, ...).
    pub name: String,
    /// Clips the classifier is trained on.
    pub train: SplitRef,
    /// Clips it is tested on.
    pub test: SplitRef,
}

/// SGD with momentum (PyTorch semantics: no dampening), separate rates and weight decay for head and encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Learning rate of the classifier head after warm-up (GDT: 2e-2).
    pub head_lr: f64,
    /// Learning rate of the encoder after warm-up (GDT: 2e-3); unused by the linear probe.
    pub backbone_lr: f64,
    /// Momentum (GDT: 0.9).
    pub momentum: f64,
    /// L2 weight decay of the head (GDT: 5e-3).
    pub weight_decay: f64,
    /// L2 weight decay of the encoder (GDT: 5e-3).
    pub backbone_weight_decay: f64,
    /// Warm-up and step decay, applied to both rates, stepped once per epoch.
    pub schedule: StepSchedule,
}

/// Multi-view testing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// Temporal clips per test video, evenly spaced (GDT: 10).
    pub clips: usize,
    /// Spatial crops per clip: 1 (centre) or 3 (left/centre/right along the long side) (GDT: 3).
    pub crops: usize,
    /// Views per forward pass at test time (whole videos are kept together).
    pub batch_size: usize,
}

/// How the linear probe normalises features before the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureNorm {
    /// Raw encoder features (GDT's feature-extraction mode).
    None,
    /// Each feature vector divided by its L2 norm (GDT's `use_l2_norm`).
    L2,
    /// Each dimension shifted and scaled by the training features' mean and standard deviation (a BatchNorm without
    /// affine parameters and with frozen statistics before the linear layer, as MAE's linear probe).
    Standardize,
}

/// Linear-probe settings (used when `protocol` is `linear_probe`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// Deterministic clips per training video whose features become training examples (evenly spaced).
    pub train_clips: usize,
    /// Spatial crops per training clip (1 or 3); each crop is another example.
    pub train_crops: usize,
    /// Feature normalisation before the classifier: `none`, `l2` or `standardize`.
    pub feature_norm: FeatureNorm,
    /// Keep extracted features on disk (`OUT/features/`, or the `--feature-cache` folder) and reuse them when the
    /// encoder weights, data config and split are unchanged.
    pub cache_features: bool,
    /// Also classify with a weighted k-nearest-neighbour vote on the same frozen features (per video: the mean of
    /// its views' features), reported as `knn_top1`; absent: no kNN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn: Option<crate::knn::KnnConfig>,
}

/// Everything `svaclr finetune` needs. Saved resolved (absolute paths) as `OUT/config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// `finetune` or `linear_probe`.
    pub protocol: Protocol,
    /// Seeds head initialisation (and the encoder for `random_init`), data order and augmentation.
    pub seed: u64,
    /// Training epochs (GDT: 12).
    pub epochs: usize,
    /// Training clips (fine-tuning) or feature rows (linear probe) per optimiser step (GDT: 32).
    pub batch_size: usize,
    /// Dropout before the linear head, in [0, 1) (GDT's fine-tuning script: none).
    pub dropout: f64,
    /// Number of classes (`null`: one more than the largest label of the fold's train and test sets).
    pub num_classes: Option<usize>,
    /// The baseline: a randomly initialised encoder (same architecture, protocol and seed) instead of the checkpoint's
    /// weights. The command line's `--random-init` sets it.
    pub random_init: bool,
    /// Folder that relative manifest paths are resolved against (itself relative to the config file); `null`: the
    /// config file's folder. The command line's `--data-root` overrides it.
    pub data_root: Option<PathBuf>,
    /// Train/test pairs.
    pub folds: Vec<FoldConfig>,
    /// Clip sampling and augmentation for training (one view: `speeds` must be `[1, 1]`).
    pub train_data: DataConfig,
    /// Clip sampling for testing (deterministic clips x crops; augmentation settings only normalise).
    pub test_data: DataConfig,
    pub optim: OptimConfig,
    pub test: TestConfig,
    pub linear_probe: LinearProbeConfig,
    /// The encoder architecture for `random_init` runs without a checkpoint (`null` otherwise; a checkpoint's own
    /// model config always wins).
    pub model: Option<ModelConfig>,
}

impl FinetuneConfig {
    /// Read `path`, resolve the data root (`data_root` overrides the file's) and manifest paths, and validate.
    pub fn load(path: &Path, data_root: Option<&Path>) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
        let cfg = Self::parse(&text, path, data_root)?;
        cfg.check_manifests().map_err(|message| EvalError::Config { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// [`FinetuneConfig::load`] without the filesystem: parse `text` (the contents of `path`, which errors name and
    /// relative paths are resolved against), resolve the data root and manifests, and check every field, but not
    /// that the manifests exist.
    pub fn parse(text: &str, path: &Path, data_root: Option<&Path>) -> Result<Self, EvalError> {
        let config_error = |message: String| EvalError::Config { path: path.to_path_buf(), message };
        let mut cfg: Self = serde_json::from_str(text).map_err(|e| config_error(e.to_string()))?;
        cfg.resolve(path.parent().unwrap_or(Path::new(".")), data_root);
        cfg.validate_fields().map_err(config_error)?;
        Ok(cfg)
    }

    /// Make the data root and manifest paths absolute-or-rooted: `data_root` (if given) replaces the config's,
    /// a relative config root is taken relative to `base`, and relative manifests relative to the root.
    pub fn resolve(&mut self, base: &Path, data_root: Option<&Path>) {
        let root = match (data_root, &self.data_root) {
            (Some(r), _) => r.to_path_buf(),
            (None, Some(r)) if r.is_relative() => base.join(r),
            (None, Some(r)) => r.clone(),
            (None, None) => base.to_path_buf(),
        };
        for f in &mut self.folds {
            for s in [&mut f.train, &mut f.test] {
                if s.manifest.is_relative() {
                    s.manifest = root.join(&s.manifest);
                }
            }
        }
        self.data_root = Some(root);
    }

    /// Check every field and that every manifest exists; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_fields()?;
        self.check_manifests()
    }

    /// The checks of [`FinetuneConfig::validate`] that need no filesystem; the message names the field.
    pub fn validate_fields(&self) -> Result<(), String> {
        self.train_data.validate().map_err(|e| format!("train_data: {e}"))?;
        self.test_data.validate().map_err(|e| format!("test_data: {e}"))?;
        if self.train_data.views() != 1 {
            return Err("train_data.speeds must be [1, 1]: fine-tuning and probing use one view per clip".into());
        }
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.num_classes == Some(0) {
            return Err("num_classes must be at least 1 (or null)".into());
        }
        let o = &self.optim;
        for (name, v) in [("head_lr", o.head_lr), ("backbone_lr", o.backbone_lr)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("optim.{name} = {v} must be a finite non-negative number"));
            }
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(format!("optim.momentum = {} must be in [0, 1)", o.momentum));
        }
        for (name, v) in [("weight_decay", o.weight_decay), ("backbone_weight_decay", o.backbone_weight_decay)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("optim.{name} = {v} must be >= 0"));
            }
        }
        o.schedule.validate().map_err(|e| format!("optim.schedule: {e}"))?;
        let valid_crops = |c: usize| c == 1 || c == 3;
        if self.test.clips == 0 || !valid_crops(self.test.crops) {
            return Err(format!(
                "test: clips = {} must be >= 1 and crops = {} 1 or 3",
                self.test.clips, self.test.crops
            ));
        }
        if self.test.batch_size == 0 {
            return Err("test.batch_size must be at least 1".into());
        }
        let p = &self.linear_probe;
        if p.train_clips == 0 || !valid_crops(p.train_crops) {
            return Err(format!(
                "linear_probe: train_clips = {} must be >= 1 and train_crops = {} 1 or 3",
                p.train_clips, p.train_crops
            ));
        }
        if let Some(knn) = &p.knn {
            knn.validate()?;
        }
        if let Some(m) = &self.model {
            m.validate().map_err(|e| format!("model: {e}"))?;
        }
        if self.folds.is_empty() {
            return Err("folds: give at least one train/test pair".into());
        }
        let mut names = HashSet::new();
        for f in &self.folds {
            if f.name.trim().is_empty() || !names.insert(f.name.as_str()) {
                return Err(format!("folds: name '{}' is empty or repeated", f.name));
            }
        }
        Ok(())
    }

    fn check_manifests(&self) -> Result<(), String> {
        for f in &self.folds {
            for (what, s) in [("train", &f.train), ("test", &f.test)] {
                if !s.manifest.is_file() {
                    return Err(format!("fold '{}' {what}: manifest {} does not exist", f.name, s.manifest.display()));
                }
            }
        }
        Ok(())
    }

    /// The resolved config as pretty JSON (what `OUT/config.json` holds).
    pub fn to_json(&self) -> String {
        // Serialising plain data (no maps with non-string keys) cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// SHA-256 (hex) of the resolved config's compact JSON.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        hex(&sha2::Sha256::digest(json.as_bytes()))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
