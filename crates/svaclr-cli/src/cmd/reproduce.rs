//! `svaclr reproduce TABLE [--preset smoke|synth|paper] [--data-root DIR] [--device D] [--seeds N] [--out DIR]
//! [--dry-run] [--force]`: run a table's rows (pre-training, downstream evaluation, retrieval) and write
//! `OUT/TABLE.{md,json,png}` (and, for a row marked `"figure": "fig3"`, `OUT/TABLE_fig3.{png,json}`).
//!
//! The rows are data (configs/tables/TABLE.json), not code. Every step is a run of this same binary (synth,
//! pretrain, finetune, retrieve) whose outputs live in a folder keyed by the config hash,
//! `OUT/runs/PRESET/pretrain-HASH-seedS/`, shared by every table: a row of Table 3 whose pre-training config equals
//! one of Table 1 reuses its run. A finished step is reused on a rerun, an interrupted pre-training resumes from its
//! last checkpoint, `--force` recomputes. `cargo xtask reproduce` is the front door: it installs what is missing,
//! builds in release mode and calls this.
//!
//! # The table file
//!
//! - `columns`: `{key, label, paper_label, eval, metric}`. `eval` is `retrieval` (the preset's retrieval manifest,
//!   `svaclr retrieve`) or the name of an entry of the preset's `evals` (a finetune config); `metric` is a dotted
//!   path into that step's results.json (`top1`, `v2a.1`), reported in percent. A column whose `eval` the preset
//!   does not define is printed as not run.
//! - `describe`: the descriptive column labels, filled from each row's `cells` (after `{name}` substitution from the
//!   preset's `labels`).
//! - `rows`: `{name, cells, pretrain, paper, figure?}`: `pretrain` names configs/pretrain/FILE (`{preset}` is
//!   substituted), `paper` the paper's numbers for this row by column key.
//! - `published` (optional): rows copied from the paper (peers and the paper's own runs) and printed as such.
//! - `baseline` (optional): a randomly initialised encoder with the model of row `model_from_row`.
//! - `layout`: `paired` (the paper's number beside ours in each column, deltas against row 1 when `deltas`) or
//!   `stacked` (published rows, then ours, in the same columns).
//! - `eval_at_pretrain_resolution` (table or preset; the preset's wins): evaluate each row's encoder at its
//!   pre-training crop and short side (the finetune config's `train_data`/`test_data` are rewritten when they differ;
//!   retrieval always uses the run's data config).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use svaclr_train::PretrainConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Which table: table1, table2 or table3 (configs/tables/TABLE.json).
    table: String,
    /// smoke (about a minute, for tests), synth (the embedded SynthAV benchmark, default), paper (real datasets).
    #[arg(long, default_value = "synth")]
    preset: String,
    /// Where datasets live (SynthAV is generated here; the paper preset reads prepared manifests from here).
    #[arg(long, default_value = "data")]
    data_root: PathBuf,
    /// flex (default), cuda[:N], tch-cpu, tch-cuda[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Seeds per row (mean and spread are reported).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Results folder: TABLE.md, TABLE.json, TABLE.png, and runs/.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Configs folder (holding tables/, pretrain/, finetune/).
    #[arg(long, default_value = "configs")]
    configs: PathBuf,
    /// Print the plan (every command) without running it.
    #[arg(long)]
    dry_run: bool,
    /// Recompute finished steps.
    #[arg(long)]
    force: bool,
}

struct Step {
    what: String,
    cmd: Command,
    done_marker: PathBuf,
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot locate the svaclr binary")
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// Run `step` unless its marker exists (and not forced). Returns its wall time (0 when reused).
fn run_step(step: &mut Step, force: bool, dry_run: bool) -> Result<f64> {
    let shown = format!(
        "{} {}",
        step.cmd.get_program().to_string_lossy(),
        step.cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    );
    if dry_run {
        println!("{}\n  $ {shown}", step.what);
        return Ok(0.0);
    }
    if step.done_marker.exists() && !force {
        eprintln!("[reuse] {} ({})", step.what, step.done_marker.display());
        return Ok(0.0);
    }
    eprintln!("[run]   {}", step.what);
    let t0 = Instant::now();
    let status = step.cmd.status().with_context(|| format!("cannot start: {shown}"))?;
    if !status.success() {
        bail!("{} failed ({status}); rerun the same command to continue where it stopped", step.what);
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// A step's measured wall time from its own output (0 when absent).
fn step_wall(path: &Path, key: &str) -> f64 {
    read_json(path).ok().and_then(|v| v[key].as_f64()).unwrap_or(0.0)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64 } else { 0.0 };
    (m, var.sqrt())
}

fn short_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// One metric column of a table, validated.
struct Column {
    key: String,
    eval: String,
    metric: String,
}

/// The evaluations of one pre-trained encoder: downstream configs by eval name, and whether retrieval runs.
struct EvalPlan {
    /// eval name -> (finetune config path, data folder its manifests are read from); only those some column uses
    /// and the preset defines.
    downstream: BTreeMap<String, (PathBuf, PathBuf)>,
    retrieval: bool,
}

/// The folders one encoder's evaluations write to, by eval name.
type EvalDirs = BTreeMap<String, PathBuf>;

/// `{name}` -> `labels[name]` in `text`.
fn fill(text: &str, labels: &Value) -> String {
    let mut s = text.to_string();
    if let Some(map) = labels.as_object() {
        for (k, v) in map {
            s = s.replace(&format!("{{{k}}}"), v.as_str().unwrap_or(""));
        }
    }
    s
}

/// Earlier versions kept runs in `OUT/runs/table1/PRESET/row<k>-HASH-seedS`: move them to the shared layout so they
/// are reused rather than recomputed.
fn adopt_legacy_runs(out: &Path, preset: &str, runs_root: &Path) -> Result<()> {
    let legacy = out.join("runs").join("table1").join(preset);
    let Ok(entries) = std::fs::read_dir(&legacy) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let strip_row =
            |s: &str| s.split_once('-').filter(|(r, _)| r.starts_with("row")).map(|(_, rest)| rest.to_string());
        let new_name = if let Some(rest) = name.strip_prefix("baseline-random-init-") {
            strip_row(rest).map(|r| format!("baseline-random-init-pretrain-{r}"))
        } else {
            strip_row(&name).map(|r| format!("pretrain-{r}"))
        };
        if let Some(n) = new_name {
            let to = runs_root.join(n);
            if !to.exists() {
                std::fs::create_dir_all(runs_root).with_context(|| runs_root.display().to_string())?;
                std::fs::rename(e.path(), &to)
                    .with_context(|| format!("moving {} to {}", e.path().display(), to.display()))?;
                eprintln!("[move]  {} -> {}", e.path().display(), to.display());
            }
        }
    }
    Ok(())
}

/// The finetune config to run for an encoder pre-trained with `pre` (rewritten to the pre-training resolution when
/// asked and different), and the key of its evaluation folder (a hash of the config's bytes).
fn downstream_config(
    cfg_path: &Path,
    pre: Option<&PretrainConfig>,
    rewrite_dir: &Path,
    dry_run: bool,
) -> Result<(PathBuf, String)> {
    let bytes = std::fs::read(cfg_path).with_context(|| format!("{}: cannot read", cfg_path.display()))?;
    let Some(pre) = pre else {
        return Ok((cfg_path.to_path_buf(), short_hash(&bytes)));
    };
    let mut v: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not valid JSON", cfg_path.display()))?;
    let (crop, short) = (pre.data.crop, pre.data.short_side);
    let mut changed = false;
    for part in ["train_data", "test_data"] {
        let d = &mut v[part];
        if !d.is_object() {
            bail!("{}: no \"{part}\" object", cfg_path.display());
        }
        if d["crop"].as_u64() != Some(crop as u64) || d["short_side"].as_u64() != Some(short as u64) {
            d["crop"] = json!(crop);
            d["short_side"] = json!(short);
            changed = true;
        }
    }
    if !changed {
        return Ok((cfg_path.to_path_buf(), short_hash(&bytes)));
    }
    let text = serde_json::to_string_pretty(&v)?;
    let stem = cfg_path.file_stem().and_then(|s| s.to_str()).unwrap_or("downstream");
    let path = rewrite_dir.join(format!("{stem}-crop{crop}-short{short}.json"));
    if !dry_run {
        std::fs::create_dir_all(rewrite_dir).with_context(|| rewrite_dir.display().to_string())?;
        std::fs::write(&path, &text).with_context(|| path.display().to_string())?;
    }
    Ok((path, short_hash(text.as_bytes())))
}

/// One encoder's numbers in percent by column key (None: the preset does not run that column's evaluation).
fn scores(columns: &[Column], dirs: &EvalDirs) -> Result<BTreeMap<String, Option<f64>>> {
    let mut out = BTreeMap::new();
    for c in columns {
        let Some(dir) = dirs.get(&c.eval) else {
            out.insert(c.key.clone(), None);
            continue;
        };
        let res = read_json(&dir.join("results.json"))?;
        let v = c.metric.split('.').fold(&res, |v, k| &v[k]);
        let x = v.as_f64().with_context(|| format!("{}: no \"{}\" in results.json", dir.display(), c.metric))?;
        out.insert(c.key.clone(), Some(100.0 * x));
    }
    Ok(out)
}

/// Measured wall time of every evaluation in `dirs`.
fn evals_wall(dirs: &EvalDirs) -> f64 {
    dirs.values().map(|d| step_wall(&d.join("results.json"), "wall_seconds")).sum()
}

struct RowResult {
    row: Value,
    per_seed: Vec<BTreeMap<String, Option<f64>>>,
    wall: f64,
    dirs: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let table_path = args.configs.join("tables").join(format!("{}.json", args.table));
    let table = read_json(&table_path)?;
    let preset = &table["presets"][&args.preset];
    if preset.is_null() {
        bail!("{}: no preset '{}' (see its \"presets\")", table_path.display(), args.preset);
    }
    let rows = table["rows"].as_array().with_context(|| format!("{}: no \"rows\"", table_path.display()))?.clone();
    let columns: Vec<Column> = table["columns"]
        .as_array()
        .with_context(|| format!("{}: no \"columns\"", table_path.display()))?
        .iter()
        .map(|c| {
            let s = |k: &str| {
                c[k].as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{}: a column has no \"{k}\"", table_path.display()))
            };
            Ok(Column { key: s("key")?, eval: s("eval")?, metric: s("metric")? })
        })
        .collect::<Result<_>>()?;
    let exe = exe()?;
    let device = args.device.clone();

    // 1. The dataset.
    let ds = &preset["dataset"];
    let data_dir = args.data_root.join(ds["dir"].as_str().context("preset.dataset.dir")?);
    if ds["kind"] == "synthav" {
        let mut cmd = Command::new(&exe);
        cmd.args(["synth", "--preset", ds["preset"].as_str().unwrap_or("default")]);
        cmd.args(["--seed", &ds["seed"].as_u64().unwrap_or(0).to_string()]);
        if let Some(n) = ds["clips"].as_u64() {
            cmd.args(["--clips", &n.to_string()]);
        }
        cmd.arg("--out").arg(&data_dir);
        // `synth` itself keeps an identical complete dataset, so it always runs (cheaply).
        let mut step = Step { what: format!("SynthAV -> {}", data_dir.display()), cmd, done_marker: PathBuf::new() };
        run_step(&mut step, true, args.dry_run)?;
    } else if !args.dry_run && !data_dir.join(preset["pretrain_manifest"].as_str().unwrap_or("")).exists() {
        bail!(
            "{}: no prepared dataset (run `svaclr prepare --dataset ... --out {}` first; see docs/data.md)",
            data_dir.display(),
            data_dir.display()
        );
    }
    let pre_manifest = data_dir.join(preset["pretrain_manifest"].as_str().context("preset.pretrain_manifest")?);
    let ret_manifest = data_dir.join(preset["retrieval_manifest"].as_str().context("preset.retrieval_manifest")?);
    let max_steps = preset["max_steps"].as_u64();
    let mut plan = EvalPlan { downstream: BTreeMap::new(), retrieval: false };
    for c in &columns {
        if c.eval == "retrieval" {
            plan.retrieval = true;
        } else {
            // "name": "finetune/x.json" (data: the preset's dataset) or {"config": ..., "data": DIR under --data-root}.
            let e = &preset["evals"][&c.eval];
            let (cfg, data) = match (e.as_str(), e["config"].as_str()) {
                (Some(p), _) => (p, data_dir.clone()),
                (None, Some(p)) => (p, e["data"].as_str().map_or(data_dir.clone(), |d| args.data_root.join(d))),
                (None, None) => continue,
            };
            plan.downstream.insert(c.eval.clone(), (args.configs.join(cfg), data));
        }
    }
    // A preset's own setting wins over the table's.
    let at_pre_res = preset["eval_at_pretrain_resolution"]
        .as_bool()
        .or(table["eval_at_pretrain_resolution"].as_bool())
        .unwrap_or(false);
    let runs_root = args.out.join("runs").join(&args.preset);
    if !args.dry_run {
        adopt_legacy_runs(&args.out, &args.preset, &runs_root)?;
    }

    // 2. Rows x seeds: pre-train, evaluate.
    let mut row_results = Vec::new();
    let mut first_run: Vec<(PathBuf, PretrainConfig)> = Vec::new();
    for (ri, row) in rows.iter().enumerate() {
        let cfg_name = row["pretrain"].as_str().context("row.pretrain")?.replace("{preset}", &args.preset);
        let cfg_path = args.configs.join("pretrain").join(&cfg_name);
        let mut per_seed = Vec::new();
        let mut wall = 0.0;
        let mut dirs = Vec::new();
        for seed in 0..args.seeds {
            let mut cfg = if args.dry_run && !pre_manifest.exists() {
                let text = std::fs::read_to_string(&cfg_path).with_context(|| cfg_path.display().to_string())?;
                serde_json::from_str::<PretrainConfig>(&text).with_context(|| cfg_path.display().to_string())?
            } else {
                PretrainConfig::load(&cfg_path, Some(&pre_manifest))?
            };
            cfg.seed = seed;
            cfg.run.max_steps = max_steps.map(|s| s as usize);
            let run_dir = runs_root.join(format!("pretrain-{}-seed{}", cfg.hash(), seed));
            let mut cmd = Command::new(&exe);
            cmd.args(["pretrain", "--quiet", "--device", &device, "--seed", &seed.to_string()]);
            cmd.arg("--config").arg(&cfg_path).arg("--manifest").arg(&pre_manifest).arg("--out").arg(&run_dir);
            if let Some(s) = max_steps {
                cmd.args(["--max-steps", &s.to_string()]);
            }
            if run_dir.join("checkpoints/last.json").exists() && !args.force {
                cmd.arg("--resume");
            }
            if args.force && run_dir.exists() && !args.dry_run {
                std::fs::remove_dir_all(&run_dir).with_context(|| run_dir.display().to_string())?;
            }
            let mut step = Step {
                what: format!("row {} ({}), seed {seed}: pre-train", ri + 1, row["name"].as_str().unwrap_or("")),
                cmd,
                done_marker: run_dir.join("summary.json"),
            };
            run_step(&mut step, false, args.dry_run)?;
            let res_cfg = at_pre_res.then_some(&cfg);
            let eval_dirs =
                eval_steps(&exe, &device, &run_dir, &run_dir, &plan, res_cfg, &runs_root, &ret_manifest, false, &args)?;
            if !args.dry_run {
                per_seed.push(scores(&columns, &eval_dirs)?);
                // The measured time of each step, whether it ran now or in an earlier invocation.
                wall += step_wall(&run_dir.join("summary.json"), "wall_s") + evals_wall(&eval_dirs);
            }
            if seed == 0 {
                first_run.push((run_dir.clone(), cfg));
            }
            dirs.push(run_dir);
        }
        row_results.push(RowResult { row: row.clone(), per_seed, wall, dirs });
    }

    // 3. The random-encoder baseline, with the model config of one row: per seed, the weights that row's run of
    // that seed started from.
    let mut baseline = Vec::new();
    let mut base_wall = 0.0;
    let base = &table["baseline"];
    if base.is_object() {
        let base_row = base["model_from_row"].as_u64().unwrap_or(0) as usize;
        let (cfg, runs) = first_run
            .get(base_row)
            .map(|(_, cfg)| (cfg, &row_results[base_row].dirs))
            .with_context(|| format!("{}: baseline.model_from_row {base_row} is not a row", table_path.display()))?;
        for run_dir in runs {
            let name = run_dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let seed_dir = runs_root.join(format!("baseline-initial-weights-of-{name}"));
            let res_cfg = at_pre_res.then_some(cfg);
            let dirs =
                eval_steps(&exe, &device, run_dir, &seed_dir, &plan, res_cfg, &runs_root, &ret_manifest, true, &args)?;
            if !args.dry_run {
                baseline.push(scores(&columns, &dirs)?);
                base_wall += evals_wall(&dirs);
            }
        }
    }

    // 4. Figures of what a row's model learned (Fig. 3: frames, spectrograms at speeds 1/2/4, lambda).
    let mut figures = Vec::new();
    for (ri, row) in rows.iter().enumerate() {
        if row["figure"].as_str() == Some("fig3") {
            let png = args.out.join(format!("{}_fig3.png", args.table));
            if args.dry_run {
                println!(
                    "row {} ({}): Fig. 3 (speeds 1/2/4 and lambda) from {}\n  -> {}",
                    ri + 1,
                    row["name"].as_str().unwrap_or(""),
                    first_run[ri].0.display(),
                    png.display()
                );
            } else {
                std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
                let (_, dev) = svaclr_train::parse_device(&device)?;
                svaclr_eval::fig3::write(&first_run[ri].0, &ret_manifest, &dev, &png)?;
                figures.push(png);
            }
        }
    }
    if args.dry_run {
        return Ok(());
    }

    // 5. The table.
    write_table(&args, &table, preset, &row_results, &baseline, base_wall, started.elapsed().as_secs_f64(), &figures)
}

/// Evaluate the encoder of `run_dir` (random weights with `random`): each downstream eval of `plan` into
/// `out_dir/eval-downstream-KEY`, retrieval into `out_dir/eval-retrieval`. Returns the folders by eval name.
#[allow(clippy::too_many_arguments)]
fn eval_steps(
    exe: &Path,
    device: &str,
    run_dir: &Path,
    out_dir: &Path,
    plan: &EvalPlan,
    resolution_of: Option<&PretrainConfig>,
    runs_root: &Path,
    ret_manifest: &Path,
    random: bool,
    args: &Args,
) -> Result<EvalDirs> {
    let tag = if random { "baseline (random init)" } else { "pre-trained encoder" };
    let mut dirs = EvalDirs::new();
    for (name, (cfg_path, data_dir)) in &plan.downstream {
        let (cfg, key) = downstream_config(cfg_path, resolution_of, &runs_root.join("eval-configs"), args.dry_run)?;
        let ft_dir = out_dir.join(format!("eval-downstream-{key}"));
        let mut ft = Command::new(exe);
        ft.args(["finetune", "--quiet", "--device", device]).arg("--config").arg(&cfg);
        ft.arg("--checkpoint").arg(run_dir).arg("--data-root").arg(data_dir).arg("--out").arg(&ft_dir);
        if random {
            ft.arg("--random-init");
        }
        let what = format!("{}: {tag} classification ({name})", out_dir.display());
        let mut step = Step { what, cmd: ft, done_marker: ft_dir.join("results.json") };
        run_step(&mut step, args.force, args.dry_run)?;
        dirs.insert(name.clone(), ft_dir);
    }
    if plan.retrieval {
        let ret_dir = out_dir.join("eval-retrieval");
        let mut ret = Command::new(exe);
        ret.args(["retrieve", "--quiet", "--device", device]).arg("--checkpoint").arg(run_dir);
        ret.arg("--data").arg(ret_manifest).arg("--out").arg(&ret_dir);
        if random {
            ret.arg("--random-init");
        }
        let mut step = Step {
            what: format!("{}: {tag} retrieval", out_dir.display()),
            cmd: ret,
            done_marker: ret_dir.join("results.json"),
        };
        run_step(&mut step, args.force, args.dry_run)?;
        dirs.insert("retrieval".into(), ret_dir);
    }
    Ok(dirs)
}

fn fmt_ms(m: f64, s: f64, n: usize) -> String {
    if !m.is_finite() {
        "—".into()
    } else if n > 1 {
        format!("{m:.1} ± {s:.1}")
    } else {
        format!("{m:.1}")
    }
}

/// Mean, spread and values of one column over seeds (`None` when that column was not run).
fn column_stats(per_seed: &[BTreeMap<String, Option<f64>>], key: &str) -> Option<(f64, f64, Vec<f64>)> {
    let v: Option<Vec<f64>> = per_seed.iter().map(|m| m.get(key).copied().flatten()).collect();
    let v = v.filter(|v| !v.is_empty())?;
    let (m, s) = mean_std(&v);
    Some((m, s, v))
}

fn stats_json(s: &Option<(f64, f64, Vec<f64>)>) -> Value {
    match s {
        Some((m, sd, v)) => json!({"mean": m, "std": sd, "values": v}),
        None => Value::Null,
    }
}

fn paper_cell(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{x:.1}"))
}

#[allow(clippy::too_many_arguments)]
fn write_table(
    args: &Args,
    table: &Value,
    preset: &Value,
    rows: &[RowResult],
    baseline: &[BTreeMap<String, Option<f64>>],
    base_wall: f64,
    total_wall: f64,
    figures: &[PathBuf],
) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let n = args.seeds as usize;
    let labels = &preset["labels"];
    let mut columns = table["columns"].as_array().cloned().unwrap_or_default();
    for c in &mut columns {
        let label = fill(c["label"].as_str().unwrap_or(""), labels);
        c["label"] = json!(label);
    }
    let describe: Vec<String> = table["describe"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let cells = |row: &Value| -> Vec<String> {
        describe.iter().map(|d| fill(row["cells"][d].as_str().unwrap_or(""), labels)).collect()
    };
    let stacked = table["layout"] == "stacked";
    let deltas = table["deltas"].as_bool().unwrap_or(false);
    let key_of = |c: &Value| c["key"].as_str().unwrap_or("").to_string();

    let mut md = String::new();
    md.push_str(&format!("# {}\n\n", table["title"].as_str().unwrap_or("")));
    md.push_str(&format!(
        "Preset **{}** on `{}`, {} seed(s), svaclr {}. Dataset: {}.\n\n",
        args.preset,
        args.device,
        n,
        env!("CARGO_PKG_VERSION"),
        preset["statement"].as_str().unwrap_or("")
    ));
    if let Some(note) = table["note"].as_str() {
        md.push_str(&format!("{}\n\n", fill(note, labels)));
    }
    // Header.
    let mut head: Vec<String> = describe.clone();
    if stacked {
        head.push("source".into());
    }
    for c in &columns {
        if !stacked {
            head.push(format!("paper {}", c["paper_label"].as_str().unwrap_or("")));
        }
        head.push(c["label"].as_str().unwrap_or("").to_string());
    }
    head.push("wall (s)".into());
    md.push_str(&format!("| {} |\n", head.join(" | ")));
    md.push_str(&format!("|{}\n", "---|".repeat(head.len())));

    // Published rows (stacked layout).
    let mut json_published = Vec::new();
    if stacked {
        for p in table["published"].as_array().into_iter().flatten() {
            let mut line = cells(p);
            line.push("published (paper)".into());
            line.extend(columns.iter().map(|c| paper_cell(&p["paper"][key_of(c)])));
            line.push("—".into());
            md.push_str(&format!("| {} |\n", line.join(" | ")));
            json_published.push(json!({"name": p["name"], "cells": p["cells"], "paper": p["paper"], "source": "published in the paper, not run here"}));
        }
    }

    // Our rows.
    let first: BTreeMap<String, f64> = rows
        .first()
        .map(|r| {
            columns.iter().filter_map(|c| column_stats(&r.per_seed, &key_of(c)).map(|s| (key_of(c), s.0))).collect()
        })
        .unwrap_or_default();
    let mut json_rows = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mut line = cells(&r.row);
        if stacked {
            line.push("ours (run here)".into());
        }
        let mut ours = serde_json::Map::new();
        let mut delta = serde_json::Map::new();
        for c in &columns {
            let key = key_of(c);
            let s = column_stats(&r.per_seed, &key);
            if !stacked {
                line.push(paper_cell(&r.row["paper"][&key]));
            }
            let mut cell = s.as_ref().map_or("—".into(), |(m, sd, _)| fmt_ms(*m, *sd, n));
            if let (Some((m, _, _)), Some(f)) = (&s, first.get(&key)) {
                delta.insert(key.clone(), json!(m - f));
                if deltas && i > 0 {
                    cell.push_str(&format!(" ({:+.1})", m - f));
                }
            }
            line.push(cell);
            ours.insert(key, stats_json(&s));
        }
        line.push(format!("{:.0}", r.wall));
        md.push_str(&format!("| {} |\n", line.join(" | ")));
        let mut j = json!({
            "name": r.row["name"], "cells": describe.iter().zip(cells(&r.row)).map(|(d, c)| (d.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
            "pretrain": r.row["pretrain"].as_str().map(|p| p.replace("{preset}", &args.preset)),
            "paper": r.row["paper"], "ours": ours, "wall_s": r.wall, "runs": r.dirs,
        });
        if deltas {
            j["delta_vs_row1"] = Value::Object(delta);
        }
        json_rows.push(j);
    }

    // The baseline.
    let steps_wall: f64 = rows.iter().map(|r| r.wall).sum::<f64>() + base_wall;
    let mut base_json = Value::Null;
    if table["baseline"].is_object() {
        let b = &table["baseline"];
        let mut line = cells(b);
        if stacked {
            line.push("ours (run here)".into());
        }
        let mut ours = serde_json::Map::new();
        for c in &columns {
            let key = key_of(c);
            let s = column_stats(baseline, &key);
            if !stacked {
                line.push("—".into());
            }
            line.push(s.as_ref().map_or("—".into(), |(m, sd, _)| fmt_ms(*m, *sd, n)));
            ours.insert(key, stats_json(&s));
        }
        line.push(format!("{base_wall:.0}"));
        md.push_str(&format!("| {} |\n", line.join(" | ")));
        base_json = json!({"name": b["name"], "ours": ours, "wall_s": base_wall});
    }
    md.push_str(&format!(
        "\nWall (s) per row: pre-training + evaluation, as measured when each step ran (a step reused from another \
         table counts in both). This invocation took {:.0} s ({:.1} min); the steps' measured times add up to {:.0} s \
         ({:.1} min).\n",
        total_wall,
        total_wall / 60.0,
        steps_wall,
        steps_wall / 60.0
    ));
    for f in figures {
        md.push_str(&format!(
            "\n![{}]({})\n",
            f.file_stem().and_then(|s| s.to_str()).unwrap_or(""),
            f.file_name().and_then(|s| s.to_str()).unwrap_or("")
        ));
    }
    let out = json!({
        "table": args.table, "title": table["title"], "preset": args.preset, "device": args.device, "seeds": n,
        "dataset": preset["statement"], "svaclr_version": env!("CARGO_PKG_VERSION"),
        "columns": columns, "figure_columns": table["figure_columns"],
        "published": json_published,
        "rows": json_rows,
        "baseline": base_json,
        "figures": figures,
        "total_wall_s": total_wall,
        "steps_wall_s": steps_wall,
    });
    let md_path = args.out.join(format!("{}.md", args.table));
    let json_path = args.out.join(format!("{}.json", args.table));
    std::fs::write(&md_path, &md).with_context(|| md_path.display().to_string())?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&out)?).with_context(|| json_path.display().to_string())?;
    crate::cmd::figures::table_bars(&out, &args.out.join(format!("{}.png", args.table)))?;
    print!("{md}");
    eprintln!("wrote {}, {} and the figure", md_path.display(), json_path.display());
    Ok(())
}
