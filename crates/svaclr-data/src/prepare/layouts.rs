//! Reading each dataset's annotation layout into the list of clips it names: `(id, file, label, fold, split)`
//! per listed clip, and the clips it lists whose file is not there. Which clip a file is, is decided here and
//! nowhere else; see docs/data.md for the layouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::files::{FileIndex, file_name, find_named, norm_split, parse_csv_line, stem};
use super::{DatasetKind, KINETICS_SOUNDS_CLASSES, Unusable, perr};
use crate::error::DataError;

/// One listing of a clip by the annotation (a clip may be listed several times: once per fold, or by mistake).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Listed {
    pub id: String,
    pub path: PathBuf,
    pub label: Option<usize>,
    /// Fold 0 for datasets without folds.
    pub fold: u8,
    pub split: String,
}

/// What a layout lists.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub classes: Vec<String>,
    pub videos: Vec<Listed>,
    /// Clips the annotation lists whose file is not there.
    pub missing: Vec<Unusable>,
    /// Whether the dataset has official folds (one manifest per fold).
    pub folds: bool,
}

/// Read the layout of `kind` under `root`, given the video files found there.
pub(crate) fn list(kind: DatasetKind, root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    match kind {
        DatasetKind::K400 | DatasetKind::KineticsSounds => list_kinetics(kind, root, files),
        DatasetKind::Vggsound => list_vggsound(root, files),
        DatasetKind::Ucf101 => list_ucf101(root, files),
        DatasetKind::Hmdb51 => list_hmdb51(root, files),
    }
}

/// Class names compare without case and with `_` as space.
fn norm_class(s: &str) -> String {
    s.trim().replace('_', " ").to_lowercase()
}

fn not_found(name: &str, listed_in: &Path, reason: String) -> Unusable {
    Unusable { path: PathBuf::from(format!("{name} (listed in {})", file_name(listed_in))), reason }
}

/// An annotation line that names no usable clip: reported (as `FILE:LINE`) and skipped, so that one bad row among
/// thousands does not stop the dataset.
fn bad_row(file: &Path, line: usize, reason: String) -> Unusable {
    Unusable { path: PathBuf::from(format!("{}:{line}", file.display())), reason }
}

/// A row of a Kinetics or VGGSound annotation: the clip's names (the first is its id), its YouTube id, label
/// name and split, and the annotation file it came from.
struct Row {
    names: Vec<String>,
    youtube_id: String,
    label: Option<String>,
    split: String,
    csv: PathBuf,
}

/// Resolve annotation rows to files (see [`FileIndex::youtube_clip`]); `all_clips` holds the clips listed per
/// YouTube video over every row, kept or not.
fn resolve_rows(
    rows: Vec<Row>,
    all_clips: &HashMap<String, BTreeSet<String>>,
    files: &[PathBuf],
    out: &mut Listing,
) -> Vec<(Row, PathBuf)> {
    let index = FileIndex::new(files);
    let mut found = Vec::new();
    for row in rows {
        let clips = all_clips.get(&row.youtube_id).map_or(1, BTreeSet::len);
        match index.youtube_clip(&row.names, &row.youtube_id, clips) {
            Ok(p) => found.push((row, p)),
            Err(reason) => out.missing.push(not_found(&row.names[0], &row.csv, reason)),
        }
    }
    found
}

fn list_kinetics(kind: DatasetKind, root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let ks = kind == DatasetKind::KineticsSounds;
    let keep = |name: &str| !ks || KINETICS_SOUNDS_CLASSES.contains(&norm_class(name).as_str());
    let is_csv =
        |p: &Path| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) && norm_split(&stem(p)).is_some();
    let mut csvs: Vec<PathBuf> = find_named(root, 0, &is_csv);
    csvs.extend(find_named(&root.join("annotations"), 0, &is_csv));
    let mut listing = Listing::default();
    // (label name, file, split, clip id)
    let mut found: Vec<(Option<String>, PathBuf, String, String)> = Vec::new();
    // Every label the annotation gives a kept row, found or not: label indices must not depend on which files
    // were downloaded.
    let mut labels: BTreeSet<String> = BTreeSet::new();
    if !csvs.is_empty() {
        let mut rows = Vec::new();
        let mut all_clips: HashMap<String, BTreeSet<String>> = HashMap::new();
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
                let secs = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
                let (Some(start), Some(end)) = (secs(&start), secs(&end)) else {
                    let why = format!("bad time_start/time_end '{start}', '{end}'");
                    listing.missing.push(bad_row(csv, ln + 2, why));
                    continue;
                };
                if id.is_empty() {
                    listing.missing.push(bad_row(csv, ln + 2, "empty youtube_id".into()));
                    continue;
                }
                let full = format!("{id}_{:06}_{:06}", start.round() as i64, end.round() as i64);
                all_clips.entry(id.clone()).or_default().insert(full.clone());
                let label = c_label.map(get).filter(|l| !l.is_empty());
                if label.as_deref().is_some_and(|l| !keep(l)) || (ks && label.is_none()) {
                    continue;
                }
                let split = match c_split.map(get).filter(|v| !v.is_empty()) {
                    None => file_split.clone(),
                    Some(v) => match norm_split(&v) {
                        Some(split) => split,
                        None => {
                            listing.missing.push(bad_row(csv, ln + 2, format!("unknown split '{v}'")));
                            continue;
                        }
                    },
                };
                if let Some(l) = &label {
                    labels.insert(norm_class(l));
                }
                rows.push(Row { names: vec![full], youtube_id: id, label, split, csv: csv.clone() });
            }
        }
        for (row, path) in resolve_rows(rows, &all_clips, files, &mut listing) {
            found.push((row.label, path, row.split, row.names[0].clone()));
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
            labels.insert(norm_class(class));
            found.push((Some(class.clone()), f.clone(), split, stem(f)));
        }
        if found.is_empty() {
            return Err(perr(
                kind,
                format!("{}: no annotation CSV and no <split>/<class>/<video> folders", root.display()),
            ));
        }
    }
    listing.classes =
        if ks { KINETICS_SOUNDS_CLASSES.iter().map(|s| s.to_string()).collect() } else { labels.into_iter().collect() };
    let class_index: HashMap<&str, usize> = listing.classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let videos = found
        .into_iter()
        .map(|(label, path, split, id)| {
            let label = label.and_then(|l| class_index.get(norm_class(&l).as_str()).copied());
            Listed { id, path, label, fold: 0, split }
        })
        .collect();
    listing.videos = videos;
    Ok(listing)
}

fn list_vggsound(root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let kind = DatasetKind::Vggsound;
    let csv = find_named(root, 2, &|p| file_name(p).eq_ignore_ascii_case("vggsound.csv"))
        .into_iter()
        .next()
        .ok_or_else(|| perr(kind, format!("{}: vggsound.csv not found", root.display())))?;
    let text = fs::read_to_string(&csv).map_err(|e| DataError::io(&csv, e))?;
    let mut rows = Vec::new();
    let mut all_clips: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut listing = Listing::default();
    let mut labels: BTreeSet<String> = BTreeSet::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f = parse_csv_line(line);
        if f.len() < 4 {
            listing.missing.push(bad_row(&csv, ln + 1, "expected youtube_id,start_seconds,label,split".into()));
            continue;
        }
        let Some(start) = f[1].parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0) else {
            if ln == 0 {
                continue; // a header line
            }
            listing.missing.push(bad_row(&csv, ln + 1, format!("bad start_seconds '{}'", f[1])));
            continue;
        };
        if f[0].is_empty() {
            listing.missing.push(bad_row(&csv, ln + 1, "empty youtube_id".into()));
            continue;
        }
        let Some(split) = norm_split(&f[3]) else {
            listing.missing.push(bad_row(&csv, ln + 1, format!("unknown split '{}'", f[3])));
            continue;
        };
        let start = start.round() as i64;
        let id = f[0].clone();
        let names =
            vec![format!("{id}_{start:06}"), format!("{id}_{start}"), format!("{id}_{start:06}_{:06}", start + 10)];
        all_clips.entry(id.clone()).or_default().insert(names[0].clone());
        labels.insert(f[2].clone());
        rows.push(Row { names, youtube_id: id, label: Some(f[2].clone()), split, csv: csv.clone() });
    }
    let found = resolve_rows(rows, &all_clips, files, &mut listing);
    listing.classes = labels.into_iter().collect();
    let class_index: HashMap<&str, usize> = listing.classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    listing.videos = found
        .into_iter()
        .map(|(row, path)| Listed {
            label: row.label.as_deref().and_then(|l| class_index.get(l).copied()),
            id: row.names[0].clone(),
            path,
            fold: 0,
            split: row.split,
        })
        .collect();
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
    let mut listing = Listing { classes: classes.clone(), folds: true, ..Listing::default() };
    let mut lists_read = 0;
    for fold in 1..=3u8 {
        for split in ["train", "test"] {
            let list = lists_dir.join(format!("{split}list{fold:02}.txt"));
            if !list.is_file() {
                continue;
            }
            lists_read += 1;
            let text = fs::read_to_string(&list).map_err(|e| DataError::io(&list, e))?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                // `Class/v_Class_gNN_cNN.avi [label]`; a file name may hold spaces, the label never does.
                let rel = match line.rsplit_once(char::is_whitespace) {
                    Some((p, label)) if label.parse::<usize>().is_ok() => p.trim(),
                    _ => line,
                }
                .replace('\\', "/");
                let (class, name) = match rel.rsplit_once('/') {
                    Some((dir, name)) => (dir.rsplit('/').next().unwrap_or(dir), name),
                    None => ("", rel.as_str()),
                };
                let path = if class.is_empty() { index.name(name) } else { index.in_folder(class, name) };
                let Some(path) = path else {
                    listing
                        .missing
                        .push(Unusable { path: PathBuf::from(&rel), reason: "listed but file not found".into() });
                    continue;
                };
                let label = class_index.get(class).copied();
                listing.videos.push(Listed { id: stem(path), path: path.clone(), label, fold, split: split.into() });
            }
        }
    }
    if lists_read == 0 {
        return Err(perr(kind, format!("{}: no trainlist0N.txt / testlist0N.txt", lists_dir.display())));
    }
    Ok(listing)
}

fn list_hmdb51(root: &Path, files: &[PathBuf]) -> Result<Listing, DataError> {
    let kind = DatasetKind::Hmdb51;
    let split_files = find_named(root, 3, &|p| {
        let n = file_name(p);
        n.ends_with(".txt") && n.contains("_test_split")
    });
    let mut per_class: BTreeMap<String, Vec<(u8, PathBuf)>> = BTreeMap::new();
    for f in split_files {
        let n = file_name(&f);
        let Some(pos) = n.rfind("_test_split") else { continue };
        let fold = n[pos + "_test_split".len()..].trim_end_matches(".txt").parse::<u8>().unwrap_or(0);
        if (1..=3).contains(&fold) {
            per_class.entry(n[..pos].to_string()).or_default().push((fold, f));
        }
    }
    if per_class.is_empty() {
        return Err(perr(kind, format!("{}: no testTrainMulti_7030_splits/<class>_test_splitN.txt", root.display())));
    }
    let index = FileIndex::new(files);
    let mut listing = Listing { classes: per_class.keys().cloned().collect(), folds: true, ..Listing::default() };
    for (label, (class, lists)) in per_class.iter().enumerate() {
        for (fold, list) in lists {
            let text = fs::read_to_string(list).map_err(|e| DataError::io(list, e))?;
            for (ln, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty()) {
                // `name.avi MARK`; a file name may hold spaces, the mark never does.
                let Some((name, mark)) = line.rsplit_once(char::is_whitespace).map(|(n, m)| (n.trim(), m)) else {
                    listing.missing.push(bad_row(list, ln, "expected '<video> <0|1|2>'".into()));
                    continue;
                };
                let split = match mark {
                    "1" => "train",
                    "2" => "test",
                    "0" => continue,
                    other => {
                        listing.missing.push(bad_row(list, ln, format!("unknown split mark '{other}' (0, 1 or 2)")));
                        continue;
                    }
                };
                let Some(path) = index.in_folder(class, name) else {
                    listing
                        .missing
                        .push(Unusable { path: PathBuf::from(name), reason: "listed but file not found".into() });
                    continue;
                };
                listing.videos.push(Listed {
                    id: stem(path),
                    path: path.clone(),
                    label: Some(label),
                    fold: *fold,
                    split: split.into(),
                });
            }
        }
    }
    Ok(listing)
}
