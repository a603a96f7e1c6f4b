//! The typed data config and the clip dataset that training and evaluation read from (its samples are planned
//! and rendered in [`crate::clip`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataset::{Dataset, DatasetError};
use serde::{Deserialize, Serialize};

use crate::audio;
use crate::augment::AugmentConfig;
use crate::cache::{CacheMode, DEFAULT_CACHE_BUDGET_MIB, FrameStore};
use crate::error::DataError;
use crate::logmel::{LogMel, MelConfig};
use crate::manifest::Manifest;
use crate::sampler::{ClipSpec, SpeedSet};

/// Everything a dataset needs to turn a video into samples. Datasets take this, never a whole experiment config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Frames per video view (T).
    pub frames: usize,
    /// Base frame rate clips are sampled at; a speed-`tau` view takes every `tau`-th frame at this rate.
    pub fps: f64,
    /// Frames are decoded with their short side scaled to this many pixels.
    pub short_side: usize,
    /// Side of the square crop fed to the video encoder (<= `short_side`).
    pub crop: usize,
    /// Seconds of audio per view (D).
    pub audio_seconds: f64,
    /// The log-mel front end.
    pub mel: MelConfig,
    /// Speed set for co-augmentation; `[1, 1]` disables it (one view per modality).
    pub speeds: SpeedSet,
    /// Use the same speed for the audio and video views of a clip.
    pub tie_speeds: bool,
    /// Visual augmentation of training views.
    pub augment: AugmentConfig,
    /// Threads that assemble batches (see [`crate::BatchLoader`]).
    pub workers: usize,
    /// When a manifest entry has no wav and its container no audio stream, give silence instead of an error
    /// (video-only downstream sets such as parts of UCF101). Default false.
    #[serde(default)]
    pub allow_missing_audio: bool,
    /// Keep decoded frames in memory between samples ([`crate::cache`]): `"off"` (the default when absent) or
    /// `"memory"`. Samples are the same either way; only speed and memory change.
    #[serde(default, skip_serializing_if = "CacheMode::is_off")]
    pub cache: CacheMode,
    /// Memory the decoded-frame cache may take, in MiB (default [`DEFAULT_CACHE_BUDGET_MIB`] when absent). Its
    /// size is estimated before anything is decoded; over the budget, building the dataset is an error.
    #[serde(default = "default_cache_budget_mib", skip_serializing_if = "is_default_cache_budget")]
    pub cache_budget_mib: usize,
}

fn default_cache_budget_mib() -> usize {
    DEFAULT_CACHE_BUDGET_MIB
}

fn is_default_cache_budget(mib: &usize) -> bool {
    *mib == DEFAULT_CACHE_BUDGET_MIB
}

impl Default for DataConfig {
    /// GDT's clip settings (30 frames at 30 fps, 128-pixel short side, 112 crops, 1 s of audio) with the paper's
    /// best speed set `[1, 4]`.
    fn default() -> Self {
        Self {
            frames: 30,
            fps: 30.0,
            short_side: 128,
            crop: 112,
            audio_seconds: 1.0,
            mel: MelConfig::default(),
            speeds: SpeedSet::default(),
            tie_speeds: false,
            augment: AugmentConfig::default(),
            workers: 2,
            allow_missing_audio: false,
            cache: CacheMode::Off,
            cache_budget_mib: DEFAULT_CACHE_BUDGET_MIB,
        }
    }
}

impl DataConfig {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Config(m));
        if self.frames == 0 {
            return bad("frames must be > 0".into());
        }
        if !(self.fps > 0.0 && self.fps.is_finite()) {
            return bad(format!("fps must be > 0, got {}", self.fps));
        }
        if self.crop == 0 {
            return bad("crop must be > 0".into());
        }
        if self.short_side < self.crop {
            return bad(format!("short_side ({}) must be >= crop ({})", self.short_side, self.crop));
        }
        if !(self.audio_seconds > 0.0 && self.audio_seconds.is_finite()) {
            return bad(format!("audio_seconds must be > 0, got {}", self.audio_seconds));
        }
        if self.cache == CacheMode::Memory && self.cache_budget_mib == 0 {
            return bad("cache_budget_mib must be > 0 when cache is \"memory\"".into());
        }
        self.mel.validate()?;
        self.speeds.validate()?;
        self.augment.validate()
    }

    /// This config with the settings that change no sample reset (`workers`, `cache`, `cache_budget_mib`): what
    /// identifies the samples a run sees, for hashing.
    pub fn without_runtime_settings(&self) -> DataConfig {
        DataConfig { workers: 0, cache: CacheMode::Off, cache_budget_mib: DEFAULT_CACHE_BUDGET_MIB, ..self.clone() }
    }

    /// Views per modality: 1 when the speed set is `{1}`, else 2 (original + speed-augmented).
    pub fn views(&self) -> usize {
        if self.speeds.is_identity() { 1 } else { 2 }
    }

    /// Audio samples per view at the mel sample rate.
    pub fn audio_samples(&self) -> usize {
        audio::view_len(self.audio_seconds, self.mel.sample_rate)
    }

    /// Spectrogram frames per audio view.
    pub fn mel_frames(&self) -> usize {
        self.mel.frames(self.audio_samples())
    }

    /// Shape of one video view `[3, T, crop, crop]`.
    pub fn video_view_shape(&self) -> [usize; 4] {
        [3, self.frames, self.crop, self.crop]
    }

    /// Shape of one audio view `[1, n_mels, mel_frames]`.
    pub fn audio_view_shape(&self) -> [usize; 3] {
        [1, self.mel.n_mels, self.mel_frames()]
    }
}

/// One training or evaluation sample.
#[derive(Clone, Debug, PartialEq)]
pub struct AvSample {
    /// Per view (original first), `[3, T, crop, crop]` row-major, normalised.
    pub video: Vec<Vec<f32>>,
    /// Per view (original first), `[1, n_mels, mel_frames]` row-major log-mel.
    pub audio: Vec<Vec<f32>>,
    /// What was sampled.
    pub spec: ClipSpec,
    /// Class index, if the manifest has one.
    pub label: Option<usize>,
}

/// One manifest entry with resolved paths.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipItem {
    /// Manifest id.
    pub id: String,
    /// Video file.
    pub video: PathBuf,
    /// Audio wav, or `None` to use the container's audio track.
    pub audio: Option<PathBuf>,
    /// Duration in seconds (from the manifest).
    pub duration: f64,
    /// Native frame rate (from the manifest).
    pub fps: f64,
    /// Class index.
    pub label: Option<usize>,
}

/// Clips of one manifest split, sampled with speed co-augmentation for training or deterministically for
/// evaluation. Construction only checks that files exist (and, with the decoded-frame cache, reads each video's
/// header to check the cache's budget); nothing is decoded until a sample is asked for.
#[derive(Debug)]
pub struct ClipDataset {
    items: Vec<ClipItem>,
    cfg: DataConfig,
    logmel: LogMel,
    num_classes: usize,
    burn_seed: AtomicU64,
    burn_epoch: AtomicU64,
    /// The decoded-frame cache (`cache: "memory"`).
    frames: Option<FrameStore>,
}

impl ClipDataset {
    /// Build from a manifest, keeping the entries of `split` (all when `None`). Missing video or audio files
    /// are an error naming the file. The class count is the manifest's (all splits), so train and test agree.
    pub fn new(manifest: &Manifest, split: Option<&str>, cfg: DataConfig) -> Result<Self, DataError> {
        cfg.validate()?;
        let mut items = Vec::new();
        for e in manifest.entries.iter().filter(|e| split.is_none_or(|s| e.split == s)) {
            let video = manifest.video_path(e);
            if !video.is_file() {
                return Err(DataError::Missing { path: video });
            }
            let audio = manifest.audio_path(e);
            if let Some(a) = &audio
                && !a.is_file()
            {
                return Err(DataError::Missing { path: a.clone() });
            }
            if !(e.duration > 0.0 && e.duration.is_finite()) {
                return Err(DataError::Config(format!(
                    "{}: manifest entry '{}' has duration {}",
                    video.display(),
                    e.id,
                    e.duration
                )));
            }
            items.push(ClipItem { id: e.id.clone(), video, audio, duration: e.duration, fps: e.fps, label: e.label });
        }
        if items.is_empty() {
            return Err(DataError::EmptySplit { path: manifest.root.clone(), split: split.unwrap_or("*").to_string() });
        }
        let logmel = LogMel::new(cfg.mel.clone())?;
        let frames = match cfg.cache {
            CacheMode::Off => None,
            CacheMode::Memory => {
                let name = format!("{} (split '{}')", manifest.root.display(), split.unwrap_or("*"));
                Some(FrameStore::new(&items, &cfg, &name)?)
            }
        };
        Ok(Self {
            items,
            num_classes: manifest.num_classes(),
            cfg,
            logmel,
            burn_seed: AtomicU64::new(0),
            burn_epoch: AtomicU64::new(0),
            frames,
        })
    }

    /// Number of clips (one per video).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the dataset has no clips (never true for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Class of clip `i` (`None` when unlabelled or out of range).
    pub fn label(&self, i: usize) -> Option<usize> {
        self.items.get(i).and_then(|it| it.label)
    }

    /// Number of classes in the manifest.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The data config.
    pub fn config(&self) -> &DataConfig {
        &self.cfg
    }

    /// Clip `i`'s manifest entry.
    pub fn item(&self, i: usize) -> Result<&ClipItem, DataError> {
        self.items.get(i).ok_or(DataError::Index { index: i, len: self.items.len() })
    }

    /// The log-mel front end of this dataset's config.
    pub(crate) fn logmel(&self) -> &LogMel {
        &self.logmel
    }

    /// The decoded-frame cache, when the config has one.
    pub(crate) fn frame_store(&self) -> Option<&FrameStore> {
        self.frames.as_ref()
    }

    /// Set the (seed, epoch) that burn's [`Dataset::get`] samples with (our [`crate::BatchLoader`] passes them
    /// explicitly instead).
    pub fn set_burn_sampling(&self, seed: u64, epoch: u64) {
        self.burn_seed.store(seed, Ordering::Relaxed);
        self.burn_epoch.store(epoch, Ordering::Relaxed);
    }

    /// The manifest id of clip `i` (`?` when out of range), for error messages.
    pub(crate) fn id_of(&self, i: usize) -> &str {
        self.items.get(i).map_or("?", |it| it.id.as_str())
    }

    /// The video path of clip `i`, if in range.
    pub fn video_path(&self, i: usize) -> Option<&Path> {
        self.items.get(i).map(|it| it.video.as_path())
    }
}

/// burn's dataset view: `get(i)` is [`ClipDataset::train_sample`] with the (seed, epoch) set by
/// [`ClipDataset::set_burn_sampling`]. Errors are wrapped in `DatasetError` and keep their message.
impl Dataset<AvSample> for ClipDataset {
    fn get(&self, index: usize) -> Result<AvSample, DatasetError> {
        self.train_sample(index, self.burn_epoch.load(Ordering::Relaxed), self.burn_seed.load(Ordering::Relaxed))
            .map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}
