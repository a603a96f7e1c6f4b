//! Integration tests of svaclr-data on synthetic files written at test time (video-rs/FFmpeg and hound).

mod audio;
mod cache;
mod common;
mod dataset;
mod decode;
mod loader;
mod logmel;
mod media;
mod prepare;
