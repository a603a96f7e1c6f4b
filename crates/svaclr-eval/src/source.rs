//! Where the evaluated model comes from: a pre-training run's newest checkpoint, or (the baseline) fresh random
//! weights of the same architecture.

use std::path::{Path, PathBuf};

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use sha2::Digest;
use svaclr_data::DataConfig;
use svaclr_models::{AvModel, ModelConfig};
use svaclr_train::config::PretrainConfig;

use crate::config::hex;
use crate::error::EvalError;

/// A model ready for evaluation, with its provenance.
#[derive(Debug)]
pub struct LoadedModel {
    /// The two-tower model (fine-tuning and probing use `model.video`).
    pub model: AvModel,
    /// Its architecture.
    pub model_config: ModelConfig,
    /// The pre-training run it came from (also set for a random-init baseline that borrowed the run's architecture).
    pub checkpoint: Option<PathBuf>,
    /// Whether the weights are a fresh random initialisation rather than the checkpoint's.
    pub random_init: bool,
    /// The run's data config (clip length, crop, mel front end), when a run was given.
    pub pretrain_data: Option<DataConfig>,
    /// The run's seed, when a run was given.
    pub pretrain_seed: Option<u64>,
    /// SHA-256 of every weight of `model` ([`fingerprint`]); computing it also materialises lazily initialised
    /// parameters, so every later copy of a random-init model shares one initialisation.
    pub weights_sha256: String,
}

impl LoadedModel {
    /// Wrap a model, fingerprinting (and so materialising) its weights.
    pub fn new(
        model: AvModel,
        model_config: ModelConfig,
        checkpoint: Option<&Path>,
        random_init: bool,
        pretrain_data: Option<DataConfig>,
        pretrain_seed: Option<u64>,
    ) -> Result<Self, EvalError> {
        let weights_sha256 = fingerprint(&model)?;
        Ok(Self {
            model,
            model_config,
            checkpoint: checkpoint.map(Path::to_path_buf),
            random_init,
            pretrain_data,
            pretrain_seed,
            weights_sha256,
        })
    }
}

/// Read a run's config without loading weights.
pub fn read_run_config(run_dir: &Path) -> Result<PretrainConfig, EvalError> {
    Ok(svaclr_train::RunDir::new(run_dir).read_config()?)
}

/// Load the model to evaluate.
///
/// - `checkpoint` and not `random_init`: the run's newest checkpoint.
/// - `checkpoint` and `random_init`: the weights the run's pre-training started from (drawn with the run's seed, as
///   the trainer draws them; `seed` is not used), so a baseline differs from its run only by the training.
/// - no `checkpoint` and `random_init`: `fallback` (the config's `model`) with fresh weights (`device.seed(seed)`).
pub fn load_model(
    checkpoint: Option<&Path>,
    random_init: bool,
    fallback: Option<&ModelConfig>,
    seed: u64,
    device: &Device,
) -> Result<LoadedModel, EvalError> {
    match (checkpoint, random_init) {
        (Some(run), false) => {
            let (cfg, model) = svaclr_train::RunDir::new(run).load_pretrained(device)?;
            LoadedModel::new(model, cfg.model, Some(run), false, Some(cfg.data), Some(cfg.seed))
        }
        (Some(run), true) => {
            let cfg = read_run_config(run)?;
            let model = svaclr_train::trainer::initial_model(&cfg, device)?;
            LoadedModel::new(model, cfg.model, Some(run), true, Some(cfg.data), Some(cfg.seed))
        }
        (None, true) => {
            let cfg = fallback.ok_or_else(|| {
                EvalError::invalid(
                    "model source",
                    "--random-init without --checkpoint needs the config's \"model\" field",
                )
            })?;
            device.seed(seed);
            LoadedModel::new(cfg.init(device)?, cfg.clone(), None, true, None, None)
        }
        (None, false) => {
            Err(EvalError::invalid("model source", "give --checkpoint RUN_DIR (or --random-init for the baseline)"))
        }
    }
}

struct Fingerprint {
    hasher: sha2::Sha256,
    error: Option<String>,
}

impl ModuleVisitor for Fingerprint {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.hasher.update(format!("{:?};", t.dims()).as_bytes());
        match t.try_into_vec_as::<f32>() {
            Ok(v) => v.iter().for_each(|x| self.hasher.update(x.to_le_bytes())),
            Err(e) => self.error = Some(format!("{e:?}")),
        }
    }
}

/// SHA-256 (hex) of every float parameter of `module` (shapes and values, in visiting order): identifies a set of
/// weights for the feature cache.
pub fn fingerprint<M: Module>(module: &M) -> Result<String, EvalError> {
    let mut v = Fingerprint { hasher: sha2::Sha256::new(), error: None };
    module.visit(&mut v);
    match v.error {
        Some(e) => Err(EvalError::invalid("module parameters", format!("cannot read back: {e}"))),
        None => Ok(hex(&v.hasher.finalize())),
    }
}
