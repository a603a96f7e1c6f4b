//! The training crate's errors: each names the file or step and the cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: bad config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Data(#[from] svaclr_data::DataError),
    #[error(transparent)]
    Model(#[from] svaclr_models::ModelError),
    #[error("loss: {0}")]
    Loss(#[from] svaclr_loss::LossError),
    #[error("{path}: cannot read checkpoint: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("non-finite loss ({value}) at step {step} (epoch {epoch}); the last good checkpoint is kept in {kept}")]
    NonFinite { step: usize, epoch: usize, value: f64, kept: String },
    #[error("distributed training: {0}")]
    Distributed(String),
    #[error("{0}")]
    Other(String),
}
