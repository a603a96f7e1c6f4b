//! Helpers shared by the evaluation tests, and the imports every module uses.
#![allow(dead_code, unused_imports)]

pub use std::path::{Path, PathBuf};

pub use burn::prelude::*;
pub use proptest::prelude::*;
pub use serde_json::Value;
pub use svaclr_data::{AugmentConfig, ClipDataset, DataConfig, Manifest, MelConfig, SpeedSet};
pub use svaclr_eval::classify::{average_views, score_views, topk_accuracy};
pub use svaclr_eval::config::{FinetuneConfig, Protocol};
pub use svaclr_eval::finetune::{self, EvalOptions};
pub use svaclr_eval::retrieval::{
    DirectionResult, Embeddings, class_ranks, evaluate_pairs, first_relevant_ranks, instance_ranks, recall_at_k,
    similarity,
};
pub use svaclr_eval::retrieve::{self, EmbeddingKind, RetrieveConfig};
pub use svaclr_eval::{EvalError, LoadedModel, report};
pub use svaclr_models::{ModelConfig, SizePreset, VideoArch};
pub use svaclr_synth::{GenerateOptions, Preset, Split, SynthConfig, generate};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture_dir() -> PathBuf {
    std::env::var_os("SVACLR_REFERENCE_DIR").map_or_else(|| workspace_root().join("tests/fixtures"), PathBuf::from)
}

pub fn emb(rows: &[&[f32]]) -> Embeddings {
    Embeddings::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).expect("embeddings")
}
