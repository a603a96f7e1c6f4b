//! Video decoding with video-rs (FFmpeg): probing, and frame-exact selection of the frames a clip needs.
//! video-rs opens and demuxes (its `Reader`); packets go to FFmpeg's decoder through the re-exported
//! `video_rs::ffmpeg`, so that only the frames a clip uses are converted to RGB and scaled.
//!
//! # Decode strategy
//! A clip asks for frames at explicit times (seconds from the start of the video stream). [`decode_frames_at`]
//! opens the file once, seeks to the last keyframe at or before the earliest requested time (no seek when that
//! time is within [`SEEK_MIN_SECONDS`] of the start), decodes forward, and stops as soon as every requested time
//! has its frame. A long video is never decoded whole for one clip. Each requested time gets the decoded frame
//! whose timestamp is nearest (ties go to the earlier frame); this resamples any native frame rate to the
//! requested one. Frames are scaled by FFmpeg (area filter) so that the short side has the requested length.
//! The rule lives once, in `select.rs`; [`VideoFrames`] (every frame of a file, decoded once for the
//! decoded-frame cache) chooses with it too, so a cached clip gets the same bytes as [`decode_frames_at`] gives.
//!
//! Rotation metadata (a display matrix, as phones write) is applied as players apply it: frames come out turned
//! by 90, 180 or 270 degrees clockwise, with width and height swapped for a quarter turn; [`probe`] reports
//! the displayed size. Other angles and mirrorings are not applied.
//!
//! MP4/MOV edit lists are ignored (`ignore_editlist=1`, see docs/build-notes: files written by video-rs would
//! otherwise lose their last frame); times are measured from the stream's `start_time`, so a composition offset
//! does not shift the timeline.

use std::path::Path;
use std::sync::OnceLock;

use video_rs::ffmpeg;

use crate::error::DataError;

mod decode;
mod select;

pub use decode::{DecodedFrames, VideoFrames, check_decodable, decode_frames_at};

/// Requested times closer than this to the start of the stream are decoded from the start, without a seek.
pub const SEEK_MIN_SECONDS: f64 = 0.5;
/// A requested time more than this many seconds past the last decodable frame means a truncated file.
pub const TRUNCATION_TOLERANCE_SECONDS: f64 = 0.25;
/// FFmpeg's internal time base (microseconds), used by container-level seeks and durations.
const AV_TIME_BASE: f64 = 1_000_000.0;

/// Initialise FFmpeg once per process and route its log through `tracing` (silent unless a subscriber is set),
/// so corrupt files do not spray warnings over progress bars.
pub fn init_ffmpeg() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        // An init failure surfaces later as an open error naming the file.
        let _ = video_rs::init();
    });
}

/// What [`probe`] learns from a container's header.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    /// Duration of the video stream in seconds (the container's duration when the stream has none).
    pub duration: f64,
    /// Native frame rate (average rate when known).
    pub fps: f64,
    /// Frame width in pixels, as displayed (after rotation).
    pub width: u32,
    /// Frame height in pixels, as displayed (after rotation).
    pub height: u32,
    /// Clockwise rotation players apply to the coded frames (0, 90, 180 or 270).
    pub rotation: u32,
    /// Whether the container has an audio stream.
    pub has_audio: bool,
    /// Sample rate of the best audio stream.
    pub audio_rate: Option<u32>,
    /// Channel count of the best audio stream.
    pub audio_channels: Option<u16>,
}

pub(crate) fn rational_to_f64(r: ffmpeg::Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
}

pub(crate) fn open_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::VideoOpen { path: path.to_path_buf(), reason: reason.to_string() }
}

pub(crate) fn decode_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::VideoDecode { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Read duration, frame rate, size and audio presence from a container's header (no frame is decoded).
pub fn probe(path: &Path) -> Result<VideoInfo, DataError> {
    init_ffmpeg();
    if !path.is_file() {
        return Err(DataError::Missing { path: path.to_path_buf() });
    }
    let ictx = ffmpeg::format::input(path).map_err(|e| open_err(path, e))?;
    let vs = ictx.streams().best(ffmpeg::media::Type::Video).ok_or_else(|| open_err(path, "no video stream"))?;
    let tb = f64::from(vs.time_base());
    let stream_duration =
        (vs.duration() > 0 && vs.duration() != ffmpeg::ffi::AV_NOPTS_VALUE).then(|| vs.duration() as f64 * tb);
    // Durations are counted from the video's first frame (its stream's start time), as frame times are.
    let video_start = (vs.start_time() != ffmpeg::ffi::AV_NOPTS_VALUE).then(|| vs.start_time() as f64 * tb);
    // The container's start is its earliest stream's (as FFmpeg computes the format's start time).
    let container_start = ictx
        .streams()
        .filter(|st| st.start_time() != ffmpeg::ffi::AV_NOPTS_VALUE)
        .map(|st| st.start_time() as f64 * f64::from(st.time_base()))
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
        .unwrap_or(0.0);
    let container_duration = (ictx.duration() > 0)
        .then(|| container_start + ictx.duration() as f64 / AV_TIME_BASE - video_start.unwrap_or(container_start));
    // Matroska and WebM keep no per-stream duration in the header but tag each track with its end time
    // (`DURATION`); the container's duration is the longest stream's, which for a video shorter than its audio is
    // not the video's.
    let tagged_duration =
        vs.metadata().get("DURATION").and_then(parse_clock).map(|end| end - video_start.unwrap_or(0.0));
    let duration = stream_duration
        .or(tagged_duration)
        .or(container_duration)
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| open_err(path, "unknown or zero duration"))?;
    // The average rate, unless the container's base rate agrees with it within 5 % (then the base rate, which
    // is exact for constant-rate files whose average is skewed by a short last frame).
    let avg = rational_to_f64(vs.avg_frame_rate()).filter(|f| f.is_finite() && *f > 0.0);
    let base = rational_to_f64(vs.rate()).filter(|f| f.is_finite() && *f > 0.0);
    let fps = match (avg, base) {
        (Some(a), Some(b)) if (a - b).abs() <= 0.05 * a => b,
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return Err(open_err(path, "unknown frame rate")),
    };
    let vdec = ffmpeg::codec::context::Context::from_parameters(vs.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| open_err(path, format!("video codec: {e}")))?;
    let (width, height) = (vdec.width(), vdec.height());
    if width == 0 || height == 0 {
        return Err(open_err(path, "video stream has no frame size"));
    }
    let rotation = display_rotation(&vs);
    let (width, height) = if rotation % 180 == 90 { (height, width) } else { (width, height) };
    let (has_audio, audio_rate, audio_channels) = match ictx.streams().best(ffmpeg::media::Type::Audio) {
        None => (false, None, None),
        Some(a) => {
            let adec =
                ffmpeg::codec::context::Context::from_parameters(a.parameters()).and_then(|c| c.decoder().audio());
            match adec {
                Ok(d) => (true, Some(d.rate()), Some(d.channels())),
                Err(_) => (true, None, None),
            }
        }
    };
    Ok(VideoInfo { duration, fps, width, height, rotation, has_audio, audio_rate, audio_channels })
}

/// The clockwise rotation (0, 90, 180 or 270 degrees) players apply to a stream's frames, read from its display
/// matrix as FFmpeg's command-line tool reads it (`-round(av_display_rotation_get)`, taken modulo 360). Angles
/// more than one degree from a quarter turn, and streams without a matrix, give 0.
pub fn display_rotation(stream: &ffmpeg::format::stream::Stream) -> u32 {
    let Some(side) = stream.side_data().find(|d| d.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix)
    else {
        return 0;
    };
    let bytes = side.data();
    if bytes.len() < 36 {
        return 0;
    }
    let m: Vec<f64> = bytes[..36]
        .chunks_exact(4)
        .map(|b| f64::from(i32::from_ne_bytes([b[0], b[1], b[2], b[3]])) / 65_536.0)
        .collect();
    rotation_of_matrix(&m)
}

/// Clockwise quarter turn of a 3x3 display matrix (row-major, 16.16 entries already divided by 2^16).
fn rotation_of_matrix(m: &[f64]) -> u32 {
    let (s0, s1) = (m[0].hypot(m[3]), m[1].hypot(m[4]));
    if s0 == 0.0 || s1 == 0.0 {
        return 0;
    }
    // av_display_rotation_get gives the counter-clockwise angle -atan2(b / s1, a / s0); players turn the frame
    // clockwise by minus its rounded value.
    let ccw = -(m[1] / s1).atan2(m[0] / s0).to_degrees();
    let cw = (-ccw.round()).rem_euclid(360.0);
    [0u32, 90, 180, 270, 360].into_iter().find(|q| (cw - f64::from(*q)).abs() <= 1.0).map_or(0, |q| q % 360)
}

/// Turn an RGB24 frame (`[height, width, 3]`) clockwise by `rotation` degrees (0, 90, 180 or 270); returns the
/// frame and its new `(width, height)`.
pub fn rotate_rgb(src: &[u8], width: usize, height: usize, rotation: u32) -> (Vec<u8>, usize, usize) {
    let (w, h) = (width, height);
    let px = |x: usize, y: usize| &src[(y * w + x) * 3..(y * w + x) * 3 + 3];
    let mut out = Vec::with_capacity(src.len());
    match rotation {
        90 => {
            for y in 0..w {
                for x in 0..h {
                    out.extend_from_slice(px(y, h - 1 - x));
                }
            }
            (out, h, w)
        }
        180 => {
            for y in 0..h {
                for x in 0..w {
                    out.extend_from_slice(px(w - 1 - x, h - 1 - y));
                }
            }
            (out, w, h)
        }
        270 => {
            for y in 0..w {
                for x in 0..h {
                    out.extend_from_slice(px(w - 1 - y, x));
                }
            }
            (out, h, w)
        }
        _ => (src.to_vec(), w, h),
    }
}

/// Seconds of an `HH:MM:SS.fraction` clock (Matroska's `DURATION` tag).
fn parse_clock(s: &str) -> Option<f64> {
    let mut parts = s.trim().split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let v = h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + sec.parse::<f64>().ok()?;
    (v.is_finite() && v > 0.0).then_some(v)
}

/// Output frame size `(width, height)` when the short side is scaled to `short_side` (aspect kept, long side
/// rounded). `short_side == 0` keeps the native size.
pub fn output_size(width: u32, height: u32, short_side: usize) -> (u32, u32) {
    if short_side == 0 || width == 0 || height == 0 {
        return (width, height);
    }
    let s = short_side as f64;
    if width <= height {
        (short_side as u32, ((height as f64) * s / width as f64).round().max(1.0) as u32)
    } else {
        (((width as f64) * s / height as f64).round().max(1.0) as u32, short_side as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_keeps_aspect() {
        assert_eq!(output_size(320, 240, 128), (171, 128));
        assert_eq!(output_size(240, 320, 128), (128, 171));
        assert_eq!(output_size(320, 240, 0), (320, 240));
        assert_eq!(output_size(100, 100, 64), (64, 64));
    }

    #[test]
    fn matroska_duration_tags_parse() {
        assert_eq!(parse_clock("00:00:03.000000000"), Some(3.0));
        assert_eq!(parse_clock("01:02:03.5"), Some(3723.5));
        assert_eq!(parse_clock("3.0"), None);
        assert_eq!(parse_clock("00:00:00.000"), None);
        assert_eq!(parse_clock("aa:00:01"), None);
    }

    #[test]
    fn rotations_turn_clockwise() {
        // 3x2 frame, pixel value = its index.
        let src: Vec<u8> = (0..6u8).flat_map(|i| [i, i, i]).collect();
        let grey = |v: &[u8]| v.chunks(3).map(|p| p[0]).collect::<Vec<_>>();
        // 0 1 2      clockwise:  3 0
        // 3 4 5                  4 1
        //                        5 2
        let (r, w, h) = rotate_rgb(&src, 3, 2, 90);
        assert_eq!((grey(&r), w, h), (vec![3, 0, 4, 1, 5, 2], 2, 3));
        let (r, w, h) = rotate_rgb(&src, 3, 2, 180);
        assert_eq!((grey(&r), w, h), (vec![5, 4, 3, 2, 1, 0], 3, 2));
        let (r, w, h) = rotate_rgb(&src, 3, 2, 270);
        assert_eq!((grey(&r), w, h), (vec![2, 5, 1, 4, 0, 3], 2, 3));
    }

    #[test]
    fn display_matrices_give_player_rotations() {
        // The matrices FFmpeg's av_display_rotation_set(ccw) writes: [cos, -sin, 0; sin, cos, 0; 0, 0, 1].
        let set = |ccw: f64| {
            let (s, c) = ccw.to_radians().sin_cos();
            vec![c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0]
        };
        // `ffmpeg -display_rotation 90` (counter-clockwise) is shown turned 270 degrees clockwise.
        assert_eq!(rotation_of_matrix(&set(90.0)), 270);
        assert_eq!(rotation_of_matrix(&set(-90.0)), 90);
        assert_eq!(rotation_of_matrix(&set(180.0)), 180);
        assert_eq!(rotation_of_matrix(&set(0.0)), 0);
        assert_eq!(rotation_of_matrix(&set(45.0)), 0);
    }
}
