//! The table file, configs/tables/TABLE.json, as typed structs. Every struct rejects unknown keys and every key
//! without a documented meaning for its absence is required, so a typo is a one-line error naming the file and the
//! key (serde's message, with line and column). [`TableSpec::parse`] then checks what serde cannot: references
//! between keys (a row's cells against `describe`, the paper's numbers against the columns, `model_from_row`).
//!
//! # The table file
//!
//! - `columns`: `{key, label, paper_label, eval, metric}`. `eval` is `retrieval` (the preset's retrieval manifest,
//!   `svaclr retrieve`) or the name of an entry of the preset's `evals` (a finetune config); `metric` is what is read
//!   from that step's results.json, reported in percent: `top1`, `top5` or `knn_top1` (kNN on the probe's features) of a classification, `v2a.K` or `a2v.K`
//!   (R@K) of retrieval. A column whose `eval` the preset does not define is printed as not run.
//! - `describe`: the descriptive column labels; each row (and published row, and the baseline) has one `cells` entry
//!   per label, filled by `{name}` substitution from the preset's `labels`.
//! - `rows`: `{name, cells, pretrain, paper, paper_counterpart?, figure?, compare_with?}`: `pretrain` names
//!   configs/pretrain/FILE (`{preset}` is substituted), `paper` the paper's numbers for this row by column key,
//!   `figure: "fig3"` asks for the paper's Fig. 3 from the row's first seed, `compare_with` names another row this
//!   one is also compared with, paired by seed (beside row 1 and random init).
//! - `published` (optional): rows copied from the paper (peers and the paper's own runs), printed as such.
//! - `baseline` (optional): a randomly initialised encoder with the model of row `model_from_row` (0-based).
//! - `layout`: `paired` (the paper's number beside ours in each column, deltas against row 1 when `deltas`) or
//!   `stacked` (published rows, then ours, in the same columns).
//! - `presets`: by name, the dataset (`{"kind": "synthav", preset, seed, clips, test_per_class?, retrieval_clips?,
//!   dir}`, generated, or
//!   `{"kind": "prepared", "prepare": NAME, dir}`, written by `svaclr prepare --dataset NAME --out DATA_ROOT/DIR`),
//!   `pretrain_data` and `retrieval_data` (`{"manifest": FILE, "split": NAME}`: a manifest of the dataset folder and
//!   the split whose clips are used; both keys required), `evals` (name -> `"finetune/x.json"`, evaluated on the
//!   preset's dataset, or `{"config": "finetune/x.json", "data": {"prepare": NAME, "dir": DIR}}`, a prepared
//!   dataset under the data root whose manifests and splits the config's folds name), `seeds` (optional: seeds per
//!   row when `--seeds` is not given; absent: 1; at least 1), `max_steps` (a number or null: every epoch),
//!   `sized_for` (`gpus`: the paper's settings, a warning on a CPU device; `cpu`), the dataset `statement` printed
//!   with the table and the `labels`.
//! - `eval_at_pretrain_resolution` (table or preset; the preset's wins; default false): evaluate each row's encoder
//!   at its pre-training crop and short side (the finetune config's `train_data`/`test_data` are rewritten when they
//!   differ; retrieval always uses the run's data config).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use svaclr_data::prepare::DatasetKind;

use crate::error::TablesError;

/// The `eval` of a column that asks for retrieval (every other `eval` names an entry of the preset's `evals`).
pub const RETRIEVAL: &str = "retrieval";

/// A parsed and checked table file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The table's name (the file's stem).
    pub name: String,
    /// Printed as the Markdown title.
    pub title: String,
    /// Printed under the title, after `{label}` substitution.
    pub note: Option<String>,
    pub layout: Layout,
    /// Print each row's difference to row 1 (paired layout).
    #[serde(default)]
    pub deltas: bool,
    /// The default of the presets' `eval_at_pretrain_resolution`.
    pub eval_at_pretrain_resolution: Option<bool>,
    /// The descriptive columns, in order.
    pub describe: Vec<String>,
    pub columns: Vec<Column>,
    /// Rows copied from the paper (stacked layout).
    #[serde(default)]
    pub published: Vec<PublishedRow>,
    pub rows: Vec<Row>,
    pub baseline: Option<Baseline>,
    pub presets: BTreeMap<String, Preset>,
    /// Column keys drawn in the PNG (`None`: every column).
    pub figure_columns: Option<Vec<String>>,
    /// The file this was read from (named by every later error about it).
    #[serde(skip)]
    pub path: PathBuf,
}

/// How ours and the paper's numbers share the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The paper's number beside ours in each column.
    Paired,
    /// Published rows, then ours, in the same columns.
    Stacked,
}

/// One metric column.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Names the column in rows' `paper` and in TABLE.json.
    pub key: String,
    /// Our column's header (after `{label}` substitution).
    pub label: String,
    /// The paper's column header (paired layout).
    pub paper_label: String,
    /// [`RETRIEVAL`] or the name of an entry of the preset's `evals`.
    pub eval: String,
    pub metric: Metric,
}

/// What a column reads from its evaluation's results.json.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Metric {
    /// `top1`: classification top-1 (mean over folds).
    Top1,
    /// `top5`: classification top-5 (mean over folds).
    Top5,
    /// `knn_top1`: top-1 of the kNN classifier on the linear probe's frozen features (mean over folds; the finetune
    /// config must set `linear_probe.knn`).
    KnnTop1,
    /// `v2a.K` / `a2v.K`: instance-level retrieval R@K.
    Recall { direction: Direction, k: usize },
}

/// A retrieval direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Video queries, audio gallery (`v2a`).
    VideoToAudio,
    /// Audio queries, video gallery (`a2v`).
    AudioToVideo,
}

impl Metric {
    /// Whether the metric comes from retrieval (otherwise from classification).
    pub fn is_retrieval(self) -> bool {
        matches!(self, Metric::Recall { .. })
    }
}

impl TryFrom<String> for Metric {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("unknown metric `{s}`: expected top1, top5, knn_top1, v2a.K or a2v.K (K >= 1)");
        match s.as_str() {
            "top1" => return Ok(Metric::Top1),
            "top5" => return Ok(Metric::Top5),
            "knn_top1" => return Ok(Metric::KnnTop1),
            _ => {}
        }
        let (dir, k) = s.split_once('.').ok_or_else(bad)?;
        let direction = match dir {
            "v2a" => Direction::VideoToAudio,
            "a2v" => Direction::AudioToVideo,
            _ => return Err(bad()),
        };
        let k = k.parse().ok().filter(|&k| k >= 1).ok_or_else(bad)?;
        Ok(Metric::Recall { direction, k })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Top1 => write!(f, "top1"),
            Metric::Top5 => write!(f, "top5"),
            Metric::KnnTop1 => write!(f, "knn_top1"),
            Metric::Recall { direction: Direction::VideoToAudio, k } => write!(f, "v2a.{k}"),
            Metric::Recall { direction: Direction::AudioToVideo, k } => write!(f, "a2v.{k}"),
        }
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.to_string()
    }
}

/// A row we run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub name: String,
    /// One entry per `describe` label.
    pub cells: BTreeMap<String, String>,
    /// configs/pretrain/FILE, `{preset}` substituted.
    pub pretrain: String,
    /// The paper's numbers by column key.
    pub paper: BTreeMap<String, f64>,
    /// Which published row this one stands for (documentation only).
    pub paper_counterpart: Option<String>,
    pub figure: Option<Figure>,
    /// Another row (by name) this one is also compared with, paired by seed (Table 1's SoftInfoNCE row against
    /// InfoNCE at the same speed set: the loss alone differs).
    pub compare_with: Option<String>,
}

/// A figure drawn from a row's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Figure {
    /// The paper's Fig. 3: spectrograms at speeds 1/2/4 and the learned lambda (`"fig3"`).
    #[serde(rename = "fig3")]
    Fig3,
}

/// A row copied from the paper.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedRow {
    pub name: String,
    pub cells: BTreeMap<String, String>,
    pub paper: BTreeMap<String, f64>,
}

/// The random-encoder baseline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub name: String,
    pub cells: BTreeMap<String, String>,
    /// The row (0-based) whose model config, and whose runs' initial weights, the baseline uses.
    pub model_from_row: usize,
}

/// How a table is run at one scale (smoke, synth, paper, paper-tiny).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub dataset: Dataset,
    /// The clips every row pre-trains on.
    pub pretrain_data: ManifestSplit,
    /// Downstream evaluations by name (the names columns use).
    pub evals: BTreeMap<String, EvalSource>,
    /// The retrieval test clips (also Fig. 3's).
    pub retrieval_data: ManifestSplit,
    /// Seeds per row when `--seeds` is not given (absent: 1). The synth preset names the number its time budget
    /// affords (docs/reproduction.md, "Sizing the synth preset").
    #[serde(default)]
    pub seeds: Option<u64>,
    /// Stop each pre-training after this many steps (`null`: every epoch). Required, even when null.
    #[serde(deserialize_with = "Option::deserialize")]
    pub max_steps: Option<u64>,
    /// The hardware the preset's settings are for.
    pub sized_for: SizedFor,
    /// The dataset, in a sentence printed with the table.
    pub statement: String,
    /// `{name}` -> text in labels, cells and the note.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides the table's `eval_at_pretrain_resolution`.
    pub eval_at_pretrain_resolution: Option<bool>,
}

/// The hardware a preset's settings are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizedFor {
    /// The paper's settings: GPUs (a plan on a CPU device is warned about).
    Gpus,
    /// Cut to run on a CPU.
    Cpu,
}

/// The clips of one split of one manifest of a dataset folder: `{"manifest": "manifest.jsonl", "split": "train"}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSplit {
    /// Relative to the dataset folder.
    pub manifest: PathBuf,
    /// The split's name as the manifest's entries spell it (`svaclr prepare` writes `train`, `val`, `test`).
    pub split: String,
}

/// Where a preset's data comes from, by `kind`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dataset {
    /// Generated by `svaclr synth --preset PRESET --seed SEED --clips CLIPS` into DATA_ROOT/DIR, with
    /// `--test-per-class` and `--retrieval-clips` when given (absent: the SynthAV preset's sizes).
    Synthav {
        preset: String,
        seed: u64,
        clips: u64,
        #[serde(default)]
        test_per_class: Option<u64>,
        #[serde(default)]
        retrieval_clips: Option<u64>,
        dir: PathBuf,
    },
    /// Written beforehand by `svaclr prepare` into DATA_ROOT/DIR.
    Prepared(Prepared),
}

/// A dataset `svaclr prepare --dataset PREPARE --root <its folder> --out DATA_ROOT/DIR` writes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepared {
    /// `svaclr prepare`'s `--dataset` (`kinetics-sounds`, `k400`, `vggsound`, `ucf101`, `hmdb51`).
    pub prepare: DatasetKind,
    /// Its folder under the data root.
    pub dir: PathBuf,
}

impl Dataset {
    /// The folder under the data root.
    pub fn dir(&self) -> &Path {
        match self {
            Dataset::Synthav { dir, .. } | Dataset::Prepared(Prepared { dir, .. }) => dir,
        }
    }
}

/// A downstream evaluation's finetune config, and the data it reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a finetune config path (\"finetune/x.json\") or {\"config\": \"finetune/x.json\", \"data\": {\"prepare\": NAME, \"dir\": DIR}}"
)]
pub enum EvalSource {
    /// A config under the configs folder, evaluated on the preset's dataset.
    Config(PathBuf),
    /// A config under the configs folder, evaluated on a prepared dataset.
    ConfigWithData(ConfigWithData),
}

/// See [`EvalSource::ConfigWithData`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigWithData {
    pub config: PathBuf,
    /// The dataset whose manifests (under DATA_ROOT/`dir`) the config's folds name.
    pub data: Prepared,
}

impl Preset {
    /// `{name}` -> `labels[name]` in `text`.
    pub fn fill(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (k, v) in &self.labels {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
}

impl TableSpec {
    /// Read and check a table file.
    pub fn load(path: &Path) -> Result<Self, TablesError> {
        let text = std::fs::read_to_string(path).map_err(TablesError::io(path))?;
        Self::parse(&text, path)
    }

    /// Parse and check the contents of the table file `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TablesError> {
        let error = |message: String| TablesError::Spec { path: path.to_path_buf(), message };
        let mut spec: Self = serde_json::from_str(text).map_err(|e| error(e.to_string()))?;
        spec.path = path.to_path_buf();
        if path.file_stem().is_some_and(|stem| stem != spec.name.as_str()) {
            return Err(error(format!("name '{}' is not the file's name", spec.name)));
        }
        spec.check().map_err(error)?;
        Ok(spec)
    }

    /// The preset `name`, or an error naming the file.
    pub fn preset(&self, name: &str) -> Result<&Preset, TablesError> {
        self.presets.get(name).ok_or_else(|| TablesError::Spec {
            path: self.path.clone(),
            message: format!("no preset '{name}' (see its \"presets\")"),
        })
    }

    /// Whether rows are evaluated at their pre-training resolution under `preset` (the preset's setting wins).
    pub fn eval_at_pretrain_resolution(&self, preset: &Preset) -> bool {
        preset.eval_at_pretrain_resolution.or(self.eval_at_pretrain_resolution).unwrap_or(false)
    }

    /// The references between keys that serde does not check.
    fn check(&self) -> Result<(), String> {
        let keys: BTreeSet<&str> = self.columns.iter().map(|c| c.key.as_str()).collect();
        if keys.len() != self.columns.len() {
            return Err("columns: a key is repeated".into());
        }
        for c in &self.columns {
            let retrieval = c.eval == RETRIEVAL;
            if c.metric.is_retrieval() != retrieval {
                let kind = if retrieval { "a retrieval metric (v2a.K, a2v.K)" } else { "top1 or top5" };
                return Err(format!("column '{}': eval '{}' needs {kind}, not '{}'", c.key, c.eval, c.metric));
            }
            let known = retrieval || self.presets.values().any(|p| p.evals.contains_key(&c.eval));
            if !known {
                return Err(format!("column '{}': no preset has an eval '{}'", c.key, c.eval));
            }
        }
        for k in self.figure_columns.iter().flatten() {
            if !keys.contains(k.as_str()) {
                return Err(format!("figure_columns: '{k}' is not a column key"));
            }
        }
        let describe: BTreeSet<&str> = self.describe.iter().map(String::as_str).collect();
        let check_cells = |what: String, cells: &BTreeMap<String, String>| {
            let given: BTreeSet<&str> = cells.keys().map(String::as_str).collect();
            match describe.symmetric_difference(&given).next() {
                Some(k) => Err(format!("{what}: cell '{k}' is not one of describe {:?}", self.describe)),
                None => Ok(()),
            }
        };
        let check_paper =
            |what: String, paper: &BTreeMap<String, f64>| match paper.keys().find(|k| !keys.contains(k.as_str())) {
                Some(k) => Err(format!("{what}: paper number '{k}' is not a column key")),
                None => Ok(()),
            };
        for (i, r) in self.rows.iter().enumerate() {
            check_cells(format!("rows[{i}] ({})", r.name), &r.cells)?;
            check_paper(format!("rows[{i}] ({})", r.name), &r.paper)?;
            if let Some(other) = &r.compare_with {
                if *other == r.name || !self.rows.iter().any(|o| o.name == *other) {
                    return Err(format!("rows[{i}] ({}): compare_with '{other}' is not another row", r.name));
                }
            }
        }
        for (i, r) in self.published.iter().enumerate() {
            check_cells(format!("published[{i}] ({})", r.name), &r.cells)?;
            check_paper(format!("published[{i}] ({})", r.name), &r.paper)?;
        }
        if !self.published.is_empty() && self.layout != Layout::Stacked {
            return Err("published rows are printed by the stacked layout only: set \"layout\": \"stacked\"".into());
        }
        if let Some(b) = &self.baseline {
            check_cells("baseline".into(), &b.cells)?;
            if b.model_from_row >= self.rows.len() {
                return Err(format!("baseline.model_from_row {} is not a row", b.model_from_row));
            }
        }
        for (name, p) in &self.presets {
            if p.seeds == Some(0) {
                return Err(format!("presets.{name}.seeds: 0 (a table needs at least 1 seed per row)"));
            }
            for eval in p.evals.keys() {
                if eval == RETRIEVAL || !self.columns.iter().any(|c| &c.eval == eval) {
                    return Err(format!("presets.{name}.evals: no column reads '{eval}' (columns' evals name them)"));
                }
            }
        }
        Ok(())
    }
}
