//! Audio: wav formats, speed views (duration and pitch), container extraction, bad files.

use std::fs;
use std::path::Path;

use svaclr_data::DataError;
use svaclr_data::audio::{
    decode_container_audio, extract_audio_to_wav, read_wav_mono, read_wav_segment, read_wav_window, speed_audio_view,
    wav_info,
};

use crate::common::*;

/// Frequency (Hz) of the strongest FFT bin of a Hann-windowed signal.
fn write_with_spec(path: &Path, spec: hound::WavSpec, frames: &[[f32; 2]]) {
    let mut w = hound::WavWriter::create(path, spec).expect("create");
    for fr in frames {
        for &v in &fr[..usize::from(spec.channels)] {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(v).expect("f32"),
                (_, 8) => w.write_sample((v * 127.0) as i8).expect("i8"),
                (_, 16) => w.write_sample((v * 32_767.0) as i16).expect("i16"),
                (_, 24) => w.write_sample((v * 8_388_607.0) as i32).expect("i24"),
                _ => w.write_sample((v * 2_147_483_647.0) as i32).expect("i32"),
            }
        }
    }
    w.finalize().expect("finalize");
}

#[test]
fn every_wav_encoding_reads_as_averaged_mono() {
    let dir = tempfile::tempdir().expect("tmp");
    // Left 0.5, right -0.25 -> mono 0.125; then a second frame left 0.25 right 0.25.
    let frames = [[0.5f32, -0.25], [0.25, 0.25]];
    for (bits, float) in [(8u16, false), (16, false), (24, false), (32, false), (32, true)] {
        for channels in [1u16, 2] {
            let spec = hound::WavSpec {
                channels,
                sample_rate: 11_025,
                bits_per_sample: bits,
                sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
            };
            let p = dir.path().join(format!("w{bits}{float}{channels}.wav"));
            write_with_spec(&p, spec, &frames);
            let clip = read_wav_mono(&p).expect("read");
            assert_eq!(clip.sample_rate, 11_025);
            let want = if channels == 2 { [0.125, 0.25] } else { [0.5, 0.25] };
            let tol = if bits == 8 { 0.02 } else { 1e-3 };
            for (g, w) in clip.samples.iter().zip(want) {
                assert!((g - w).abs() < tol, "{bits} bit float={float} ch={channels}: {:?}", clip.samples);
            }
            assert_eq!(wav_info(&p).expect("info").frames, 2);
        }
    }
}

#[test]
fn segments_loop_past_the_end() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("ramp.wav");
    let ramp: Vec<f32> = (0..100).map(|i| i as f32 / 200.0).collect();
    write_wav(&p, &ramp, 1000);
    let seg = read_wav_segment(&p, 90, 20).expect("segment");
    let want: Vec<f32> = (90..110).map(|i| (i % 100) as f32 / 200.0).collect();
    for (g, w) in seg.samples.iter().zip(&want) {
        assert!((g - w).abs() < 1e-4);
    }
    let win = read_wav_window(&p, 0.05, 0.02).expect("window");
    assert_eq!(win.samples.len(), 21);
    assert!((win.samples[0] - 50.0 / 200.0).abs() < 1e-4);
}

#[test]
fn speed_view_has_duration_d_and_raises_pitch() {
    let rate = 24_000;
    let d = 1.0;
    // 4 s of a 1 kHz tone: enough source for speed 4.
    let source = tone(1000.0, rate, 4.0, 0.5);
    for speed in [1.0, 2.0, 3.0, 1.5] {
        let view = speed_audio_view(&source, rate, speed, d, rate).expect("view");
        assert_eq!(view.len(), 24_000, "speed {speed}");
        let f = peak_hz(&view, rate);
        assert!((f - 1000.0 * speed).abs() <= 2.0, "speed {speed}: peak at {f} Hz");
    }
    // Rate conversion and speed in one pass: 44.1 kHz source, 16 kHz views.
    let src44 = tone(1000.0, 44_100, 3.0, 0.5);
    let v = speed_audio_view(&src44, 44_100, 2.0, d, 16_000).expect("view");
    assert_eq!(v.len(), 16_000);
    assert!((peak_hz(&v, 16_000) - 2000.0).abs() <= 2.0);
    // Anti-aliasing: a 5 kHz tone at speed 2 would be 10 kHz, above the 8 kHz Nyquist of a 16 kHz view:
    // it must be filtered out rather than fold back to 6 kHz.
    let hi = tone(5000.0, 16_000, 2.0, 0.5);
    let v = speed_audio_view(&hi, 16_000, 2.0, d, 16_000).expect("view");
    let rms = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    assert!(rms < 0.01, "aliased energy rms {rms}");
}

#[test]
fn container_audio_extracts_to_wav_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = tone(440.0, 44_100, 2.0, 0.5);
    let av = av_file(dir.path(), "av.mkv", 50, 25.0, Some((&t, 44_100)));
    let clip = decode_container_audio(&av).expect("decode").clip;
    assert_eq!(clip.sample_rate, 44_100);
    assert!((clip.duration() - 2.0).abs() < 0.05, "{}", clip.duration());
    let wav = dir.path().join("av.wav");
    let (info, _) = extract_audio_to_wav(&av, &wav, Some(16_000)).expect("extract");
    assert_eq!((info.sample_rate, info.channels), (16_000, 1));
    let back = read_wav_mono(&wav).expect("read back");
    assert!((back.duration() - 2.0).abs() < 0.05);
    assert!((peak_hz(&back.samples, 16_000) - 440.0).abs() < 2.0);
    // AAC in MP4.
    let mp4 = av_file(dir.path(), "av.mp4", 50, 25.0, Some((&t, 44_100)));
    let aac = decode_container_audio(&mp4).expect("aac").clip;
    assert!((aac.duration() - 2.0).abs() < 0.1, "{}", aac.duration());
    assert!((peak_hz(&aac.samples, aac.sample_rate) - 440.0).abs() < 2.0);
}

#[test]
fn bad_audio_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let silent = pattern_video(dir.path(), "silent.mkv", 10, 25.0);
    let e = decode_container_audio(&silent).expect_err("no audio");
    assert!(matches!(e, DataError::NoAudioStream { .. }) && e.to_string().contains("silent.mkv"), "{e}");
    let junk = dir.path().join("junk.wav");
    fs::write(&junk, b"RIFF....WAVEnot really").expect("write");
    let e = read_wav_mono(&junk).expect_err("junk");
    assert!(matches!(e, DataError::Wav { .. }) && e.to_string().contains("junk.wav"), "{e}");
    let empty = dir.path().join("empty.wav");
    fs::write(&empty, b"").expect("write");
    assert!(read_wav_mono(&empty).expect_err("empty").to_string().contains("empty.wav"));
    let zero = dir.path().join("zero.wav");
    write_wav(&zero, &[], 16_000);
    let e = read_wav_segment(&zero, 0, 10).expect_err("no samples");
    assert!(e.to_string().contains("zero.wav") && e.to_string().contains("no samples"), "{e}");
    let e = read_wav_mono(&dir.path().join("missing.wav")).expect_err("missing");
    assert!(matches!(e, DataError::Missing { .. }));
}

/// 16-bit wavs take a bulk read: every value must be what the per-sample path gives (`(sum of the channels' i16
/// values) / 2^15 / channels` in f32, in that order), for whole files, segments and windows, and a file cut short
/// is the same one-line "truncated" error naming it.
#[test]
fn sixteen_bit_wavs_read_exactly() {
    let dir = tempfile::tempdir().expect("tmp");
    let values: Vec<i16> =
        (0..4000i32).map(|i| ((i * 7919) % 65_536 - 32_768) as i16).chain([i16::MIN, i16::MAX, -1, 1]).collect();
    for channels in [1u16, 2, 3] {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let p = dir.path().join(format!("i16_{channels}.wav"));
        let mut w = hound::WavWriter::create(&p, spec).expect("create");
        let frames = values.len() / usize::from(channels);
        for &v in &values[..frames * usize::from(channels)] {
            w.write_sample(v).expect("sample");
        }
        w.finalize().expect("finalize");
        let want: Vec<u32> = values[..frames * usize::from(channels)]
            .chunks_exact(usize::from(channels))
            .map(|f| {
                let acc = f.iter().fold(0.0f32, |a, &v| a + v as f32);
                (acc * (1.0 / 32_768.0f32) * (1.0 / f32::from(channels))).to_bits()
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(&read_wav_mono(&p).expect("whole").samples), want, "{channels} channels");
        assert_eq!(bits(&read_wav_segment(&p, 100, 500).expect("segment").samples), want[100..600], "{channels} ch");
        let win = read_wav_window(&p, 0.05, 0.01).expect("window");
        assert_eq!(bits(&win.samples), want[400..481], "{channels} channels");
        // Cut the file inside its data: the header still promises every frame.
        let bytes = fs::read(&p).expect("read");
        let cut = dir.path().join(format!("cut_{channels}.wav"));
        fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
        let e = read_wav_mono(&cut).expect_err("truncated");
        assert!(e.to_string().contains("truncated") && e.to_string().contains(&format!("cut_{channels}.wav")), "{e}");
    }
}
