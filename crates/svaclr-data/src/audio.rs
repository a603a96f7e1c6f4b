//! Audio: wav reading (hound), anti-aliased resampling (rubato), the speed view, and extraction of a
//! container's audio track to wav (FFmpeg through `video_rs::ffmpeg`).
//!
//! All audio is handled as mono `f32` in [-1, 1]: channels are averaged (not FFmpeg's 0.707 downmix), integer
//! samples of `b` bits are divided by `2^(b-1)`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use rubato::{Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use video_rs::ffmpeg;

use crate::error::DataError;
use crate::video::init_ffmpeg;

/// Length of the windowed-sinc anti-aliasing filter, in input samples.
pub const SINC_LEN: usize = 128;
/// Interpolated points between two sinc taps (the filter table's resolution).
pub const SINC_OVERSAMPLING: usize = 256;
/// Window of the sinc filter.
pub const SINC_WINDOW: WindowFunction = WindowFunction::BlackmanHarris2;
/// A jump in a container track's timestamps longer than this is filled with silence.
const MIN_GAP_SECONDS: f64 = 0.01;
/// Longer jumps are taken for broken timestamps and not filled.
const MAX_GAP_SECONDS: f64 = 60.0;
/// Cached resamplers per thread before the cache is cleared.
const RESAMPLER_CACHE_MAX: usize = 32;

/// Mono audio with its sample rate.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioClip {
    /// Samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl AudioClip {
    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Header facts of a wav file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Frames (samples per channel).
    pub frames: u64,
    /// Bits per sample.
    pub bits: u16,
    /// Whether samples are IEEE floats.
    pub float: bool,
}

impl WavInfo {
    /// Duration in seconds.
    pub fn duration(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate.max(1))
    }
}

type Reader = hound::WavReader<BufReader<File>>;

fn open_wav(path: &Path) -> Result<(Reader, WavInfo), DataError> {
    if !path.is_file() {
        return Err(DataError::Missing { path: path.to_path_buf() });
    }
    let reader = hound::WavReader::open(path).map_err(|source| DataError::Wav { path: path.to_path_buf(), source })?;
    let spec = reader.spec();
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        frames: u64::from(reader.duration()),
        bits: spec.bits_per_sample,
        float: spec.sample_format == hound::SampleFormat::Float,
    };
    if info.sample_rate == 0 || info.channels == 0 {
        return Err(DataError::BadAudio { path: path.to_path_buf(), reason: "zero sample rate or channels".into() });
    }
    Ok((reader, info))
}

/// Read a wav header.
pub fn wav_info(path: &Path) -> Result<WavInfo, DataError> {
    open_wav(path).map(|(_, info)| info)
}

/// Read `frames` frames from the reader's position, averaging channels.
fn read_mono(reader: Reader, info: &WavInfo, frames: usize, path: &Path) -> Result<Vec<f32>, DataError> {
    if !info.float && info.bits == 16 {
        return read_mono_i16(reader.into_inner(), usize::from(info.channels), frames, path);
    }
    let mut reader = reader;
    let ch = usize::from(info.channels);
    let wav_err = |source| DataError::Wav { path: path.to_path_buf(), source };
    let mut out = Vec::with_capacity(frames);
    let inv_ch = 1.0 / ch as f32;
    if info.float {
        let mut it = reader.samples::<f32>();
        for _ in 0..frames {
            let mut acc = 0.0f32;
            for _ in 0..ch {
                acc += it.next().ok_or_else(|| truncated(path))?.map_err(wav_err)?;
            }
            out.push(acc * inv_ch);
        }
    } else {
        let scale = 1.0 / (1u64 << (info.bits.clamp(1, 32) - 1)) as f32;
        let mut it = reader.samples::<i32>();
        for _ in 0..frames {
            let mut acc = 0.0f32;
            for _ in 0..ch {
                acc += it.next().ok_or_else(|| truncated(path))?.map_err(wav_err)? as f32;
            }
            out.push(acc * scale * inv_ch);
        }
    }
    Ok(out)
}

/// [`read_mono`] for 16-bit PCM (SynthAV's wavs and every wav `prepare` extracts), from the bytes in one read:
/// hound's per-sample iterator cost about 40 ns a sample, most of a speed-4 audio view's read. The same
/// arithmetic in the same order, so the same values bit for bit (test `sixteen_bit_wavs_read_exactly`).
fn read_mono_i16(mut data: BufReader<File>, ch: usize, frames: usize, path: &Path) -> Result<Vec<f32>, DataError> {
    use std::io::Read;
    let mut bytes = vec![0u8; frames * ch * 2];
    data.read_exact(&mut bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => truncated(path),
        _ => DataError::io(path, e),
    })?;
    let (scale, inv_ch) = (1.0 / (1u64 << 15) as f32, 1.0 / ch as f32);
    Ok(bytes
        .chunks_exact(2 * ch)
        .map(|frame| {
            let acc = frame.chunks_exact(2).fold(0.0f32, |acc, s| acc + f32::from(i16::from_le_bytes([s[0], s[1]])));
            acc * scale * inv_ch
        })
        .collect())
}

fn truncated(path: &Path) -> DataError {
    DataError::BadAudio { path: path.to_path_buf(), reason: "file ends before its header says (truncated)".into() }
}

/// Read a whole wav file as mono.
pub fn read_wav_mono(path: &Path) -> Result<AudioClip, DataError> {
    let (reader, info) = open_wav(path)?;
    let samples = read_mono(reader, &info, info.frames as usize, path)?;
    Ok(AudioClip { samples, sample_rate: info.sample_rate })
}

/// Read `frames` mono frames starting at frame `start`. A segment that runs past the end of the file loops
/// back to its start (so does a start past the end); a file without samples is an error.
pub fn read_wav_segment(path: &Path, start: u64, frames: usize) -> Result<AudioClip, DataError> {
    let (reader, info) = open_wav(path)?;
    segment(reader, info, start, frames, path)
}

fn segment(mut reader: Reader, info: WavInfo, start: u64, frames: usize, path: &Path) -> Result<AudioClip, DataError> {
    if info.frames == 0 {
        return Err(DataError::BadAudio { path: path.to_path_buf(), reason: "no samples".into() });
    }
    let start = start % info.frames;
    let samples = if start + frames as u64 <= info.frames && start <= u64::from(u32::MAX) {
        reader.seek(start as u32).map_err(|e| DataError::io(path, e))?;
        read_mono(reader, &info, frames, path)?
    } else {
        let all = read_mono(reader, &info, info.frames as usize, path)?;
        loop_segment(&all, start as usize, frames)
    };
    Ok(AudioClip { samples, sample_rate: info.sample_rate })
}

/// Read `seconds` of mono audio from `start_sec` (rounded to whole frames; one extra frame so that any speed
/// view's `round(...)` length fits), looping past the end like [`read_wav_segment`].
pub fn read_wav_window(path: &Path, start_sec: f64, seconds: f64) -> Result<AudioClip, DataError> {
    let (reader, info) = open_wav(path)?;
    let rate = f64::from(info.sample_rate);
    let start = (start_sec.max(0.0) * rate).round() as u64;
    let frames = (seconds.max(0.0) * rate).ceil() as usize + 1;
    segment(reader, info, start, frames, path)
}

/// `frames` samples of `source` from `start`, wrapping around at the end (looping). Empty source gives silence.
pub fn loop_segment(source: &[f32], start: usize, frames: usize) -> Vec<f32> {
    if source.is_empty() {
        return vec![0.0; frames];
    }
    (0..frames).map(|k| source[(start + k) % source.len()]).collect()
}

thread_local! {
    static RESAMPLERS: RefCell<HashMap<(usize, usize), SincFixedIn<f32>>> = RefCell::new(HashMap::new());
}

/// Zero input appended to the chunk: `SincFixedIn` holds back the last `SINC_LEN + 1 + ceil(1 / ratio)` input
/// samples of a chunk for the next one; padding lets one call produce every output sample.
fn flush_padding(ratio: f64) -> usize {
    2 * SINC_LEN + (4.0 / ratio).ceil() as usize
}

/// Resample `input` to exactly `n_out` samples with rubato's windowed-sinc resampler (anti-aliasing low-pass
/// at the lower of the two Nyquist rates). Input and output span the same time: output sample `k` is the
/// band-limited input at position `k * n_in / n_out`, exactly when `n_in / n_out` is an integer and within half
/// an input sample otherwise (11 us at 44.1 kHz). The signal is zero outside `input`, so edge effects reach
/// about `SINC_LEN / 2` input samples into each end.
pub fn resample_to_len(input: &[f32], n_out: usize) -> Result<Vec<f32>, DataError> {
    let n_in = input.len();
    if n_out == 0 {
        return Ok(Vec::new());
    }
    if n_in == 0 {
        return Err(DataError::Resample { from: 0, to: n_out, reason: "empty input".into() });
    }
    if n_in == n_out {
        return Ok(input.to_vec());
    }
    let ratio = n_out as f64 / n_in as f64;
    // SincFixedIn's output k sits at input position (k + 1) / ratio - 1 (measured; see the unit test): lead
    // with that many zeros, rounded, so that output k sits at k / ratio within half an input sample.
    let lead = (1.0 / ratio - 1.0).round().max(0.0) as usize;
    let chunk = lead + n_in + flush_padding(ratio);
    let err = |reason: String| DataError::Resample { from: n_in, to: n_out, reason };
    RESAMPLERS.with(|cell| {
        let mut cache = cell.borrow_mut();
        if !cache.contains_key(&(n_in, n_out)) {
            if cache.len() >= RESAMPLER_CACHE_MAX {
                cache.clear();
            }
            let params = SincInterpolationParameters {
                sinc_len: SINC_LEN,
                f_cutoff: rubato::calculate_cutoff(SINC_LEN, SINC_WINDOW),
                oversampling_factor: SINC_OVERSAMPLING,
                interpolation: SincInterpolationType::Linear,
                window: SINC_WINDOW,
            };
            let r = SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1).map_err(|e| err(e.to_string()))?;
            cache.insert((n_in, n_out), r);
        }
        let resampler =
            cache.get_mut(&(n_in, n_out)).ok_or_else(|| err("internal: resampler cache miss".to_string()))?;
        resampler.reset();
        let mut buf = vec![0.0; lead];
        buf.reserve(chunk - lead);
        buf.extend_from_slice(input);
        buf.resize(chunk, 0.0);
        let out = resampler.process(&[buf], None).map_err(|e| err(e.to_string()))?;
        let mut v: Vec<f32> = out[0].iter().take(n_out).copied().collect();
        v.resize(n_out, 0.0);
        Ok(v)
    })
}

/// Resample a clip to another sample rate (`round(len * to / from)` samples).
pub fn resample_rate(clip: &AudioClip, to_rate: u32) -> Result<AudioClip, DataError> {
    if clip.sample_rate == to_rate {
        return Ok(clip.clone());
    }
    let n_out = (clip.samples.len() as f64 * f64::from(to_rate) / f64::from(clip.sample_rate)).round() as usize;
    Ok(AudioClip { samples: resample_to_len(&clip.samples, n_out)?, sample_rate: to_rate })
}

/// Source samples a view at `speed` consumes: `round(speed * seconds * source_rate)`.
pub fn speed_source_len(speed: f64, seconds: f64, source_rate: u32) -> usize {
    (speed * seconds * f64::from(source_rate)).round() as usize
}

/// Output samples of every view: `round(seconds * target_rate)`.
pub fn view_len(seconds: f64, target_rate: u32) -> usize {
    (seconds * f64::from(target_rate)).round() as usize
}

/// The audio view at speed `tau` (design.md, "The method, made exact"): `tau * seconds` of `source` (which
/// starts at the clip's t0 at `source_rate` and holds at least that many samples) resampled to `seconds` at
/// `target_rate`. Pitch and tempo both rise by `tau`, as when a recording is played faster; speed 1 only
/// converts the rate.
pub fn speed_audio_view(
    source: &[f32],
    source_rate: u32,
    speed: f64,
    seconds: f64,
    target_rate: u32,
) -> Result<Vec<f32>, DataError> {
    let n_in = speed_source_len(speed, seconds, source_rate).max(1);
    let n_out = view_len(seconds, target_rate);
    let src = if source.len() >= n_in { source[..n_in].to_vec() } else { loop_segment(source, 0, n_in) };
    resample_to_len(&src, n_out)
}

fn audio_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::AudioDecode { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Append one decoded frame to `out` as mono (channel average).
fn append_mono(frame: &ffmpeg::frame::Audio, out: &mut Vec<f32>, path: &Path) -> Result<(), DataError> {
    use ffmpeg::format::Sample as S;
    use ffmpeg::format::sample::Type as T;
    let n = frame.samples();
    let ch = usize::from(frame.channels());
    if n == 0 || ch == 0 {
        return Ok(());
    }
    let (bytes, planar, kind) = match frame.format() {
        S::U8(t) => (1, t == T::Planar, 0u8),
        S::I16(t) => (2, t == T::Planar, 1),
        S::I32(t) => (4, t == T::Planar, 2),
        S::I64(t) => (8, t == T::Planar, 3),
        S::F32(t) => (4, t == T::Planar, 4),
        S::F64(t) => (8, t == T::Planar, 5),
        S::None => return Err(audio_err(path, "decoded frame has no sample format")),
    };
    let value = |b: &[u8]| -> f32 {
        match kind {
            0 => (f32::from(b[0]) - 128.0) / 128.0,
            1 => f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32_768.0,
            2 => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            3 => (i64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64 / 9.223_372e18) as f32,
            4 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            _ => f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        }
    };
    let inv = 1.0 / ch as f32;
    if planar {
        if frame.planes() < ch {
            return Err(audio_err(path, "decoded frame has fewer planes than channels"));
        }
        let planes: Vec<&[u8]> = (0..ch).map(|c| frame.data(c)).collect();
        if planes.iter().any(|p| p.len() < n * bytes) {
            return Err(audio_err(path, "decoded frame shorter than its sample count"));
        }
        for i in 0..n {
            let s: f32 = planes.iter().map(|p| value(&p[i * bytes..])).sum();
            out.push(s * inv);
        }
    } else {
        if frame.planes() == 0 {
            return Err(audio_err(path, "decoded frame has no data"));
        }
        let data = frame.data(0);
        if data.len() < n * ch * bytes {
            return Err(audio_err(path, "decoded frame shorter than its sample count"));
        }
        for i in 0..n {
            let s: f32 = (0..ch).map(|c| value(&data[(i * ch + c) * bytes..])).sum();
            out.push(s * inv);
        }
    }
    Ok(())
}

/// A container's audio track as mono samples on the video's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerAudio {
    /// Sample 0 is the time of the first video frame (see [`decode_container_audio`]).
    pub clip: AudioClip,
    /// Seconds by which the track's first sample came after the first video frame in the source (negative:
    /// before). Already applied to `clip`: recorded so that a manifest can say what was done.
    pub offset: f64,
}

fn seconds(ts: i64, tb: ffmpeg::Rational) -> Option<f64> {
    (ts != ffmpeg::ffi::AV_NOPTS_VALUE && tb.denominator() != 0).then(|| ts as f64 * f64::from(tb))
}

/// Decode the best audio stream of a container to mono at its native rate, aligned to the video's timeline as
/// players align them: edit lists applied, and the track shifted so that sample 0 is the time of the first
/// video frame (the video stream's start time). A track that starts later is padded with silence at its start,
/// one that starts earlier loses its head. Without a video stream nothing is shifted. Inside the track, a jump of
/// its timestamps (more than 10 ms, less than a minute: lost packets) is filled with silence.
pub fn decode_container_audio(path: &Path) -> Result<ContainerAudio, DataError> {
    init_ffmpeg();
    if !path.is_file() {
        return Err(DataError::Missing { path: path.to_path_buf() });
    }
    let mut ictx = ffmpeg::format::input(path).map_err(|e| audio_err(path, e))?;
    let video_start =
        ictx.streams().best(ffmpeg::media::Type::Video).map(|v| seconds(v.start_time(), v.time_base()).unwrap_or(0.0));
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or_else(|| DataError::NoAudioStream { path: path.to_path_buf() })?;
    let index = stream.index();
    let audio_tb = stream.time_base();
    let stream_start = seconds(stream.start_time(), audio_tb);
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().audio())
        .map_err(|e| audio_err(path, format!("audio codec: {e}")))?;
    decoder.set_packet_time_base(audio_tb);
    let mut out = Vec::new();
    let mut frame = ffmpeg::frame::Audio::empty();
    let mut rate = decoder.rate();
    let mut errors = 0usize;
    // The presentation time of the first decoded sample (after any priming samples the decoder drops).
    let mut first: Option<f64> = None;
    // Frames go where their timestamps say: a gap (packets lost to damage, or a track that pauses) becomes silence,
    // so the sound after it stays in sync with the video instead of moving earlier by the gap.
    let mut take = |frame: &ffmpeg::frame::Audio, out: &mut Vec<f32>, rate: &mut u32| {
        let ts = frame.timestamp().or_else(|| frame.pts()).and_then(|t| seconds(t, audio_tb));
        if out.is_empty() && frame.samples() > 0 {
            first = ts;
        } else if let (Some(t), Some(f), r) = (ts, first, frame.rate()) {
            let expected = ((t - f) * f64::from(r)).round();
            let gap = expected - out.len() as f64;
            if gap > f64::from(r) * MIN_GAP_SECONDS && gap < f64::from(r) * MAX_GAP_SECONDS {
                out.resize(expected as usize, 0.0);
            }
        }
        *rate = frame.rate();
        append_mono(frame, out, path)
    };
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            errors += 1;
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            take(&frame, &mut out, &mut rate)?;
        }
    }
    if decoder.send_eof().is_ok() {
        while decoder.receive_frame(&mut frame).is_ok() {
            take(&frame, &mut out, &mut rate)?;
        }
    }
    if out.is_empty() {
        let why = if errors > 0 { format!("no samples decoded ({errors} bad packets)") } else { "no samples".into() };
        return Err(audio_err(path, why));
    }
    if rate == 0 {
        return Err(audio_err(path, "zero sample rate"));
    }
    let offset = match video_start {
        Some(v) => first.or(stream_start).unwrap_or(0.0) - v,
        None => 0.0,
    };
    let samples = align_to_video(out, offset, rate).ok_or_else(|| {
        audio_err(path, format!("the audio track ends before the first video frame ({offset:.3} s earlier)"))
    })?;
    Ok(ContainerAudio { clip: AudioClip { samples, sample_rate: rate }, offset })
}

/// Shift `samples` (whose first sample sits `offset` seconds after video time 0) so that sample 0 is video time
/// 0: `round(offset * rate)` zeros in front for a late track, as many samples dropped for an early one. `None`
/// when nothing is left.
pub fn align_to_video(mut samples: Vec<f32>, offset: f64, rate: u32) -> Option<Vec<f32>> {
    let n = (offset.abs() * f64::from(rate)).round() as usize;
    if offset >= 0.0 {
        samples.splice(0..0, std::iter::repeat_n(0.0, n));
    } else if n < samples.len() {
        samples.drain(..n);
    } else {
        return None;
    }
    Some(samples)
}

/// Write mono samples as 16-bit PCM wav (clamped to [-1, 1]).
pub fn write_wav_mono_i16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), DataError> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let werr = |source| DataError::WavWrite { path: path.to_path_buf(), source };
    let mut w = hound::WavWriter::create(path, spec).map_err(werr)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32_767.0).round() as i16).map_err(werr)?;
    }
    w.finalize().map_err(werr)
}

/// Extract a container's audio track (on the video's timeline, see [`decode_container_audio`]) to a mono 16-bit
/// wav, at `target_rate` (resampled with the sinc resampler) or the native rate when `None`. Written to a
/// temporary name and renamed, so a killed run never leaves a partial wav under `wav`. Returns the written
/// wav's header and the track's offset.
pub fn extract_audio_to_wav(video: &Path, wav: &Path, target_rate: Option<u32>) -> Result<(WavInfo, f64), DataError> {
    let ContainerAudio { clip, offset } = decode_container_audio(video)?;
    let clip = match target_rate {
        Some(r) if r != clip.sample_rate => resample_rate(&clip, r)?,
        _ => clip,
    };
    let tmp = wav.with_extension("wav.tmp");
    write_wav_mono_i16(&tmp, &clip.samples, clip.sample_rate)?;
    std::fs::rename(&tmp, wav).map_err(|e| DataError::io(wav, e))?;
    let info = WavInfo {
        sample_rate: clip.sample_rate,
        channels: 1,
        frames: clip.samples.len() as u64,
        bits: 16,
        float: false,
    };
    Ok((info, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_pads_late_and_trims_early_tracks() {
        assert_eq!(align_to_video(vec![1.0, 2.0, 3.0], 0.2, 10), Some(vec![0.0, 0.0, 1.0, 2.0, 3.0]));
        assert_eq!(align_to_video(vec![1.0, 2.0, 3.0], -0.1, 10), Some(vec![2.0, 3.0]));
        assert_eq!(align_to_video(vec![1.0, 2.0, 3.0], 0.0, 10), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(align_to_video(vec![1.0, 2.0, 3.0], -0.3, 10), None);
    }

    #[test]
    fn loop_segment_wraps() {
        let s = [1.0, 2.0, 3.0];
        assert_eq!(loop_segment(&s, 2, 5), vec![3.0, 1.0, 2.0, 3.0, 1.0]);
        assert_eq!(loop_segment(&[], 0, 2), vec![0.0, 0.0]);
    }

    #[test]
    fn resample_has_exact_length_and_keeps_a_low_tone() {
        let sr = 16_000.0f32;
        let x: Vec<f32> = (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 200.0 * i as f32 / sr).sin()).collect();
        let y = resample_to_len(&x, 8_000).expect("resample");
        assert_eq!(y.len(), 8_000);
        // 200 Hz at 8 kHz: output k is the tone at k / 8000 s (phase kept, exact for integer ratios).
        let tone_err = |y: &[f32], rate: f32, skip: usize| {
            y.iter()
                .enumerate()
                .skip(skip)
                .take(y.len() - 2 * skip)
                .map(|(i, v)| (v - (2.0 * std::f32::consts::PI * 200.0 * i as f32 / rate).sin()).abs())
                .fold(0.0f32, f32::max)
        };
        let err = tone_err(&y, 8_000.0, 100);
        assert!(err < 0.005, "max error {err}");
        // Upsampling: within half an input sample (here a third: 0.026 rad at 200 Hz).
        let z = resample_to_len(&x, 24_000).expect("up");
        let err = tone_err(&z, 24_000.0, 300);
        assert!(err < 0.03, "max error {err}");
        // Cached resampler gives the same result again.
        assert_eq!(resample_to_len(&x, 8_000).expect("again"), y);
    }
}
