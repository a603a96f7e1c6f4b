//! ClipDataset: speed views end to end, determinism, looping, evaluation views, bad inputs, burn adapters.

use std::fs;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::Device;
use proptest::prelude::*;
use svaclr_data::audio::{read_wav_window, speed_audio_view};
use svaclr_data::sampler::video_frame_times;
use svaclr_data::{ClipBatcher, ClipDataset, DataConfig, DataError, LogMel, Manifest, SpeedSet};

use crate::common::*;

fn dataset(dir: &std::path::Path, frames: &[usize], audio: &[f64], cfg: DataConfig) -> ClipDataset {
    let m = synthetic_manifest(dir, frames, audio, "pretrain");
    ClipDataset::new(&Manifest::load(&m).expect("load"), Some("pretrain"), cfg).expect("dataset")
}

#[test]
fn speed_views_select_strided_frames_and_sped_up_audio() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = readable_config(SpeedSet::Range([1.0, 4.0]));
    let ds = dataset(dir.path(), &[150, 150], &[6.0, 6.0], cfg.clone());
    let lm = LogMel::new(cfg.mel.clone()).expect("mel");
    let mut seen_speeds = std::collections::BTreeSet::new();
    for epoch in 0..6 {
        for i in 0..ds.len() {
            let s = ds.train_sample(i, epoch, 42).expect("sample");
            assert_eq!((s.video.len(), s.audio.len()), (2, 2));
            let spec = &s.spec;
            seen_speeds.insert((spec.speed_video as i64, spec.speed_audio as i64));
            for (v, speed) in [(0, 1.0), (1, spec.speed_video)] {
                for j in 0..cfg.frames {
                    let want = ((spec.start_sec + j as f64 * speed / cfg.fps) * 25.0).round() as usize;
                    assert_eq!(
                        read_view_index(&s.video[v], j, cfg.frames, cfg.crop),
                        want,
                        "view {v} frame {j} {spec:?}"
                    );
                }
            }
            // Audio views: recompute from the wav with the spec's start and speeds.
            let wav = dir.path().join(format!("a{i}.wav"));
            for (v, speed) in [(0, 1.0), (1, spec.speed_audio)] {
                let src = read_wav_window(&wav, spec.start_sec, speed * cfg.audio_seconds).expect("wav");
                let wave =
                    speed_audio_view(&src.samples, src.sample_rate, speed, cfg.audio_seconds, cfg.mel.sample_rate)
                        .expect("view");
                assert_eq!(s.audio[v], lm.compute(&wave), "audio view {v} {spec:?}");
            }
        }
    }
    // Independent draws: some clip had different audio and video speeds.
    assert!(seen_speeds.iter().any(|(a, b)| a != b), "{seen_speeds:?}");
}

#[test]
fn samples_replay_from_seed_epoch_index() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = readable_config(SpeedSet::Range([1.0, 3.0]));
    cfg.augment = svaclr_data::AugmentConfig::default();
    cfg.tie_speeds = true;
    let ds = dataset(dir.path(), &[120], &[5.0], cfg);
    let a = ds.train_sample(0, 3, 9).expect("a");
    assert_eq!(a, ds.train_sample(0, 3, 9).expect("again"));
    assert_eq!(a.spec.speed_audio, a.spec.speed_video, "tied speeds");
    let b = ds.train_sample(0, 4, 9).expect("b");
    let c = ds.train_sample(0, 3, 10).expect("c");
    assert!(a.spec != b.spec || a.video != b.video);
    assert!(a.spec != c.spec || a.video != c.video);
    assert_eq!((a.spec.epoch, a.spec.seed, a.spec.index, a.spec.video_id.as_str()), (3, 9, 0, "clip0"));
}

#[test]
fn short_clips_loop_instead_of_failing() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = readable_config(SpeedSet::List(vec![4.0]));
    // 10 frames (0.36 s) of video and 0.2 s of audio; the speed-4 window needs 0.96 s of video and 2 s of audio.
    let ds = dataset(dir.path(), &[10], &[0.2], cfg.clone());
    let s = ds.train_sample(0, 0, 1).expect("looped sample");
    assert_eq!(s.spec.start_sec, 0.0);
    let duration = 9.0 / 25.0;
    let times = video_frame_times(0.0, 4.0, cfg.frames, cfg.fps, duration);
    for (j, t) in times.iter().enumerate() {
        let want = ((t * 25.0).round() as usize).min(9);
        assert_eq!(read_view_index(&s.video[1], j, cfg.frames, cfg.crop), want, "frame {j} at {t}");
    }
    assert_eq!(s.audio[1].len(), cfg.mel.n_mels * cfg.mel_frames());
}

#[test]
fn eval_views_are_deterministic_clips_times_crops() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = readable_config(SpeedSet::Range([1.0, 4.0]));
    cfg.short_side = 40; // 60x40 frames: three distinct 32x32 crops along the width.
    let ds = dataset(dir.path(), &[100], &[4.0], cfg.clone());
    let v = ds.eval_samples(0, 4, 3).expect("eval");
    assert_eq!(v.len(), 12);
    let window = svaclr_data::sampler::clip_window(cfg.frames, cfg.fps, cfg.audio_seconds, 1.0, 1.0);
    let room = 99.0 / 25.0 - window;
    for (k, chunk) in v.chunks(3).enumerate() {
        let start = room * k as f64 / 3.0;
        for s in chunk {
            assert!((s.spec.start_sec - start).abs() < 1e-9);
            assert_eq!((s.video.len(), s.audio.len(), s.spec.speed_video, s.spec.speed_audio), (1, 1, 1.0, 1.0));
            assert_eq!(s.audio[0], chunk[0].audio[0]);
        }
        assert_ne!(chunk[0].video[0], chunk[1].video[0]);
        assert_ne!(chunk[1].video[0], chunk[2].video[0]);
    }
    assert_eq!(v, ds.eval_samples(0, 4, 3).expect("again"));
    let centre = ds.eval_samples(0, 1, 1).expect("centre");
    assert_eq!(centre.len(), 1);
    assert!(matches!(ds.eval_samples(0, 2, 2), Err(DataError::Config(_))));
    assert!(matches!(ds.eval_samples(5, 1, 1), Err(DataError::Index { .. })));
}

#[test]
fn chosen_speed_views_share_one_start_and_match_the_training_views() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = readable_config(SpeedSet::Range([1.0, 4.0]));
    let ds = dataset(dir.path(), &[150], &[6.0], cfg.clone());
    let lm = LogMel::new(cfg.mel.clone()).expect("mel");
    let s = ds.speed_views(0, &[1.0, 2.0], &[1.0, 2.0, 4.0]).expect("speed views");
    assert_eq!((s.video.len(), s.audio.len(), s.spec.speed_video, s.spec.speed_audio), (2, 3, 2.0, 4.0));
    // One start for every view: the middle of the room left by the longest (speed-4 audio) window.
    let window = svaclr_data::sampler::clip_window(cfg.frames, cfg.fps, cfg.audio_seconds, 2.0, 4.0);
    assert!((s.spec.start_sec - (149.0 / 25.0 - window) / 2.0).abs() < 1e-9, "{:?}", s.spec);
    // Centre crops (the frame index code spans the full width, so compare views): frame j of the speed-2 view is
    // frame 2j of the speed-1 view, and consecutive speed-1 frames differ.
    let plane = cfg.crop * cfg.crop;
    let frame = |v: usize, j: usize| &s.video[v][j * plane..(j + 1) * plane];
    for j in 0..cfg.frames / 2 {
        assert_eq!(frame(1, j), frame(0, 2 * j), "speed-2 frame {j}");
    }
    assert_ne!(frame(0, 0), frame(0, 1));
    let wav = dir.path().join("a0.wav");
    for (v, speed) in [(0, 1.0), (1, 2.0), (2, 4.0)] {
        let src = read_wav_window(&wav, s.spec.start_sec, speed * cfg.audio_seconds).expect("wav");
        let wave = speed_audio_view(&src.samples, src.sample_rate, speed, cfg.audio_seconds, cfg.mel.sample_rate)
            .expect("view");
        assert_eq!(s.audio[v], lm.compute(&wave), "audio view at speed {speed}");
    }
    assert_ne!(s.audio[0], s.audio[2]);
    assert_eq!(s, ds.speed_views(0, &[1.0, 2.0], &[1.0, 2.0, 4.0]).expect("again"), "deterministic");
    assert!(matches!(ds.speed_views(0, &[], &[1.0]), Err(DataError::Config(_))));
    assert!(matches!(ds.speed_views(0, &[1.0], &[0.0]), Err(DataError::Config(_))));
    assert!(matches!(ds.speed_views(3, &[1.0], &[1.0]), Err(DataError::Index { .. })));
}

#[test]
fn baseline_config_has_one_view() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = readable_config(SpeedSet::Range([1.0, 1.0]));
    assert_eq!(cfg.views(), 1);
    let ds = dataset(dir.path(), &[60], &[3.0], cfg);
    let s = ds.train_sample(0, 0, 0).expect("sample");
    assert_eq!((s.video.len(), s.audio.len(), s.spec.speed_video, s.spec.speed_audio), (1, 1, 1.0, 1.0));
}

#[test]
fn config_validation_and_json() {
    let cfg = DataConfig::default();
    cfg.validate().expect("default valid");
    assert_eq!(cfg.views(), 2);
    assert_eq!(cfg.mel_frames(), 101);
    let json = serde_json::to_string(&cfg).expect("json");
    let back: DataConfig = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, cfg);
    for bad in [
        DataConfig { frames: 0, ..cfg.clone() },
        DataConfig { crop: 200, ..cfg.clone() },
        DataConfig { speeds: SpeedSet::Range([4.0, 1.0]), ..cfg.clone() },
        DataConfig { speeds: SpeedSet::List(vec![]), ..cfg.clone() },
        DataConfig { speeds: SpeedSet::List(vec![0.0]), ..cfg.clone() },
        DataConfig { audio_seconds: 0.0, ..cfg.clone() },
    ] {
        assert!(matches!(bad.validate(), Err(DataError::Config(_))), "{bad:?}");
    }
    let unknown = json.replacen("\"frames\"", "\"framez\"", 1);
    assert!(serde_json::from_str::<DataConfig>(&unknown).is_err());
}

#[test]
fn missing_files_and_bad_manifests_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = synthetic_manifest(dir.path(), &[20, 20], &[1.0, 1.0], "train");
    let manifest = Manifest::load(&m).expect("load");
    fs::remove_file(dir.path().join("a1.wav")).expect("rm");
    let e = ClipDataset::new(&manifest, None, readable_config(SpeedSet::Range([1.0, 2.0]))).expect_err("missing wav");
    assert!(matches!(e, DataError::Missing { .. }) && e.to_string().contains("a1.wav"), "{e}");
    let e = ClipDataset::new(&manifest, Some("test"), readable_config(SpeedSet::Range([1.0, 2.0])))
        .expect_err("empty split");
    assert!(e.to_string().contains("test"), "{e}");
    // A wav that is not a wav: construction succeeds (nothing heavy), the sample fails naming the file.
    fs::write(dir.path().join("a1.wav"), b"garbage").expect("write");
    let ds = ClipDataset::new(&manifest, None, readable_config(SpeedSet::Range([1.0, 2.0]))).expect("dataset");
    let e = ds.train_sample(1, 0, 0).expect_err("bad wav");
    assert!(e.to_string().contains("a1.wav") && !e.to_string().contains('\n'), "{e}");
    // A manifest line that does not parse.
    let text = fs::read_to_string(&m).expect("read");
    fs::write(&m, format!("{text}{{\"id\": \"x\", \"video\": 3}}\n")).expect("write");
    let e = Manifest::load(&m).expect_err("bad line");
    assert!(matches!(e, DataError::ManifestParse { line: 3, .. }) && e.to_string().contains("manifest.jsonl:3"), "{e}");
}

#[test]
fn container_audio_and_missing_audio() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = tone(440.0, 16_000, 3.0, 0.4);
    av_file(dir.path(), "withaudio.mkv", 75, 25.0, Some((&t, 16_000)));
    pattern_video(dir.path(), "silent.mkv", 75, 25.0);
    let entry = |id: &str, file: &str| svaclr_data::ManifestEntry {
        id: id.into(),
        video: file.into(),
        audio: None,
        audio_offset: None,
        duration: 74.0 / 25.0,
        fps: 25.0,
        label: Some(0),
        label_name: None,
        split: "train".into(),
    };
    let m = dir.path().join("m.jsonl");
    Manifest::save(&m, &[entry("a", "withaudio.mkv"), entry("b", "silent.mkv")]).expect("save");
    let manifest = Manifest::load(&m).expect("load");
    let mut cfg = readable_config(SpeedSet::Range([1.0, 2.0]));
    let ds = ClipDataset::new(&manifest, None, cfg.clone()).expect("dataset");
    let s = ds.train_sample(0, 0, 0).expect("container audio");
    assert_eq!(s.audio.len(), 2);
    let e = ds.train_sample(1, 0, 0).expect_err("no audio");
    assert!(matches!(e, DataError::NoAudioStream { .. }) && e.to_string().contains("silent.mkv"), "{e}");
    cfg.allow_missing_audio = true;
    let ds = ClipDataset::new(&manifest, None, cfg.clone()).expect("dataset");
    let s = ds.train_sample(1, 0, 0).expect("silence");
    let floor = (cfg.mel.log_eps as f32).ln();
    assert!(s.audio[0].iter().all(|v| (v - floor).abs() < 1e-5));
}

#[test]
fn burn_dataset_and_batcher() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = readable_config(SpeedSet::Range([1.0, 2.0]));
    let ds = dataset(dir.path(), &[40, 40, 40], &[2.0, 2.0, 2.0], cfg.clone());
    ds.set_burn_sampling(5, 2);
    let a = Dataset::get(&ds, 1).expect("get");
    assert_eq!(a, ds.train_sample(1, 2, 5).expect("same"));
    let b = Dataset::get(&ds, 2).expect("get");
    let batch = ClipBatcher::new(cfg.clone()).batch(vec![a, b], &Device::flex());
    assert_eq!(batch.video.len(), 2);
    assert_eq!(batch.video[1].dims(), [2, 3, cfg.frames, cfg.crop, cfg.crop]);
    assert_eq!(batch.audio[0].dims(), [2, 1, cfg.mel.n_mels, cfg.mel_frames()]);
    assert_eq!(batch.labels, vec![Some(1), Some(2)]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Every view has the requested shape for any speed in the set and any clip length, including clips
    /// shorter than the window (they loop).
    #[test]
    fn views_have_the_requested_shape(
        video_frames in 2usize..40,
        audio_secs in 0.05f64..2.0,
        frames in 1usize..7,
        audio_seconds in 0.1f64..0.7,
        set in prop_oneof![
            Just(SpeedSet::Range([1.0, 1.0])),
            Just(SpeedSet::Range([1.0, 4.0])),
            Just(SpeedSet::Range([2.0, 6.0])),
            Just(SpeedSet::List(vec![0.5, 1.5, 2.5])),
        ],
        tie in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = readable_config(set.clone());
        cfg.frames = frames;
        cfg.audio_seconds = audio_seconds;
        cfg.tie_speeds = tie;
        cfg.augment = svaclr_data::AugmentConfig::default();
        let ds = dataset(dir.path(), &[video_frames], &[audio_secs], cfg.clone());
        let s = ds.train_sample(0, seed % 7, seed).expect("sample");
        let views = cfg.views();
        prop_assert_eq!(s.video.len(), views);
        prop_assert_eq!(s.audio.len(), views);
        for v in 0..views {
            prop_assert_eq!(s.video[v].len(), 3 * frames * cfg.crop * cfg.crop);
            prop_assert_eq!(s.audio[v].len(), cfg.mel.n_mels * cfg.mel_frames());
            prop_assert!(s.video[v].iter().chain(&s.audio[v]).all(|x| x.is_finite()));
        }
        let values = set.values();
        if views == 2 {
            prop_assert!(values.contains(&s.spec.speed_video) && values.contains(&s.spec.speed_audio));
        }
    }
}

#[test]
fn plans_rendered_together_equal_plans_rendered_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = readable_config(SpeedSet::Range([1.0, 4.0]));
    (cfg.short_side, cfg.crop) = (40, 28);
    let ds = dataset(dir.path(), &[150, 90], &[6.0, 3.0], cfg);
    for i in 0..ds.len() {
        let mut plans = vec![
            ds.train_plan(i, 2, 5).expect("train"),
            ds.speed_plan(i, &[1.0, 3.0, 2.0], &[4.0, 1.0]).expect("probe"),
        ];
        plans.extend(ds.eval_plans(i, 2, 3).expect("eval"));
        let alone: Vec<_> = plans.iter().flat_map(|p| ds.render(i, vec![p.clone()]).expect("alone")).collect();
        let together = ds.render(i, plans).expect("together");
        assert_eq!(together.len(), 1 + 1 + 2 * 3);
        assert_eq!(together, alone, "clip {i}: one decode for every plan must give what each plan gives alone");
        assert_eq!(together[0], ds.train_sample(i, 2, 5).expect("sample"));
        assert_eq!(together[1].video.len(), 3);
        assert_eq!(together[2..], ds.eval_samples(i, 2, 3).expect("eval samples")[..]);
    }
}
