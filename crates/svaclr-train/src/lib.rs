//! svaclr-train: SvaCLR pre-training on any Burn backend.
//!
//! It joins the bottom layer (svaclr-data's clips, svaclr-models' encoders, svaclr-loss' InfoNCE/SoftInfoNCE) into a
//! custom training loop with the paper's optimiser and schedule ([`schedule`]), gradient caching for large effective
//! batches ([`step`]), atomic checkpoints and exact resume in a run directory ([`run_dir`]), a JSON Lines metrics
//! log and a plot, and the one place that turns a `--device` string into a Burn device ([`device`]). [`launch`]
//! chooses how a run is launched (one device, several devices of one process, several MPI processes); every mode
//! runs the one loop of [`trainer`] with its [`distributed::Collective`].
//!
//! Module dependencies run one way: `launch` -> `trainer` -> (`monitor`, `step`, `run_dir`) -> (`metrics`,
//! `distributed`, `config`); the monitor never imports the loop.

pub mod config;
pub mod device;
pub mod distributed;
pub mod error;
pub mod launch;
pub mod metrics;
pub mod monitor;
pub mod plot;
pub mod progress;
pub mod run_dir;
pub mod schedule;
pub mod step;
pub mod trainer;

pub use config::{OptimConfig, PretrainConfig, RunConfig, ScheduleConfig};
pub use device::{DeviceError, DeviceSpec, parse_device, parse_device_list};
pub use error::TrainError;
pub use launch::{Launched, launch};
pub use metrics::PretrainSummary;
pub use run_dir::{CHECKPOINTS_KEPT, RunDir, checkpoint_bytes};
pub use trainer::{PretrainOptions, pretrain, pretrain_on};
