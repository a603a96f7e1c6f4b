//! Dataset manifests: one JSON object per line, one line per video.
//!
//! ```json
//! {"id":"walk_0001","video":"videos/walk_0001.mkv","audio":"audio/walk_0001.wav","duration":4.0,"fps":25.0,
//!  "label":3,"label_name":"bounce_fast","split":"pretrain"}
//! ```
//!
//! Relative paths are resolved against the manifest file's directory, so a dataset folder can be moved whole.
//! `label` is `null` where labels are hidden (pre-training); `audio` is `null` when the video's own track is to be
//! used (it is then extracted at prepare time, so prepared manifests always name a wav).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// One video (and its audio) in a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Stable identifier, unique within the manifest.
    pub id: String,
    /// Video file (any container FFmpeg reads), relative to the manifest's folder or absolute.
    pub video: PathBuf,
    /// Audio file (wav), relative or absolute; `None` to use the video container's audio track.
    pub audio: Option<PathBuf>,
    /// Seconds by which the video's own audio track started after its first video frame (negative: before), as
    /// `prepare` found it; the wav is already aligned (padded with silence or trimmed) so that its sample 0 is the
    /// first frame. Absent for wavs that did not come from the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_offset: Option<f64>,
    /// Duration in seconds.
    pub duration: f64,
    /// The video's native frame rate.
    pub fps: f64,
    /// Class index, `None` where labels are hidden or unknown.
    pub label: Option<usize>,
    /// Human-readable class name.
    pub label_name: Option<String>,
    /// Split name (`pretrain`, `train`, `test`, `retrieval`, `train1`, `test1`, ...).
    pub split: String,
}

/// A manifest loaded from disk, with the folder its relative paths are resolved against.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub root: PathBuf,
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Read a JSON Lines manifest. Blank lines are allowed; anything else that does not parse is an error naming
    /// the line.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let file =
            fs::File::open(path).map_err(|source| DataError::ManifestRead { path: path.to_path_buf(), source })?;
        let mut entries = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| DataError::ManifestRead { path: path.to_path_buf(), source })?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: ManifestEntry = serde_json::from_str(&line).map_err(|source| DataError::ManifestParse {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?;
            if !ids.insert(entry.id.clone()) {
                return Err(DataError::DuplicateId { path: path.to_path_buf(), id: entry.id });
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(DataError::ManifestEmpty { path: path.to_path_buf() });
        }
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self { root, entries })
    }

    /// Write entries as JSON Lines, atomically (temporary file then rename).
    pub fn save(path: &Path, entries: &[ManifestEntry]) -> Result<(), DataError> {
        let werr = |source| DataError::ManifestWrite { path: path.to_path_buf(), source };
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut f = std::io::BufWriter::new(fs::File::create(&tmp).map_err(werr)?);
            for e in entries {
                let line = serde_json::to_string(e).map_err(|e| werr(std::io::Error::other(e)))?;
                writeln!(f, "{line}").map_err(werr)?;
            }
            f.flush().map_err(werr)?;
        }
        fs::rename(&tmp, path).map_err(werr)
    }

    /// Absolute (or root-joined) path of an entry's video.
    pub fn video_path(&self, e: &ManifestEntry) -> PathBuf {
        self.root.join(&e.video)
    }

    /// Path of an entry's audio file, if it names one.
    pub fn audio_path(&self, e: &ManifestEntry) -> Option<PathBuf> {
        e.audio.as_ref().map(|a| self.root.join(a))
    }

    /// Entries of one split.
    pub fn split(&self, name: &str) -> Vec<&ManifestEntry> {
        self.entries.iter().filter(|e| e.split == name).collect()
    }

    /// The names of the splits its entries are in, sorted, each once.
    pub fn split_names(&self) -> Vec<&str> {
        let names: std::collections::BTreeSet<&str> = self.entries.iter().map(|e| e.split.as_str()).collect();
        names.into_iter().collect()
    }

    /// Read the manifest `path` and check that `split` (when given) has entries: a split it does not have is an
    /// error naming the file, the split and the splits it has (a misspelt `val`, or the wrong manifest).
    pub fn load_split(path: &Path, split: Option<&str>) -> Result<Self, DataError> {
        let manifest = Self::load(path)?;
        if let Some(split) = split
            && !manifest.entries.iter().any(|e| e.split == split)
        {
            let known = manifest.split_names().join(", ");
            return Err(DataError::NoSuchSplit { path: path.to_path_buf(), split: split.to_string(), known });
        }
        Ok(manifest)
    }

    /// Number of classes: one more than the largest label (0 when unlabelled).
    pub fn num_classes(&self) -> usize {
        self.entries.iter().filter_map(|e| e.label).max().map_or(0, |m| m + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, label: Option<usize>) -> ManifestEntry {
        ManifestEntry {
            id: id.into(),
            video: format!("v/{id}.mkv").into(),
            audio: Some(format!("a/{id}.wav").into()),
            audio_offset: None,
            duration: 4.0,
            fps: 25.0,
            label,
            label_name: None,
            split: "train".into(),
        }
    }

    #[test]
    fn round_trip_and_resolution() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.jsonl");
        let entries = vec![entry("a", Some(2)), entry("b", None)];
        Manifest::save(&p, &entries).expect("save");
        let m = Manifest::load(&p).expect("load");
        assert_eq!(m.entries, entries);
        assert_eq!(m.video_path(&m.entries[0]), dir.path().join("v/a.mkv"));
        assert_eq!(m.num_classes(), 3);
        assert_eq!(m.split("train").len(), 2);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.jsonl");
        let good = serde_json::to_string(&entry("a", None)).expect("json");
        fs::write(&p, format!("{good}\n{{\"id\": 3}}\n")).expect("write");
        let err = Manifest::load(&p).expect_err("must fail").to_string();
        assert!(err.contains("m.jsonl:2"), "{err}");
        fs::write(&p, format!("{good}\n{good}\n")).expect("write");
        assert!(matches!(Manifest::load(&p), Err(DataError::DuplicateId { .. })));
        fs::write(&p, "\n").expect("write");
        assert!(matches!(Manifest::load(&p), Err(DataError::ManifestEmpty { .. })));
        assert!(matches!(Manifest::load(&dir.path().join("missing.jsonl")), Err(DataError::ManifestRead { .. })));
    }

    #[test]
    fn a_split_the_manifest_does_not_have_is_an_error_naming_file_split_and_splits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("manifest.jsonl");
        let mut val = entry("b", Some(1));
        val.split = "val".into();
        Manifest::save(&p, &[entry("a", Some(0)), val]).expect("save");
        let m = Manifest::load(&p).expect("load");
        assert_eq!(m.split_names(), ["train", "val"]);
        assert_eq!(Manifest::load_split(&p, Some("val")).expect("val").entries.len(), 2);
        assert!(Manifest::load_split(&p, None).is_ok());
        let err = Manifest::load_split(&p, Some("test")).expect_err("no test split").to_string();
        assert_eq!(err, format!("{}: no entry is in split 'test' (its splits: train, val)", p.display()));
    }
}
