//! Weight key tables, torchvision import/export round trips and checkpoint files.

use crate::common::*;

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
