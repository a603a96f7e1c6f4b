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

mod encode;
mod preview;
mod render;
mod scene;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, ManifestEntry, ManifestError};

pub use encode::{CONTAINER, PIXEL_FORMAT, X264_PRESET, write_h264_mkv, write_wav_mono_i16};
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
    Manifest(#[from] ManifestError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |cause| SynthError::Io { path: path.to_path_buf(), cause }
}

/// Named sizes of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Smoke tests: 48x48, 8 classes, 200 pre-training clips, a few labelled clips per class.
    Small,
    /// The Table 1 benchmark: 64x64, 12 classes, 2000 pre-training clips.
    Default,
}

impl Preset {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Default => "default",
        }
    }
}

impl FromStr for Preset {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(Preset::Small),
            "default" => Ok(Preset::Default),
            other => Err(SynthError::UnknownPreset(other.to_string())),
        }
    }
}

/// The four splits and their manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Pre-training clips; labels hidden in the manifest.
    Pretrain,
    /// Labelled downstream training clips (the HMDB51 stand-in, few per class).
    Train,
    /// Labelled downstream test clips.
    Test,
    /// Labelled retrieval test clips (the Kinetics-Sounds stand-in).
    Retrieval,
}

impl Split {
    /// All splits in file order.
    pub const ALL: [Split; 4] = [Split::Pretrain, Split::Train, Split::Test, Split::Retrieval];

    /// The `split` field written in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Split::Pretrain => "pretrain",
            Split::Train => "train",
            Split::Test => "test",
            Split::Retrieval => "retrieval",
        }
    }

    /// Manifest file name inside the dataset folder.
    pub fn manifest_file(self) -> &'static str {
        match self {
            Split::Pretrain => "pretrain.jsonl",
            Split::Train => "downstream_train.jsonl",
            Split::Test => "downstream_test.jsonl",
            Split::Retrieval => "retrieval.jsonl",
        }
    }

    /// Whether the manifest carries labels.
    pub fn labelled(self) -> bool {
        self != Split::Pretrain
    }

    fn stream_id(self) -> u64 {
        match self {
            Split::Pretrain => 0,
            Split::Train => 1,
            Split::Test => 2,
            Split::Retrieval => 3,
        }
    }
}

/// One class: a motion family at a rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub label: usize,
    /// `<family>_<rate>hz`, e.g. `bounce_2hz`.
    pub name: String,
    pub family: Family,
    /// Motion cycles per second.
    pub rate_hz: f64,
    /// Audible events per second (`rate_hz * events_per_cycle`).
    pub events_per_second: f64,
    /// Which motion event is audible.
    pub event: String,
    /// Fundamental of the event sound (before the per-clip jitter of +-6%).
    pub base_freq_hz: f64,
    /// What the event sounds like.
    pub sound: String,
}

/// Everything that determines a SynthAV dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Which preset the sizes came from (recorded in synthav.json).
    pub preset: Preset,
    pub seed: u64,
    /// Frame width and height in pixels (even).
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Frames per clip; the clip lasts `frames / fps` seconds.
    pub frames: usize,
    pub sample_rate: u32,
    /// Motion rates (cycles per second); every family appears at every rate.
    pub rates_hz: Vec<f64>,
    /// Pre-training clips (labels hidden), balanced over classes.
    pub pretrain_clips: usize,
    /// Labelled downstream training clips per class.
    pub train_per_class: usize,
    /// Labelled downstream test clips per class.
    pub test_per_class: usize,
    /// Retrieval test clips, balanced over classes.
    pub retrieval_clips: usize,
    /// x264 constant rate factor.
    pub crf: u32,
}

impl SynthConfig {
    /// The sizes of a preset, seed 0.
    pub fn preset(preset: Preset) -> Self {
        let common = |width, rates_hz, pretrain_clips, train_per_class, test_per_class, retrieval_clips| Self {
            preset,
            seed: 0,
            width,
            height: width,
            fps: FPS,
            frames: FRAMES,
            sample_rate: SAMPLE_RATE,
            rates_hz,
            pretrain_clips,
            train_per_class,
            test_per_class,
            retrieval_clips,
            crf: DEFAULT_CRF,
        };
        match preset {
            Preset::Small => common(48, vec![0.5, 1.0], 200, 4, 8, 48),
            Preset::Default => common(64, vec![0.5, 1.0, 2.0], 2000, 15, 25, 240),
        }
    }

    /// Same settings with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Same settings with another number of pre-training clips (the `--clips` override).
    pub fn with_pretrain_clips(mut self, clips: usize) -> Self {
        self.pretrain_clips = clips;
        self
    }

    /// Number of classes (families x rates).
    pub fn num_classes(&self) -> usize {
        Family::ALL.len() * self.rates_hz.len()
    }

    /// The class table, in label order (family-major).
    pub fn classes(&self) -> Vec<ClassInfo> {
        let mut out = Vec::with_capacity(self.num_classes());
        for family in Family::ALL {
            for &rate in &self.rates_hz {
                out.push(ClassInfo {
                    label: out.len(),
                    name: format!("{}_{}hz", family.name(), format_rate(rate)),
                    family,
                    rate_hz: rate,
                    events_per_second: rate * f64::from(family.events_per_cycle()),
                    event: family.event().to_string(),
                    base_freq_hz: family.base_freq_hz(),
                    sound: family.sound().to_string(),
                });
            }
        }
        out
    }

    /// Clip length in seconds.
    pub fn duration(&self) -> f64 {
        self.frames as f64 / f64::from(self.fps)
    }

    /// Audio samples per clip.
    pub fn audio_samples(&self) -> usize {
        (self.duration() * f64::from(self.sample_rate)).round() as usize
    }

    /// Clips in a split.
    pub fn count(&self, split: Split) -> usize {
        match split {
            Split::Pretrain => self.pretrain_clips,
            Split::Train => self.train_per_class * self.num_classes(),
            Split::Test => self.test_per_class * self.num_classes(),
            Split::Retrieval => self.retrieval_clips,
        }
    }

    /// Largest integer playback speed at which the default window (8 frames, 0.5 s of audio) fits in one clip
    /// without looping.
    pub fn max_speed_without_loop(&self) -> usize {
        let video = (self.frames.saturating_sub(1)) / (WINDOW_FRAMES - 1);
        let audio = (self.duration() / WINDOW_AUDIO_SECONDS + 1e-9).floor() as usize;
        video.min(audio)
    }

    /// Check the settings before any work starts.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Config(m));
        if self.width < 16 || self.height < 16 || !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return bad(format!("frame size {}x{} must be even and at least 16x16", self.width, self.height));
        }
        if self.fps == 0 || self.frames == 0 {
            return bad(format!("fps {} and frames {} must be positive", self.fps, self.frames));
        }
        if self.sample_rate < 8_000 {
            return bad(format!(
                "sample rate {} Hz is below 8000 Hz (the highest event tone needs it)",
                self.sample_rate
            ));
        }
        let samples = self.duration() * f64::from(self.sample_rate);
        if (samples - samples.round()).abs() > 1e-9 {
            return bad(format!(
                "{} frames at {} fps is not a whole number of samples at {} Hz",
                self.frames, self.fps, self.sample_rate
            ));
        }
        if self.rates_hz.is_empty() || self.rates_hz.iter().any(|r| !r.is_finite() || *r <= 0.0) {
            return bad(format!("rates {:?} must be a non-empty list of positive numbers", self.rates_hz));
        }
        let mut names: Vec<String> = self.classes().into_iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        if names.len() != self.num_classes() {
            return bad(format!("rates {:?} give duplicate class names", self.rates_hz));
        }
        if self.count(Split::Pretrain) == 0
            || self.count(Split::Train) == 0
            || self.count(Split::Test) == 0
            || self.count(Split::Retrieval) == 0
        {
            return bad("every split needs at least one clip".to_string());
        }
        if Split::ALL.iter().any(|&s| self.count(s) >= 1 << 32) {
            return bad("a split has more than 2^32 clips".to_string());
        }
        if self.crf > 51 {
            return bad(format!("crf {} is outside x264's 0..=51", self.crf));
        }
        Ok(())
    }
}

fn format_rate(rate: f64) -> String {
    if rate.fract() == 0.0 { format!("{rate:.0}") } else { format!("{rate}").replace('.', "p") }
}

/// The true label of every clip of a split, in clip order (also for the pre-training split, whose manifest hides
/// them): a balanced list (class `i % classes`) shuffled with the seed.
pub fn split_labels(cfg: &SynthConfig, split: Split) -> Vec<usize> {
    let n = cfg.count(split);
    let classes = cfg.num_classes();
    let mut labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    // Clip streams use indices below 2^32; this one is reserved for the split's shuffle.
    rng.set_stream((split.stream_id() << 32) | 0xFFFF_FFFF);
    labels.shuffle(&mut rng);
    labels
}

/// Identifier of clip `index` of a split (unique across the whole dataset).
pub fn clip_id(split: Split, index: usize) -> String {
    format!("{}_{index:05}", split.name())
}

/// Parameters of clip `index` of `split`, given its label (see [`split_labels`]).
pub fn clip_params(cfg: &SynthConfig, split: Split, index: usize, label: usize) -> ClipParams {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream((split.stream_id() << 32) | index as u64);
    let rates = cfg.rates_hz.len();
    let family = Family::ALL[label / rates];
    sample_params(&mut rng, label, family, cfg.rates_hz[label % rates], cfg.width, cfg.height)
}

/// Render a clip from its parameters (in memory).
pub fn render(cfg: &SynthConfig, params: ClipParams) -> RenderedClip {
    let frames = render_video(&params, cfg.width, cfg.height, cfg.frames, cfg.fps);
    let audio = render_audio(&params, cfg.audio_samples(), cfg.sample_rate);
    RenderedClip {
        params,
        width: cfg.width,
        height: cfg.height,
        fps: cfg.fps,
        frames,
        audio,
        sample_rate: cfg.sample_rate,
    }
}

/// Render clip `index` of `split` exactly as [`generate`] writes it (before compression).
pub fn render_clip(cfg: &SynthConfig, split: Split, index: usize) -> Result<RenderedClip, SynthError> {
    let labels = split_labels(cfg, split);
    let label = *labels.get(index).ok_or(SynthError::Index { split: split.name(), index, len: labels.len() })?;
    Ok(render(cfg, clip_params(cfg, split, index, label)))
}

/// Video encoding settings recorded in synthav.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoFormat {
    pub container: String,
    pub codec: String,
    pub pixel_format: String,
    pub colour: String,
    pub crf: u32,
    pub x264_preset: String,
    pub x264_threads: u32,
}

/// One split in synthav.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub manifest: String,
    pub clips: usize,
    pub labelled: bool,
    /// Clips per class (true labels, also for the pre-training split).
    pub per_class: Vec<usize>,
}

/// Contents of synthav.json: how the dataset was generated, with every number a consumer needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthInfo {
    pub generator: String,
    pub generator_version: u32,
    pub config: SynthConfig,
    pub duration_sec: f64,
    pub audio_samples: usize,
    pub audio_format: String,
    pub video: VideoFormat,
    /// The default training window the clip length is sized for.
    pub window_frames: usize,
    pub window_audio_sec: f64,
    /// Largest integer speed whose view of that window fits in a clip without looping.
    pub max_speed_without_loop: usize,
    pub classes: Vec<ClassInfo>,
    /// Split name -> facts, in a stable order.
    pub splits: BTreeMap<String, SplitInfo>,
}

impl SynthInfo {
    /// The description of a dataset generated with `cfg`.
    pub fn new(cfg: &SynthConfig) -> Self {
        let splits = Split::ALL
            .iter()
            .map(|&s| {
                let mut per_class = vec![0; cfg.num_classes()];
                for l in split_labels(cfg, s) {
                    per_class[l] += 1;
                }
                let info = SplitInfo {
                    manifest: s.manifest_file().to_string(),
                    clips: cfg.count(s),
                    labelled: s.labelled(),
                    per_class,
                };
                (s.name().to_string(), info)
            })
            .collect();
        Self {
            generator: "SynthAV (svaclr-data)".to_string(),
            generator_version: GENERATOR_VERSION,
            config: cfg.clone(),
            duration_sec: cfg.duration(),
            audio_samples: cfg.audio_samples(),
            audio_format: "wav, 16-bit PCM, mono".to_string(),
            video: VideoFormat {
                container: CONTAINER.to_string(),
                codec: "h264 (libx264)".to_string(),
                pixel_format: PIXEL_FORMAT.to_string(),
                colour: "BT.601 limited range".to_string(),
                crf: cfg.crf,
                x264_preset: X264_PRESET.to_string(),
                x264_threads: 1,
            },
            window_frames: WINDOW_FRAMES,
            window_audio_sec: WINDOW_AUDIO_SECONDS,
            max_speed_without_loop: cfg.max_speed_without_loop(),
            classes: cfg.classes(),
            splits,
        }
    }

    /// Read a dataset's synthav.json.
    pub fn load(dir: &Path) -> Result<Self, SynthError> {
        let path = dir.join(INFO_FILE);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|cause| SynthError::Info { path, cause })
    }
}

/// What [`generate`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub info: SynthInfo,
    /// Clips written (0 when an identical dataset was already there).
    pub written: usize,
    /// Whether an identical, complete dataset was found and kept.
    pub reused: bool,
    /// Total size of the written video and audio files, in bytes.
    pub bytes: u64,
}

/// Paths of a clip's files relative to the dataset folder.
fn clip_paths(split: Split, id: &str) -> (PathBuf, PathBuf) {
    (
        Path::new("video").join(split.name()).join(format!("{id}.mkv")),
        Path::new("audio").join(split.name()).join(format!("{id}.wav")),
    )
}

fn manifest_entries(cfg: &SynthConfig, split: Split, classes: &[ClassInfo]) -> Vec<ManifestEntry> {
    split_labels(cfg, split)
        .into_iter()
        .enumerate()
        .map(|(i, label)| {
            let id = clip_id(split, i);
            let (video, audio) = clip_paths(split, &id);
            let (label, label_name) =
                if split.labelled() { (Some(label), Some(classes[label].name.clone())) } else { (None, None) };
            ManifestEntry {
                id,
                video,
                audio: Some(audio),
                audio_offset: None,
                duration: cfg.duration(),
                fps: f64::from(cfg.fps),
                label,
                label_name,
                split: split.name().to_string(),
            }
        })
        .collect()
}

/// Whether `out` already holds exactly the dataset `info` describes (same synthav.json, every manifest and file).
fn complete_and_identical(out: &Path, info: &SynthInfo) -> bool {
    let Ok(existing) = SynthInfo::load(out) else {
        return false;
    };
    if &existing != info {
        return false;
    }
    let classes = info.config.classes();
    Split::ALL.iter().all(|&s| {
        let expected = manifest_entries(&info.config, s, &classes);
        match Manifest::load(&out.join(s.manifest_file())) {
            Ok(m) => {
                m.entries == expected
                    && m.entries
                        .iter()
                        .all(|e| m.video_path(e).is_file() && m.audio_path(e).is_some_and(|a| a.is_file()))
            }
            Err(_) => false,
        }
    })
}

/// How [`generate`] reports progress and treats an existing dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Draw an indicatif progress bar on stderr.
    pub progress: bool,
    /// Regenerate even when an identical, complete dataset is already there.
    pub force: bool,
}

/// Write the dataset described by `cfg` into `out`: `video/<split>/<id>.mkv`, `audio/<split>/<id>.wav`, the four
/// manifests and synthav.json (written last, so its presence marks a complete dataset). Clips are generated in
/// parallel on rayon's pool.
///
/// `out` may be missing, empty, or hold a previous SynthAV dataset (whose clip folders and manifests are replaced);
/// anything else is refused. An identical complete dataset is kept unless `options.force` is set.
pub fn generate(cfg: &SynthConfig, out: &Path, options: GenerateOptions) -> Result<SynthSummary, SynthError> {
    cfg.validate()?;
    let info = SynthInfo::new(cfg);
    if !options.force && complete_and_identical(out, &info) {
        return Ok(SynthSummary { info, written: 0, reused: true, bytes: 0 });
    }
    prepare_out_dir(out)?;
    let classes = cfg.classes();
    let mut jobs = Vec::new();
    for split in Split::ALL {
        let dir_v = out.join("video").join(split.name());
        let dir_a = out.join("audio").join(split.name());
        fs::create_dir_all(&dir_v).map_err(io_err(&dir_v))?;
        fs::create_dir_all(&dir_a).map_err(io_err(&dir_a))?;
        for (index, label) in split_labels(cfg, split).into_iter().enumerate() {
            jobs.push((split, index, label));
        }
    }
    let bar = if options.progress {
        let style = indicatif::ProgressStyle::with_template(
            "synth {bar:40.cyan/blue} {pos}/{len} clips [{elapsed_precise}<{eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::new(jobs.len() as u64).with_style(style)
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Stop starting new clips after the first failure.
    let failed = AtomicBool::new(false);
    let results: Vec<Result<u64, SynthError>> = jobs
        .par_iter()
        .map(|&(split, index, label)| {
            if failed.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let r = write_clip(cfg, out, split, index, label);
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut bytes = 0;
    for r in results {
        bytes += r?;
    }
    for split in Split::ALL {
        Manifest::save(&out.join(split.manifest_file()), &manifest_entries(cfg, split, &classes))?;
    }
    let info_path = out.join(INFO_FILE);
    let text =
        serde_json::to_string_pretty(&info).map_err(|cause| SynthError::Info { path: info_path.clone(), cause })?;
    fs::write(&info_path, text + "\n").map_err(io_err(&info_path))?;
    Ok(SynthSummary { info, written: jobs.len(), reused: false, bytes })
}

/// Render and write one clip; returns the bytes written.
fn write_clip(cfg: &SynthConfig, out: &Path, split: Split, index: usize, label: usize) -> Result<u64, SynthError> {
    let clip = render(cfg, clip_params(cfg, split, index, label));
    let (video, audio) = clip_paths(split, &clip_id(split, index));
    let (video, audio) = (out.join(video), out.join(audio));
    write_h264_mkv(&video, &clip.frames, cfg.width, cfg.height, cfg.fps, cfg.crf)?;
    write_wav_mono_i16(&audio, &clip.audio, cfg.sample_rate)?;
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).map_err(io_err(p));
    Ok(size(&video)? + size(&audio)?)
}

/// Whether a folder entry is something [`generate`] or [`write_preview`] writes (so a folder holding only such
/// entries, e.g. after an interrupted run, may be cleared and reused).
fn is_synthav_entry(name: &str) -> bool {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    ["video", "audio", INFO_FILE, PREVIEW_FILE].contains(&name) || Split::ALL.iter().any(|s| s.manifest_file() == name)
}

/// Make `out` ready: create it, or clear a previous (possibly incomplete) SynthAV dataset in it, or refuse a folder
/// that holds anything else.
fn prepare_out_dir(out: &Path) -> Result<(), SynthError> {
    if !out.exists() {
        return fs::create_dir_all(out).map_err(io_err(out));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(out).map_err(io_err(out))? {
        let entry = entry.map_err(io_err(out))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if let Some(foreign) = names.iter().find(|n| !is_synthav_entry(n)) {
        return Err(SynthError::NotEmpty { path: out.to_path_buf(), entry: foreign.clone() });
    }
    // The marker goes first: an interrupted regeneration must not look complete.
    let info = out.join(INFO_FILE);
    if info.exists() {
        fs::remove_file(&info).map_err(io_err(&info))?;
    }
    for name in names.iter().filter(|n| n.as_str() != PREVIEW_FILE && n.as_str() != INFO_FILE) {
        let p = out.join(name);
        if p.is_dir() {
            fs::remove_dir_all(&p).map_err(io_err(&p))?;
        } else {
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_have_the_documented_sizes() {
        let s = SynthConfig::preset(Preset::Small);
        s.validate().expect("small");
        assert_eq!((s.num_classes(), s.width, s.count(Split::Pretrain)), (8, 48, 200));
        let d = SynthConfig::preset(Preset::Default);
        d.validate().expect("default");
        assert_eq!((d.num_classes(), d.width, d.count(Split::Pretrain)), (12, 64, 2000));
        assert_eq!(d.audio_samples(), 56_000);
        assert!(d.max_speed_without_loop() >= 6, "speed-6 views must fit");
        assert_eq!(d.classes()[5].name, "orbit_2hz");
    }

    #[test]
    fn labels_are_balanced_and_seeded() {
        let cfg = SynthConfig::preset(Preset::Small).with_seed(3);
        let a = split_labels(&cfg, Split::Test);
        let mut counts = vec![0; cfg.num_classes()];
        a.iter().for_each(|&l| counts[l] += 1);
        assert!(counts.iter().all(|&c| c == cfg.test_per_class));
        assert_eq!(a, split_labels(&cfg, Split::Test));
        assert_ne!(a, split_labels(&cfg.clone().with_seed(4), Split::Test));
    }

    #[test]
    fn invalid_configs_are_refused() {
        let base = SynthConfig::preset(Preset::Small);
        let mut c = base.clone();
        c.width = 47;
        assert!(matches!(c.validate(), Err(SynthError::Config(_))));
        let mut c = base.clone();
        c.rates_hz = vec![];
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.fps = 3; // 56 frames at 3 fps is not a whole number of 16 kHz samples
        assert!(c.validate().is_err());
        assert!(base.clone().with_pretrain_clips(0).validate().is_err());
        assert!(matches!("huge".parse::<Preset>(), Err(SynthError::UnknownPreset(_))));
    }
}
