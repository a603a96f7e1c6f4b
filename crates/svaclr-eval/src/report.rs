//! Result files: `results.json` (machine-readable, schema in docs/evaluation.md), `results.md` (for people),
//! `config.json` (the resolved config) and, for classification, `confusion.png`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::classify::ConfusionMatrix;
use crate::config::FinetuneConfig;
use crate::error::EvalError;
use crate::finetune::FinetuneResult;
use crate::retrieve::{RetrievalResult, RetrieveConfig};

/// File names inside an output folder.
pub const RESULTS_JSON: &str = "results.json";
pub const RESULTS_MD: &str = "results.md";
pub const CONFIG_JSON: &str = "config.json";
pub const CONFUSION_PNG: &str = "confusion.png";

/// Pixel size of a confusion-matrix cell, and the margins left for labels.
const CELL_PX: u32 = 28;
const LABEL_MARGIN_PX: u32 = 180;
const TITLE_MARGIN_PX: u32 = 40;
/// Longest class name drawn in full.
const MAX_LABEL_CHARS: usize = 22;

/// Write `bytes` via a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    Ok(svaclr_train::run_dir::write_atomic(path, bytes)?)
}

/// Write a value as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), EvalError> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| EvalError::invalid("results", e.to_string()))?;
    write_atomic(path, &json)
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// The Markdown summary of a classification run.
pub fn finetune_markdown(r: &FinetuneResult) -> String {
    let mut s = String::new();
    let source = match (&r.checkpoint, r.random_init) {
        (_, true) => "random initialisation (baseline)".to_string(),
        (Some(c), false) => format!("`{}`", c.display()),
        (None, false) => "?".into(),
    };
    let _ = writeln!(s, "# Action recognition ({})\n", r.protocol.name());
    let _ = writeln!(
        s,
        "Encoder: {source}, {} / {}, {} parameters.  ",
        r.model.video_arch.name(),
        r.model.preset.name(),
        r.encoder_params
    );
    let _ = writeln!(
        s,
        "Seed {}, device {}, {:.1} s, config `{}`.\n",
        r.seed,
        r.device,
        r.wall_seconds,
        &r.config_hash[..12.min(r.config_hash.len())]
    );
    let _ = writeln!(s, "| fold | top-1 (%) | top-5 (%) | classes | train videos | test videos | views / video |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for f in &r.folds {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            pct(f.top1),
            pct(f.top5),
            f.num_classes,
            f.train_videos,
            f.test_videos,
            f.views_per_video
        );
    }
    let _ = writeln!(s, "| **mean** | **{}** (± {}) | **{}** | | | | |", pct(r.top1), pct(r.top1_std), pct(r.top5));
    if let Some(knn) = r.knn_top1 {
        let _ = writeln!(s, "\nkNN top-1 on the same frozen features (mean over folds): {} %.", pct(knn));
    }
    if let Some(f) = r.folds.first()
        && let Some(last) = f.epochs.last()
    {
        let _ = writeln!(
            s,
            "\nLast epoch of fold {}: loss {:.4}, training top-1 {} %, head lr {:.3e}.",
            f.name,
            last.loss,
            pct(last.train_top1),
            last.lr_head
        );
    }
    s
}

/// The Markdown summary of a retrieval run.
pub fn retrieval_markdown(r: &RetrievalResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Audio-visual retrieval\n");
    let source = match (&r.checkpoint, r.random_init) {
        (_, true) => "random initialisation (baseline)".to_string(),
        (Some(c), false) => format!("`{}`", c.display()),
        (None, false) => "?".into(),
    };
    let _ = writeln!(
        s,
        "Model: {source}. {} clips of `{}` (split {}), {} clip(s) per video, embedding {}.  ",
        r.queries,
        r.manifest.display(),
        r.split.as_deref().unwrap_or("*"),
        r.clips_per_video,
        r.embedding.name()
    );
    let _ = writeln!(
        s,
        "Ties: {}. Device {}, {:.1} s, config `{}`.\n",
        r.tie_rule,
        r.device,
        r.wall_seconds,
        &r.config_hash[..12.min(r.config_hash.len())]
    );
    let header: Vec<String> = r.ks.iter().map(|k| format!("R@{k} (%)")).collect();
    let _ = writeln!(s, "| level | direction | {} | median rank |", header.join(" | "));
    let _ = writeln!(s, "|---|---|{}---:|", "---:|".repeat(r.ks.len()));
    let mut rows = vec![
        ("instance", "video → audio", &r.instance_detail.v2a),
        ("instance", "audio → video", &r.instance_detail.a2v),
    ];
    if let Some(c) = &r.class_level_detail {
        rows.push(("class", "video → audio", &c.v2a));
        rows.push(("class", "audio → video", &c.a2v));
    }
    for (level, dir, d) in rows {
        let cells: Vec<String> = r.ks.iter().map(|&k| d.at(k).map_or("-".into(), pct)).collect();
        let _ = writeln!(s, "| {level} | {dir} | {} | {} |", cells.join(" | "), d.median_rank);
    }
    s
}

fn short(name: &str) -> String {
    if name.chars().count() <= MAX_LABEL_CHARS {
        name.to_string()
    } else {
        let cut: String = name.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// Draw a confusion matrix as a heat map (rows: true class, top row class 0, labelled `name (i)`; columns: predicted
/// class index; each row normalised by its class's count, so the diagonal shows per-class recall).
pub fn plot_confusion(m: &ConfusionMatrix, names: &[String], title: &str, path: &Path) -> Result<(), EvalError> {
    let perr = |e: String| EvalError::Plot { path: path.to_path_buf(), message: e };
    let n = m.classes.max(1);
    let grid = n as u32 * CELL_PX;
    let size = (LABEL_MARGIN_PX + grid + 30, TITLE_MARGIN_PX + grid + 60);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(e.to_string()))?;
    let name = |i: usize| format!("{} ({i})", names.get(i).map_or_else(|| format!("class {i}"), |s| short(s)));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(LABEL_MARGIN_PX - 10)
        // A discrete range a..b has the b - a + 1 segments a..=b.
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
        .map_err(|e| perr(e.to_string()))?;
    // Row r of the chart (from the bottom) shows true class n - 1 - r.
    let centre = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => Some(*i),
        _ => None,
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_desc("predicted class")
        .x_label_formatter(&|v| centre(v).filter(|&i| i < n).map_or(String::new(), |i| i.to_string()))
        .y_label_formatter(&|v| centre(v).filter(|&i| i < n).map_or(String::new(), |i| name(n - 1 - i)))
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(|e| perr(e.to_string()))?;
    let cells = m.counts.iter().enumerate().flat_map(|(t, row)| {
        let total = row.iter().sum::<u64>().max(1) as f64;
        row.iter().enumerate().map(move |(p, &c)| (t, p, c as f64 / total))
    });
    chart
        .draw_series(cells.map(|(t, p, v)| {
            let y = n - 1 - t;
            let shade = (255.0 * (1.0 - v)).round().clamp(0.0, 255.0) as u8;
            Rectangle::new(
                [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ],
                RGBColor(shade, shade, 255).filled(),
            )
        }))
        .map_err(|e| perr(e.to_string()))?;
    root.present().map_err(|e| perr(e.to_string()))
}

/// Write `config.json`, `results.json`, `results.md` and `confusion.png` (all folds summed) into `out`.
pub fn write_finetune(out: &Path, cfg: &FinetuneConfig, r: &FinetuneResult) -> Result<Vec<PathBuf>, EvalError> {
    std::fs::create_dir_all(out).map_err(EvalError::io(out))?;
    let paths = [out.join(CONFIG_JSON), out.join(RESULTS_JSON), out.join(RESULTS_MD), out.join(CONFUSION_PNG)];
    write_atomic(&paths[0], cfg.to_json().as_bytes())?;
    write_json(&paths[1], r)?;
    write_atomic(&paths[2], finetune_markdown(r).as_bytes())?;
    let mut total = ConfusionMatrix::new(r.folds.first().map_or(0, |f| f.confusion.classes));
    for f in &r.folds {
        total.add(&f.confusion)?;
    }
    let title = format!("{} ({} folds), top-1 {} %", r.protocol.name(), r.folds.len(), pct(r.top1));
    plot_confusion(&total, &r.class_names, &title, &paths[3])?;
    Ok(paths.to_vec())
}

/// Write `config.json`, `results.json` and `results.md` into `out`.
pub fn write_retrieval(out: &Path, cfg: &RetrieveConfig, r: &RetrievalResult) -> Result<Vec<PathBuf>, EvalError> {
    std::fs::create_dir_all(out).map_err(EvalError::io(out))?;
    let paths = [out.join(CONFIG_JSON), out.join(RESULTS_JSON), out.join(RESULTS_MD)];
    write_json(&paths[0], cfg)?;
    write_json(&paths[1], r)?;
    write_atomic(&paths[2], retrieval_markdown(r).as_bytes())?;
    Ok(paths.to_vec())
}
