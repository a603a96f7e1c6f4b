//! Synthetic media with known content, written at test time.

use std::path::{Path, PathBuf};

use realfft::RealFftPlanner;
use svaclr_data::encode::{write_av, write_video};

/// Width and height of pattern videos.
pub const W: usize = 96;
pub const H: usize = 64;
/// Bits of the frame index drawn as white blocks in the top band.
pub const BITS: usize = 8;

/// A frame whose top band encodes `index` in binary (white = 1) on a grey background.
pub fn pattern_frame(index: usize, w: usize, h: usize) -> Vec<u8> {
    let mut f = vec![96u8; w * h * 3];
    let bw = w / BITS;
    let bh = h / 4;
    for b in 0..BITS {
        let v = if (index >> b) & 1 == 1 { 255 } else { 0 };
        for y in 0..bh {
            for x in b * bw..(b + 1) * bw {
                let p = (y * w + x) * 3;
                f[p..p + 3].copy_from_slice(&[v, v, v]);
            }
        }
    }
    f
}

/// Read the index back from a decoded RGB frame of any size.
pub fn read_index(frame: &[u8], w: usize, h: usize) -> usize {
    let y = h / 8;
    (0..BITS)
        .map(|b| {
            let x = (2 * b + 1) * w / (2 * BITS);
            usize::from(frame[(y * w + x) * 3] > 128) << b
        })
        .sum()
}

/// A lossless pattern video of `n` frames at `fps`.
pub fn pattern_video(dir: &Path, name: &str, n: usize, fps: f64) -> PathBuf {
    let p = dir.join(name);
    write_video(&p, W, H, fps, n, true, |i| pattern_frame(i, W, H)).expect("write pattern video");
    p
}

/// A sine tone.
pub fn tone(freq: f64, rate: u32, seconds: f64, amp: f32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n).map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32).collect()
}

/// A mono 16-bit wav.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    svaclr_data::audio::write_wav_mono_i16(path, samples, rate).expect("write wav");
}

/// A pattern video with an audio track in one container.
pub fn av_file(dir: &Path, name: &str, n: usize, fps: f64, audio: Option<(&[f32], u32)>) -> PathBuf {
    let p = dir.join(name);
    write_av(&p, W, H, fps, n, true, |i| pattern_frame(i, W, H), audio).expect("write av file");
    p
}

use svaclr_data::cache::DEFAULT_CACHE_BUDGET_MIB;
use svaclr_data::{AugmentConfig, CacheMode, DataConfig, ManifestEntry, MelConfig, SpeedSet};

/// A small, fast data config whose augmentation keeps the whole frame (so frame indices stay readable):
/// 48x32 frames (short side 32) squeezed to 32x32, no flip, no colour changes, identity normalisation.
pub fn readable_config(speeds: SpeedSet) -> DataConfig {
    DataConfig {
        frames: 6,
        fps: 25.0,
        short_side: 32,
        crop: 32,
        audio_seconds: 0.5,
        mel: MelConfig {
            sample_rate: 8000,
            n_fft: 256,
            win_length: 200,
            hop_length: 80,
            n_mels: 16,
            f_min: 0.0,
            f_max: 4000.0,
            log_eps: 1e-6,
        },
        speeds,
        tie_speeds: false,
        augment: AugmentConfig {
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.5, 1.5],
            flip_prob: 0.0,
            jitter_prob: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            grayscale_prob: 0.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        workers: 0,
        allow_missing_audio: false,
        cache: CacheMode::Off,
        cache_budget_mib: DEFAULT_CACHE_BUDGET_MIB,
    }
}

/// Index encoded in frame `t` of a rendered view `[3, T, crop, crop]` (channel 0, identity normalisation).
pub fn read_view_index(view: &[f32], t: usize, frames: usize, crop: usize) -> usize {
    let plane = &view[t * crop * crop..(t + 1) * crop * crop];
    let _ = frames;
    let y = crop / 8;
    (0..BITS).map(|b| usize::from(plane[y * crop + (2 * b + 1) * crop / (2 * BITS)] > 0.5) << b).sum()
}

/// Write `n` clips (pattern video of `frames[i]` frames at 25 fps + a noise-and-tone wav of `audio_secs[i]`)
/// and a manifest; returns its path.
pub fn synthetic_manifest(dir: &Path, frames: &[usize], audio_secs: &[f64], split: &str) -> PathBuf {
    let mut entries = Vec::new();
    for (i, (&n, &a)) in frames.iter().zip(audio_secs).enumerate() {
        let v = pattern_video(dir, &format!("v{i}.mkv"), n, 25.0);
        let wav = dir.join(format!("a{i}.wav"));
        let rate = 16_000;
        let samples: Vec<f32> = tone(300.0 + 50.0 * i as f64, rate, a, 0.3)
            .iter()
            .enumerate()
            .map(|(k, s)| s + 0.05 * (((k * 7919 + i * 104_729) % 1000) as f32 / 1000.0 - 0.5))
            .collect();
        write_wav(&wav, &samples, rate);
        entries.push(ManifestEntry {
            id: format!("clip{i}"),
            video: PathBuf::from(format!("v{i}.mkv")),
            audio: Some(PathBuf::from(format!("a{i}.wav"))),
            audio_offset: None,
            duration: (n - 1) as f64 / 25.0,
            fps: 25.0,
            label: Some(i % 3),
            label_name: None,
            split: split.to_string(),
        });
        let _ = v;
    }
    let m = dir.join("manifest.jsonl");
    svaclr_data::Manifest::save(&m, &entries).expect("save manifest");
    m
}

/// Run the ffmpeg command-line tool (`cargo xtask setup` installs it) with `args`; panics with its stderr.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg command-line tool is needed by this test (cargo xtask setup installs it)");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Raw RGB24 of the first frame ffmpeg's command-line tool shows for `path` (rotation applied as players do).
pub fn ffmpeg_first_frame(path: &Path) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The python that has PyAV: `SVACLR_PYTHON` (set by `cargo xtask test`), else the torch venv's when it exists.
/// `None` outside CI when neither is there; in CI (`CI` set) a missing python fails the test.
pub fn python_with_av() -> Option<PathBuf> {
    let candidates = std::env::var_os("SVACLR_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/svaclr/torch-2.9.0/bin/python")));
    for py in candidates {
        let ok = std::process::Command::new(&py).args(["-c", "import av, numpy"]).output();
        if ok.is_ok_and(|o| o.status.success()) {
            return Some(py);
        }
    }
    assert!(std::env::var_os("CI").is_none(), "CI must provide PyAV: set SVACLR_PYTHON (cargo xtask test does)");
    None
}

/// The strongest frequency of `x` (Hann-windowed FFT), in Hz.
pub fn peak_hz(x: &[f32], rate: u32) -> f64 {
    let n = x.len();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut input: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| f64::from(*v) * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()))
        .collect();
    let mut spec = fft.make_output_vec();
    fft.process(&mut input, &mut spec).expect("fft");
    let k = (1..spec.len()).max_by(|&a, &b| spec[a].norm().total_cmp(&spec[b].norm())).expect("bins");
    k as f64 * f64::from(rate) / n as f64
}
