//! svaclr-train: SvaCLR pre-training on any Burn backend.
//!
//! It joins the bottom layer (svaclr-data's clips, svaclr-models' encoders, svaclr-loss' InfoNCE/SoftInfoNCE) into a
//! custom training loop with the paper's optimiser and schedule, checkpoints and resume, a metrics log, and the one
//! place that turns a `--device` string into a Burn device ([`device`]).

pub mod device;

pub use device::{DeviceError, DeviceSpec, parse_device};
