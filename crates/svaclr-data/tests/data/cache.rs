//! The decoded-frame cache (`"cache": "memory"`): the same frames and samples as decoding every clip, on files in
//! real encodings (B-frames at 29.97 fps, variable frame rate, MPEG-TS, rotation) and on pattern clips; the same
//! batches for any worker count and cache state; the same errors for corrupt and truncated files; the budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use svaclr_data::video::{VideoFrames, decode_frames_at, probe};
use svaclr_data::{BatchLoader, CacheMode, ClipDataset, DataConfig, DataError, Manifest, ManifestEntry, SpeedSet};

use crate::common::*;

fn with_cache(cfg: &DataConfig, cache: CacheMode) -> DataConfig {
    DataConfig { cache, ..cfg.clone() }
}

/// The dataset of `m` without and with the cache.
fn pair(m: &Path, cfg: &DataConfig) -> (ClipDataset, ClipDataset) {
    let m = Manifest::load(m).expect("manifest");
    let off = ClipDataset::new(&m, None, with_cache(cfg, CacheMode::Off)).expect("dataset");
    let on = ClipDataset::new(&m, None, with_cache(cfg, CacheMode::Memory)).expect("cached dataset");
    (off, on)
}

/// Results as comparable values: a sample, or its error's one line.
fn outcome<T>(r: Result<T, DataError>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// Assert that two outcomes are equal, printing errors but not sample values (megabytes of floats).
fn assert_same<T: PartialEq>(got: Result<T, DataError>, want: Result<T, DataError>, what: &str) {
    match (outcome(got), outcome(want)) {
        (Ok(g), Ok(w)) => assert!(g == w, "{what}: the samples differ"),
        (Err(g), Err(w)) => assert_eq!(g, w, "{what}"),
        (g, w) => panic!("{what}: {:?} with the cache, {:?} without", g.err(), w.err()),
    }
}

/// Training samples over `epochs` x `seeds`, the 2 x 3 evaluation grid and a speed probe of every clip are the same
/// from both datasets (errors included); returns how many samples were compared.
fn assert_same_samples(off: &ClipDataset, on: &ClipDataset, epochs: u64, seeds: &[u64]) -> usize {
    let mut n = 0;
    for &seed in seeds {
        for epoch in 0..epochs {
            for i in 0..off.len() {
                let what = format!("clip {i}, epoch {epoch}, seed {seed}");
                assert_same(on.train_sample(i, epoch, seed), off.train_sample(i, epoch, seed), &what);
                n += 1;
            }
        }
    }
    let (v, a) = ([1.0, 2.0, 4.0], [1.0, 3.0]);
    for i in 0..off.len() {
        assert_same(on.eval_samples(i, 2, 3), off.eval_samples(i, 2, 3), &format!("eval grid of clip {i}"));
        assert_same(on.speed_views(i, &v, &a), off.speed_views(i, &v, &a), &format!("speed probe of clip {i}"));
        n += 7;
    }
    n
}

/// Files in the encodings the frame rule is hardest on, written with the ffmpeg command-line tool (as the PyAV
/// comparison in media.rs writes them), 3 s each, no audio track.
fn odd_files(dir: &Path) -> Vec<PathBuf> {
    let src = |rate: &str| format!("testsrc2=s=96x64:r={rate}:d=3");
    let (s2997, s30, s25) = (src("30000/1001"), src("30"), src("25"));
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"];
    let files: Vec<(&str, Vec<&str>)> = vec![
        // H.264 with B-frames at 29.97 fps in MP4.
        ("h264_bframes.mp4", [&["-f", "lavfi", "-i", &s2997, "-bf", "3", "-g", "12"][..], &x264].concat()),
        // Variable frame rate: an irregular subset of 30 fps frames, timestamps kept (Matroska, ms time base).
        (
            "vfr.mkv",
            [
                &["-f", "lavfi", "-i", &s30, "-vf", "select='not(mod(n\\,3))+eq(mod(n\\,7)\\,1)'", "-fps_mode", "vfr"]
                    [..],
                &["-bf", "2", "-g", "9"],
                &x264,
            ]
            .concat(),
        ),
        // MPEG-TS with one keyframe, timestamps from 1.4 s: a seek lands where nothing decodes.
        ("one_key.ts", [&["-f", "lavfi", "-i", &s25, "-g", "250"][..], &x264, &["-f", "mpegts"]].concat()),
        // MPEG-4 part 2 at 24 fps in MP4 (and a copy turned a quarter turn by a display matrix, below).
        ("mpeg4.mp4", vec!["-f", "lavfi", "-i", "testsrc2=s=80x48:r=24:d=3", "-c:v", "mpeg4", "-q:v", "4"]),
    ];
    let mut out = Vec::new();
    for (name, mut args) in files {
        let path = dir.join(name).to_string_lossy().into_owned();
        args.push(&path);
        ffmpeg(&args);
        out.push(dir.join(name));
    }
    let rotated = dir.join("rot90.mp4");
    ffmpeg(&[
        "-i",
        &out[3].to_string_lossy(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        &rotated.to_string_lossy(),
    ]);
    out.push(rotated);
    out
}

#[test]
fn cached_frames_are_the_decoded_frames_for_every_time() {
    let dir = tempfile::tempdir().expect("tmp");
    for path in odd_files(dir.path()) {
        let info = probe(&path).expect("probe");
        for short_side in [0, 40] {
            let store = VideoFrames::decode(&path, short_side).expect("decode whole");
            // Every frame time, the midpoints and either side of them, before the start, past the end within the
            // tolerance, and a pseudo-random spread; out of order, with repeats.
            let mut times: Vec<f64> = vec![-0.3, 0.0, info.duration, info.duration + 0.1];
            for w in store.timestamps.windows(2) {
                let mid = 0.5 * (w[0] + w[1]);
                times.extend([w[0], mid, mid - 1e-6, mid + 1e-6]);
            }
            times.extend((0..40).map(|k| ((k * 7919) % 1000) as f64 / 1000.0 * info.duration));
            times.reverse();
            let want = decode_frames_at(&path, &times, short_side).expect("decode at times");
            let picks = store.select(&path, &times).expect("select");
            assert_eq!((store.width, store.height), (want.width, want.height), "{}", path.display());
            for (k, (&pick, frame)) in picks.iter().zip(&want.frames).enumerate() {
                assert_eq!(store.timestamps[pick], want.timestamps[k], "{} at {} s", path.display(), times[k]);
                assert!(store.frame(pick) == frame.as_slice(), "{} at {} s: other pixels", path.display(), times[k]);
            }
            // Clips of one view each (one seek per call, as training reads them).
            for start in [0.0, 0.61, 1.37, 2.2] {
                let view: Vec<f64> = (0..8).map(|j| start + j as f64 * 0.1).collect();
                let want = decode_frames_at(&path, &view, short_side).expect("decode view");
                let got: Vec<&[u8]> =
                    store.select(&path, &view).expect("select").iter().map(|&k| store.frame(k)).collect();
                assert!(got == want.slices(), "{} view from {start} s", path.display());
            }
        }
    }
}

/// A manifest of `videos` (duration and rate from their headers), video only.
fn video_manifest(dir: &Path, videos: &[PathBuf]) -> PathBuf {
    let entries = videos
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let info = probe(v).expect("probe");
            ManifestEntry {
                id: format!("odd{i}"),
                video: v.clone(),
                audio: None,
                audio_offset: None,
                duration: info.duration,
                fps: info.fps,
                label: Some(i % 2),
                label_name: None,
                split: "train".into(),
            }
        })
        .collect::<Vec<_>>();
    let m = dir.join("odd.jsonl");
    Manifest::save(&m, &entries).expect("save manifest");
    m
}

#[test]
fn samples_are_the_same_with_and_without_the_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    // Odd files (no audio: silence), 15 fps base rate against 24 to 30 fps sources, real augmentation.
    let m = video_manifest(dir.path(), &odd_files(dir.path()));
    let cfg = DataConfig {
        fps: 15.0,
        allow_missing_audio: true,
        augment: svaclr_data::AugmentConfig::default(),
        ..readable_config(SpeedSet::Range([1.0, 4.0]))
    };
    let (off, on) = pair(&m, &cfg);
    assert_eq!(on.cache_stats().map(|s| s.cached), Some(0), "filled lazily");
    assert!(assert_same_samples(&off, &on, 3, &[0, 5]) > 40);
    let stats = on.cache_stats().expect("stats");
    assert_eq!((stats.cached, stats.uncached), (off.len(), 0), "every video was served from the cache");
    assert!(stats.bytes > 0 && stats.bytes <= stats.estimated_bytes, "{stats:?}");

    // Pattern clips with wavs, several of them shorter than a speed-3 window (looping).
    let sub = dir.path().join("pattern");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let m = synthetic_manifest(&sub, &[30, 9, 61, 17], &[1.5, 0.4, 2.6, 1.0], "train");
    let (off, on) = pair(&m, &readable_config(SpeedSet::Range([1.0, 3.0])));
    assert_same_samples(&off, &on, 4, &[1, 2]);
    assert_eq!(on.cache_stats().map(|s| s.cached), Some(4));
}

#[test]
fn batches_are_the_same_for_any_worker_count_and_cache_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = synthetic_manifest(dir.path(), &[30; 7], &[1.5; 7], "pretrain");
    let cfg =
        DataConfig { augment: svaclr_data::AugmentConfig::default(), ..readable_config(SpeedSet::Range([1.0, 3.0])) };
    let (off, on) = pair(&m, &cfg);
    let serial = BatchLoader::new(Arc::new(off), 2, 3, 0, 0);
    let want: Vec<_> = (0..3).flat_map(|e| serial.epoch(e, 0).collect::<Vec<_>>()).map(|b| b.expect("batch")).collect();
    // Cold cache filled by 3 racing workers, then warm, resumed mid-epoch: the same batches.
    let on = Arc::new(on);
    for workers in [3, 2, 1] {
        let l = BatchLoader::new(Arc::clone(&on), 2, 3, workers, 2);
        let got: Vec<_> = (0..3).flat_map(|e| l.epoch(e, 0).collect::<Vec<_>>()).map(|b| b.expect("batch")).collect();
        assert!(got == want, "{workers} workers");
    }
    let l = BatchLoader::new(Arc::clone(&on), 2, 3, 2, 2);
    let tail: Vec<_> = l.epoch(2, 1).map(|b| b.expect("batch")).collect();
    assert!(tail == want[7..], "resumed at batch 1 of epoch 2");
}

#[test]
fn errors_are_the_same_with_and_without_the_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = synthetic_manifest(dir.path(), &[40, 40, 40, 40], &[2.0; 4], "train");
    // v1: not a video; v2: its second half cut off (decodes in part); v3: shorter than the manifest says.
    std::fs::write(dir.path().join("v1.mkv"), b"not a video").expect("corrupt");
    let v2 = dir.path().join("v2.mkv");
    let bytes = std::fs::read(&v2).expect("read");
    std::fs::write(&v2, &bytes[..bytes.len() / 2]).expect("truncate");
    pattern_video(dir.path(), "v3.mkv", 12, 25.0);
    let cfg = readable_config(SpeedSet::Range([1.0, 2.0]));
    let (off, on) = pair(&m, &cfg);
    let want = outcome(off.train_sample(1, 0, 0)).expect_err("corrupt file");
    assert!(want.contains("v1.mkv") && !want.contains('\n'), "{want}");
    assert_same_samples(&off, &on, 3, &[0, 1]);
    // v3 fails as truncated in some samples, and v2 is read in part: the same samples and errors as without the cache.
    let stats = on.cache_stats().expect("stats");
    assert!(stats.uncached >= 1 && stats.cached >= 2, "{stats:?}");
    let truncated = (0..20).filter_map(|e| off.train_sample(3, e, 0).err()).map(|e| e.to_string()).next();
    assert!(truncated.is_some_and(|e| e.contains("v3.mkv") && e.contains("truncated file?")));
    // A cached video whose file has gone is "not found", as without the cache.
    std::fs::remove_file(dir.path().join("v0.mkv")).expect("rm");
    assert_same(on.train_sample(0, 9, 0), off.train_sample(0, 9, 0), "clip 0 without its file");
}

#[test]
fn a_store_over_its_budget_is_refused_before_decoding() {
    let dir = tempfile::tempdir().expect("tmp");
    // 6 videos of 100 frames at 96x64 (short side 64): 6 x 101 x 18432 bytes, about 10.7 MiB.
    let m = synthetic_manifest(dir.path(), &[100; 6], &[1.0; 6], "train");
    let cfg = DataConfig {
        short_side: 64,
        cache: CacheMode::Memory,
        cache_budget_mib: 10,
        ..readable_config(SpeedSet::Range([1.0, 2.0]))
    };
    let manifest = Manifest::load(&m).expect("manifest");
    let e = ClipDataset::new(&manifest, Some("train"), cfg.clone()).expect_err("over budget").to_string();
    let root = dir.path().display().to_string();
    assert_eq!(
        e,
        format!(
            "{root} (split 'train'): the decoded-frame cache would take about 11 MiB (6 videos at short side 64), over \
             its budget of 10 MiB: set data.cache to \"off\" or raise data.cache_budget_mib"
        )
    );
    let fits = ClipDataset::new(&manifest, Some("train"), DataConfig { cache_budget_mib: 11, ..cfg.clone() });
    assert!(fits.is_ok());
    // The field parses, is validated, and is left out of a config that does not use it.
    let json = serde_json::to_value(DataConfig { cache: CacheMode::Off, ..cfg.clone() }).expect("json");
    assert!(json.get("cache").is_none() && json.get("cache_budget_mib").is_some());
    let bad = DataConfig { cache_budget_mib: 0, ..cfg.clone() };
    assert!(bad.validate().expect_err("zero budget").to_string().contains("cache_budget_mib"));
    let mut text = serde_json::to_value(&cfg).expect("json");
    text["cache"] = "disk".into();
    assert!(serde_json::from_value::<DataConfig>(text).is_err(), "unknown cache modes are rejected");
}
