//! Data pipeline throughput: clips/s for decode + speed views + augmentation + log-mel.
//!
//! `cargo bench -p svaclr-data` writes a fixed set of files (16 videos, 10 s, 320x240 at 30 fps, H.264 in MP4,
//! and 48 kHz mono wavs) to `target/bench-data/data_pipeline/` (or `$SVACLR_BENCH_DIR`) once, then measures
//! with `DataConfig::default()` (GDT settings, speeds [1, 4], two views per modality):
//! - `train_sample`: one training sample on one thread (the unit compared with PyTorch by
//!   `scripts/bench/data_torch.py`, which reads the same files);
//! - `decode`, `audio_views`, `augment`: the parts of it;
//! - `loader_2_workers`: an epoch of 16 clips through `BatchLoader` (batch 8, 2 workers).
//!
//! and, on clips of the synth preset's shape (64 clips of 64x64 at 16 fps, 56 frames, H.264 in Matroska, 16 kHz
//! wavs, in `synth/` beside the others) with the `data` section of configs/pretrain/synth_s14.json:
//! - `synth_loader_2_workers/off` and `/memory`: an epoch through `BatchLoader` (batch 32, 2 workers) without and
//!   with the decoded-frame cache (filled by one epoch before measuring: the rate of every epoch after the first);
//! - `synth_wav_window` and `synth_audio_views`: the wav read of a speed-4 sample, and the read with both audio
//!   views' resampling and log-mel (whether the audio read is worth caching too).
//!
//! Throughput is printed in elements (clips) per second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svaclr_data::audio::{read_wav_window, speed_audio_view, write_wav_mono_i16};
use svaclr_data::augment::{draw_view_transform, render_view};
use svaclr_data::encode::write_video;
use svaclr_data::sampler::{sample_rng, video_frame_times};
use svaclr_data::video::decode_frames_at;
use svaclr_data::{BatchLoader, CacheMode, ClipDataset, DataConfig, LogMel, Manifest, ManifestEntry};

const CLIPS: usize = 16;
const SECONDS: f64 = 10.0;
const FPS: f64 = 30.0;
const WIDTH: usize = 320;
const HEIGHT: usize = 240;
const AUDIO_RATE: u32 = 48_000;
/// Bump when the generated content changes, so stale files are rewritten.
const DATA_VERSION: &str = "1";

fn bench_dir() -> PathBuf {
    std::env::var_os("SVACLR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data/data_pipeline"))
}

fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// A frame with texture, motion and noise, so that H.264 has real work to do.
fn frame(clip: usize, i: usize) -> Vec<u8> {
    let mut f = vec![0u8; WIDTH * HEIGHT * 3];
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let p = (y * WIDTH + x) * 3;
            let n = (hash((clip * 1_000_003 + i * 7919 + y * WIDTH + x) as u64) & 31) as usize;
            f[p] = ((x + 2 * i + clip * 13) % 256) as u8 / 2 + n as u8;
            f[p + 1] = ((y + i) % 256) as u8 / 2 + n as u8;
            f[p + 2] = 96 + n as u8;
        }
    }
    let (bx, by) = ((i * 4 + clip * 20) % (WIDTH - 48), (i * 3 + clip * 7) % (HEIGHT - 48));
    for y in by..by + 48 {
        for x in bx..bx + 48 {
            let p = (y * WIDTH + x) * 3;
            f[p..p + 3].copy_from_slice(&[230, 40, 40]);
        }
    }
    f
}

fn audio(clip: usize) -> Vec<f32> {
    let n = (SECONDS * f64::from(AUDIO_RATE)) as usize;
    (0..n)
        .map(|k| {
            let t = k as f64 / f64::from(AUDIO_RATE);
            let f0 = 200.0 + 40.0 * clip as f64;
            let s = 0.3 * (2.0 * std::f64::consts::PI * (f0 * t + 30.0 * t * t)).sin();
            (s + 0.02 * ((hash((clip * 48_000 + k) as u64) % 2001) as f64 / 1000.0 - 1.0)) as f32
        })
        .collect()
}

/// Clips of the synth preset's shape (SynthAV's default preset: 64x64, 16 fps, 56 frames, 16 kHz audio).
const SYNTH_CLIPS: usize = 64;
const SYNTH_SIDE: usize = 64;
const SYNTH_FPS: f64 = 16.0;
const SYNTH_FRAMES: usize = 56;
const SYNTH_RATE: u32 = 16_000;

/// A moving block on a textured, noisy background at the synth preset's size.
fn synth_frame(clip: usize, i: usize) -> Vec<u8> {
    let s = SYNTH_SIDE;
    let mut f = vec![0u8; s * s * 3];
    for y in 0..s {
        for x in 0..s {
            let p = (y * s + x) * 3;
            let n = (hash((clip * 1_000_003 + i * 7919 + y * s + x) as u64) & 15) as u8;
            f[p..p + 3].copy_from_slice(&[(x * 3 + clip * 9) as u8 / 2 + n, (y * 3) as u8 / 2 + n, 80 + n]);
        }
    }
    let (bx, by) = ((i * 2 + clip * 5) % (s - 16), (i + clip * 3) % (s - 16));
    for y in by..by + 16 {
        for x in bx..bx + 16 {
            f[(y * s + x) * 3..(y * s + x) * 3 + 3].copy_from_slice(&[230, 40, 40]);
        }
    }
    f
}

/// The manifest entry of clip `c` (a video and its wav, both in the manifest's folder).
fn entry(c: usize, ext: &str, duration: f64, fps: f64, label: Option<usize>) -> ManifestEntry {
    ManifestEntry {
        id: format!("clip{c:02}"),
        video: format!("clip{c:02}.{ext}").into(),
        audio: Some(format!("clip{c:02}.wav").into()),
        audio_offset: None,
        duration,
        fps,
        label,
        label_name: None,
        split: "pretrain".into(),
    }
}

/// The manifest in `dir`, written with its files by `write` (which returns its entries) unless a manifest of this
/// `DATA_VERSION` is there already.
fn ensure_files(dir: &Path, write: impl FnOnce(&Path) -> Vec<ManifestEntry>) -> PathBuf {
    let manifest = dir.join("manifest.jsonl");
    let stamp = dir.join("VERSION");
    if manifest.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == DATA_VERSION) {
        return manifest;
    }
    std::fs::create_dir_all(dir).expect("bench dir");
    let entries = write(dir);
    Manifest::save(&manifest, &entries).expect("manifest");
    std::fs::write(&stamp, DATA_VERSION).expect("stamp");
    manifest
}

/// Write the synth-shaped files once into `dir`; return the manifest path.
fn ensure_synth_data(dir: &Path) -> PathBuf {
    ensure_files(dir, |dir| {
        let seconds = SYNTH_FRAMES as f64 / SYNTH_FPS;
        let (s, fps, n) = (SYNTH_SIDE, SYNTH_FPS, SYNTH_FRAMES);
        (0..SYNTH_CLIPS)
            .map(|c| {
                let e = entry(c, "mkv", seconds, fps, None);
                write_video(&dir.join(&e.video), s, s, fps, n, false, |i| synth_frame(c, i)).expect("write video");
                let samples: Vec<f32> =
                    audio(c).into_iter().step_by(3).take((seconds * f64::from(SYNTH_RATE)) as usize).collect();
                write_wav_mono_i16(&dir.join(e.audio.as_ref().expect("wav")), &samples, SYNTH_RATE).expect("write wav");
                e
            })
            .collect()
    })
}

/// The `data` section of configs/pretrain/synth_s14.json.
fn synth_preset_data() -> DataConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/pretrain/synth_s14.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("synth_s14.json")).expect("json");
    serde_json::from_value(json["data"].clone()).expect("data section")
}

/// Write the files once; return the manifest path.
fn ensure_data(dir: &Path) -> PathBuf {
    ensure_files(dir, |dir| {
        let n_frames = (SECONDS * FPS) as usize;
        (0..CLIPS)
            .map(|c| {
                let e = entry(c, "mp4", (n_frames - 1) as f64 / FPS, FPS, Some(c % 4));
                write_video(&dir.join(&e.video), WIDTH, HEIGHT, FPS, n_frames, false, |i| frame(c, i))
                    .expect("write video");
                write_wav_mono_i16(&dir.join(e.audio.as_ref().expect("wav")), &audio(c), AUDIO_RATE)
                    .expect("write wav");
                e
            })
            .collect()
    })
}

/// Both audio views of a speed-4 sample from `wav` at 2 s: the wav read, resampling and log-mel.
fn audio_views(wav: &Path, lm: &LogMel, cfg: &DataConfig) -> [Vec<f32>; 2] {
    let src = read_wav_window(wav, 2.0, 4.0 * cfg.audio_seconds).expect("wav");
    [1.0, 4.0].map(|s| {
        lm.compute(
            &speed_audio_view(&src.samples, src.sample_rate, s, cfg.audio_seconds, cfg.mel.sample_rate).expect("view"),
        )
    })
}

fn benches(c: &mut Criterion) {
    let dir = bench_dir();
    let manifest = Manifest::load(&ensure_data(&dir)).expect("load manifest");
    let cfg = DataConfig::default();
    let ds = Arc::new(ClipDataset::new(&manifest, None, cfg.clone()).expect("dataset"));
    let n = ds.len();
    eprintln!("bench data: {} ({} clips)", dir.display(), n);

    let mut g = c.benchmark_group("data");
    g.sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(12));
    g.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    g.bench_function("train_sample", |b| {
        b.iter(|| {
            k += 1;
            ds.train_sample(k % n, (k / n) as u64, 7).expect("sample")
        })
    });
    // Parts, with the same clip geometry as a speed-4 training sample.
    let item = ds.item(0).expect("item").clone();
    let times: Vec<f64> =
        [1.0, 4.0].iter().flat_map(|&s| video_frame_times(2.0, s, cfg.frames, cfg.fps, item.duration)).collect();
    g.bench_function("decode", |b| b.iter(|| decode_frames_at(&item.video, &times, cfg.short_side).expect("decode")));
    let lm = LogMel::new(cfg.mel.clone()).expect("mel");
    let wav = item.audio.clone().expect("wav");
    g.bench_function("audio_views", |b| b.iter(|| audio_views(&wav, &lm, &cfg)));
    let decoded = decode_frames_at(&item.video, &times, cfg.short_side).expect("decode");
    let slices = decoded.slices();
    let mut rng = sample_rng(1, 0, 0);
    g.bench_function("augment", |b| {
        b.iter(|| {
            slices
                .chunks(cfg.frames)
                .map(|fr| {
                    let tf = draw_view_transform(&mut rng, &cfg.augment, decoded.height, decoded.width);
                    render_view(fr, decoded.height, decoded.width, cfg.crop, &tf, cfg.augment.mean, cfg.augment.std)
                })
                .collect::<Vec<_>>()
        })
    });
    g.throughput(Throughput::Elements(n as u64));
    let loader = BatchLoader::new(Arc::clone(&ds), 8, 7, 2, 4);
    let mut epoch = 0u64;
    g.sample_size(10);
    g.bench_function("loader_2_workers", |b| {
        b.iter(|| {
            epoch += 1;
            let mut clips = 0;
            for batch in loader.epoch(epoch, 0) {
                clips += batch.expect("batch").batch_size();
            }
            clips
        })
    });
    g.finish();
}

fn synth_benches(c: &mut Criterion) {
    let manifest = Manifest::load(&ensure_synth_data(&bench_dir().join("synth"))).expect("load manifest");
    let cfg = synth_preset_data();
    let mut g = c.benchmark_group("data");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(SYNTH_CLIPS as u64));
    for cache in [CacheMode::Off, CacheMode::Memory] {
        let t = Instant::now();
        let ds = ClipDataset::new(&manifest, None, DataConfig { cache, ..cfg.clone() }).expect("dataset");
        let built = t.elapsed();
        let loader = BatchLoader::new(Arc::new(ds), 32, 7, 2, 4);
        // The cache's first epoch fills it (a whole decode of each video); measured are the epochs after.
        let t = Instant::now();
        loader.epoch(0, 0).for_each(|b| drop(b.expect("batch")));
        eprintln!(
            "synth, cache {cache:?}: dataset built in {:.1} ms, first epoch {:.1} clips/s",
            built.as_secs_f64() * 1e3,
            SYNTH_CLIPS as f64 / t.elapsed().as_secs_f64()
        );
        let mut epoch = 0u64;
        g.bench_function(format!("synth_loader_2_workers/{}", if cache.is_off() { "off" } else { "memory" }), |b| {
            b.iter(|| {
                epoch += 1;
                loader.epoch(epoch, 0).map(|batch| batch.expect("batch").batch_size()).sum::<usize>()
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let wav = Path::new(&manifest.root).join("clip00.wav");
    let lm = LogMel::new(cfg.mel.clone()).expect("mel");
    g.bench_function("synth_wav_window", |b| {
        b.iter(|| read_wav_window(&wav, 2.0, 4.0 * cfg.audio_seconds).expect("wav"))
    });
    g.bench_function("synth_audio_views", |b| b.iter(|| audio_views(&wav, &lm, &cfg)));
    g.finish();
}

criterion_group!(data, benches, synth_benches);
criterion_main!(data);
