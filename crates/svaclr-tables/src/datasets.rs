//! The prepared datasets a plan reads, and the check, before any step runs, that `svaclr prepare` wrote each of them
//! whole: every manifest a step reads exists and parses, and has the split the step reads.
//!
//! A dataset that is missing or incomplete (no folder, a manifest or a fold's manifest missing, a split missing) is
//! one line naming what is missing and the exact `svaclr prepare` command that writes it; the table then stops with
//! nothing run. The planned reads are pure data ([`crate::plan`] builds them); [`check`] reads the manifests.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use svaclr_data::{DataError, Manifest};

use crate::spec::{DatasetKind, Prepared};

/// One manifest (and split) a step reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The manifest file (under the dataset's folder).
    pub manifest: PathBuf,
    /// The split read (`None`: every entry).
    pub split: Option<String>,
    /// Which step reads it, for people (`pre-training`, `retrieval`, `downstream fold2 test`).
    pub what: String,
}

/// A prepared dataset the plan reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// `svaclr prepare --dataset`.
    pub prepare: DatasetKind,
    /// DATA_ROOT/DIR: `svaclr prepare --out`.
    pub dir: PathBuf,
    /// What the steps read from it, in plan order, each (manifest, split) once.
    pub reads: Vec<Read>,
}

impl Needed {
    /// Add `read` of the prepared dataset `data` (under `data_root`) to `needed`, merging with an entry of the same
    /// dataset and folder.
    pub fn add(needed: &mut Vec<Needed>, data: &Prepared, data_root: &Path, read: Read) {
        let dir = data_root.join(&data.dir);
        let i = match needed.iter().position(|n| n.prepare == data.prepare && n.dir == dir) {
            Some(i) => i,
            None => {
                needed.push(Needed { prepare: data.prepare, dir, reads: Vec::new() });
                needed.len() - 1
            }
        };
        let reads = &mut needed[i].reads;
        if !reads.iter().any(|r| r.manifest == read.manifest && r.split == read.split) {
            reads.push(read);
        }
    }

    /// The command that writes this dataset, with a placeholder for the folder the user downloaded it to.
    pub fn command(&self) -> String {
        let name = self.prepare.name();
        format!("svaclr prepare --dataset {name} --root <your {name} folder> --out {}", self.dir.display())
    }
}

/// A dataset that is missing or incomplete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unprepared {
    pub needed: Needed,
    /// What is missing, for people (one clause per missing manifest or split).
    pub problems: Vec<String>,
}

impl fmt::Display for Unprepared {
    /// One line: the folder, what is missing, and the command that writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, dir) = (self.needed.prepare.name(), self.needed.dir.display());
        write!(f, "{name} ({dir}): {}; run `{}`", self.problems.join("; "), self.needed.command())
    }
}

/// Check every dataset of `needed`: the ones that are missing or incomplete, in order, each with every problem.
/// Reads (and parses) each manifest once.
pub fn check(needed: &[Needed]) -> Vec<Unprepared> {
    let mut out = Vec::new();
    for n in needed {
        if !n.dir.is_dir() {
            out.push(Unprepared { needed: n.clone(), problems: vec!["not prepared (no such folder)".into()] });
            continue;
        }
        let mut loaded: BTreeMap<&Path, Result<Manifest, String>> = BTreeMap::new();
        let mut problems: Vec<String> = Vec::new();
        let mut add = |p: String| {
            if !problems.contains(&p) {
                problems.push(p);
            }
        };
        for r in &n.reads {
            let manifest = loaded.entry(&r.manifest).or_insert_with(|| load(&r.manifest));
            let name = file_name(&r.manifest);
            match manifest {
                Err(why) => add(format!("{name} {why}")),
                Ok(m) => {
                    if let Some(split) = &r.split
                        && !m.entries.iter().any(|e| &e.split == split)
                    {
                        let known = m.split_names().join(", ");
                        add(format!("{name} has no split '{split}' for {} (its splits: {known})", r.what));
                    }
                }
            }
        }
        if !problems.is_empty() {
            out.push(Unprepared { needed: n.clone(), problems });
        }
    }
    out
}

/// A manifest, or why it cannot be read (without the file's name).
fn load(path: &Path) -> Result<Manifest, String> {
    if !path.is_file() {
        return Err("is missing".into());
    }
    Manifest::load(path).map_err(|e| match e {
        DataError::ManifestParse { line, .. } => format!("does not parse (line {line}): not written by this version?"),
        DataError::ManifestEmpty { .. } => "has no entries".into(),
        other => format!("cannot be read ({other})"),
    })
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use svaclr_data::ManifestEntry;

    fn entry(id: &str, split: &str) -> ManifestEntry {
        ManifestEntry {
            id: id.into(),
            video: format!("{id}.mp4").into(),
            audio: None,
            audio_offset: None,
            duration: 2.0,
            fps: 25.0,
            label: Some(0),
            label_name: None,
            split: split.into(),
        }
    }

    fn ks() -> Prepared {
        Prepared { prepare: DatasetKind::KineticsSounds, dir: "kinetics-sounds".into() }
    }

    fn read(root: &Path, file: &str, split: &str, what: &str) -> Read {
        Read { manifest: root.join("kinetics-sounds").join(file), split: Some(split.into()), what: what.into() }
    }

    #[test]
    fn reads_of_one_dataset_merge_and_repeat_once() {
        let root = Path::new("/data");
        let mut needed = Vec::new();
        Needed::add(&mut needed, &ks(), root, read(root, "manifest.jsonl", "train", "pre-training"));
        Needed::add(&mut needed, &ks(), root, read(root, "manifest.jsonl", "val", "retrieval"));
        Needed::add(&mut needed, &ks(), root, read(root, "manifest.jsonl", "val", "retrieval"));
        let hmdb = Prepared { prepare: DatasetKind::Hmdb51, dir: "hmdb51".into() };
        Needed::add(&mut needed, &hmdb, root, read(root, "x.jsonl", "train", "downstream"));
        assert_eq!(needed.len(), 2);
        assert_eq!(needed[0].reads.len(), 2);
        assert_eq!(
            needed[1].command(),
            "svaclr prepare --dataset hmdb51 --root <your hmdb51 folder> --out /data/hmdb51"
        );
    }

    #[test]
    fn a_missing_folder_manifest_or_split_is_one_line_with_the_prepare_command() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let needs = |reads: Vec<Read>| {
            let mut needed = Vec::new();
            for r in reads {
                Needed::add(&mut needed, &ks(), root, r);
            }
            needed
        };
        let both = || {
            vec![
                read(root, "manifest.jsonl", "train", "pre-training"),
                read(root, "manifest.jsonl", "val", "retrieval"),
            ]
        };
        // No folder.
        let missing = check(&needs(both()));
        assert_eq!(missing.len(), 1);
        let line = missing[0].to_string();
        let dir = root.join("kinetics-sounds");
        assert_eq!(
            line,
            format!(
                "kinetics-sounds ({0}): not prepared (no such folder); run `svaclr prepare --dataset kinetics-sounds \
                 --root <your kinetics-sounds folder> --out {0}`",
                dir.display()
            )
        );
        // A folder without the manifest.
        std::fs::create_dir_all(&dir).expect("mkdir");
        let line = check(&needs(both()))[0].to_string();
        assert!(line.contains("manifest.jsonl is missing;"), "{line}");
        assert_eq!(line.matches("is missing").count(), 1, "one clause per manifest: {line}");
        // A manifest without the retrieval split, and a split name the manifest does not have.
        Manifest::save(&dir.join("manifest.jsonl"), &[entry("a", "train"), entry("b", "test")]).expect("save");
        let missing = check(&needs(both()));
        assert_eq!(missing.len(), 1);
        let line = missing[0].to_string();
        assert!(line.contains("manifest.jsonl has no split 'val' for retrieval (its splits: test, train)"), "{line}");
        assert!(!line.contains("'train'"), "{line}");
        assert_eq!(line.lines().count(), 1);
        // Complete: nothing to say.
        Manifest::save(&dir.join("manifest.jsonl"), &[entry("a", "train"), entry("b", "val")]).expect("save");
        assert!(check(&needs(both())).is_empty());
        // A manifest that is not one.
        std::fs::write(dir.join("manifest.jsonl"), "not json\n").expect("write");
        let line = check(&needs(both()))[0].to_string();
        assert!(line.contains("manifest.jsonl does not parse (line 1)"), "{line}");
    }
}
