//! svaclr-models: the networks of SvaCLR, written on Burn with torchvision's parameter names.
//!
//! R(2+1)D-18 and R3D-18 video encoders ([`video_resnet`]), GDT's 9-layer 2D ResNet audio encoder
//! ([`audio_resnet`]), projector MLPs ([`projector`]), the cross-affinity mapping ([`affinity`]), classifier heads
//! ([`classifier`]), the two-tower [`AvModel`] ([`av_model`]), size presets ([`preset`]) and PyTorch weight
//! import/export ([`weights`]).
//!
//! **Invariant:** no file I/O happens outside [`weights`].

pub mod affinity;
pub mod audio_resnet;
pub mod av_model;
pub mod batch_norm;
pub mod classifier;
pub mod conv;
mod cpu;
mod error;
pub mod norm;
pub mod preset;
pub mod projector;
pub mod torchvision;
pub mod video_resnet;
pub mod weights;

pub use affinity::{AffinityMap, AffinityMapConfig, AffinityMapKind};
pub use audio_resnet::{AudioEncoder, AudioEncoderConfig, AudioResNet, AudioResNetConfig};
pub use av_model::{AvModel, AvOutput, ModelConfig, NormMode};
pub use classifier::{Classifier, ClassifierConfig};
pub use error::ModelError;
pub use norm::{BN_MOMENTUM, PreciseBn, SavedRunningStats};
pub use preset::{SizePreset, VideoArch};
pub use projector::{Projector, ProjectorConfig};
pub use torchvision::{NetOutput, TorchvisionArch, TorchvisionNet};
pub use video_resnet::{VideoEncoder, VideoEncoderConfig, VideoInput, VideoResNet, VideoResNetConfig};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::Tensor;

/// Names Burn gives the running statistics of `BatchNorm` (buffers in PyTorch, not parameters).
const RUNNING_STATS: [&str; 2] = ["running_mean", "running_var"];

/// Learnable parameters of a module, counted as PyTorch's `sum(p.numel() for p in m.parameters())` does.
///
/// NOTE: Burn's `Module::num_params()` also counts BatchNorm's running mean and variance (they are stored as
/// `RunningState` tensors); torchvision's published counts exclude those buffers, so this function skips them.
pub fn count_parameters<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let is_running_stat = self.path.last().is_some_and(|n| RUNNING_STATS.contains(&n.as_str()));
            if !is_running_stat {
                self.total += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter { path: Vec::new(), total: 0 };
    module.visit(&mut counter);
    counter.total
}

/// Draw every parameter that is still lazily initialised, in visiting order.
///
/// Burn initialises a parameter at its first use, on the device it is used on. Call this before
/// [`Module::fork`]-ing a module to another backend so that its weights come from this device's random generator
/// (each backend has its own: the same seed gives different draws on flex and on LibTorch).
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}
