//! Backend selection: the one place that turns a `--device` string into a Burn [`Device`].
//!
//! Accepted spellings: `flex` (default, pure-Rust CPU), `cuda` / `cuda:N` (cargo feature `cuda`), `tch-cpu`
//! (cargo feature `tch`, LibTorch on the CPU), `tch-cuda` / `tch-cuda:N` (feature `tch`) and `wgpu` / `wgpu:N`
//! (feature `wgpu`: Vulkan, Metal or DirectX 12; `wgpu` is the adapter wgpu thinks best, `wgpu:N` the N-th adapter
//! `svaclr info` lists). Asking for a backend that was not compiled in is an error that names the feature to enable;
//! asking for wgpu on a machine without an adapter is an error that says how to install one.

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
    /// A wgpu adapter (feature `wgpu`): `None` is wgpu's default (best) adapter, `Some(n)` the n-th adapter of
    /// [`wgpu_adapters`].
    Wgpu(Option<usize>),
}

/// Why a `--device` value could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error(
        "unknown device '{0}': expected flex, cuda[:N], tch-cpu, tch-cuda[:N] or wgpu[:N], or a comma-separated list of them"
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
    #[error(
        "device '{device}': no wgpu adapter (Vulkan, Metal, DirectX 12 or OpenGL) found on this machine; install a GPU driver, \
         or Mesa's CPU Vulkan driver lavapipe (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`, or \
         `cargo xtask setup --wgpu`)"
    )]
    NoAdapter { device: String },
    #[error("device '{device}': this machine has {found} wgpu adapter(s), numbered from 0 (see `svaclr info`)")]
    NoSuchAdapter { device: String, found: usize },
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
            ("wgpu", i) => Ok(Self::Wgpu(i)),
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
            Self::Wgpu(None) => write!(f, "wgpu"),
            Self::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
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
            Self::Wgpu(_) => Some("wgpu"),
        }
    }

    /// Whether the device is a CPU (`flex`, `tch-cpu`). A wgpu adapter counts as a GPU even when it is lavapipe.
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
            Self::Wgpu(_i) => {
                #[cfg(feature = "wgpu")]
                return wgpu_device(self, _i);
                Err(not_compiled("wgpu"))
            }
        }
    }
}

/// The wgpu device for `spec`: wgpu's default adapter or the `index`-th of [`wgpu_adapters`]; an error, not a panic
/// inside the runtime, when the machine has no adapter (Burn's constructor is lazy: it would panic at the first
/// tensor).
#[cfg(feature = "wgpu")]
fn wgpu_device(spec: &DeviceSpec, index: Option<usize>) -> Result<Device, DeviceError> {
    let adapters = wgpu_adapters();
    if adapters.is_empty() {
        return Err(DeviceError::NoAdapter { device: spec.to_string() });
    }
    let found = adapters.len();
    match index {
        None => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        Some(i) => adapters.into_iter().nth(i).ok_or(DeviceError::NoSuchAdapter { device: spec.to_string(), found }),
    }
}

/// The wgpu adapters this machine offers, on the graphics API wgpu settles on (empty without the `wgpu` feature or
/// without a Vulkan/Metal/DirectX driver). `wgpu:N` is the N-th.
#[allow(unreachable_code)]
pub fn wgpu_adapters() -> Vec<Device> {
    #[cfg(feature = "wgpu")]
    return Device::enumerate(burn::tensor::DeviceType::Wgpu).into_vec();
    Vec::new()
}

/// A wgpu adapter's name as it reports itself (lavapipe: `llvmpipe (LLVM …)`), opening the device; `None` for a
/// device of another backend.
#[allow(unreachable_code)]
pub fn adapter_name(_device: &Device) -> Option<String> {
    #[cfg(feature = "wgpu")]
    return _device.identity().map(|id| id.name);
    None
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
        #[cfg(feature = "wgpu")]
        "wgpu",
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
    if cfg!(feature = "wgpu") {
        v.push("wgpu[:N]");
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

/// Devices this build can see: always the flex CPU device, plus CUDA devices (CubeCL's, LibTorch's) and wgpu
/// adapters (with the name each reports) when compiled in.
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
    for (i, device) in wgpu_adapters().iter().enumerate() {
        let name = adapter_name(device).unwrap_or_else(|| "unnamed adapter".to_string());
        v.push(format!("wgpu:{i} ({name}; {device:?})"));
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
            (Some(DeviceSpec::Wgpu(_)), Ok(i)) => DeviceSpec::Wgpu(Some(i)),
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
        assert_eq!("wgpu".parse(), Ok(DeviceSpec::Wgpu(None)));
        assert_eq!("wgpu:2".parse(), Ok(DeviceSpec::Wgpu(Some(2))));
        assert!(matches!("wgpu:".parse::<DeviceSpec>(), Err(DeviceError::Unknown(_))));
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
        assert_eq!(parse_device_list("wgpu:0,1"), Ok(vec![DeviceSpec::Wgpu(Some(0)), DeviceSpec::Wgpu(Some(1))]));
        assert!(matches!(parse_device_list("wgpu,flex"), Err(DeviceError::Mixed { .. })));
        assert!(matches!(parse_device_list("cuda:0,gpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse_device_list("0,1"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse_device_list("cuda:1,1"), Err(DeviceError::Repeated { .. })));
        assert!(matches!(parse_device_list("flex,cuda:0"), Err(DeviceError::Mixed { .. })));
    }

    #[test]
    fn display_round_trips() {
        for s in ["flex", "cuda:2", "tch-cpu", "tch-cuda:0", "wgpu", "wgpu:1"] {
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
        if !cfg!(feature = "wgpu") {
            let err = parse_device("wgpu:0").err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("--features wgpu"), "{err}");
        }
        assert!(parse_device("flex").is_ok());
    }
}
