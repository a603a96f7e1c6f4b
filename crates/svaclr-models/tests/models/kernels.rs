//! Hand-computed and cross-implementation checks of the layers: the R(2+1)D stem, the video input transform, our flex convolution against Burn's.

use crate::common::*;

// ---------------------------------------------------------------------------------------------------------------
// A hand-computed case: the R(2+1)D stem on a constant clip (no torch needed).

#[test]
fn r2plus1d_stem_matches_hand_computation() {
    // Equivalent PyTorch: torchvision R2Plus1dStem with every spatial weight = a, every temporal weight = c, BN
    // stats (mean m, var v, weight g, bias b) on both BNs, eval mode, input ones(1, 3, 1, 16, 16).
    let d = dev();
    let (a, c) = (0.01f32, 0.02f32);
    let (m, v, g, b, eps) = (0.1f32, 4.0f32, 1.5f32, -0.05f32, 1e-5f32);
    let stem = VideoEncoderConfig::new(VideoArch::R2Plus1d18, SizePreset::Tiny).init(&d).stem;
    let VideoStem::R2Plus1d(stem) = stem else { panic!("r2plus1d stem") };
    let fill = |p: Param<Tensor<5>>, x: f32| Param::from_tensor(p.val().ones_like().mul_scalar(x));
    let bn = |mut bn: burn::nn::BatchNorm| {
        bn.gamma = Param::from_tensor(bn.gamma.val().ones_like().mul_scalar(g));
        bn.beta = Param::from_tensor(bn.beta.val().ones_like().mul_scalar(b));
        bn.running_mean = burn::module::RunningState::new(bn.running_mean.value().ones_like().mul_scalar(m));
        bn.running_var = burn::module::RunningState::new(bn.running_var.value().ones_like().mul_scalar(v));
        bn
    };
    let mut stem: R2Plus1dStem = stem;
    stem.conv1.weight = fill(stem.conv1.weight, a);
    stem.conv2.weight = fill(stem.conv2.weight, c);
    stem.bn1 = bn(stem.bn1);
    stem.bn2 = bn(stem.bn2);
    let out = stem.forward(Tensor::ones([1, 3, 1, 16, 16], &d)); // [1, 8, 1, 8, 8]
    assert_eq!(out.dims(), [1, 8, 1, 8, 8], "stride (1,2,2), padding (0,3,3)");
    let mid = 6.0; // tiny stem width
    let bn_relu = |x: f32| ((x - m) / (v + eps).sqrt() * g + b).max(0.0);
    // Temporal conv (3,1,1) with padding 1 on T = 1 sees only its centre tap.
    let expect = |taps: f32| bn_relu(mid * c * bn_relu(3.0 * taps * a));
    let data = out.into_data();
    let vals = data.as_slice::<f32>().expect("f32");
    let at = |h: usize, w: usize| vals[h * 8 + w]; // channel 0
    // Interior output (2,2) reads input rows 1..7: 7x7 taps. Corner (0,0) reads rows -3..3: 4x4 inside the image.
    assert!((at(2, 2) - expect(49.0)).abs() < 1e-5, "{} vs {}", at(2, 2), expect(49.0));
    assert!((at(0, 0) - expect(16.0)).abs() < 1e-5, "{} vs {}", at(0, 0), expect(16.0));
    // Last row/col (7,7) reads rows 11..17 of 0..15: 5x5 inside.
    assert!((at(7, 7) - expect(25.0)).abs() < 1e-5, "{} vs {}", at(7, 7), expect(25.0));
}

/// `video_input: temporal_residual` makes the encoder blind to anything constant over the clip (its static
/// appearance) and nothing else: adding one frame to every time step leaves its output unchanged, while the RGB
/// encoder with the same weights sees the change; a change over time reaches both.
#[test]
fn temporal_residual_input_ignores_static_appearance_only() {
    let d = dev();
    let clip = randn([2, 3, 4, 32, 32], 21);
    let still = randn([2, 3, 1, 32, 32], 22).repeat_dim(2, 4); // the same frame at every step
    let moving = randn([2, 3, 4, 32, 32], 23);
    let encoders = [VideoInput::Rgb, VideoInput::TemporalResidual].map(|input| {
        d.seed(5);
        VideoEncoderConfig::new(VideoArch::R2Plus1d18, SizePreset::Tiny).with_input(input).init(&d)
    });
    let [rgb, residual] = &encoders;
    assert_eq!((rgb.input(), residual.input()), (VideoInput::Rgb, VideoInput::TemporalResidual));
    let gap = |enc: &VideoEncoder, extra: &Tensor<5>| {
        max_abs_diff(enc.forward(clip.clone()), enc.forward(clip.clone() + extra.clone() * 0.5))
    };
    assert!(gap(residual, &still) < 1e-5, "static content changed the residual encoder: {}", gap(residual, &still));
    assert!(gap(rgb, &still) > 1e-3, "static content did not reach the RGB encoder: {}", gap(rgb, &still));
    assert!(gap(residual, &moving) > 1e-3, "motion did not reach the residual encoder: {}", gap(residual, &moving));
}

/// The field is optional in configs (RGB, the paper's, when absent) and left out when it has its default, so the
/// hashes of existing run configs stay the same.
#[test]
fn video_input_defaults_to_rgb_and_round_trips() {
    let tiny = ModelConfig::for_preset(VideoArch::R2Plus1d18, SizePreset::Tiny);
    let json = serde_json::to_string(&tiny).expect("serialise");
    assert!(!json.contains("video_input"), "{json}");
    let back: ModelConfig = serde_json::from_str(&json).expect("parse");
    assert_eq!(back.video_input, VideoInput::Rgb);
    let with = json.replacen('{', r#"{"video_input":"temporal_residual","#, 1);
    let cfg: ModelConfig = serde_json::from_str(&with).expect("parse temporal_residual");
    assert_eq!(cfg.video_input, VideoInput::TemporalResidual);
    assert!(serde_json::to_string(&cfg).expect("serialise").contains(r#""video_input":"temporal_residual""#));
    let bad = json.replacen('{', r#"{"video_input":"flow","#, 1);
    assert!(serde_json::from_str::<ModelConfig>(&bad).is_err(), "an unknown input must be refused");
}

/// `svaclr_models::conv` (our flex kernels with their own backward) against Burn's own convolution: outputs, and the
/// gradients of x, weight and bias of a random projection of the output, for the encoders' kernels, strides and
/// paddings and a few others, in 3D and 2D; with and without autodiff.
#[test]
fn flex_conv_agrees_with_burn_conv_forward_and_backward() {
    conv_agrees_with_burn_conv(dev());
}

/// The same on LibTorch: its convolution with LibTorch's own backward (`conv/tch.rs`) against Burn's convolution and
/// Burn's decomposed backward on the same backend.
#[cfg(feature = "tch")]
#[test]
#[allow(deprecated)] // LibTorch constructors are deprecated upstream but still supported.
fn libtorch_conv_agrees_with_burn_conv_forward_and_backward() {
    conv_agrees_with_burn_conv(Device::libtorch());
}

fn conv_agrees_with_burn_conv(device: Device) {
    use burn::nn::conv::{Conv2dConfig, Conv3dConfig};
    use burn::nn::{PaddingConfig2d, PaddingConfig3d};
    use svaclr_models::conv::{forward2d, forward3d};

    fn rel(got: Tensor<1>, want: Tensor<1>) -> f32 {
        let scale = want.clone().abs().max().into_scalar::<f32>().max(1e-6);
        (got - want).abs().max().into_scalar::<f32>() / scale
    }
    fn check<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>) {
        assert_eq!(got.dims(), want.dims(), "{what}: shapes");
        let e = rel(got.flatten(0, D - 1), want.flatten(0, D - 1));
        assert!(e < 1e-5, "{what}: relative error {e:e}");
    }
    let ad = device.clone().autodiff();
    // (input [N, C, T, H, W], channels out, kernel, stride, padding, bias)
    // The unit-stride spatial and temporal ones run the direct kernels on an AVX2 + FMA CPU (svaclr_models::conv).
    let cases3: [([usize; 5], usize, [usize; 3], [usize; 3], [usize; 3], bool); 7] = [
        ([3, 3, 4, 20, 18], 6, [1, 7, 7], [1, 2, 2], [0, 3, 3], false),
        ([3, 5, 2, 12, 11], 7, [1, 3, 3], [1, 1, 1], [0, 1, 1], true),
        ([2, 6, 4, 9, 9], 8, [3, 1, 1], [1, 1, 1], [1, 0, 0], false),
        ([5, 4, 5, 8, 7], 6, [1, 3, 3], [1, 2, 2], [0, 1, 1], true),
        ([2, 4, 5, 6, 6], 3, [3, 1, 1], [2, 1, 1], [1, 0, 0], false),
        ([3, 4, 4, 6, 6], 5, [1, 1, 1], [2, 2, 2], [0, 0, 0], false),
        ([2, 3, 3, 5, 5], 4, [3, 3, 3], [1, 1, 1], [1, 1, 1], true),
    ];
    for (i, (shape, o, kernel, stride, pad, bias)) in cases3.into_iter().enumerate() {
        ad.seed(100 + i as u64);
        let conv = Conv3dConfig::new([shape[1], o], kernel)
            .with_stride(stride)
            .with_padding(PaddingConfig3d::Explicit(pad[0], pad[1], pad[2]))
            .with_bias(bias)
            .init(&ad);
        let x = Tensor::<5>::from_data(randn(shape, 200 + i as u64).to_data(), &device);
        let what = format!("conv3d {shape:?} -> {o}, kernel {kernel:?}, stride {stride:?}, pad {pad:?}");
        check(&format!("{what}: inference"), forward3d(&conv, x.clone()), conv.forward(x.clone()));
        let run = |ours: bool| {
            let x = Tensor::<5>::from_data(x.to_data(), &ad).require_grad();
            let y = if ours { forward3d(&conv, x.clone()) } else { conv.forward(x.clone()) };
            let r = Tensor::<5>::from_data(randn(y.dims(), 300 + i as u64).to_data(), &ad);
            let grads = (y.clone() * r).sum().backward();
            let gb = conv.bias.as_ref().map(|b| b.val().grad(&grads).expect("bias grad"));
            (y.inner(), x.grad(&grads).expect("x grad"), conv.weight.val().grad(&grads).expect("w grad"), gb)
        };
        let (ours, theirs) = (run(true), run(false));
        check(&format!("{what}: output"), ours.0, theirs.0);
        check(&format!("{what}: x gradient"), ours.1, theirs.1);
        check(&format!("{what}: weight gradient"), ours.2, theirs.2);
        if let (Some(a), Some(b)) = (ours.3, theirs.3) {
            check(&format!("{what}: bias gradient"), a, b);
        }
    }
    // The audio encoder's 2D convolutions (stem 7x7 / 2, blocks 3x3, 1x1 / 2 shortcuts).
    let cases2: [([usize; 4], usize, usize, usize, usize); 4] = [
        ([3, 1, 40, 50], 4, 7, 2, 3),
        ([4, 4, 10, 13], 8, 3, 2, 1),
        ([4, 4, 10, 13], 8, 3, 1, 1),
        ([4, 4, 10, 13], 8, 1, 2, 0),
    ];
    for (i, (shape, o, k, s, p)) in cases2.into_iter().enumerate() {
        ad.seed(400 + i as u64);
        let conv = Conv2dConfig::new([shape[1], o], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(&ad);
        let x = Tensor::<4>::from_data(randn(shape, 500 + i as u64).to_data(), &ad).require_grad();
        let what = format!("conv2d {shape:?} -> {o}, kernel {k}, stride {s}, pad {p}");
        let (a, b) = (forward2d(&conv, x.clone()), conv.forward(x.clone()));
        check(&format!("{what}: output"), a.clone(), b.clone());
        let r = Tensor::<4>::from_data(randn(a.dims(), 600 + i as u64).to_data(), &ad);
        let (ga, gb) = ((a * r.clone()).sum().backward(), (b * r).sum().backward());
        check(&format!("{what}: x gradient"), x.grad(&ga).expect("grad"), x.grad(&gb).expect("grad"));
        let w = conv.weight.val();
        check(&format!("{what}: weight gradient"), w.grad(&ga).expect("grad"), w.grad(&gb).expect("grad"));
    }
}

/// `svaclr_models::batch_norm` (our flex kernels) against Burn's `BatchNorm` in training mode,
/// alone and followed by a ReLU: outputs, the gradients of x, gamma and beta of a random projection of the output,
/// and the running statistics after the step, for the encoders' 5D, 4D and the projectors' 2D inputs (channels
/// with means far from 0).
#[test]
fn flex_batch_norm_agrees_with_burn_batch_norm() {
    let device = dev();
    use burn::nn::{BatchNorm, BatchNormConfig};
    use svaclr_models::batch_norm;

    fn check<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>, tol: f32) {
        assert_eq!(got.dims(), want.dims(), "{what}: shapes");
        let (got, want) = (got.flatten::<1>(0, D - 1), want.flatten::<1>(0, D - 1));
        let scale = want.clone().abs().max().into_scalar::<f32>().max(1e-6);
        let e = (got - want).abs().max().into_scalar::<f32>() / scale;
        assert!(e < tol, "{what}: relative error {e:e}");
    }
    fn case<const D: usize>(device: &Device, shape: [usize; D], seed: u64, with_relu: bool) {
        let ad = device.clone().autodiff();
        let c = shape[1];
        let gamma = randn([c], seed).mul_scalar(0.5).add_scalar(1.0).to_data();
        let beta = randn([c], seed + 4).mul_scalar(0.5).to_data();
        // A fresh module per run: clones of a module share their running statistics.
        let make = || {
            let mut bn: BatchNorm = BatchNormConfig::new(c).with_momentum(0.1).init(&ad);
            bn.gamma = Param::from_tensor(Tensor::from_data(gamma.clone(), &ad));
            bn.beta = Param::from_tensor(Tensor::from_data(beta.clone(), &ad));
            bn
        };
        let mut per_channel = [1; D];
        per_channel[1] = c;
        let offset =
            Tensor::<1>::from_data(randn([c], seed + 1).to_data(), device).mul_scalar(5.0).reshape(per_channel);
        let x0 = Tensor::<D>::from_data(randn(shape, seed + 2).to_data(), device).mul_scalar(2.0) + offset;
        let r = Tensor::<D>::from_data(randn(shape, seed + 3).to_data(), &ad);
        let run = |ours: bool| {
            let bn = make();
            let x = Tensor::<D>::from_data(x0.to_data(), &ad).require_grad();
            let y = match (ours, with_relu) {
                (true, false) => batch_norm::forward(&bn, x.clone()),
                (true, true) => batch_norm::forward_relu(&bn, x.clone()),
                (false, false) => bn.forward(x.clone()),
                (false, true) => burn::tensor::activation::relu(bn.forward(x.clone())),
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            let g = |p: &Param<Tensor<1>>| p.val().grad(&grads).expect("param grad");
            let stats = (bn.running_mean.value_sync(), bn.running_var.value_sync());
            (y.inner(), x.grad(&grads).expect("x grad"), g(&bn.gamma), g(&bn.beta), stats)
        };
        let (ours, theirs) = (run(true), run(false));
        let what = format!("batch norm {shape:?}{}", if with_relu { " + relu" } else { "" });
        check(&format!("{what}: output"), ours.0, theirs.0, 1e-5);
        check(&format!("{what}: x gradient"), ours.1, theirs.1, 1e-4);
        check(&format!("{what}: gamma gradient"), ours.2, theirs.2, 1e-4);
        check(&format!("{what}: beta gradient"), ours.3, theirs.3, 1e-5);
        check(&format!("{what}: running mean"), ours.4.0.inner(), theirs.4.0.inner(), 1e-5);
        check(&format!("{what}: running var"), ours.4.1.inner(), theirs.4.1.inner(), 1e-4);
    }
    for with_relu in [false, true] {
        case(&device, [3, 4, 2, 5, 6], 10, with_relu);
        case(&device, [4, 3, 7, 9], 20, with_relu);
        case(&device, [16, 6], 30, with_relu);
        case(&device, [2, 5, 1, 2, 2], 40, with_relu);
    }
}
