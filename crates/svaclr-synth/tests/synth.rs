//! Integration tests of the SynthAV generator: determinism, split sizes, that every written file decodes (with
//! video-rs and hound directly, and through the crate's own decoding and dataset path, with and without the
//! decoded-frame cache), and that the labels are carried by motion and sound, not by appearance. All use the small preset with few clips (seconds each).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use realfft::RealFftPlanner;
use svaclr_data::{BatchLoader, CacheMode, ClipDataset, DataConfig, Manifest, MelConfig, SpeedSet};
use svaclr_synth::{
    GenerateOptions, Preset, RenderedClip, Split, SynthConfig, SynthError, SynthInfo, clip_id, clip_params, generate,
    render, render_clip, split_labels, write_preview,
};

/// The small preset cut down to `pretrain` pre-training clips, one train and one test clip per class and 8
/// retrieval clips (28 clips with `pretrain = 4`).
fn tiny(seed: u64, pretrain: usize) -> SynthConfig {
    let mut cfg = SynthConfig::preset(Preset::Small).with_seed(seed).with_pretrain_clips(pretrain);
    cfg.train_per_class = 1;
    cfg.test_per_class = 1;
    cfg.retrieval_clips = 8;
    cfg
}

fn generate_into(cfg: &SynthConfig, dir: &Path) {
    let summary = generate(cfg, dir, GenerateOptions::default()).expect("generate");
    let total: usize = Split::ALL.iter().map(|&s| cfg.count(s)).sum();
    assert_eq!(summary.written, total);
    assert!(!summary.reused);
}

/// Every file under `dir`, as sorted relative paths.
fn list_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).expect("prefix").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Decode every frame of a video with video-rs: (width, height, frames as RGB24).
fn decode_video(path: &Path) -> (usize, usize, Vec<Vec<u8>>) {
    let mut decoder = video_rs::Decoder::new(path).expect("open video");
    let (w, h) = decoder.size();
    let mut frames = Vec::new();
    loop {
        match decoder.decode() {
            Ok((_, frame)) => {
                assert_eq!(frame.dim(), (h as usize, w as usize, 3));
                frames.push(frame.as_slice().expect("standard layout").to_vec());
            }
            Err(video_rs::Error::DecodeExhausted) => break,
            Err(e) => panic!("{}: decode error {e}", path.display()),
        }
    }
    (w as usize, h as usize, frames)
}

fn read_wav_i16(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let spec = r.spec();
    let samples = r.samples::<i16>().collect::<Result<Vec<_>, _>>().expect("wav samples");
    (spec, samples)
}

#[test]
fn same_seed_gives_identical_files_and_another_seed_differs() {
    let (a, b, c) =
        (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let cfg = tiny(5, 4);
    generate_into(&cfg, a.path());
    generate_into(&cfg, b.path());
    generate_into(&tiny(6, 4), c.path());

    let files = list_files(a.path());
    assert_eq!(files, list_files(b.path()));
    assert!(files.iter().filter(|f| f.extension().is_some_and(|e| e == "mkv")).count() == 28);
    for f in &files {
        let (x, y) = (fs::read(a.path().join(f)).expect("read"), fs::read(b.path().join(f)).expect("read"));
        assert!(x == y, "{} differs between two runs with the same seed", f.display());
    }
    let clip = Path::new("video/train/train_00000.mkv");
    let wav = Path::new("audio/train/train_00000.wav");
    let (fa, fb, fc) =
        (decode_video(&a.path().join(clip)), decode_video(&b.path().join(clip)), decode_video(&c.path().join(clip)));
    assert_eq!(fa, fb);
    assert_ne!(fa.2, fc.2, "another seed must give other frames");
    assert_ne!(read_wav_i16(&a.path().join(wav)).1, read_wav_i16(&c.path().join(wav)).1, "another seed, other audio");
    let manifest = "downstream_train.jsonl";
    assert_ne!(
        fs::read(a.path().join(manifest)).expect("read"),
        fs::read(c.path().join(manifest)).expect("read"),
        "another seed must shuffle the labels differently"
    );
}

#[test]
fn existing_output_is_reused_replaced_or_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = tiny(1, 2);
    generate_into(&cfg, dir.path());
    let again = generate(&cfg, dir.path(), GenerateOptions::default()).expect("regenerate");
    assert!(again.reused && again.written == 0, "identical complete dataset must be kept");
    // A missing file makes it incomplete: regenerated.
    fs::remove_file(dir.path().join("audio/test/test_00003.wav")).expect("rm");
    let repaired = generate(&cfg, dir.path(), GenerateOptions::default()).expect("repair");
    assert!(!repaired.reused && dir.path().join("audio/test/test_00003.wav").is_file());
    // Fewer pre-training clips replace the old dataset without leaving stale clips behind.
    generate_into(&tiny(1, 1), dir.path());
    assert!(!dir.path().join("video/pretrain/pretrain_00001.mkv").exists(), "stale clip left behind");
    let forced =
        generate(&tiny(1, 1), dir.path(), GenerateOptions { force: true, ..Default::default() }).expect("force");
    assert!(!forced.reused);
    // An interrupted run (clips written, no synthav.json yet) is cleared and regenerated.
    fs::remove_file(dir.path().join("synthav.json")).expect("rm");
    fs::write(dir.path().join("retrieval.jsonl.tmp"), "half a line").expect("write");
    generate_into(&cfg, dir.path());
    assert!(!dir.path().join("retrieval.jsonl.tmp").exists());
    // A folder with other content is refused.
    let other = tempfile::tempdir().expect("tmp");
    fs::write(other.path().join("thesis.tex"), "precious").expect("write");
    let err = generate(&cfg, other.path(), GenerateOptions::default()).expect_err("must refuse");
    assert!(matches!(err, SynthError::NotEmpty { .. }), "{err}");
    assert!(other.path().join("thesis.tex").is_file());
}

#[test]
fn split_sizes_follow_the_preset_and_the_clips_override() {
    let small = SynthConfig::preset(Preset::Small);
    let counts = |c: &SynthConfig| Split::ALL.map(|s| c.count(s));
    assert_eq!(counts(&small), [200, 32, 64, 48]);
    assert_eq!(counts(&SynthConfig::preset(Preset::Default)), [2000, 180, 300, 240]);
    assert_eq!(counts(&small.clone().with_pretrain_clips(37)), [37, 32, 64, 48]);

    let mut cfg = SynthConfig::preset(Preset::Small).with_seed(2).with_pretrain_clips(12);
    cfg.train_per_class = 2;
    cfg.test_per_class = 1;
    cfg.retrieval_clips = 16;
    let dir = tempfile::tempdir().expect("tmp");
    generate_into(&cfg, dir.path());
    let classes = cfg.classes();
    let mut ids = HashSet::new();
    for split in Split::ALL {
        let m = Manifest::load(&dir.path().join(split.manifest_file())).expect("manifest");
        assert_eq!(m.entries.len(), cfg.count(split), "{split:?}");
        let mut per_class = BTreeMap::new();
        for (i, e) in m.entries.iter().enumerate() {
            assert_eq!(e.id, clip_id(split, i));
            assert!(ids.insert(e.id.clone()), "duplicate id {}", e.id);
            assert_eq!(e.split, split.name());
            assert_eq!((e.duration, e.fps), (3.5, 16.0));
            if split.labelled() {
                let label = e.label.expect("labelled split");
                assert_eq!(e.label_name.as_deref(), Some(classes[label].name.as_str()));
                *per_class.entry(label).or_insert(0) += 1;
            } else {
                assert!(e.label.is_none() && e.label_name.is_none(), "pre-training labels must be hidden");
            }
        }
        if split.labelled() {
            let expected = cfg.count(split) / cfg.num_classes();
            assert_eq!(per_class.len(), cfg.num_classes());
            assert!(per_class.values().all(|&n| n == expected), "{split:?} not balanced: {per_class:?}");
        }
    }
    let info = SynthInfo::load(dir.path()).expect("synthav.json");
    assert_eq!(info, SynthInfo::new(&cfg));
    assert_eq!(info.splits["pretrain"].clips, 12);
    assert_eq!((info.config.fps, info.config.width, info.audio_samples), (16, 48, 56_000));

    // The override changes the pre-training split only: the labelled splits keep their labels and content.
    let other = cfg.clone().with_pretrain_clips(3);
    for split in [Split::Train, Split::Test, Split::Retrieval] {
        assert_eq!(split_labels(&cfg, split), split_labels(&other, split));
        let (x, y) = (render_clip(&cfg, split, 1).expect("clip"), render_clip(&other, split, 1).expect("clip"));
        assert!(x.frames == y.frames && x.audio == y.audio);
    }
    assert!(matches!(render_clip(&cfg, Split::Train, 16), Err(SynthError::Index { .. })));
}

#[test]
fn every_written_file_decodes_with_the_promised_format() {
    let cfg = tiny(3, 4);
    let dir = tempfile::tempdir().expect("tmp");
    generate_into(&cfg, dir.path());
    let (mut worst_error, mut total_error, mut clips) = (0.0f64, 0.0f64, 0usize);
    for split in Split::ALL {
        let m = Manifest::load(&dir.path().join(split.manifest_file())).expect("manifest");
        for (i, e) in m.entries.iter().enumerate() {
            let rendered = render_clip(&cfg, split, i).expect("render");
            // Video with video-rs directly.
            let path = m.video_path(e);
            let (w, h, frames) = decode_video(&path);
            assert_eq!((w, h, frames.len()), (48, 48, 56), "{}", path.display());
            // Compare with the noise-free rendering: the encoder removes much of the sensor noise, so that is what
            // the decoded frames should be close to.
            let mut clean_params = rendered.params.clone();
            clean_params.pixel_noise = 0.0;
            let clean = svaclr_synth::render_video(&clean_params, 48, 48, 56, 16);
            let diff: u64 =
                frames.iter().flatten().zip(clean.iter().flatten()).map(|(&a, &b)| u64::from(a.abs_diff(b))).sum();
            let err = diff as f64 / (56 * 48 * 48 * 3) as f64;
            worst_error = worst_error.max(err);
            total_error += err;
            clips += 1;
            // Through the crate's decoder: header facts and the frame at each time.
            let info = svaclr_data::video::probe(&path).expect("probe");
            assert_eq!((info.width, info.height), (48, 48));
            assert!((info.fps - 16.0).abs() < 1e-6 && (info.duration - 3.5).abs() < 0.07, "{info:?}");
            if i == 0 {
                let times: Vec<f64> = (0..56).map(|k| k as f64 / 16.0).collect();
                let via_crate = svaclr_data::video::decode_frames_at(&path, &times, 0).expect("decode_frames_at");
                let slices = via_crate.slices();
                assert!(slices.iter().zip(&frames).all(|(a, b)| *a == b.as_slice()), "frame order or timing differs");
            }
            // Audio with hound directly and through the crate.
            let wav = m.audio_path(e).expect("wav path");
            let (spec, samples) = read_wav_i16(&wav);
            assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, 16_000, 16));
            assert_eq!(samples.len(), 56_000);
            let expected: Vec<i16> =
                rendered.audio.iter().map(|s| (s.clamp(-1.0, 1.0) * 32_767.0).round() as i16).collect();
            assert!(samples == expected, "{}: samples differ from the renderer", wav.display());
            let clip = svaclr_data::audio::read_wav_mono(&wav).expect("read_wav_mono");
            assert_eq!((clip.sample_rate, clip.samples.len()), (16_000, 56_000));
        }
    }
    // H.264 at crf 16 in 4:2:0 on 48x48 frames: about 3 grey levels of mean absolute error against the noise-free
    // rendering, under 6 for the noisiest clip (generator v3, whose larger objects have more edge: measured 2.87 and
    // 5.39; v2 2.40 and 3.65). A colour-conversion or frame-order bug gives tens of levels.
    let mean_error = total_error / clips as f64;
    eprintln!("decoded vs noise-free render: {mean_error:.2} grey levels on average, worst clip {worst_error:.2}");
    assert!(
        worst_error < 8.0 && mean_error < 4.5,
        "decoded frames are off by {mean_error:.2} levels on average (worst clip {worst_error:.2})"
    );

    // The dataset path training uses: speed-6 views of the default window fit without looping.
    let m = Manifest::load(&dir.path().join(Split::Train.manifest_file())).expect("manifest");
    let data = DataConfig {
        frames: 8,
        fps: 16.0,
        short_side: 48,
        crop: 40,
        audio_seconds: 0.5,
        mel: MelConfig { sample_rate: 16_000, f_max: 8_000.0, ..MelConfig::default() },
        speeds: SpeedSet::Range([6.0, 6.0]),
        ..DataConfig::default()
    };
    let dataset = ClipDataset::new(&m, Some("train"), data.clone()).expect("dataset");
    assert_eq!((dataset.len(), dataset.num_classes()), (8, 8));
    for i in 0..dataset.len() {
        let s = dataset.train_sample(i, 0, 9).expect("train sample");
        assert_eq!(s.video.len(), 2);
        assert_eq!(s.video[1].len(), data.video_view_shape().iter().product::<usize>());
        assert_eq!(s.audio[1].len(), data.audio_view_shape().iter().product::<usize>());
        assert!(s.spec.start_sec + 6.0 * 0.5 <= 3.5 + 1e-9, "speed-6 window must fit: {:?}", s.spec);
        assert_eq!(dataset.eval_samples(i, 3, 1).expect("eval").len(), 3);
    }
}

/// The data config of configs/pretrain/synth_s14.json (the synth preset's clips: 8 frames at 16 fps, short side
/// 40, speeds [1, 4]), with its decoded-frame cache as written there.
fn synth_preset_data() -> DataConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/pretrain/synth_s14.json");
    let text = fs::read_to_string(&path).expect("configs/pretrain/synth_s14.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    serde_json::from_value(json["data"].clone()).expect("the config's data section")
}

#[test]
fn synthav_samples_are_the_same_with_and_without_the_frame_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = tiny(5, 10);
    generate_into(&cfg, dir.path());
    let m = Manifest::load(&dir.path().join(Split::Pretrain.manifest_file())).expect("manifest");
    let cached = synth_preset_data();
    assert_eq!(cached.cache, CacheMode::Memory, "SynthAV configs cache decoded frames");
    let off = Arc::new(ClipDataset::new(&m, None, DataConfig { cache: CacheMode::Off, ..cached.clone() }).expect("ds"));
    let on = Arc::new(ClipDataset::new(&m, None, cached).expect("cached dataset"));
    for seed in [0, 3] {
        for epoch in 0..3 {
            for i in 0..off.len() {
                let want = off.train_sample(i, epoch, seed).expect("sample");
                assert!(on.train_sample(i, epoch, seed).expect("cached sample") == want, "clip {i} epoch {epoch}");
            }
        }
    }
    for i in 0..off.len() {
        assert!(on.eval_samples(i, 2, 3).expect("eval") == off.eval_samples(i, 2, 3).expect("eval"), "clip {i}");
        let (v, a) = ([1.0, 2.0, 4.0], [1.0, 4.0]);
        assert!(on.speed_views(i, &v, &a).expect("probe") == off.speed_views(i, &v, &a).expect("probe"), "clip {i}");
    }
    let stats = on.cache_stats().expect("cache on");
    assert_eq!((stats.cached, stats.uncached), (off.len(), 0));
    // 56 frames of 40x40 RGB per clip.
    assert_eq!(stats.bytes, off.len() * 56 * 40 * 40 * 3);
    // The loader: a fresh cache filled by two workers gives the batches of an uncached serial loader.
    let fresh = Arc::new(ClipDataset::new(&m, None, synth_preset_data()).expect("cached dataset"));
    let (serial, parallel) = (BatchLoader::new(off, 4, 1, 0, 0), BatchLoader::new(fresh, 4, 1, 2, 2));
    for epoch in 0..2 {
        let want: Vec<_> = serial.epoch(epoch, 0).map(|b| b.expect("batch")).collect();
        let got: Vec<_> = parallel.epoch(epoch, 0).map(|b| b.expect("batch")).collect();
        assert!(got == want, "epoch {epoch}");
    }
}

#[test]
fn preview_is_a_png_of_the_expected_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.png");
    write_preview(&tiny(4, 1), &path).expect("preview");
    let bytes = fs::read(&path).expect("read");
    assert_eq!(&bytes[1..4], b"PNG");
    // IHDR: width and height, big-endian, at bytes 16..24. Eight classes -> eight rows of 145 px + a 48 px header.
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    assert_eq!(height, 48 + 8 * 145);
}

// ---- labels vs. appearance and sound ------------------------------------------------------------------------------

/// What a static-appearance model can use: mean and spread of colour over the clip, the background's brightness
/// and colour (median of the first frame's border), the object's area and colour (pixels of the first frame far
/// from that background colour).
fn appearance_features(c: &RenderedClip) -> Vec<f64> {
    let (w, h) = (c.width, c.height);
    let mut sum = [0.0f64; 3];
    let mut sq = [0.0f64; 3];
    for f in &c.frames {
        for px in f.chunks(3) {
            for ch in 0..3 {
                let v = f64::from(px[ch]) / 255.0;
                sum[ch] += v;
                sq[ch] += v * v;
            }
        }
    }
    let n = (c.frames.len() * w * h) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std: Vec<f64> = (0..3).map(|ch| (sq[ch] / n - mean[ch] * mean[ch]).max(0.0).sqrt()).collect();
    let f0 = &c.frames[0];
    let px = |x: usize, y: usize, ch: usize| f64::from(f0[(y * w + x) * 3 + ch]) / 255.0;
    let mut border: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for y in 0..h {
        for x in 0..w {
            if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
                (0..3).for_each(|ch| border[ch].push(px(x, y, ch)));
            }
        }
    }
    let bg: Vec<f64> = border
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let brightness = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2];
    let (mut area, mut obj) = (0usize, [0.0f64; 3]);
    for y in 0..h {
        for x in 0..w {
            let d: f64 = (0..3).map(|ch| (px(x, y, ch) - bg[ch]).powi(2)).sum::<f64>().sqrt();
            if d > 0.25 {
                area += 1;
                (0..3).for_each(|ch| obj[ch] += px(x, y, ch));
            }
        }
    }
    let obj_mean: Vec<f64> = obj.iter().zip(&bg).map(|(o, b)| if area > 0 { o / area as f64 } else { *b }).collect();
    let mut f = mean;
    f.extend(std);
    f.extend(bg);
    f.push(brightness);
    f.push(area as f64 / (w * h) as f64);
    f.extend(obj_mean);
    f
}

/// What the sound says: log2 of the dominant frequency (100 Hz - 4 kHz) and the onset rate (rising edges of the
/// 10 ms energy envelope).
fn audio_features(c: &RenderedClip) -> Vec<f64> {
    let sr = f64::from(c.sample_rate);
    let n = c.audio.len();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut input: Vec<f64> = c.audio.iter().map(|&v| f64::from(v)).collect();
    let mut spectrum = fft.make_output_vec();
    fft.process(&mut input, &mut spectrum).expect("fft");
    let bin_hz = sr / n as f64;
    let (lo, hi) = ((100.0 / bin_hz) as usize, (4000.0 / bin_hz) as usize);
    let peak = (lo..hi).max_by(|&a, &b| spectrum[a].norm().total_cmp(&spectrum[b].norm())).expect("bins");
    let hop = (0.01 * sr) as usize;
    let energy: Vec<f64> =
        c.audio.chunks(hop).map(|ch| ch.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()).collect();
    let emax = energy.iter().fold(0.0f64, |m, &e| m.max(e));
    let (mut onsets, mut last) = (0usize, None::<usize>);
    for k in 2..energy.len() {
        let rising = energy[k] > 4.0 * energy[k - 2] && energy[k] > 0.02 * emax;
        if rising && last.is_none_or(|l| k - l >= 5) {
            onsets += 1;
            last = Some(k);
        }
    }
    vec![(peak as f64 * bin_hz).log2(), onsets as f64 / (n as f64 / sr)]
}

/// Leave-one-out nearest-centroid accuracy on standardised features.
fn nearest_centroid_accuracy(x: &[Vec<f64>], y: &[usize], classes: usize) -> f64 {
    let d = x[0].len();
    let n = x.len() as f64;
    let mean: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let std: Vec<f64> =
        (0..d).map(|j| (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt().max(1e-12)).collect();
    let z: Vec<Vec<f64>> = x.iter().map(|r| (0..d).map(|j| (r[j] - mean[j]) / std[j]).collect()).collect();
    let mut sums = vec![vec![0.0; d]; classes];
    let mut counts = vec![0usize; classes];
    for (r, &c) in z.iter().zip(y) {
        counts[c] += 1;
        (0..d).for_each(|j| sums[c][j] += r[j]);
    }
    let correct = z
        .iter()
        .zip(y)
        .filter(|&(r, &label)| {
            let dist = |c: usize| {
                let (s, k) = if c == label { (-1.0, counts[c] - 1) } else { (0.0, counts[c]) };
                (0..d).map(|j| ((sums[c][j] + s * r[j]) / k as f64 - r[j]).powi(2)).sum::<f64>()
            };
            (0..classes).min_by(|&a, &b| dist(a).total_cmp(&dist(b))) == Some(label)
        })
        .count();
    correct as f64 / n
}

/// One-way ANOVA F statistic of each feature across classes, between-class over within-class mean square.
fn f_statistics(x: &[Vec<f64>], y: &[usize], classes: usize) -> Vec<f64> {
    let n = x.len();
    (0..x[0].len())
        .map(|j| {
            let grand = x.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            let mut sums = vec![0.0; classes];
            let mut counts = vec![0usize; classes];
            for (r, &c) in x.iter().zip(y) {
                sums[c] += r[j];
                counts[c] += 1;
            }
            let means: Vec<f64> = sums.iter().zip(&counts).map(|(s, &k)| s / k as f64).collect();
            let between: f64 = means.iter().zip(&counts).map(|(m, &k)| k as f64 * (m - grand).powi(2)).sum();
            let within: f64 = x.iter().zip(y).map(|(r, &c)| (r[j] - means[c]).powi(2)).sum();
            (between / (classes - 1) as f64) / (within / (n - classes) as f64).max(1e-300)
        })
        .collect()
}

#[test]
fn labels_come_from_motion_and_sound_not_from_appearance() {
    // 50 clips per class of the small preset (8 classes), rendered in memory exactly as `generate` writes them.
    let mut cfg = SynthConfig::preset(Preset::Small).with_seed(11);
    cfg.test_per_class = 50;
    let labels = split_labels(&cfg, Split::Test);
    let features: Vec<(Vec<f64>, Vec<f64>)> = (0..labels.len())
        .into_par_iter()
        .map(|i| {
            let clip = render(&cfg, clip_params(&cfg, Split::Test, i, labels[i]));
            (appearance_features(&clip), audio_features(&clip))
        })
        .collect();
    let (appearance, sound): (Vec<_>, Vec<_>) = features.into_iter().unzip();
    let classes = cfg.num_classes();
    let n = labels.len() as f64;
    let chance = 1.0 / classes as f64;
    // Under the null (features independent of the label) the accuracy is binomial around chance with standard
    // deviation sqrt(p (1 - p) / n) = 1.65 points here; 4 standard deviations leave a false alarm rate < 1e-4.
    let margin = 4.0 * (chance * (1.0 - chance) / n).sqrt();
    let acc_appearance = nearest_centroid_accuracy(&appearance, &labels, classes);
    let acc_sound = nearest_centroid_accuracy(&sound, &labels, classes);
    eprintln!("appearance accuracy {acc_appearance:.3}, sound accuracy {acc_sound:.3}, chance {chance:.3}");
    assert!(
        acc_appearance < chance + margin,
        "appearance predicts the label: {acc_appearance:.3} (chance {chance:.3})"
    );
    assert!(acc_sound > 0.8, "sound should identify family and rate: {acc_sound:.3}");
    // A more sensitive check of each appearance feature alone: its one-way ANOVA F statistic across the 8 classes.
    // Under the null F ~ F(7, 392), P(F > 5.5) = 4.8e-6 (integrated numerically), so over 14 features the family-wise
    // false alarm rate is below 1e-4. Checked by mutation: making the object radius depend on the family (+0.01 of
    // the frame per family, a third of the remaining random spread) gives F = 7.3 on the area feature and fails
    // here, while the nearest-centroid accuracy (17.5%) alone would have passed.
    let f_appearance = f_statistics(&appearance, &labels, classes);
    let f_sound = f_statistics(&sound, &labels, classes);
    eprintln!("appearance F {f_appearance:.2?}, sound F {f_sound:.1?}");
    let worst = f_appearance.iter().fold(0.0f64, |m, &f| m.max(f));
    assert!(worst < 5.5, "an appearance feature depends on the label: F = {f_appearance:.2?}");
    assert!(f_sound.iter().all(|&f| f > 100.0), "sound features should separate the classes: F = {f_sound:.1?}");
}
