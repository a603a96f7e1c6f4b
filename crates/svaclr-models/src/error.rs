//! The one error type of svaclr-models.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, building, importing or exporting a model.
///
/// Every variant prints as one line; the I/O variants name the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of range.
    #[error("invalid model config: {field} {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// An input tensor has the wrong shape for the network.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// An unknown name for an architecture, preset or mapping.
    #[error("unknown {what} '{value}': expected one of {expected}")]
    UnknownName {
        /// What kind of name (for example "video architecture").
        what: &'static str,
        /// The name given.
        value: String,
        /// The accepted names, comma-separated.
        expected: &'static str,
    },
    /// The identity cross-affinity mapping compares audio and video representations directly, so their widths
    /// must agree.
    #[error(
        "the identity cross-affinity map needs equal audio and video representation widths, got video {video_dim} \
         and audio {audio_dim}: choose affinity_map \"linear\" or \"mlp\", or encoders of equal width"
    )]
    AffinityWidthMismatch {
        /// Width of the video encoder's representation.
        video_dim: usize,
        /// Width of the audio encoder's representation.
        audio_dim: usize,
    },
    /// A weight file has an extension this crate cannot read or write.
    #[error("{path}: unsupported weight file extension (expected {expected})")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The accepted extensions.
        expected: &'static str,
    },
    /// Reading or parsing a file failed.
    #[error("{path}: cannot read: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying cause, on one line.
        cause: String,
    },
    /// Writing a file failed.
    #[error("{path}: cannot write: {cause}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying cause, on one line.
        cause: String,
    },
    /// The file lacks tensors the model needs.
    #[error("{path}: {} tensor(s) missing for {model}: {}", keys.len(), list(keys))]
    MissingTensors {
        /// The file.
        path: PathBuf,
        /// The model being loaded.
        model: &'static str,
        /// Our parameter paths that found no tensor.
        keys: Vec<String>,
    },
    /// The file holds tensors that no parameter of the model takes.
    #[error("{path}: {} tensor(s) unused by {model}: {}", keys.len(), list(keys))]
    UnusedTensors {
        /// The file.
        path: PathBuf,
        /// The model being loaded.
        model: &'static str,
        /// The file's keys (after renaming) that matched nothing.
        keys: Vec<String>,
    },
    /// Tensors matched by name but not by shape or dtype.
    #[error("{path}: {} tensor(s) do not fit {model}: {}", errors.len(), list(errors))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The model being loaded.
        model: &'static str,
        /// One message per tensor.
        errors: Vec<String>,
    },
    /// A named tensor is absent from a tensor file.
    #[error("{path}: no tensor named '{name}' (found: {})", list(found))]
    TensorNotFound {
        /// The file.
        path: PathBuf,
        /// The name looked for.
        name: String,
        /// The names present.
        found: Vec<String>,
    },
    /// A tensor has the wrong rank or element type for its use.
    #[error("{path}: tensor '{name}' {reason}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The first few items of a list, for one-line messages.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", ... ({} more)", items.len() - SHOWN));
    }
    s
}
