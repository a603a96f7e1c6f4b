//! Audio-visual retrieval with a pre-trained two-tower model (paper Table 3): embeddings of every clip of a test
//! split, then R@K in both directions (see [`crate::retrieval`] for the metrics and the tie rule).
//!
//! **Embeddings.** By default the projections z (`z_video`, `z_audio`) — the shared space the contrastive loss aligns
//! — L2-normalised, so similarity is the cosine. The encoder representations y are an option (`--embedding y`);
//! they live in separate spaces that are only aligned through the projectors, so they mostly serve diagnostics.
//! With `clips > 1` each clip's (evenly spaced, centre-cropped) views are embedded, L2-normalised, averaged and
//! normalised again; the audio of a view is the audio window starting where the view's video starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use svaclr_data::{ClipDataset, DataConfig};
use svaclr_models::AvModel;

use crate::config::hex;
use crate::error::EvalError;
use crate::retrieval::{BothDirections, Embeddings, evaluate_pairs};
use crate::views::{bar, for_each_eval_batch, to_host};

/// The tie rule, as written into results.
pub const TIE_RULE: &str = "pessimistic: rank = 1 + #{irrelevant items with similarity >= the best relevant item}";

/// Which embeddings are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingKind {
    /// Projector outputs (the contrastive space), L2-normalised. The default.
    Z,
    /// Encoder representations, L2-normalised (needs equal video and audio widths).
    Y,
}

impl EmbeddingKind {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Z => "z",
            Self::Y => "y",
        }
    }
}

impl FromStr for EmbeddingKind {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "z" => Ok(Self::Z),
            "y" => Ok(Self::Y),
            other => Err(EvalError::invalid("embedding", format!("'{other}': expected z or y"))),
        }
    }
}

/// The resolved retrieval settings (hashed into the results).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveConfig {
    /// The pre-training run (`null` for a random-init model without a run).
    pub checkpoint: Option<PathBuf>,
    /// Whether the model's weights are random (the baseline).
    pub random_init: bool,
    /// The test manifest.
    pub manifest: PathBuf,
    /// Its split (`null`: every entry).
    pub split: Option<String>,
    /// The K of R@K.
    pub ks: Vec<usize>,
    /// Clips per video whose embeddings are averaged.
    pub clips: usize,
    /// Also compute class-level retrieval (needs labels).
    pub class_level: bool,
    /// z (default) or y.
    pub embedding: EmbeddingKind,
    /// Views per forward pass.
    pub batch_size: usize,
    /// Clip sampling (the pre-training run's data config; only its deterministic parts are used).
    pub data: DataConfig,
    /// The run's (or baseline's) seed, for provenance.
    pub seed: u64,
    /// SHA-256 of the model's weights (`LoadedModel::weights_sha256`).
    pub weights_sha256: String,
}

impl RetrieveConfig {
    /// SHA-256 (hex) of the compact JSON.
    pub fn hash(&self) -> String {
        hex(&sha2::Sha256::digest(serde_json::to_string(self).unwrap_or_default().as_bytes()))
    }

    /// Check ranges.
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err(EvalError::invalid("retrieval k", format!("{:?}: give one or more K >= 1", self.ks)));
        }
        if self.clips == 0 || self.batch_size == 0 {
            return Err(EvalError::invalid("retrieval", "clips and batch size must be at least 1"));
        }
        self.data.validate()?;
        Ok(())
    }
}

/// Paired embeddings of a test split: row `i` of `video` and of `audio` come from clip `i`.
#[derive(Clone, Debug)]
pub struct PairEmbeddings {
    /// `[clips, d]`, L2-normalised.
    pub video: Embeddings,
    /// `[clips, d]`, L2-normalised.
    pub audio: Embeddings,
    /// Class of each clip.
    pub labels: Vec<Option<usize>>,
}

/// Embed every clip of `ds` (see the module docs).
pub fn extract(
    model: &AvModel,
    ds: &ClipDataset,
    clips: usize,
    kind: EmbeddingKind,
    batch_size: usize,
    device: &Device,
    progress: bool,
) -> Result<PairEmbeddings, EvalError> {
    let model = model.valid();
    let (mut v, mut a) = (Vec::new(), Vec::new());
    let (mut dv, mut da) = (0, 0);
    let pb = bar(progress, ds.len() as u64, "clips");
    for_each_eval_batch(ds, clips, 1, batch_size, &pb, |batch| {
        let out = model.forward(batch.video_tensor(0, device), batch.audio_tensor(0, device));
        let (zv, za) = match kind {
            EmbeddingKind::Z => (out.z_video, out.z_audio), // [views, proj_dim]
            EmbeddingKind::Y => (out.y_video, out.y_audio), // [views, feature_dim]
        };
        let ((hv, cv), (ha, ca)) = (to_host(zv)?, to_host(za)?);
        (dv, da) = (cv, ca);
        v.extend(hv);
        a.extend(ha);
        Ok(())
    })?;
    pb.finish_and_clear();
    if dv != da {
        return Err(EvalError::invalid("embeddings", format!("video width {dv} and audio width {da} differ; use z")));
    }
    let rows = ds.len() * clips;
    let pool = |x: Vec<f32>| -> Result<Embeddings, EvalError> {
        Ok(Embeddings::new(x, rows, dv)?.l2_normalized().group_mean(clips)?.l2_normalized())
    };
    let labels = (0..ds.len()).map(|i| ds.label(i)).collect();
    Ok(PairEmbeddings { video: pool(v)?, audio: pool(a)?, labels })
}

/// R@K of one direction pair, keyed by K.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecallPair {
    /// Video queries, audio gallery: K -> R@K in [0, 1].
    pub v2a: BTreeMap<String, f64>,
    /// Audio queries, video gallery.
    pub a2v: BTreeMap<String, f64>,
}

/// Everything `svaclr retrieve` reports (written as `results.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalResult {
    /// `"retrieval"`.
    pub task: String,
    /// Instance level, video -> audio: K -> R@K in [0, 1].
    pub v2a: BTreeMap<String, f64>,
    /// Instance level, audio -> video.
    pub a2v: BTreeMap<String, f64>,
    /// Class level (a hit when a top-K item shares the query's class), when asked for.
    pub class_level: Option<RecallPair>,
    /// Full instance-level summaries (recall, median and mean rank).
    pub instance_detail: BothDirections,
    /// Full class-level summaries.
    pub class_level_detail: Option<BothDirections>,
    /// Clips retrieved among (queries per direction = gallery size).
    pub queries: usize,
    /// The K evaluated.
    pub ks: Vec<usize>,
    /// Clips averaged per video.
    pub clips_per_video: usize,
    /// Embeddings compared.
    pub embedding: EmbeddingKind,
    /// The tie rule.
    pub tie_rule: String,
    /// The pre-training run.
    pub checkpoint: Option<PathBuf>,
    /// Whether the weights were random.
    pub random_init: bool,
    /// The test manifest and split.
    pub manifest: PathBuf,
    pub split: Option<String>,
    /// The run's seed.
    pub seed: u64,
    /// The device used.
    pub device: String,
    /// Wall time, seconds.
    pub wall_seconds: f64,
    /// SHA-256 of the resolved [`RetrieveConfig`] JSON.
    pub config_hash: String,
}

/// Embed `ds` and evaluate retrieval per `cfg`.
pub fn run(
    cfg: &RetrieveConfig,
    model: &AvModel,
    ds: &ClipDataset,
    device: &Device,
    device_name: &str,
    progress: bool,
) -> Result<RetrievalResult, EvalError> {
    cfg.validate()?;
    let started = Instant::now();
    let emb = extract(model, ds, cfg.clips, cfg.embedding, cfg.batch_size, device, progress)?;
    let labels = if cfg.class_level {
        let l = emb
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.ok_or_else(|| EvalError::Unlabelled {
                    manifest: cfg.manifest.clone(),
                    split: cfg.split.clone().unwrap_or_else(|| "*".into()),
                    id: ds.item(i).map(|it| it.id.clone()).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        Some(l)
    } else {
        None
    };
    let (instance, class) = evaluate_pairs(&emb.video, &emb.audio, labels.as_deref(), &cfg.ks)?;
    Ok(RetrievalResult {
        task: "retrieval".into(),
        v2a: instance.v2a.recall.clone(),
        a2v: instance.a2v.recall.clone(),
        class_level: class.as_ref().map(|c| RecallPair { v2a: c.v2a.recall.clone(), a2v: c.a2v.recall.clone() }),
        instance_detail: instance,
        class_level_detail: class,
        queries: emb.video.rows(),
        ks: cfg.ks.clone(),
        clips_per_video: cfg.clips,
        embedding: cfg.embedding,
        tie_rule: TIE_RULE.into(),
        checkpoint: cfg.checkpoint.clone(),
        random_init: cfg.random_init,
        manifest: cfg.manifest.clone(),
        split: cfg.split.clone(),
        seed: cfg.seed,
        device: device_name.to_string(),
        wall_seconds: started.elapsed().as_secs_f64(),
        config_hash: cfg.hash(),
    })
}
