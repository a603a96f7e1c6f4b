//! Which rows a table can tell apart: every row's difference to row 1 and to random init, paired by seed, with a
//! 95 % t-interval over seeds (svaclr-eval's [`svaclr_eval::stats`], where the choice of interval is explained), and
//! per column the smallest difference the design detects. A difference is called established only when its
//! interval excludes 0.

use std::fmt::Write as _;

use serde::Serialize;
use svaclr_eval::stats::{PairedDiff, detectable_difference};

use crate::report::{Results, Scores};
use crate::spec::{Column, TableSpec};

/// One paired comparison of a row against a reference, in one column.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The row (its name in the table file).
    pub row: String,
    /// `row 1` or `random init`.
    pub against: &'static str,
    /// The column key.
    pub column: String,
    /// Per-seed differences (percentage points), their mean and 95 % interval.
    pub diff: PairedDiff,
    /// Whether the interval excludes 0.
    pub established: bool,
}

/// A column's power: the smallest difference to row 1 that the design detects (probability 0.8, two-sided 0.05),
/// from the rows' paired differences pooled.
#[derive(Clone, Debug, Serialize)]
pub struct ColumnPower {
    /// The column key.
    pub column: String,
    /// Percentage points (`None` with fewer than two seeds).
    pub detectable: Option<f64>,
    /// Seeds per comparison.
    pub seeds: usize,
}

/// Every comparison and each column's power.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparisons {
    /// Rows 2.. against row 1, then every row against random init (when the table has a baseline), column by column.
    pub pairs: Vec<Comparison>,
    /// Per column.
    pub power: Vec<ColumnPower>,
}

/// Column `key` of every seed (`None` where a seed has no number).
fn per_seed(scores: &[Scores], key: &str) -> Vec<Option<f64>> {
    scores.iter().map(|s| s.get(key).copied().flatten().filter(|v| v.is_finite())).collect()
}

/// The comparisons of `results` in `columns`.
pub fn compare(spec: &TableSpec, columns: &[Column], results: &Results, seeds: usize) -> Comparisons {
    let mut out = Comparisons::default();
    for c in columns {
        let first = results.rows.first().map(|r| per_seed(&r.per_seed, &c.key)).unwrap_or_default();
        let baseline = per_seed(&results.baseline, &c.key);
        let mut against_first = Vec::new();
        let rows = spec.rows.iter().zip(&results.rows);
        for (i, (row, r)) in rows.enumerate() {
            let values = per_seed(&r.per_seed, &c.key);
            let mut refs: Vec<(&'static str, &[Option<f64>])> = Vec::new();
            if i > 0 {
                refs.push(("row 1", &first));
            }
            if !results.baseline.is_empty() {
                refs.push(("random init", &baseline));
            }
            for (against, reference) in refs {
                if let Some(diff) = PairedDiff::of(&values, reference) {
                    let established = diff.excludes_zero();
                    if against == "row 1" {
                        against_first.push(out.pairs.len());
                    }
                    out.pairs.push(Comparison {
                        row: row.name.clone(),
                        against,
                        column: c.key.clone(),
                        diff,
                        established,
                    });
                }
            }
        }
        let diffs: Vec<&PairedDiff> = against_first.iter().map(|&k| &out.pairs[k].diff).collect();
        out.power.push(ColumnPower { column: c.key.clone(), detectable: detectable_difference(&diffs, seeds), seeds });
    }
    out.pairs.sort_by_key(|p| p.against != "row 1");
    out
}

/// `+1.2 [-0.3, +2.7]`, with `*` when the interval excludes 0.
fn cell(d: &PairedDiff) -> String {
    match d.ci95 {
        Some([lo, hi]) => {
            let mark = if d.excludes_zero() { " *" } else { "" };
            format!("{:+.1} [{lo:+.1}, {hi:+.1}]{mark}", d.mean)
        }
        None => format!("{:+.1} (1 seed)", d.mean),
    }
}

/// The Markdown section: one table per reference (rows x columns), the detectable differences and how to read them.
pub fn markdown(cmp: &Comparisons, columns: &[Column]) -> String {
    let mut md = String::from(
        "\n## Which rows differ\n\nDifference to the reference in percentage points, paired by seed (one seed = the \
         same initial weights, data order and test split in every row): mean [95 % t-interval over seeds]; `*` marks \
         an interval that excludes 0, the only differences this table establishes.\n",
    );
    for against in ["row 1", "random init"] {
        let pairs: Vec<&Comparison> = cmp.pairs.iter().filter(|p| p.against == against).collect();
        if pairs.is_empty() {
            continue;
        }
        let _ = write!(md, "\n| vs {against} |");
        for c in columns {
            let _ = write!(md, " {} |", c.label);
        }
        let _ = write!(md, "\n|---|{}\n", "---:|".repeat(columns.len()));
        let mut names: Vec<&str> = Vec::new();
        for p in &pairs {
            if !names.contains(&p.row.as_str()) {
                names.push(&p.row);
            }
        }
        for name in names {
            let _ = write!(md, "| {name} |");
            for c in columns {
                let d = pairs.iter().find(|p| p.row == name && p.column == c.key);
                let _ = write!(md, " {} |", d.map_or("—".into(), |p| cell(&p.diff)));
            }
            md.push('\n');
        }
    }
    let power: Vec<String> = cmp
        .power
        .iter()
        .filter_map(|p| {
            let label = columns.iter().find(|c| c.key == p.column).map_or(p.column.as_str(), |c| c.label.as_str());
            p.detectable.map(|d| format!("{label}: {d:.1} points"))
        })
        .collect();
    if let Some(seeds) = cmp.power.first().map(|p| p.seeds).filter(|_| !power.is_empty()) {
        let _ = writeln!(
            md,
            "\nSmallest difference to row 1 this design detects with probability 0.8 (two-sided 0.05, {seeds} seeds, \
             the rows' paired spreads pooled): {}. A smaller true difference is likely to print as not established.",
            power.join("; ")
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RowResults;

    fn scores(key: &str, v: &[f64]) -> Vec<Scores> {
        v.iter().map(|&x| Scores::from([(key.to_string(), Some(x))])).collect()
    }

    fn row(key: &str, v: &[f64]) -> RowResults {
        RowResults { per_seed: scores(key, v), wall: 0.0, runs: Vec::new() }
    }

    /// Two rows and a baseline over three seeds, by hand: row 2 - row 1 = (1, 2, 6): mean 3, not established
    /// (interval [-3.57, 9.57]); row 1 - random init = (2, 3, 4): mean 3, [0.52, 5.48], established.
    #[test]
    fn rows_are_paired_by_seed_against_row_1_and_random_init() {
        let table1 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tables/table1.json");
        let spec = TableSpec::load(&table1).expect("table 1");
        let columns = spec.columns[..1].to_vec();
        let key = columns[0].key.clone();
        let results = crate::report::Results {
            rows: vec![row(&key, &[10.0, 20.0, 30.0]), row(&key, &[11.0, 22.0, 36.0])],
            baseline: scores(&key, &[8.0, 17.0, 26.0]),
            baseline_wall: 0.0,
        };
        let cmp = compare(&spec, &columns, &results, 3);
        let find = |row: &str, against: &str| {
            cmp.pairs.iter().find(|p| p.row == row && p.against == against).expect("comparison")
        };
        let r2 = find(&spec.rows[1].name, "row 1");
        assert_eq!(r2.diff.diffs, vec![1.0, 2.0, 6.0]);
        assert!(!r2.established);
        let r1 = find(&spec.rows[0].name, "random init");
        assert_eq!(r1.diff.diffs, vec![2.0, 3.0, 4.0]);
        assert!(r1.established);
        let [lo, hi] = r1.diff.ci95.expect("interval");
        assert!((lo - 0.515862).abs() < 1e-5 && (hi - 5.484138).abs() < 1e-5);
        assert_eq!(cmp.pairs.iter().filter(|p| p.against == "row 1").count(), 1, "row 1 is not compared to itself");
        // One comparison against row 1: sd sqrt(7), df 2: (4.302653 + 1.060660) * sqrt(7) / sqrt(3) = 8.192596.
        let d = cmp.power[0].detectable.expect("power");
        assert!((d - 8.192596).abs() < 1e-4, "{d}");
        let md = markdown(&cmp, &columns);
        assert!(md.contains("+3.0 [+0.5, +5.5] *"), "{md}");
        assert!(md.contains("+3.0 [-3.6, +9.6] |"), "{md}");
    }
}
