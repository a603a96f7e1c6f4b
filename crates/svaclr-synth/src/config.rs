//! What determines a SynthAV dataset: presets, splits, classes, the typed config, and the clip parameters
//! each (split, index) renders from.

use std::str::FromStr;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::*;

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
