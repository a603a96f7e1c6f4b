//! The one error type of svaclr-eval. Every variant prints as one line and names the file or input concerned.

use std::path::PathBuf;

/// Everything that can go wrong when evaluating: bad configs, bad data, unusable embeddings, failed writes.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading or writing a file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's cause (printed in this message, so not chained as a `source`).
        cause: std::io::Error,
    },
    /// A config file does not parse or does not validate.
    #[error("{path}: bad config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A fold would test on what it trained on: the same id or the same video file in its training and test sets.
    #[error(
        "fold '{fold}': test clip '{id}' ({path}) is also in the training set; a fold must not test on a clip it trained on"
    )]
    TestInTraining { fold: String, id: String, path: PathBuf },
    /// A fold's manifest holds several splits and the config names none of them.
    #[error("{manifest}: holds the splits {splits} and the fold names none (add \"split\" to its train and test)")]
    SplitNotNamed { manifest: PathBuf, splits: String },
    /// A value passed to the library is unusable (shapes that do not match, an empty set, a bad option).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was given (for example "embeddings" or "retrieval k").
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A clip of a split that must be labelled has no label.
    #[error(
        "{manifest}: clip '{id}' of split '{split}' has no label; classification and class-level retrieval need labels"
    )]
    Unlabelled {
        /// The manifest file.
        manifest: PathBuf,
        /// The split.
        split: String,
        /// The clip's manifest id.
        id: String,
    },
    /// A label is not below the number of classes.
    #[error("{manifest}: clip '{id}' has label {label}, but the classifier has {classes} classes")]
    LabelOutOfRange {
        /// The manifest file.
        manifest: PathBuf,
        /// The clip's manifest id.
        id: String,
        /// Its label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// Training produced a non-finite loss (diverged) or a model produced non-finite outputs.
    #[error("non-finite {what} ({value}) in fold '{fold}' at epoch {epoch}; lower the learning rate")]
    NonFinite {
        /// What was not finite ("loss", "logits", "features").
        what: &'static str,
        /// The fold's name.
        fold: String,
        /// The epoch (0-based).
        epoch: usize,
        /// The offending value.
        value: f64,
    },
    /// Drawing a plot failed.
    #[error("{path}: cannot draw plot: {message}")]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// A data error (decoding, sampling, manifest entries); it names the file.
    #[error(transparent)]
    Data(#[from] svaclr_data::DataError),
    /// A model error (config, weights); it names the file.
    #[error(transparent)]
    Model(#[from] svaclr_models::ModelError),
    /// A pre-training run could not be loaded; it names the run directory or file.
    #[error(transparent)]
    Train(#[from] svaclr_train::error::TrainError),
    /// A loss function refused its inputs (the cross-affinity of Fig. 3).
    #[error(transparent)]
    Loss(#[from] svaclr_loss::LossError),
}

impl EvalError {
    /// An I/O error for `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EvalError {
        let path = path.into();
        move |cause| EvalError::Io { path, cause }
    }

    /// An [`EvalError::Invalid`] from a message.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> EvalError {
        EvalError::Invalid { what, reason: reason.into() }
    }
}
