//! `cargo xtask bench-gate [--record]`: the loss kernels' instruction counts against the committed baseline.
//!
//! 1. Builds the gungraun benchmarks `crates/svaclr-loss/benches/icount` with `cargo test --workspace --features
//!    <CI's> --bench icount --no-run`: the dev profile and exactly CI's features, so it reuses the workspace test
//!    build (no second build of Burn; only the bench file is compiled).
//! 2. Runs them under callgrind with `gungraun-runner` (one Valgrind process per benchmark, as many at once as there
//!    are cores), LibTorch stubbed out ([`crate::libtorch_stub`]), and reads gungraun's JSON summaries.
//! 3. Compares each instruction count (Ir) with `crates/svaclr-loss/benches/icount/baseline.json`: a count above its
//!    baseline by more than [`TOLERANCE_SHARE`] and [`TOLERANCE_IR`] fails, one line per case naming kernel, path, pass, shape and both counts;
//!    so does a case missing on either side. The cache figures and estimated cycles are shown, never gated.
//!
//! `--record` writes the baseline from this run instead: the explicit way to accept an intended change (or a new
//! toolchain, see docs/loss.md).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{libtorch_stub, test, torch, util};

/// The committed baseline, relative to the workspace root.
pub const BASELINE: &str = "crates/svaclr-loss/benches/icount/baseline.json";
/// The bench target.
const BENCH: &str = "icount";
/// A count fails when it grows over its baseline by more than this share *and* by more than [`TOLERANCE_IR`]
/// instructions. Measured (docs/loss.md, "Instruction-count gate"): every forward case gave the same count in every
/// run and after a rebuild; the composed fwd_bwd cases vary by up to 9,400 instructions from run to run (Burn's
/// autodiff graph keeps hash maps with random seeds), up to 0.1% of the smallest (N = 64) and at most 0.012% of the
/// others. So 25,000 instructions is 2.7x the largest spread, and 0.1% is at least 8x the relative spread of every
/// case above 25 M instructions; an extra sweep over the logits cost 1.1-6.5% in the fused cases.
pub const TOLERANCE_SHARE: f64 = 0.001;
/// See [`TOLERANCE_SHARE`].
pub const TOLERANCE_IR: u64 = 25_000;

/// One benchmark's figures from gungraun's summary.
#[derive(Clone, Debug, PartialEq)]
struct Measurement {
    /// `<kernel>_<path>_<pass>/<shape>`, e.g. `soft_info_nce_fused_fwd_bwd/n512_v2_d128`.
    key: String,
    ir: u64,
    estimated_cycles: u64,
    l1_hits: u64,
    ll_hits: u64,
    ram_hits: u64,
}

/// "soft_info_nce fused fwd_bwd n512_v2_d128" from a key (function name `<kernel>_<path>_<pass>`, then the shape).
fn describe(key: &str) -> String {
    let (function, shape) = key.split_once('/').unwrap_or((key, "?"));
    for path in ["_fused_", "_composed_"] {
        if let Some((kernel, pass)) = function.split_once(path) {
            return format!("{kernel} {} {pass} {shape}", path.trim_matches('_'));
        }
    }
    format!("{function} {shape}")
}

/// A [`Measurement`] from one line of `--output-format=json` (gungraun's summary schema).
fn parse_summary(line: &str) -> Result<Measurement> {
    let v: Value = serde_json::from_str(line).context("gungraun printed a line that is not JSON")?;
    let function = v["function_name"].as_str().context("summary without function_name")?;
    let id = v["id"].as_str().context("summary without id")?;
    let metrics = &v["profiles"][0]["data"]["total"]["metrics"];
    let get = |name: &str| {
        metrics[name]["values"]["new"].as_u64().with_context(|| format!("{function}/{id}: no callgrind metric {name}"))
    };
    Ok(Measurement {
        key: format!("{function}/{id}"),
        ir: get("Ir")?,
        estimated_cycles: get("EstimatedCycles")?,
        l1_hits: get("L1hits")?,
        ll_hits: get("LLhits")?,
        ram_hits: get("RamHits")?,
    })
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a comparison found: failures (each one line) and improvements beyond the tolerance (notes).
#[derive(Debug, Default)]
struct Verdict {
    failures: Vec<String>,
    improvements: Vec<String>,
}

/// Whether `ir` is above `base` by more than both tolerances.
fn regressed(ir: u64, base: u64, share: f64, instructions: u64) -> bool {
    ir > base.saturating_add(instructions) && (ir - base) as f64 > share * base as f64
}

fn compare(measured: &[Measurement], baseline: &BTreeMap<String, u64>, share: f64, instructions: u64) -> Verdict {
    let mut v = Verdict::default();
    for m in measured {
        let Some(&base) = baseline.get(&m.key) else {
            v.failures.push(format!(
                "icount: NEW {}: {} instructions, not in the baseline (record it: cargo xtask bench-gate --record)",
                describe(&m.key),
                thousands(m.ir)
            ));
            continue;
        };
        let line = format!(
            "{}: {} -> {} instructions ({:+.2}%; limit +{:.2}% and +{})",
            describe(&m.key),
            thousands(base),
            thousands(m.ir),
            100.0 * (m.ir as f64 - base as f64) / base.max(1) as f64,
            100.0 * share,
            thousands(instructions)
        );
        if regressed(m.ir, base, share, instructions) {
            v.failures.push(format!("icount: REGRESSION {line}"));
        } else if regressed(base, m.ir, share, instructions) {
            v.improvements.push(format!("icount: improvement {line}"));
        }
    }
    for key in baseline.keys().filter(|k| !measured.iter().any(|m| &m.key == *k)) {
        v.failures.push(format!(
            "icount: MISSING {}: in the baseline but not measured (a removed benchmark: re-record)",
            describe(key)
        ));
    }
    v
}

/// gungraun's version in Cargo.lock: the runner must be the same.
pub fn gungraun_version() -> Result<String> {
    let lock = fs::read_to_string(util::root().join("Cargo.lock")).context("reading Cargo.lock")?;
    lock_version(&lock, "gungraun").context("Cargo.lock has no gungraun package")
}

fn lock_version(lock: &str, package: &str) -> Option<String> {
    let start = lock.find(&format!("\nname = \"{package}\"\n"))?;
    let rest = &lock[start..];
    let line = rest.lines().find(|l| l.starts_with("version = "))?;
    Some(line.trim_start_matches("version = ").trim_matches('"').to_string())
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `$HOME/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from);
    home.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"))).map(|h| h.join("bin"))
}

/// The installed runner's version, if any (in cargo's bin folder, else on PATH).
fn runner_version() -> Option<String> {
    let runner = cargo_bin_dir().map(|d| d.join("gungraun-runner")).filter(|p| p.exists());
    let out = Command::new(runner.unwrap_or_else(|| "gungraun-runner".into())).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.split_whitespace().nth(1)?.to_string())
}

/// Install `gungraun-runner` at the version of the gungraun crate unless it is there (a few minutes, once).
pub fn ensure_runner() -> Result<()> {
    let want = gungraun_version()?;
    if runner_version().as_deref() == Some(want.as_str()) {
        eprintln!("setup: gungraun-runner {want} present");
        return Ok(());
    }
    eprintln!("setup: installing gungraun-runner {want} (cargo install; a few minutes, once)");
    util::run(util::cargo().args(["install", "gungraun-runner", "--locked", "--version", &want]))
}

/// Build the bench with `features` (CI's, or those of the `cargo xtask test` run it is part of, so that it reuses
/// that build) in the dev profile and return its executable.
fn build(features: &str) -> Result<PathBuf> {
    let mut cmd = torch::cargo_for_features(Some(features))?;
    cmd.args(["test", "--workspace", "--features", features, "--bench", BENCH, "--no-run"]);
    cmd.arg("--message-format=json-render-diagnostics");
    util::bench_executable(cmd, BENCH)
}

/// Run every benchmark under callgrind and return the figures, printing one line per benchmark as it finishes.
fn measure(exe: &Path) -> Result<Vec<Measurement>> {
    let home = util::target_dir().join("gungraun");
    let stubs = libtorch_stub::build(exe, &home.join("libtorch-stub"))?;
    // The bench executable starts `gungraun-runner` from PATH: cargo's bin folder first.
    let mut path = cargo_bin_dir().map_or_else(std::ffi::OsString::new, |d| {
        let mut p = d.into_os_string();
        p.push(":");
        p
    });
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cmd = Command::new(exe);
    cmd.current_dir(util::root()).env("PATH", path).env("CARGO_PKG_NAME", "svaclr-loss").args([
        "--bench".to_string(),
        "--output-format=json".to_string(),
        format!("--parallel={jobs}"),
        format!("--home={}", home.display()),
        format!("--workspace-root={}", util::root().display()),
    ]);
    if let Some(dir) = &stubs {
        // gungraun clears the benchmarks' environment; this one variable is passed on.
        cmd.env("LD_LIBRARY_PATH", dir).arg("--envs=LD_LIBRARY_PATH");
    }
    eprintln!("$ {}", util::show(&cmd));
    let started = std::time::Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("cannot start {}", exe.display()))?;
    let stdout = child.stdout.take().context("no stdout from the benchmark")?;
    let mut out = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let m = parse_summary(&line)?;
        eprintln!("icount: {:<45} {:>15} Ir", describe(&m.key), thousands(m.ir));
        out.push(m);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "the instruction-count benchmarks failed ({status}); is gungraun-runner installed (cargo xtask setup --gate)?"
        );
    }
    eprintln!("icount: {} benchmarks in {:.0} s ({jobs} at a time)", out.len(), started.elapsed().as_secs_f64());
    Ok(out)
}

/// What the counts depend on besides the code: printed with a failure and stored in the baseline.
fn toolchain() -> Value {
    let first_line = |cmd: &mut Command| {
        cmd.output().ok().map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
    };
    let cpu = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("");
    let flags = cpu.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let simd: Vec<&str> =
        ["avx2", "fma", "avx512f"].into_iter().filter(|f| flags.split_whitespace().any(|x| x == *f)).collect();
    json!({
        "rustc": first_line(Command::new("rustc").arg("--version")),
        "valgrind": first_line(Command::new("valgrind").arg("--version")),
        "gungraun": gungraun_version().ok(),
        "cpu": model.trim(),
        "cpu_simd": simd.join(" "),
    })
}

fn table(measured: &[Measurement], baseline: &BTreeMap<String, u64>) -> String {
    let mut s = String::from(
        "| kernel path pass shape | baseline Ir | Ir | change | est. cycles | L1 hits | LL hits | RAM hits |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in measured {
        let base = baseline.get(&m.key);
        let change =
            base.map_or("new".into(), |&b| format!("{:+.3}%", 100.0 * (m.ir as f64 - b as f64) / b.max(1) as f64));
        s.push_str(&format!(
            "| {} | {} | {} | {change} | {} | {} | {} | {} |\n",
            describe(&m.key),
            base.map_or("—".into(), |&b| thousands(b)),
            thousands(m.ir),
            thousands(m.estimated_cycles),
            thousands(m.l1_hits),
            thousands(m.ll_hits),
            thousands(m.ram_hits),
        ));
    }
    s
}

fn read_baseline(path: &Path) -> Result<(BTreeMap<String, u64>, Value)> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("no baseline at {}; record one: cargo xtask bench-gate --record", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let mut counts = BTreeMap::new();
    for (key, b) in v["benchmarks"].as_object().with_context(|| format!("{}: no \"benchmarks\"", path.display()))? {
        counts.insert(key.clone(), b["ir"].as_u64().with_context(|| format!("{}: {key} has no ir", path.display()))?);
    }
    Ok((counts, v["toolchain"].clone()))
}

fn write_baseline(path: &Path, measured: &[Measurement]) -> Result<()> {
    let benchmarks: serde_json::Map<String, Value> = measured
        .iter()
        .map(|m| {
            (
                m.key.clone(),
                json!({
                    "ir": m.ir, "estimated_cycles": m.estimated_cycles,
                    "l1_hits": m.l1_hits, "ll_hits": m.ll_hits, "ram_hits": m.ram_hits,
                }),
            )
        })
        .collect();
    let v = json!({
        "about": "Instruction counts (callgrind, gungraun) of crates/svaclr-loss/benches/icount, one call each after an uncounted warm-up on a tiny problem; \
                  written by `cargo xtask bench-gate --record`, checked by `cargo xtask test` (docs/loss.md). Only \
                  ir is gated; the cache figures are for reading.",
        "toolchain": toolchain(),
        "benchmarks": benchmarks,
    });
    fs::write(path, serde_json::to_string_pretty(&v)? + "\n").with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: &[String]) -> Result<()> {
    let record = match args {
        [] => false,
        [a] if a == "--record" => true,
        _ => bail!("bench-gate: usage: cargo xtask bench-gate [--record]"),
    };
    // CI's features include `mpi` (Open MPI to build) and `tch` (the torch venv, made by the build's cargo command).
    crate::setup::run(&["--mpi".to_string(), "--gate".to_string()])?;
    gate(record, test::FEATURES)
}

/// Build, measure, then check against the baseline (or, with `record`, rewrite it). Needs `setup --gate` first.
pub fn gate(record: bool, features: &str) -> Result<()> {
    let exe = build(features)?;
    let measured = measure(&exe)?;
    let path = util::root().join(BASELINE);
    if record {
        write_baseline(&path, &measured)?;
        eprintln!("icount: recorded {} benchmarks in {BASELINE}; commit it with the change it accepts", measured.len());
        return Ok(());
    }
    let (baseline, recorded_with) = read_baseline(&path)?;
    print!("{}", table(&measured, &baseline));
    let verdict = compare(&measured, &baseline, TOLERANCE_SHARE, TOLERANCE_IR);
    for l in &verdict.improvements {
        eprintln!("{l}");
    }
    if !verdict.improvements.is_empty() {
        eprintln!("icount: counts fell beyond the tolerance: lock the gain in with cargo xtask bench-gate --record");
    }
    if verdict.failures.is_empty() {
        eprintln!(
            "icount: {} benchmarks, none above {BASELINE} by more than {:.2}% and {} instructions",
            measured.len(),
            100.0 * TOLERANCE_SHARE,
            thousands(TOLERANCE_IR)
        );
        return Ok(());
    }
    for l in &verdict.failures {
        eprintln!("{l}");
    }
    let now = toolchain();
    if now != recorded_with {
        // Counts are comparable only on the toolchain and CPU kind the baseline was recorded with (gemm's blocking
        // follows the cache sizes): elsewhere the growth is reported, not gated.
        eprintln!(
            "icount: not gating: the baseline was recorded with {recorded_with}, this run is {now}; counts compare only \
             on the same toolchain and CPU kind: re-record there (docs/loss.md)"
        );
        return Ok(());
    }
    bail!(
        "bench-gate: {} instruction-count failure(s) against {BASELINE}; if intended, accept with cargo xtask bench-gate --record",
        verdict.failures.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, ir: u64) -> Measurement {
        Measurement { key: key.into(), ir, estimated_cycles: 0, l1_hits: 0, ll_hits: 0, ram_hits: 0 }
    }

    #[test]
    fn keys_read_as_kernel_path_pass_shape() {
        assert_eq!(describe("soft_info_nce_fused_fwd_bwd/n512_v2_d128"), "soft_info_nce fused fwd_bwd n512_v2_d128");
        assert_eq!(describe("info_nce_composed_fwd/n64_v2_d64"), "info_nce composed fwd n64_v2_d64");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn growth_beyond_both_tolerances_fails_with_both_counts() {
        let key = "info_nce_fused_fwd/n64_v2_d64";
        let base = BTreeMap::from([(key.to_string(), 10_000_000)]);
        let run = |ir| compare(&[m(key, ir)], &base, 0.001, 25_000);
        let within = run(10_009_000); // +0.09%
        assert!(within.failures.is_empty() && within.improvements.is_empty(), "{within:?}");
        let over = run(10_030_000); // +0.3%, +30,000
        assert_eq!(
            over.failures,
            ["icount: REGRESSION info_nce fused fwd n64_v2_d64: 10,000,000 -> 10,030,000 instructions (+0.30%; limit \
              +0.10% and +25,000)"]
        );
        let better = run(9_900_000);
        assert!(better.failures.is_empty() && better.improvements.len() == 1, "{better:?}");
        // Small counts: the share alone is noise, the instruction margin decides.
        assert!(!regressed(1_020_000, 1_000_000, 0.001, 25_000)); // +2%, +20,000
        assert!(regressed(1_030_000, 1_000_000, 0.001, 25_000));
        // Large counts: the margin alone is noise, the share decides.
        assert!(!regressed(300_200_000, 300_000_000, 0.001, 25_000)); // +0.07%
        assert!(regressed(300_400_000, 300_000_000, 0.001, 25_000));
    }

    #[test]
    fn a_case_missing_on_either_side_fails() {
        let base = BTreeMap::from([("a_fused_fwd/s".to_string(), 10)]);
        let v = compare(&[m("b_fused_fwd/s", 10)], &base, 0.001, 25_000);
        assert_eq!(v.failures.len(), 2, "{v:?}");
        assert!(
            v.failures[0].starts_with("icount: NEW b fused fwd s")
                && v.failures[1].starts_with("icount: MISSING a fused fwd s")
        );
    }

    #[test]
    fn gungraun_summaries_parse() {
        let metric = |n: u64| json!({"values": {"new": n, "old": null}});
        let line = json!({
            "function_name": "info_nce_fused_fwd", "id": "n64_v2_d64",
            "profiles": [{"data": {"total": {"metrics": {
                "Ir": metric(5), "EstimatedCycles": metric(9), "L1hits": metric(4), "LLhits": metric(1), "RamHits": metric(0)
            }}}}]
        })
        .to_string();
        let got = parse_summary(&line).expect("parses");
        assert_eq!(
            got,
            Measurement {
                key: "info_nce_fused_fwd/n64_v2_d64".into(),
                ir: 5,
                estimated_cycles: 9,
                l1_hits: 4,
                ll_hits: 1,
                ram_hits: 0
            }
        );
        assert!(parse_summary(r#"{"function_name": "f", "id": "x", "profiles": []}"#).is_err());
    }

    #[test]
    fn the_runner_version_comes_from_the_lock() {
        let lock = "[[package]]\nname = \"gungraun-runner\"\nversion = \"9.9.9\"\n\n[[package]]\nname = \"gungraun\"\nversion = \"0.20.0\"\n";
        assert_eq!(lock_version(lock, "gungraun").as_deref(), Some("0.20.0"));
        assert_eq!(lock_version(lock, "gungraun-runner").as_deref(), Some("9.9.9"));
        assert_eq!(lock_version(lock, "nope"), None);
        assert!(gungraun_version().is_ok(), "the workspace's Cargo.lock names gungraun");
    }

    #[test]
    fn the_committed_baseline_is_read_back() {
        let (counts, toolchain) = read_baseline(&util::root().join(BASELINE)).expect("the baseline is committed");
        assert!(counts.len() >= 16, "{} baseline cases", counts.len());
        assert!(counts.keys().any(|k| k.ends_with("/n512_v2_d128")), "the pre-training shape is gated");
        assert!(toolchain["rustc"].as_str().is_some_and(|s| s.starts_with("rustc")), "{toolchain}");
    }
}
