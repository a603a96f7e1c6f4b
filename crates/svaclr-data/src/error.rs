//! The crate's one error type. Every variant that concerns a file names it; messages are one line.

use std::path::PathBuf;

/// Errors from decoding, sampling, batching and dataset preparation.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder named by a manifest, a config or the command line does not exist.
    #[error("{path}: not found")]
    Missing { path: PathBuf },
    /// FFmpeg could not open the container or find a video stream in it.
    #[error("{path}: cannot open video: {reason}")]
    VideoOpen { path: PathBuf, reason: String },
    /// The container opened but frames could not be decoded (corrupt or truncated data).
    #[error("{path}: cannot decode video: {reason}")]
    VideoDecode { path: PathBuf, reason: String },
    /// The container has no audio stream (and the dataset needs one).
    #[error("{path}: no audio stream")]
    NoAudioStream { path: PathBuf },
    /// The container's audio stream could not be decoded.
    #[error("{path}: cannot decode audio: {reason}")]
    AudioDecode { path: PathBuf, reason: String },
    /// A wav file could not be read (not a wav, unsupported encoding, truncated).
    #[error("{path}: cannot read wav: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    /// A wav file could not be written.
    #[error("{path}: cannot write wav: {source}")]
    WavWrite { path: PathBuf, source: hound::Error },
    /// An audio file that reads but is unusable (no samples, zero rate, ...).
    #[error("{path}: unusable audio: {reason}")]
    BadAudio { path: PathBuf, reason: String },
    /// The sinc resampler refused its input (a bug or absurd rates).
    #[error("audio resampling ({from} -> {to} samples) failed: {reason}")]
    Resample { from: usize, to: usize, reason: String },
    /// A data, mel or augmentation config is invalid.
    #[error("invalid data config: {0}")]
    Config(String),
    /// A manifest could not be read.
    #[error("{path}: cannot read manifest: {source}")]
    ManifestRead { path: PathBuf, source: std::io::Error },
    /// A manifest line is not a valid entry.
    #[error("{path}:{line}: bad manifest line: {source}")]
    ManifestParse { path: PathBuf, line: usize, source: serde_json::Error },
    /// A manifest with no entries.
    #[error("{path}: manifest has no entries")]
    ManifestEmpty { path: PathBuf },
    /// A split the manifest has no entry in.
    #[error("{path}: no entry is in split '{split}' (its splits: {known})")]
    NoSuchSplit { path: PathBuf, split: String, known: String },
    /// Two manifest entries share an id.
    #[error("{path}: duplicate id '{id}'")]
    DuplicateId { path: PathBuf, id: String },
    /// A manifest could not be written.
    #[error("{path}: cannot write manifest: {source}")]
    ManifestWrite { path: PathBuf, source: std::io::Error },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A dataset index past the end.
    #[error("clip index {index} out of range (dataset has {len} clips)")]
    Index { index: usize, len: usize },
    /// A manifest split filter matched nothing.
    #[error("{path}: no entries in split '{split}'")]
    EmptySplit { path: PathBuf, split: String },
    /// Dataset preparation could not start or finish (bad layout, unreadable annotation file).
    #[error("prepare {dataset}: {reason}")]
    Prepare { dataset: String, reason: String },
    /// Samples of one batch disagree in shape (different configs mixed).
    #[error("cannot batch samples: {0}")]
    Batch(String),
    /// The decoded-frame cache would not fit its memory budget (estimated before anything is decoded).
    #[error(
        "{dataset}: the decoded-frame cache would take about {need_mib} MiB ({videos} videos at short side \
         {short_side}), over its budget of {budget_mib} MiB: set data.cache to \"off\" or raise data.cache_budget_mib"
    )]
    CacheBudget { dataset: String, videos: usize, short_side: usize, need_mib: usize, budget_mib: usize },
    /// A sample failed while a batch was assembled; names the clip.
    #[error("clip {index} ('{id}'): {source}")]
    Sample { index: usize, id: String, source: Box<DataError> },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
