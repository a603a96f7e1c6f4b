//! Helpers shared by the loss tests, and the imports every module uses.
#![allow(dead_code, unused_imports)]

pub use std::path::PathBuf;

pub use burn::tensor::{DType, Device, Tensor, TensorData};
pub use proptest::prelude::*;
pub use svaclr_loss::{
    Anchors, KernelPath, LambdaMode, LossConfig, LossError, LossKind, cross_affinity, fused_supported, info_nce,
    loss_stats, soft_info_nce,
};

pub fn device() -> Device {
    Device::flex().autodiff()
}

pub fn tensor(data: &[f32], shape: [usize; 3], dev: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), dev)
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 read-back")
}

pub fn scalar(t: Tensor<1>) -> f64 {
    host(t)[0] as f64
}

/// `max |got - want| <= rtol * max |want|` (the arrays' infinity norm as the scale).
pub fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64) {
    assert_close_abs(what, got, want, rtol, 0.0);
}

/// `max |got - want| <= rtol * max |want| + atol`.
pub fn assert_close_abs(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let err = got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    assert!(err <= rtol * scale + atol, "{what}: max abs error {err:e} > {rtol:e} * {scale:e} + {atol:e}");
}

pub fn assert_scalar(what: &str, got: f64, want: f64, rtol: f64) {
    assert!((got - want).abs() <= rtol * want.abs(), "{what}: {got} vs {want} (rel {:e})", ((got - want) / want).abs());
}

pub const PATHS: [KernelPath; 2] = [KernelPath::Fused, KernelPath::Composed];
