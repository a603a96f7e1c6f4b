//! SynthAV: the embedded audio-visual benchmark, generated procedurally and written as real video (H.264 in
//! Matroska) and wav files with manifests, so that training and evaluation run the real decoding path.
//!
//! A clip shows one object moving over a static background and sounds an event at each of its motion events.
//! The label ("action") is the motion family and rate ([`Family`] x `rates_hz`): bounce, orbit, sweep, pulse, each
//! at two or three rates. Shape, colour, size, position, background, sensor noise, pitch jitter, noise and
//! loudness are random nuisances independent of the label, so single-frame appearance does not predict it.
//! The event sound's pitch and timbre are tied to the family on an octave ladder (220/440/880/1760 Hz) and the
//! rates are powers of two, so a clip played 2x faster moves like the same family at the next rate but sounds like
//! the next family: video keeps its family under a speed change, audio does not (the paper's cow/cat effect).
//!
//! Determinism: clip `i` of split `s` draws all its parameters from ChaCha8 seeded with the dataset seed on
//! stream `(s << 32) | i`; label order within a split is a seeded shuffle. The encoder is single-threaded with
//! the muxer's bitexact flag, so the same seed gives byte-identical files. Changing `--clips` changes the
//! pre-training split only.
//!
//! See docs/synthav.md for the full description and the numbers.

mod config;
mod encode;
mod generate;
mod preview;
mod render;
mod scene;

use std::path::{Path, PathBuf};

use svaclr_data::DataError;

pub use config::{ClassInfo, Preset, Split, SynthConfig, clip_id, clip_params, render, render_clip, split_labels};
pub use encode::{CONTAINER, PIXEL_FORMAT, X264_PRESET, write_h264_mkv, write_wav_mono_i16};
pub use generate::{GenerateOptions, SplitInfo, SynthInfo, SynthSummary, VideoFormat, generate};
pub use preview::{PREVIEW_FILE, write_preview};
pub use render::{RenderedClip, render_audio, render_background, render_video};
pub use scene::{Background, ClipParams, Distractor, Family, Motion, Shape, event_times, object_at, sample_params};

/// Version of the generator; bump whenever the same seed would produce different content.
pub const GENERATOR_VERSION: u32 = 3;
/// File describing a generated dataset.
pub const INFO_FILE: &str = "synthav.json";
/// Frames per second of every clip.
pub const FPS: u32 = 16;
/// Frames per clip: 3.5 s at 16 fps.
pub const FRAMES: usize = 56;
/// Audio sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Default training window the clip length is sized for: T video frames ...
pub const WINDOW_FRAMES: usize = 8;
/// ... and D seconds of audio.
pub const WINDOW_AUDIO_SECONDS: f64 = 0.5;
/// Constant rate factor of x264 (lower = better quality); 16 keeps 48-64 px frames within a few grey levels.
pub const DEFAULT_CRF: u32 = 16;

/// Errors of the SynthAV generator. Each names the file it concerns and prints its cause in its own message (the
/// cause is not chained as a `source`, so `{:#}` does not print it twice).
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The generation settings are unusable.
    #[error("invalid SynthAV config: {0}")]
    Config(String),
    /// A preset name that does not exist.
    #[error("unknown SynthAV preset '{0}' (expected 'small' or 'default')")]
    UnknownPreset(String),
    /// The output folder holds files that are not part of a SynthAV dataset.
    #[error("{path}: folder holds '{entry}', which is not part of a SynthAV dataset; refusing to write into it")]
    NotEmpty { path: PathBuf, entry: String },
    /// A file or folder could not be created, read or removed.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    /// FFmpeg/x264 failed to write a video.
    #[error("{path}: cannot encode video: {reason}")]
    Encode { path: PathBuf, reason: String },
    /// A wav file could not be written.
    #[error("{path}: cannot write wav: {cause}")]
    Wav { path: PathBuf, cause: hound::Error },
    /// `synthav.json` does not parse.
    #[error("{path}: bad {INFO_FILE}: {cause}")]
    Info { path: PathBuf, cause: serde_json::Error },
    /// The preview image could not be drawn or saved.
    #[error("{path}: cannot write preview: {reason}")]
    Preview { path: PathBuf, reason: String },
    /// A clip index past the end of its split.
    #[error("clip {index} out of range for split '{split}' ({len} clips)")]
    Index { split: &'static str, index: usize, len: usize },
    /// Writing a manifest failed.
    #[error(transparent)]
    Manifest(#[from] DataError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |cause| SynthError::Io { path: path.to_path_buf(), cause }
}
