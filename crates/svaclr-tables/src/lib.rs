//! svaclr-tables: the paper's tables, from a table file to TABLE.{md,json,png}.
//!
//! [`reproduce`] is `svaclr reproduce`: it reads configs/tables/TABLE.json ([`spec`]), turns it into the list of
//! steps that make the table ([`plan`]: pure, so `--dry-run` prints exactly what a run does), runs them as
//! subprocesses of the `svaclr` binary ([`run`]: resumable, each step reused once done), and reads their results
//! back into the table ([`report`]). docs/reproduction.md describes the pipeline from a user's side.
//!
//! - [`spec`]: the table file as typed structs (unknown keys rejected, references checked).
//! - [`plan`]: [`Request`] -> [`Plan`]: every step with its argument vector, folder and done marker, the prepared
//!   datasets it reads and its distinct pre-training runs.
//! - [`datasets`]: the check that those datasets were prepared whole, with the `svaclr prepare` command of each.
//! - [`estimate`]: GPU-hours and disk of the plan, and the warning for a GPU-sized preset on a CPU.
//! - [`run`]: execution of a plan (progress lines on stderr).
//! - [`report`]: results, statistics over seeds, Markdown, JSON and the bar chart.
//! - [`sizing`]: seeds against steps in a time budget, from finished tables (`svaclr size-table`).
//! - [`files`]: the names of the files the pipeline reads from its steps' folders.

pub mod compare;
pub mod datasets;
pub mod error;
pub mod estimate;
pub mod files;
pub mod plan;
pub mod report;
pub mod run;
pub mod sizing;
pub mod spec;

use std::path::Path;
use std::time::Instant;

pub use error::TablesError;
pub use plan::{Plan, Request, plan};
pub use spec::TableSpec;

/// Make the table `request` names with the `svaclr` binary `exe`: plan it, run (or with `dry_run` print) its steps,
/// then write OUT/TABLE.{md,json,png} and print the Markdown table. `force` recomputes finished steps.
///
/// Before any step runs, every prepared dataset the plan reads is checked ([`datasets::check`]): each one missing or
/// incomplete is printed as one line with the `svaclr prepare` command that writes it, and the table stops with
/// [`TablesError::NotPrepared`] (a dry run lists them and prints the plan anyway). A dry run also prints the plan's
/// compute and disk estimate ([`estimate`]); a preset sized for GPUs on a CPU device is warned about.
pub fn reproduce(request: &Request, exe: &Path, dry_run: bool, force: bool) -> Result<(), TablesError> {
    let started = Instant::now();
    let spec = TableSpec::load(&request.table_file())?;
    let preset = spec.preset(&request.preset)?;
    let plan = plan(&spec, request)?;
    let unprepared = datasets::check(&plan.datasets);
    let clips = estimate::pretrain_clips(preset, &request.data_root);
    let cost = estimate::estimate(&spec, &plan, clips)?;
    let warning = estimate::cpu_warning(&request.preset, preset, &request.device, cost.gpu_hours());
    let options = run::Options { exe: exe.to_path_buf(), force, dry_run };
    if dry_run {
        run::execute(&plan, &options)?;
        print!("{}", cost.render());
        if let Some(w) = &warning {
            println!("{w}");
        }
        for u in &unprepared {
            println!("not prepared: {u}");
        }
        return Ok(());
    }
    if let Some(w) = &warning {
        eprintln!("{w}");
    }
    if !unprepared.is_empty() {
        for u in &unprepared {
            eprintln!("{u}");
        }
        return Err(TablesError::NotPrepared { count: unprepared.len() });
    }
    run::execute(&plan, &options)?;
    let results = report::collect(&spec, &plan)?;
    let written = report::write(&spec, request, &plan, &results, started.elapsed().as_secs_f64())?;
    print!("{}", written.markdown);
    eprintln!("wrote {}, {} and the figure", written.md.display(), written.json.display());
    Ok(())
}
