//! Writing a SynthAV dataset to disk: clip files, manifests and synthav.json (written last, so its presence
//! marks a complete dataset), and reading synthav.json back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use svaclr_data::manifest::{Manifest, ManifestEntry};

use crate::*;

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
