//! Integration tests of svaclr-models: parameter counts against torchvision, shapes for every preset, the
//! cross-affinity width rule, weight import/export round trips, and a hand-computed conv/BN case.
//!
//! Forward passes of full-size networks are slow in the dev profile; they run only with `SVACLR_HEAVY_TESTS=1`.
//! PyTorch parity (torchvision's own outputs) is checked by `cargo xtask parity`.

use std::path::Path;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::store::ModuleSnapshot;
use svaclr_models::affinity::{AffinityMapConfig, AffinityMapKind};
use svaclr_models::video_resnet::{R2Plus1dStem, VideoStem};
use svaclr_models::weights::{self, BURN_TO_TORCHVISION, TORCHVISION_TO_BURN};
use svaclr_models::{
    AudioEncoderConfig, ClassifierConfig, ModelConfig, ModelError, NormMode, SizePreset, TorchvisionArch,
    TorchvisionNet, VideoArch, VideoEncoder, VideoEncoderConfig, VideoInput, VideoResNetConfig, count_parameters,
};

fn dev() -> Device {
    Device::flex()
}

fn heavy() -> bool {
    std::env::var("SVACLR_HEAVY_TESTS").is_ok_and(|v| v == "1")
}

fn randn<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let d = dev();
    d.seed(seed);
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), &d)
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// Total BatchNorm channels, from the number of `running_mean` elements Burn keeps.
fn bn_channels<M: Module>(m: &M) -> usize {
    m.collect(None, None, true)
        .iter()
        .filter(|t| t.name.ends_with("running_mean"))
        .map(|t| t.shape.iter().product::<usize>())
        .sum()
}

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

// ---------------------------------------------------------------------------------------------------------------
// Weight key tables

#[test]
fn key_tables_map_torchvision_names_and_invert() {
    let cases = [
        ("stem.0.weight", "stem.conv1.weight"),
        ("stem.4.running_var", "stem.bn2.running_var"),
        ("layer2.0.conv1.0.0.weight", "layer2.0.conv1.conv.spatial.weight"),
        ("layer2.0.conv1.0.1.bias", "layer2.0.conv1.conv.bn.bias"),
        ("layer2.0.conv1.0.3.weight", "layer2.0.conv1.conv.temporal.weight"),
        ("layer3.1.conv2.0.weight", "layer3.1.conv2.conv.weight"),
        ("layer3.1.conv2.1.weight", "layer3.1.conv2.bn.weight"),
        ("layer4.0.downsample.1.running_mean", "layer4.0.downsample.bn.running_mean"),
        ("layer1.0.conv1.weight", "layer1.0.conv1.weight"),
        ("layer1.0.bn2.bias", "layer1.0.bn2.bias"),
        ("fc.weight", "fc.weight"),
    ];
    for (torch, ours) in cases {
        assert_eq!(weights::torchvision_key_to_burn(torch, false), ours);
        assert_eq!(weights::burn_key_to_torchvision(ours, false), torch);
    }
    assert_eq!(weights::torchvision_key_to_burn("layer1.0.conv1.weight", true), "encoder.layer1.0.conv1.weight");
    assert_eq!(weights::torchvision_key_to_burn("fc.bias", true), "fc.bias");
    assert_eq!(TORCHVISION_TO_BURN.len(), BURN_TO_TORCHVISION.len());
}

/// Every parameter path of every network maps to a torchvision key and back.
#[test]
fn every_parameter_path_round_trips_through_torchvision_names() {
    let d = dev();
    for arch in TorchvisionArch::ALL {
        let net = TorchvisionNet::init(arch, SizePreset::Tiny, 5, &d);
        let names: Vec<String> = match &net {
            TorchvisionNet::Video(v) => v.collect(None, Some(Box::new(burn::store::BurnToPyTorchAdapter)), true),
            TorchvisionNet::Audio(a) => a.collect(None, Some(Box::new(burn::store::BurnToPyTorchAdapter)), true),
        }
        .into_iter()
        .map(|t| t.name)
        .collect();
        for ours in names {
            let torch = weights::burn_key_to_torchvision(&ours, true);
            assert!(
                !torch.contains("encoder") && !torch.contains(".conv.") && !torch.contains("spatial"),
                "{arch}: {ours} -> {torch}"
            );
            assert_eq!(weights::torchvision_key_to_burn(&torch, true), ours, "{arch}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Import / export round trips

fn outputs(net: &TorchvisionNet, input: &TensorData) -> (Tensor<2>, Tensor<2>) {
    let out = net.forward_data(input.clone(), &dev()).expect("valid input");
    (out.features, out.logits)
}

fn input_for(arch: TorchvisionArch) -> TensorData {
    match arch {
        TorchvisionArch::AudioResNet9 => randn([2, 1, 40, 48], 11).into_data(),
        _ => randn([2, 3, 4, 32, 32], 12).into_data(),
    }
}

#[test]
fn export_then_import_gives_identical_outputs() {
    let d = dev();
    let dir = tempfile::tempdir().expect("tempdir");
    for arch in TorchvisionArch::ALL {
        let net = TorchvisionNet::init(arch, SizePreset::Tiny, 7, &d);
        let input = input_for(arch);
        let (f0, l0) = outputs(&net, &input);
        // torchvision-format safetensors
        let st = dir.path().join(format!("{arch}.safetensors"));
        weights::export_torchvision(&net, &st).expect("export");
        let back = weights::load_torchvision(arch, &st, SizePreset::Tiny, 7, &d).expect("import");
        let (f1, l1) = outputs(&back, &input);
        assert_eq!(max_abs_diff(f0.clone(), f1), 0.0, "{arch} features after safetensors round trip");
        assert_eq!(max_abs_diff(l0.clone(), l1), 0.0, "{arch} logits after safetensors round trip");
        // our burnpack
        let bpk = weights::save_net(&net, &dir.path().join(arch.name())).expect("save");
        assert_eq!(bpk.extension().and_then(|e| e.to_str()), Some("bpk"));
        let back = weights::load_net(arch, &bpk, SizePreset::Tiny, 7, &d).expect("load");
        let (f2, l2) = outputs(&back, &input);
        assert_eq!(max_abs_diff(f0, f2), 0.0);
        assert_eq!(max_abs_diff(l0, l2), 0.0);
    }
}

#[test]
fn exported_file_has_torchvision_keys_and_layouts() {
    let d = dev();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r21d.safetensors");
    let net = TorchvisionNet::init(TorchvisionArch::R2Plus1d18, SizePreset::Tiny, 400, &d);
    weights::export_torchvision(&net, &path).expect("export");
    let bytes = std::fs::read(&path).expect("read back");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    // torchvision's r2plus1d_18 state_dict has 224 keys, 37 of them num_batches_tracked (one per BatchNorm).
    assert_eq!(file.names().len(), 224 - 37);
    let shape = |k: &str| file.tensor(k).map(|t| t.shape().to_vec()).unwrap_or_default();
    assert_eq!(shape("fc.weight"), vec![400, 64], "Linear weights are [out, in]");
    assert_eq!(shape("stem.0.weight"), vec![6, 3, 1, 7, 7]);
    assert_eq!(shape("stem.3.weight"), vec![8, 6, 3, 1, 1]);
    // (2+1)D mid width for (inplanes 8, planes 16): (8*16*27) // (8*9 + 3*16) = 28.
    assert_eq!(shape("layer2.0.conv1.0.0.weight"), vec![28, 8, 1, 3, 3]);
    assert_eq!(shape("layer2.0.conv1.0.3.weight"), vec![16, 28, 3, 1, 1]);
    assert_eq!(shape("layer2.0.conv2.0.0.weight"), vec![28, 16, 1, 3, 3], "conv2 reuses the block's mid width");
    for k in ["stem.1.weight", "stem.1.bias", "stem.1.running_mean", "stem.1.running_var", "layer4.0.downsample.1.bias"]
    {
        assert!(file.tensor(k).is_ok(), "missing {k}");
    }
}

#[test]
fn import_reports_missing_unused_and_mismatched_tensors() {
    let d = dev();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r21d.safetensors");
    weights::export_torchvision(&TorchvisionNet::init(TorchvisionArch::R2Plus1d18, SizePreset::Tiny, 5, &d), &path)
        .expect("export");
    // Another architecture: R3D has no spatial/temporal convs, and its convs are missing from the file.
    let err = weights::load_torchvision(TorchvisionArch::R3d18, &path, SizePreset::Tiny, 5, &d).expect_err("must fail");
    assert!(matches!(err, ModelError::Mismatch { .. } | ModelError::MissingTensors { .. }), "{err}");
    assert!(err.to_string().contains("r3d_18") && err.to_string().contains(&*path.to_string_lossy()), "{err}");
    // Another preset: shapes differ.
    let err =
        weights::load_torchvision(TorchvisionArch::R2Plus1d18, &path, SizePreset::Small, 5, &d).expect_err("must fail");
    assert!(matches!(err, ModelError::Mismatch { .. }), "{err}");
    // An encoder-only load ignores the fc; the full network needs it.
    let enc = weights::load_torchvision_video_encoder(VideoArch::R2Plus1d18, &path, SizePreset::Tiny, &d);
    assert!(enc.is_ok(), "{:?}", enc.err());
    // An encoder exported without fc cannot fill a network's fc.
    let enc_path = dir.path().join("enc.safetensors");
    weights::export_video_encoder(&enc.expect("checked"), &enc_path).expect("export encoder");
    let err = weights::load_torchvision(TorchvisionArch::R2Plus1d18, &enc_path, SizePreset::Tiny, 5, &d)
        .expect_err("fc missing");
    match err {
        ModelError::MissingTensors { keys, .. } => {
            assert_eq!(keys, vec!["fc.bias".to_string(), "fc.weight".to_string()])
        }
        other => panic!("expected missing fc, got {other}"),
    }
    // The audio net does not take a video file: unused video keys.
    let err = weights::load_torchvision_audio_encoder(&path, SizePreset::Tiny, &d).expect_err("must fail");
    assert!(matches!(
        err,
        ModelError::MissingTensors { .. } | ModelError::UnusedTensors { .. } | ModelError::Mismatch { .. }
    ));
}

#[test]
fn file_errors_name_the_file() {
    let d = dev();
    let missing = Path::new("/nonexistent/dir/weights.pth");
    let err =
        weights::load_torchvision(TorchvisionArch::R3d18, missing, SizePreset::Tiny, 5, &d).expect_err("must fail");
    assert!(matches!(err, ModelError::Read { .. }));
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/dir/weights.pth") && !msg.contains('\n'), "{msg}");
    let err = weights::load_torchvision(TorchvisionArch::R3d18, Path::new("w.onnx"), SizePreset::Tiny, 5, &d)
        .expect_err("fail");
    assert!(matches!(err, ModelError::UnsupportedFormat { .. }));
    let net = TorchvisionNet::init(TorchvisionArch::R3d18, SizePreset::Tiny, 5, &d);
    assert!(matches!(
        weights::export_torchvision(&net, Path::new("out.pth")),
        Err(ModelError::UnsupportedFormat { .. })
    ));
    // A garbage file.
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a tensor file").expect("write");
    let err = weights::load_torchvision(TorchvisionArch::R3d18, &junk, SizePreset::Tiny, 5, &d).expect_err("fail");
    assert!(err.to_string().contains("junk.safetensors"), "{err}");
}

#[test]
fn av_model_checkpoint_round_trip_and_video_encoder_for_finetuning() {
    let d = dev();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ModelConfig {
        affinity_map: AffinityMapKind::Mlp,
        ..ModelConfig::for_preset(VideoArch::R2Plus1d18, SizePreset::Tiny)
    };
    let model = cfg.init(&d).expect("valid");
    let path = weights::save_model(&model, &dir.path().join("model")).expect("save");
    let (v, a) = (randn([2, 3, 4, 32, 32], 13), randn([2, 1, 40, 50], 14));
    let before = model.forward(v.clone(), a.clone());
    let loaded = weights::load_model(&cfg, &path, &d).expect("load");
    let after = loaded.forward(v.clone(), a);
    assert_eq!(max_abs_diff(before.z_video, after.z_video), 0.0);
    assert_eq!(max_abs_diff(before.l_audio, after.l_audio), 0.0);
    let enc = weights::load_video_encoder(&cfg, &path, &d).expect("video encoder");
    assert_eq!(max_abs_diff(enc.forward(v), before.y_video), 0.0);
    // A config that does not match the checkpoint is refused.
    let other = ModelConfig { affinity_map: AffinityMapKind::Identity, ..cfg };
    assert!(weights::load_model(&other, &path, &d).is_err());
}

#[test]
fn tensor_files_round_trip_and_name_missing_tensors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("io.safetensors");
    let x = TensorData::new((0..24).map(|i| i as f32 * 0.5).collect::<Vec<_>>(), [2, 3, 4]);
    weights::write_tensors(&path, &[("input", x.clone())]).expect("write");
    let back = weights::read_tensor(&path, "input").expect("read");
    assert_eq!(back.shape().to_vec(), vec![2, 3, 4]);
    assert_eq!(back.as_slice::<f32>().ok(), x.as_slice::<f32>().ok());
    let err = weights::read_tensor(&path, "features").expect_err("absent");
    assert!(
        matches!(&err, ModelError::TensorNotFound { name, found, .. } if name == "features" && found == &vec!["input".to_string()])
    );
}

#[test]
fn forward_data_rejects_wrong_shapes() {
    let net = TorchvisionNet::init(TorchvisionArch::AudioResNet9, SizePreset::Tiny, 3, &dev());
    let wrong = TensorData::new(vec![0f32; 2 * 3 * 8 * 8], [2, 3, 8, 8]);
    assert!(matches!(net.forward_data(wrong, &dev()), Err(ModelError::InvalidInput { .. })));
}

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
    let ad = dev().autodiff();
    // (input [N, C, T, H, W], channels out, kernel, stride, padding, bias)
    let cases3: [([usize; 5], usize, [usize; 3], [usize; 3], [usize; 3], bool); 6] = [
        ([3, 3, 4, 20, 18], 6, [1, 7, 7], [1, 2, 2], [0, 3, 3], false),
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
        let x = randn(shape, 200 + i as u64);
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
    let cases2: [([usize; 4], usize, usize, usize, usize); 3] =
        [([3, 1, 40, 50], 4, 7, 2, 3), ([4, 4, 10, 13], 8, 3, 2, 1), ([4, 4, 10, 13], 8, 1, 2, 0)];
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
