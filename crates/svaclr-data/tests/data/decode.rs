//! Video decoding: frame-exact selection at several rates and speeds, resizing, seeking, probing, bad files.

use std::fs;

use svaclr_data::DataError;
use svaclr_data::sampler::video_frame_times;
use svaclr_data::video::{check_decodable, decode_frames_at, probe};

use crate::common::*;

fn indices(path: &std::path::Path, times: &[f64], short_side: usize) -> Vec<usize> {
    let d = decode_frames_at(path, times, short_side).expect("decode");
    assert_eq!(d.frames.len(), times.len());
    d.frames.iter().map(|f| read_index(f, d.width, d.height)).collect()
}

#[test]
fn pattern_survives_encoding_and_every_frame_decodes() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pattern_video(dir.path(), "v.mkv", 40, 25.0);
    let times: Vec<f64> = (0..40).map(|i| i as f64 / 25.0).collect();
    assert_eq!(indices(&p, &times, 0), (0..40).collect::<Vec<_>>());
    // MP4 written by video-rs: the last frame is not trimmed (edit list ignored).
    let p4 = pattern_video(dir.path(), "v.mp4", 40, 25.0);
    assert_eq!(indices(&p4, &[39.0 / 25.0], 0), vec![39]);
}

#[test]
fn selection_at_other_rates_and_speeds() {
    let dir = tempfile::tempdir().expect("tmp");
    let native = 25.0;
    let p = pattern_video(dir.path(), "v.mkv", 150, native);
    let duration = 149.0 / native;
    // Base fps different from the native rate: nearest-timestamp selection. Starts are off the half-frame
    // grid so that no request is a tie.
    for (base_fps, speed, start) in [
        (25.0, 1.0, 0.31),
        (25.0, 2.0, 0.53),
        (25.0, 3.0, 1.07),
        (30.0, 1.0, 0.11),
        (12.5, 2.0, 0.93),
        (10.0, 1.5, 0.262),
    ] {
        let times = video_frame_times(start, speed, 8, base_fps, duration);
        let want: Vec<usize> = times.iter().map(|t| (t * native).round() as usize).collect();
        assert_eq!(indices(&p, &times, 0), want, "base {base_fps} fps, speed {speed}, start {start}");
    }
    // Stride tau at the native rate is every tau-th source frame.
    let times = video_frame_times(2.0, 4.0, 6, native, duration);
    assert_eq!(indices(&p, &times, 0), vec![50, 54, 58, 62, 66, 70]);
}

#[test]
fn seeks_into_long_videos_and_resizes() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pattern_video(dir.path(), "long.mkv", 250, 25.0);
    // Unordered, repeated, far into the file (the decoder seeks to the keyframe before 7.0 s).
    assert_eq!(indices(&p, &[8.0, 7.0, 7.0, 9.96], 0), vec![200, 175, 175, 249]);
    // Only what the clip needs is decoded: from the keyframe before 7.0 s (one every 12 frames) to 7.4 s.
    let d = decode_frames_at(&p, &[7.0, 7.4], 0).expect("decode");
    assert!(d.decoded_frames <= 12 + 11, "decoded {} frames for a 0.4 s window", d.decoded_frames);
    let d = decode_frames_at(&p, &[1.0], 32).expect("decode");
    assert_eq!((d.width, d.height), (48, 32));
    assert_eq!(read_index(&d.frames[0], d.width, d.height), 25);
    // Times past the end select the last frame when within tolerance.
    assert_eq!(indices(&p, &[10.0], 0), vec![249]);
}

#[test]
fn probe_reads_header() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pattern_video(dir.path(), "v.mkv", 50, 25.0);
    let info = probe(&p).expect("probe");
    assert_eq!((info.width, info.height), (W as u32, H as u32));
    assert!((info.fps - 25.0).abs() < 1e-6, "{info:?}");
    assert!((info.duration - 2.0).abs() <= 0.05, "{info:?}");
    assert!(!info.has_audio);
    let tone = tone(440.0, 16_000, 2.0, 0.5);
    let av = av_file(dir.path(), "av.mkv", 50, 25.0, Some((&tone, 16_000)));
    let info = probe(&av).expect("probe av");
    assert!(info.has_audio && info.audio_rate == Some(16_000) && info.audio_channels == Some(1), "{info:?}");
    check_decodable(&av, info.duration).expect("decodable");
}

#[test]
fn bad_videos_give_one_line_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    // Missing.
    let missing = dir.path().join("nope.mkv");
    let e = decode_frames_at(&missing, &[0.0], 0).expect_err("missing");
    assert!(matches!(e, DataError::Missing { .. }) && e.to_string().contains("nope.mkv"), "{e}");
    assert!(matches!(probe(&missing), Err(DataError::Missing { .. })));
    // Zero-length file.
    let empty = dir.path().join("empty.mkv");
    fs::write(&empty, b"").expect("write");
    let e = decode_frames_at(&empty, &[0.0], 0).expect_err("empty");
    assert!(e.to_string().contains("empty.mkv") && !e.to_string().contains('\n'), "{e}");
    assert!(probe(&empty).is_err());
    // Not a video at all.
    let junk = dir.path().join("junk.mp4");
    fs::write(&junk, vec![0x5au8; 10_000]).expect("write");
    let e = probe(&junk).expect_err("junk");
    assert!(e.to_string().contains("junk.mp4"), "{e}");
    // Truncated: the header promises 8 s but the data stops early.
    let full = pattern_video(dir.path(), "full.mkv", 200, 25.0);
    let bytes = fs::read(&full).expect("read");
    let cut = dir.path().join("cut.mkv");
    fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    let info = probe(&cut).expect("header still readable");
    let e = check_decodable(&cut, info.duration).expect_err("truncated");
    assert!(e.to_string().contains("cut.mkv") && e.to_string().contains("truncated"), "{e}");
    // Garbage in the middle of the stream: decoding must not panic (it may fail or conceal).
    let mut corrupt = bytes.clone();
    let n = corrupt.len();
    for b in &mut corrupt[n / 3..n / 3 + 2000] {
        *b = 0xff;
    }
    let bad = dir.path().join("corrupt.mkv");
    fs::write(&bad, &corrupt).expect("write");
    let _ = decode_frames_at(&bad, &[0.0, 3.0, 7.9], 0);
}
