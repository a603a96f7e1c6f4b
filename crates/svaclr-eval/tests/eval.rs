//! svaclr-eval tests: retrieval metrics (hand-computed cases with ties, NumPy parity, properties), multi-view
//! averaging, configs, and end-to-end fine-tuning / linear probe / retrieval on a tiny SynthAV written at test time.
//!
//! The NumPy fixture `retrieval_numpy.json` is read from `$SVACLR_REFERENCE_DIR` when set, else from
//! `<workspace>/tests/fixtures`; regenerate it with `python scripts/reference/retrieval_reference.py tests/fixtures`.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use proptest::prelude::*;
use serde_json::Value;
use svaclr_data::{AugmentConfig, ClipDataset, DataConfig, Manifest, MelConfig, SpeedSet};
use svaclr_eval::classify::{average_views, score_views, topk_accuracy};
use svaclr_eval::config::{FinetuneConfig, Protocol};
use svaclr_eval::finetune::{self, EvalOptions};
use svaclr_eval::retrieval::{
    DirectionResult, Embeddings, class_ranks, evaluate_pairs, first_relevant_ranks, instance_ranks, recall_at_k,
    similarity,
};
use svaclr_eval::retrieve::{self, EmbeddingKind, RetrieveConfig};
use svaclr_eval::{EvalError, LoadedModel, report};
use svaclr_models::{ModelConfig, SizePreset, VideoArch};
use svaclr_synth::{GenerateOptions, Preset, Split, SynthConfig, generate};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture_dir() -> PathBuf {
    std::env::var_os("SVACLR_REFERENCE_DIR").map_or_else(|| workspace_root().join("tests/fixtures"), PathBuf::from)
}

fn emb(rows: &[&[f32]]) -> Embeddings {
    Embeddings::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).expect("embeddings")
}

// ---------------------------------------------------------------------------------------------------------------
// Retrieval metrics, by hand.

#[test]
fn instance_recall_hand_computed() {
    // Video queries (rows) against audio gallery (columns), 2-d embeddings:
    //   v0 = (1, 0), v1 = (0, 1), v2 = (1, 1), v3 = (-1, 0)
    //   a0 = (1, 0), a1 = (1, 0.5), a2 = (0, 1), a3 = (-1, 0)
    // sims v0: [1, 1, 0, -1]   true a0 = 1, a1 ties at 1           -> rank 2 (pessimistic)
    //      v1: [0, .5, 1, 0]   true a1 = .5, a2 = 1 above          -> rank 2
    //      v2: [1, 1.5, 1, -1] true a2 = 1, a0 ties, a1 above      -> rank 3
    //      v3: [-1, -1, 0, 1]  true a3 = 1, unique best            -> rank 1
    let v = emb(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[-1.0, 0.0]]);
    let a = emb(&[&[1.0, 0.0], &[1.0, 0.5], &[0.0, 1.0], &[-1.0, 0.0]]);
    let sim = similarity(&v, &a).expect("sim");
    assert_eq!(instance_ranks(&sim, 4).expect("ranks"), vec![2, 2, 3, 1]);
    let (inst, class) = evaluate_pairs(&v, &a, None, &[1, 2, 3]).expect("evaluate");
    assert!(class.is_none());
    assert_eq!(inst.v2a.at(1), Some(0.25));
    assert_eq!(inst.v2a.at(2), Some(0.75));
    assert_eq!(inst.v2a.at(3), Some(1.0));
    assert_eq!(inst.v2a.median_rank, 2.0);
    assert_eq!(inst.v2a.mean_rank, 2.0);
    // Audio queries: sims are the transpose.
    //   a0: [1, 0, 1, -1]   true v0 = 1, v2 ties                    -> rank 2
    //   a1: [1, .5, 1.5, -1] true v1 = .5, v0 and v2 above          -> rank 3
    //   a2: [0, 1, 1, 0]    true v2 = 1, v1 ties                    -> rank 2
    //   a3: [-1, 0, -1, 1]  true v3 unique best                     -> rank 1
    assert_eq!(inst.a2v.at(1), Some(0.25));
    assert_eq!(inst.a2v.at(2), Some(0.75));
    assert_eq!(inst.a2v.median_rank, 2.0);
}

#[test]
fn class_level_recall_hand_computed() {
    // Same embeddings, classes [0, 1, 0, 1]. v2a:
    //   v0 [1, 1, 0, -1]:   relevant {a0, a2}, best 1 (a0); irrelevant a1 = 1 ties        -> rank 2
    //   v1 [0, .5, 1, 0]:   relevant {a1, a3}, best .5; irrelevant a2 = 1 above           -> rank 2
    //   v2 [1, 1.5, 1, -1]: relevant {a0, a2}, best 1; irrelevant a1 = 1.5 above          -> rank 2
    //   v3 [-1, -1, 0, 1]:  relevant {a1, a3}, best 1; nothing irrelevant at >= 1         -> rank 1
    let v = emb(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[-1.0, 0.0]]);
    let a = emb(&[&[1.0, 0.0], &[1.0, 0.5], &[0.0, 1.0], &[-1.0, 0.0]]);
    let labels = [0usize, 1, 0, 1];
    let sim = similarity(&v, &a).expect("sim");
    assert_eq!(class_ranks(&sim, &labels, &labels).expect("ranks"), vec![Some(2), Some(2), Some(2), Some(1)]);
    let (_, class) = evaluate_pairs(&v, &a, Some(&labels), &[1, 2]).expect("evaluate");
    let class = class.expect("class level");
    assert_eq!(class.v2a.at(1), Some(0.25));
    assert_eq!(class.v2a.at(2), Some(1.0));
}

#[test]
fn degenerate_embeddings_score_zero_not_one() {
    // Every embedding identical: every similarity ties, so the true item ranks last.
    let same = emb(&[&[0.5, 0.5], &[0.5, 0.5], &[0.5, 0.5], &[0.5, 0.5], &[0.5, 0.5]]);
    let (inst, _) = evaluate_pairs(&same, &same, None, &[1, 4, 5]).expect("evaluate");
    assert_eq!(inst.v2a.at(1), Some(0.0));
    assert_eq!(inst.v2a.at(4), Some(0.0));
    assert_eq!(inst.v2a.at(5), Some(1.0));
    assert_eq!(inst.a2v.median_rank, 5.0);
}

#[test]
fn queries_without_relevant_items_are_misses() {
    let sim = [0.9, 0.1, 0.2, 0.8];
    // Query 0 of class 2 has no gallery item of its class.
    let r = class_ranks(&sim, &[2, 1], &[0, 1]).expect("ranks");
    assert_eq!(r, vec![None, Some(1)]);
    assert_eq!(recall_at_k(&r, 2), 0.5);
    let d = DirectionResult::from_ranks(&r, 2, &[1]);
    assert_eq!(d.mean_rank, (3.0 + 1.0) / 2.0);
    assert!(first_relevant_ranks(&sim, 3, |_, _| true).is_err(), "4 values are not rows of 3");
}

#[test]
fn bad_embeddings_are_refused() {
    assert!(Embeddings::new(vec![1.0, f32::NAN], 1, 2).is_err());
    assert!(Embeddings::new(vec![1.0, 2.0, 3.0], 2, 2).is_err());
    let v = emb(&[&[1.0, 0.0]]);
    let a = emb(&[&[1.0, 0.0, 0.0]]);
    assert!(matches!(similarity(&v, &a), Err(EvalError::Invalid { .. })));
    assert!(evaluate_pairs(&v, &v, None, &[0]).is_err());
    assert!(evaluate_pairs(&v, &emb(&[&[1.0, 0.0], &[0.0, 1.0]]), None, &[1]).is_err());
}

#[test]
fn l2_normalise_and_group_mean() {
    let e = Embeddings::new(vec![3.0, 4.0, 0.0, 2.0, 0.0, 0.0, 1.0, 1.0], 4, 2).expect("embeddings");
    let n = e.l2_normalized();
    assert_eq!(n.row(0), &[0.6, 0.8]);
    assert_eq!(n.row(1), &[0.0, 1.0]);
    assert_eq!(n.row(2), &[0.0, 0.0], "a zero row stays zero");
    let g = n.group_mean(2).expect("groups");
    assert_eq!(g.rows(), 2);
    assert!((g.row(0)[0] - 0.3).abs() < 1e-7 && (g.row(0)[1] - 0.9).abs() < 1e-7);
    assert!(e.group_mean(3).is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// Retrieval metrics against NumPy.

fn matrix(v: &Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().expect("rows");
    let dim = rows[0].as_array().expect("row").len();
    let data: Vec<f32> =
        rows.iter().flat_map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("num") as f32)).collect();
    (data, rows.len(), dim)
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("int") as usize).collect()
}

// Equivalent NumPy (scripts/reference/retrieval_reference.py):
//   sv = video.astype(f64) @ audio.astype(f64).T ; sa = sv.T
//   best = np.where(relevant, sim, -inf).max(1) ; rank = 1 + ((~relevant) & (sim >= best[:, None])).sum(1)
//   recall@k = (rank <= k).mean()
#[test]
fn numpy_parity() {
    let path = fixture_dir().join("retrieval_numpy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text).expect("fixture JSON");
    let cases = root["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let clips = case["clips"].as_u64().expect("clips") as usize;
        let ks = usizes(&case["ks"]);
        let labels = usizes(&case["labels"]);
        let (v, nv, d) = matrix(&case["video"]);
        let (a, na, _) = matrix(&case["audio"]);
        let pool = |x: Vec<f32>, n: usize| {
            let e = Embeddings::new(x, n, d).expect("embeddings");
            if clips > 1 { e.l2_normalized().group_mean(clips).expect("groups").l2_normalized() } else { e }
        };
        let (video, audio) = (pool(v, nv), pool(a, na));
        let (inst, class) = evaluate_pairs(&video, &audio, Some(&labels), &ks).expect("evaluate");
        let class = class.expect("class level");
        let n = video.rows();
        let sv = similarity(&video, &audio).expect("sim");
        let sa = similarity(&audio, &video).expect("sim");
        let ranks = [
            (
                "instance",
                "v2a",
                instance_ranks(&sv, n).expect("r").into_iter().map(Some).collect::<Vec<_>>(),
                &inst.v2a,
            ),
            ("instance", "a2v", instance_ranks(&sa, n).expect("r").into_iter().map(Some).collect(), &inst.a2v),
            ("class_level", "v2a", class_ranks(&sv, &labels, &labels).expect("r"), &class.v2a),
            ("class_level", "a2v", class_ranks(&sa, &labels, &labels).expect("r"), &class.a2v),
        ];
        for (level, dir, got_ranks, summary) in ranks {
            let want = &case[level][dir];
            let want_ranks: Vec<Option<usize>> = usizes(&want["ranks"]).into_iter().map(Some).collect();
            assert_eq!(got_ranks, want_ranks, "{name} {level} {dir}: ranks");
            for k in &ks {
                let w = want["recall"][k.to_string()].as_f64().expect("recall");
                assert!((summary.at(*k).expect("k") - w).abs() < 1e-12, "{name} {level} {dir} R@{k}");
            }
            assert_eq!(summary.median_rank, want["median_rank"].as_f64().expect("median"), "{name} {level} {dir}");
            assert!((summary.mean_rank - want["mean_rank"].as_f64().expect("mean")).abs() < 1e-9);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Properties.

fn arb_pairs() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, Vec<usize>, usize, usize)> {
    (2usize..12, 1usize..5).prop_flat_map(|(n, d)| {
        (
            proptest::collection::vec(-3i8..=3, n * d),
            proptest::collection::vec(-3i8..=3, n * d),
            proptest::collection::vec(0usize..3, n),
            Just(n),
            Just(d),
        )
            .prop_map(|(v, a, l, n, d)| {
                // Small integers: plenty of exact ties.
                (v.into_iter().map(f32::from).collect(), a.into_iter().map(f32::from).collect(), l, n, d)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Relabelling the clips (the same permutation of video rows, audio rows and labels) changes no metric,
    /// recall grows with K, R@N is 1, and the class level is never below the instance level.
    #[test]
    fn permutation_invariant_and_monotone((v, a, l, n, d) in arb_pairs(), shift in 0usize..11) {
        let ks: Vec<usize> = (1..=n).collect();
        let (ve, ae) = (Embeddings::new(v.clone(), n, d).unwrap_or_else(|_| unreachable!()), Embeddings::new(a.clone(), n, d).unwrap_or_else(|_| unreachable!()));
        let (inst, class) = evaluate_pairs(&ve, &ae, Some(&l), &ks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let class = class.ok_or_else(|| TestCaseError::fail("no class level"))?;
        let perm: Vec<usize> = (0..n).map(|i| (i * 7 + shift) % n).collect();
        let mut uniq = perm.clone();
        uniq.sort_unstable();
        uniq.dedup();
        prop_assume!(uniq.len() == n);
        let permute = |x: &[f32]| perm.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect::<Vec<f32>>();
        let lp: Vec<usize> = perm.iter().map(|&i| l[i]).collect();
        let (vp, ap) = (Embeddings::new(permute(&v), n, d).unwrap_or_else(|_| unreachable!()), Embeddings::new(permute(&a), n, d).unwrap_or_else(|_| unreachable!()));
        let (inst_p, class_p) = evaluate_pairs(&vp, &ap, Some(&lp), &ks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&inst.v2a.recall, &inst_p.v2a.recall);
        prop_assert_eq!(&inst.a2v.recall, &inst_p.a2v.recall);
        prop_assert_eq!(&class.v2a.recall, &class_p.ok_or_else(|| TestCaseError::fail("no class level"))?.v2a.recall);
        for w in ks.windows(2) {
            prop_assert!(inst.v2a.at(w[0]) <= inst.v2a.at(w[1]));
        }
        prop_assert_eq!(inst.v2a.at(n), Some(1.0));
        prop_assert_eq!(inst.a2v.at(n), Some(1.0));
        for &k in &ks {
            prop_assert!(class.v2a.at(k) >= inst.v2a.at(k));
            prop_assert!(class.a2v.at(k) >= inst.a2v.at(k));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Multi-view testing.

#[test]
fn ten_clips_by_three_crops_are_averaged_per_video() {
    // 2 videos x 30 views x 4 classes. View j (clip j / 3, crop j % 3) of video v has logits
    //   l[c] = (v + 1) * (c == (j % 4)) + 0.001 * j * c   (a one-hot that rotates over the views, plus a ramp).
    let (videos, views, classes) = (2usize, 30usize, 4usize);
    let mut logits = Vec::new();
    for v in 0..videos {
        for j in 0..views {
            for c in 0..classes {
                let hot = if c == j % 4 { (v + 1) as f32 } else { 0.0 };
                logits.push(hot + 0.001 * j as f32 * c as f32);
            }
        }
    }
    let avg = average_views(&logits, classes, views).expect("average");
    assert_eq!(avg.len(), videos * classes);
    // By hand: views j = 0..29 hit class c when j % 4 == c: 8 views for c in {0, 1}, 7 for {2, 3}. The ramp adds
    // 0.001 * c * mean(j) = 0.001 * c * 14.5.
    for v in 0..videos {
        for c in 0..classes {
            let hits = if c < 2 { 8.0 } else { 7.0 };
            let want = (v + 1) as f64 * hits / 30.0 + 0.001 * c as f64 * 14.5;
            assert!((f64::from(avg[v * classes + c]) - want).abs() < 1e-6, "video {v} class {c}");
        }
    }
    // Video 0: [0.2667, 0.2812, 0.2623, 0.2768] -> class 1 (right); video 1: [0.5333, 0.5478, 0.4957, 0.5102] ->
    // class 1 (wrong: its label 0 is second, so top-2 is perfect).
    let s = score_views(&logits, classes, views, &[1, 0]).expect("score");
    assert_eq!(s.top1, 0.5);
    assert_eq!(s.videos, 2);
    assert_eq!(s.views_per_video, 30);
    assert_eq!(s.confusion.counts, vec![vec![0, 1, 0, 0], vec![0, 1, 0, 0], vec![0; 4], vec![0; 4]]);
    assert_eq!(topk_accuracy(&avg, classes, &[1, 0], 2).expect("top2"), 1.0);
    // A count that is not whole videos is refused.
    assert!(average_views(&logits[..4 * 29], classes, views).is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// Configs.

#[test]
fn shipped_configs_parse_and_validate_but_for_their_manifests() {
    let dir = workspace_root().join("configs/finetune");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/finetune") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        let mut cfg: FinetuneConfig = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Resolve against an empty folder: every check but the manifests' existence must pass.
        let empty = tempfile::tempdir().expect("tempdir");
        cfg.resolve(path.parent().expect("dir"), Some(empty.path()));
        let err = cfg.validate().expect_err("manifests do not exist in an empty folder");
        assert!(err.contains("does not exist"), "{}: {err}", path.display());
    }
    assert!(n >= 5, "expected the paper, synth and smoke configs, found {n}");
}

#[test]
fn paper_configs_follow_gdt() {
    for name in ["hmdb51_paper.json", "ucf101_paper.json"] {
        let path = workspace_root().join("configs/finetune").join(name);
        let cfg: FinetuneConfig = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parse");
        assert_eq!(cfg.protocol, Protocol::Finetune);
        assert_eq!(cfg.epochs, 12);
        assert_eq!(cfg.folds.len(), 3);
        assert_eq!((cfg.test.clips, cfg.test.crops), (10, 3));
        let s = &cfg.optim.schedule;
        assert!((s.lr(cfg.optim.head_lr, 0) - 2.5e-3).abs() < 1e-12);
        assert!((s.lr(cfg.optim.head_lr, 2) - 2e-2).abs() < 1e-12);
        assert!((s.lr(cfg.optim.head_lr, 6) - 1e-3).abs() < 1e-12);
        assert!((s.lr(cfg.optim.head_lr, 10) - 5e-5).abs() < 1e-12);
        assert_eq!(cfg.optim.momentum, 0.9);
    }
}

#[test]
fn bad_configs_name_the_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("configs/finetune/smoke_linear.json")).expect("read"),
    )
    .expect("parse");
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_string(v).expect("json")).expect("write");
        p
    };
    let mut unknown = base.clone();
    unknown["learning_rate"] = Value::from(0.1);
    let p = write("unknown.json", &unknown);
    let e = FinetuneConfig::load(&p, Some(dir.path())).expect_err("unknown field").to_string();
    assert!(e.contains("unknown.json") && e.contains("learning_rate"), "{e}");

    let mut speeds = base.clone();
    speeds["train_data"]["speeds"] = serde_json::json!([1, 4]);
    let p = write("speeds.json", &speeds);
    let e = FinetuneConfig::load(&p, Some(dir.path())).expect_err("two views").to_string();
    assert!(e.contains("speeds"), "{e}");

    let e = FinetuneConfig::load(&dir.path().join("missing.json"), None).expect_err("missing").to_string();
    assert!(e.contains("missing.json"), "{e}");

    let p = write("ok.json", &base);
    let e = FinetuneConfig::load(&p, Some(dir.path())).expect_err("no manifests").to_string();
    assert!(e.contains("downstream_train.jsonl") && e.contains("does not exist"), "{e}");
}

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
    cfg.folds[0].test = cfg.folds[0].train.clone();
    cfg.test = svaclr_eval::TestConfig { clips: 2, crops: 1, batch_size: 8 };
    cfg.epochs = 40;
    cfg.optim.head_lr = 0.2;
    cfg.optim.schedule.milestones = vec![];
    let device = Device::flex();
    let source = tiny_model(cfg.seed, &device);
    let opts = EvalOptions { progress: false, feature_cache: None, device_name: "flex".into() };
    let r = finetune::run(&cfg, &source, &device, &opts).expect("probe");
    let f = &r.folds[0];
    let (first, last) = (&f.epochs[0], &f.epochs[39]);
    assert!(last.loss < first.loss / 4.0, "loss {} -> {}", first.loss, last.loss);
    assert_eq!(last.train_top1, 1.0, "32 views of 16 videos in 64 dimensions are separable");
    assert_eq!(f.top1, 1.0);
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
