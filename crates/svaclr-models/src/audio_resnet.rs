//! GDT's audio encoder: the 9-layer 2D ResNet on log-mel spectrograms.
//!
//! Source: GDT (Patrick et al.) builds it as torchvision `ResNet(BasicBlock, [1, 1, 1, 1])` with a one-channel
//! `conv1` (7x7, stride 2, padding 3), the usual BN, ReLU and 3x3/2 max-pool, stages of width 64/128/256/512 and a
//! global average pool; 4,899,520 parameters without the fc. Field names are torchvision's (`conv1`, `bn1`,
//! `layer1..4`, `downsample`, `fc`).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::preset::SizePreset;
use crate::{batch_norm, conv};

/// Blocks per stage of the audio ResNet-9 (1 conv + 4 stages x 1 block x 2 convs = 9 conv layers).
pub const AUDIO_RESNET9_BLOCKS: [usize; 4] = [1, 1, 1, 1];
/// Stride of each stage's first block.
const STAGE_STRIDES: [usize; 4] = [1, 2, 2, 2];
/// Input channels: one log-mel spectrogram.
pub const AUDIO_IN_CHANNELS: usize = 1;
/// The stem conv's kernel, stride and padding (torchvision `conv1`).
const STEM_KERNEL: usize = 7;
const STEM_STRIDE: usize = 2;
const STEM_PAD: usize = 3;
/// The stem max-pool's kernel, stride and padding.
const POOL_KERNEL: usize = 3;
const POOL_STRIDE: usize = 2;
const POOL_PAD: usize = 1;

fn conv_init() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }
}

/// A bias-free 2D convolution with symmetric padding.
fn conv2d(c_in: usize, c_out: usize, kernel: usize, stride: usize, pad: usize, dev: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(conv_init())
        .init(dev)
}

/// Configuration of an [`AudioEncoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioEncoderConfig {
    /// Width preset.
    pub preset: SizePreset,
}

impl AudioEncoderConfig {
    /// A config at `preset`.
    pub fn new(preset: SizePreset) -> Self {
        Self { preset }
    }

    /// Build the encoder with torchvision's initialisation.
    pub fn init(&self, device: &Device) -> AudioEncoder {
        let widths = self.preset.widths();
        let mut inplanes = widths[0];
        let mut stages = Vec::with_capacity(4);
        for ((&planes, &blocks), &stride) in widths.iter().zip(&AUDIO_RESNET9_BLOCKS).zip(&STAGE_STRIDES) {
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let s = if b == 0 { stride } else { 1 };
                stage.push(AudioBlock::new(inplanes, planes, s, device));
                inplanes = planes;
            }
            stages.push(stage);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        AudioEncoder {
            conv1: conv2d(AUDIO_IN_CHANNELS, widths[0], STEM_KERNEL, STEM_STRIDE, STEM_PAD, device),
            bn1: crate::norm::batch_norm(widths[0], device),
            maxpool: MaxPool2dConfig::new([POOL_KERNEL, POOL_KERNEL])
                .with_strides([POOL_STRIDE, POOL_STRIDE])
                .with_padding(PaddingConfig2d::Explicit(POOL_PAD, POOL_PAD, POOL_PAD, POOL_PAD))
                .init(),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            out_channels: inplanes,
        }
    }
}

/// The audio encoder g: torchvision `ResNet(BasicBlock, [1,1,1,1])` on one-channel spectrograms, up to the pool.
#[derive(Module, Debug)]
pub struct AudioEncoder {
    /// 7x7 stride-2 conv, 1 -> C1.
    pub conv1: Conv2d,
    /// BN after it.
    pub bn1: BatchNorm,
    /// 3x3 stride-2 max-pool, padding 1.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1).
    pub layer1: Vec<AudioBlock>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<AudioBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<AudioBlock>,
    /// Stage 4 (stride 2).
    pub layer4: Vec<AudioBlock>,
    /// Width of the output representation.
    pub out_channels: usize,
}

impl AudioEncoder {
    /// Encode spectrograms into representations y.
    ///
    /// # Shapes
    /// - `x`: `[batch, 1, mel_bins, frames]`
    /// - output: `[batch, feature_dim]` (global average of the last stage)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.forward_map(x); // [B, C4, F/32, T/32]
        let [b, c, _, _] = x.dims();
        x.flatten::<3>(2, 3).mean_dim(2).reshape([b, c]) // [B, C4]
    }

    /// The last stage's feature map, before pooling.
    ///
    /// # Shapes
    /// - `x`: `[batch, 1, F, T]` -> `[batch, feature_dim, ~F/32, ~T/32]`
    pub fn forward_map(&self, x: Tensor<4>) -> Tensor<4> {
        let x = batch_norm::forward_relu(&self.bn1, conv::forward2d(&self.conv1, x)); // [B, C1, F/2, T/2]
        let mut x = self.maxpool.forward(x); // [B, C1, F/4, T/4]
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4) {
            x = block.forward(x);
        }
        x
    }

    /// Width of the representation this encoder outputs (512 at full size).
    pub fn feature_dim(&self) -> usize {
        self.out_channels
    }
}

/// torchvision 2D `BasicBlock`: conv3x3(s), BN, ReLU, conv3x3, BN, + shortcut, ReLU.
#[derive(Module, Debug)]
pub struct AudioBlock {
    /// First 3x3 conv (stride s).
    pub conv1: Conv2d,
    /// BN after it.
    pub bn1: BatchNorm,
    /// Second 3x3 conv.
    pub conv2: Conv2d,
    /// BN after it.
    pub bn2: BatchNorm,
    /// Projection shortcut when the stride or width changes.
    pub downsample: Option<Downsample2d>,
}

impl AudioBlock {
    fn new(inplanes: usize, planes: usize, stride: usize, dev: &Device) -> Self {
        let downsample = (stride != 1 || inplanes != planes).then(|| Downsample2d {
            conv: conv2d(inplanes, planes, 1, stride, 0, dev),
            bn: crate::norm::batch_norm(planes, dev),
        });
        Self {
            conv1: conv2d(inplanes, planes, 3, stride, 1, dev),
            bn1: crate::norm::batch_norm(planes, dev),
            conv2: conv2d(planes, planes, 3, 1, 1, dev),
            bn2: crate::norm::batch_norm(planes, dev),
            downsample,
        }
    }

    /// # Shapes
    /// - `x`: `[B, C_in, F, T]` -> `[B, C_out, ceil(F/s), ceil(T/s)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = batch_norm::forward_relu(&self.bn1, conv::forward2d(&self.conv1, x.clone()));
        let out = batch_norm::forward(&self.bn2, conv::forward2d(&self.conv2, out));
        let residual = match &self.downsample {
            Some(d) => batch_norm::forward(&d.bn, conv::forward2d(&d.conv, x)),
            None => x,
        };
        relu(out + residual)
    }
}

/// Projection shortcut: 1x1 conv with stride s, then BN (torchvision `downsample.0`, `.1`).
#[derive(Module, Debug)]
pub struct Downsample2d {
    /// The 1x1 conv.
    pub conv: Conv2d,
    /// BN after it.
    pub bn: BatchNorm,
}

/// Configuration of an [`AudioResNet`] (encoder + fc, as torchvision's `ResNet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioResNetConfig {
    /// The backbone.
    pub encoder: AudioEncoderConfig,
    /// Output classes of the fc.
    pub num_classes: usize,
}

impl AudioResNetConfig {
    /// The network at `preset` with a `num_classes`-way fc.
    pub fn new(preset: SizePreset, num_classes: usize) -> Self {
        Self { encoder: AudioEncoderConfig::new(preset), num_classes }
    }

    /// Build it (fc with PyTorch's default `nn.Linear` initialisation, which Burn's default matches).
    pub fn init(&self, device: &Device) -> AudioResNet {
        let encoder = self.encoder.init(device);
        let fc = LinearConfig::new(encoder.feature_dim(), self.num_classes).init(device);
        AudioResNet { encoder, fc }
    }
}

/// torchvision's `ResNet(BasicBlock, [1,1,1,1])` with a one-channel input and its fc, for interop and parity.
#[derive(Module, Debug)]
pub struct AudioResNet {
    /// Everything before the fc.
    pub encoder: AudioEncoder,
    /// The classification layer (torchvision `fc`).
    pub fc: Linear,
}

impl AudioResNet {
    /// The pooled representation before the fc.
    ///
    /// # Shapes
    /// - `x`: `[batch, 1, F, T]` -> `[batch, feature_dim]`
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(x)
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, 1, F, T]` -> `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.forward_features(x))
    }
}
