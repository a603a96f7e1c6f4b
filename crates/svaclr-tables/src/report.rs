//! The report of an executed plan: every step's results read back as svaclr-eval's and svaclr-train's result types,
//! statistics over seeds ([`Stats`]), and OUT/TABLE.md (for people), OUT/TABLE.json (every number) and OUT/TABLE.png
//! (a bar per row for each figure column).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use svaclr_eval::stats::{mean, sample_std};

use crate::compare::{self, Comparisons};
use crate::error::TablesError;
use crate::files::{self, EvalResult};
use crate::plan::{EvalDirs, Plan, Request};
use crate::spec::{Column, Layout, Metric, RETRIEVAL, TableSpec};

/// One encoder's numbers in percent by column key (`None`: the preset does not run that column's evaluation).
pub type Scores = BTreeMap<String, Option<f64>>;

/// What the steps measured, per row and for the baseline.
#[derive(Clone, Debug)]
pub struct Results {
    /// Per row of the table.
    pub rows: Vec<RowResults>,
    /// Per seed: the baseline's numbers (empty without a baseline).
    pub baseline: Vec<Scores>,
    /// The baseline's evaluations' wall time, seconds.
    pub baseline_wall: f64,
}

/// One row's numbers.
#[derive(Clone, Debug)]
pub struct RowResults {
    /// Per seed.
    pub per_seed: Vec<Scores>,
    /// Pre-training and evaluation wall time over seeds, as measured when each step ran.
    pub wall: f64,
    /// The run folders, per seed.
    pub runs: Vec<PathBuf>,
}

/// A column's numbers over seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub mean: f64,
    /// The sample standard deviation over seeds ([`sample_std`]).
    pub std: f64,
    /// One per seed.
    pub values: Vec<f64>,
}

impl Stats {
    /// The statistics of `values` (`None` when there are none).
    pub fn of(values: Vec<f64>) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        Some(Stats { mean: mean(&values), std: sample_std(&values), values })
    }
}

/// Read every step's results: each row's runs (their summaries and evaluations) and the baseline's evaluations.
pub fn collect(spec: &TableSpec, plan: &Plan) -> Result<Results, TablesError> {
    let mut rows = Vec::new();
    for seeds in &plan.rows {
        let mut row = RowResults { per_seed: Vec::new(), wall: 0.0, runs: Vec::new() };
        for run in seeds {
            let (scores, evals_wall) = read_evals(&spec.columns, &run.evals)?;
            // The measured time of each step, whether it ran now or in an earlier invocation.
            row.wall += files::read_summary(&run.run_dir)?.wall_s + evals_wall;
            row.per_seed.push(scores);
            row.runs.push(run.run_dir.clone());
        }
        rows.push(row);
    }
    let mut baseline = Vec::new();
    let mut baseline_wall = 0.0;
    for dirs in &plan.baseline {
        let (scores, wall) = read_evals(&spec.columns, dirs)?;
        baseline.push(scores);
        baseline_wall += wall;
    }
    Ok(Results { rows, baseline, baseline_wall })
}

/// One encoder's numbers (percent) and its evaluations' total wall time.
fn read_evals(columns: &[Column], dirs: &EvalDirs) -> Result<(Scores, f64), TablesError> {
    let mut results = BTreeMap::new();
    for (name, dir) in dirs {
        results.insert(name.as_str(), EvalResult::read(dir, name == RETRIEVAL)?);
    }
    let wall = results.values().map(EvalResult::wall_seconds).sum();
    let mut scores = Scores::new();
    for c in columns {
        let value = match (results.get(c.eval.as_str()), dirs.get(&c.eval)) {
            // kNN is computed only when the evaluation's config asks for it (`linear_probe.knn`): not run otherwise.
            (Some(r), Some(_)) if c.metric == Metric::KnnTop1 => r.value(c.metric).map(|v| 100.0 * v),
            (Some(r), Some(dir)) => Some(
                100.0
                    * r.value(c.metric).ok_or_else(|| TablesError::Output {
                        path: files::results_file(dir),
                        message: format!("no \"{}\" (column '{}')", c.metric, c.key),
                    })?,
            ),
            _ => None,
        };
        scores.insert(c.key.clone(), value);
    }
    Ok((scores, wall))
}

/// The statistics of column `key` over seeds (`None` when that column was not run).
fn column_stats(per_seed: &[Scores], key: &str) -> Option<Stats> {
    let values: Option<Vec<f64>> = per_seed.iter().map(|m| m.get(key).copied().flatten()).collect();
    Stats::of(values?)
}

/// TABLE.json.
#[derive(Serialize)]
struct TableJson<'a> {
    table: &'a str,
    title: &'a str,
    preset: &'a str,
    device: &'a str,
    seeds: usize,
    dataset: &'a str,
    svaclr_version: &'static str,
    /// The table's columns, labels filled.
    columns: Vec<Column>,
    figure_columns: &'a Option<Vec<String>>,
    published: Vec<PublishedJson<'a>>,
    rows: Vec<RowJson<'a>>,
    baseline: Option<BaselineJson<'a>>,
    figures: &'a [PathBuf],
    /// Rows against row 1 and random init, paired by seed, with 95 % intervals; each column's detectable difference.
    comparisons: Comparisons,
    /// lambda measured over the retrieval split by each Fig. 3 (svaclr-eval's `fig3::LambdaSummary`), by figure.
    lambda: BTreeMap<String, serde_json::Value>,
    total_wall_s: f64,
    steps_wall_s: f64,
}

#[derive(Serialize)]
struct PublishedJson<'a> {
    name: &'a str,
    cells: &'a BTreeMap<String, String>,
    paper: &'a BTreeMap<String, f64>,
    source: &'static str,
}

#[derive(Serialize)]
struct RowJson<'a> {
    name: &'a str,
    /// By describe label, filled.
    cells: BTreeMap<String, String>,
    /// configs/pretrain/FILE.
    pretrain: String,
    paper: &'a BTreeMap<String, f64>,
    ours: BTreeMap<String, Option<Stats>>,
    wall_s: f64,
    runs: &'a [PathBuf],
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_vs_row1: Option<BTreeMap<String, f64>>,
}

#[derive(Serialize)]
struct BaselineJson<'a> {
    name: &'a str,
    ours: BTreeMap<String, Option<Stats>>,
    wall_s: f64,
}

/// The files [`write`] wrote, and the Markdown table.
#[derive(Clone, Debug)]
pub struct Written {
    pub markdown: String,
    pub md: PathBuf,
    pub json: PathBuf,
    pub png: PathBuf,
}

/// `mean ± std` (the spread only for several seeds), `—` for no number.
fn mean_pm_std(s: Option<&Stats>, seeds: usize) -> String {
    match s {
        Some(s) if s.mean.is_finite() && seeds > 1 => format!("{:.1} ± {:.1}", s.mean, s.std),
        Some(s) if s.mean.is_finite() => format!("{:.1}", s.mean),
        _ => "—".into(),
    }
}

fn paper_cell(v: Option<&f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.1}"))
}

/// A Markdown table row.
fn md_line(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// Write OUT/TABLE.md, OUT/TABLE.json and OUT/TABLE.png for the executed `plan` of `request`.
pub fn write(
    spec: &TableSpec,
    request: &Request,
    plan: &Plan,
    results: &Results,
    total_wall: f64,
) -> Result<Written, TablesError> {
    let out = &request.out;
    std::fs::create_dir_all(out).map_err(TablesError::io(out))?;
    let preset = spec.preset(&request.preset)?;
    let seeds = plan.seeds as usize;
    let stacked = spec.layout == Layout::Stacked;
    let columns: Vec<Column> =
        spec.columns.iter().map(|c| Column { label: preset.fill(&c.label), ..c.clone() }).collect();
    let cells = |cells: &BTreeMap<String, String>| -> Vec<String> {
        // Every row has a cell per describe label (TableSpec::parse checks).
        spec.describe.iter().map(|d| preset.fill(cells.get(d).map_or("", String::as_str))).collect()
    };

    let mut md = format!("# {}\n\n", spec.title);
    md.push_str(&format!(
        "Preset **{}** on `{}`, {seeds} seed(s), svaclr {}. Dataset: {}.\n\n",
        request.preset,
        request.device,
        env!("CARGO_PKG_VERSION"),
        preset.statement
    ));
    if let Some(note) = &spec.note {
        md.push_str(&format!("{}\n\n", preset.fill(note)));
    }
    md.push_str(&header(spec, &columns));

    // Published rows (stacked layout).
    let mut published = Vec::new();
    for p in spec.published.iter().filter(|_| stacked) {
        let mut line = cells(&p.cells);
        line.push("published (paper)".into());
        line.extend(columns.iter().map(|c| paper_cell(p.paper.get(&c.key))));
        line.push("—".into());
        md.push_str(&md_line(&line));
        let source = "published in the paper, not run here";
        published.push(PublishedJson { name: &p.name, cells: &p.cells, paper: &p.paper, source });
    }

    // Our rows.
    let first: BTreeMap<&str, f64> = results.rows.first().map_or_else(BTreeMap::new, |r| {
        columns.iter().filter_map(|c| column_stats(&r.per_seed, &c.key).map(|s| (c.key.as_str(), s.mean))).collect()
    });
    let mut rows = Vec::new();
    for (i, (row, r)) in spec.rows.iter().zip(&results.rows).enumerate() {
        let mut line = cells(&row.cells);
        if stacked {
            line.push("ours (run here)".into());
        }
        let mut ours = BTreeMap::new();
        let mut delta = BTreeMap::new();
        for c in &columns {
            let s = column_stats(&r.per_seed, &c.key);
            if !stacked {
                line.push(paper_cell(row.paper.get(&c.key)));
            }
            let mut cell = mean_pm_std(s.as_ref(), seeds);
            if let (Some(s), Some(f)) = (&s, first.get(c.key.as_str())) {
                delta.insert(c.key.clone(), s.mean - f);
                if spec.deltas && i > 0 {
                    cell.push_str(&format!(" ({:+.1})", s.mean - f));
                }
            }
            line.push(cell);
            ours.insert(c.key.clone(), s);
        }
        line.push(format!("{:.0}", r.wall));
        md.push_str(&md_line(&line));
        rows.push(RowJson {
            name: &row.name,
            cells: spec.describe.iter().cloned().zip(cells(&row.cells)).collect(),
            pretrain: row.pretrain.replace("{preset}", &request.preset),
            paper: &row.paper,
            ours,
            wall_s: r.wall,
            runs: &r.runs,
            delta_vs_row1: spec.deltas.then_some(delta),
        });
    }

    // The baseline.
    let steps_wall: f64 = results.rows.iter().map(|r| r.wall).sum::<f64>() + results.baseline_wall;
    let mut baseline = None;
    if let Some(b) = &spec.baseline {
        let mut line = cells(&b.cells);
        if stacked {
            line.push("ours (run here)".into());
        }
        let mut ours = BTreeMap::new();
        for c in &columns {
            let s = column_stats(&results.baseline, &c.key);
            if !stacked {
                line.push("—".into());
            }
            line.push(mean_pm_std(s.as_ref(), seeds));
            ours.insert(c.key.clone(), s);
        }
        line.push(format!("{:.0}", results.baseline_wall));
        md.push_str(&md_line(&line));
        baseline = Some(BaselineJson { name: &b.name, ours, wall_s: results.baseline_wall });
    }
    let comparisons = compare::compare(spec, &columns, results, seeds);
    md.push_str(&compare::markdown(&comparisons, &columns));
    let lambda = read_lambda(&plan.figures)?;
    md.push_str(&lambda_markdown(&lambda));
    md.push_str(&format!(
        "\nWall (s) per row: pre-training + evaluation, as measured when each step ran (a step reused from another \
         table counts in both). This invocation took {:.0} s ({:.1} min); the steps' measured times add up to {:.0} s \
         ({:.1} min).\n",
        total_wall,
        total_wall / 60.0,
        steps_wall,
        steps_wall / 60.0
    ));
    for f in &plan.figures {
        let name = |p: Option<&std::ffi::OsStr>| p.and_then(|s| s.to_str()).unwrap_or("").to_string();
        md.push_str(&format!("\n![{}]({})\n", name(f.file_stem()), name(f.file_name())));
    }

    let report = TableJson {
        table: &request.table,
        title: &spec.title,
        preset: &request.preset,
        device: &request.device,
        seeds,
        dataset: &preset.statement,
        svaclr_version: env!("CARGO_PKG_VERSION"),
        columns,
        figure_columns: &spec.figure_columns,
        published,
        rows,
        baseline,
        figures: &plan.figures,
        comparisons,
        lambda,
        total_wall_s: total_wall,
        steps_wall_s: steps_wall,
    };
    let written = Written {
        markdown: md,
        md: out.join(format!("{}.md", request.table)),
        json: out.join(format!("{}.json", request.table)),
        png: out.join(format!("{}.png", request.table)),
    };
    std::fs::write(&written.md, &written.markdown).map_err(TablesError::io(&written.md))?;
    // Through a `Value`, whose maps sort their keys: the file diffs cleanly against earlier versions' files.
    let json = serde_json::to_value(&report)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(|e| TablesError::Output { path: written.json.clone(), message: e.to_string() })?;
    std::fs::write(&written.json, json).map_err(TablesError::io(&written.json))?;
    draw_bars(&report, &written.png)?;
    Ok(written)
}

/// The `lambda_summary` of each figure's JSON (written by `svaclr fig3` beside its PNG), by figure file stem.
fn read_lambda(figures: &[PathBuf]) -> Result<BTreeMap<String, serde_json::Value>, TablesError> {
    let mut out = BTreeMap::new();
    for png in figures {
        let path = png.with_extension("json");
        let text = std::fs::read_to_string(&path).map_err(TablesError::io(&path))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TablesError::Output { path: path.clone(), message: e.to_string() })?;
        let stem = png.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        out.insert(stem, v.get("lambda_summary").cloned().unwrap_or(serde_json::Value::Null));
    }
    Ok(out)
}

/// One line per figure: mean lambda of the sped-up pair over the retrieval split, with its 95 % interval over clips.
fn lambda_markdown(lambda: &BTreeMap<String, serde_json::Value>) -> String {
    let mut md = String::new();
    for (figure, summary) in lambda {
        let Some(entries) = summary.as_array() else { continue };
        let parts: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                let (who, s, m) = (e["sped_up"].as_str()?, e["speed"].as_f64()?, e["mean"].as_f64()?);
                let pair = if who == "audio" { format!("λ(a×{s}, v)") } else { format!("λ(a, v×{s})") };
                let ci = e["ci95"].as_array().and_then(|c| Some([c.first()?.as_f64()?, c.get(1)?.as_f64()?]));
                Some(match ci {
                    Some([lo, hi]) => format!("{pair} = {m:.3} [{lo:.3}, {hi:.3}]"),
                    None => format!("{pair} = {m:.3}"),
                })
            })
            .collect();
        if let Some(n) = entries.first().and_then(|e| e["clips"].as_u64()) {
            md.push_str(&format!(
                "\nλ measured ({figure}, first seed, {n} clips, mean [95 % t-interval over clips]; 1 = as alike as the \
                 original pair, the paper's Fig. 3 reads values below 1 for a larger speed gap): {}.\n",
                parts.join("; ")
            ));
        }
    }
    md
}

/// The Markdown header and its rule.
fn header(spec: &TableSpec, columns: &[Column]) -> String {
    let stacked = spec.layout == Layout::Stacked;
    let mut head: Vec<String> = spec.describe.clone();
    if stacked {
        head.push("source".into());
    }
    for c in columns {
        if !stacked {
            head.push(format!("paper {}", c.paper_label));
        }
        head.push(c.label.clone());
    }
    head.push("wall (s)".into());
    format!("{}|{}\n", md_line(&head), "---|".repeat(head.len()))
}

/// One panel per figure column (`figure_columns`, default every column): a bar per row (ours, mean over seeds), the
/// baseline last, each seed's value as a dot and, for several seeds, the 95 % t-interval of the mean as an error
/// bar. Columns no row has a number for (an evaluation the preset does not run) get no panel.
fn draw_bars(report: &TableJson<'_>, path: &Path) -> Result<(), TablesError> {
    let e = |x: String| TablesError::Plot { path: path.to_path_buf(), message: x };
    let wanted = |c: &&Column| report.figure_columns.as_ref().is_none_or(|w| w.contains(&c.key));
    // A mean that is not finite is no number (TABLE.json writes it as null).
    let mean = |ours: &BTreeMap<String, Option<Stats>>, key: &str| {
        ours.get(key).and_then(|s| s.as_ref().map(|s| s.mean)).filter(|m| m.is_finite())
    };
    let mut bars: Vec<(String, &BTreeMap<String, Option<Stats>>)> =
        report.rows.iter().enumerate().map(|(i, r)| (format!("{}: {}", i + 1, r.name), &r.ours)).collect();
    if let Some(b) = &report.baseline {
        bars.push(("random init".into(), &b.ours));
    }
    let panels: Vec<&Column> = report
        .columns
        .iter()
        .filter(wanted)
        .filter(|c| bars.iter().any(|(_, ours)| mean(ours, &c.key).is_some()))
        .collect();
    let np = panels.len().max(1);
    let root = BitMapBackend::new(path, (550 * np as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let areas = root.split_evenly((1, np));
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (k, column) in panels.iter().enumerate() {
        let colour = palette[k % palette.len()];
        let vals: Vec<f64> = bars.iter().map(|(_, ours)| mean(ours, &column.key).unwrap_or(0.0)).collect();
        let stats: Vec<Option<&Stats>> =
            bars.iter().map(|(_, ours)| ours.get(&column.key).and_then(Option::as_ref)).collect();
        let interval = |s: &Stats| svaclr_eval::stats::mean_ci95(&s.values).map(|[lo, hi]| (lo, hi));
        let highest = stats
            .iter()
            .flatten()
            .flat_map(|s| s.values.iter().copied().chain(interval(s).map(|(_, hi)| hi)))
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max);
        let top = vals.iter().cloned().fold(highest, f64::max) * 1.15;
        let mut c = ChartBuilder::on(&areas[k])
            .caption(format!("{} - {}", report.table, column.label), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)
            .map_err(|x| e(x.to_string()))?;
        c.configure_mesh().disable_x_mesh().x_labels(0).draw().map_err(|x| e(x.to_string()))?;
        c.draw_series(
            vals.iter().enumerate().map(|(i, v)| {
                Rectangle::new([(i as f64 + 0.12, 0.0), (i as f64 + 0.88, *v)], colour.mix(0.7).filled())
            }),
        )
        .map_err(|x| e(x.to_string()))?;
        // Row names under the bars (numbered like the table's rows) and each value above its bar.
        c.draw_series(bars.iter().enumerate().map(|(i, (name, _))| {
            Text::new(name.clone(), (i as f64 + 0.08, -top * 0.03), ("sans-serif", 11).into_font())
        }))
        .map_err(|x| e(x.to_string()))?;
        c.draw_series(vals.iter().enumerate().map(|(i, v)| {
            Text::new(format!("{v:.1}"), (i as f64 + 0.55, v + top * 0.02), ("sans-serif", 13).into_font())
        }))
        .map_err(|x| e(x.to_string()))?;
        for (i, s) in stats.iter().enumerate() {
            let Some(s) = s else { continue };
            if let Some((lo, hi)) = interval(s) {
                let x = i as f64 + 0.5;
                c.draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], BLACK.stroke_width(2))))
                    .map_err(|x| e(x.to_string()))?;
                for y in [lo, hi] {
                    c.draw_series(std::iter::once(PathElement::new(
                        vec![(x - 0.1, y), (x + 0.1, y)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(|x| e(x.to_string()))?;
                }
            }
            let n = s.values.len().max(1) as f64;
            c.draw_series(
                s.values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, &v)| Circle::new((i as f64 + 0.3 + 0.4 * (k as f64 + 0.5) / n, v), 3, BLACK.filled())),
            )
            .map_err(|x| e(x.to_string()))?;
        }
    }
    root.present().map_err(|x| e(x.to_string()))
}
