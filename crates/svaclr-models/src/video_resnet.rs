//! R(2+1)D-18 and R3D-18, written after torchvision's `models/video/resnet.py` (`r2plus1d_18`, `r3d_18`).
//!
//! Field names mirror torchvision's module names (`stem`, `layer1..4`, `conv1`, `conv2`, `downsample`, `fc`) so
//! that importing its checkpoints needs only the few renames of `weights.rs` (torchvision nests `nn.Sequential`s,
//! whose numeric indices become named fields here). Every convolution has no bias; only the fc has one.
//!
//! NOTE: the `small` and `tiny` presets divide every width (including the stem's 45) and keep everything else.

use burn::module::Param;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{BatchNorm, Initializer, Linear, LinearConfig, PaddingConfig3d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::preset::{SizePreset, VideoArch, r2plus1d_midplanes};
use crate::{batch_norm, conv};

/// Blocks per stage of both 18-layer video ResNets.
pub const VIDEO_RESNET18_BLOCKS: [usize; 4] = [2, 2, 2, 2];
/// Stride of the first block of each stage (applied in time and space).
const STAGE_STRIDES: [usize; 4] = [1, 2, 2, 2];
/// Classes of torchvision's Kinetics-400 heads.
pub const KINETICS400_CLASSES: usize = 400;
/// Standard deviation of torchvision's fc initialisation.
const FC_INIT_STD: f64 = 0.01;

/// torchvision initialises convs with `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: std sqrt(2/fan_out).
fn conv_init() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }
}

/// A bias-free 3D convolution with symmetric explicit padding.
fn conv3d(c_in: usize, c_out: usize, kernel: [usize; 3], stride: [usize; 3], pad: [usize; 3], dev: &Device) -> Conv3d {
    Conv3dConfig::new([c_in, c_out], kernel)
        .with_stride(stride)
        .with_padding(PaddingConfig3d::Explicit(pad[0], pad[1], pad[2]))
        .with_bias(false)
        .with_initializer(conv_init())
        .init(dev)
}

/// What the video encoder computes from the normalised clip before its stem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoInput {
    /// The frames as they are (the paper's and torchvision's).
    #[default]
    Rgb,
    /// Every frame minus the clip's mean frame (per channel and pixel), so the encoder sees what changes over the
    /// clip and not its static appearance; in the spirit of the RGB-difference input of two-stream networks (TSN).
    /// A CPU-budget option: from random initialisation, a small video network's features and gradients are
    /// dominated by static appearance, which SynthAV randomises, and it learns motion only after far more steps than
    /// a CPU run has (docs/synthav.md, "Learnability").
    TemporalResidual,
}

impl VideoInput {
    /// The default (kept out of serialised configs so that their hashes do not change).
    pub fn is_rgb(&self) -> bool {
        *self == VideoInput::Rgb
    }
}

/// Configuration of a [`VideoEncoder`] (the backbone without fc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoEncoderConfig {
    /// `r2plus1d_18` or `r3d_18`.
    pub arch: VideoArch,
    /// Width preset.
    pub preset: SizePreset,
    /// Input transform before the stem (`rgb` unless set).
    #[serde(default, skip_serializing_if = "VideoInput::is_rgb")]
    pub input: VideoInput,
}

impl VideoEncoderConfig {
    /// A config for `arch` at `preset` on RGB input.
    pub fn new(arch: VideoArch, preset: SizePreset) -> Self {
        Self { arch, preset, input: VideoInput::Rgb }
    }

    /// The same config with another input transform.
    pub fn with_input(mut self, input: VideoInput) -> Self {
        self.input = input;
        self
    }

    /// Build the encoder with torchvision's initialisation (Kaiming-normal fan-out convs, BN weight 1 bias 0).
    pub fn init(&self, device: &Device) -> VideoEncoder {
        let widths = self.preset.widths();
        let stem = match self.arch {
            VideoArch::R2Plus1d18 => {
                VideoStem::R2Plus1d(R2Plus1dStem::new(self.preset.r2plus1d_stem_mid(), widths[0], device))
            }
            VideoArch::R3d18 => VideoStem::R3d(R3dStem::new(widths[0], device)),
        };
        let mut inplanes = widths[0];
        let mut stages: Vec<Vec<VideoBlock>> = Vec::with_capacity(4);
        for ((&planes, &blocks), &stride) in widths.iter().zip(&VIDEO_RESNET18_BLOCKS).zip(&STAGE_STRIDES) {
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let s = if b == 0 { stride } else { 1 };
                stage.push(VideoBlock::new(self.arch, inplanes, planes, s, device));
                inplanes = planes;
            }
            stages.push(stage);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        VideoEncoder {
            stem,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            out_channels: inplanes,
            input: self.input,
        }
    }
}

/// The video encoder f: torchvision's `VideoResNet` up to and including the global average pool.
///
/// Source: torchvision `VideoResNet` with `BasicBlock`, layers [2,2,2,2], `R2Plus1dStem` + `Conv2Plus1D`
/// (R(2+1)D-18, the paper's encoder, Sec. 3.1) or `BasicStem` + `Conv3DSimple` (R3D-18).
#[derive(Module, Debug)]
pub struct VideoEncoder {
    /// Stem: spatial (1,7,7) stride (1,2,2) then temporal (3,1,1) for R(2+1)D; one (3,7,7) conv for R3D.
    pub stem: VideoStem,
    /// Stage 1 (stride 1).
    pub layer1: Vec<VideoBlock>,
    /// Stage 2 (stride 2 in t, h, w).
    pub layer2: Vec<VideoBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<VideoBlock>,
    /// Stage 4 (stride 2).
    pub layer4: Vec<VideoBlock>,
    /// Width of the output representation.
    pub out_channels: usize,
    /// What the encoder computes from its input before the stem (a setting, not a weight: not saved in records).
    #[module(skip)]
    pub input: VideoInput,
}

impl VideoEncoder {
    /// Encode clips into representations y.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, frames, height, width]`
    /// - output: `[batch, feature_dim]` (global average over time and space of the last stage)
    pub fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        let x = self.forward_map(x); // [B, C4, T/8, H/16, W/16]
        let [b, c, _, _, _] = x.dims();
        x.flatten::<3>(2, 4).mean_dim(2).reshape([b, c]) // [B, C4]
    }

    /// The last stage's feature map, before pooling.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, T, H, W]`
    /// - output: `[batch, feature_dim, ceil(T/8), ceil(H/16), ceil(W/16)]` (for T, H, W that the strides divide)
    pub fn forward_map(&self, x: Tensor<5>) -> Tensor<5> {
        let x = match self.input {
            VideoInput::Rgb => x,
            VideoInput::TemporalResidual => x.clone() - x.mean_dim(2), // [B, 3, T, H, W] minus [B, 3, 1, H, W]
        };
        let mut x = self.stem.forward(x); // [B, C1, T, H/2, W/2]
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4) {
            x = block.forward(x);
        }
        x
    }

    /// Width of the representation this encoder outputs (512 at full size).
    pub fn feature_dim(&self) -> usize {
        self.out_channels
    }

    /// The input transform this encoder applies before its stem.
    pub fn input(&self) -> VideoInput {
        self.input
    }
}

/// The two stems of torchvision's video ResNets.
// One value per network, built once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VideoStem {
    /// `R2Plus1dStem`.
    R2Plus1d(R2Plus1dStem),
    /// `BasicStem`.
    R3d(R3dStem),
}

impl VideoStem {
    /// # Shapes
    /// - `x`: `[B, 3, T, H, W]` -> `[B, C1, T, ceil(H/2), ceil(W/2)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match self {
            VideoStem::R2Plus1d(s) => s.forward(x),
            VideoStem::R3d(s) => s.forward(x),
        }
    }
}

/// torchvision `R2Plus1dStem`: conv (1,7,7) s(1,2,2) p(0,3,3) 3->mid, BN, ReLU, conv (3,1,1) p(1,0,0) mid->C1, BN, ReLU.
#[derive(Module, Debug)]
pub struct R2Plus1dStem {
    /// Spatial conv (torchvision `stem.0`).
    pub conv1: Conv3d,
    /// BN after it (`stem.1`).
    pub bn1: BatchNorm,
    /// Temporal conv (`stem.3`).
    pub conv2: Conv3d,
    /// BN after it (`stem.4`).
    pub bn2: BatchNorm,
}

impl R2Plus1dStem {
    fn new(mid: usize, out: usize, dev: &Device) -> Self {
        Self {
            conv1: conv3d(3, mid, [1, 7, 7], [1, 2, 2], [0, 3, 3], dev),
            bn1: crate::norm::batch_norm(mid, dev),
            conv2: conv3d(mid, out, [3, 1, 1], [1, 1, 1], [1, 0, 0], dev),
            bn2: crate::norm::batch_norm(out, dev),
        }
    }

    /// # Shapes
    /// - `x`: `[B, 3, T, H, W]` -> `[B, C1, T, ceil(H/2), ceil(W/2)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let x = batch_norm::forward_relu(&self.bn1, conv::forward3d(&self.conv1, x)); // [B, mid, T, H/2, W/2]
        batch_norm::forward_relu(&self.bn2, conv::forward3d(&self.conv2, x)) // [B, C1, T, H/2, W/2]
    }
}

/// torchvision `BasicStem`: conv (3,7,7) s(1,2,2) p(1,3,3) 3->C1, BN, ReLU.
#[derive(Module, Debug)]
pub struct R3dStem {
    /// The conv (`stem.0`).
    pub conv1: Conv3d,
    /// BN (`stem.1`).
    pub bn1: BatchNorm,
}

impl R3dStem {
    fn new(out: usize, dev: &Device) -> Self {
        Self { conv1: conv3d(3, out, [3, 7, 7], [1, 2, 2], [1, 3, 3], dev), bn1: crate::norm::batch_norm(out, dev) }
    }

    /// # Shapes
    /// - `x`: `[B, 3, T, H, W]` -> `[B, C1, T, ceil(H/2), ceil(W/2)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        batch_norm::forward_relu(&self.bn1, conv::forward3d(&self.conv1, x))
    }
}

/// torchvision video `BasicBlock`: conv1 = (builder, BN, ReLU), conv2 = (builder, BN), optional downsample
/// (1x1x1 conv with stride (s,s,s), BN), residual add, ReLU.
#[derive(Module, Debug)]
pub struct VideoBlock {
    /// First conv unit (stride s).
    pub conv1: ConvBn,
    /// Second conv unit (stride 1).
    pub conv2: ConvBn,
    /// Projection shortcut when the stride or width changes.
    pub downsample: Option<Downsample3d>,
}

impl VideoBlock {
    fn new(arch: VideoArch, inplanes: usize, planes: usize, stride: usize, dev: &Device) -> Self {
        let mid = r2plus1d_midplanes(inplanes, planes);
        let downsample = (stride != 1 || inplanes != planes).then(|| Downsample3d {
            conv: conv3d(inplanes, planes, [1, 1, 1], [stride; 3], [0, 0, 0], dev),
            bn: crate::norm::batch_norm(planes, dev),
        });
        Self {
            conv1: ConvBn::new(arch, inplanes, planes, mid, stride, dev),
            conv2: ConvBn::new(arch, planes, planes, mid, 1, dev),
            downsample,
        }
    }

    /// # Shapes
    /// - `x`: `[B, C_in, T, H, W]` -> `[B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let out = relu(self.conv1.forward(x.clone()));
        let out = self.conv2.forward(out);
        let residual = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        relu(out + residual)
    }
}

/// A conv unit of a block: the (2+1)D or 3D conv, then BN (torchvision `convN.0`, `convN.1`).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The spatio-temporal convolution.
    pub conv: SpatioTemporalConv,
    /// BN after it.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(arch: VideoArch, c_in: usize, c_out: usize, mid: usize, stride: usize, dev: &Device) -> Self {
        let conv = match arch {
            VideoArch::R2Plus1d18 => SpatioTemporalConv::Factored(Conv2Plus1d::new(c_in, c_out, mid, stride, dev)),
            VideoArch::R3d18 => SpatioTemporalConv::Full(conv3d(c_in, c_out, [3, 3, 3], [stride; 3], [1, 1, 1], dev)),
        };
        Self { conv, bn: crate::norm::batch_norm(c_out, dev) }
    }

    /// Conv then BN (the caller applies the ReLU where torchvision has one).
    ///
    /// # Shapes
    /// - `x`: `[B, C_in, T, H, W]` -> `[B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        batch_norm::forward(&self.bn, self.conv.forward(x))
    }
}

/// torchvision's conv builders.
// One value per network, built once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SpatioTemporalConv {
    /// `Conv3DSimple`: (3,3,3), stride (s,s,s), padding 1.
    Full(Conv3d),
    /// `Conv2Plus1D`.
    Factored(Conv2Plus1d),
}

impl SpatioTemporalConv {
    /// # Shapes
    /// - `x`: `[B, C_in, T, H, W]` -> `[B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match self {
            SpatioTemporalConv::Full(c) => conv::forward3d(c, x),
            SpatioTemporalConv::Factored(c) => c.forward(x),
        }
    }
}

/// torchvision `Conv2Plus1D`: conv (1,3,3) s(1,s,s) p(0,1,1) in->mid, BN, ReLU, conv (3,1,1) s(s,1,1) p(1,0,0) mid->out.
#[derive(Module, Debug)]
pub struct Conv2Plus1d {
    /// Spatial conv (`.0`).
    pub spatial: Conv3d,
    /// BN on the mid width (`.1`).
    pub bn: BatchNorm,
    /// Temporal conv (`.3`).
    pub temporal: Conv3d,
}

impl Conv2Plus1d {
    fn new(c_in: usize, c_out: usize, mid: usize, stride: usize, dev: &Device) -> Self {
        Self {
            spatial: conv3d(c_in, mid, [1, 3, 3], [1, stride, stride], [0, 1, 1], dev),
            bn: crate::norm::batch_norm(mid, dev),
            temporal: conv3d(mid, c_out, [3, 1, 1], [stride, 1, 1], [1, 0, 0], dev),
        }
    }

    /// # Shapes
    /// - `x`: `[B, C_in, T, H, W]` -> `[B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let x = batch_norm::forward_relu(&self.bn, conv::forward3d(&self.spatial, x)); // [B, mid, T, H/s, W/s]
        conv::forward3d(&self.temporal, x) // [B, C_out, T/s, H/s, W/s]
    }
}

/// Projection shortcut: 1x1x1 conv with stride (s,s,s), then BN (torchvision `downsample.0`, `.1`).
#[derive(Module, Debug)]
pub struct Downsample3d {
    /// The 1x1x1 conv.
    pub conv: Conv3d,
    /// BN after it.
    pub bn: BatchNorm,
}

impl Downsample3d {
    /// # Shapes
    /// - `x`: `[B, C_in, T, H, W]` -> `[B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        batch_norm::forward(&self.bn, conv::forward3d(&self.conv, x))
    }
}

/// Configuration of a [`VideoResNet`]: the encoder plus a classification fc, as torchvision builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoResNetConfig {
    /// The backbone.
    pub encoder: VideoEncoderConfig,
    /// Output classes of the fc (400 for torchvision's Kinetics-400 checkpoints).
    pub num_classes: usize,
}

impl VideoResNetConfig {
    /// torchvision's `r2plus1d_18()` / `r3d_18()` at the given preset with a 400-way fc.
    pub fn new(arch: VideoArch, preset: SizePreset) -> Self {
        Self { encoder: VideoEncoderConfig::new(arch, preset), num_classes: KINETICS400_CLASSES }
    }

    /// Set the number of classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Build the network (fc initialised N(0, 0.01), bias 0, as torchvision does).
    pub fn init(&self, device: &Device) -> VideoResNet {
        let encoder = self.encoder.init(device);
        let fc = LinearConfig::new(encoder.feature_dim(), self.num_classes)
            .with_initializer(Initializer::Normal { mean: 0.0, std: FC_INIT_STD })
            .init(device);
        let fc = Linear { bias: Some(Param::from_tensor(Tensor::zeros([self.num_classes], device))), ..fc };
        VideoResNet { encoder, fc }
    }
}

/// torchvision's `VideoResNet` (encoder + fc), for weight interop and parity checks.
#[derive(Module, Debug)]
pub struct VideoResNet {
    /// Stem, stages and pooling.
    pub encoder: VideoEncoder,
    /// The classification layer (torchvision `fc`).
    pub fc: Linear,
}

impl VideoResNet {
    /// The pooled representation before the fc.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, T, H, W]` -> `[batch, feature_dim]`
    pub fn forward_features(&self, x: Tensor<5>) -> Tensor<2> {
        self.encoder.forward(x)
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, T, H, W]` -> `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        self.fc.forward(self.forward_features(x))
    }
}
