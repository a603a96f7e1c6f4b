//! `cargo xtask parity [--tol T] [--keep] [--features F]`: our networks against torchvision, end to end.
//!
//! For each of r2plus1d_18, r3d_18 and audio_resnet9, and for two (seed, input shape) runs:
//! 1. `scripts/reference/torchvision_video_reference.py generate` writes a randomly initialised torchvision model
//!    (BatchNorm statistics randomised too) as `.pth` and `.safetensors`, with an input and its eval-mode outputs;
//! 2. `svaclr forward` runs our network on the same input from the `.pth` and from the `.safetensors`;
//! 3. `svaclr import` converts the `.pth` to our `.bpk` and `svaclr export` writes it back with torchvision's keys;
//! 4. the script's `check` compares our features and logits with PyTorch's (max|ours-ref| / max|ref| <= tol) and
//!    loads the export into torchvision with `strict=True`, which must reproduce PyTorch's outputs.
//!
//! Work files go to `target/parity/ARCH/seedS/` (the 100+ MB weight files are deleted afterwards unless `--keep`);
//! the table is printed and written to `target/parity/parity.{json,md}`. Any mismatch fails the task.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{torch, util};

/// The relative tolerance of the issue (float32 through 18 layers lands near 1e-6).
pub const DEFAULT_TOL: f64 = 1e-4;
const ARCHS: [&str; 3] = ["r2plus1d_18", "r3d_18", "audio_resnet9"];
const SCRIPT: &str = "scripts/reference/torchvision_video_reference.py";

/// One (seed, shapes) run. The second uses sizes the strides do not divide, to prove generality.
struct Run {
    seed: u64,
    video_input: &'static str,
    audio_input: &'static str,
}

const RUNS: [Run; 2] = [
    Run { seed: 0, video_input: "2,3,8,32,32", audio_input: "2,1,64,100" },
    Run { seed: 7, video_input: "1,3,6,40,56", audio_input: "3,1,40,73" },
];

/// Path of the `svaclr` binary a `cargo build -p svaclr-cli [--release]` produced.
pub fn svaclr_binary(release: bool) -> PathBuf {
    util::target_dir().join(if release { "release" } else { "debug" }).join("svaclr")
}

pub fn run(args: &[String]) -> Result<()> {
    let mut tol = DEFAULT_TOL;
    let mut keep = false;
    let mut features: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tol" => {
                let v = it.next().context("parity: --tol needs a value")?;
                tol = v.parse().with_context(|| format!("parity: --tol '{v}' is not a number"))?;
            }
            "--keep" => keep = true,
            "--features" => features = Some(it.next().context("parity: --features needs a value")?.clone()),
            other => bail!("parity: unknown option '{other}' (expected --tol T, --keep, --features F)"),
        }
    }
    let mut build = torch::cargo_for_features(features.as_deref())?;
    build.args(["build", "-p", "svaclr-cli"]);
    if let Some(f) = &features {
        build.args(["--features", f]);
    }
    util::run(&mut build)?;
    check(&svaclr_binary(false), tol, keep)
}

/// Steps 1-4 of the module docs with an `svaclr` binary already built (`cargo xtask test` passes the one its
/// workspace test build made, so that Burn is compiled once).
pub fn check(svaclr: &Path, tol: f64, keep: bool) -> Result<()> {
    let py = torch::python()?;
    let root = util::root();
    let script = root.join(SCRIPT);
    let out_root = root.join("target/parity");

    let mut rows: Vec<Value> = Vec::new();
    for run in &RUNS {
        for arch in ARCHS {
            let dir = out_root.join(arch).join(format!("seed{}", run.seed));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let shape = if arch == "audio_resnet9" { run.audio_input } else { run.video_input };
            let seed = run.seed.to_string();
            util::run(
                Command::new(&py)
                    .arg(&script)
                    .arg("generate")
                    .arg(&dir)
                    .args(["--arch", arch, "--seed", &seed, "--input", shape]),
            )?;
            let f = |name: &str| dir.join(name);
            let io = f(&format!("{arch}_io.safetensors"));
            for (weights, out) in [
                (format!("{arch}.pth"), "burn_from_pth.safetensors"),
                (format!("{arch}.safetensors"), "burn_from_safetensors.safetensors"),
            ] {
                util::run(
                    Command::new(svaclr)
                        .args(["forward", "--arch", arch, "--weights"])
                        .arg(f(&weights))
                        .arg("--input")
                        .arg(&io)
                        .arg("--output")
                        .arg(f(out)),
                )?;
            }
            let bpk = f(&format!("{arch}.bpk"));
            let export = f(&format!("{arch}_export.safetensors"));
            util::run(
                Command::new(svaclr)
                    .args(["import", "--arch", arch, "--from"])
                    .arg(f(&format!("{arch}.pth")))
                    .arg("--out")
                    .arg(&bpk),
            )?;
            util::run(
                Command::new(svaclr).args(["export", "--arch", arch, "--weights"]).arg(&bpk).arg("--out").arg(&export),
            )?;
            let mut check = Command::new(&py);
            check.arg(&script).arg("check").arg(&dir).args(["--arch", arch, "--tol", &tol.to_string(), "--outputs"]);
            check
                .arg(f("burn_from_pth.safetensors"))
                .arg(f("burn_from_safetensors.safetensors"))
                .arg("--export")
                .arg(&export);
            eprintln!("$ {}", util::show(&check));
            let output =
                check.current_dir(&root).output().with_context(|| format!("cannot start {}", util::show(&check)))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let mut got = 0;
            for line in stdout.lines().filter(|l| l.trim_start().starts_with('{')) {
                let mut row: Value =
                    serde_json::from_str(line).with_context(|| format!("parity: bad line from the check: {line}"))?;
                row["seed"] = run.seed.into();
                row["input"] = shape.into();
                rows.push(row);
                got += 1;
            }
            if got == 0 {
                bail!(
                    "parity: the check printed nothing for {arch}: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            if !keep {
                remove_weight_files(&dir, arch)?;
            }
        }
    }

    let md = table(&rows, tol);
    print!("{md}");
    std::fs::write(out_root.join("parity.json"), serde_json::to_string_pretty(&rows)?)?;
    std::fs::write(out_root.join("parity.md"), &md)?;
    let failed = rows.iter().filter(|r| r["ok"] != Value::Bool(true)).count();
    if failed > 0 {
        bail!("parity: {failed} of {} checks exceed the tolerance {tol:e} (see target/parity/parity.md)", rows.len());
    }
    eprintln!("parity: all {} checks within {tol:e}", rows.len());
    Ok(())
}

/// Delete the large weight files of one run (the small io and output files stay for inspection).
fn remove_weight_files(dir: &Path, arch: &str) -> Result<()> {
    for name in [
        format!("{arch}.pth"),
        format!("{arch}.safetensors"),
        format!("{arch}.bpk"),
        format!("{arch}_export.safetensors"),
    ] {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

fn table(rows: &[Value], tol: f64) -> String {
    let mut s = format!("| arch | seed | input | check | features rel. err | logits rel. err | ok (<= {tol:e}) |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let num = |k: &str| r[k].as_f64().map(|v| format!("{v:.2e}")).unwrap_or_else(|| "-".into());
        let check = r["check"].as_str().unwrap_or("?");
        let check = check.strip_suffix(".safetensors").unwrap_or(check);
        s.push_str(&format!(
            "| {} | {} | [{}] | {} | {} | {} | {} |\n",
            r["arch"].as_str().unwrap_or("?"),
            r["seed"],
            r["input"].as_str().unwrap_or("?"),
            check,
            num("features_rel"),
            num("logits_rel"),
            if r["ok"] == Value::Bool(true) { "yes" } else { "**NO**" },
        ));
        if let Some(e) = r["error"].as_str() {
            s.push_str(&format!("|  |  |  | error: {e} |  |  |  |\n"));
        }
    }
    s
}
