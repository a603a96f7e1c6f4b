//! Flex and LibTorch (`tch-cpu`) agree: the encoders' forward outputs and input gradients, the losses and their
//! gradients, one SGD step of the whole model, and a short pre-training run. Built only with `--features tch`
//! (`cargo xtask test` does). The checks themselves are in `agree/` (shared with the flex/wgpu tests); the
//! tolerances are discussed there and in docs/backends.md.

#![allow(deprecated)] // Device::libtorch() is marked deprecated upstream but supported.

mod agree;

use agree::{EncoderInputs, serial};
use burn::prelude::*;

fn tch() -> Device {
    Device::libtorch()
}

/// Forward (inference and training mode) and the gradient to the input, for each encoder at the tiny preset.
#[test]
fn encoders_agree_forward_and_backward() {
    let _serial = serial();
    agree::encoders_agree(&tch(), &EncoderInputs { video: [2, 3, 8, 32, 32], audio: [4, 1, 40, 50] }, 1e-4);
}

/// InfoNCE and SoftInfoNCE and their gradients: flex's fused kernel and composed path against LibTorch's.
#[test]
fn losses_and_gradients_agree() {
    let _serial = serial();
    agree::losses_agree(&tch(), 1e-5);
}

/// One SGD step of the smoke model, for the paper's RGB input and the smoke preset's `temporal_residual`.
#[test]
fn one_sgd_step_of_the_whole_model_agrees() {
    let _serial = serial();
    agree::one_sgd_step_agrees(&tch(), &["rgb", "temporal_residual"], 1e-4);
}

/// A few steps of the smoke configuration on tch-cpu complete and track flex's loss curve.
///
/// Same weights, same clips and augmentations (host-side, seeded), so the first loss differs only by float32
/// rounding (measured: 1e-7 relative). After the first update the curves separate by more than rounding: 0.2-2.1%
/// measured over 5 steps, at the smoke config's learning rate and at 0.01 alike, although one step on random inputs
/// agrees to 2e-5 (test above). The bound per step is 5%; docs/backends.md discusses the gap.
#[test]
fn smoke_pretraining_on_tch_tracks_flex() {
    let _serial = serial();
    let (flex, torch, _dir) = agree::smoke_curves(&tch(), "tch-cpu", 5);
    assert!((torch[0] - flex[0]).abs() <= 1e-5 * flex[0].abs(), "first loss: {} vs {}", torch[0], flex[0]);
    for (i, (t, f)) in torch.iter().zip(&flex).enumerate() {
        assert!((t - f).abs() <= 0.05 * f.abs(), "step {}: tch-cpu {t} vs flex {f}", i + 1);
    }
}
