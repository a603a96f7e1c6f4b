//! svaclr-eval: the downstream half of every table.
//!
//! Fine-tuning and linear probing for action recognition (multi-clip, multi-crop testing), instance- and
//! class-level audio-visual retrieval (R@K), and result tables in JSON and Markdown. docs/evaluation.md describes
//! the protocols, the result schemas and the tie rule.
//!
//! - [`config`]: [`FinetuneConfig`], the JSON config of `svaclr finetune`.
//! - [`source`]: the model to evaluate (a pre-training run's checkpoint, or a random-init baseline).
//! - [`finetune`]: the fine-tuning and linear-probe protocols.
//! - [`retrieve`] + [`retrieval`]: embedding extraction, and the R@K metrics (pure, host-side).
//! - [`classify`]: multi-view averaging, top-k, confusion matrices (pure, host-side).
//! - [`schedule`]: GDT's warm-up + step learning-rate schedule.
//! - [`report`]: `results.json`, `results.md`, `confusion.png`.
//! - [`fig3`]: the paper's Fig. 3 for a pre-trained run (spectrograms at speeds 1/2/4 and the learned lambda).

pub mod classify;
pub mod config;
pub mod error;
pub mod fig3;
pub mod finetune;
pub mod knn;
pub mod probe;
pub mod report;
pub mod retrieval;
pub mod retrieve;
pub mod schedule;
pub mod source;
pub mod stats;
pub mod views;

pub use classify::{ClassificationScores, ConfusionMatrix, average_views, score_views, topk_accuracy};
pub use config::{
    FeatureNorm, FinetuneConfig, FoldConfig, LinearProbeConfig, OptimConfig, Protocol, SplitRef, TestConfig,
};
pub use error::EvalError;
pub use finetune::{EvalOptions, FinetuneResult, FoldResult};
pub use retrieval::{DEFAULT_KS, Embeddings, evaluate_pairs};
pub use retrieve::{EmbeddingKind, RetrievalResult, RetrieveConfig};
pub use schedule::StepSchedule;
pub use source::{LoadedModel, load_model};
