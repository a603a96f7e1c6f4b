//! svaclr-train: SvaCLR pre-training on any Burn backend.
//!
//! It joins the bottom layer (svaclr-data's clips, svaclr-models' encoders, svaclr-loss' InfoNCE/SoftInfoNCE) into a
//! custom training loop with the paper's optimiser and schedule ([`schedule`]), gradient caching for large effective
//! batches, atomic checkpoints and exact resume ([`checkpoint`]), a JSON Lines metrics log and a plot, and the one
//! place that turns a `--device` string into a Burn device ([`device`]); [`ddp`] runs the same loop data-parallel on
//! several CUDA devices.

pub mod checkpoint;
pub mod config;
pub mod ddp;
pub mod device;
pub mod distributed;
pub mod error;
pub mod metrics;
pub mod monitor;
pub mod plot;
pub mod progress;
pub mod schedule;
pub mod trainer;

pub use checkpoint::load_pretrained;
pub use config::{OptimConfig, PretrainConfig, RunConfig, ScheduleConfig};
pub use device::{DeviceError, DeviceSpec, parse_device};
pub use error::TrainError;
pub use trainer::{PretrainOptions, PretrainSummary, pretrain, pretrain_on, read_metrics};
