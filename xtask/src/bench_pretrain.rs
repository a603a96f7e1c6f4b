//! `cargo xtask bench pretrain [--tch] [--no-e2e] [--quick] [--steps N] [--warmup N] [--rounds N] [--config FILE]`:
//! pre-training throughput and peak memory, Burn (flex, and LibTorch with `--tch`) vs PyTorch, on the CPU preset.
//!
//! 1. Builds the Rust bench (`cargo bench -p svaclr-train --bench pretrain`, `bench` profile; with `--tch` also
//!    `--features tch` against the torch venv's LibTorch) and runs it with `RAYON_NUM_THREADS=2` on flex and
//!    `OMP_NUM_THREADS=2` on `tch-cpu`: the training step of `svaclr pretrain` on synthetic in-memory batches of the
//!    config's shape (default `configs/pretrain/synth_s14.json`: 32 clips x 2 views, 8x32x32 video, 40x51 log-mel,
//!    the tiny R(2+1)D-18 and audio ResNet-9 with 64-wide projectors, InfoNCE, SGD).
//!    In the first round each Burn side also runs the whole loop of `svaclr pretrain` on generated SynthAV clips
//!    (`--e2e`, unless `--no-e2e`): loop clips/s over wall time, and its ratio to the same run's step-only rate.
//! 2. Runs `scripts/bench/pretrain_torch.py` with the torch venv (`torch.set_num_threads(2)`, `OMP_NUM_THREADS=2`),
//!    which reads the Rust side's JSON (shapes, model, loss, optimiser), builds the same network from torchvision's
//!    blocks, checks the parameter count, and trains it on inputs of the same shapes.
//! 3. Repeats both, alternating, `--rounds` times (default 2) and keeps each side's best round: the machine may be
//!    shared, and a process slowed down by other work measures the machine, not the code.
//! 4. Prints a table and writes `results/bench/pretrain.{json,md}` (`pretrain-<config stem>.{json,md}` for another
//!    `--config`, such as `configs/bench/paper_size.json`, the paper's network size): steady-state clips/s (batch
//!    size over the median step time after the warm-up), every round's clips/s, resident memory before the first
//!    step and at its peak (`VmRSS` and `VmHWM` of each measured process), the loop's rates, the Burn / PyTorch
//!    ratios, and the 1-minute load average before and after each shown round.
//!
//! `--quick`: 1 warm-up and 3 measured steps, 1 round (about a minute); default 2, 8 and 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{torch, util};

/// Threads for both sides (`RAYON_NUM_THREADS`, `torch.set_num_threads`).
const THREADS: usize = 2;
const DEFAULT_CONFIG: &str = "configs/pretrain/synth_s14.json";
const TORCH_SCRIPT: &str = "scripts/bench/pretrain_torch.py";

#[derive(Debug, PartialEq)]
struct Options {
    quick: bool,
    tch: bool,
    e2e: bool,
    warmup: usize,
    steps: usize,
    rounds: usize,
    config: String,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o =
        Options { quick: false, tch: false, e2e: true, warmup: 2, steps: 8, rounds: 2, config: DEFAULT_CONFIG.into() };
    let (mut steps, mut warmup, mut rounds) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value =
            |name: &str| it.next().cloned().with_context(|| format!("bench pretrain: {name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--tch" => o.tch = true,
            "--no-e2e" => o.e2e = false,
            "--steps" => {
                steps = Some(value("--steps")?.parse::<usize>().context("bench pretrain: --steps takes a number")?)
            }
            "--warmup" => {
                warmup = Some(value("--warmup")?.parse::<usize>().context("bench pretrain: --warmup takes a number")?)
            }
            "--rounds" => {
                rounds = Some(value("--rounds")?.parse::<usize>().context("bench pretrain: --rounds takes a number")?)
            }
            "--config" => o.config = value("--config")?,
            other => bail!(
                "bench pretrain: unknown option '{other}' (expected --tch, --no-e2e, --quick, --steps N, --warmup N, --rounds N, --config FILE)"
            ),
        }
    }
    if o.quick {
        (o.warmup, o.steps, o.rounds) = (1, 3, 1);
    }
    o.rounds = rounds.unwrap_or(o.rounds);
    o.steps = steps.unwrap_or(o.steps);
    o.warmup = warmup.unwrap_or(o.warmup);
    if o.steps == 0 || o.rounds == 0 {
        bail!("bench pretrain: --steps and --rounds must be at least 1");
    }
    Ok(o)
}

/// The 1-minute load average (Linux), to judge how busy the machine was; "?" elsewhere.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Build the Rust bench once (`bench` profile) and return its executable, so that the timed run is not a cargo
/// invocation.
fn build_bench(tch: bool) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args([
        "bench",
        "-p",
        "svaclr-train",
        "--bench",
        "pretrain",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    if tch {
        torch::with_torch_env(&mut cmd)?;
        cmd.args(["--features", "tch"]);
    }
    util::bench_executable(cmd, "pretrain")
}

fn read_json(p: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// One measured process of one side: its JSON report and the load average before and after it.
fn measure(cmd: &mut Command, json: &Path) -> Result<Value> {
    let before = load_average();
    util::run(cmd)?;
    let mut v = read_json(json)?;
    v["load_avg"] = json!([before, load_average()]);
    Ok(v)
}

/// Student's t quantile t(0.975, df) for df = 1..=30 (beyond: 1.96); for the 95 % interval of a few rounds.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Per round, this side's clips/s over PyTorch's of the same round (measured next to each other, so a drift of the
/// machine's speed hits both alike): the ratios, their mean and its 95 % t-interval (none for one round).
fn paired_ratio(burn: &[Value], torch: &[Value]) -> Value {
    let r: Vec<f64> = burn
        .iter()
        .zip(torch)
        .filter_map(|(b, t)| Some(b["clips_per_s"].as_f64()? / t["clips_per_s"].as_f64()?))
        .collect();
    if r.is_empty() {
        return Value::Null;
    }
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let interval = (r.len() > 1).then(|| {
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let half = T975.get(r.len() - 2).copied().unwrap_or(1.96) * sd / n.sqrt();
        [mean - half, mean + half]
    });
    json!({"ratios": r, "mean": mean, "ci95": interval})
}

/// The round with the highest clips/s (the least disturbed by other work on the machine).
fn best(rounds: &[Value]) -> Value {
    rounds
        .iter()
        .max_by(|a, b| {
            let f = |v: &Value| v["clips_per_s"].as_f64().unwrap_or(f64::NEG_INFINITY);
            f(a).total_cmp(&f(b))
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// A Burn side of the bench: its `--device` and the thread variable that sizes its pool.
struct BurnSide {
    device: &'static str,
    threads_var: &'static str,
}

const FLEX: BurnSide = BurnSide { device: "flex", threads_var: "RAYON_NUM_THREADS" };
const TCH: BurnSide = BurnSide { device: "tch-cpu", threads_var: "OMP_NUM_THREADS" };

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = util::root();
    let config = if Path::new(&o.config).is_absolute() { PathBuf::from(&o.config) } else { root.join(&o.config) };
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)?;
    let torch_json = work.join("pretrain_torch.json");
    let exe = build_bench(o.tch)?;
    let py = torch::python_if_ready();
    if py.is_none() {
        eprintln!(
            "bench pretrain: no torch venv at {} (cargo xtask setup --torch); the PyTorch row stays empty",
            torch::venv_path().display()
        );
    }
    let sides: Vec<BurnSide> = if o.tch { vec![FLEX, TCH] } else { vec![FLEX] };
    let (warmup, steps, threads) = (o.warmup.to_string(), o.steps.to_string(), THREADS.to_string());
    // The sides alternate round by round, so that a change in machine load skews them alike.
    let mut burn_rounds: Vec<Vec<Value>> = sides.iter().map(|_| Vec::new()).collect();
    let mut torch_rounds = Vec::new();
    let mut spec_json = None;
    for round in 0..o.rounds {
        for (side, rounds) in sides.iter().zip(&mut burn_rounds) {
            let json = work.join(format!("pretrain_burn_{}.json", side.device));
            let mut cmd = Command::new(&exe);
            cmd.env("RAYON_NUM_THREADS", &threads).env(side.threads_var, &threads);
            cmd.args(["--device", side.device]).arg("--config").arg(&config);
            cmd.args(["--warmup", &warmup, "--steps", &steps, "--json"]).arg(&json);
            if o.e2e && round == 0 {
                cmd.arg("--e2e").arg(work.join("e2e"));
            }
            rounds.push(measure(&mut cmd, &json)?);
            spec_json.get_or_insert(json);
        }
        if let (Some(py), Some(spec)) = (&py, &spec_json) {
            let mut cmd = Command::new(py);
            cmd.env("OMP_NUM_THREADS", &threads).arg(root.join(TORCH_SCRIPT)).arg("--spec").arg(spec);
            cmd.args(["--warmup", &warmup, "--steps", &steps, "--threads", &threads, "--json"]).arg(&torch_json);
            torch_rounds.push(measure(&mut cmd, &torch_json)?);
        }
    }
    let torch = best(&torch_rounds);
    let n = |v: &Value, k: &str| v[k].as_f64();
    let ratio = |burn: &Value, k: &str| Some(n(burn, k)? / n(&torch, k)?);
    let burn: Vec<Value> = sides
        .iter()
        .zip(&burn_rounds)
        .map(|(side, rounds)| {
            let mut b = best(rounds);
            b["e2e"] = rounds.first().map_or(Value::Null, |r| r["e2e"].clone());
            json!({
                "device": side.device,
                "best": b,
                "rounds": rounds,
                "ratio_clips_per_s": ratio(&b, "clips_per_s"),
                "paired_ratio": paired_ratio(rounds, &torch_rounds),
                "ratio_peak_rss": ratio(&b, "peak_rss_mib"),
            })
        })
        .collect();
    let first = &burn[0]["best"];
    let config_rel = config.strip_prefix(&root).unwrap_or(&config).display().to_string();
    let doc = json!({
        "config": config_rel,
        "threads": THREADS,
        "warmup": o.warmup,
        "steps": o.steps,
        "rounds": o.rounds,
        "batch_size": first["batch_size"],
        "views": first["views"],
        "video_shape": first["video_shape"],
        "audio_shape": first["audio_shape"],
        "params": first["params"],
        "cpu": cpu_name(),
        "burn": burn,
        "torch": torch,
        "torch_rounds": torch_rounds,
    });
    let md = table(&doc);
    print!("{md}");
    let out = root.join("results/bench");
    std::fs::create_dir_all(&out)?;
    let stem = output_stem(&o.config);
    std::fs::write(out.join(format!("{stem}.json")), serde_json::to_string_pretty(&doc)? + "\n")?;
    std::fs::write(out.join(format!("{stem}.md")), &md)?;
    eprintln!("bench pretrain: wrote results/bench/{stem}.{{json,md}}");
    Ok(())
}

/// The results' file name without extension: `pretrain` for the CPU preset, `pretrain-<config's stem>` for any
/// other config, so a bench at another size never overwrites the preset's table.
fn output_stem(config: &str) -> String {
    if config == DEFAULT_CONFIG {
        return "pretrain".into();
    }
    let stem = Path::new(config).file_stem().and_then(|s| s.to_str()).unwrap_or("config");
    format!("pretrain-{stem}")
}

/// A rate with one decimal from 10 up, two from 1, three below (two significant digits or more).
fn rate_digits(x: f64) -> String {
    let d = if x >= 10.0 {
        1
    } else if x >= 1.0 {
        2
    } else {
        3
    };
    format!("{x:.d$}")
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn table(doc: &Value) -> String {
    let f = |v: &Value, d: usize| v.as_f64().map_or("—".to_string(), |x| format!("{x:.d$}"));
    // clips/s with at least two significant digits: 0.27 clips/s at the paper's size, 70 at the CPU preset's.
    let rate = |v: &Value| v.as_f64().map_or("—".to_string(), rate_digits);
    let row = |name: &str, v: &Value, rounds: &Value| {
        let growth = match (v["peak_rss_mib"].as_f64(), v["rss_before_mib"].as_f64()) {
            (Some(p), Some(b)) => format!("{:.0}", p - b),
            _ => "—".into(),
        };
        let rounds: Vec<String> =
            rounds.as_array().map(|r| r.iter().map(|x| rate(&x["clips_per_s"])).collect()).unwrap_or_default();
        let e2e = &v["e2e"];
        format!(
            "| {name} | {} | {} | {} | {} | {} | {growth} | {} | {} | {} | {} -> {} |\n",
            rate(&v["clips_per_s"]),
            if rounds.is_empty() { "—".to_string() } else { rounds.join(", ") },
            f(&v["median_step_ms"], 0),
            f(&v["rss_before_mib"], 0),
            f(&v["peak_rss_mib"], 0),
            rate(&e2e["loop_clips_per_s"]),
            f(&e2e["loop_over_step"], 2),
            f(&e2e["loop_over_bench_step"], 2),
            v["load_avg"][0].as_str().unwrap_or("?"),
            v["load_avg"][1].as_str().unwrap_or("?"),
        )
    };
    let torch = &doc["torch"];
    let torch_name = torch["torch"].as_str().map_or("PyTorch (not run)".to_string(), |v| format!("PyTorch {v}"));
    let mut s = format!(
        "Pre-training step, {config}: {b} clips x {v} views per step (video {vs}, audio {aus}), {p} parameters, \
         synthetic in-memory batches, {cpu}; {t} threads per side; per process {w} warm-up steps then {n} measured \
         steps; {r} round(s) per side, alternating, the best shown.\n\
         clips/s = batch size / median measured step time; memory = VmRSS before the first step and VmHWM (peak) \
         of the measured process; loop = the whole `svaclr pretrain` loop (data loader, step, logging, checkpoints) \
         on generated SynthAV clips in the first round: its clips/s over wall time, loop / its own steps' rate (the \
         wait for data), and loop / the in-memory step of the same process (the wait and the cores the loader's \
         threads take from the step); load avg = 1-minute load average before -> after the shown round.\n\n\
         | side | clips/s | clips/s per round | median step ms | RSS before (MiB) | peak RSS (MiB) | peak - before (MiB) \
         | loop clips/s | loop / its steps | loop / in-memory step | load avg |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        config = doc["config"].as_str().unwrap_or("?"),
        b = doc["batch_size"],
        v = doc["views"],
        vs = doc["video_shape"],
        aus = doc["audio_shape"],
        p = doc["params"],
        cpu = doc["cpu"].as_str().unwrap_or("?"),
        t = doc["threads"],
        w = doc["warmup"],
        n = doc["steps"],
        r = doc["rounds"],
    );
    let burn = doc["burn"].as_array().cloned().unwrap_or_default();
    for side in &burn {
        s.push_str(&row(&format!("Burn ({})", side["device"].as_str().unwrap_or("?")), &side["best"], &side["rounds"]));
    }
    s.push_str(&row(&torch_name, torch, &doc["torch_rounds"]));
    s.push('\n');
    for side in &burn {
        let paired = &side["paired_ratio"];
        let per_round = match (paired["mean"].as_f64(), paired["ci95"].as_array()) {
            (Some(m), Some(ci)) => format!(
                "; per round (paired with PyTorch's round) {m:.2} [{}, {}] (mean, 95 % t-interval over {} rounds)",
                f(&ci[0], 2),
                f(&ci[1], 2),
                paired["ratios"].as_array().map_or(0, Vec::len)
            ),
            (Some(m), None) => format!("; one round: {m:.2}"),
            _ => String::new(),
        };
        s.push_str(&format!(
            "Burn ({}) / PyTorch: throughput of the best rounds {}{per_round} (above 1: Burn is faster); peak memory {}.\n",
            side["device"].as_str().unwrap_or("?"),
            f(&side["ratio_clips_per_s"], 2),
            f(&side["ratio_peak_rss"], 2)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let o = parse(&s(&[])).expect("defaults");
        assert_eq!((o.quick, o.warmup, o.steps, o.rounds, o.config.as_str()), (false, 2, 8, 2, DEFAULT_CONFIG));
        assert_eq!((o.tch, o.e2e), (false, true));
        let o = parse(&s(&["--tch", "--no-e2e"])).expect("tch");
        assert_eq!((o.tch, o.e2e), (true, false));
        let o = parse(&s(&["--quick"])).expect("quick");
        assert_eq!((o.warmup, o.steps, o.rounds), (1, 3, 1));
        let o = parse(&s(&["--quick", "--steps", "5", "--rounds", "3"])).expect("quick with steps");
        assert_eq!((o.warmup, o.steps, o.rounds), (1, 5, 3));
        assert!(parse(&s(&["--steps", "0"])).is_err());
        assert!(parse(&s(&["--rounds", "0"])).is_err());
        assert!(parse(&s(&["--steps"])).is_err());
        assert!(parse(&s(&["--fast"])).is_err());
    }

    /// Ratios 2.5 and 1.9: mean 2.2, sd 0.4243, half-width 12.706 * 0.4243 / sqrt(2) = 3.812.
    #[test]
    fn paired_ratio_is_a_t_interval_over_rounds() {
        let b = [json!({"clips_per_s": 20.0}), json!({"clips_per_s": 19.0})];
        let t = [json!({"clips_per_s": 8.0}), json!({"clips_per_s": 10.0})];
        let p = paired_ratio(&b, &t);
        let ci = p["ci95"].as_array().expect("interval");
        assert!((p["mean"].as_f64().unwrap_or(0.0) - 2.2).abs() < 1e-12);
        assert!((ci[0].as_f64().unwrap_or(0.0) - (2.2 - 3.8123)).abs() < 1e-3, "{p}");
        assert!((ci[1].as_f64().unwrap_or(0.0) - (2.2 + 3.8123)).abs() < 1e-3, "{p}");
        assert_eq!(paired_ratio(&b, &[]), Value::Null);
    }

    #[test]
    fn rates_keep_two_significant_digits() {
        assert_eq!(rate_digits(71.54), "71.5");
        assert_eq!(rate_digits(5.304), "5.30");
        assert_eq!(rate_digits(0.2714), "0.271");
    }

    #[test]
    fn other_configs_get_their_own_results_file() {
        assert_eq!(output_stem(DEFAULT_CONFIG), "pretrain");
        assert_eq!(output_stem("configs/bench/paper_size.json"), "pretrain-paper_size");
        assert_eq!(output_stem("/abs/x.json"), "pretrain-x");
    }

    #[test]
    fn best_round_is_the_fastest() {
        let rounds = vec![json!({"clips_per_s": 9.0}), json!({"clips_per_s": 21.0}), json!({"clips_per_s": 20.0})];
        assert_eq!(best(&rounds)["clips_per_s"], 21.0);
        assert_eq!(best(&[]), Value::Null);
    }

    #[test]
    fn table_has_every_side_the_loop_and_the_ratios() {
        let doc = json!({
            "config": "c.json", "batch_size": 64, "views": 2, "video_shape": [64, 3, 8, 32, 32],
            "audio_shape": [64, 1, 40, 51], "params": 10, "cpu": "cpu", "threads": 2, "warmup": 1, "steps": 3,
            "rounds": 2,
            "burn": [
                {"device": "flex",
                 "best": {"clips_per_s": 20.0, "median_step_ms": 3200.0, "rss_before_mib": 30.0, "peak_rss_mib": 700.0,
                          "load_avg": ["1.0", "1.2"],
                          "e2e": {"loop_clips_per_s": 18.0, "loop_over_step": 0.95, "loop_over_bench_step": 0.9}},
                 "rounds": [{"clips_per_s": 20.0}, {"clips_per_s": 19.0}],
                 "ratio_clips_per_s": 2.0, "ratio_peak_rss": 0.54,
                 "paired_ratio": paired_ratio(&[json!({"clips_per_s": 20.0}), json!({"clips_per_s": 19.0})],
                                              &[json!({"clips_per_s": 8.0}), json!({"clips_per_s": 10.0})])},
                {"device": "tch-cpu",
                 "best": {"clips_per_s": 9.0, "median_step_ms": 7111.0, "rss_before_mib": 600.0, "peak_rss_mib": 900.0,
                          "load_avg": ["1.1", "1.0"], "e2e": null},
                 "rounds": [{"clips_per_s": 9.0}, {"clips_per_s": 8.5}],
                 "ratio_clips_per_s": 0.9, "ratio_peak_rss": 0.69,
                 "paired_ratio": paired_ratio(&[json!({"clips_per_s": 9.0})], &[json!({"clips_per_s": 10.0})])},
            ],
            "torch": {"torch": "2.9.0", "clips_per_s": 10.0, "median_step_ms": 6400.0, "rss_before_mib": 690.0,
                      "peak_rss_mib": 1300.0, "load_avg": ["1.2", "1.1"]},
            "torch_rounds": [{"clips_per_s": 8.0}, {"clips_per_s": 10.0}],
        });
        let t = table(&doc);
        assert!(
            t.contains("| Burn (flex) | 20.0 | 20.0, 19.0 | 3200 | 30 | 700 | 670 | 18.0 | 0.95 | 0.90 | 1.0 -> 1.2 |"),
            "{t}"
        );
        assert!(
            t.contains("| Burn (tch-cpu) | 9.00 | 9.00, 8.50 | 7111 | 600 | 900 | 300 | — | — | — | 1.1 -> 1.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| PyTorch 2.9.0 | 10.0 | 8.00, 10.0 | 6400 | 690 | 1300 | 610 | — | — | — | 1.2 -> 1.1 |"),
            "{t}"
        );
        assert!(t.contains("Burn (flex) / PyTorch: throughput of the best rounds 2.00; per round"), "{t}");
        assert!(
            t.contains(
                "per round (paired with PyTorch's round) 2.20 [-1.61, 6.01] (mean, 95 % t-interval over 2 rounds)"
            ),
            "{t}"
        );
        assert!(t.contains("Burn (tch-cpu) / PyTorch: throughput of the best rounds 0.90; one round: 0.90 (above 1: Burn is faster); peak memory 0.69"), "{t}");
    }
}
