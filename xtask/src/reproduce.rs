//! `cargo xtask reproduce table1|table2|table3 [--preset smoke|synth|paper|paper-tiny] [--data-root DIR] [--device D]
//! [--seeds N] [--out DIR] [--dry-run] [--force] [--debug] [--features F]`: the main job.
//!
//! Does its own set-up on a fresh machine (Debian packages, a release build of `svaclr`), then hands the table to
//! `svaclr reproduce`, which generates SynthAV when needed, runs every row and writes `results/TABLE.{md,json,png}`.
//! Finished steps are reused on a rerun (run folders keyed by config hash); `--force` recomputes.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{parity, setup, torch, util};

pub fn run(args: &[String]) -> Result<()> {
    let Some((table, rest)) = args.split_first() else {
        bail!("reproduce: which table? e.g. `cargo xtask reproduce table1`");
    };
    if !["table1", "table2", "table3"].contains(&table.as_str()) {
        bail!("reproduce: unknown table '{table}' (table1, table2, table3)");
    }
    if !util::root().join("configs/tables").join(format!("{table}.json")).exists() {
        bail!("reproduce: configs/tables/{table}.json does not exist yet");
    }
    let mut pass: Vec<String> = Vec::new();
    let mut debug = false;
    let mut features: Option<String> = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => debug = true,
            "--features" => features = it.next().cloned(),
            _ => pass.push(a.clone()),
        }
    }
    setup::run(&[])?;
    let mut build = torch::cargo_for_features(features.as_deref())?;
    build.args(["build", "-p", "svaclr-cli"]);
    if !debug {
        build.arg("--release");
    }
    if let Some(f) = &features {
        build.args(["--features", f]);
    }
    util::run(&mut build)?;
    let bin = parity::svaclr_binary(!debug);
    let mut cmd = Command::new(bin);
    cmd.arg("reproduce").arg(table).args(&pass);
    util::run(&mut cmd)
}
