//! svaclr-data: everything between files on disk and batches of tensors.
//!
//! Video decoding (video-rs/FFmpeg) and audio reading (hound, resampled with rubato), the clip sampler with speed
//! co-augmentation (the paper's idea lives here), the log-mel audio front end, visual augmentation, dataset
//! manifests and `prepare` for real datasets, the decoded-frame cache, and the batcher that feeds training (the SynthAV generator is
//! svaclr-synth, above this crate).

pub mod audio;
pub mod augment;
pub mod cache;
pub mod clip;
pub mod dataset;
pub mod encode;
pub mod error;
pub mod loader;
pub mod logmel;
pub mod manifest;
pub mod prepare;
pub mod sampler;
pub mod video;

pub use augment::AugmentConfig;
pub use cache::{CacheMode, CacheStats};
pub use clip::{ClipPlan, Crops};
pub use dataset::{AvSample, ClipDataset, ClipItem, DataConfig};
pub use error::DataError;
pub use loader::{AvBatch, BatchLoader, ClipBatcher, HostBatch, epoch_order};
pub use logmel::{LogMel, MelConfig};
pub use manifest::{Manifest, ManifestEntry};
pub use sampler::{ClipSpec, SpeedSet};
