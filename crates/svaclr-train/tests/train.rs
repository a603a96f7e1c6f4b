//! Pre-training end to end on a small SynthAV set generated at test time: configs are rejected before work, a short
//! run learns, two runs with one seed give the same loss curve bit for bit, and gradient caching equals a plain step.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::prelude::*;
use svaclr_synth::{GenerateOptions, Preset, SynthConfig, generate};
use svaclr_train::distributed::DistributedMode;
use svaclr_train::metrics::MonitorRecord;
use svaclr_train::{PretrainConfig, PretrainOptions, RunDir, pretrain};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A SynthAV small set (seed 3) of `clips` pre-training clips, generated once per test binary into `cell`.
fn synth_set(cell: &'static OnceLock<PathBuf>, clips: usize) -> &'static Path {
    cell.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("svaclr-train-test-{clips}-{}", std::process::id()));
        let cfg = SynthConfig::preset(Preset::Small).with_seed(3).with_pretrain_clips(clips);
        generate(&cfg, &dir, GenerateOptions { progress: false, force: false }).expect("generate SynthAV");
        dir
    })
}

/// A small SynthAV set shared by the tests of this binary.
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    synth_set(&DIR, 96)
}

/// configs/pretrain/smoke.json pointed at the test dataset, with overrides.
fn smoke(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(workspace().join("configs/pretrain/smoke.json")).expect("smoke config");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["manifest"] = serde_json::Value::String(dataset().join("pretrain.jsonl").display().to_string());
    edit(&mut v);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cfg.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    (dir, path)
}

fn load_err(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let (_d, p) = smoke(edit);
    PretrainConfig::load(&p, None).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn bad_configs_fail_before_work_with_one_line() {
    let cases: Vec<(Box<dyn FnOnce(&mut serde_json::Value)>, &str)> = vec![
        (Box::new(|v| v["run"]["bogus"] = 1.into()), "unknown field `bogus`"),
        (Box::new(|v| v["data"]["speeds"] = serde_json::json!([4, 1])), "speed"),
        (Box::new(|v| v["run"]["micro_batches"] = 5.into()), "not divisible"),
        (Box::new(|v| v["manifest"] = "/nonexistent/pretrain.jsonl".into()), "/nonexistent/pretrain.jsonl"),
        (Box::new(|v| v["loss"]["temperature"] = (-1.0).into()), "temperature"),
        (
            Box::new(|v| {
                v["model"]["video_input"] = "temporal_residual".into();
                v["data"]["frames"] = 1.into();
            }),
            "temporal_residual needs data.frames >= 2",
        ),
        (
            Box::new(|v| {
                v["data"]["speeds"] = serde_json::json!([1, 1]);
                v["loss"]["kind"] = "soft_info_nce".into();
            }),
            "2 views",
        ),
    ];
    for (edit, needle) in cases {
        let err = load_err(edit);
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert!(err.contains("cfg.json"), "error must name the config file: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    let (_d, p) = smoke(|_| {});
    assert!(PretrainConfig::load(&p, None).is_ok());
}

/// The monitor records of a run.
fn monitor_records(run_dir: &Path) -> Vec<MonitorRecord> {
    svaclr_train::metrics::read_records(&run_dir.join("monitor.jsonl"), usize::MAX).expect("monitor.jsonl")
}

fn run(cfg_edit: impl FnOnce(&mut serde_json::Value), out: &Path) -> Vec<f64> {
    let (_d, p) = smoke(cfg_edit);
    let cfg = PretrainConfig::load(&p, None).expect("config");
    pretrain(&cfg, out, &Device::flex(), "flex", &PretrainOptions::default()).expect("pretrain");
    RunDir::new(out).read_metrics().expect("metrics").iter().map(|r| r.stats.loss).collect()
}

/// A SynthAV small set of 64 pre-training clips, the size configs/pretrain/smoke.json is made for (the README's
/// `svaclr synth --preset small --clips 64`), from another seed than the README's.
fn smoke_dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    synth_set(&DIR, 64)
}

/// Mean of a statistic over monitor records.
fn mean(recs: &[MonitorRecord], f: impl Fn(&MonitorRecord) -> f64) -> f64 {
    recs.iter().map(f).sum::<f64>() / recs.len() as f64
}

#[test]
fn smoke_run_lowers_the_loss_and_raises_the_positive_top1() {
    // configs/pretrain/smoke.json as written ([1, 4] speed views, SoftInfoNCE, 60 epochs of 2 steps) on 64 clips; its
    // monitor scores all 64 with fixed views on the initial weights and after every epoch, so a change is the
    // weights' (with every learning rate 0 the scores stay equal to the last bit, see the monitor test). Chance top-1
    // is 1/127. Measured with the dev binary on 64-clip sets of 6 dataset seeds (0, 3, 5, 7, 11, 12; 9 runs with
    // model seeds 0-4; 44-48 s a run on the idle 2-core machine): over the second half of the run the mean top-1 is
    // 2.1-3.7x chance and 1.0-2.7 chance levels above the mean of the first 5 evaluations; the last 5 monitor losses
    // are 0.24-0.43 below the uniform level ln 127 and the positive-negative cosine gap is 0.08-0.17. The bounds
    // below (1.75x chance, half a chance level of rise, 0.15 nats, 0.05) leave room for other seeds and CPUs (other
    // float rounding, so other trajectories); with no learning the statistics stay at their start.
    let out = tempfile::tempdir().expect("tempdir");
    let (_d, p) = smoke(|v| {
        v["manifest"] = serde_json::Value::String(smoke_dataset().join("pretrain.jsonl").display().to_string());
    });
    let cfg = PretrainConfig::load(&p, None).expect("config");
    let m = cfg.run.monitor_clips;
    assert!(m >= 32, "configs/pretrain/smoke.json must monitor");
    let summary = pretrain(&cfg, out.path(), &Device::flex(), "flex", &PretrainOptions::default()).expect("pretrain");
    assert_eq!(summary.epochs, cfg.schedule.epochs, "the smoke config runs all its epochs");
    let steps = RunDir::new(out.path()).read_metrics().expect("metrics");
    assert!(steps.iter().all(|r| r.stats.loss.is_finite()));
    let recs = monitor_records(out.path());
    assert_eq!(recs.len(), cfg.schedule.epochs + 1, "one score before training and one per epoch");
    let top1: Vec<f64> = recs.iter().map(|r| r.stats.top1_acc).collect();
    let losses: Vec<f64> = recs.iter().map(|r| r.stats.loss).collect();
    eprintln!("monitor top-1 per epoch: {top1:.3?}\nmonitor loss per epoch: {losses:.3?}");
    // The top-1 of one evaluation is noisy at this scale (and can fall back late in a run while the loss still
    // falls), so the test compares the first 5 evaluations with the whole second half of the run.
    let chance = 1.0 / (2 * m - 1) as f64;
    let (head, late, tail) = (&recs[..5], &recs[recs.len() / 2..], &recs[recs.len() - 5..]);
    let (first, later) = (mean(head, |r| r.stats.top1_acc), mean(late, |r| r.stats.top1_acc));
    assert!(
        later >= 1.75 * chance && later - first >= 0.5 * chance,
        "the positive-pair top-1 must rise from chance ({chance:.4}): mean of the first 5 evaluations {first:.4}, \
         of the second half {later:.4}"
    );
    let uniform = ((2 * m - 1) as f64).ln();
    let (loss0, loss1) = (mean(head, |r| r.stats.loss), mean(tail, |r| r.stats.loss));
    assert!(
        loss1 < uniform - 0.15 && loss1 < loss0 - 0.15,
        "the monitor loss must fall below the uniform level {uniform:.3}: {loss0:.3} -> {loss1:.3}"
    );
    let gap = mean(tail, |r| r.stats.pos_sim - r.stats.neg_sim);
    assert!(gap > 0.05, "positives must separate from negatives: cosine gap {gap:.3}");
}

#[test]
fn same_seed_same_loss_curve_bit_for_bit() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let c = tempfile::tempdir().expect("tempdir");
    let edit = |v: &mut serde_json::Value| v["run"]["max_steps"] = 3.into();
    let la = run(edit, a.path());
    let lb = run(edit, b.path());
    assert_eq!(la.len(), 3);
    assert_eq!(la, lb, "same seed and config must give the same losses");
    let lc = run(
        |v| {
            v["run"]["max_steps"] = 3.into();
            v["seed"] = 1.into();
        },
        c.path(),
    );
    assert_ne!(la, lc, "another seed must give another curve");
    // The run directory holds what the docs promise.
    for f in ["config.json", "metrics.jsonl", "summary.json", "metrics.png", "checkpoints/last.json"] {
        assert!(a.path().join(f).exists(), "missing {f}");
    }
}

#[test]
fn the_monitor_scores_fixed_clips_each_epoch_and_changes_nothing() {
    // One epoch plus one step (3 steps per epoch): records at step 0 and at the end of epoch 0, none mid-epoch.
    let (plain, watched, frozen) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Without precise BN, which would overwrite the running statistics a leaky monitor changed.
    let steps = |v: &mut serde_json::Value| {
        v["run"]["max_steps"] = 4.into();
        v["run"]["precise_bn_batches"] = 0.into();
    };
    let without = run(
        |v| {
            steps(v);
            v["run"]["monitor_clips"] = 0.into();
        },
        plain.path(),
    );
    let with = run(
        |v| {
            steps(v);
            v["run"]["monitor_clips"] = 64.into();
        },
        watched.path(),
    );
    assert_eq!(with, without, "monitoring must not change the loss curve");
    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).expect("summary")).expect("json")
    };
    let (a, b) = (summary(plain.path()), summary(watched.path()));
    assert_eq!(a["weights_hash"], b["weights_hash"], "nor the weights or BatchNorm statistics");
    assert!(a.get("monitor_first").is_none() && !plain.path().join("monitor.jsonl").exists());
    let recs = monitor_records(watched.path());
    assert_eq!(recs.iter().map(|r| (r.step, r.epochs, r.clips)).collect::<Vec<_>>(), [(0, 0, 64), (3, 1, 64)]);
    assert!(recs.iter().all(|r| r.stats.loss.is_finite() && (0.0..=1.0).contains(&r.stats.top1_acc)));
    assert_ne!(recs[0].stats, recs[1].stats, "three steps at lr > 0 change the scores");
    assert_eq!(b["monitor_first"]["loss"], recs[0].stats.loss);
    // metrics.png gains a fourth panel for the monitor (500 px each; the width is bytes 16-19 of a PNG's header).
    let png_width = |d: &Path| {
        let bytes = std::fs::read(d.join("metrics.png")).expect("metrics.png");
        u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]])
    };
    assert_eq!((png_width(plain.path()), png_width(watched.path())), (1500, 2000));
    // With every learning rate 0 the weights never change, so the same clips and views give the same scores.
    run(
        |v| {
            steps(v);
            v["run"]["monitor_clips"] = 64.into();
            for k in ["lr_start", "lr_peak", "lr_end"] {
                v["schedule"][k] = 0.0.into();
            }
        },
        frozen.path(),
    );
    let recs = monitor_records(frozen.path());
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].stats, recs[1].stats, "a fixed set scored twice with the same weights");
    // A set that does not split into training forwards, or is larger than the dataset, is refused.
    let err = load_err(|v| v["run"]["monitor_clips"] = 48.into());
    assert!(err.contains("run.monitor_clips = 48 is not a multiple"), "{err}");
    let (_d, p) = smoke(|v| v["run"]["monitor_clips"] = 128.into());
    let cfg = PretrainConfig::load(&p, None).expect("config");
    let out = tempfile::tempdir().unwrap();
    let err = pretrain(&cfg, out.path(), &Device::flex(), "flex", &PretrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("run.monitor_clips = 128 but the dataset has 96 clips"), "{err}");
}

/// A config under which every clip's embedding depends on that clip alone (BatchNorm frozen), so that splitting a
/// batch (micro-batches, devices) must not change any loss beyond float rounding; SoftInfoNCE with gradients through
/// lambda exercises every gathered tensor, and a large constant learning rate makes a wrong gradient show in the
/// next step's loss.
fn exact_split(v: &mut serde_json::Value, micro_batches: usize) {
    v["model"]["norm"] = "frozen".into();
    v["loss"]["detach_lambda"] = false.into();
    v["run"]["max_steps"] = 4.into();
    v["run"]["micro_batches"] = micro_batches.into();
    v["run"]["monitor_clips"] = 0.into();
    for k in ["lr_start", "lr_peak", "lr_end"] {
        v["schedule"][k] = 1.0.into();
    }
}

fn assert_same_losses(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), 4, "{what}");
    assert_eq!(a.len(), b.len(), "{what}");
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 2e-5 * x.abs().max(1.0), "{what}: step {}: {x} vs {y}\n{a:?}\n{b:?}", step + 1);
    }
}

#[test]
fn gradient_caching_equals_a_plain_step() {
    // Two micro-batches with cached embedding gradients: the same losses as one forward of the whole batch, step
    // after step (so the same gradients too). With BatchNorm in training mode the micro-batches would see other
    // batch statistics; frozen, each clip's embedding is its own.
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let plain = run(|v| exact_split(v, 1), a.path());
    let cached = run(|v| exact_split(v, 2), b.path());
    assert_same_losses("plain vs 2 micro-batches", &plain, &cached);
    // The learning rate is large enough that the steps change the loss (a test that cannot fail otherwise).
    assert!((plain[3] - plain[0]).abs() > 1e-3, "{plain:?}");
}

#[test]
fn several_devices_in_one_process_give_the_one_device_losses() {
    // `--device flex,flex`: two threads, each a rank of a LocalGroup with half the batch, negatives gathered from
    // both and gradients averaged: the one loop of every launch mode must reproduce one device with the whole batch.
    // The second run also caches gradients inside each device (2 micro-batches of 8 clips).
    let (one, two) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let single = run(|v| exact_split(v, 1), one.path());
    let (_d, p) = smoke(|v| exact_split(v, 2));
    let cfg = PretrainConfig::load(&p, None).expect("config");
    let done = svaclr_train::launch(&cfg, two.path(), "flex,flex", DistributedMode::None, &PretrainOptions::default())
        .expect("two devices");
    assert_eq!(done.summary.processes, 2);
    assert_eq!(done.summary.device, "flex,flex");
    let pair: Vec<f64> =
        RunDir::new(two.path()).read_metrics().expect("metrics").iter().map(|r| r.stats.loss).collect();
    assert_same_losses("1 device vs 2 devices", &single, &pair);
    // A batch that does not split over the devices is refused before any step.
    let (_d, p) = smoke(|v| {
        exact_split(v, 1);
        v["run"]["batch_size"] = 30.into();
    });
    let cfg = PretrainConfig::load(&p, None).expect("config");
    let out = tempfile::tempdir().expect("tempdir");
    let err = svaclr_train::launch(
        &cfg,
        out.path(),
        "flex,flex,flex,flex",
        DistributedMode::None,
        &PretrainOptions::default(),
    )
    .expect_err("30 clips over 4 devices");
    assert!(err.to_string().contains("not divisible by 4"), "{err}");
}

#[test]
fn refuses_to_overwrite_a_run_without_resume() {
    let out = tempfile::tempdir().expect("tempdir");
    run(|v| v["run"]["max_steps"] = 1.into(), out.path());
    let (_d, p) = smoke(|v| v["run"]["max_steps"] = 1.into());
    let cfg = PretrainConfig::load(&p, None).expect("config");
    let err = pretrain(&cfg, out.path(), &Device::flex(), "flex", &PretrainOptions::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--resume"), "{err}");
    // A different config cannot resume it either.
    let (_d2, p2) = smoke(|v| {
        v["run"]["max_steps"] = 2.into();
        v["seed"] = 9.into();
    });
    let cfg2 = PretrainConfig::load(&p2, None).expect("config");
    let err = pretrain(&cfg2, out.path(), &Device::flex(), "flex", &PretrainOptions { resume: true, progress: false })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("different config"), "{err}");
}
