//! svaclr-tables: the paper's tables, from a table file to TABLE.{md,json,png}.
//!
//! [`reproduce`] is `svaclr reproduce`: it reads configs/tables/TABLE.json ([`spec`]), turns it into the list of
//! steps that make the table ([`plan`]: pure, so `--dry-run` prints exactly what a run does), runs them as
//! subprocesses of the `svaclr` binary ([`run`]: resumable, each step reused once done), and reads their results
//! back into the table ([`report`]). docs/reproduction.md describes the pipeline from a user's side.
//!
//! - [`spec`]: the table file as typed structs (unknown keys rejected, references checked).
//! - [`plan`]: [`Request`] -> [`Plan`]: every step with its argument vector, folder and done marker.
//! - [`run`]: execution of a plan (progress lines on stderr).
//! - [`report`]: results, statistics over seeds, Markdown, JSON and the bar chart.
//! - [`files`]: the names of the files the pipeline reads from its steps' folders.

pub mod error;
pub mod files;
pub mod plan;
pub mod report;
pub mod run;
pub mod spec;

use std::path::Path;
use std::time::Instant;

pub use error::TablesError;
pub use plan::{Plan, Request, plan};
pub use spec::TableSpec;

/// Make the table `request` names with the `svaclr` binary `exe`: plan it, run (or with `dry_run` print) its steps,
/// then write OUT/TABLE.{md,json,png} and print the Markdown table. `force` recomputes finished steps.
pub fn reproduce(request: &Request, exe: &Path, dry_run: bool, force: bool) -> Result<(), TablesError> {
    let started = Instant::now();
    let spec = TableSpec::load(&request.table_file())?;
    let plan = plan(&spec, request)?;
    run::execute(&plan, &run::Options { exe: exe.to_path_buf(), force, dry_run })?;
    if dry_run {
        return Ok(());
    }
    let results = report::collect(&spec, &plan)?;
    let written = report::write(&spec, request, &plan, &results, started.elapsed().as_secs_f64())?;
    print!("{}", written.markdown);
    eprintln!("wrote {}, {} and the figure", written.md.display(), written.json.display());
    Ok(())
}
