//! Files made with the ffmpeg command-line tool in real encodings: audio in sync with video when the audio track
//! starts late or early, rotation applied as players apply it, and frame selection equal to PyAV's under the
//! nearest-frame rule of docs/data.md.

use std::fs;
use std::path::{Path, PathBuf};

use svaclr_data::audio::{decode_container_audio, read_wav_mono};
use svaclr_data::prepare::{DatasetKind, PrepareOptions, prepare};
use svaclr_data::video::{decode_frames_at, probe};
use svaclr_data::{Manifest, ManifestEntry};

use crate::common::*;

const FPS: f64 = 25.0;
/// The flash frame's time and, in player time, the click's.
const EVENT: f64 = 1.0;

/// A 3 s, 64x48, 25 fps black video whose frame at EVENT (of the video's own time) is white, with a 48 kHz track
/// holding one 5 ms click, muxed so that the track starts `late` seconds after the video (negative: before) and the
/// click is where a player plays it: with the flash. An early track is made by delaying the video (`Shift::Video`)
/// or by giving the audio negative timestamps (`Shift::Audio`, which the MP4 muxer turns into an edit list that
/// skips the track's head: players then start it with the video).
fn flash_and_click(dir: &Path, name: &str, late: f64, shift: Shift, acodec: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let video = format!(
        "color=c=black:s=64x48:r={FPS}:d=3,format=yuv420p,drawbox=x=0:y=0:w=64:h=48:color=white:t=fill:enable='eq(n\\,{})'",
        (EVENT * FPS).round()
    );
    let click = EVENT - late;
    let audio = format!("aevalsrc='if(between(t\\,{click}\\,{click}+0.005)\\,0.9\\,0)':s=48000:d=3.5");
    let (video_shift, audio_shift) = match shift {
        Shift::Video => (format!("{}", (-late).max(0.0)), format!("{}", late.max(0.0))),
        Shift::Audio => ("0".to_string(), format!("{late}")),
    };
    let mut args: Vec<&str> = vec!["-itsoffset", &video_shift, "-f", "lavfi", "-i", &video];
    args.extend(["-itsoffset", &audio_shift, "-f", "lavfi", "-i", &audio]);
    args.extend(["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-bf", "2"]);
    args.extend(acodec);
    let out_s = out.to_string_lossy().into_owned();
    args.push(&out_s);
    ffmpeg(&args);
    out
}

#[derive(Clone, Copy)]
enum Shift {
    Video,
    Audio,
}

/// Time of the first sample louder than 0.3.
fn click_time(samples: &[f32], rate: u32) -> f64 {
    let i = samples.iter().position(|s| s.abs() > 0.3).expect("no click in the audio");
    i as f64 / f64::from(rate)
}

/// Time of the first bright frame among frames requested every 1/FPS s.
fn flash_time(video: &Path) -> f64 {
    let times: Vec<f64> = (0..70).map(|k| k as f64 / FPS).collect();
    let d = decode_frames_at(video, &times, 0).expect("decode");
    let bright = |f: &[u8]| f.iter().map(|&v| f64::from(v)).sum::<f64>() / f.len() as f64 > 128.0;
    let k = d.frames.iter().position(|f| bright(f)).expect("no flash frame");
    d.timestamps[k]
}

#[test]
fn late_and_early_audio_tracks_are_aligned_to_the_first_video_frame() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("k");
    let class = root.join("train").join("playing drums");
    fs::create_dir_all(&class).expect("mkdir");
    let aac: &[&str] = &["-c:a", "aac", "-b:a", "96k"];
    let pcm: &[&str] = &["-c:a", "pcm_s16le"];
    // (file, the offset the track has once edit lists are applied): late by 0.5 s and early by 0.3 s, in MP4 (an
    // empty edit delays the audio; an edit list skips the early audio's head, so a player starts both together) and
    // Matroska (stream start times: the offsets stay in the file).
    let cases = [
        (flash_and_click(&class, "late_aac.mp4", 0.5, Shift::Audio, aac), 0.5),
        (flash_and_click(&class, "early_aac.mp4", -0.3, Shift::Audio, aac), 0.0),
        (flash_and_click(&class, "late_pcm.mkv", 0.5, Shift::Audio, pcm), 0.5),
        (flash_and_click(&class, "early_pcm.mkv", -0.3, Shift::Video, pcm), -0.3),
        (flash_and_click(&class, "in_sync_pcm.mkv", 0.0, Shift::Audio, pcm), 0.0),
    ];
    let out = tmp.path().join("out");
    let opts = PrepareOptions {
        audio_rate: Some(16_000),
        progress: false,
        ..PrepareOptions::new(DatasetKind::K400, &root, &out)
    };
    let report = prepare(&opts).expect("prepare");
    assert_eq!(report.indexed, cases.len(), "{:?}", report.unusable);
    let m = Manifest::load(&out.join("manifest.jsonl")).expect("manifest");
    let frame = 1.0 / FPS;
    for (video, offset) in &cases {
        let id = video.file_stem().expect("stem").to_string_lossy().into_owned();
        let e: &ManifestEntry = m.entries.iter().find(|e| e.id == id).expect("entry");
        let flash = flash_time(video);
        assert!((flash - EVENT).abs() < 0.5 * frame, "{id}: flash at {flash}");
        // The wav prepare wrote, and the container's track read directly: click and flash within a frame.
        let wav = read_wav_mono(&m.audio_path(e).expect("wav")).expect("read wav");
        let click = click_time(&wav.samples, wav.sample_rate);
        assert!((click - flash).abs() <= frame, "{id}: click at {click:.3} s in the wav, flash at {flash:.3} s");
        let direct = decode_container_audio(video).expect("container audio");
        let click = click_time(&direct.clip.samples, direct.clip.sample_rate);
        assert!((click - flash).abs() <= frame, "{id}: click at {click:.3} s from the container, flash at {flash:.3}");
        // The video's own duration, not the container's (Matroska: the longest stream's, here the late audio's).
        assert!((e.duration - 3.0).abs() < 0.05, "{id}: duration {} for a 3 s video", e.duration);
        let recorded = e.audio_offset.expect("offset recorded");
        assert!((recorded - offset).abs() < 0.05, "{id}: offset {recorded} recorded, {offset} made");
    }
}

/// A 64x48 blue frame with a red 16x12 block in its top-left corner, stored with rotation metadata
/// (`-metadata:s:v rotate=N`, stream copy: the coded frames stay as they are). FFmpeg 5.1 turns the tag into a display
/// matrix of N degrees counter-clockwise (ffprobe: "rotation of N degrees"), which players show turned that way.
fn rotated(dir: &Path, rotate: u32) -> PathBuf {
    let plain = dir.join("plain.mp4");
    if !plain.exists() {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=64x48:r=25:d=1,drawbox=x=0:y=0:w=16:h=12:color=red:t=fill",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv444p",
            &plain.to_string_lossy(),
        ]);
    }
    let out = dir.join(format!("rot{rotate}.mp4"));
    let meta = format!("rotate={rotate}");
    ffmpeg(&["-i", &plain.to_string_lossy(), "-c", "copy", "-metadata:s:v:0", &meta, &out.to_string_lossy()]);
    out
}

#[test]
fn a_gap_in_the_audio_timestamps_becomes_silence_and_keeps_the_sound_in_sync() {
    // A track whose samples from 1.0 to 1.5 s are gone (dropped with their timestamps kept, as when damaged packets
    // are skipped), with a click at 2.0 s: read by timestamp, the click stays at 2.0 s; read as a plain sample
    // stream it would move to 1.5 s.
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("gap.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=64x48:r=25:d=3",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc='if(between(t\\,2\\,2.005)\\,0.9\\,0.01)':s=16000:d=3",
        "-af",
        "aselect='not(between(t\\,1\\,1.5))'",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
        &out.to_string_lossy(),
    ]);
    let a = decode_container_audio(&out).expect("audio");
    let click = click_time(&a.clip.samples, a.clip.sample_rate);
    assert!((click - 2.0).abs() < 0.01, "click at {click:.3} s");
    assert!((a.clip.duration() - 3.0).abs() < 0.05, "duration {}", a.clip.duration());
    // The gap itself is silence (the track elsewhere holds a quiet 0.01 level).
    let at = |t: f64| a.clip.samples[(t * f64::from(a.clip.sample_rate)) as usize];
    assert_eq!(at(1.25), 0.0);
    assert!(at(0.5) > 0.005 && at(1.75) > 0.005);
}

#[test]
fn rotation_metadata_is_applied_as_players_apply_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    // (tag, clockwise turn players apply, displayed size, a pixel inside the red block once turned). A quarter turn
    // counter-clockwise takes the top-left corner to the bottom-left, clockwise to the top-right.
    let cases = [
        (0, 0, (64, 48), (4, 4)),
        (90, 270, (48, 64), (4, 60)),
        (180, 180, (64, 48), (60, 44)),
        (270, 90, (48, 64), (44, 4)),
    ];
    for (rotate, clockwise, (w, h), red_at) in cases {
        let v = rotated(tmp.path(), rotate);
        let info = probe(&v).expect("probe");
        assert_eq!((info.width, info.height, info.rotation), (w, h, clockwise), "rotate={rotate}");
        let d = decode_frames_at(&v, &[0.2], 0).expect("decode");
        assert_eq!((d.width, d.height), (w as usize, h as usize), "rotate={rotate}");
        let f = &d.frames[0];
        let px = |x: usize, y: usize| &f[(y * d.width + x) * 3..(y * d.width + x) * 3 + 3];
        let (x, y) = red_at;
        assert!(px(x, y)[0] > 180 && px(x, y)[2] < 80, "rotate={rotate}: {:?} at {red_at:?}", px(x, y));
        // The whole frame equals what ffmpeg's own player path shows (its autorotation).
        let theirs = ffmpeg_first_frame(&v);
        assert_eq!(theirs.len(), f.len(), "rotate={rotate}");
        let mad =
            f.iter().zip(&theirs).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).sum::<f64>() / f.len() as f64;
        assert!(mad < 3.0, "rotate={rotate}: mean abs difference {mad} to ffmpeg's frame");
        // Scaled decoding keeps the displayed orientation: short side 24.
        let s = decode_frames_at(&v, &[0.2], 24).expect("scaled");
        assert_eq!((s.width, s.height), if w < h { (24, 32) } else { (32, 24) }, "rotate={rotate}");
    }
}

/// Our frames at `times` against PyAV's under the same rule: equal chosen times, equal pictures.
fn check_against_pyav(py: &Path, video: &Path, times: &[f64]) {
    let bin = video.with_extension("pyav.bin");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/reference/pyav_frames.py");
    let list = times.iter().map(|t| format!("{t}")).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new(py)
        .arg(&script)
        .arg(video)
        .arg(&bin)
        .args(["--times", &list])
        .output()
        .expect("run pyav_frames.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let (w, h) = (meta["width"].as_u64().expect("w") as usize, meta["height"].as_u64().expect("h") as usize);
    let theirs = fs::read(&bin).expect("frames");
    let ours = decode_frames_at(video, times, 0).expect("decode");
    assert_eq!((ours.width, ours.height), (w, h), "{}", video.display());
    let name = video.file_name().expect("name").to_string_lossy();
    for (k, t) in times.iter().enumerate() {
        let their_t = meta["times"][k].as_f64().expect("time");
        assert!(
            (ours.timestamps[k] - their_t).abs() < 1e-6,
            "{name}: at {t} s we took the frame at {} s, PyAV the one at {their_t} s",
            ours.timestamps[k]
        );
        // Asked alone, a time is served by a seek (times past SEEK_MIN_SECONDS): the same frame.
        let alone = decode_frames_at(video, &[*t], 0).expect("decode one time");
        assert!(
            (alone.timestamps[0] - their_t).abs() < 1e-6,
            "{name}: at {t} s alone (with a seek) we took the frame at {} s, PyAV the one at {their_t} s",
            alone.timestamps[0]
        );
        let a = &ours.frames[k];
        let b = &theirs[k * w * h * 3..(k + 1) * w * h * 3];
        let mad = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum::<f64>() / a.len() as f64;
        assert!(mad < 3.0, "{name}: frame for {t} s differs from PyAV's by {mad} on average");
    }
}

#[test]
fn frames_taken_at_given_times_equal_pyav_frames() {
    let Some(py) = python_with_av() else {
        eprintln!("skipped: no python with PyAV (set SVACLR_PYTHON, or run `cargo xtask test`)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let src = |rate: &str| format!("testsrc2=s=96x64:r={rate}:d=3");
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let (s2997, s30, s25, s24, s15) = (src("30000/1001"), src("30"), src("25"), src("24"), src("15"));
    let files = [
        // H.264 with B-frames at 29.97 fps in MP4.
        (
            "h264_bframes.mp4",
            vec!["-f", "lavfi", "-i", &s2997, "-c:v", "libx264", "-bf", "3", "-g", "12", "-pix_fmt", "yuv420p"],
        ),
        // Variable frame rate: an irregular subset of 30 fps frames, timestamps kept (Matroska, ms time base).
        (
            "vfr.mkv",
            vec![
                "-f",
                "lavfi",
                "-i",
                &s30,
                "-vf",
                "select='not(mod(n\\,3))+eq(mod(n\\,7)\\,1)'",
                "-fps_mode",
                "vfr",
                "-c:v",
                "libx264",
                "-bf",
                "2",
                "-pix_fmt",
                "yuv420p",
            ],
        ),
        // VP9 in WebM.
        (
            "vp9.webm",
            vec![
                "-f",
                "lavfi",
                "-i",
                &s25,
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "300k",
            ],
        ),
        // MPEG-4 part 2 in AVI.
        ("mpeg4.avi", vec!["-f", "lavfi", "-i", &s24, "-c:v", "mpeg4", "-q:v", "4"]),
        // Motion JPEG.
        ("mjpeg.avi", vec!["-f", "lavfi", "-i", &s15, "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"]),
        // H.264 and MP2 in MPEG-TS (named .mpg, as downloads often are): timestamps start at 1.4 s, one keyframe, and
        // a seek lands where nothing decodes (the decoder must start again from the top).
        (
            "h264_mp2_ts.mpg",
            vec![
                "-f",
                "lavfi",
                "-i",
                &s25,
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:r=48000:d=3",
                "-c:v",
                "libx264",
                "-g",
                "250",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "mp2",
                "-f",
                "mpegts",
            ],
        ),
    ];
    for (name, mut args) in files {
        let out = p(name);
        args.push(&out);
        ffmpeg(&args);
        let info = probe(&d.join(name)).expect("probe");
        // Exact frame times, midpoints, times just either side of them, a pseudo-random spread; out of order.
        let fr = 1.0 / info.fps;
        let mut times = vec![0.0, 0.5 * fr, 0.49 * fr, 0.51 * fr, 1.0, 1.0 + 0.5 * fr, 2.0 * fr, 2.5, 0.3, 1.5];
        times.extend((0..12).map(|k| ((k * 7919) % 1000) as f64 / 1000.0 * (info.duration - 0.2)));
        check_against_pyav(&py, &d.join(name), &times);
    }
}
