//! `svaclr reproduce TABLE [--preset smoke|synth|paper|paper-tiny] [--data-root DIR] [--device D] [--seeds N] [--out DIR]
//! [--dry-run] [--force]`: run a table's rows (pre-training, downstream evaluation, retrieval) and write
//! `OUT/TABLE.{md,json,png}` (and, for a row marked `"figure": "fig3"`, `OUT/TABLE_fig3.{png,json}`).
//!
//! The pipeline is svaclr-tables ([`svaclr_tables::reproduce`]; its `spec` module documents the table file): every
//! step is a run of this same binary in a folder keyed by its config hash, `OUT/runs/PRESET/pretrain-HASH-seedS/`,
//! shared by every table. `cargo xtask reproduce` is the front door: it installs what is missing, builds in release
//! mode and calls this.

use std::path::PathBuf;

use anyhow::{Context, Result};
use svaclr_tables::Request;

#[derive(clap::Args)]
pub struct Args {
    /// Which table: table1, table2 or table3 (configs/tables/TABLE.json).
    table: String,
    /// smoke (about a minute, for tests), synth (the embedded SynthAV benchmark, default), paper (real datasets
    /// prepared with `svaclr prepare`, the paper's settings), paper-tiny (the same datasets, cut to a CPU).
    #[arg(long, default_value = "synth")]
    preset: String,
    /// Where datasets live (SynthAV is generated here; the paper preset reads prepared manifests from here).
    #[arg(long, default_value = "data")]
    data_root: PathBuf,
    /// flex (default), cuda[:N], tch-cpu, tch-cuda[:N], wgpu[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Seeds per row (mean, spread and paired intervals are reported); default: the preset's (5 for table1's
    /// synth preset, else 1).
    #[arg(long)]
    seeds: Option<u64>,
    /// Results folder: TABLE.md, TABLE.json, TABLE.png, and runs/.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Configs folder (holding tables/, pretrain/, finetune/).
    #[arg(long, default_value = "configs")]
    configs: PathBuf,
    /// Print the plan (every command), its GPU-hours and disk estimate and any dataset not prepared, without
    /// running it.
    #[arg(long)]
    dry_run: bool,
    /// Recompute finished steps.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let exe = std::env::current_exe().context("cannot locate the svaclr binary")?;
    let request = Request {
        table: args.table,
        preset: args.preset,
        seeds: args.seeds,
        data_root: args.data_root,
        out: args.out,
        configs: args.configs,
        device: args.device,
    };
    Ok(svaclr_tables::reproduce(&request, &exe, args.dry_run, args.force)?)
}
