//! Integration tests of svaclr-data on synthetic files written at test time (video-rs/FFmpeg and hound).

mod common;
mod dataset;
mod decode;
mod audio;
mod loader;
mod logmel;
mod prepare;
