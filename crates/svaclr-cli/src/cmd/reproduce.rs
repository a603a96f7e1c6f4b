//! `svaclr reproduce table1 [--preset smoke|synth|paper] [--data-root DIR] [--device D] [--seeds N] [--out DIR]
//! [--dry-run] [--force]`: run a table's rows (pre-training, downstream evaluation, retrieval) and write
//! `OUT/table1.{md,json,png}`.
//!
//! The rows are data (configs/tables/TABLE.json), not code. Every step is a run of this same binary (synth,
//! pretrain, finetune, retrieve) whose outputs live in a folder keyed by the config hash: a finished step is reused on
//! a rerun, an interrupted pre-training resumes from its last checkpoint, `--force` recomputes.
//! `cargo xtask reproduce` is the front door: it installs what is missing, builds in release mode and calls this.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use svaclr_train::PretrainConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Which table: table1.
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

/// One row's evaluation numbers in percent, read from the finetune and retrieve results.
fn scores(ft_dir: &Path, ret_dir: &Path) -> Result<(f64, f64)> {
    let ft = read_json(&ft_dir.join("results.json"))?;
    let ret = read_json(&ret_dir.join("results.json"))?;
    let top1 = ft["top1"].as_f64().with_context(|| format!("{}: no top1", ft_dir.display()))?;
    let r1 = ret["v2a"]["1"].as_f64().with_context(|| format!("{}: no v2a R@1", ret_dir.display()))?;
    Ok((100.0 * top1, 100.0 * r1))
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let table_path = args.configs.join("tables").join(format!("{}.json", args.table));
    let table = read_json(&table_path)?;
    let preset = &table["presets"][&args.preset];
    if preset.is_null() {
        bail!("{}: no preset '{}' (see its \"presets\")", table_path.display(), args.preset);
    }
    let rows = table["rows"].as_array().context("table has no rows")?.clone();
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
    let downstream = args.configs.join(preset["downstream"].as_str().context("preset.downstream")?);
    let max_steps = preset["max_steps"].as_u64();
    // Evaluation folders are keyed by the downstream config's content, so editing it re-runs the evaluation.
    let ds_key = {
        use sha2::Digest;
        let bytes = std::fs::read(&downstream).with_context(|| format!("{}: cannot read", downstream.display()))?;
        sha2::Sha256::digest(&bytes).iter().take(4).map(|b| format!("{b:02x}")).collect::<String>()
    };
    let runs_root = args.out.join("runs").join(&args.table).join(&args.preset);

    // 2. Rows x seeds: pre-train, evaluate.
    let mut row_results = Vec::new();
    let mut first_run_dir: Vec<PathBuf> = Vec::new();
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
            let run_dir = runs_root.join(format!("row{}-{}-seed{}", ri + 1, cfg.hash(), seed));
            if seed == 0 {
                first_run_dir.push(run_dir.clone());
            }
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
            let (ft_dir, ret_dir) = (run_dir.join(format!("eval-downstream-{ds_key}")), run_dir.join("eval-retrieval"));
            eval_steps(&exe, &device, &run_dir, &downstream, &data_dir, &ret_manifest, &ft_dir, &ret_dir, false, &args)?;
            if !args.dry_run {
                per_seed.push(scores(&ft_dir, &ret_dir)?);
                // The measured time of each step, whether it ran now or in an earlier invocation.
                wall += step_wall(&run_dir.join("summary.json"), "wall_s")
                    + step_wall(&ft_dir.join("results.json"), "wall_seconds")
                    + step_wall(&ret_dir.join("results.json"), "wall_seconds");
            }
            dirs.push(run_dir);
        }
        row_results.push((row.clone(), per_seed, wall, dirs));
    }

    // 3. The random-encoder baseline, with the model config of one row.
    let base_row = table["baseline"]["model_from_row"].as_u64().unwrap_or(0) as usize;
    let mut baseline = Vec::new();
    let mut base_wall = 0.0;
    if let Some(run_dir) = first_run_dir.get(base_row) {
        let base_dir = runs_root.join(format!("baseline-random-init-{}", run_dir.file_name().and_then(|n| n.to_str()).unwrap_or("")));
        for seed in 0..args.seeds {
            let (ft_dir, ret_dir) =
                (base_dir.join(format!("seed{seed}/eval-downstream-{ds_key}")), base_dir.join(format!("seed{seed}/eval-retrieval")));
            eval_steps(&exe, &device, run_dir, &downstream, &data_dir, &ret_manifest, &ft_dir, &ret_dir, true, &args)?;
            if !args.dry_run {
                baseline.push(scores(&ft_dir, &ret_dir)?);
                base_wall += step_wall(&ft_dir.join("results.json"), "wall_seconds")
                    + step_wall(&ret_dir.join("results.json"), "wall_seconds");
            }
        }
    }
    if args.dry_run {
        return Ok(());
    }

    // 4. The table.
    write_table(&args, &table, preset, &row_results, &baseline, base_wall, started.elapsed().as_secs_f64())
}

#[allow(clippy::too_many_arguments)]
fn eval_steps(
    exe: &Path,
    device: &str,
    run_dir: &Path,
    downstream: &Path,
    data_dir: &Path,
    ret_manifest: &Path,
    ft_dir: &Path,
    ret_dir: &Path,
    random: bool,
    args: &Args,
) -> Result<f64> {
    let mut wall = 0.0;
    let mut ft = Command::new(exe);
    ft.args(["finetune", "--quiet", "--device", device]).arg("--config").arg(downstream);
    ft.arg("--checkpoint").arg(run_dir).arg("--data-root").arg(data_dir).arg("--out").arg(ft_dir);
    if random {
        ft.arg("--random-init");
    }
    let tag = if random { "baseline (random init)" } else { "downstream" };
    let mut step = Step { what: format!("{}: {tag} classification", run_dir.display()), cmd: ft, done_marker: ft_dir.join("results.json") };
    wall += run_step(&mut step, args.force, args.dry_run)?;
    let mut ret = Command::new(exe);
    ret.args(["retrieve", "--quiet", "--device", device]).arg("--checkpoint").arg(run_dir);
    ret.arg("--data").arg(ret_manifest).arg("--out").arg(ret_dir);
    if random {
        ret.arg("--random-init");
    }
    let mut step = Step { what: format!("{}: {tag} retrieval", run_dir.display()), cmd: ret, done_marker: ret_dir.join("results.json") };
    wall += run_step(&mut step, args.force, args.dry_run)?;
    Ok(wall)
}

type RowResult = (Value, Vec<(f64, f64)>, f64, Vec<PathBuf>);

fn fmt_ms(m: f64, s: f64, n: usize) -> String {
    if n > 1 { format!("{m:.1} ± {s:.1}") } else { format!("{m:.1}") }
}

fn write_table(
    args: &Args,
    table: &Value,
    preset: &Value,
    rows: &[RowResult],
    baseline: &[(f64, f64)],
    base_wall: f64,
    total_wall: f64,
) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let n = args.seeds as usize;
    let first = rows.first().map(|r| (mean_std(&r.1.iter().map(|x| x.0).collect::<Vec<_>>()).0, mean_std(&r.1.iter().map(|x| x.1).collect::<Vec<_>>()).0));
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
    md.push_str("Ours: downstream = linear probe or fine-tuning top-1 on the labelled split (the config says which); \
                 V->A R@1 = instance-level video-to-audio retrieval. Deltas are against row 1, as the paper prints them. \
                 The paper's numbers are HMDB51 and Kinetics-Sounds after 100 epochs on 64 GPUs: compare orderings, not values.\n\n");
    md.push_str("| speed | re-weight | speed set | loss | paper HMDB51 | ours downstream top-1 (%) | paper K-Sounds@1 | ours V->A R@1 (%) | wall (s) |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let mut json_rows = Vec::new();
    for (row, per_seed, wall, dirs) in rows {
        let a: Vec<f64> = per_seed.iter().map(|x| x.0).collect();
        let b: Vec<f64> = per_seed.iter().map(|x| x.1).collect();
        let (am, asd) = mean_std(&a);
        let (bm, bsd) = mean_std(&b);
        let (da, db) = first.map_or((0.0, 0.0), |(fa, fb)| (am - fa, bm - fb));
        let is_first = std::ptr::eq(row, &rows[0].0);
        let delta = |d: f64| if is_first { String::new() } else { format!(" ({d:+.1})") };
        let pa = row["paper"]["downstream_top1"].as_f64().unwrap_or(f64::NAN);
        let pb = row["paper"]["v2a_r1"].as_f64().unwrap_or(f64::NAN);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {pa:.1} | {}{} | {pb:.1} | {}{} | {wall:.0} |\n",
            if row["speed"] == "-" { "✗" } else { "✓" },
            if row["reweight"].as_bool().unwrap_or(false) { "✓" } else { "✗" },
            row["speed"].as_str().unwrap_or(""),
            row["loss"].as_str().unwrap_or(""),
            fmt_ms(am, asd, n),
            delta(da),
            fmt_ms(bm, bsd, n),
            delta(db),
        ));
        json_rows.push(json!({
            "name": row["name"], "speed": row["speed"], "reweight": row["reweight"], "loss": row["loss"],
            "paper": row["paper"],
            "ours": {"downstream_top1": {"mean": am, "std": asd, "values": a}, "v2a_r1": {"mean": bm, "std": bsd, "values": b}},
            "delta_vs_row1": {"downstream_top1": da, "v2a_r1": db},
            "wall_s": wall, "runs": dirs,
        }));
    }
    let steps_wall: f64 = rows.iter().map(|r| r.2).sum::<f64>() + base_wall;
    let ba: Vec<f64> = baseline.iter().map(|x| x.0).collect();
    let bb: Vec<f64> = baseline.iter().map(|x| x.1).collect();
    let (bam, basd) = mean_std(&ba);
    let (bbm, bbsd) = mean_std(&bb);
    md.push_str(&format!(
        "| — | — | random init | none | — | {} | — | {} | {base_wall:.0} |\n\nWall (s) per row: pre-training + evaluation, as measured when each step ran. \
         This invocation took {:.0} s ({:.1} min); the steps' measured times add up to {:.0} s ({:.1} min).\n",
        fmt_ms(bam, basd, n),
        fmt_ms(bbm, bbsd, n),
        total_wall,
        total_wall / 60.0,
        steps_wall,
        steps_wall / 60.0
    ));
    let out = json!({
        "table": args.table, "preset": args.preset, "device": args.device, "seeds": n,
        "dataset": preset["statement"], "svaclr_version": env!("CARGO_PKG_VERSION"),
        "rows": json_rows,
        "baseline": {"name": "random init", "ours": {"downstream_top1": {"mean": bam, "std": basd, "values": ba}, "v2a_r1": {"mean": bbm, "std": bbsd, "values": bb}}, "wall_s": base_wall},
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
