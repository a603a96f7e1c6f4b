//! Choosing how a pre-training run is launched, from `--device` and the environment: one device; several devices
//! of this process (`--device cuda:0,1`: one thread per device, a [`LocalGroup`]); or one rank of an MPI job
//! (`mpirun -np P`). Every mode runs the same loop ([`crate::trainer::pretrain_on`]) with its [`Collective`].

use std::path::Path;

use crate::config::PretrainConfig;
use crate::device::{DeviceSpec, parse_device, parse_device_list};
use crate::distributed::local::LocalGroup;
use crate::distributed::{self, DistributedMode};
use crate::error::TrainError;
use crate::metrics::PretrainSummary;
use crate::trainer::{PretrainOptions, pretrain_on};

/// A finished run as seen from one rank.
#[derive(Clone, Debug)]
pub struct Launched {
    /// The run's summary (the same on every rank).
    pub summary: PretrainSummary,
    /// This process' rank in an MPI job (0 otherwise): only rank 0 reports.
    pub rank: usize,
    /// "rank r of P" for an MPI job, else `None`.
    pub describe: Option<String>,
}

/// Pre-train per `cfg` into `run_dir` on `device` (one device, or a comma-separated list for several devices of
/// this process), as one rank of an MPI job when `mode` (or, with [`DistributedMode::Auto`], the launcher's
/// environment) says so.
///
/// In an MPI job a rank that fails prints its error, naming itself, and ends the whole job (MPI_Abort): its peers
/// would otherwise wait in their next collective forever. Several devices of one process end together too: a
/// device thread that fails releases the others, and the first real error is returned.
pub fn launch(
    cfg: &PretrainConfig,
    run_dir: &Path,
    device: &str,
    mode: DistributedMode,
    opts: &PretrainOptions,
) -> Result<Launched, TrainError> {
    let comm = distributed::init(mode)?;
    let specs = parse_device_list(device).map_err(|e| TrainError::Other(e.to_string()))?;
    if specs.len() > 1 {
        if comm.size() > 1 {
            return Err(TrainError::Distributed(format!(
                "--device {device}: a device list (several devices in one process) cannot be combined with an MPI job \
                 of {} processes; give each process one device",
                comm.size()
            )));
        }
        return several_devices(cfg, run_dir, &specs, opts);
    }
    let device_arg = match comm.size() {
        1 => device.to_string(),
        _ => distributed::device_for_local_rank(device, distributed::local_rank()),
    };
    let (spec, dev) = parse_device(&device_arg).map_err(|e| TrainError::Other(e.to_string()))?;
    let result = pretrain_on(cfg, run_dir, &dev, &spec.to_string(), opts, comm.as_ref());
    if comm.size() == 1 {
        return result.map(|summary| Launched { summary, rank: 0, describe: None });
    }
    let who = comm.describe();
    match result {
        Ok(summary) => Ok(Launched { summary, rank: comm.rank(), describe: Some(who) }),
        Err(e) => {
            eprintln!("error: {who}: {}", e.to_string().replace('\n', " "));
            comm.abort(1)
        }
    }
}

/// One thread per device, each a member of one [`LocalGroup`]; rank 0's summary.
fn several_devices(
    cfg: &PretrainConfig,
    run_dir: &Path,
    specs: &[DeviceSpec],
    opts: &PretrainOptions,
) -> Result<Launched, TrainError> {
    let devices = specs
        .iter()
        .map(|s| s.device().map_err(|e| TrainError::Other(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let name = specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let group = LocalGroup::new(devices.len());
    let results: Vec<Result<PretrainSummary, TrainError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .members()
            .into_iter()
            .zip(devices)
            .map(|(member, dev)| {
                let name = &name;
                scope.spawn(move || {
                    let r = pretrain_on(cfg, run_dir, &dev, name, opts, &member);
                    if r.is_err() {
                        member.fail();
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(TrainError::Distributed("a device thread panicked".into()))))
            .collect()
    });
    // The first error that is not merely another member reporting the failure.
    let mut first_err = None;
    let mut summary = None;
    for r in results {
        match r {
            Ok(s) => summary = summary.or(Some(s)),
            Err(e) => {
                let echo = matches!(&e, TrainError::Distributed(m) if m.starts_with("another device"));
                if first_err.is_none() || (!echo && first_err.as_ref().is_some_and(|(was_echo, _)| *was_echo)) {
                    first_err = Some((echo, e));
                }
            }
        }
    }
    match (first_err, summary) {
        (Some((_, e)), _) => Err(e),
        (None, Some(summary)) => Ok(Launched { summary, rank: 0, describe: None }),
        (None, None) => Err(TrainError::Distributed("no device thread ran".into())),
    }
}
