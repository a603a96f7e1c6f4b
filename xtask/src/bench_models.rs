//! `cargo xtask bench-models [--iters N] [--threads T] [--tch] [--case ARCH:PRESET:SHAPE]...`: encoder speed, Burn vs
//! PyTorch.
//!
//! Runs, case by case, the Rust bench (`cargo bench -p svaclr-models --bench models`, burn-flex, release-like `bench` profile,
//! `RAYON_NUM_THREADS=T`) and `scripts/bench/models_torch.py` (PyTorch CPU, `torch.set_num_threads(T)`) on the same
//! cases, then prints and writes `results/bench/models.{json,md}`: median ms of a forward pass (eval) and of a
//! forward+backward pass (train mode), both sides, and Burn/PyTorch ratios. Parameter counts of both sides must
//! agree (they are the same networks), or the task fails.
//!
//! `--tch` adds burn's LibTorch backend on the CPU (`--device tch-cpu`, `OMP_NUM_THREADS=T`) as a third column: the
//! bench is then built with `--features svaclr-models/tch` against the torch venv (a release build of Burn with
//! LibTorch: several minutes the first time).

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{torch, util};

const DEFAULT_CASES: [&str; 4] = [
    "r2plus1d_18:tiny:2,3,8,64,64",
    "r2plus1d_18:full:2,3,8,64,64",
    "audio_resnet9:tiny:8,1,40,100",
    "audio_resnet9:full:8,1,40,100",
];
const DEFAULT_ITERS: usize = 5;
const DEFAULT_THREADS: usize = 2;
const TORCH_SCRIPT: &str = "scripts/bench/models_torch.py";

pub fn run(args: &[String]) -> Result<()> {
    let mut iters = DEFAULT_ITERS;
    let mut threads = DEFAULT_THREADS;
    let mut cases: Vec<String> = Vec::new();
    let mut tch = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().with_context(|| format!("bench-models: {name} needs a value"));
        match a.as_str() {
            "--iters" => iters = value("--iters")?.parse().context("bench-models: --iters takes a number")?,
            "--threads" => threads = value("--threads")?.parse().context("bench-models: --threads takes a number")?,
            "--case" => cases.push(value("--case")?),
            "--tch" => tch = true,
            other => bail!(
                "bench-models: unknown option '{other}' (expected --iters N, --threads T, --tch, --case ARCH:PRESET:SHAPE)"
            ),
        }
    }
    if cases.is_empty() {
        cases = DEFAULT_CASES.iter().map(|s| s.to_string()).collect();
    }
    let root = util::root();
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)?;
    let burn_json = work.join("models_burn.json");
    let torch_json = work.join("models_torch.json");

    let load = load_average();
    // Burn and PyTorch alternate case by case, so that a change in machine load skews both sides alike.
    let py = torch::python()?;
    let read = |p: &std::path::Path| -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let exe = build_bench(tch)?;
    let devices: &[&str] = if tch { &["flex", "tch-cpu"] } else { &["flex"] };
    let (mut burn, mut libtorch, mut torch) = (Vec::new(), Vec::new(), Vec::new());
    for case in &cases {
        for &device in devices {
            let mut bench = Command::new(&exe);
            bench.env("RAYON_NUM_THREADS", threads.to_string()).env("OMP_NUM_THREADS", threads.to_string());
            bench.args(["--case", case, "--iters", &iters.to_string(), "--device", device, "--json"]).arg(&burn_json);
            util::run(&mut bench)?;
            if device == "flex" { burn.extend(read(&burn_json)?) } else { libtorch.extend(read(&burn_json)?) }
        }
        let mut t = Command::new(&py);
        t.arg(root.join(TORCH_SCRIPT)).args([
            "--case",
            case,
            "--iters",
            &iters.to_string(),
            "--threads",
            &threads.to_string(),
            "--json",
        ]);
        t.arg(&torch_json);
        util::run(&mut t)?;
        torch.extend(read(&torch_json)?);
    }
    let mut rows = Vec::new();
    for case in &cases {
        let find = |v: &[Value]| v.iter().find(|r| r["case"] == case.as_str()).cloned();
        let (Some(b), Some(t)) = (find(&burn), find(&torch)) else { bail!("bench-models: no result for {case}") };
        if b["params"] != t["params"] {
            bail!(
                "bench-models: {case}: Burn has {} parameters, PyTorch {}: not the same network",
                b["params"],
                t["params"]
            );
        }
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let lt = find(&libtorch);
        let lt_ms = |k: &str| lt.as_ref().and_then(|r| r[k].as_f64());
        rows.push(json!({
            "tch_fwd_ms": lt_ms("fwd_ms"), "tch_fwd_bwd_ms": lt_ms("fwd_bwd_ms"),
            "case": case, "params": b["params"],
            "burn_fwd_ms": f(&b, "fwd_ms"), "torch_fwd_ms": f(&t, "fwd_ms"), "fwd_ratio": f(&b, "fwd_ms") / f(&t, "fwd_ms"),
            "burn_fwd_bwd_ms": f(&b, "fwd_bwd_ms"), "torch_fwd_bwd_ms": f(&t, "fwd_bwd_ms"),
            "fwd_bwd_ratio": f(&b, "fwd_bwd_ms") / f(&t, "fwd_bwd_ms"),
        }));
    }
    let torch_version = torch.first().and_then(|r| r["torch"].as_str()).unwrap_or("?").to_string();
    let md = table(&rows, iters, threads, &torch_version, &load, &load_average(), tch);
    print!("{md}");
    let out = root.join("results/bench");
    std::fs::create_dir_all(&out)?;
    let doc = json!({ "iters": iters, "threads": threads, "torch": torch_version, "tch": tch, "load_avg_start": load, "rows": rows });
    std::fs::write(out.join("models.json"), serde_json::to_string_pretty(&doc)?)?;
    std::fs::write(out.join("models.md"), &md)?;
    eprintln!("bench-models: wrote results/bench/models.{{json,md}}");
    Ok(())
}

/// Build the Rust bench once (`bench` profile) and return its executable, so that the timed runs call it directly
/// and never wait for cargo's build lock between cases.
fn build_bench(tch: bool) -> Result<std::path::PathBuf> {
    let features = tch.then_some("svaclr-models/tch");
    let mut cmd = torch::cargo_for_features(features)?;
    cmd.args([
        "bench",
        "-p",
        "svaclr-models",
        "--bench",
        "models",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    util::bench_executable(cmd, "models")
}

/// The 1-minute load average (Linux), to judge how busy the machine was; "?" elsewhere.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn table(
    rows: &[Value],
    iters: usize,
    threads: usize,
    torch: &str,
    load_start: &str,
    load_end: &str,
    tch: bool,
) -> String {
    let mut s = format!(
        "Encoder speed, median of {iters} after 1 warm-up, {threads} threads: burn-flex (bench profile){} vs PyTorch {torch} CPU.\n\
         Machine load average (1 min): {load_start} at start, {load_end} at end.\n\
         fwd = eval-mode forward; fwd+bwd = train-mode forward + backward of sum(features). ratio = Burn (flex) / PyTorch.\n\n",
        if tch { " and burn's LibTorch backend (tch-cpu)" } else { "" }
    );
    let (tch_fwd, tch_bwd) = if tch { (" burn tch-cpu fwd ms |", " burn tch-cpu fwd+bwd ms |") } else { ("", "") };
    s.push_str(&format!(
        "| case (arch:preset:input) | params | Burn fwd ms |{tch_fwd} PyTorch fwd ms | ratio | Burn fwd+bwd ms |{tch_bwd} PyTorch fwd+bwd ms | ratio |\n"
    ));
    s.push_str(if tch { "|---|---|---|---|---|---|---|---|---|---|\n" } else { "|---|---|---|---|---|---|---|---|\n" });
    for r in rows {
        let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let cell = |k: &str| if tch { format!(" {:.1} |", n(k)) } else { String::new() };
        s.push_str(&format!(
            "| {} | {} | {:.1} |{} {:.1} | {:.2} | {:.1} |{} {:.1} | {:.2} |\n",
            r["case"].as_str().unwrap_or("?"),
            r["params"],
            n("burn_fwd_ms"),
            cell("tch_fwd_ms"),
            n("torch_fwd_ms"),
            n("fwd_ratio"),
            n("burn_fwd_bwd_ms"),
            cell("tch_fwd_bwd_ms"),
            n("torch_fwd_bwd_ms"),
            n("fwd_bwd_ratio"),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tch_columns_appear_with_tch_only() {
        let row = json!({"case": "r3d_18:tiny:1,3,8,32,32", "params": 10, "burn_fwd_ms": 1.0, "torch_fwd_ms": 2.0,
            "fwd_ratio": 0.5, "burn_fwd_bwd_ms": 3.0, "torch_fwd_bwd_ms": 4.0, "fwd_bwd_ratio": 0.75,
            "tch_fwd_ms": 7.5, "tch_fwd_bwd_ms": 8.5});
        let with = table(std::slice::from_ref(&row), 5, 2, "2.9.0", "0.1", "0.2", true);
        let without = table(&[row], 5, 2, "2.9.0", "0.1", "0.2", false);
        assert!(with.contains("burn tch-cpu fwd ms") && with.contains("| 7.5 |") && with.contains("| 8.5 |"), "{with}");
        assert!(!without.contains("tch-cpu") && !without.contains("7.5"), "{without}");
        for t in [&with, &without] {
            let cols: Vec<usize> = t.lines().filter(|l| l.starts_with('|')).map(|l| l.matches('|').count()).collect();
            assert!(cols.iter().all(|&c| c == cols[0]), "ragged table:\n{t}");
        }
    }
}
