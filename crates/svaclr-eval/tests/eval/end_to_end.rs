//! End-to-end fine-tuning, linear probe and retrieval on a tiny SynthAV written at test time.

use crate::common::*;

// ---------------------------------------------------------------------------------------------------------------
// End to end on a tiny SynthAV.

/// The small SynthAV preset cut to 1 pre-training clip, 2 train and 1 test clip per class (8 classes), 8 retrieval
/// clips; written into `dir`.
fn tiny_synth(dir: &Path) {
    let mut cfg = SynthConfig::preset(Preset::Small).with_seed(3).with_pretrain_clips(1);
    cfg.train_per_class = 2;
    cfg.test_per_class = 1;
    cfg.retrieval_clips = 8;
    generate(&cfg, dir, GenerateOptions::default()).expect("generate SynthAV");
    assert!(dir.join(Split::Train.manifest_file()).is_file());
}

fn tiny_data() -> DataConfig {
    DataConfig {
        frames: 4,
        fps: 8.0,
        short_side: 32,
        crop: 32,
        audio_seconds: 0.5,
        mel: MelConfig {
            sample_rate: 16_000,
            n_fft: 256,
            win_length: 200,
            hop_length: 160,
            n_mels: 16,
            f_min: 0.0,
            f_max: 8000.0,
            log_eps: 1e-6,
        },
        speeds: SpeedSet::Range([1.0, 1.0]),
        tie_speeds: false,
        augment: AugmentConfig::default(),
        workers: 1,
        allow_missing_audio: false,
        ..DataConfig::default()
    }
}

fn tiny_model(seed: u64, device: &Device) -> LoadedModel {
    let model_config = ModelConfig::for_preset(VideoArch::R2Plus1d18, SizePreset::Tiny);
    svaclr_eval::load_model(None, true, Some(&model_config), seed, device).expect("random-init model")
}

#[test]
fn a_runs_random_init_baseline_is_the_weights_its_pretraining_started_from() {
    // `--random-init --checkpoint RUN`: the run's architecture with the weights its pre-training drew from its seed
    // (the seed argument is ignored then), so each seed of a table row has its own baseline.
    let device = Device::flex();
    let text = std::fs::read_to_string(workspace_root().join("configs/pretrain/smoke.json")).expect("smoke config");
    let mut seen = Vec::new();
    for seed in [0u64, 7] {
        let mut cfg: svaclr_train::PretrainConfig = serde_json::from_str(&text).expect("parse");
        cfg.seed = seed;
        let run = tempfile::tempdir().expect("tempdir");
        std::fs::write(run.path().join("config.json"), serde_json::to_vec(&cfg).expect("json")).expect("write");
        let baseline = svaclr_eval::load_model(Some(run.path()), true, None, 99, &device).expect("baseline");
        assert!(baseline.random_init && baseline.pretrain_seed == Some(seed));
        let initial = svaclr_train::trainer::initial_model(&cfg, &device).expect("initial weights");
        let hash = |m: &svaclr_models::AvModel| svaclr_train::distributed::module_hash(m).expect("hash");
        assert_eq!(hash(&baseline.model), hash(&initial), "seed {seed}: not the run's initial weights");
        seen.push(hash(&initial));
    }
    assert_ne!(seen[0], seen[1], "another seed, other weights");
}

fn tiny_config(dir: &Path, protocol: Protocol) -> FinetuneConfig {
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("configs/finetune/smoke_linear.json")).expect("read"),
    )
    .expect("parse");
    v["protocol"] = serde_json::to_value(protocol).expect("protocol");
    v["train_data"] = serde_json::to_value(tiny_data()).expect("data");
    v["test_data"] = serde_json::to_value(tiny_data()).expect("data");
    v["epochs"] = Value::from(2);
    v["batch_size"] = Value::from(8);
    v["test"] = serde_json::json!({"clips": 2, "crops": 3, "batch_size": 12});
    v["linear_probe"]["train_clips"] = Value::from(2);
    v["optim"]["backbone_lr"] = Value::from(0.002);
    let mut cfg: FinetuneConfig = serde_json::from_value(v).expect("config");
    cfg.resolve(dir, Some(dir));
    cfg.validate().expect("valid config");
    cfg
}

fn assert_accuracy(r: &svaclr_eval::FinetuneResult) {
    assert_eq!(r.folds.len(), 1);
    for x in [r.top1, r.top5, r.folds[0].top1, r.folds[0].top5] {
        assert!(x.is_finite() && (0.0..=1.0).contains(&x), "{x}");
    }
    let f = &r.folds[0];
    assert_eq!(f.num_classes, 8);
    assert_eq!(f.test_videos, 8);
    assert_eq!(f.confusion.total(), 8);
    assert!(f.top1 <= f.confusion.accuracy() + 1e-12, "pessimistic top-1 is never above the arg-max accuracy");
    assert_eq!(f.epochs.len(), 2);
    assert!(f.epochs.iter().all(|e| e.loss.is_finite() && e.loss > 0.0 && (0.0..=1.0).contains(&e.train_top1)));
    assert!(r.top5 >= r.top1);
}

#[test]
fn finetune_end_to_end_on_tiny_synthav() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let cfg = tiny_config(dir.path(), Protocol::Finetune);
    let device = Device::flex();
    let source = tiny_model(cfg.seed, &device);
    let opts = EvalOptions { progress: false, feature_cache: None, device_name: "flex".into() };
    let r = finetune::run(&cfg, &source, &device, &opts).expect("fine-tune");
    assert_accuracy(&r);
    let f = &r.folds[0];
    assert_eq!(f.views_per_video, 6);
    assert_eq!(f.train_videos, 16);
    assert_eq!(f.train_examples, 16);
    assert!(f.epochs[1].lr_backbone > 0.0);
    assert_eq!(r.config_hash.len(), 64);
    assert!(r.random_init);

    // Results files.
    let out = dir.path().join("out");
    let paths = report::write_finetune(&out, &cfg, &r).expect("write results");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("read")).expect("json");
    for key in ["top1", "top5", "folds", "protocol", "config_hash", "seed", "wall_seconds", "device", "checkpoint"] {
        assert!(json.get(key).is_some(), "results.json lacks {key}");
    }
    assert_eq!(json["protocol"], "finetune");
    assert_eq!(json["top1"].as_f64(), Some(r.top1));
    let png = std::fs::read(out.join("confusion.png")).expect("png");
    assert_eq!(&png[..4], b"\x89PNG");
    assert_eq!(paths.len(), 4);
    let md = std::fs::read_to_string(out.join("results.md")).expect("md");
    assert!(md.contains("| **mean** |"));
    let saved = FinetuneConfig::load(&out.join("config.json"), None).expect("saved config loads");
    assert_eq!(saved.hash(), r.config_hash);
}

#[test]
fn linear_probe_end_to_end_with_feature_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let cfg = tiny_config(dir.path(), Protocol::LinearProbe);
    let device = Device::flex();
    let source = tiny_model(cfg.seed, &device);
    let cache = dir.path().join("features");
    let opts = EvalOptions { progress: false, feature_cache: Some(cache.clone()), device_name: "flex".into() };
    let r = finetune::run(&cfg, &source, &device, &opts).expect("probe");
    assert_accuracy(&r);
    let f = &r.folds[0];
    assert_eq!(f.train_examples, 16 * 2, "2 clips x 1 crop per training video");
    assert_eq!(f.views_per_video, 6);
    assert!(f.epochs.iter().all(|e| e.lr_backbone == 0.0));
    let files: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").collect();
    assert_eq!(files.len(), 2, "train and test features cached");
    // A second run reads the cache and gives the same numbers.
    let again = finetune::run(&cfg, &source, &device, &opts).expect("probe again");
    assert_eq!(again.folds[0].top1, f.top1);
    assert_eq!(again.folds[0].epochs, f.epochs);
    // smoke_linear.json asks for kNN: reported, and the same from cached features; without the setting, none.
    assert!(r.knn_top1.is_some_and(|k| (0.0..=1.0).contains(&k)) && again.knn_top1 == r.knn_top1);
    let mut no_knn = cfg.clone();
    no_knn.linear_probe.knn = None;
    assert_eq!(finetune::run(&no_knn, &source, &device, &opts).expect("probe").knn_top1, None);
}

/// Folds restart from the same encoder: two identical folds of a random-init model fine-tune identically (the
/// lazily initialised weights are materialised once, the head is re-seeded per fold, the data order is seeded).
#[test]
fn identical_folds_give_identical_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let mut cfg = tiny_config(dir.path(), Protocol::Finetune);
    let mut second = cfg.folds[0].clone();
    second.name = "again".into();
    cfg.folds.push(second);
    cfg.epochs = 1;
    let device = Device::flex();
    let source = tiny_model(cfg.seed, &device);
    let opts = EvalOptions { progress: false, feature_cache: None, device_name: "flex".into() };
    let r = finetune::run(&cfg, &source, &device, &opts).expect("fine-tune");
    assert_eq!(r.folds.len(), 2);
    assert_eq!(r.folds[0].epochs, r.folds[1].epochs);
    assert_eq!(r.folds[0].confusion, r.folds[1].confusion);
    assert_eq!(r.top1_std, 0.0);
    assert_eq!(r.weights_sha256, source.weights_sha256);
}

/// Tested on its own training videos with the views it was trained on, a linear probe that fits every training
/// view must classify every video: a video's logits are the mean of its views' logits (the head is linear and
/// standardisation affine), so a class that wins in every view wins on average. This checks the labels, the
/// feature/label alignment and the view averaging end to end.
#[test]
fn linear_probe_that_fits_its_views_classifies_their_videos() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let mut cfg = tiny_config(dir.path(), Protocol::LinearProbe);
    cfg.folds[0].test = test_on_copies_of_the_training_clips(dir.path(), &cfg.folds[0].train);
    cfg.test = svaclr_eval::TestConfig { clips: 2, crops: 1, batch_size: 8 };
    cfg.epochs = 40;
    cfg.optim.head_lr = 0.2;
    cfg.optim.schedule.milestones = vec![];
    // The training videos' mean features are the test videos' (same deterministic views), so each test video's
    // nearest training video is itself and 1-NN classifies all of them.
    cfg.linear_probe.knn = Some(svaclr_eval::knn::KnnConfig { k: 1, temperature: 0.07 });
    let device = Device::flex();
    let source = tiny_model(cfg.seed, &device);
    let opts = EvalOptions { progress: false, feature_cache: None, device_name: "flex".into() };
    let r = finetune::run(&cfg, &source, &device, &opts).expect("probe");
    let f = &r.folds[0];
    let (first, last) = (&f.epochs[0], &f.epochs[39]);
    assert!(last.loss < first.loss / 4.0, "loss {} -> {}", first.loss, last.loss);
    assert_eq!(last.train_top1, 1.0, "32 views of 16 videos in 64 dimensions are separable");
    assert_eq!(f.top1, 1.0);
    assert_eq!((f.knn_top1, r.knn_top1), (Some(1.0), Some(1.0)));
}

#[test]
fn retrieval_end_to_end_on_tiny_synthav() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let device = Device::flex();
    let source = tiny_model(5, &device);
    let manifest_path = dir.path().join(Split::Retrieval.manifest_file());
    let manifest = Manifest::load(&manifest_path).expect("manifest");
    let ds = ClipDataset::new(&manifest, None, tiny_data()).expect("dataset");
    let cfg = RetrieveConfig {
        checkpoint: None,
        random_init: true,
        manifest: manifest_path,
        split: None,
        ks: vec![1, 5, 8],
        clips: 2,
        class_level: true,
        embedding: EmbeddingKind::Z,
        batch_size: 6,
        data: tiny_data(),
        seed: 5,
        weights_sha256: source.weights_sha256.clone(),
    };
    let r = retrieve::run(&cfg, &source.model, &ds, &device, "flex", false).expect("retrieve");
    assert_eq!(r.queries, 8);
    for m in [&r.v2a, &r.a2v] {
        assert!(m.values().all(|x| (0.0..=1.0).contains(x)));
        assert_eq!(m.get("8"), Some(&1.0), "R@N is 1");
    }
    let class = r.class_level.as_ref().expect("class level");
    assert!(class.v2a["1"] >= r.v2a["1"]);
    // The embeddings are unit vectors and deterministic.
    let e1 = retrieve::extract(&source.model, &ds, 2, EmbeddingKind::Z, 6, &device, false).expect("extract");
    let e2 = retrieve::extract(&source.model, &ds, 2, EmbeddingKind::Z, 3, &device, false).expect("extract");
    for i in 0..8 {
        let n: f32 = e1.video.row(i).iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
        for (a, b) in e1.audio.row(i).iter().zip(e2.audio.row(i)) {
            assert!((a - b).abs() < 1e-4, "batching must not change embeddings");
        }
    }
    // The recalls are the ones a brute-force count gives on the same embeddings (pessimistic ties): an exact check,
    // not a range.
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>();
    let recall = |q: &dyn Fn(usize) -> Vec<f32>, g: &dyn Fn(usize) -> Vec<f32>, k: usize| {
        let hits = (0..8)
            .filter(|&i| {
                let own = dot(&q(i), &g(i));
                1 + (0..8).filter(|&j| j != i && dot(&q(i), &g(j)) >= own).count() <= k
            })
            .count();
        hits as f64 / 8.0
    };
    let (video, audio) = (|i: usize| e1.video.row(i).to_vec(), |i: usize| e1.audio.row(i).to_vec());
    for k in [1, 5, 8] {
        assert_eq!(r.v2a[&k.to_string()], recall(&video, &audio, k), "V->A R@{k}");
        assert_eq!(r.a2v[&k.to_string()], recall(&audio, &video, k), "A->V R@{k}");
    }
    let out = dir.path().join("ret");
    report::write_retrieval(&out, &cfg, &r).expect("write");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("read")).expect("json");
    assert!(
        json["v2a"]["1"].is_number() && json["a2v"]["5"].is_number() && json["class_level"]["v2a"]["1"].is_number()
    );
}

#[test]
fn missing_checkpoint_is_a_one_line_error() {
    let e = svaclr_eval::load_model(Some(Path::new("/nonexistent/run")), false, None, 0, &Device::flex())
        .expect_err("missing run")
        .to_string();
    assert!(e.contains("/nonexistent/run") && !e.contains('\n'), "{e}");
    let e = svaclr_eval::load_model(None, false, None, 0, &Device::flex()).expect_err("no source").to_string();
    assert!(e.contains("--checkpoint"), "{e}");
}

/// Fine-tuning's test path against a hand computation: with frozen norm and both learning rates 0 the encoder and
/// the head keep their initial weights (the encoder's from the seed, the head's from `init_head(seed)`), so every
/// test video's class must be the arg-max of its 2 x 3 views' mean logits computed here clip by clip, and top-1 and
/// top-5 must be those counts over 8 videos exactly. This checks the test views, the labels and the averaging of
/// fine-tuning end to end (the linear-probe test above checks the probe's).
#[test]
fn finetune_top1_and_top5_equal_a_hand_computation_when_nothing_trains() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let mut cfg = tiny_config(dir.path(), Protocol::Finetune);
    cfg.epochs = 1;
    cfg.dropout = 0.0;
    (cfg.optim.head_lr, cfg.optim.backbone_lr) = (0.0, 0.0);
    let device = Device::flex();
    let mut model_config = ModelConfig::for_preset(VideoArch::R2Plus1d18, SizePreset::Tiny);
    model_config.norm = svaclr_models::NormMode::Frozen;
    let source = svaclr_eval::load_model(None, true, Some(&model_config), cfg.seed, &device).expect("model");
    let opts = EvalOptions { progress: false, feature_cache: None, device_name: "flex".into() };
    let r = finetune::run(&cfg, &source, &device, &opts).expect("fine-tune");

    let encoder = source.model.video.valid();
    let classes = 8;
    let head = finetune::init_head(
        &svaclr_models::ClassifierConfig::new(encoder.feature_dim(), classes, 0.0),
        cfg.seed,
        &device,
    )
    .expect("head");
    let test = Manifest::load(&cfg.folds[0].test.manifest).expect("test manifest");
    let ds = ClipDataset::new(&test, cfg.folds[0].test.split.as_deref(), cfg.test_data.clone()).expect("test set");
    assert_eq!(ds.len(), 8);
    let (mut hits1, mut hits5) = (0, 0);
    let mut confusion = vec![vec![0u64; classes]; classes];
    for i in 0..ds.len() {
        let mut mean = vec![0.0f64; classes];
        let views = ds.eval_samples(i, cfg.test.clips, cfg.test.crops).expect("views");
        assert_eq!(views.len(), 6);
        for view in &views {
            let shape = cfg.test_data.video_view_shape();
            let x = Tensor::<5>::from_data(
                TensorData::new(view.video[0].clone(), [1, shape[0], shape[1], shape[2], shape[3]]),
                &device,
            );
            let logits: Vec<f32> = head.forward(encoder.forward(x)).into_data().try_to_vec::<f32>().expect("logits");
            for (m, l) in mean.iter_mut().zip(logits) {
                *m += f64::from(l) / views.len() as f64;
            }
        }
        let label = ds.label(i).expect("label");
        let above = mean.iter().filter(|&&m| m > mean[label]).count();
        hits1 += usize::from(above == 0);
        hits5 += usize::from(above < 5);
        let predicted = (0..classes).fold(0, |b, c| if mean[c] > mean[b] { c } else { b });
        confusion[label][predicted] += 1;
    }
    let f = &r.folds[0];
    eprintln!("top-1 {} ({hits1}/8), top-5 {} ({hits5}/8)", f.top1, f.top5);
    assert_eq!(f.top1, hits1 as f64 / 8.0);
    assert_eq!(f.top5, hits5 as f64 / 8.0);
    assert_eq!(f.confusion.counts, confusion, "each video's predicted class");
}

/// A test set of the training clips under other ids and file names (hard links), which a fold accepts: it refuses
/// the same ids or the same files (`a_fold_that_tests_on_its_training_clips_is_refused`), not equal pictures.
fn test_on_copies_of_the_training_clips(
    dir: &Path,
    train: &svaclr_eval::config::SplitRef,
) -> svaclr_eval::config::SplitRef {
    let m = Manifest::load(&train.manifest).expect("train manifest");
    let copies = dir.join("copies");
    std::fs::create_dir_all(&copies).expect("mkdir");
    let entries: Vec<_> = m
        .split(train.split.as_deref().expect("split"))
        .into_iter()
        .map(|e| {
            let mut c = e.clone();
            c.id = format!("copy-{}", e.id);
            c.split = "test".into();
            for (path, ext) in [(&mut c.video, "mkv"), (c.audio.as_mut().expect("wav"), "wav")] {
                let link = copies.join(format!("{}.{ext}", c.id));
                std::fs::hard_link(m.root.join(&*path), &link).expect("link");
                *path = link;
            }
            c
        })
        .collect();
    let manifest = copies.join("test.jsonl");
    Manifest::save(&manifest, &entries).expect("save");
    svaclr_eval::config::SplitRef { manifest, split: Some("test".into()) }
}

#[test]
fn a_fold_that_tests_on_its_training_clips_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_synth(dir.path());
    let mut cfg = tiny_config(dir.path(), Protocol::LinearProbe);
    let device = Device::flex();
    let source = tiny_model(cfg.seed, &device);
    let opts = EvalOptions { progress: false, feature_cache: None, device_name: "flex".into() };
    // The same split, and one training clip's file under another id in a test manifest: both refused.
    cfg.folds[0].test = cfg.folds[0].train.clone();
    let err = finetune::run(&cfg, &source, &device, &opts).expect_err("same split").to_string();
    assert!(err.contains("is also in the training set"), "{err}");
    let m = Manifest::load(&cfg.folds[0].train.manifest).expect("manifest");
    let mut leaked = m.split("train")[0].clone();
    leaked.id = "renamed".into();
    leaked.split = "test".into();
    let manifest = dir.path().join("leaky.jsonl");
    let mut honest = m.split("train")[1].clone();
    (honest.id, honest.split) = ("x".into(), "test".into());
    for e in [&mut leaked, &mut honest] {
        e.video = m.root.join(&e.video);
        e.audio = e.audio.as_ref().map(|a| m.root.join(a));
    }
    Manifest::save(&manifest, &[leaked, honest]).expect("save");
    cfg.folds[0].test = svaclr_eval::config::SplitRef { manifest, split: Some("test".into()) };
    let err = finetune::run(&cfg, &source, &device, &opts).expect_err("same file").to_string();
    assert!(err.contains("test clip 'renamed'") && err.contains("is also in the training set"), "{err}");
    // A fold that names no split of a manifest holding several.
    let mut unnamed = tiny_config(dir.path(), Protocol::LinearProbe);
    let all = dir.path().join("all.jsonl");
    let mut entries = m.entries.clone();
    entries.iter_mut().for_each(|e| {
        e.video = m.root.join(&e.video);
        e.audio = e.audio.as_ref().map(|a| m.root.join(a));
    });
    let t = Manifest::load(&unnamed.folds[0].test.manifest).expect("test manifest");
    entries.extend(t.entries.iter().map(|e| {
        let mut e = e.clone();
        e.video = t.root.join(&e.video);
        e.audio = e.audio.as_ref().map(|a| t.root.join(a));
        e
    }));
    Manifest::save(&all, &entries).expect("save");
    unnamed.folds[0].train = svaclr_eval::config::SplitRef { manifest: all.clone(), split: None };
    let err = finetune::run(&unnamed, &source, &device, &opts).expect_err("unnamed split").to_string();
    assert!(err.contains("holds the splits test, train and the fold names none"), "{err}");
}
