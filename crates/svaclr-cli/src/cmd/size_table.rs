//! `svaclr size-table TABLE.json... [--budget-min M]...`: from finished tables of one preset at different step
//! counts, the seconds one seed takes and the paired spreads each measured, and per time budget how many seeds fit
//! and the smallest difference to row 1 they detect ([`svaclr_tables::sizing`]). This is how the synth preset's
//! steps and seeds were chosen (docs/reproduction.md, "Sizing the synth preset").

use std::path::PathBuf;

use anyhow::{Result, bail};
use svaclr_tables::sizing::{Measured, markdown};

#[derive(clap::Args)]
pub struct Args {
    /// TABLE.json files written by `svaclr reproduce` (each with at least 2 seeds), one per step count.
    #[arg(required = true)]
    tables: Vec<PathBuf>,
    /// Time budgets in minutes of rows (the one-off set-up, such as generating SynthAV, not counted).
    #[arg(long = "budget-min", default_values_t = [20.0, 60.0])]
    budgets: Vec<f64>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(b) = args.budgets.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
        bail!("--budget-min {b}: a budget is a positive number of minutes");
    }
    let mut measured = args.tables.iter().map(|t| Measured::read(t)).collect::<Result<Vec<_>, _>>()?;
    measured.sort_by_key(|m| m.steps);
    let budgets: Vec<f64> = args.budgets.iter().map(|m| m * 60.0).collect();
    print!("{}", markdown(&measured, &budgets));
    Ok(())
}
