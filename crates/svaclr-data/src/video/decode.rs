//! Decoding: [`decode_frames_at`] (the frames one clip needs, from one seek) and [`VideoFrames`] (every frame of
//! a video, for the decoded-frame cache). Both read frames through the same demuxer, decoder, timestamps and
//! scaler, and both choose frames with [`super::select::NearestFrames`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use video_rs::ffmpeg;
use video_rs::{Options, ReaderBuilder};

use super::select::{NearestFrames, Pick, frame_period, frame_time};
use super::{
    AV_TIME_BASE, SEEK_MIN_SECONDS, decode_err, display_rotation, init_ffmpeg, open_err, output_size, rational_to_f64,
    rotate_rgb,
};
use crate::error::DataError;

/// Consecutive packets the decoder may reject before the file counts as corrupt.
const MAX_CONSECUTIVE_DECODE_ERRORS: usize = 32;

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
    /// A converter for frames of native `size` to the short side `short_side`, turned by `rotation`; with the
    /// width and height of the frames it gives.
    fn new(size: (u32, u32), short_side: usize, rotation: u32) -> (Self, usize, usize) {
        let (ow, oh) = output_size(size.0, size.1, short_side);
        let (width, height) =
            if rotation % 180 == 90 { (oh as usize, ow as usize) } else { (ow as usize, oh as usize) };
        (Self { out: (ow, oh), rotation, scaler: None }, width, height)
    }

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
    let (mut conv, width, height) = Converter::new(size, short_side, rotation);
    let mut requests = NearestFrames::new(times);
    let mut chosen: Vec<Option<(f64, Arc<Vec<u8>>)>> = vec![None; times.len()];
    let Some(t_first) = requests.first() else {
        return Ok(DecodedFrames { width, height, frames: Vec::new(), timestamps: Vec::new(), decoded_frames: 0 });
    };
    let seeked = allow_seek && t_first > SEEK_MIN_SECONDS;
    if seeked {
        let target = ((t_first + origin) * AV_TIME_BASE) as i64;
        // Keyframe at or before the target: max_ts = target.
        if stream.reader.input.seek(target, ..target + 1).is_err() {
            return Err(PassError::SeekFailed);
        }
    }
    let period = frame_period(native_fps);
    let mut prev: Option<Candidate> = None;
    let mut decoded_frames = 0;
    while !requests.is_done() {
        let Some(frame) = stream.next_frame(path)? else { break };
        decoded_frames += 1;
        let t = frame_time(frame.timestamp().or_else(|| frame.pts()), tb, origin, prev.as_ref().map(|c| c.t), period);
        // A seek must land at or before the first requested time, or an earlier frame might have been the nearest
        // (some containers, MPEG-TS among them, seek imprecisely): decode from the start instead.
        if seeked && prev.is_none() && t > t_first {
            return Err(PassError::SeekFailed);
        }
        let mut current = Candidate { t, frame, rgb: None };
        requests.offer(prev.as_ref().map(|c| c.t), t, |request, pick| {
            let c = match (pick, prev.as_mut()) {
                (Pick::Previous, Some(c)) => c,
                _ => &mut current,
            };
            chosen[request] = Some((c.t, conv.rgb(c, path)?));
            Ok::<_, DataError>(())
        })?;
        prev = Some(current);
    }
    let Some(mut last) = prev else {
        if seeked {
            return Err(PassError::SeekFailed);
        }
        return Err(decode_err(path, "no frame could be decoded").into());
    };
    let open = requests.finish(path, last.t, period)?;
    if !open.is_empty() {
        let rgb = conv.rgb(&mut last, path)?;
        for &i in open {
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

/// Every frame of a video, decoded once from its start and scaled as [`decode_frames_at`] scales them, with the
/// times the frame rule chooses by: what the decoded-frame cache holds (`"cache": "memory"` in
/// [`crate::DataConfig`]).
#[derive(Debug)]
pub struct VideoFrames {
    /// Frame width after scaling and rotation.
    pub width: usize,
    /// Frame height after scaling and rotation.
    pub height: usize,
    /// The time of each frame (seconds from the first), in decode order.
    pub timestamps: Vec<f64>,
    /// Period of one native frame (the truncation tolerance's unit).
    frame_period: f64,
    /// Frames, RGB24 `[height, width, 3]` each, back to back in decode order.
    data: Vec<u8>,
}

impl VideoFrames {
    /// Decode every frame of `path` with its short side scaled to `short_side` (`0`: native size). Errors are
    /// [`decode_frames_at`]'s (a file it can read in part, a corrupt tail for instance, fails here).
    pub fn decode(path: &Path, short_side: usize) -> Result<Self, DataError> {
        init_ffmpeg();
        if !path.is_file() {
            return Err(DataError::Missing { path: path.to_path_buf() });
        }
        let Opened { mut stream, size, native_fps, origin, tb, rotation } = open_stream(path)?;
        let (mut conv, width, height) = Converter::new(size, short_side, rotation);
        let period = frame_period(native_fps);
        let mut timestamps: Vec<f64> = Vec::new();
        let mut data = Vec::new();
        while let Some(frame) = stream.next_frame(path)? {
            let t =
                frame_time(frame.timestamp().or_else(|| frame.pts()), tb, origin, timestamps.last().copied(), period);
            let rgb = conv.rgb(&mut Candidate { t, frame, rgb: None }, path)?;
            if data.is_empty() {
                // Every frame has the converter's size; the first tells the file's length roughly.
                data.reserve(rgb.len() * (native_fps * 2.0).max(16.0) as usize);
            }
            data.extend_from_slice(&rgb);
            timestamps.push(t);
        }
        if timestamps.is_empty() {
            return Err(decode_err(path, "no frame could be decoded"));
        }
        data.shrink_to_fit();
        Ok(Self { width, height, timestamps, frame_period: period, data })
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there are no frames (never true for a decoded video).
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Bytes of frame data held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Frame `k` (decode order), RGB24 `[height, width, 3]`.
    ///
    /// # Panics
    /// If `k >= self.len()`.
    pub fn frame(&self, k: usize) -> &[u8] {
        let n = self.width * self.height * 3;
        &self.data[k * n..(k + 1) * n]
    }

    /// The frame the frame rule takes for each of `times` (in request order): the frames [`decode_frames_at`]
    /// returns for the file this was decoded from, with the same errors for bad times (`path` names the file).
    pub fn select(&self, path: &Path, times: &[f64]) -> Result<Vec<usize>, DataError> {
        if times.iter().any(|t| !t.is_finite()) {
            return Err(decode_err(path, "requested frame time is not finite"));
        }
        let mut requests = NearestFrames::new(times);
        let mut chosen = vec![0; times.len()];
        for (k, &t) in self.timestamps.iter().enumerate() {
            if requests.is_done() {
                break;
            }
            let prev = k.checked_sub(1).map(|j| self.timestamps[j]);
            requests.offer(prev, t, |request, pick| {
                chosen[request] = if pick == Pick::Previous { k - 1 } else { k };
                Ok::<_, DataError>(())
            })?;
        }
        let last = self.len() - 1;
        for &request in requests.finish(path, self.timestamps[last], self.frame_period)? {
            chosen[request] = last;
        }
        Ok(chosen)
    }
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
