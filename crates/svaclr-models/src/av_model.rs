//! The two-tower model SvaCLR pre-trains: video encoder f, audio encoder g, projectors h_v, h_a and the
//! cross-affinity maps l (paper Sec. 2, Fig. 2).

use burn::module::ParamGroup;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::affinity::{AffinityMap, AffinityMapConfig, AffinityMapKind};
use crate::audio_resnet::{AudioEncoder, AudioEncoderConfig};
use crate::preset::{SizePreset, VideoArch};
use crate::projector::{Projector, ProjectorConfig};
use crate::video_resnet::{VideoEncoder, VideoEncoderConfig, VideoInput};

/// Projection width of GDT and the paper (128; 256 is the other common choice).
pub const DEFAULT_PROJ_DIM: usize = 128;

/// Everything that fixes the networks of an [`AvModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Video encoder: `"r2plus1d_18"` (the paper's) or `"r3d_18"`.
    pub video_arch: VideoArch,
    /// Width preset of both encoders: `"full"` (the paper's), `"small"` (x1/2) or `"tiny"` (x1/8).
    pub preset: SizePreset,
    /// Hidden width of both projectors (512 in the paper, i.e. the representation width at full size).
    pub proj_hidden: usize,
    /// Output width of both projectors (128).
    pub proj_dim: usize,
    /// Mapping l of the cross-affinity module: `"identity"` (the paper's), `"linear"` or `"mlp"`.
    pub affinity_map: AffinityMapKind,
    /// BatchNorm in training: `"batch"` (the default and the paper's; may be left out) or `"frozen"`.
    #[serde(default, skip_serializing_if = "NormMode::is_batch")]
    pub norm: NormMode,
    /// What the video encoder sees: `"rgb"` (the default and the paper's; may be left out) or
    /// `"temporal_residual"` (each frame minus the clip's mean frame; the CPU presets on SynthAV).
    #[serde(default, skip_serializing_if = "VideoInput::is_rgb")]
    pub video_input: VideoInput,
}

/// How every BatchNorm of an [`AvModel`] behaves while training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormMode {
    /// Batch statistics while training, running averages in inference (the paper's).
    #[default]
    Batch,
    /// Every BatchNorm normalises with its running statistics (as in inference: mean 0 and variance 1 as
    /// initialised) and never updates them; its scale and shift still train. Each clip's output then depends on that
    /// clip alone, not on the rest of its batch, which is what a test needs to compare runs that split a batch
    /// differently (one process with batch B against P processes with B/P each, docs/distributed.md). Not for real
    /// pre-training.
    Frozen,
}

impl NormMode {
    /// The default (kept out of serialised configs so that their hashes do not change).
    pub fn is_batch(&self) -> bool {
        *self == NormMode::Batch
    }
}

impl ModelConfig {
    /// The paper's model: R(2+1)D-18 and ResNet-9 at full width, projectors 512 -> 512 -> 128, identity map.
    pub fn paper() -> Self {
        Self::for_preset(VideoArch::R2Plus1d18, SizePreset::Full)
    }

    /// `arch` at `preset` with the paper's head choices scaled to the preset: hidden width = representation width,
    /// output 128, identity map.
    pub fn for_preset(video_arch: VideoArch, preset: SizePreset) -> Self {
        Self {
            video_arch,
            preset,
            proj_hidden: preset.feature_dim(),
            proj_dim: DEFAULT_PROJ_DIM,
            affinity_map: AffinityMapKind::Identity,
            norm: NormMode::Batch,
            video_input: VideoInput::Rgb,
        }
    }

    /// Width of the video representation y_v.
    pub fn video_dim(&self) -> usize {
        self.preset.feature_dim()
    }

    /// Width of the audio representation y_a.
    pub fn audio_dim(&self) -> usize {
        self.preset.feature_dim()
    }

    fn affinity(&self) -> AffinityMapConfig {
        AffinityMapConfig::new(self.affinity_map, self.video_dim(), self.audio_dim())
    }

    fn projector(&self, in_dim: usize) -> ProjectorConfig {
        ProjectorConfig::new(in_dim, self.proj_hidden, self.proj_dim)
    }

    /// Check the widths and that the affinity map fits the encoders.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.projector(self.video_dim()).validate()?;
        self.projector(self.audio_dim()).validate()?;
        self.affinity().validate()
    }

    /// Build the model with fresh weights.
    pub fn init(&self, device: &Device) -> Result<AvModel, ModelError> {
        self.validate()?;
        let video = VideoEncoderConfig::new(self.video_arch, self.preset).with_input(self.video_input).init(device);
        let audio = AudioEncoderConfig::new(self.preset).init(device);
        let proj_video = self.projector(video.feature_dim()).init(device)?;
        let proj_audio = self.projector(audio.feature_dim()).init(device)?;
        let (map_video, map_audio) = self.affinity().init(device)?;
        let model = AvModel { video, audio, proj_video, proj_audio, map_video, map_audio };
        Ok(match self.norm {
            NormMode::Batch => model,
            // Only the layers' training flags: gamma and beta keep requiring gradients.
            NormMode::Frozen => match ParamGroup::from_regex(r"(^|\.)training$") {
                Ok(flags) => model.freeze_group(flags),
                Err(e) => {
                    return Err(ModelError::InvalidConfig { field: "norm", reason: format!("{e:?}") });
                }
            },
        })
    }

    /// Build the model with fresh weights drawn on the flex CPU device (seed it with `Device::flex().seed(s)`) and
    /// then moved to `device` ready for training, so that one seed gives the same initial weights on every backend
    /// (their random generators differ). On flex this is [`ModelConfig::init`] with every parameter drawn up front.
    pub fn init_portable(&self, device: &Device) -> Result<AvModel, ModelError> {
        let model = self.init(&Device::flex().autodiff())?;
        crate::materialize(&model);
        Ok(model.fork(device))
    }
}

/// Video encoder, audio encoder, their projectors and cross-affinity maps.
#[derive(Module, Debug)]
pub struct AvModel {
    /// f: R(2+1)D-18 or R3D-18.
    pub video: VideoEncoder,
    /// g: ResNet-9 on log-mel spectrograms.
    pub audio: AudioEncoder,
    /// h_v.
    pub proj_video: Projector,
    /// h_a.
    pub proj_audio: Projector,
    /// l on video representations.
    pub map_video: AffinityMap,
    /// l on audio representations.
    pub map_audio: AffinityMap,
}

/// What one forward pass of an [`AvModel`] produces.
#[derive(Clone, Debug)]
pub struct AvOutput {
    /// Video representations y_v: `[B, video_dim]`.
    pub y_video: Tensor<2>,
    /// Audio representations y_a: `[B, audio_dim]`.
    pub y_audio: Tensor<2>,
    /// Video projections z_v: `[B, proj_dim]` (not normalised).
    pub z_video: Tensor<2>,
    /// Audio projections z_a: `[B, proj_dim]` (not normalised).
    pub z_audio: Tensor<2>,
    /// l(y_v): `[B, map_dim]` (not normalised).
    pub l_video: Tensor<2>,
    /// l(y_a): `[B, map_dim]` (not normalised).
    pub l_audio: Tensor<2>,
}

impl AvModel {
    /// Run both towers.
    ///
    /// # Shapes
    /// - `video`: `[B, 3, T, H, W]`
    /// - `audio`: `[B, 1, F, Tspec]`
    /// - output: see [`AvOutput`]
    pub fn forward(&self, video: Tensor<5>, audio: Tensor<4>) -> AvOutput {
        let y_video = self.video.forward(video); // [B, Dv]
        let y_audio = self.audio.forward(audio); // [B, Da]
        let z_video = self.proj_video.forward(y_video.clone()); // [B, P]
        let z_audio = self.proj_audio.forward(y_audio.clone()); // [B, P]
        let l_video = self.map_video.forward(y_video.clone()); // [B, M]
        let l_audio = self.map_audio.forward(y_audio.clone()); // [B, M]
        AvOutput { y_video, y_audio, z_video, z_audio, l_video, l_audio }
    }
}
