//! svaclr-data: everything between files on disk and batches of tensors.
//!
//! Video decoding (video-rs/FFmpeg) and audio reading (hound, resampled with rubato), the clip sampler with speed
//! co-augmentation (the paper's idea lives here), the log-mel audio front end, visual augmentation, dataset
//! manifests and `prepare` for real datasets, the SynthAV generator, and the batcher that feeds training.

pub mod manifest;

pub use manifest::{Manifest, ManifestEntry, ManifestError};
