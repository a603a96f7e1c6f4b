//! Backend selection: the one place that turns a `--device` string into a Burn [`Device`].
//!
//! Accepted spellings: `flex` (default, pure-Rust CPU), `cuda` / `cuda:N` (cargo feature `cuda`), `tch-cpu`
//! (cargo feature `tch`, LibTorch on the CPU) and `tch-cuda` / `tch-cuda:N` (feature `tch`). Asking for a backend
//! that was not compiled in is an error that names the feature to enable.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;

/// A parsed `--device` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn-flex: pure Rust, CPU, always compiled.
    Flex,
    /// CubeCL CUDA device with the given index (feature `cuda`).
    Cuda(usize),
    /// LibTorch on the CPU (feature `tch`).
    TchCpu,
    /// LibTorch CUDA device with the given index (feature `tch`).
    TchCuda(usize),
}

/// Why a `--device` value could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error(
        "unknown device '{0}': expected flex, cuda[:N], tch-cpu or tch-cuda[:N], or a comma-separated list of them"
    )]
    Unknown(String),
    #[error("--device {list}: {device} is listed twice")]
    Repeated { list: String, device: String },
    #[error("--device {list}: the devices of one run must be of one backend (their float rounding must agree)")]
    Mixed { list: String },
    #[error(
        "device '{device}' needs the '{feature}' cargo feature, which this build does not have (rebuild with `--features {feature}`)"
    )]
    NotCompiled { device: String, feature: &'static str },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, index) = match s.split_once(':') {
            Some((name, idx)) => {
                let idx = idx.parse::<usize>().map_err(|_| DeviceError::Unknown(s.to_string()))?;
                (name, Some(idx))
            }
            None => (s, None),
        };
        match (name, index) {
            ("flex", None) => Ok(Self::Flex),
            ("cuda", i) => Ok(Self::Cuda(i.unwrap_or(0))),
            ("tch-cpu", None) => Ok(Self::TchCpu),
            ("tch-cuda", i) => Ok(Self::TchCuda(i.unwrap_or(0))),
            _ => Err(DeviceError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flex => write!(f, "flex"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::TchCpu => write!(f, "tch-cpu"),
            Self::TchCuda(i) => write!(f, "tch-cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The cargo feature this backend needs, if any.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Self::Flex => None,
            Self::Cuda(_) => Some("cuda"),
            Self::TchCpu | Self::TchCuda(_) => Some("tch"),
        }
    }

    /// Whether the device is a CPU (`flex`, `tch-cpu`).
    pub fn is_cpu(&self) -> bool {
        matches!(self, Self::Flex | Self::TchCpu)
    }

    /// Whether this build can construct the device.
    pub fn is_compiled(&self) -> bool {
        match self.feature() {
            None => true,
            Some(f) => compiled_features().contains(&f),
        }
    }

    /// The Burn device (without autodiff; call `.autodiff()` for training).
    #[allow(deprecated, unreachable_code)] // LibTorch constructors are deprecated upstream but still supported.
    pub fn device(&self) -> Result<Device, DeviceError> {
        let not_compiled = |feature| DeviceError::NotCompiled { device: self.to_string(), feature };
        match *self {
            Self::Flex => Ok(Device::flex()),
            Self::Cuda(_i) => {
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(_i));
                Err(not_compiled("cuda"))
            }
            Self::TchCpu => {
                #[cfg(feature = "tch")]
                return Ok(Device::libtorch());
                Err(not_compiled("tch"))
            }
            Self::TchCuda(_i) => {
                #[cfg(feature = "tch")]
                return Ok(Device::libtorch_cuda(_i));
                Err(not_compiled("tch"))
            }
        }
    }
}

/// Parse and construct in one step: `parse_device("tch-cpu")`.
pub fn parse_device(s: &str) -> Result<(DeviceSpec, Device), DeviceError> {
    let spec: DeviceSpec = s.parse()?;
    let device = spec.device()?;
    Ok((spec, device))
}

/// The optional backend features this build was compiled with.
pub fn compiled_features() -> &'static [&'static str] {
    &[
        #[cfg(feature = "cuda")]
        "cuda",
        #[cfg(feature = "tch")]
        "tch",
    ]
}

/// Backends this build can run, as `--device` spellings.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = vec!["flex"];
    if cfg!(feature = "cuda") {
        v.push("cuda[:N]");
    }
    if cfg!(feature = "tch") {
        v.extend(["tch-cpu", "tch-cuda[:N]"]);
    }
    v
}

/// What this build knows about LibTorch (feature `tch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibTorchInfo {
    /// LibTorch's version as built against, e.g. `2.9.0+cu128` (read from the installation at build time).
    pub version: &'static str,
    /// The directory the executables load LibTorch from (written into them as a run-time search path).
    pub lib_dir: &'static str,
    /// CUDA devices LibTorch can use (`torch.cuda.device_count()`); 0 on a CPU-only machine.
    pub cuda_devices: usize,
}

/// LibTorch's version, location and visible CUDA devices; `None` when this build lacks the `tch` feature.
#[cfg(feature = "tch")]
pub fn libtorch_info() -> Option<LibTorchInfo> {
    Some(LibTorchInfo {
        version: option_env!("SVACLR_LIBTORCH_VERSION").unwrap_or("unknown"),
        lib_dir: option_env!("SVACLR_LIBTORCH_LIB").unwrap_or("unknown"),
        cuda_devices: usize::try_from(tch::Cuda::device_count()).unwrap_or(0),
    })
}

/// LibTorch's version, location and visible CUDA devices; `None` when this build lacks the `tch` feature.
#[cfg(not(feature = "tch"))]
pub fn libtorch_info() -> Option<LibTorchInfo> {
    None
}

/// Devices this build can see: always the flex CPU device, plus CUDA devices (CubeCL's, LibTorch's) when compiled
/// in.
pub fn visible_devices() -> Vec<String> {
    #[allow(unused_mut)]
    let mut v = vec!["flex (CPU)".to_string()];
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::DeviceType;
        let n = Device::enumerate(DeviceType::Cuda).into_vec().len();
        for i in 0..n {
            v.push(format!("cuda:{i}"));
        }
    }
    if let Some(torch) = libtorch_info() {
        v.push("tch-cpu (LibTorch)".to_string());
        v.extend((0..torch.cuda_devices).map(|i| format!("tch-cuda:{i}")));
    }
    v
}

/// Parse a `--device` value that may list several devices for data-parallel training in one process
/// (`cuda:0,1`, `cuda:0,cuda:1`, `flex,flex`): a bare number after the first entry repeats the first entry's
/// backend. One spec per device; a GPU listed twice is an error (two `flex` entries are two replicas on the CPU, as
/// the tests use them).
pub fn parse_device_list(s: &str) -> Result<Vec<DeviceSpec>, DeviceError> {
    let mut specs: Vec<DeviceSpec> = Vec::new();
    for part in s.split(',').map(str::trim) {
        let spec = match (specs.first(), part.parse::<usize>()) {
            (Some(DeviceSpec::Cuda(_)), Ok(i)) => DeviceSpec::Cuda(i),
            (Some(DeviceSpec::TchCuda(_)), Ok(i)) => DeviceSpec::TchCuda(i),
            _ => part.parse::<DeviceSpec>().map_err(|_| DeviceError::Unknown(s.to_string()))?,
        };
        if specs.contains(&spec) && spec != DeviceSpec::Flex && spec != DeviceSpec::TchCpu {
            return Err(DeviceError::Repeated { list: s.to_string(), device: spec.to_string() });
        }
        // Replicas must round alike to stay identical: one backend for every device.
        if let Some(first) = specs.first()
            && std::mem::discriminant(first) != std::mem::discriminant(&spec)
        {
            return Err(DeviceError::Mixed { list: s.to_string() });
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("flex".parse(), Ok(DeviceSpec::Flex));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!("tch-cpu".parse(), Ok(DeviceSpec::TchCpu));
        assert_eq!("tch-cuda:1".parse(), Ok(DeviceSpec::TchCuda(1)));
        assert!(matches!("gpu".parse::<DeviceSpec>(), Err(DeviceError::Unknown(_))));
        assert!(matches!("cuda:x".parse::<DeviceSpec>(), Err(DeviceError::Unknown(_))));
        assert!(matches!("flex:1".parse::<DeviceSpec>(), Err(DeviceError::Unknown(_))));
    }

    #[test]
    fn device_lists_parse() {
        assert_eq!(
            parse_device_list("cuda:0,1,3"),
            Ok(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1), DeviceSpec::Cuda(3)])
        );
        assert_eq!(parse_device_list("cuda:2, cuda:0"), Ok(vec![DeviceSpec::Cuda(2), DeviceSpec::Cuda(0)]));
        assert_eq!(parse_device_list("cuda,1"), Ok(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]));
        assert_eq!(parse_device_list("flex,flex"), Ok(vec![DeviceSpec::Flex, DeviceSpec::Flex]));
        assert_eq!(parse_device_list("flex"), Ok(vec![DeviceSpec::Flex]));
        assert!(matches!(parse_device_list("cuda:0,gpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse_device_list("0,1"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse_device_list("cuda:1,1"), Err(DeviceError::Repeated { .. })));
        assert!(matches!(parse_device_list("flex,cuda:0"), Err(DeviceError::Mixed { .. })));
    }

    #[test]
    fn display_round_trips() {
        for s in ["flex", "cuda:2", "tch-cpu", "tch-cuda:0"] {
            assert_eq!(s.parse::<DeviceSpec>().map(|d| d.to_string()).as_deref(), Ok(s));
        }
    }

    #[test]
    fn missing_backend_names_its_feature() {
        if !cfg!(feature = "tch") {
            let err = parse_device("tch-cpu").err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("--features tch"), "{err}");
        }
        if !cfg!(feature = "cuda") {
            let err = parse_device("cuda:0").err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("'cuda'"), "{err}");
        }
        assert!(parse_device("flex").is_ok());
    }
}
