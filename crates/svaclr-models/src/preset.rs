//! Architecture names and size presets shared by the encoders.
//!
//! The `full` preset is the paper's network (torchvision's widths 64/128/256/512 and the R(2+1)D stem's 45
//! channels). The CPU presets keep the same topology, depths, strides and the same (2+1)D mid-width formula, and
//! only divide every width: `small` by 2, `tiny` by 8.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Stage widths of torchvision's 18-layer ResNets (video and 2D), full size.
pub const RESNET_WIDTHS: [usize; 4] = [64, 128, 256, 512];
/// Width of the R(2+1)D stem's intermediate (spatial conv) output, full size.
pub const R2PLUS1D_STEM_MID: usize = 45;

/// Which video network: torchvision's `r2plus1d_18` (the paper's) or `r3d_18`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VideoArch {
    /// R(2+1)D-18: every 3x3x3 conv factored into (1,3,3) spatial then (3,1,1) temporal.
    #[serde(rename = "r2plus1d_18")]
    R2Plus1d18,
    /// R3D-18: full 3x3x3 convs.
    #[serde(rename = "r3d_18")]
    R3d18,
}

impl VideoArch {
    /// Every video architecture.
    pub const ALL: [VideoArch; 2] = [VideoArch::R2Plus1d18, VideoArch::R3d18];

    /// The torchvision name (also the config spelling).
    pub fn name(self) -> &'static str {
        match self {
            VideoArch::R2Plus1d18 => "r2plus1d_18",
            VideoArch::R3d18 => "r3d_18",
        }
    }
}

impl fmt::Display for VideoArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VideoArch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "r2plus1d_18" => Ok(VideoArch::R2Plus1d18),
            "r3d_18" => Ok(VideoArch::R3d18),
            _ => Err(ModelError::UnknownName {
                what: "video architecture",
                value: s.to_string(),
                expected: "r2plus1d_18, r3d_18",
            }),
        }
    }
}

/// Network size: `full` is the paper's; `small` and `tiny` divide every width by 2 and 8 for CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizePreset {
    /// The paper's widths: 64/128/256/512 (stem 45).
    Full,
    /// Half width: 32/64/128/256 (stem 23).
    Small,
    /// One eighth: 8/16/32/64 (stem 6).
    Tiny,
}

impl SizePreset {
    /// Every preset, largest first.
    pub const ALL: [SizePreset; 3] = [SizePreset::Full, SizePreset::Small, SizePreset::Tiny];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            SizePreset::Full => "full",
            SizePreset::Small => "small",
            SizePreset::Tiny => "tiny",
        }
    }

    /// The factor every channel count is divided by.
    pub fn width_divisor(self) -> usize {
        match self {
            SizePreset::Full => 1,
            SizePreset::Small => 2,
            SizePreset::Tiny => 8,
        }
    }

    /// Scale a full-size channel count, rounding to the nearest integer (halves up), never below 1.
    pub fn scale(self, full: usize) -> usize {
        let d = self.width_divisor();
        ((full + d / 2) / d).max(1)
    }

    /// The four stage widths of the 18-layer ResNets (video and audio).
    pub fn widths(self) -> [usize; 4] {
        RESNET_WIDTHS.map(|w| self.scale(w))
    }

    /// Width of the R(2+1)D stem's spatial conv output (45 at full size).
    pub fn r2plus1d_stem_mid(self) -> usize {
        self.scale(R2PLUS1D_STEM_MID)
    }

    /// Width of the encoders' representation y (the last stage width).
    pub fn feature_dim(self) -> usize {
        self.widths()[3]
    }
}

impl fmt::Display for SizePreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SizePreset {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(SizePreset::Full),
            "small" => Ok(SizePreset::Small),
            "tiny" => Ok(SizePreset::Tiny),
            _ => Err(ModelError::UnknownName {
                what: "size preset",
                value: s.to_string(),
                expected: "full, small, tiny",
            }),
        }
    }
}

/// The (2+1)D mid width of torchvision's `BasicBlock`: `(in*out*27) // (in*9 + 3*out)`, which gives the factored
/// pair the parameter count of one full 3x3x3 conv. Computed once per block from (inplanes, planes) and used by
/// both of its convs.
pub fn r2plus1d_midplanes(inplanes: usize, planes: usize) -> usize {
    (inplanes * planes * 3 * 3 * 3) / (inplanes * 3 * 3 + 3 * planes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_per_preset() {
        assert_eq!(SizePreset::Full.widths(), [64, 128, 256, 512]);
        assert_eq!(SizePreset::Small.widths(), [32, 64, 128, 256]);
        assert_eq!(SizePreset::Tiny.widths(), [8, 16, 32, 64]);
        assert_eq!(SizePreset::Full.r2plus1d_stem_mid(), 45);
        assert_eq!(SizePreset::Small.r2plus1d_stem_mid(), 23);
        assert_eq!(SizePreset::Tiny.r2plus1d_stem_mid(), 6);
    }

    #[test]
    fn midplanes_match_torchvision() {
        // torchvision r2plus1d_18: layer1 (64,64) -> 144, layer2 first block (64,128) -> 230, then (128,128) -> 288.
        assert_eq!(r2plus1d_midplanes(64, 64), 144);
        assert_eq!(r2plus1d_midplanes(64, 128), 230);
        assert_eq!(r2plus1d_midplanes(128, 128), 288);
        assert_eq!(r2plus1d_midplanes(256, 512), 921);
    }

    #[test]
    fn names_round_trip() {
        for a in VideoArch::ALL {
            assert_eq!(a.name().parse::<VideoArch>().ok(), Some(a));
            assert_eq!(serde_json::to_string(&a).ok(), Some(format!("\"{}\"", a.name())));
        }
        for p in SizePreset::ALL {
            assert_eq!(p.name().parse::<SizePreset>().ok(), Some(p));
            assert_eq!(serde_json::to_string(&p).ok(), Some(format!("\"{}\"", p.name())));
        }
        assert!("r2plus1d".parse::<VideoArch>().is_err());
    }
}
