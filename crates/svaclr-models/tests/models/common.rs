//! Helpers shared by the model tests, and the imports every module uses.
#![allow(dead_code, unused_imports)]

pub use std::path::Path;

pub use burn::module::{Module, Param};
pub use burn::prelude::*;
pub use burn::store::ModuleSnapshot;
pub use svaclr_models::affinity::{AffinityMapConfig, AffinityMapKind};
pub use svaclr_models::video_resnet::{R2Plus1dStem, VideoStem};
pub use svaclr_models::weights::{self, BURN_TO_TORCHVISION, TORCHVISION_TO_BURN};
pub use svaclr_models::{
    AudioEncoderConfig, ClassifierConfig, ModelConfig, ModelError, NormMode, SizePreset, TorchvisionArch,
    TorchvisionNet, VideoArch, VideoEncoder, VideoEncoderConfig, VideoInput, VideoResNetConfig, count_parameters,
};

pub fn dev() -> Device {
    Device::flex()
}

pub fn heavy() -> bool {
    std::env::var("SVACLR_HEAVY_TESTS").is_ok_and(|v| v == "1")
}

pub fn randn<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let d = dev();
    d.seed(seed);
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), &d)
}

pub fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// Total BatchNorm channels, from the number of `running_mean` elements Burn keeps.
pub fn bn_channels<M: Module>(m: &M) -> usize {
    m.collect(None, None, true)
        .iter()
        .filter(|t| t.name.ends_with("running_mean"))
        .map(|t| t.shape.iter().product::<usize>())
        .sum()
}
