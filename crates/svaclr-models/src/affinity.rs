//! The mapping l of the cross-affinity module (paper Eq. 2): identity (the paper's choice), linear, or 2-layer MLP.
//!
//! The module computes S_i[p,q] = <l(y_a_i^p), l(y_v_i^q)> / tau_lambda on L2-normalised outputs (in the loss
//! crate); this file only holds l. Linear and MLP maps send both towers to a common width, the video encoder's
//! representation width; the identity needs equal widths and refuses otherwise.

use std::fmt;
use std::str::FromStr;

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which mapping l the cross-affinity module applies to encoder representations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AffinityMapKind {
    /// l(y) = y (the paper's best; needs equal audio and video widths).
    Identity,
    /// l(y) = W y + b.
    Linear,
    /// l(y) = W2 relu(W1 y + b1) + b2.
    Mlp,
}

impl AffinityMapKind {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            AffinityMapKind::Identity => "identity",
            AffinityMapKind::Linear => "linear",
            AffinityMapKind::Mlp => "mlp",
        }
    }
}

impl fmt::Display for AffinityMapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AffinityMapKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "identity" => Ok(AffinityMapKind::Identity),
            "linear" => Ok(AffinityMapKind::Linear),
            "mlp" => Ok(AffinityMapKind::Mlp),
            _ => Err(ModelError::UnknownName {
                what: "affinity map",
                value: s.to_string(),
                expected: "identity, linear, mlp",
            }),
        }
    }
}

/// The pair of maps (video, audio) for representation widths `video_dim` and `audio_dim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityMapConfig {
    /// The mapping.
    pub kind: AffinityMapKind,
    /// Width of the video representation y_v.
    pub video_dim: usize,
    /// Width of the audio representation y_a.
    pub audio_dim: usize,
}

impl AffinityMapConfig {
    /// A config for the given widths.
    pub fn new(kind: AffinityMapKind, video_dim: usize, audio_dim: usize) -> Self {
        Self { kind, video_dim, audio_dim }
    }

    /// The common output width of both maps: the shared width for the identity, the video width otherwise.
    pub fn out_dim(&self) -> usize {
        self.video_dim
    }

    /// Refuse the identity with unequal widths, and zero widths.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.video_dim == 0 || self.audio_dim == 0 {
            return Err(ModelError::InvalidConfig {
                field: "affinity_map",
                reason: format!("needs positive widths, got video {} and audio {}", self.video_dim, self.audio_dim),
            });
        }
        if self.kind == AffinityMapKind::Identity && self.video_dim != self.audio_dim {
            return Err(ModelError::AffinityWidthMismatch { video_dim: self.video_dim, audio_dim: self.audio_dim });
        }
        Ok(())
    }

    /// Build `(map_video, map_audio)`.
    pub fn init(&self, device: &Device) -> Result<(AffinityMap, AffinityMap), ModelError> {
        self.validate()?;
        let out = self.out_dim();
        let make = |in_dim: usize| match self.kind {
            AffinityMapKind::Identity => AffinityMap { fc1: None, fc2: None },
            AffinityMapKind::Linear => {
                AffinityMap { fc1: Some(LinearConfig::new(in_dim, out).init(device)), fc2: None }
            }
            AffinityMapKind::Mlp => AffinityMap {
                fc1: Some(LinearConfig::new(in_dim, out).init(device)),
                fc2: Some(LinearConfig::new(out, out).init(device)),
            },
        };
        Ok((make(self.video_dim), make(self.audio_dim)))
    }
}

/// One tower's mapping l. Identity: no layers; linear: `fc1`; MLP: `fc1 -> ReLU -> fc2`.
#[derive(Module, Debug)]
pub struct AffinityMap {
    /// First (or only) linear.
    pub fc1: Option<Linear>,
    /// Second linear of the MLP.
    pub fc2: Option<Linear>,
}

impl AffinityMap {
    /// Which mapping this is.
    pub fn kind(&self) -> AffinityMapKind {
        match (&self.fc1, &self.fc2) {
            (None, _) => AffinityMapKind::Identity,
            (Some(_), None) => AffinityMapKind::Linear,
            (Some(_), Some(_)) => AffinityMapKind::Mlp,
        }
    }

    /// # Shapes
    /// - `y`: `[batch, in_dim]` -> `[batch, out_dim]` (identity: unchanged; not normalised)
    pub fn forward(&self, y: Tensor<2>) -> Tensor<2> {
        match (&self.fc1, &self.fc2) {
            (None, _) => y,
            (Some(fc1), None) => fc1.forward(y),
            (Some(fc1), Some(fc2)) => fc2.forward(relu(fc1.forward(y))),
        }
    }
}
