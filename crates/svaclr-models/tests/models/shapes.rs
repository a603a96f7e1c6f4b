//! Parameter counts against torchvision, output shapes for every preset, and the config rules.

use crate::common::*;

// ---------------------------------------------------------------------------------------------------------------
// Parameter counts (torchvision: sum(p.numel() for p in model.parameters()))

#[test]
fn parameter_counts_equal_torchvision() {
    let d = dev();
    let r21d = VideoResNetConfig::new(VideoArch::R2Plus1d18, SizePreset::Full).init(&d);
    assert_eq!(count_parameters(&r21d), 31_505_325, "r2plus1d_18 with 400-way fc");
    assert_eq!(count_parameters(&r21d.encoder), 31_300_125, "r2plus1d_18 backbone");
    let r3d = VideoResNetConfig::new(VideoArch::R3d18, SizePreset::Full).init(&d);
    assert_eq!(count_parameters(&r3d), 33_371_472, "r3d_18 with 400-way fc");
    let audio = AudioEncoderConfig::new(SizePreset::Full).init(&d);
    assert_eq!(count_parameters(&audio), 4_899_520, "audio ResNet-9 without fc");
    // Burn's num_params() also counts BatchNorm's running mean and variance (buffers in PyTorch).
    assert_eq!(r21d.num_params(), 31_505_325 + 2 * bn_channels(&r21d));
}

/// Encoder parameters per preset (full, small, tiny), as printed by PyTorch for the same widths built from
/// torchvision's blocks (scripts/bench/models_torch.py, `n_params(encoder(arch, preset))`).
#[test]
fn preset_counts_equal_pytorch_builds_of_the_same_widths() {
    let d = dev();
    let expected = [
        (Some(VideoArch::R2Plus1d18), [31_300_125, 7_830_647, 491_918]),
        (Some(VideoArch::R3d18), [33_166_272, 8_301_024, 522_360]),
        (None, [4_899_520, 1_227_104, 77_528]),
    ];
    for (arch, counts) in expected {
        for (preset, want) in SizePreset::ALL.into_iter().zip(counts) {
            let got = match arch {
                Some(a) => count_parameters(&VideoEncoderConfig::new(a, preset).init(&d)),
                None => count_parameters(&AudioEncoderConfig::new(preset).init(&d)),
            };
            assert_eq!(got, want, "{arch:?} {preset}");
        }
    }
}

#[test]
fn paper_model_counts_and_presets_shrink() {
    let d = dev();
    let paper = ModelConfig::paper().init(&d).expect("paper config is valid");
    // 512->512 (+bias) + BN(512) + 512->128 (+bias), per tower.
    let projector = 512 * 512 + 512 + 2 * 512 + 512 * 128 + 128;
    assert_eq!(count_parameters(&paper.proj_video), projector);
    assert_eq!(count_parameters(&paper), 31_300_125 + 4_899_520 + 2 * projector);
    // The presets table of docs/models.md.
    for (preset, want) in SizePreset::ALL.into_iter().zip([36_858_333, 9_256_151, 594_662]) {
        let cfg = ModelConfig::for_preset(VideoArch::R2Plus1d18, preset);
        assert_eq!(count_parameters(&cfg.init(&d).expect("valid")), want, "{preset}");
    }
    let mut last = usize::MAX;
    for preset in SizePreset::ALL {
        let n = count_parameters(&VideoEncoderConfig::new(VideoArch::R2Plus1d18, preset).init(&d));
        assert!(n < last, "{preset} should be smaller than the preset before it");
        last = n;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes

#[test]
fn encoder_shapes_over_frames_crops_batches_for_every_preset() {
    let d = dev();
    let presets: &[SizePreset] = if heavy() { &SizePreset::ALL } else { &[SizePreset::Small, SizePreset::Tiny] };
    for &preset in presets {
        for arch in VideoArch::ALL {
            let enc = VideoEncoderConfig::new(arch, preset).init(&d);
            assert_eq!(enc.feature_dim(), preset.feature_dim());
            assert_eq!(enc.arch(), arch);
            // (batch, frames, crop): includes frame counts and crops the strides do not divide.
            let cases: &[(usize, usize, usize)] = if preset == SizePreset::Tiny {
                &[(1, 4, 32), (2, 8, 48), (3, 5, 40), (1, 16, 64)]
            } else {
                &[(2, 4, 32)]
            };
            for &(b, t, s) in cases {
                let y = enc.forward(randn([b, 3, t, s, s], 1));
                assert_eq!(y.dims(), [b, preset.feature_dim()], "{arch} {preset} b{b} t{t} s{s}");
                let map = enc.forward_map(randn([b, 3, t, s, s], 2));
                assert_eq!(map.dims(), [b, preset.feature_dim(), t.div_ceil(8), s.div_ceil(16), s.div_ceil(16)]);
            }
        }
        let audio = AudioEncoderConfig::new(preset).init(&d);
        for &(b, f, t) in &[(2, 40, 100), (3, 64, 51), (1, 40, 30)] {
            let y = audio.forward(randn([b, 1, f, t], 3));
            assert_eq!(y.dims(), [b, preset.feature_dim()], "audio {preset} b{b} f{f} t{t}");
        }
    }
}

#[test]
fn av_model_outputs_have_config_widths() {
    let d = dev();
    for kind in [AffinityMapKind::Identity, AffinityMapKind::Linear, AffinityMapKind::Mlp] {
        let cfg = ModelConfig {
            proj_hidden: 32,
            proj_dim: 16,
            affinity_map: kind,
            ..ModelConfig::for_preset(VideoArch::R2Plus1d18, SizePreset::Tiny)
        };
        let model = cfg.init(&d).expect("valid config");
        assert_eq!(model.map_video.kind(), kind);
        let out = model.forward(randn([3, 3, 4, 32, 32], 4), randn([3, 1, 40, 50], 5));
        assert_eq!(out.y_video.dims(), [3, 64]);
        assert_eq!(out.y_audio.dims(), [3, 64]);
        assert_eq!(out.z_video.dims(), [3, 16]);
        assert_eq!(out.z_audio.dims(), [3, 16]);
        assert_eq!(out.l_video.dims(), [3, 64]);
        assert_eq!(out.l_audio.dims(), [3, 64]);
        if kind == AffinityMapKind::Identity {
            assert_eq!(max_abs_diff(out.l_video, out.y_video), 0.0, "identity map returns y unchanged");
        }
    }
}

#[test]
fn gradients_reach_both_encoders() {
    let d = dev().autodiff();
    let model = ModelConfig::for_preset(VideoArch::R3d18, SizePreset::Tiny).init(&d).expect("valid");
    d.seed(6);
    let video = Tensor::<5>::random([2, 3, 4, 32, 32], burn::tensor::Distribution::Default, &d);
    let audio = Tensor::<4>::random([2, 1, 40, 50], burn::tensor::Distribution::Default, &d);
    let out = model.forward(video, audio);
    let loss = out.z_video.mul(out.z_audio).sum();
    let grads = loss.backward();
    let VideoStem::R3d(stem) = &model.video.stem else { panic!("r3d_18 has the basic stem") };
    let gv = stem.conv1.weight.val().grad(&grads).expect("video stem gets a gradient");
    let ga = model.audio.conv1.weight.val().grad(&grads).expect("audio stem gets a gradient");
    assert!(gv.abs().sum().into_scalar::<f32>() > 0.0);
    assert!(ga.abs().sum().into_scalar::<f32>() > 0.0);
}

#[test]
fn frozen_norm_makes_each_clip_independent_of_its_batch_and_still_trains_gamma() {
    // With `norm: frozen` a batch of 4 gives each clip the output it gets in batches of 2 (what splitting a batch
    // across processes needs); with batch statistics (the default) it does not.
    let d = dev().autodiff();
    let video = randn([4, 3, 4, 32, 32], 11);
    let audio = randn([4, 1, 40, 50], 12);
    let split_gap = |norm: NormMode| {
        let cfg = ModelConfig { norm, ..ModelConfig::for_preset(VideoArch::R2Plus1d18, SizePreset::Tiny) };
        d.seed(3);
        let model = cfg.init(&d).expect("valid");
        let whole = model.forward(video.clone().to_device(&d), audio.clone().to_device(&d)).z_video;
        let halves: Vec<Tensor<2>> = (0..2)
            .map(|h| {
                let v = video.clone().narrow(0, 2 * h, 2).to_device(&d);
                let a = audio.clone().narrow(0, 2 * h, 2).to_device(&d);
                model.forward(v, a).z_video
            })
            .collect();
        let gap = max_abs_diff(whole.clone().inner(), Tensor::cat(halves, 0).inner());
        (model, whole, gap)
    };
    let (_, _, batch_gap) = split_gap(NormMode::Batch);
    let (frozen, out, frozen_gap) = split_gap(NormMode::Frozen);
    assert!(batch_gap > 1e-3, "batch statistics should couple the clips of a batch (gap {batch_gap})");
    assert!(frozen_gap < 1e-5, "frozen norm: a clip's output depends on its batch (gap {frozen_gap})");
    let grads = out.sum().backward();
    let gamma = frozen.proj_video.bn.gamma.val().grad(&grads).expect("gamma of a frozen BatchNorm still trains");
    assert!(gamma.abs().sum().into_scalar::<f32>() > 0.0);
    // The running statistics stay as initialised.
    let mean = frozen.proj_video.bn.running_mean.value().inner();
    assert_eq!(mean.abs().sum().into_scalar::<f32>(), 0.0);
}

#[test]
fn classifier_head() {
    let d = dev();
    let head = ClassifierConfig::new(64, 10, 0.5).init(&d).expect("valid");
    assert_eq!(head.forward(randn([4, 64], 7)).dims(), [4, 10]);
    assert!(matches!(
        ClassifierConfig::new(64, 10, 1.0).init(&d),
        Err(ModelError::InvalidConfig { field: "dropout", .. })
    ));
    // Dropout is inactive outside training: two passes agree.
    let x = randn([4, 64], 8);
    assert_eq!(max_abs_diff(head.forward(x.clone()), head.forward(x)), 0.0);
}

// ---------------------------------------------------------------------------------------------------------------
// Config rules

#[test]
fn identity_map_with_unequal_widths_is_a_clear_error() {
    let d = dev();
    let err = AffinityMapConfig::new(AffinityMapKind::Identity, 512, 256).init(&d).expect_err("must fail");
    assert!(matches!(err, ModelError::AffinityWidthMismatch { video_dim: 512, audio_dim: 256 }));
    let msg = err.to_string();
    assert!(msg.contains("512") && msg.contains("256") && msg.contains("linear"), "{msg}");
    // A linear or MLP map bridges the widths.
    for kind in [AffinityMapKind::Linear, AffinityMapKind::Mlp] {
        let (mv, ma) = AffinityMapConfig::new(kind, 64, 32).init(&d).expect("linear maps accept any widths");
        assert_eq!(mv.forward(randn([2, 64], 9)).dims(), [2, 64]);
        assert_eq!(ma.forward(randn([2, 32], 10)).dims(), [2, 64]);
    }
}

#[test]
fn model_config_json_is_strict_and_validated() {
    let cfg = ModelConfig::paper();
    let json = serde_json::to_string(&cfg).expect("serialise");
    assert_eq!(
        json,
        r#"{"video_arch":"r2plus1d_18","preset":"full","proj_hidden":512,"proj_dim":128,"affinity_map":"identity"}"#
    );
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).ok(), Some(cfg.clone()));
    let unknown = json.replace("\"proj_dim\"", "\"proj_dims\"");
    assert!(serde_json::from_str::<ModelConfig>(&unknown).is_err());
    let bad = ModelConfig { proj_dim: 0, ..cfg };
    assert!(matches!(bad.validate(), Err(ModelError::InvalidConfig { field: "proj_dim", .. })));
    assert!(bad.init(&dev()).is_err());
}
