//! Execution of a [`Plan`]: each step in order, a subprocess of the `svaclr` binary (synth, pretrain, finetune,
//! retrieve) or a small action in this process (a config rewritten to a resolution, Fig. 3).
//!
//! A step whose done marker exists is reused (`[reuse]` on stderr) unless `--force`; an interrupted pre-training
//! resumes from its last checkpoint (`--resume`); a failed step stops the table with a message saying that the same
//! command continues where it stopped. A dry run prints each step's command line and touches nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::TablesError;
use crate::files;
use crate::plan::{Action, Plan, Step};

/// How to execute a plan.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `svaclr` binary the steps run.
    pub exe: PathBuf,
    /// Recompute finished steps.
    pub force: bool,
    /// Print each step's command instead of running it.
    pub dry_run: bool,
}

/// Run (or, with `dry_run`, print) every step of `plan`.
pub fn execute(plan: &Plan, opts: &Options) -> Result<(), TablesError> {
    for step in &plan.steps {
        if opts.dry_run {
            print_step(step, opts);
        } else {
            run_step(step, opts)?;
        }
    }
    Ok(())
}

/// The process of a subprocess step, exactly as it will run (`--resume` when a checkpoint is there to resume).
fn command(step: &Step, opts: &Options) -> Option<Command> {
    let (Action::Synth(args) | Action::Pretrain(args) | Action::Evaluate(args)) = &step.action else {
        return None;
    };
    let mut cmd = Command::new(&opts.exe);
    cmd.args(args);
    if matches!(step.action, Action::Pretrain(_)) && !opts.force && files::has_checkpoint(&step.folder).unwrap_or(true)
    {
        cmd.arg("--resume");
    }
    Some(cmd)
}

/// `program arg arg ...`, for people.
fn shown(cmd: &Command) -> String {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

fn print_step(step: &Step, opts: &Options) {
    if let Some(cmd) = command(step, opts) {
        println!("{}\n  $ {}", step.what, shown(&cmd));
    } else if let Action::Fig3 { png, .. } = &step.action {
        println!("{}\n  -> {}", step.what, png.display());
    }
}

fn run_step(step: &Step, opts: &Options) -> Result<(), TablesError> {
    match &step.action {
        Action::Synth(_) | Action::Pretrain(_) | Action::Evaluate(_) => {
            if matches!(step.action, Action::Pretrain(_)) && opts.force && step.folder.exists() {
                std::fs::remove_dir_all(&step.folder).map_err(TablesError::io(&step.folder))?;
            }
            if let Some(done) = step.done.as_ref().filter(|d| d.exists() && !opts.force) {
                eprintln!("[reuse] {} ({})", step.what, done.display());
                return Ok(());
            }
            let Some(mut cmd) = command(step, opts) else { return Ok(()) };
            eprintln!("[run]   {}", step.what);
            let status = cmd.status().map_err(|cause| TablesError::Start { command: shown(&cmd), cause })?;
            if !status.success() {
                return Err(TablesError::StepFailed { what: step.what.clone(), status });
            }
        }
        Action::AdoptLegacyRuns { legacy } => adopt_legacy_runs(legacy, &step.folder)?,
        Action::WriteConfig { path, text } => {
            std::fs::create_dir_all(&step.folder).map_err(TablesError::io(&step.folder))?;
            std::fs::write(path, text).map_err(TablesError::io(path))?;
        }
        Action::Fig3 { run_dir, manifest, split, device, png } => {
            std::fs::create_dir_all(&step.folder).map_err(TablesError::io(&step.folder))?;
            let (_, device) = svaclr_train::parse_device(device)?;
            svaclr_eval::fig3::write(run_dir, manifest, Some(split), &device, png)?;
        }
    }
    Ok(())
}

/// Earlier versions kept runs in `OUT/runs/table1/PRESET/row<k>-HASH-seedS`: move them to `runs_root`'s shared
/// layout (`pretrain-HASH-seedS`, `baseline-random-init-pretrain-HASH-seedS`) unless a run is already there.
fn adopt_legacy_runs(legacy: &Path, runs_root: &Path) -> Result<(), TablesError> {
    let Ok(entries) = std::fs::read_dir(legacy) else {
        return Ok(());
    };
    let strip_row = |s: &str| s.split_once('-').filter(|(r, _)| r.starts_with("row")).map(|(_, rest)| rest.to_string());
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let new_name = if let Some(rest) = name.strip_prefix("baseline-random-init-") {
            strip_row(rest).map(|r| format!("baseline-random-init-pretrain-{r}"))
        } else {
            strip_row(&name).map(|r| format!("pretrain-{r}"))
        };
        if let Some(n) = new_name {
            let to = runs_root.join(n);
            if !to.exists() {
                std::fs::create_dir_all(runs_root).map_err(TablesError::io(runs_root))?;
                std::fs::rename(e.path(), &to).map_err(TablesError::io(e.path()))?;
                eprintln!("[move]  {} -> {}", e.path().display(), to.display());
            }
        }
    }
    Ok(())
}
