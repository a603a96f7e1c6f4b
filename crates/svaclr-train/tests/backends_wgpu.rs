//! Flex and wgpu agree: the encoders' forward outputs and input gradients, the losses and their gradients, one SGD
//! step of the whole model, a short pre-training run; a checkpoint written on wgpu reads on flex and back. Built only
//! with `--features wgpu` (`cargo xtask test --wgpu` does; CI does not, see docs/backends.md) and run here on Mesa's
//! lavapipe (Vulkan on the CPU, `cargo xtask setup --wgpu`), so the sizes are what lavapipe does in a minute or two.
//! The checks are in `agree/` (shared with the flex/LibTorch tests); docs/backends.md lists the measured errors.
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
    agree::encoders_agree(&wgpu(), &EncoderInputs { video: [2, 3, 8, 32, 32], audio: [2, 1, 40, 50] }, 1e-4);
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

/// Burn's conv3d and the model's (`svaclr_models::conv::forward3d`): output, input and weight gradients, flex against
/// wgpu, for the video encoders' convolution shapes. Burn 0.22.1 on wgpu gives a strided 1x1x1 conv3d (the
/// downsample shortcut) an all-zero input gradient; that case is printed, not asserted, and the model's path, which
/// works around it, is asserted.
#[test]
fn conv3d_gradients_agree() {
    use burn::tensor::Distribution;
    use burn::tensor::module::conv3d;
    use burn::tensor::ops::ConvOptions;
    let _serial = serial();
    let flex = Device::flex();
    flex.seed(7);
    let cases: &[(&str, [usize; 5], [usize; 5], [usize; 3], [usize; 3])] = &[
        ("stem spatial 1x7x7 s122 p033", [8, 3, 8, 32, 32], [6, 3, 1, 7, 7], [1, 2, 2], [0, 3, 3]),
        ("stem spatial b2", [2, 3, 8, 32, 32], [6, 3, 1, 7, 7], [1, 2, 2], [0, 3, 3]),
        ("1x7x7 s111 p033", [8, 3, 8, 32, 32], [6, 3, 1, 7, 7], [1, 1, 1], [0, 3, 3]),
        ("1x7x7 s122 p000", [8, 3, 8, 32, 32], [6, 3, 1, 7, 7], [1, 2, 2], [0, 0, 0]),
        ("stem temporal 3x1x1 p100", [8, 6, 8, 16, 16], [8, 6, 3, 1, 1], [1, 1, 1], [1, 0, 0]),
        ("1x3x3 p011", [8, 8, 8, 16, 16], [8, 8, 1, 3, 3], [1, 1, 1], [0, 1, 1]),
        ("1x3x3 s122 p011", [8, 8, 8, 16, 16], [18, 8, 1, 3, 3], [1, 2, 2], [0, 1, 1]),
        ("3x1x1 s211 p100", [8, 18, 8, 8, 8], [16, 18, 3, 1, 1], [2, 1, 1], [1, 0, 0]),
        ("1x1x1 s222 p000", [8, 8, 8, 16, 16], [16, 8, 1, 1, 1], [2, 2, 2], [0, 0, 0]),
        ("3x3x3 s222 p111", [8, 8, 8, 16, 16], [16, 8, 3, 3, 3], [2, 2, 2], [1, 1, 1]),
        ("3x1x1 s211 p100 T4", [8, 18, 4, 8, 8], [16, 18, 3, 1, 1], [2, 1, 1], [1, 0, 0]),
    ];
    let mut worst = 0.0f64;
    for (name, xs, ws, stride, pad) in cases {
        let x = Tensor::<5>::random(*xs, Distribution::Normal(0.0, 1.0), &flex);
        let w = Tensor::<5>::random(*ws, Distribution::Normal(0.0, 0.1), &flex);
        let run = |dev: &Device, wy: Option<Tensor<5>>| {
            let ad = dev.clone().autodiff();
            let (xa, wa) = (agree::to(&x, &ad).require_grad(), agree::to(&w, &ad).require_grad());
            let y = conv3d(xa.clone(), wa.clone(), None, ConvOptions::new(*stride, *pad, [1, 1, 1], 1));
            let wy =
                wy.unwrap_or_else(|| Tensor::<5>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex()));
            let g = (y.clone() * agree::to(&wy, &ad)).sum().backward();
            (agree::host(y), agree::host(xa.grad(&g).expect("dx")), agree::host(wa.grad(&g).expect("dw")), wy)
        };
        let (yf, dxf, dwf, wy) = run(&flex, None);
        let (yo, dxo, dwo, _) = run(&wgpu(), Some(wy));
        let e = [agree::rel_err(&yo, &yf), agree::rel_err(&dxo, &dxf), agree::rel_err(&dwo, &dwf)];
        let nz = |v: &[f32]| v.iter().filter(|x| **x != 0.0).count();
        eprintln!(
            "{name}: y {:.2e} dx {:.2e} dw {:.2e} (dx nonzero: flex {} wgpu {} of {}; max |dx| flex {:.3} wgpu {:.3})",
            e[0],
            e[1],
            e[2],
            nz(&dxf),
            nz(&dxo),
            dxf.len(),
            dxf.iter().fold(0f32, |m, x| m.max(x.abs())),
            dxo.iter().fold(0f32, |m, x| m.max(x.abs()))
        );
        if !name.starts_with("1x1x1 s222") {
            worst = e.iter().fold(worst, |m, v| m.max(*v));
        }
    }
    // The model's path (svaclr_models::conv::forward3d): flex's own kernel against wgpu's, downsample and temporal.
    for (name, xs, k, c_out, stride, pad) in [
        ("model downsample 1x1x1 s222", [8, 8, 8, 16, 16], [1, 1, 1], 16, [2, 2, 2], [0, 0, 0]),
        ("model 3x1x1 s211 p100", [8, 18, 8, 8, 8], [3, 1, 1], 16, [2, 1, 1], [1, 0, 0]),
        ("model 1x3x3 s122 p011", [8, 8, 8, 16, 16], [1, 3, 3], 18, [1, 2, 2], [0, 1, 1]),
    ] {
        use burn::nn::PaddingConfig3d;
        use burn::nn::conv::Conv3dConfig;
        let conv = Conv3dConfig::new([xs[1], c_out], k)
            .with_stride(stride)
            .with_padding(PaddingConfig3d::Explicit(pad[0], pad[1], pad[2]))
            .with_bias(false)
            .init(&flex.clone().autodiff());
        let x = Tensor::<5>::random(xs, Distribution::Normal(0.0, 1.0), &flex);
        let run = |dev: &Device, wy: Option<Tensor<5>>| {
            let ad = dev.clone().autodiff();
            let c = conv.clone().fork(&ad);
            let xa = agree::to(&x, &ad).require_grad();
            let y = svaclr_models::conv::forward3d(&c, xa.clone());
            let wy =
                wy.unwrap_or_else(|| Tensor::<5>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex()));
            let g = (y.clone() * agree::to(&wy, &ad)).sum().backward();
            let dw = agree::host(c.weight.val().grad(&g).expect("dw"));
            (agree::host(y), agree::host(xa.grad(&g).expect("dx")), dw, wy)
        };
        let (yf, dxf, dwf, wy) = run(&flex, None);
        let (yo, dxo, dwo, _) = run(&wgpu(), Some(wy));
        let e = [agree::rel_err(&yo, &yf), agree::rel_err(&dxo, &dxf), agree::rel_err(&dwo, &dwf)];
        eprintln!("{name}: y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
        worst = e.iter().fold(worst, |m, v| m.max(*v));
    }
    // And conv2d's 1x1 stride-2 shortcut (the audio encoder's downsample).
    {
        use burn::tensor::module::conv2d;
        let x = Tensor::<4>::random([4, 8, 20, 26], Distribution::Normal(0.0, 1.0), &flex);
        let w = Tensor::<4>::random([16, 8, 1, 1], Distribution::Normal(0.0, 0.1), &flex);
        let run = |dev: &Device| {
            let ad = dev.clone().autodiff();
            let xa = agree::to(&x, &ad).require_grad();
            let y = conv2d(xa.clone(), agree::to(&w, &ad), None, ConvOptions::new([2, 2], [0, 0], [1, 1], 1));
            let g = y.sum().backward();
            agree::host(xa.grad(&g).expect("dx"))
        };
        let e = agree::rel_err(&run(&wgpu()), &run(&flex));
        eprintln!("conv2d 1x1 s22: dx {e:.2e}");
        worst = worst.max(e);
    }
    assert!(worst < 1e-4, "worst {worst:e}");
}

/// DIAGNOSTIC (ignored): every parameter gradient of the tiny R(2+1)D encoder in training mode, flex against wgpu,
/// through the first DIAG_DEPTH residual blocks (all when unset). It fails at batch 8 whole-network depth: the
/// gradient through many training-mode BatchNorms and ReLUs is ill-conditioned on any backend (docs/backends.md,
/// "Why the video encoders' backward is compared stage by stage"); `encoders_agree` checks stage by stage instead.
#[test]
#[ignore = "diagnostic: the whole-network gradient is ill-conditioned (docs/backends.md); cargo test ... -- --ignored"]
fn encoder_parameter_gradients_agree() {
    use burn::tensor::Distribution;
    use svaclr_models::{SizePreset, VideoArch, VideoEncoderConfig, materialize};
    let _serial = serial();
    let flex = Device::flex();
    flex.seed(11);
    let enc = VideoEncoderConfig::new(VideoArch::R2Plus1d18, SizePreset::Tiny).init(&flex.clone().autodiff());
    materialize(&enc);
    let x = Tensor::<5>::random([8, 3, 8, 32, 32], Distribution::Normal(0.0, 1.0), &flex);
    let run = |dev: &Device, wy: Option<Tensor<2>>| {
        let ad = dev.clone().autodiff();
        let e = enc.clone().fork(&ad);
        let depth: usize = std::env::var("DIAG_DEPTH").ok().and_then(|v| v.parse().ok()).unwrap_or(99);
        let mut y = e.stem.forward(agree::to(&x, &ad));
        for block in e.layer1.iter().chain(&e.layer2).chain(&e.layer3).chain(&e.layer4).take(depth) {
            y = block.forward(y);
        }
        let y = y.flatten::<2>(1, 4);
        let wy = wy.unwrap_or_else(|| Tensor::<2>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex()));
        let g = (y.clone() * agree::to(&wy, &ad)).sum().backward();
        (agree::host(y), agree::param_grads(&e, &g), wy)
    };
    let (yf, gf, wy) = run(&flex, None);
    let (yo, go, _) = run(&wgpu(), Some(wy));
    eprintln!("y: {:.2e}", agree::rel_err(&yo, &yf));
    let mut worst = 0.0f64;
    for ((n, a), (_, b)) in gf.iter().zip(&go) {
        let e = agree::rel_err(b, a);
        eprintln!("{n}: {e:.2e}");
        worst = worst.max(e);
    }
    assert!(worst < 1e-3, "worst {worst:e}");
}

/// DIAGNOSTIC (ignored): single ops' gradients, flex against wgpu; all agree to float32 rounding.
#[test]
#[ignore = "diagnostic: single ops, each agreeing to float32 rounding"]
fn op_gradients_agree() {
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;
    use burn::tensor::activation::relu;
    let _serial = serial();
    let flex = Device::flex();
    flex.seed(3);
    let x = Tensor::<5>::random([8, 8, 4, 8, 8], Distribution::Normal(0.5, 2.0), &flex);
    let bn = BatchNormConfig::new(8).init(&flex.clone().autodiff());
    type F = fn(&burn::nn::BatchNorm, Tensor<5>) -> Tensor<5>;
    let cases: Vec<(&str, F)> = vec![
        ("relu", |_, x| relu(x)),
        ("x*x", |_, x| x.clone() * x),
        ("mean_dim flatten", |_, x| {
            let [b, c, ..] = x.dims();
            x.flatten::<3>(2, 4).mean_dim(2).reshape([b, c, 1, 1, 1])
        }),
        ("x - mean_dim(2)", |_, x| x.clone() - x.mean_dim(2)),
        ("batchnorm train", |bn, x| bn.forward(x)),
        ("batchnorm + relu", |bn, x| relu(bn.forward(x))),
        ("relu(bn) + x", |bn, x| relu(bn.forward(x.clone())) + x),
    ];
    let mut worst = 0.0f64;
    for (name, f) in cases {
        let run = |dev: &Device, wy: Option<Tensor<5>>| {
            let ad = dev.clone().autodiff();
            let b = bn.clone().fork(&ad);
            let xa = agree::to(&x, &ad).require_grad();
            let y = f(&b, xa.clone());
            let wy =
                wy.unwrap_or_else(|| Tensor::<5>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex()));
            let g = (y.clone() * agree::to(&wy, &ad)).sum().backward();
            let gg = b.gamma.val().grad(&g).map(agree::host).unwrap_or_default();
            (agree::host(y), agree::host(xa.grad(&g).expect("dx")), gg, wy)
        };
        let (yf, dxf, ggf, wy) = run(&flex, None);
        let (yo, dxo, ggo, _) = run(&wgpu(), Some(wy));
        let e = [agree::rel_err(&yo, &yf), agree::rel_err(&dxo, &dxf), agree::rel_err(&ggo, &ggf)];
        eprintln!("{name}: y {:.2e} dx {:.2e} dgamma {:.2e}", e[0], e[1], e[2]);
        worst = e.iter().fold(worst, |m, v| m.max(*v));
    }
    assert!(worst < 1e-4, "worst {worst:e}");
}
