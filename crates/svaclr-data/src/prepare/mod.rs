//! `svaclr prepare`: index a real dataset from the folder layout it ships in.
//!
//! The layout's annotation is read into the clips it lists (`layouts`, with `files` finding the files: a clip
//! is its own file or, for a YouTube video listed once, `<youtube_id>.<ext>`, never another clip's file). Then,
//! for every clip: probe duration and frame rate, check that it decodes at its start and near its end, and
//! extract its audio track once (`wav`: mono, 16-bit, resampled to `audio_rate`, aligned so that sample 0 is the
//! first video frame, under a name no other id can get). Clips that fail are listed in `OUT/prepare_report.json`
//! with the reason (corrupt, truncated, no audio track, too short, listed but not found, listed in two splits)
//! and left out; the rest are indexed in manifests (`OUT/manifest.jsonl`, or `OUT/manifest_fold{1,2,3}.jsonl`
//! with `train`/`test` splits for UCF101 and HMDB51) with class names in `OUT/classes.txt`. UCF101 and HMDB51
//! are action-recognition sets whose videos often have no audio: those are indexed as video-only (`audio: null`;
//! use `allow_missing_audio` in the data config). Work runs in parallel with rayon and shows a progress bar.
//! Re-running reuses a wav only when its record says it came from the same video with the same settings.
//!
//! Layouts (see docs/data.md):
//! - `k400`, `kinetics-sounds`: a CSV annotation (`label,youtube_id,time_start,time_end[,split]`, any `*.csv` in
//!   `ROOT` or `ROOT/annotations` whose name says train/val(idate)/test) with videos anywhere under `ROOT` named
//!   `<youtube_id>_<start:06>_<end:06>.<ext>` (or `<youtube_id>.<ext>`); or, without CSV,
//!   `ROOT/<split>/<class>/<file>`. Kinetics-Sounds keeps the 32 classes of [`KINETICS_SOUNDS_CLASSES`].
//! - `vggsound`: `vggsound.csv` (`youtube_id,start_seconds,label,split`, no header) and videos anywhere under
//!   `ROOT` named `<youtube_id>_<start:06>.<ext>` (also `<id>_<start>` or `<id>_<start:06>_<end:06>`).
//! - `ucf101`: `UCF-101/<Class>/v_*.avi` and `ucfTrainTestlist/{classInd.txt, trainlist0N.txt, testlist0N.txt}`.
//! - `hmdb51`: `<class>/*.avi` and `testTrainMulti_7030_splits/<class>_test_splitN.txt` (1 train, 2 test, 0 unused).

mod files;
mod layouts;
mod wav;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use files::{VIDEO_EXTENSIONS, parse_csv_line};
pub use wav::wav_file_name;

use crate::error::DataError;
use crate::manifest::{Manifest, ManifestEntry};
use crate::video::{check_decodable, probe};
use layouts::Listed;

/// The 32 Kinetics-400 classes of Kinetics-Sounds as used by SeLaVi and GDT (Arandjelović & Zisserman's
/// sound-relevant subset restricted to classes present in Kinetics-400). Label `k` is the `k`-th entry.
pub const KINETICS_SOUNDS_CLASSES: [&str; 32] = [
    "blowing nose",
    "blowing out candles",
    "bowling",
    "chopping wood",
    "dribbling basketball",
    "laughing",
    "mowing lawn",
    "playing accordion",
    "playing bagpipes",
    "playing bass guitar",
    "playing clarinet",
    "playing drums",
    "playing guitar",
    "playing harmonica",
    "playing keyboard",
    "playing organ",
    "playing piano",
    "playing saxophone",
    "playing trombone",
    "playing trumpet",
    "playing violin",
    "playing xylophone",
    "ripping paper",
    "shoveling snow",
    "shuffling cards",
    "singing",
    "stomping grapes",
    "strumming guitar",
    "tap dancing",
    "tapping guitar",
    "tapping pen",
    "tickling",
];

/// The datasets `prepare` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Kinetics-Sounds (32 classes of Kinetics-400).
    KineticsSounds,
    /// Kinetics-400.
    K400,
    /// VGGSound.
    Vggsound,
    /// UCF101 (3 folds).
    Ucf101,
    /// HMDB51 (3 folds).
    Hmdb51,
}

impl DatasetKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::KineticsSounds => "kinetics-sounds",
            DatasetKind::K400 => "k400",
            DatasetKind::Vggsound => "vggsound",
            DatasetKind::Ucf101 => "ucf101",
            DatasetKind::Hmdb51 => "hmdb51",
        }
    }

    /// Whether videos without an audio track are indexed (video-only) rather than reported unusable.
    pub fn video_only_ok(self) -> bool {
        matches!(self, DatasetKind::Ucf101 | DatasetKind::Hmdb51)
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "kinetics-sounds" | "kinetics_sounds" | "ks" => DatasetKind::KineticsSounds,
            "k400" | "kinetics400" | "kinetics-400" => DatasetKind::K400,
            "vggsound" => DatasetKind::Vggsound,
            "ucf101" => DatasetKind::Ucf101,
            "hmdb51" => DatasetKind::Hmdb51,
            other => {
                return Err(DataError::Prepare {
                    dataset: other.to_string(),
                    reason: "unknown dataset (expected kinetics-sounds, k400, vggsound, ucf101 or hmdb51)".into(),
                });
            }
        })
    }
}

/// The sample rates `--audio-rate` accepts, in Hz: telephone-band 8 kHz up to 192 kHz studio audio. Below,
/// the mel front end has nothing to work with; above, no real recording has content.
pub const AUDIO_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// What `prepare` does.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// Which dataset layout to read.
    pub dataset: DatasetKind,
    /// The dataset's root folder.
    pub root: PathBuf,
    /// Output folder (manifests, wavs, report).
    pub out: PathBuf,
    /// Sample rate of extracted wavs (`None` keeps each file's native rate).
    pub audio_rate: Option<u32>,
    /// Videos (and audio tracks) shorter than this many seconds are unusable.
    pub min_duration: f64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl PrepareOptions {
    /// Defaults: wavs at 24 kHz (the default mel rate), at least 1 s, progress bar on.
    pub fn new(dataset: DatasetKind, root: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            dataset,
            root: root.into(),
            out: out.into(),
            audio_rate: Some(24_000),
            min_duration: 1.0,
            progress: true,
        }
    }

    /// Check the options before any work: the root is an existing folder, the rate is in [`AUDIO_RATES`], the
    /// minimum duration is a finite number >= 0.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |reason: String| Err(perr(self.dataset, reason));
        if let Some(r) = self.audio_rate
            && !AUDIO_RATES.contains(&r)
        {
            return bad(format!(
                "audio rate {r} Hz is outside {}..={} Hz (0 keeps each file's native rate)",
                AUDIO_RATES.start(),
                AUDIO_RATES.end()
            ));
        }
        if !(self.min_duration.is_finite() && self.min_duration >= 0.0) {
            return bad(format!("minimum duration must be a number >= 0, got {}", self.min_duration));
        }
        match fs::metadata(&self.root) {
            Err(_) => Err(DataError::Missing { path: self.root.clone() }),
            Ok(m) if !m.is_dir() => {
                bad(format!("{}: is a file, not a folder (give the dataset's root folder)", self.root.display()))
            }
            Ok(_) => {
                if self.out.is_file() {
                    return bad(format!("{}: the output is a file, not a folder", self.out.display()));
                }
                let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                if canon(&self.out) == canon(&self.root) {
                    return bad(format!(
                        "{}: the output folder is the dataset root; give another one (a subfolder of the root works)",
                        self.out.display()
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A file that was left out, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unusable {
    /// The video (or the annotation's name for it when the file is missing).
    pub path: PathBuf,
    /// Why (one line).
    pub reason: String,
}

/// The result of a `prepare` run; also written to `OUT/prepare_report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// Dataset name.
    pub dataset: String,
    /// Root that was read.
    pub root: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Clips the layout lists (found or not), each counted once.
    pub listed: usize,
    /// Videos indexed in the manifests.
    pub indexed: usize,
    /// Indexed videos without an audio track (UCF101/HMDB51 only).
    pub video_only: usize,
    /// Number of classes.
    pub classes: usize,
    /// Files left out and why.
    pub unusable: Vec<Unusable>,
    /// Manifests written.
    pub manifests: Vec<PathBuf>,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl PrepareReport {
    /// One human-readable line.
    pub fn summary(&self) -> String {
        format!(
            "prepare {}: {} videos listed, {} indexed ({} video-only), {} unusable, {} classes; manifests: {}; report: {}",
            self.dataset,
            self.listed,
            self.indexed,
            self.video_only,
            self.unusable.len(),
            self.classes,
            self.manifests.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", "),
            self.out.join(REPORT_FILE).display()
        )
    }
}

/// Report file name inside the output folder.
pub const REPORT_FILE: &str = "prepare_report.json";

fn perr(kind: DatasetKind, reason: impl ToString) -> DataError {
    DataError::Prepare { dataset: kind.name().to_string(), reason: reason.to_string() }
}

/// One clip to process: its file, label and every (fold, split) the annotation puts it in.
struct Clip {
    id: String,
    path: PathBuf,
    label: Option<usize>,
    splits: BTreeSet<(u8, String)>,
}

/// Group the layout's listings by clip id, leaving out (with the reason) what would put wrong data in a
/// manifest: an id listed for two files or with two labels, a clip in two splits of one fold, a file listed
/// under two ids.
fn group_clips(listed: Vec<Listed>, unusable: &mut Vec<Unusable>) -> Vec<Clip> {
    let mut by_id: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    for l in listed {
        by_id.entry(l.id.clone()).or_default().push(l);
    }
    let mut clips = Vec::new();
    for (id, ls) in by_id {
        let paths: BTreeSet<&PathBuf> = ls.iter().map(|l| &l.path).collect();
        let labels: BTreeSet<Option<usize>> = ls.iter().map(|l| l.label).collect();
        let mut per_fold: BTreeMap<u8, BTreeSet<&str>> = BTreeMap::new();
        for l in &ls {
            per_fold.entry(l.fold).or_default().insert(&l.split);
        }
        let reason = if paths.len() > 1 {
            Some(format!(
                "id '{id}' names {} files ({}): left out rather than guessed",
                paths.len(),
                paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
        } else if labels.len() > 1 {
            Some(format!("listed with {} different labels", labels.len()))
        } else {
            per_fold.values().find(|s| s.len() > 1).map(|s| {
                format!(
                    "listed in several splits ({}): left out so that no test clip is also a training clip",
                    s.iter().copied().collect::<Vec<_>>().join(", ")
                )
            })
        };
        let first = &ls[0];
        match reason {
            Some(reason) => unusable.push(Unusable { path: first.path.clone(), reason }),
            None => clips.push(Clip {
                id: id.clone(),
                path: first.path.clone(),
                label: first.label,
                splits: ls.iter().map(|l| (l.fold, l.split.clone())).collect(),
            }),
        }
    }
    // A file under two ids: its sound and frames would be two clips' data.
    let mut by_file: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    for (i, c) in clips.iter().enumerate() {
        let key = fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone());
        by_file.entry(key).or_default().push(i);
    }
    let mut drop: BTreeSet<usize> = BTreeSet::new();
    for (file, ids) in by_file.into_iter().filter(|(_, ids)| ids.len() > 1) {
        let names: Vec<&str> = ids.iter().map(|&i| clips[i].id.as_str()).collect();
        let reason = format!("one file listed under {} ids ({}): left out", ids.len(), names.join(", "));
        for _ in &ids {
            unusable.push(Unusable { path: file.clone(), reason: reason.clone() });
        }
        drop.extend(ids);
    }
    clips.into_iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, c)| c).collect()
}

struct Processed {
    duration: f64,
    fps: f64,
    audio: Option<PathBuf>,
    audio_offset: Option<f64>,
}

/// Why a listed path cannot be opened, when the file system already says so.
fn path_problem(p: &Path) -> Option<String> {
    let link = fs::symlink_metadata(p).ok()?;
    if link.file_type().is_symlink() && fs::metadata(p).is_err() {
        let target = fs::read_link(p).map(|t| t.display().to_string()).unwrap_or_default();
        return Some(format!("broken symbolic link (points to {target}, which does not exist)"));
    }
    match fs::metadata(p) {
        Ok(m) if !m.is_file() => Some("not a regular file (a FIFO, socket or device?)".into()),
        _ => None,
    }
}

fn process(v: &Clip, opts: &PrepareOptions, audio_dir: &Path) -> Result<Processed, String> {
    if let Some(problem) = path_problem(&v.path) {
        return Err(problem);
    }
    let info = probe(&v.path).map_err(|e| e.to_string())?;
    if info.duration < opts.min_duration {
        return Err(format!("too short: {:.2} s < {} s", info.duration, opts.min_duration));
    }
    check_decodable(&v.path, info.duration).map_err(|e| e.to_string())?;
    let video_only = Processed { duration: info.duration, fps: info.fps, audio: None, audio_offset: None };
    if !info.has_audio {
        return if opts.dataset.video_only_ok() { Ok(video_only) } else { Err("no audio track".into()) };
    }
    let (wav, got) = match wav::extract_or_reuse(&v.id, &v.path, audio_dir, opts.audio_rate) {
        Ok(x) => x,
        Err(_) if opts.dataset.video_only_ok() => return Ok(video_only),
        Err(e) => return Err(e.to_string()),
    };
    if got.info.duration() < opts.min_duration && !opts.dataset.video_only_ok() {
        return Err(format!("audio too short: {:.2} s < {} s", got.info.duration(), opts.min_duration));
    }
    let rel = PathBuf::from("audio").join(files::file_name(&wav));
    Ok(Processed { audio: Some(rel), audio_offset: Some(got.offset), ..video_only })
}

/// Index a dataset: see the module docs. Writes wavs, manifests, `classes.txt` and the report under
/// `opts.out`, and returns the report. Fails (after writing the report) when no video is usable.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport, DataError> {
    let t0 = Instant::now();
    opts.validate()?;
    let kind = opts.dataset;
    let audio_dir = opts.out.join("audio");
    fs::create_dir_all(&audio_dir).map_err(|e| DataError::io(&audio_dir, e))?;
    let files = files::scan_videos(&opts.root, &opts.out)?;
    let listing = layouts::list(kind, &opts.root, &files)?;
    // A clip missing from several lists (one per fold) is one missing clip.
    let mut unusable: Vec<Unusable> = Vec::new();
    let mut seen_missing = BTreeSet::new();
    for m in listing.missing {
        if seen_missing.insert(m.path.clone()) {
            unusable.push(m);
        }
    }
    // Every listed clip ends up indexed or in `unusable`, once: listed == indexed + unusable.len().
    let listed = unusable.len() + listing.videos.iter().map(|l| &l.id).collect::<BTreeSet<_>>().len();
    let clips = group_clips(listing.videos, &mut unusable);
    // Distinct ids never share a wav: `wav_file_name` ends in a hash of the id; a hash collision is caught here.
    let mut names: HashMap<String, &str> = HashMap::new();
    for c in &clips {
        if let Some(other) = names.insert(wav::wav_file_name(&c.id), &c.id) {
            return Err(perr(kind, format!("ids '{other}' and '{}' hash to one wav name; rename one", c.id)));
        }
    }

    let bar = if opts.progress { ProgressBar::new(clips.len() as u64) } else { ProgressBar::hidden() };
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("prepare {}", kind.name()));
    let results: Vec<Result<Processed, String>> = clips
        .par_iter()
        .map(|v| {
            let r = process(v, opts, &audio_dir);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();

    let mut entries_by_fold: BTreeMap<u8, Vec<ManifestEntry>> = BTreeMap::new();
    let (mut indexed, mut video_only) = (0, 0);
    for (v, r) in clips.iter().zip(results) {
        match r {
            Err(reason) => unusable.push(Unusable { path: v.path.clone(), reason }),
            Ok(p) => {
                indexed += 1;
                video_only += usize::from(p.audio.is_none());
                let abs = fs::canonicalize(&v.path).unwrap_or_else(|_| v.path.clone());
                for (fold, split) in &v.splits {
                    entries_by_fold.entry(*fold).or_default().push(ManifestEntry {
                        id: v.id.clone(),
                        video: abs.clone(),
                        audio: p.audio.clone(),
                        audio_offset: p.audio_offset,
                        duration: p.duration,
                        fps: p.fps,
                        label: v.label,
                        label_name: v.label.and_then(|l| listing.classes.get(l).cloned()),
                        split: split.clone(),
                    });
                }
            }
        }
    }
    let mut manifests = Vec::new();
    for (fold, entries) in &entries_by_fold {
        let path = if listing.folds {
            opts.out.join(format!("manifest_fold{fold}.jsonl"))
        } else {
            opts.out.join("manifest.jsonl")
        };
        Manifest::save(&path, entries)?;
        manifests.push(path);
    }
    let classes_path = opts.out.join("classes.txt");
    fs::write(&classes_path, listing.classes.iter().map(|c| format!("{c}\n")).collect::<String>())
        .map_err(|e| DataError::io(&classes_path, e))?;
    let report = PrepareReport {
        dataset: kind.name().to_string(),
        root: opts.root.clone(),
        out: opts.out.clone(),
        listed,
        indexed,
        video_only,
        classes: listing.classes.len(),
        unusable,
        manifests,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let report_path = opts.out.join(REPORT_FILE);
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| DataError::io(&report_path, std::io::Error::other(e)))?;
    fs::write(&report_path, json).map_err(|e| DataError::io(&report_path, e))?;
    if indexed == 0 {
        return Err(perr(kind, format!("no usable video (see {})", report_path.display())));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names() {
        assert_eq!("ucf101".parse::<DatasetKind>().expect("parse"), DatasetKind::Ucf101);
        assert!("imagenet".parse::<DatasetKind>().is_err());
        assert_eq!(KINETICS_SOUNDS_CLASSES.len(), 32);
        let mut sorted = KINETICS_SOUNDS_CLASSES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, KINETICS_SOUNDS_CLASSES.to_vec());
    }

    fn listed(id: &str, path: &str, fold: u8, split: &str) -> Listed {
        Listed { id: id.into(), path: PathBuf::from(path), label: Some(0), fold, split: split.into() }
    }

    #[test]
    fn grouping_leaves_out_what_would_be_wrong_data() {
        let mut unusable = Vec::new();
        let clips = group_clips(
            vec![
                // Listed once per fold: one clip in three folds.
                listed("a", "/d/a.avi", 1, "train"),
                listed("a", "/d/a.avi", 2, "test"),
                listed("a", "/d/a.avi", 3, "train"),
                // Listed twice in one split: one clip.
                listed("b", "/d/b.mp4", 0, "train"),
                listed("b", "/d/b.mp4", 0, "train"),
                // In train and val of one fold: out.
                listed("c", "/d/c.mp4", 0, "train"),
                listed("c", "/d/c.mp4", 0, "val"),
                // Two ids, one file: both out.
                listed("d1", "/d/d.mp4", 0, "train"),
                listed("d2", "/d/d.mp4", 0, "test"),
                // One id, two files: out.
                listed("e", "/d/e.mp4", 0, "train"),
                listed("e", "/x/e.mp4", 0, "train"),
            ],
            &mut unusable,
        );
        let ids: Vec<&str> = clips.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(clips[0].splits.len(), 3);
        assert_eq!(clips[1].splits.len(), 1);
        let why: Vec<String> = unusable.iter().map(|u| format!("{} {}", u.path.display(), u.reason)).collect();
        assert_eq!(why.len(), 4, "one per listed id left out: {why:?}");
        assert!(why.iter().any(|w| w.contains("c.mp4") && w.contains("several splits (train, val)")), "{why:?}");
        assert!(why.iter().any(|w| w.contains("d.mp4") && w.contains("2 ids (d1, d2)")), "{why:?}");
        assert!(why.iter().any(|w| w.contains("e.mp4") && w.contains("2 files")), "{why:?}");
    }
}
