//! Which rows a table can tell apart: every row's difference to row 1 and to random init (and to the row its
//! `compare_with` names), paired by seed, with a
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
    /// `row 1`, `random init`, or the name of the row a row's `compare_with` names.
    pub against: String,
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
    /// Rows 2.. against row 1, then every row against random init (when the table has a baseline), then rows against
    /// the row their `compare_with` names, column by column.
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
            let other: Option<(usize, &str)> = row
                .compare_with
                .as_deref()
                .and_then(|name| spec.rows.iter().position(|r| r.name == name).map(|k| (k, name)));
            let other_values = other.and_then(|(k, _)| results.rows.get(k)).map(|r| per_seed(&r.per_seed, &c.key));
            let mut refs: Vec<(&str, &[Option<f64>])> = Vec::new();
            if i > 0 {
                refs.push(("row 1", &first));
            }
            if !results.baseline.is_empty() {
                refs.push(("random init", &baseline));
            }
            if let (Some((_, name)), Some(values)) = (other, other_values.as_deref()) {
                refs.push((name, values));
            }
            for (against, reference) in refs {
                if let Some(diff) = PairedDiff::of(&values, reference) {
                    let established = diff.excludes_zero();
                    if against == "row 1" {
                        against_first.push(out.pairs.len());
                    }
                    out.pairs.push(Comparison {
                        row: row.name.clone(),
                        against: against.to_string(),
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
    out.pairs.sort_by_key(|p| match p.against.as_str() {
        "row 1" => 0,
        "random init" => 1,
        _ => 2,
    });
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
    let mut references: Vec<&str> = Vec::new();
    for p in &cmp.pairs {
        if !references.contains(&p.against.as_str()) {
            references.push(&p.against);
        }
    }
    for against in references {
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

    /// Table 1's SoftInfoNCE row names `compare_with: "s=[1,4]"`: it is also compared with that row, by hand:
    /// Soft - [1,4] = (1, 1, 4): mean 2, sd sqrt(3), interval 2 +- 4.302653 * 1 = [-2.30, 6.30]; and a table of its
    /// own under the other two.
    #[test]
    fn a_row_is_also_compared_with_the_row_it_names() {
        let table1 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tables/table1.json");
        let spec = TableSpec::load(&table1).expect("table 1");
        assert_eq!(spec.rows[4].compare_with.as_deref(), Some(spec.rows[2].name.as_str()));
        let columns = spec.columns[..1].to_vec();
        let key = columns[0].key.clone();
        let values =
            [[10.0, 20.0, 30.0], [11.0, 21.0, 31.0], [12.0, 20.0, 25.0], [9.0, 18.0, 27.0], [13.0, 21.0, 29.0]];
        let results = crate::report::Results {
            rows: values.iter().map(|v| row(&key, v)).collect(),
            baseline: Vec::new(),
            baseline_wall: 0.0,
        };
        let cmp = compare(&spec, &columns, &results, 3);
        let against: Vec<&Comparison> = cmp.pairs.iter().filter(|p| p.against == spec.rows[2].name).collect();
        assert_eq!(against.len(), 1, "only the row that names it");
        assert_eq!(against[0].row, spec.rows[4].name);
        assert_eq!(against[0].diff.diffs, vec![1.0, 1.0, 4.0]);
        let [lo, hi] = against[0].diff.ci95.expect("interval");
        assert!((lo + 2.302653).abs() < 1e-5 && (hi - 6.302653).abs() < 1e-5, "[{lo}, {hi}]");
        assert_eq!(cmp.pairs.last().map(|p| p.against.as_str()), Some(spec.rows[2].name.as_str()), "listed last");
        let md = markdown(&cmp, &columns);
        assert!(md.contains(&format!("| vs {} |", spec.rows[2].name)), "{md}");
        assert!(md.contains("| [1,4] Soft | +2.0 [-2.3, +6.3] |"), "{md}");
    }
}
