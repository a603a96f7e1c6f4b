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
//!
//! Rotation metadata (a display matrix, as phones write) is applied as players apply it: frames come out turned
//! by 90, 180 or 270 degrees clockwise, with width and height swapped for a quarter turn; [`probe`] reports
//! the displayed size. Other angles and mirrorings are not applied.
//!
//! MP4/MOV edit lists are ignored (`ignore_editlist=1`, see docs/build-notes: files written by video-rs would
//! otherwise lose their last frame); times are measured from the stream's `start_time`, so a composition offset
//! does not shift the timeline.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use video_rs::ffmpeg;
use video_rs::{Options, ReaderBuilder};

use crate::error::DataError;

/// Requested times closer than this to the start of the stream are decoded from the start, without a seek.
pub const SEEK_MIN_SECONDS: f64 = 0.5;
/// A requested time more than this many seconds past the last decodable frame means a truncated file.
pub const TRUNCATION_TOLERANCE_SECONDS: f64 = 0.25;
/// Consecutive packets the decoder may reject before the file counts as corrupt.
const MAX_CONSECUTIVE_DECODE_ERRORS: usize = 32;
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

fn rational_to_f64(r: ffmpeg::Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
}

fn open_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::VideoOpen { path: path.to_path_buf(), reason: reason.to_string() }
}

fn decode_err(path: &Path, reason: impl ToString) -> DataError {
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

/// Frames selected for a list of requested times.
#[derive(Clone, Debug)]
pub struct DecodedFrames {
    /// Frame width after scaling.
    pub width: usize,
    /// Frame height after scaling.
    pub height: usize,
    /// One RGB24 frame (`[height, width, 3]` row-major) per requested time, in request order. Several requests
    /// may share a frame.
    pub frames: Vec<Arc<Vec<u8>>>,
    /// The timestamp (seconds from stream start) of the frame chosen for each request.
    pub timestamps: Vec<f64>,
    /// Frames the decoder produced to serve the request (a measure of wasted work: seeking keeps it small).
    pub decoded_frames: usize,
}

impl DecodedFrames {
    /// The frames as slices, in request order.
    pub fn slices(&self) -> Vec<&[u8]> {
        self.frames.iter().map(|f| f.as_slice()).collect()
    }
}

/// Decode the frames nearest to each requested time (seconds from the start of the video stream), scaled so
/// that the short side is `short_side` pixels (`0` keeps the native size). Times may come in any order and
/// may repeat; negative times select the first frame.
///
/// Errors name the file: missing, not a video, no frame decodable, or a requested time more than
/// [`TRUNCATION_TOLERANCE_SECONDS`] past the last decodable frame (a truncated file).
pub fn decode_frames_at(path: &Path, times: &[f64], short_side: usize) -> Result<DecodedFrames, DataError> {
    init_ffmpeg();
    if !path.is_file() {
        return Err(DataError::Missing { path: path.to_path_buf() });
    }
    if times.iter().any(|t| !t.is_finite()) {
        return Err(decode_err(path, "requested frame time is not finite"));
    }
    match decode_pass(path, times, short_side, true) {
        Err(PassError::SeekFailed) => match decode_pass(path, times, short_side, false) {
            Ok(d) => Ok(d),
            Err(PassError::Data(e)) => Err(e),
            Err(PassError::SeekFailed) => Err(decode_err(path, "seek failed")),
        },
        Err(PassError::Data(e)) => Err(e),
        Ok(d) => Ok(d),
    }
}

enum PassError {
    SeekFailed,
    Data(DataError),
}

impl From<DataError> for PassError {
    fn from(e: DataError) -> Self {
        PassError::Data(e)
    }
}

/// A demuxer (video-rs `Reader`) feeding FFmpeg's decoder for the best video stream.
struct Stream {
    reader: video_rs::Reader,
    decoder: ffmpeg::decoder::Video,
    index: usize,
    draining: bool,
    consecutive_errors: usize,
}

impl Stream {
    /// Next decoded frame in presentation order (native size and pixel format), `None` at the end.
    fn next_frame(&mut self, path: &Path) -> Result<Option<ffmpeg::frame::Video>, DataError> {
        loop {
            let mut frame = ffmpeg::frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.consecutive_errors = 0;
                    return Ok(Some(frame));
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => {
                    if self.draining {
                        return Ok(None);
                    }
                    self.bad_packet(path, &e)?;
                }
            }
            if self.draining {
                return Ok(None);
            }
            match self.reader.read(self.index) {
                Ok(packet) => {
                    if let Err(e) = self.decoder.send_packet(&packet.into_inner()) {
                        self.bad_packet(path, &e)?;
                    }
                }
                Err(video_rs::Error::ReadExhausted) => {
                    self.draining = true;
                    self.decoder.send_eof().map_err(|e| decode_err(path, e))?;
                }
                Err(e) => return Err(decode_err(path, e)),
            }
        }
    }

    fn bad_packet(&mut self, path: &Path, e: &ffmpeg::Error) -> Result<(), DataError> {
        self.consecutive_errors += 1;
        if self.consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS {
            return Err(decode_err(path, format!("corrupt stream: {e}")));
        }
        Ok(())
    }
}

struct Opened {
    stream: Stream,
    /// Native frame size.
    size: (u32, u32),
    native_fps: f64,
    /// Stream start time in seconds (subtracted from timestamps).
    origin: f64,
    /// Seconds per timestamp unit.
    tb: f64,
    /// Clockwise rotation to apply to every frame.
    rotation: u32,
}

fn open_stream(path: &Path) -> Result<Opened, DataError> {
    let options: Options = HashMap::from([("ignore_editlist".to_string(), "1".to_string())]).into();
    let reader = ReaderBuilder::new(path).with_options(&options).build().map_err(|e| open_err(path, e))?;
    let index = reader.best_video_stream_index().map_err(|e| open_err(path, e))?;
    let st = reader.input.stream(index).ok_or_else(|| open_err(path, "video stream vanished"))?;
    let stream_tb = st.time_base();
    let tb = f64::from(stream_tb);
    let origin = if st.start_time() != ffmpeg::ffi::AV_NOPTS_VALUE { st.start_time() as f64 * tb } else { 0.0 };
    let native_fps = rational_to_f64(st.avg_frame_rate()).or_else(|| rational_to_f64(st.rate())).unwrap_or(0.0);
    let rotation = display_rotation(&st);
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(st.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| open_err(path, format!("video codec: {e}")))?;
    // Frames keep the packets' timestamps, in the stream's time base.
    decoder.set_packet_time_base(stream_tb);
    let size = (decoder.width(), decoder.height());
    if size.0 == 0 || size.1 == 0 || decoder.format() == ffmpeg::format::Pixel::None {
        return Err(open_err(path, "video stream has no frame size or pixel format"));
    }
    Ok(Opened {
        stream: Stream { reader, decoder, index, draining: false, consecutive_errors: 0 },
        size,
        native_fps,
        origin,
        tb,
        rotation,
    })
}

/// A decoded frame that may be chosen for a request; converted to RGB only if it is.
struct Candidate {
    t: f64,
    frame: ffmpeg::frame::Video,
    rgb: Option<Arc<Vec<u8>>>,
}

/// Scales decoded frames to RGB24 at the output size (FFmpeg's area filter), created for the first frame, then
/// turns them by the stream's rotation.
struct Converter {
    out: (u32, u32),
    rotation: u32,
    scaler: Option<(ffmpeg::software::scaling::Context, ffmpeg::format::Pixel, u32, u32)>,
}

impl Converter {
    fn rgb(&mut self, c: &mut Candidate, path: &Path) -> Result<Arc<Vec<u8>>, DataError> {
        if let Some(r) = &c.rgb {
            return Ok(Arc::clone(r));
        }
        let f = &c.frame;
        let key = (f.format(), f.width(), f.height());
        if self.scaler.as_ref().is_none_or(|(_, fmt, w, h)| (*fmt, *w, *h) != key) {
            let ctx = ffmpeg::software::scaling::Context::get(
                key.0,
                key.1,
                key.2,
                ffmpeg::format::Pixel::RGB24,
                self.out.0,
                self.out.1,
                ffmpeg::software::scaling::Flags::AREA,
            )
            .map_err(|e| decode_err(path, format!("scaler: {e}")))?;
            self.scaler = Some((ctx, key.0, key.1, key.2));
        }
        let mut rgb = ffmpeg::frame::Video::empty();
        if let Some((ctx, ..)) = self.scaler.as_mut() {
            ctx.run(f, &mut rgb).map_err(|e| decode_err(path, format!("scaler: {e}")))?;
        }
        let (w, h) = (self.out.0 as usize, self.out.1 as usize);
        let upright = frame_to_rgb(&rgb, w, h);
        let data = Arc::new(if self.rotation == 0 { upright } else { rotate_rgb(&upright, w, h, self.rotation).0 });
        c.rgb = Some(Arc::clone(&data));
        Ok(data)
    }
}

fn frame_to_rgb(frame: &ffmpeg::frame::Video, width: usize, height: usize) -> Vec<u8> {
    let stride = frame.stride(0);
    let data = frame.data(0);
    let row = width * 3;
    let mut out = Vec::with_capacity(row * height);
    for y in 0..height {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    out
}

fn decode_pass(path: &Path, times: &[f64], short_side: usize, allow_seek: bool) -> Result<DecodedFrames, PassError> {
    let Opened { mut stream, size, native_fps, origin, tb, rotation } = open_stream(path)?;
    let (ow, oh) = output_size(size.0, size.1, short_side);
    let (width, height) = if rotation % 180 == 90 { (oh as usize, ow as usize) } else { (ow as usize, oh as usize) };
    let mut conv = Converter { out: (ow, oh), rotation, scaler: None };
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| times[i]).collect();
    let mut chosen: Vec<Option<(f64, Arc<Vec<u8>>)>> = vec![None; times.len()];
    if sorted.is_empty() {
        return Ok(DecodedFrames { width, height, frames: Vec::new(), timestamps: Vec::new(), decoded_frames: 0 });
    }
    let t_first = sorted[0];
    let seeked = allow_seek && t_first > SEEK_MIN_SECONDS;
    if seeked {
        let target = ((t_first + origin) * AV_TIME_BASE) as i64;
        // Keyframe at or before the target: max_ts = target.
        if stream.reader.input.seek(target, ..target + 1).is_err() {
            return Err(PassError::SeekFailed);
        }
    }
    let frame_period = if native_fps > 0.0 { 1.0 / native_fps } else { 0.04 };
    let mut prev: Option<Candidate> = None;
    let mut p = 0;
    let mut decoded_frames = 0;
    while p < sorted.len() {
        let Some(frame) = stream.next_frame(path)? else { break };
        decoded_frames += 1;
        let t = match frame.timestamp().or_else(|| frame.pts()) {
            Some(ts) => ts as f64 * tb - origin,
            None => prev.as_ref().map_or(0.0, |c| c.t + frame_period),
        };
        // A seek must land at or before the first requested time, or an earlier frame might have been the nearest
        // (some containers, MPEG-TS among them, seek imprecisely): decode from the start instead.
        if seeked && prev.is_none() && t > t_first {
            return Err(PassError::SeekFailed);
        }
        let mut current = Candidate { t, frame, rgb: None };
        while p < sorted.len() && sorted[p] < t {
            let req = sorted[p];
            let pick = match prev.as_mut() {
                Some(c) if req - c.t <= t - req => c,
                _ => &mut current,
            };
            chosen[order[p]] = Some((pick.t, conv.rgb(pick, path)?));
            p += 1;
        }
        prev = Some(current);
    }
    let Some(mut last) = prev else {
        if seeked {
            return Err(PassError::SeekFailed);
        }
        return Err(decode_err(path, "no frame could be decoded").into());
    };
    if p < sorted.len() {
        // Requests at or after the last decoded frame take it, unless they lie clearly past it.
        let t_last_needed = sorted[sorted.len() - 1];
        if t_last_needed > last.t + frame_period.max(TRUNCATION_TOLERANCE_SECONDS) {
            return Err(decode_err(
                path,
                format!("stream ends at {:.3} s but {:.3} s was requested (truncated file?)", last.t, t_last_needed),
            )
            .into());
        }
        let rgb = conv.rgb(&mut last, path)?;
        for &i in &order[p..] {
            chosen[i] = Some((last.t, Arc::clone(&rgb)));
        }
    }
    let mut frames = Vec::with_capacity(times.len());
    let mut timestamps = Vec::with_capacity(times.len());
    for c in chosen {
        let (t, f) = c.ok_or_else(|| decode_err(path, "internal: unassigned frame request"))?;
        timestamps.push(t);
        frames.push(f);
    }
    Ok(DecodedFrames { width, height, frames, timestamps, decoded_frames })
}

/// Check that a video decodes at its start and near its end (one seek), as `prepare` does to find corrupt or
/// truncated files without decoding everything.
pub fn check_decodable(path: &Path, duration: f64) -> Result<(), DataError> {
    decode_frames_at(path, &[0.0], 0)?;
    let tail = (duration - 0.5).max(0.0);
    if tail > 0.0 {
        decode_frames_at(path, &[tail], 0)?;
    }
    Ok(())
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
