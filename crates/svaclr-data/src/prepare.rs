//! `svaclr prepare`: index a real dataset from the folder layout it ships in.
//!
//! For every video: probe duration and frame rate, check that it decodes at its start and near its end, and
//! extract its audio track once to `OUT/audio/<id>.wav` (mono, 16-bit, resampled to `audio_rate`). Videos that
//! fail are listed in `OUT/prepare_report.json` with the reason (corrupt, truncated, no audio track, too short)
//! and left out; the rest are indexed in manifests (`OUT/manifest.jsonl`, or `OUT/manifest_fold{1,2,3}.jsonl`
//! with `train`/`test` splits for UCF101 and HMDB51) with class names in `OUT/classes.txt`. UCF101 and HMDB51
//! are action-recognition sets whose videos often have no audio: those are indexed as video-only (`audio: null`;
//! use `allow_missing_audio` in the data config). Work runs in parallel with rayon and shows a progress bar.
//! Re-running reuses wavs that already exist and read back.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audio::{extract_audio_to_wav, wav_info};
use crate::error::DataError;
use crate::manifest::{Manifest, ManifestEntry};
use crate::video::{check_decodable, probe};

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

/// File extensions treated as videos when scanning a dataset root.
pub const VIDEO_EXTENSIONS: [&str; 11] =
    ["mp4", "mkv", "webm", "avi", "mov", "m4v", "flv", "3gp", "mpg", "mpeg", "ogv"];

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
    /// Videos the layout lists (found or not).
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

/// A video the layout lists.
#[derive(Clone, Debug)]
struct Listed {
    id: String,
    path: PathBuf,
    label: Option<usize>,
    /// (fold, split): fold 0 for datasets without folds.
    splits: Vec<(u8, String)>,
}

#[derive(Debug, Default)]
struct Listing {
    classes: Vec<String>,
    videos: Vec<Listed>,
    missing: Vec<Unusable>,
    folds: bool,
}

fn perr(kind: DatasetKind, reason: impl ToString) -> DataError {
    DataError::Prepare { dataset: kind.name().to_string(), reason: reason.to_string() }
}

/// All video files under `root` (recursively), skipping `skip` (the output folder when it lies inside).
fn scan_videos(root: &Path, skip: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir == skip {
            continue;
        }
        let rd = fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| DataError::io(&dir, e))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| VIDEO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Files named `name` up to `depth` folders below `root`.
fn find_named(root: &Path, depth: usize, pred: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..=depth {
        let mut next = Vec::new();
        for dir in level {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for entry in rd.flatten() {
                let p = entry.path();
                if pred(&p) {
                    out.push(p.clone());
                }
                if p.is_dir() {
                    next.push(p);
                }
            }
        }
        level = next;
    }
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Split one CSV line (RFC 4180 quoting).
pub fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields.iter().map(|f| f.trim().to_string()).collect()
}

/// Class names compare without case and with `_` as space.
fn norm_class(s: &str) -> String {
    s.trim().replace('_', " ").to_lowercase()
}

fn norm_split(s: &str) -> Option<String> {
    let s = s.to_lowercase();
    if s.contains("train") {
        Some("train".into())
    } else if s.contains("val") {
        Some("val".into())
    } else if s.contains("test") {
        Some("test".into())
    } else {
        None
    }
}

/// Strip a trailing `_dddddd` or `_dddddd_dddddd` (YouTube clip times) from a file stem.
fn youtube_id_of(stem: &str) -> &str {
    let mut s = stem;
    for _ in 0..2 {
        if let Some(pos) = s.rfind('_') {
            let tail = &s[pos + 1..];
            if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) && pos >= 11 {
                s = &s[..pos];
                continue;
            }
        }
        break;
    }
    s
}

struct FileIndex {
    by_stem: HashMap<String, PathBuf>,
    by_ytid: HashMap<String, PathBuf>,
    by_name: HashMap<String, PathBuf>,
}

impl FileIndex {
    fn new(files: &[PathBuf]) -> Self {
        let mut by_stem = HashMap::new();
        let mut by_ytid = HashMap::new();
        let mut by_name = HashMap::new();
        for f in files {
            let st = stem(f);
            by_ytid.entry(youtube_id_of(&st).to_string()).or_insert_with(|| f.clone());
            by_stem.entry(st).or_insert_with(|| f.clone());
            by_name.entry(file_name(f)).or_insert_with(|| f.clone());
        }
        Self { by_stem, by_ytid, by_name }
    }
}

fn list_kinetics(kind: DatasetKind, root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let ks = kind == DatasetKind::KineticsSounds;
    let keep = |name: &str| !ks || KINETICS_SOUNDS_CLASSES.contains(&norm_class(name).as_str());
    let is_csv =
        |p: &Path| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) && norm_split(&stem(p)).is_some();
    let mut csvs: Vec<PathBuf> = find_named(root, 0, &is_csv);
    csvs.extend(find_named(&root.join("annotations"), 0, &is_csv));
    // (label name, clip id, file, split)
    let mut rows: Vec<(Option<String>, Option<String>, PathBuf, String)> = Vec::new();
    let mut listing = Listing::default();
    if !csvs.is_empty() {
        let index = FileIndex::new(files);
        for csv in &csvs {
            let text = fs::read_to_string(csv).map_err(|e| DataError::io(csv, e))?;
            let mut lines = text.lines();
            let header = parse_csv_line(lines.next().unwrap_or(""));
            let col = |n: &str| header.iter().position(|h| h.eq_ignore_ascii_case(n));
            let (Some(c_id), Some(c_start), Some(c_end)) = (col("youtube_id"), col("time_start"), col("time_end"))
            else {
                return Err(perr(
                    kind,
                    format!("{}: header must name youtube_id, time_start, time_end", csv.display()),
                ));
            };
            let (c_label, c_split) = (col("label"), col("split"));
            let file_split = norm_split(&stem(csv)).unwrap_or_else(|| "train".into());
            for (ln, line) in lines.enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let f = parse_csv_line(line);
                let get = |c: usize| f.get(c).cloned().unwrap_or_default();
                let (id, start, end) = (get(c_id), get(c_start), get(c_end));
                if id.is_empty() {
                    return Err(perr(kind, format!("{}:{}: empty youtube_id", csv.display(), ln + 2)));
                }
                let label = c_label.map(get).filter(|l| !l.is_empty());
                if label.as_deref().is_some_and(|l| !keep(l)) || (ks && label.is_none()) {
                    continue;
                }
                let split = c_split.and_then(|c| norm_split(&get(c))).unwrap_or_else(|| file_split.clone());
                let secs = |s: &str| s.parse::<f64>().map(|v| v.round() as i64).unwrap_or(0);
                let full = format!("{id}_{:06}_{:06}", secs(&start), secs(&end));
                match index.by_stem.get(&full).or_else(|| index.by_ytid.get(&id)) {
                    Some(p) => rows.push((label, Some(full), p.clone(), split)),
                    None => listing.missing.push(Unusable {
                        path: PathBuf::from(format!("{full} (listed in {})", file_name(csv))),
                        reason: "file not found".into(),
                    }),
                }
            }
        }
    } else {
        for f in files {
            let rel = f.strip_prefix(root).unwrap_or(f);
            let comps: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if comps.len() < 3 {
                continue;
            }
            let (split_dir, class) = (&comps[comps.len() - 3], &comps[comps.len() - 2]);
            let Some(split) = norm_split(split_dir) else { continue };
            if !keep(class) {
                continue;
            }
            rows.push((Some(class.clone()), None, f.clone(), split));
        }
        if rows.is_empty() {
            return Err(perr(
                kind,
                format!("{}: no annotation CSV and no <split>/<class>/<video> folders", root.display()),
            ));
        }
    }
    let classes: Vec<String> = if ks {
        KINETICS_SOUNDS_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        rows.iter().filter_map(|r| r.0.as_ref().map(|l| norm_class(l))).collect::<BTreeSet<_>>().into_iter().collect()
    };
    let class_index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    for (label, id, path, split) in rows {
        let label = label.and_then(|l| class_index.get(norm_class(&l).as_str()).copied());
        let id = id.unwrap_or_else(|| stem(&path));
        listing.videos.push(Listed { id, path, label, splits: vec![(0, split)] });
    }
    listing.classes = classes;
    Ok(listing)
}

fn list_vggsound(root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let kind = DatasetKind::Vggsound;
    let csv = find_named(root, 2, &|p| file_name(p).eq_ignore_ascii_case("vggsound.csv"))
        .into_iter()
        .next()
        .ok_or_else(|| perr(kind, format!("{}: vggsound.csv not found", root.display())))?;
    let text = fs::read_to_string(&csv).map_err(|e| DataError::io(&csv, e))?;
    let index = FileIndex::new(files);
    let mut rows = Vec::new();
    let mut listing = Listing::default();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f = parse_csv_line(line);
        if f.len() < 4 {
            return Err(perr(
                kind,
                format!("{}:{}: expected youtube_id,start_seconds,label,split", csv.display(), ln + 1),
            ));
        }
        let Ok(start) = f[1].parse::<f64>() else {
            if ln == 0 {
                continue; // a header line
            }
            return Err(perr(kind, format!("{}:{}: bad start_seconds '{}'", csv.display(), ln + 1, f[1])));
        };
        let start = start.round() as i64;
        let (id, label, split) = (&f[0], &f[2], norm_split(&f[3]).unwrap_or_else(|| "train".into()));
        let cands = [format!("{id}_{start:06}"), format!("{id}_{start}"), format!("{id}_{start:06}_{:06}", start + 10)];
        let found = cands.iter().find_map(|c| index.by_stem.get(c)).or_else(|| index.by_ytid.get(id.as_str()));
        match found {
            Some(p) => rows.push((cands[0].clone(), label.clone(), p.clone(), split)),
            None => listing.missing.push(Unusable {
                path: PathBuf::from(format!("{} (listed in vggsound.csv)", cands[0])),
                reason: "file not found".into(),
            }),
        }
    }
    let classes: Vec<String> = rows.iter().map(|r| r.1.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let class_index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    for (id, label, path, split) in rows {
        let label = class_index.get(label.as_str()).copied();
        listing.videos.push(Listed { id, path, label, splits: vec![(0, split)] });
    }
    listing.classes = classes;
    Ok(listing)
}

fn list_ucf101(root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let kind = DatasetKind::Ucf101;
    let class_ind = find_named(root, 3, &|p| file_name(p).eq_ignore_ascii_case("classInd.txt"))
        .into_iter()
        .next()
        .ok_or_else(|| perr(kind, format!("{}: ucfTrainTestlist/classInd.txt not found", root.display())))?;
    let lists_dir = class_ind.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = fs::read_to_string(&class_ind).map_err(|e| DataError::io(&class_ind, e))?;
    let mut classes = Vec::new();
    for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(num), Some(name)) = (it.next().and_then(|n| n.parse::<usize>().ok()), it.next()) else {
            return Err(perr(kind, format!("{}:{}: expected '<index> <Class>'", class_ind.display(), ln + 1)));
        };
        if num != classes.len() + 1 {
            return Err(perr(kind, format!("{}:{}: class indices must run 1, 2, ...", class_ind.display(), ln + 1)));
        }
        classes.push(name.to_string());
    }
    let class_index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let index = FileIndex::new(files);
    let mut videos: BTreeMap<String, Listed> = BTreeMap::new();
    let mut missing = Vec::new();
    for fold in 1..=3u8 {
        for split in ["train", "test"] {
            let list = lists_dir.join(format!("{split}list{fold:02}.txt"));
            if !list.is_file() {
                continue;
            }
            let text = fs::read_to_string(&list).map_err(|e| DataError::io(&list, e))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let rel = line.split_whitespace().next().unwrap_or("").replace('\\', "/");
                let name = rel.rsplit('/').next().unwrap_or("").to_string();
                let class = rel.split('/').next().unwrap_or("");
                let Some(path) = index.by_name.get(&name) else {
                    if fold == 1 {
                        missing
                            .push(Unusable { path: PathBuf::from(&rel), reason: "listed but file not found".into() });
                    }
                    continue;
                };
                let label = class_index.get(class).copied();
                let id = stem(path);
                videos
                    .entry(id.clone())
                    .or_insert_with(|| Listed { id, path: path.clone(), label, splits: Vec::new() })
                    .splits
                    .push((fold, split.to_string()));
            }
        }
    }
    if videos.is_empty() && missing.is_empty() {
        return Err(perr(kind, format!("{}: no trainlist0N.txt / testlist0N.txt", lists_dir.display())));
    }
    Ok(Listing { classes, videos: videos.into_values().collect(), missing, folds: true })
}

fn list_hmdb51(root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let kind = DatasetKind::Hmdb51;
    let split_files = find_named(root, 3, &|p| {
        let n = file_name(p);
        n.ends_with(".txt") && n.contains("_test_split")
    });
    if split_files.is_empty() {
        return Err(perr(kind, format!("{}: no testTrainMulti_7030_splits/<class>_test_splitN.txt", root.display())));
    }
    let mut per_class: BTreeMap<String, Vec<(u8, PathBuf)>> = BTreeMap::new();
    for f in split_files {
        let n = file_name(&f);
        let Some(pos) = n.rfind("_test_split") else { continue };
        let fold = n[pos + "_test_split".len()..].trim_end_matches(".txt").parse::<u8>().unwrap_or(0);
        if (1..=3).contains(&fold) {
            per_class.entry(n[..pos].to_string()).or_default().push((fold, f));
        }
    }
    let classes: Vec<String> = per_class.keys().cloned().collect();
    let index = FileIndex::new(files);
    let mut videos: BTreeMap<String, Listed> = BTreeMap::new();
    let mut missing = Vec::new();
    for (label, (_class, lists)) in per_class.iter().enumerate() {
        for (fold, list) in lists {
            let text = fs::read_to_string(list).map_err(|e| DataError::io(list, e))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let mut it = line.split_whitespace();
                let (Some(name), Some(mark)) = (it.next(), it.next()) else {
                    continue;
                };
                let split = match mark {
                    "1" => "train",
                    "2" => "test",
                    _ => continue,
                };
                let Some(path) = index.by_name.get(name) else {
                    if *fold == 1 {
                        missing
                            .push(Unusable { path: PathBuf::from(name), reason: "listed but file not found".into() });
                    }
                    continue;
                };
                let id = stem(path);
                videos
                    .entry(id.clone())
                    .or_insert_with(|| Listed { id, path: path.clone(), label: Some(label), splits: Vec::new() })
                    .splits
                    .push((*fold, split.to_string()));
            }
        }
    }
    Ok(Listing { classes, videos: videos.into_values().collect(), missing, folds: true })
}

/// A file-name-safe version of an id.
fn safe_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

struct Processed {
    duration: f64,
    fps: f64,
    audio: Option<PathBuf>,
}

fn process(v: &Listed, opts: &PrepareOptions, audio_dir: &Path) -> Result<Processed, String> {
    let info = probe(&v.path).map_err(|e| e.to_string())?;
    if info.duration < opts.min_duration {
        return Err(format!("too short: {:.2} s < {} s", info.duration, opts.min_duration));
    }
    check_decodable(&v.path, info.duration).map_err(|e| e.to_string())?;
    let wav = audio_dir.join(format!("{}.wav", safe_name(&v.id)));
    let rel = PathBuf::from("audio").join(file_name(&wav));
    let existing = wav_info(&wav).ok().filter(|w| w.frames > 0 && opts.audio_rate.is_none_or(|r| r == w.sample_rate));
    let audio = if !info.has_audio {
        if opts.dataset.video_only_ok() {
            None
        } else {
            return Err("no audio track".into());
        }
    } else {
        let w = match existing {
            Some(w) => w,
            None => match extract_audio_to_wav(&v.path, &wav, opts.audio_rate) {
                Ok(w) => w,
                Err(_) if opts.dataset.video_only_ok() => {
                    return Ok(Processed { duration: info.duration, fps: info.fps, audio: None });
                }
                Err(e) => return Err(e.to_string()),
            },
        };
        if w.duration() < opts.min_duration && !opts.dataset.video_only_ok() {
            return Err(format!("audio too short: {:.2} s < {} s", w.duration(), opts.min_duration));
        }
        Some(rel)
    };
    Ok(Processed { duration: info.duration, fps: info.fps, audio })
}

/// Index a dataset: see the module docs. Writes wavs, manifests, `classes.txt` and the report under
/// `opts.out`, and returns the report. Fails (after writing the report) when no video is usable.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport, DataError> {
    let t0 = Instant::now();
    let kind = opts.dataset;
    if !opts.root.is_dir() {
        return Err(DataError::Missing { path: opts.root.clone() });
    }
    let audio_dir = opts.out.join("audio");
    fs::create_dir_all(&audio_dir).map_err(|e| DataError::io(&audio_dir, e))?;
    let files = scan_videos(&opts.root, &opts.out)?;
    let listing = match kind {
        DatasetKind::K400 | DatasetKind::KineticsSounds => list_kinetics(kind, &opts.root, &files)?,
        DatasetKind::Vggsound => list_vggsound(&opts.root, &files)?,
        DatasetKind::Ucf101 => list_ucf101(&opts.root, &files)?,
        DatasetKind::Hmdb51 => list_hmdb51(&opts.root, &files)?,
    };
    // Unique ids.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let videos: Vec<Listed> = listing
        .videos
        .into_iter()
        .map(|mut v| {
            let n = seen.entry(v.id.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                v.id = format!("{}_{}", v.id, n);
            }
            v
        })
        .collect();

    let bar = if opts.progress { ProgressBar::new(videos.len() as u64) } else { ProgressBar::hidden() };
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("prepare {}", kind.name()));
    let results: Vec<Result<Processed, String>> = videos
        .par_iter()
        .map(|v| {
            let r = process(v, opts, &audio_dir);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();

    let mut unusable = listing.missing;
    let mut entries_by_fold: BTreeMap<u8, Vec<ManifestEntry>> = BTreeMap::new();
    let (mut indexed, mut video_only) = (0, 0);
    for (v, r) in videos.iter().zip(results) {
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
        listed: videos.len() + unusable.iter().filter(|u| u.reason.contains("not found")).count(),
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
    fn csv_quotes_and_ids() {
        assert_eq!(
            parse_csv_line(r#"abc,30,"playing steel guitar, slide guitar",train"#),
            vec!["abc", "30", "playing steel guitar, slide guitar", "train"]
        );
        assert_eq!(parse_csv_line(r#"a,"b ""c""",d"#), vec!["a", r#"b "c""#, "d"]);
        assert_eq!(youtube_id_of("---g-f_I2yQ_000001_000011"), "---g-f_I2yQ");
        assert_eq!(youtube_id_of("-0BIyqJj9ZU_000030"), "-0BIyqJj9ZU");
        assert_eq!(youtube_id_of("v_ApplyEyeMakeup_g08_c01"), "v_ApplyEyeMakeup_g08_c01");
        assert_eq!("ucf101".parse::<DatasetKind>().expect("parse"), DatasetKind::Ucf101);
        assert!("imagenet".parse::<DatasetKind>().is_err());
        assert_eq!(KINETICS_SOUNDS_CLASSES.len(), 32);
        let mut sorted = KINETICS_SOUNDS_CLASSES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, KINETICS_SOUNDS_CLASSES.to_vec());
    }
}
