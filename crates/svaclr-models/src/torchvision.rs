//! torchvision-shaped networks (encoder + fc) under one type, for weight interop, the `svaclr forward` command and
//! parity checks against PyTorch.

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;

use crate::audio_resnet::{AUDIO_IN_CHANNELS, AudioResNet, AudioResNetConfig};
use crate::preset::{SizePreset, VideoArch};
use crate::video_resnet::{VideoResNet, VideoResNetConfig, VideoStem};
use crate::{ModelError, VideoEncoder};

/// RGB input channels of the video networks.
pub const VIDEO_IN_CHANNELS: usize = 3;

/// The three networks whose torchvision checkpoints this crate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorchvisionArch {
    /// torchvision `r2plus1d_18`.
    R2Plus1d18,
    /// torchvision `r3d_18`.
    R3d18,
    /// GDT's audio encoder: torchvision `ResNet(BasicBlock, [1,1,1,1])` with a one-channel `conv1`.
    AudioResNet9,
}

impl TorchvisionArch {
    /// Every architecture.
    pub const ALL: [TorchvisionArch; 3] =
        [TorchvisionArch::R2Plus1d18, TorchvisionArch::R3d18, TorchvisionArch::AudioResNet9];

    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            TorchvisionArch::R2Plus1d18 => "r2plus1d_18",
            TorchvisionArch::R3d18 => "r3d_18",
            TorchvisionArch::AudioResNet9 => "audio_resnet9",
        }
    }

    /// The video architecture, if this is a video network.
    pub fn video_arch(self) -> Option<VideoArch> {
        match self {
            TorchvisionArch::R2Plus1d18 => Some(VideoArch::R2Plus1d18),
            TorchvisionArch::R3d18 => Some(VideoArch::R3d18),
            TorchvisionArch::AudioResNet9 => None,
        }
    }

    /// Rank and channel count of the input: `[B, 3, T, H, W]` for video, `[B, 1, F, T]` for audio.
    pub fn input_rank_and_channels(self) -> (usize, usize) {
        match self {
            TorchvisionArch::AudioResNet9 => (4, AUDIO_IN_CHANNELS),
            _ => (5, VIDEO_IN_CHANNELS),
        }
    }
}

impl From<VideoArch> for TorchvisionArch {
    fn from(a: VideoArch) -> Self {
        match a {
            VideoArch::R2Plus1d18 => TorchvisionArch::R2Plus1d18,
            VideoArch::R3d18 => TorchvisionArch::R3d18,
        }
    }
}

impl fmt::Display for TorchvisionArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TorchvisionArch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TorchvisionArch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| ModelError::UnknownName {
            what: "architecture",
            value: s.to_string(),
            expected: "r2plus1d_18, r3d_18, audio_resnet9",
        })
    }
}

/// A torchvision-shaped network: a video ResNet or the audio ResNet-9, each with its fc.
// One value per network, built once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TorchvisionNet {
    /// `r2plus1d_18` or `r3d_18`.
    Video(VideoResNet),
    /// `audio_resnet9`.
    Audio(AudioResNet),
}

/// Features and logits of one forward pass.
#[derive(Clone, Debug)]
pub struct NetOutput {
    /// Pooled representation before the fc: `[B, feature_dim]`.
    pub features: Tensor<2>,
    /// fc output: `[B, num_classes]`.
    pub logits: Tensor<2>,
}

impl TorchvisionNet {
    /// A freshly initialised network of `arch` at `preset` with a `num_classes`-way fc.
    pub fn init(arch: TorchvisionArch, preset: SizePreset, num_classes: usize, device: &Device) -> Self {
        match arch.video_arch() {
            Some(v) => {
                TorchvisionNet::Video(VideoResNetConfig::new(v, preset).with_num_classes(num_classes).init(device))
            }
            None => TorchvisionNet::Audio(AudioResNetConfig::new(preset, num_classes).init(device)),
        }
    }

    /// Which architecture this is.
    pub fn arch(&self) -> TorchvisionArch {
        match self {
            TorchvisionNet::Video(v) => v.encoder.arch().into(),
            TorchvisionNet::Audio(_) => TorchvisionArch::AudioResNet9,
        }
    }

    /// Switch to inference: BatchNorm uses its running statistics, dropout is off, no autodiff graph.
    pub fn valid(&self) -> Self {
        match self {
            TorchvisionNet::Video(v) => TorchvisionNet::Video(v.valid()),
            TorchvisionNet::Audio(a) => TorchvisionNet::Audio(a.valid()),
        }
    }

    /// Run the network on host data, checking its shape first (wrong shapes are errors, not panics).
    ///
    /// # Shapes
    /// - `input`: `[B, 3, T, H, W]` (video) or `[B, 1, F, T]` (audio), float
    /// - output: features `[B, feature_dim]`, logits `[B, num_classes]`
    pub fn forward_data(&self, input: TensorData, device: &Device) -> Result<NetOutput, ModelError> {
        let (rank, channels) = self.arch().input_rank_and_channels();
        let shape = input.shape().to_vec();
        if shape.len() != rank || shape[1] != channels || shape.contains(&0) {
            let want = if rank == 5 { "[B, 3, T, H, W]" } else { "[B, 1, F, T]" };
            let reason = format!("{} takes shape {want} with no zero size, got {shape:?}", self.arch());
            return Err(ModelError::InvalidInput { reason });
        }
        let input = input.convert::<f32>();
        Ok(match self {
            TorchvisionNet::Video(v) => {
                let features = v.forward_features(Tensor::<5>::from_data(input, device));
                NetOutput { logits: v.fc.forward(features.clone()), features }
            }
            TorchvisionNet::Audio(a) => {
                let features = a.forward_features(Tensor::<4>::from_data(input, device));
                NetOutput { logits: a.fc.forward(features.clone()), features }
            }
        })
    }
}

impl VideoEncoder {
    /// Which architecture this encoder is (read from its stem).
    pub fn arch(&self) -> VideoArch {
        match self.stem {
            VideoStem::R2Plus1d(_) => VideoArch::R2Plus1d18,
            VideoStem::R3d(_) => VideoArch::R3d18,
        }
    }
}
