//! Finding a dataset's files: the recursive video scan, annotation look-up, CSV lines and the index that maps
//! an annotation's clip names to files.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::DataError;

/// File extensions treated as videos when scanning a dataset root.
pub const VIDEO_EXTENSIONS: [&str; 11] =
    ["mp4", "mkv", "webm", "avi", "mov", "m4v", "flv", "3gp", "mpg", "mpeg", "ogv"];

/// All video files under `root` (recursively, following links to folders once), skipping `skip` (the output
/// folder when it lies inside). Links to files are listed even when their target is gone, so that a broken link
/// is reported rather than silently missing.
pub(crate) fn scan_videos(root: &Path, skip: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let mut seen_dirs = std::collections::HashSet::new();
    while let Some(dir) = stack.pop() {
        if dir == skip || !seen_dirs.insert(fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())) {
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

/// Paths up to `depth` folders below `root` for which `pred` holds.
pub(crate) fn find_named(root: &Path, depth: usize, pred: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
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

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

pub(crate) fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Split one CSV line (RFC 4180 quoting); fields are trimmed, a leading byte-order mark is dropped.
pub fn parse_csv_line(line: &str) -> Vec<String> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
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

/// The split a file or folder name, or an annotation's split column, stands for (`train`, `val`, `test`), if any.
pub(crate) fn norm_split(s: &str) -> Option<String> {
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

/// The videos under a root, by file stem, by file name and by (folder name, file name). When several files share a
/// key, a non-empty one wins over an empty one (a failed download beside a good one), then the first in path order.
pub(crate) struct FileIndex {
    by_stem: HashMap<String, PathBuf>,
    by_name: HashMap<String, PathBuf>,
    /// Every file of a name, in path order.
    all_by_name: HashMap<String, Vec<PathBuf>>,
}

fn is_empty_file(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.len() == 0).unwrap_or(true)
}

fn insert<K: std::hash::Hash + Eq>(map: &mut HashMap<K, PathBuf>, key: K, f: &Path) {
    match map.get(&key) {
        Some(old) if !is_empty_file(old) || is_empty_file(f) => {}
        _ => {
            map.insert(key, f.to_path_buf());
        }
    }
}

impl FileIndex {
    pub(crate) fn new(files: &[PathBuf]) -> Self {
        let (mut by_stem, mut by_name) = (HashMap::new(), HashMap::new());
        let mut all_by_name: HashMap<String, Vec<PathBuf>> = HashMap::new();
        for f in files {
            insert(&mut by_stem, stem(f), f);
            insert(&mut by_name, file_name(f), f);
            all_by_name.entry(file_name(f)).or_default().push(f.clone());
        }
        Self { by_stem, by_name, all_by_name }
    }

    /// The video named `name` in the folder of class `class` (UCF101 and HMDB51 keep each class in its own folder,
    /// and a file of that name in another class's folder is another clip): its parent folder named `class`, else the
    /// nearest enclosing folder so named (a class folder with subfolders), compared without case (UCF101's own lists
    /// write `HandstandPushups` for files named `v_HandStandPushups_*`). A non-empty file wins over an empty one.
    pub(crate) fn in_folder(&self, class: &str, name: &str) -> Option<&PathBuf> {
        let files = self.all_by_name.get(name)?;
        let depth_of_class = |f: &PathBuf| f.ancestors().skip(1).position(|a| file_name(a).eq_ignore_ascii_case(class));
        files
            .iter()
            .filter_map(|f| depth_of_class(f).map(|d| (is_empty_file(f), d, f)))
            .min_by_key(|(empty, d, _)| (*empty, *d))
            .map(|(_, _, f)| f)
    }

    /// The video whose stem is exactly `stem` (any extension).
    pub(crate) fn stem(&self, stem: &str) -> Option<&PathBuf> {
        self.by_stem.get(stem)
    }

    /// The video named exactly `name`, in any folder.
    pub(crate) fn name(&self, name: &str) -> Option<&PathBuf> {
        self.by_name.get(name)
    }

    /// The file of one clip of a YouTube video: the first of `names` that exists, else `<youtube_id>.<ext>`,
    /// which is taken only when the annotation lists a single clip of that video (`clips_of_video == 1`): with
    /// several, the file could be any of them. Never a file named after another clip of the same video.
    pub(crate) fn youtube_clip(
        &self,
        names: &[String],
        youtube_id: &str,
        clips_of_video: usize,
    ) -> Result<PathBuf, String> {
        if let Some(p) = names.iter().find_map(|n| self.stem(n)) {
            return Ok(p.clone());
        }
        match self.stem(youtube_id) {
            Some(p) if clips_of_video <= 1 => Ok(p.clone()),
            Some(p) => Err(format!(
                "listed but file not found ({} is named after the video alone, and the annotation lists {} clips of it)",
                file_name(p),
                clips_of_video
            )),
            None => Err("listed but file not found".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_bom() {
        assert_eq!(
            parse_csv_line(r#"abc,30,"playing steel guitar, slide guitar",train"#),
            vec!["abc", "30", "playing steel guitar, slide guitar", "train"]
        );
        assert_eq!(parse_csv_line(r#"a,"b ""c""",d"#), vec!["a", r#"b "c""#, "d"]);
        assert_eq!(parse_csv_line("\u{feff}label,youtube_id\r"), vec!["label", "youtube_id"]);
    }

    #[test]
    fn youtube_fallback_only_for_the_bare_video_name() {
        let files: Vec<PathBuf> = ["d/abc_000010_000020.mp4", "d/xyz.mkv"].iter().map(PathBuf::from).collect();
        let idx = FileIndex::new(&files);
        let clip = |n: &str| vec![n.to_string()];
        // Exact clip name.
        assert_eq!(idx.youtube_clip(&clip("abc_000010_000020"), "abc", 2), Ok(files[0].clone()));
        // Another clip of the same video is never taken for this one.
        assert!(idx.youtube_clip(&clip("abc_000030_000040"), "abc", 2).is_err());
        // `<ytid>.<ext>` for the only listed clip of a video, not for one of two.
        assert_eq!(idx.youtube_clip(&clip("xyz_000000_000010"), "xyz", 1), Ok(files[1].clone()));
        let e = idx.youtube_clip(&clip("xyz_000000_000010"), "xyz", 2).expect_err("ambiguous");
        assert!(e.contains("xyz.mkv") && e.contains("2 clips"), "{e}");
    }
}
