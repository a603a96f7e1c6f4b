//! Flex and wgpu agree: the encoders' forward outputs and input gradients, the losses and their gradients, one SGD
//! step of the whole model, a short pre-training run; a checkpoint written on wgpu reads on flex and back. Built only
//! with `--features wgpu` (`cargo xtask test` does); CI runs it on Mesa's lavapipe (Vulkan on the CPU, `cargo xtask
//! setup --wgpu`), so the sizes are what lavapipe does in a minute or two. The checks are in `agree/` (shared with
//! the flex/LibTorch tests); docs/backends.md lists the measured errors.
//!
//! The device is `--device wgpu` as the CLI parses it (wgpu's default adapter). No adapter is a test failure, not a
//! skip: a build with the feature is meant to run these.

mod agree;

use agree::{EncoderInputs, params, serial};
use burn::prelude::*;
use svaclr_train::{DeviceError, DeviceSpec, RunDir, parse_device};

/// `--device wgpu`, checked to be a wgpu adapter (an adapter names itself; flex does not): agreement with flex would
/// prove nothing if the spelling fell back to flex.
fn wgpu() -> Device {
    let device = match parse_device("wgpu") {
        Ok((_, device)) => device,
        Err(e) => panic!("{e}"),
    };
    assert!(svaclr_train::device::adapter_name(&device).is_some(), "--device wgpu is no wgpu adapter: {device:?}");
    device
}

#[test]
fn encoders_agree_forward_and_backward() {
    let _serial = serial();
    agree::encoders_agree(&wgpu(), &EncoderInputs { video: [2, 3, 4, 16, 16], audio: [2, 1, 40, 50] }, 1e-4);
}

#[test]
fn losses_and_gradients_agree() {
    let _serial = serial();
    agree::losses_agree(&wgpu(), 1e-5);
}

#[test]
fn one_sgd_step_of_the_whole_model_agrees() {
    let _serial = serial();
    agree::one_sgd_step_agrees(&wgpu(), &["rgb", "temporal_residual"], 1e-4);
}

/// A few steps of the smoke configuration on wgpu track flex's loss curve (same weights, clips and augmentations:
/// the first loss differs by float32 rounding only; the bound afterwards is tch-cpu's, see backends.rs); the
/// checkpoint the wgpu run wrote reads on flex and on wgpu to the same values, and one saved on flex reads back on
/// wgpu unchanged.
#[test]
fn smoke_pretraining_on_wgpu_tracks_flex_and_its_checkpoint_reads_on_flex() {
    let _serial = serial();
    let (flex, gpu, dir) = agree::smoke_curves(&wgpu(), "wgpu", 3);
    assert!((gpu[0] - flex[0]).abs() <= 1e-5 * flex[0].abs(), "first loss: {} vs {}", gpu[0], flex[0]);
    for (i, (g, f)) in gpu.iter().zip(&flex).enumerate() {
        assert!((g - f).abs() <= 0.05 * f.abs(), "step {}: wgpu {g} vs flex {f}", i + 1);
    }
    let run = RunDir::new(dir.path().join("wgpu"));
    let (cfg, on_flex) = run.load_pretrained(&Device::flex()).expect("wgpu checkpoint on flex");
    let (_, on_wgpu) = run.load_pretrained(&wgpu()).expect("wgpu checkpoint on wgpu");
    let (pf, pw) = (params(&on_flex), params(&on_wgpu));
    assert_eq!(pf, pw, "a wgpu checkpoint reads differently on flex and on wgpu");
    // Not the initial weights: the checkpoint holds the trained model.
    let init = params(&svaclr_train::trainer::initial_model(&cfg, &Device::flex()).expect("init"));
    assert_ne!(init, pf, "the checkpoint holds the initial weights");
    // And back: written on flex, read on wgpu.
    let path = svaclr_models::weights::save_model(&on_flex, &dir.path().join("from-flex")).expect("save on flex");
    let back = svaclr_models::weights::load_model(&cfg.model, &path, &wgpu()).expect("flex checkpoint on wgpu");
    assert_eq!(params(&back), pf, "a flex checkpoint reads differently on wgpu");
}

/// `wgpu:N` names the N-th adapter; one past the last is an error that says how many there are, not a panic.
#[test]
fn adapters_are_listed_and_named() {
    let adapters = svaclr_train::device::wgpu_adapters();
    assert!(!adapters.is_empty(), "no wgpu adapter: install lavapipe (cargo xtask setup --wgpu)");
    let name = svaclr_train::device::adapter_name(&adapters[0]).expect("the adapter names itself");
    eprintln!("wgpu:0 is {name} ({:?})", adapters[0]);
    assert!(!name.is_empty());
    assert!(parse_device("wgpu:0").is_ok());
    let past = format!("wgpu:{}", adapters.len());
    match parse_device(&past) {
        Err(DeviceError::NoSuchAdapter { found, .. }) => assert_eq!(found, adapters.len()),
        other => panic!("{past}: expected NoSuchAdapter, got {:?}", other.map(|(s, _)| s)),
    }
    assert_eq!(past.parse::<DeviceSpec>().map(|s| s.feature()), Ok(Some("wgpu")));
}
