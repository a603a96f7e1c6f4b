//! Sizing a preset: seeds against steps in a fixed time.
//!
//! A table's intervals narrow with more seeds (`1 / sqrt(n)`, and a smaller t quantile) and, perhaps, with more
//! pre-training steps per row (if longer runs end closer to each other). Which buys more in a given time is an
//! empirical question, answered here from finished tables of the same preset at different step counts: for each, the
//! measured wall time of one seed (every row and the baseline), the spread of the paired differences to row 1
//! (pooled over rows, per column), and from those, for a time budget, how many seeds fit and the smallest difference
//! that many seeds detect ([`svaclr_eval::stats::detectable_at`]). `svaclr size-table` prints it; docs/reproduction.md
//! ("Sizing the synth preset") records the calculation behind the synth preset's steps and seeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use svaclr_eval::stats::{PairedDiff, detectable_at, pooled_sd, t_quantile};

use crate::error::TablesError;
use crate::files;

/// One finished table (OUT/TABLE.json) as the sizing reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// The TABLE.json read.
    pub source: PathBuf,
    /// Pre-training steps per row (from the first row's first run; every row of a preset has the same schedule).
    pub steps: u64,
    /// Seeds the table ran.
    pub seeds: usize,
    /// Measured wall time of one seed: every row's pre-training and evaluations and the baseline's, over seeds.
    pub seconds_per_seed: f64,
    /// Per column.
    pub columns: Vec<Spread>,
}

/// A column's paired differences to row 1 in one table.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    /// The column key.
    pub column: String,
    /// The standard deviation of the paired differences to row 1, pooled over rows (`None` without a degree of
    /// freedom).
    pub sd: Option<f64>,
    /// Its degrees of freedom (`sum(n_i - 1)` over rows).
    pub df: usize,
    /// Each row's mean difference to row 1, in table order (rows 2..).
    pub mean_diffs: Vec<(String, f64)>,
}

/// One entry of TABLE.json's `comparisons.pairs` (what [`crate::compare::Comparison`] serialises).
#[derive(Deserialize)]
struct Pair {
    row: String,
    against: String,
    column: String,
    diff: PairedDiff,
}

impl Measured {
    /// Read a TABLE.json that `svaclr reproduce` wrote (with `comparisons`), and the summary.json of its first run.
    pub fn read(path: &Path) -> Result<Measured, TablesError> {
        let bad = |message: String| TablesError::Output { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(TablesError::io(path))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let seeds = json["seeds"].as_u64().ok_or_else(|| bad("no `seeds`".into()))? as usize;
        let rows = json["rows"].as_array().filter(|r| !r.is_empty()).ok_or_else(|| bad("no `rows`".into()))?;
        let mut wall = json["baseline"]["wall_s"].as_f64().unwrap_or(0.0);
        for row in rows {
            wall += row["wall_s"].as_f64().ok_or_else(|| bad("a row without `wall_s`".into()))?;
        }
        let run = rows[0]["runs"][0].as_str().ok_or_else(|| bad("row 1 lists no run".into()))?;
        let steps = files::read_summary(Path::new(run))?.steps as u64;
        let pairs: Vec<Pair> = serde_json::from_value(json["comparisons"]["pairs"].clone())
            .map_err(|e| bad(format!("`comparisons.pairs` ({e}; a table written before they existed?)")))?;
        let columns = json["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["key"].as_str())
            .map(|column| {
                let against_first: Vec<&Pair> =
                    pairs.iter().filter(|p| p.against == "row 1" && p.column == column).collect();
                let diffs: Vec<&PairedDiff> = against_first.iter().map(|p| &p.diff).collect();
                let pooled = pooled_sd(&diffs);
                Spread {
                    column: column.to_string(),
                    sd: pooled.map(|(sd, _)| sd),
                    df: pooled.map_or(0, |(_, df)| df),
                    mean_diffs: against_first.iter().map(|p| (p.row.clone(), p.diff.mean)).collect(),
                }
            })
            .collect();
        Ok(Measured { source: path.to_path_buf(), steps, seeds, seconds_per_seed: wall / seeds.max(1) as f64, columns })
    }

    /// Seeds that fit in `budget_s` seconds (whole seeds; the one-off set-up is the caller's to subtract).
    pub fn seeds_in(&self, budget_s: f64) -> usize {
        (budget_s / self.seconds_per_seed).floor().max(0.0) as usize
    }
}

/// The smallest difference `column` detects at `n` seeds with `m`'s spread (`None` when `m` has no spread for it).
pub fn detectable(m: &Measured, column: &str, n: usize) -> Option<f64> {
    let sd = m.columns.iter().find(|c| c.column == column)?.sd?;
    Some(detectable_at(sd, n))
}

/// The Markdown report: per measured table, its steps, seconds per seed and pooled spreads, and for each budget the
/// seeds that fit and the detectable difference per column.
pub fn markdown(measured: &[Measured], budgets_s: &[f64]) -> String {
    let mut md = String::new();
    let columns: Vec<&str> =
        measured.first().map(|m| m.columns.iter().map(|c| c.column.as_str()).collect()).unwrap_or_default();
    // A Markdown table: the leading headers, one per column, and right-aligned cells.
    let table = |md: &mut String, lead: &[&str], head: fn(&str) -> String, rows: Vec<Vec<String>>| {
        let heads: Vec<String> = columns.iter().map(|c| head(c)).collect();
        let _ = writeln!(md, "| {} | {} |", lead.join(" | "), heads.join(" | "));
        let _ = writeln!(md, "|{}", "---:|".repeat(lead.len() + columns.len()));
        for row in rows {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
    };
    let spreads = measured
        .iter()
        .map(|m| {
            let mut row = vec![m.steps.to_string(), m.seeds.to_string(), format!("{:.0}", m.seconds_per_seed)];
            row.extend(columns.iter().map(|c| match m.columns.iter().find(|s| s.column == *c) {
                Some(Spread { sd: Some(sd), df, .. }) => format!("{sd:.2} ({df})"),
                _ => "-".into(),
            }));
            row
        })
        .collect();
    table(
        &mut md,
        &["steps per row", "seeds measured", "s per seed (measured)"],
        |c| format!("sd of paired diff, {c} (df)"),
        spreads,
    );
    for &budget in budgets_s {
        let _ = writeln!(md, "\nIn {:.0} minutes of rows (set-up not counted):\n", budget / 60.0);
        let rows = measured
            .iter()
            .map(|m| {
                let n = m.seeds_in(budget);
                let mut row = vec![m.steps.to_string(), n.to_string()];
                row.extend(columns.iter().map(|c| match detectable(m, c, n) {
                    Some(d) if d.is_finite() => format!("{d:.1}"),
                    Some(_) => "- (fewer than 2 seeds)".into(),
                    None => "-".into(),
                }));
                row
            })
            .collect();
        table(&mut md, &["steps per row", "seeds that fit"], |c| format!("detectable {c}"), rows);
    }
    let _ = writeln!(
        md,
        "\nDetectable: the smallest true paired difference to row 1 found with probability 0.8 at two-sided 0.05, \
         (t(0.975, n-1) + t(0.8, n-1)) * sd / sqrt(n); t(0.975, 2) = {:.3}, so fewer than 3 seeds are of little use.",
        t_quantile(0.975, 2.0)
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made TABLE.json: two rows against row 1 over three seeds, diffs (1, 2, 6) (sd sqrt 7) and (2, 3, 4)
    /// (sd 1): pooled sd 2 with 4 df. Row walls 300 + 300 + 300 s and a 60 s baseline over 3 seeds: 320 s per seed.
    /// A 1000 s budget fits 3 seeds: detectable (4.302653 + 1.060660) * 2 / sqrt(3) = 6.193020.
    #[test]
    fn a_table_is_read_and_sized_by_hand() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = tmp.path().join("run0");
        std::fs::create_dir_all(&run).expect("run");
        let summary = r#"{"steps": 124, "epochs": 2, "first_loss": 4.3, "final_loss": 4.0, "final_top1_acc": 0.1,
            "clips_per_s": 50.0, "wall_s": 60.0, "device": "flex", "config_hash": "0", "processes": 1,
            "weights_hash": "0"}"#;
        std::fs::write(files::summary_file(&run), summary).expect("summary");
        let pair = |row: &str, d: [f64; 3], sd: f64| {
            serde_json::json!({"against": "row 1", "column": "top1", "row": row,
                               "diff": {"diffs": d, "sd": sd, "mean": d.iter().sum::<f64>() / 3.0}})
        };
        let table = serde_json::json!({
            "seeds": 3,
            "columns": [{"key": "top1"}],
            "rows": [{"wall_s": 300.0, "runs": [run]}, {"wall_s": 300.0}, {"wall_s": 300.0}],
            "baseline": {"wall_s": 60.0},
            "comparisons": {"pairs": [
                pair("b", [1.0, 2.0, 6.0], 7f64.sqrt()),
                pair("c", [2.0, 3.0, 4.0], 1.0),
                {"against": "random init", "column": "top1", "row": "a", "diff": {"diffs": [9.0, 9.0, 90.0], "sd": 48.0, "mean": 36.0}}
            ]}
        });
        let path = tmp.path().join("table1.json");
        std::fs::write(&path, table.to_string()).expect("table");
        let m = Measured::read(&path).expect("read");
        assert_eq!((m.steps, m.seeds), (124, 3));
        assert!((m.seconds_per_seed - 320.0).abs() < 1e-9);
        let spread = &m.columns[0];
        assert_eq!(spread.df, 4, "random init's comparisons are not pooled");
        assert!((spread.sd.expect("sd") - 2.0).abs() < 1e-12);
        assert_eq!(spread.mean_diffs, vec![("b".to_string(), 3.0), ("c".to_string(), 3.0)]);
        assert_eq!(m.seeds_in(1000.0), 3);
        assert!((detectable(&m, "top1", m.seeds_in(1000.0)).expect("d") - 6.193020).abs() < 1e-5);
        assert_eq!(detectable(&m, "top1", m.seeds_in(500.0)), Some(f64::INFINITY), "one seed detects nothing");
        let md = markdown(&[m], &[1000.0]);
        assert!(md.contains("| 124 | 3 | 320 | 2.00 (4) |"), "{md}");
        assert!(md.contains("| 124 | 3 | 6.2 |"), "{md}");
    }
}
