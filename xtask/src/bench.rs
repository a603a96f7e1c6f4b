//! `cargo xtask bench loss [--quick] [--tch] [--baseline NAME] [--save NAME]`: time the loss kernels against PyTorch.
//!
//! 1. Runs the criterion benches of svaclr-loss (`crates/svaclr-loss/benches/loss.rs`) with `RAYON_NUM_THREADS=2`,
//!    and reads each case's median and its 95% interval from criterion's own files
//!    (`target/criterion/<group>/<id>/new/estimates.json`), never from its console output.
//! 2. Runs `scripts/bench/loss_torch.py` on the same cases with the torch venv, 2 threads, when the venv exists
//!    (`cargo xtask setup --torch`); without it the PyTorch column is null.
//! 3. Writes `results/bench/loss.json` (one record per case: kernel, pass, n, v, d, rust_ms, torch_ms, ratio =
//!    rust_ms / torch_ms, plus the interval and the composed-path time) and `results/bench/loss.md` (a table).
//!
//! `--tch` also times the losses on burn's LibTorch backend (CPU; the bench is then built with `--features tch`
//! against the torch venv, `OMP_NUM_THREADS=2`) and adds a LibTorch column.
//! `--quick` times a subset (the two kernels, both passes, three of the larger shapes) briefly: about a minute.
//! `--save NAME` keeps the records as `results/bench/baselines/NAME.json`; `--baseline NAME` compares with such a
//! file and flags regressions beyond noise (slower by more than 10% and by more than twice the width of the new
//! 95% interval). Speed never fails the task: regressions are reported, not fatal.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{torch, util};

const KERNELS: [&str; 2] = ["info_nce", "soft_info_nce"];
const NS: [usize; 3] = [64, 256, 512];
const VS: [usize; 2] = [1, 2];
const DS: [usize; 2] = [128, 256];
/// Shapes of the quick run: the sizes where speed matters (N = 256, 512, V = 2).
const QUICK_SHAPES: [(usize, usize, usize); 3] = [(256, 2, 128), (512, 2, 128), (512, 2, 256)];
/// Threads for both sides (`RAYON_NUM_THREADS`, `torch.set_num_threads`).
const THREADS: usize = 2;
/// A case is a regression when slower by more than this share ...
const REGRESSION_SHARE: f64 = 0.10;
/// ... and by more than this many widths of its 95% interval.
const REGRESSION_CI_WIDTHS: f64 = 2.0;

struct Options {
    quick: bool,
    tch: bool,
    baseline: Option<String>,
    save: Option<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let Some((what, rest)) = args.split_first() else {
        bail!(
            "bench: which benchmark? usage: cargo xtask bench loss [--quick] [--tch] [--baseline NAME] [--save NAME] | \
             bench pretrain [--quick] [--steps N]"
        );
    };
    if what != "loss" {
        bail!("bench: unknown benchmark '{what}' (known: loss, pretrain)");
    }
    let mut o = Options { quick: false, tch: false, baseline: None, save: None };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--tch" => o.tch = true,
            "--baseline" | "--save" => {
                let name = it.next().with_context(|| format!("bench: {a} needs a NAME"))?;
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                    bail!("bench: {a} NAME must be letters, digits, '-', '_' or '.', got '{name}'");
                }
                if a == "--save" { o.save = Some(name.clone()) } else { o.baseline = Some(name.clone()) }
            }
            other => bail!("bench: unknown option '{other}' (expected --quick, --tch, --baseline NAME, --save NAME)"),
        }
    }
    Ok(o)
}

/// One benchmark case: kernel, pass and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    kernel: &'static str,
    pass: &'static str,
    n: usize,
    v: usize,
    d: usize,
}

impl Case {
    fn id(&self) -> String {
        format!("n{}_v{}_d{}", self.n, self.v, self.d)
    }
    /// Criterion's full id of the fused case (also the PyTorch script's case id).
    fn full_id(&self) -> String {
        format!("{}_{}/{}", self.kernel, self.pass, self.id())
    }
    fn composed_group(&self) -> Option<String> {
        (self.pass == "fwd_bwd").then(|| format!("{}_{}_composed", self.kernel, self.pass))
    }
    /// Criterion's group of the same loss on LibTorch (`--tch`).
    fn tch_group(&self) -> String {
        format!("{}_{}_tch", self.kernel, self.pass)
    }
}

fn cases(quick: bool) -> Vec<Case> {
    let shapes: Vec<(usize, usize, usize)> = if quick {
        QUICK_SHAPES.to_vec()
    } else {
        NS.iter().flat_map(|&n| VS.iter().flat_map(move |&v| DS.iter().map(move |&d| (n, v, d)))).collect()
    };
    let mut out = Vec::new();
    for kernel in KERNELS {
        for pass in ["fwd", "fwd_bwd"] {
            for &(n, v, d) in &shapes {
                out.push(Case { kernel, pass, n, v, d });
            }
        }
    }
    out
}

/// Where criterion writes: `CRITERION_HOME` as set for the run, i.e. `<target dir>/criterion`.
fn criterion_home() -> PathBuf {
    util::target_dir().join("criterion")
}

/// Median and 95% interval (ms) of one criterion case, if it was measured at or after `since`.
fn criterion_estimate(home: &Path, group: &str, id: &str, since: SystemTime) -> Option<(f64, f64, f64)> {
    let path = home.join(group).join(id).join("new/estimates.json");
    let fresh = fs::metadata(&path).and_then(|m| m.modified()).map(|t| t >= since).unwrap_or(false);
    if !fresh {
        return None;
    }
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).ok()?).ok()?;
    let median = &v["median"];
    let ns = |x: &Value| x.as_f64().map(|ns| ns / 1e6);
    Some((
        ns(&median["point_estimate"])?,
        ns(&median["confidence_interval"]["lower_bound"])?,
        ns(&median["confidence_interval"]["upper_bound"])?,
    ))
}

fn regex_escape_free(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/')
}

fn run_criterion(cases: &[Case], quick: bool, tch: bool, home: &Path) -> Result<()> {
    // One anchored alternation of exact ids: fused cases plus the composed fwd_bwd counterparts.
    let mut ids: Vec<String> = Vec::new();
    for c in cases {
        ids.push(c.full_id());
        if let Some(g) = c.composed_group() {
            ids.push(format!("{g}/{}", c.id()));
        }
        if tch {
            ids.push(format!("{}/{}", c.tch_group(), c.id()));
        }
    }
    debug_assert!(ids.iter().all(|i| regex_escape_free(i)));
    let filter = format!("^({})$", ids.join("|"));
    let (warm_up, measure) = if quick { ("0.3", "1") } else { ("1", "3") };
    let features = tch.then_some("tch");
    let mut cmd = torch::cargo_for_features(features)?;
    cmd.env("RAYON_NUM_THREADS", THREADS.to_string())
        .env("OMP_NUM_THREADS", THREADS.to_string())
        .env("CRITERION_HOME", home);
    cmd.args(["bench", "-p", "svaclr-loss", "--bench", "loss"]);
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    cmd.arg("--").args(["--warm-up-time", warm_up, "--measurement-time", measure, "--noplot"]);
    if quick {
        cmd.args(["--sample-size", "10"]);
    }
    cmd.arg(filter);
    util::run(&mut cmd)
}

/// PyTorch medians (ms) by case id, or `None` without the torch venv.
fn run_torch(cases: &[Case], quick: bool) -> Result<Option<(BTreeMap<String, f64>, String)>> {
    let Some(py) = torch::python_if_ready() else {
        eprintln!(
            "bench: no torch venv at {} (cargo xtask setup --torch); the PyTorch column stays empty",
            torch::venv_path().display()
        );
        return Ok(None);
    };
    let out = criterion_home().join("loss_torch.json");
    let ids: Vec<String> = cases.iter().map(Case::full_id).collect();
    let mut cmd = Command::new(py);
    cmd.arg(util::root().join("scripts/bench/loss_torch.py")).arg("--out").arg(&out).args([
        "--threads",
        &THREADS.to_string(),
        "--cases",
        &ids.join(","),
    ]);
    if quick {
        cmd.arg("--quick");
    }
    util::run(&mut cmd)?;
    let v: Value =
        serde_json::from_str(&fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?)
            .context("PyTorch results are not JSON")?;
    let mut times = BTreeMap::new();
    for r in v["records"].as_array().context("PyTorch results: no records")? {
        let id = format!(
            "{}_{}/n{}_v{}_d{}",
            r["kernel"].as_str().unwrap_or_default(),
            r["pass"].as_str().unwrap_or_default(),
            r["n"],
            r["v"],
            r["d"]
        );
        if let Some(ms) = r["torch_ms"].as_f64() {
            times.insert(id, ms);
        }
    }
    Ok(Some((times, v["torch_version"].as_str().unwrap_or("?").to_string())))
}

fn fmt_ms(x: Option<f64>) -> String {
    match x {
        Some(v) if v >= 100.0 => format!("{v:.1}"),
        Some(v) if v >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
        None => "—".into(),
    }
}

/// The results table; with `tch` a column for burn's LibTorch backend (composed path) before PyTorch's.
fn table(records: &[Value], tch: bool) -> String {
    let mut s = String::from("| kernel | pass | N | V | D | Rust fused (ms) | Rust composed (ms) |");
    s.push_str(if tch { " burn LibTorch (ms) |" } else { "" });
    s.push_str(" PyTorch (ms) | Rust / PyTorch |\n|---|---|---:|---:|---:|---:|---:|");
    s.push_str(if tch { "---:|" } else { "" });
    s.push_str("---:|---:|\n");
    for r in records {
        let tch_cell = if tch { format!(" {} |", fmt_ms(r["tch_ms"].as_f64())) } else { String::new() };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |{tch_cell} {} | {} |\n",
            r["kernel"].as_str().unwrap_or_default(),
            r["pass"].as_str().unwrap_or_default(),
            r["n"],
            r["v"],
            r["d"],
            fmt_ms(r["rust_ms"].as_f64()),
            fmt_ms(r["composed_ms"].as_f64()),
            fmt_ms(r["torch_ms"].as_f64()),
            r["ratio"].as_f64().map_or("—".into(), |x| format!("{x:.2}")),
        ));
    }
    s
}

/// Lines describing regressions against a baseline (empty when none).
fn compare(records: &[Value], baseline: &[Value]) -> (Vec<String>, usize) {
    let key = |r: &Value| {
        format!(
            "{}_{}/n{}_v{}_d{}",
            r["kernel"].as_str().unwrap_or(""),
            r["pass"].as_str().unwrap_or(""),
            r["n"],
            r["v"],
            r["d"]
        )
    };
    let old: BTreeMap<String, &Value> = baseline.iter().map(|r| (key(r), r)).collect();
    let (mut lines, mut compared) = (Vec::new(), 0);
    for r in records {
        let (Some(new), Some(base)) = (r["rust_ms"].as_f64(), old.get(&key(r)).and_then(|b| b["rust_ms"].as_f64()))
        else {
            continue;
        };
        compared += 1;
        let ci =
            r["rust_ci_ms"].as_array().and_then(|a| Some(a.get(1)?.as_f64()? - a.first()?.as_f64()?)).unwrap_or(0.0);
        let slower = new - base;
        if slower > REGRESSION_SHARE * base && slower > REGRESSION_CI_WIDTHS * ci {
            lines.push(format!(
                "{}: {} ms -> {} ms (+{:.0}%, 95% interval width {} ms)",
                key(r),
                fmt_ms(Some(base)),
                fmt_ms(Some(new)),
                100.0 * slower / base,
                fmt_ms(Some(ci))
            ));
        }
    }
    (lines, compared)
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some((what, rest)) = args.split_first()
        && what == "pretrain"
    {
        return crate::bench_pretrain::run(rest);
    }
    let opts = parse(args)?;
    let root = util::root();
    let baseline = match &opts.baseline {
        Some(name) => {
            let path = root.join("results/bench/baselines").join(format!("{name}.json"));
            let text = fs::read_to_string(&path)
                .with_context(|| format!("bench: no baseline '{name}' ({}); make one with --save", path.display()))?;
            let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            Some(v.as_array().cloned().context("a baseline is a JSON list of records")?)
        }
        None => None,
    };
    let cases = cases(opts.quick);
    let home = criterion_home();
    // Only estimates written by this run count (criterion keeps older cases' files).
    let started = SystemTime::now() - std::time::Duration::from_secs(1);
    run_criterion(&cases, opts.quick, opts.tch, &home)?;
    let torch = run_torch(&cases, opts.quick)?;

    let mut records = Vec::new();
    let mut missing = Vec::new();
    for c in &cases {
        let group = format!("{}_{}", c.kernel, c.pass);
        let Some((ms, lo, hi)) = criterion_estimate(&home, &group, &c.id(), started) else {
            missing.push(c.full_id());
            continue;
        };
        let composed = c.composed_group().and_then(|g| criterion_estimate(&home, &g, &c.id(), started)).map(|e| e.0);
        let torch_ms = torch.as_ref().and_then(|(t, _)| t.get(&c.full_id()).copied());
        let tch_ms =
            if opts.tch { criterion_estimate(&home, &c.tch_group(), &c.id(), started).map(|e| e.0) } else { None };
        records.push(json!({
            "kernel": c.kernel, "pass": c.pass, "n": c.n, "v": c.v, "d": c.d,
            "rust_ms": ms, "rust_ci_ms": [lo, hi], "composed_ms": composed,
            "torch_ms": torch_ms, "ratio": torch_ms.map(|t| ms / t), "tch_ms": tch_ms,
        }));
    }
    if !missing.is_empty() {
        bail!("bench: criterion wrote no fresh estimate for {} case(s), e.g. {}", missing.len(), missing[0]);
    }

    let out_dir = root.join("results/bench");
    fs::create_dir_all(&out_dir)?;
    let json_text = serde_json::to_string_pretty(&records)? + "\n";
    fs::write(out_dir.join("loss.json"), &json_text)?;

    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mut md = format!(
        "# Loss kernel benchmark\n\n\
         `cargo xtask bench loss{}`: criterion medians (Rust, burn flex, f32, `RAYON_NUM_THREADS={THREADS}`) and \
         PyTorch {} medians (`torch.set_num_threads({THREADS})`, f32, `scripts/bench/loss_torch.py`) on {cpu}. \
         \"fwd\" is the loss alone; \"fwd_bwd\" adds the backward to za and zv. Ratio = Rust fused / PyTorch \
         (below 1: Rust is faster). \"Rust composed\" is the same loss through ordinary Burn tensor ops{}.\n\n",
        if opts.quick { " --quick" } else { "" },
        torch.as_ref().map_or("(not run: no torch venv)".to_string(), |(_, v)| v.clone()),
        if opts.tch {
            "; \"burn LibTorch\" is that composed loss on burn's LibTorch CPU backend (`--tch`, OMP_NUM_THREADS=2)"
        } else {
            ""
        },
    );
    md.push_str(&table(&records, opts.tch));
    if let Some(base) = &baseline {
        let (lines, compared) = compare(&records, base);
        let name = opts.baseline.as_deref().unwrap_or_default();
        md.push_str(&format!("\n## Against baseline `{name}`\n\n"));
        if lines.is_empty() {
            md.push_str(&format!("No regression beyond noise in {compared} compared case(s).\n"));
            eprintln!("bench: no regression against '{name}' ({compared} cases compared)");
        } else {
            md.push_str("Regressions (slower by >10% and by > 2x the 95% interval width):\n\n");
            for l in &lines {
                md.push_str(&format!("- {l}\n"));
                eprintln!("bench: REGRESSION {l}");
            }
        }
    }
    fs::write(out_dir.join("loss.md"), &md)?;
    print!("{}", table(&records, opts.tch));
    if let Some(name) = &opts.save {
        let dir = out_dir.join("baselines");
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("{name}.json")), &json_text)?;
        eprintln!("bench: saved baseline '{name}'");
    }
    eprintln!("bench: wrote {} and {}", out_dir.join("loss.json").display(), out_dir.join("loss.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let o = parse(&s(&["loss", "--quick", "--save", "main", "--baseline", "old-1"])).expect("valid");
        assert!(o.quick && !o.tch);
        assert!(parse(&s(&["loss", "--tch"])).expect("valid").tch);
        assert_eq!((o.save.as_deref(), o.baseline.as_deref()), (Some("main"), Some("old-1")));
        assert!(parse(&s(&["conv"])).is_err());
        assert!(parse(&s(&["loss", "--save"])).is_err());
        assert!(parse(&s(&["loss", "--save", "../x"])).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn case_lists() {
        assert_eq!(cases(false).len(), 2 * 2 * 12);
        assert_eq!(cases(true).len(), 2 * 2 * QUICK_SHAPES.len());
        let c = Case { kernel: "soft_info_nce", pass: "fwd_bwd", n: 512, v: 2, d: 128 };
        assert_eq!(c.full_id(), "soft_info_nce_fwd_bwd/n512_v2_d128");
        assert_eq!(c.composed_group().as_deref(), Some("soft_info_nce_fwd_bwd_composed"));
        assert!(cases(false).iter().all(|c| regex_escape_free(&c.full_id())));
    }

    #[test]
    fn the_libtorch_column_appears_with_tch_only() {
        let r = json!({"kernel": "info_nce", "pass": "fwd", "n": 64, "v": 1, "d": 128, "rust_ms": 1.0, "tch_ms": 2.5});
        let with = table(std::slice::from_ref(&r), true);
        let without = table(&[r], false);
        assert!(with.contains("burn LibTorch (ms)") && with.contains("| 2.500 |"), "{with}");
        assert!(!without.contains("LibTorch") && !without.contains("2.500"), "{without}");
        for t in [&with, &without] {
            let cols: Vec<usize> = t.lines().map(|l| l.matches('|').count()).collect();
            assert!(cols.iter().all(|&c| c == cols[0]), "ragged table:\n{t}");
        }
    }

    #[test]
    fn regressions_need_both_share_and_noise_margin() {
        let rec = |ms: f64, lo: f64, hi: f64| json!({"kernel": "info_nce", "pass": "fwd", "n": 64, "v": 1, "d": 128, "rust_ms": ms, "rust_ci_ms": [lo, hi]});
        let base = vec![rec(10.0, 9.9, 10.1)];
        assert_eq!(compare(&[rec(10.5, 10.4, 10.6)], &base).0.len(), 0); // +5%: within 10%
        assert_eq!(compare(&[rec(12.0, 11.9, 12.1)], &base).0.len(), 1); // +20%, tight interval
        assert_eq!(compare(&[rec(12.0, 10.0, 14.0)], &base).0.len(), 0); // +20% but noisy
        assert_eq!(compare(&[rec(12.0, 11.9, 12.1)], &base).1, 1);
    }
}
