//! Writing a rendered clip: H.264 in Matroska (libx264 through FFmpeg) and 16-bit mono wav (hound).
//!
//! The video is written with ffmpeg-next (re-exported by video-rs) rather than `video_rs::Encoder`, because
//! reproducible files need four things that encoder does not expose: the muxer's `bitexact` flag (otherwise
//! Matroska writes random segment and track UIDs), a single-threaded x264 (`threads=1`; clips are encoded in
//! parallel instead), x264 without its assembly (`asm=0`; with AVX-512 it is not deterministic), and the real frame
//! rate in the stream header (video-rs announces 30 fps). Same frames in, same bytes out.
//!
//! Colour: RGB is converted here to BT.601 limited-range YUV 4:2:0 (chroma = mean of each 2x2 block) and the
//! stream is tagged so; FFmpeg's default YUV-to-RGB conversion on decode is the inverse.

use std::path::Path;
use std::sync::OnceLock;

use video_rs::ffmpeg as ff;

use super::SynthError;

/// x264 speed preset. At 48-64 px the slower presets buy nothing visible.
pub const X264_PRESET: &str = "veryfast";
/// Matroska muxer name.
pub const CONTAINER: &str = "matroska";
/// Pixel format of the stream.
pub const PIXEL_FORMAT: &str = "yuv420p";

fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        // Routes FFmpeg's (and x264's) log lines to `tracing`, so they do not spray over the progress bar. A
        // failure here surfaces as an encode error naming the file.
        let _ = video_rs::init();
    });
}

fn enc_err(path: &Path, what: &str, e: impl std::fmt::Display) -> SynthError {
    SynthError::Encode { path: path.to_path_buf(), reason: format!("{what}: {e}") }
}

/// BT.601 limited range, RGB in 0..1.
fn rgb_to_ycbcr(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b;
    let cb = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b;
    let cr = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b;
    (y, cb, cr)
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Fill a YUV420P frame from an RGB24 image (`[height, width, 3]`, even width and height).
fn fill_yuv420(frame: &mut ff::frame::Video, rgb: &[u8], width: usize, height: usize) {
    const INV: f32 = 1.0 / 255.0;
    let px = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        (f32::from(rgb[i]) * INV, f32::from(rgb[i + 1]) * INV, f32::from(rgb[i + 2]) * INV)
    };
    let y_stride = frame.stride(0);
    {
        let plane = frame.data_mut(0);
        for y in 0..height {
            for x in 0..width {
                let (r, g, b) = px(x, y);
                plane[y * y_stride + x] = to_u8(rgb_to_ycbcr(r, g, b).0);
            }
        }
    }
    let (cw, ch) = (width / 2, height / 2);
    let mut cb_plane = vec![0u8; cw * ch];
    let mut cr_plane = vec![0u8; cw * ch];
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (pr, pg, pb) = px(2 * cx + dx, 2 * cy + dy);
                r += pr;
                g += pg;
                b += pb;
            }
            let (_, cb, cr) = rgb_to_ycbcr(r / 4.0, g / 4.0, b / 4.0);
            cb_plane[cy * cw + cx] = to_u8(cb);
            cr_plane[cy * cw + cx] = to_u8(cr);
        }
    }
    for (index, src) in [(1usize, &cb_plane), (2, &cr_plane)] {
        let stride = frame.stride(index);
        let plane = frame.data_mut(index);
        for row in 0..ch {
            plane[row * stride..row * stride + cw].copy_from_slice(&src[row * cw..row * cw + cw]);
        }
    }
}

/// Encode RGB24 frames (`[height, width, 3]` each) as H.264 (constant quality `crf`) in a Matroska file, frame k
/// at time k / fps. Width and height must be even (4:2:0 chroma).
pub fn write_h264_mkv(
    path: &Path,
    frames: &[Vec<u8>],
    width: usize,
    height: usize,
    fps: u32,
    crf: u32,
) -> Result<(), SynthError> {
    init();
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) || width == 0 || height == 0 {
        return Err(enc_err(path, "frame size", format!("{width}x{height} is not even and non-zero")));
    }
    if let Some(bad) = frames.iter().position(|f| f.len() != width * height * 3) {
        return Err(enc_err(path, "frame size", format!("frame {bad} does not hold {width}x{height} RGB pixels")));
    }
    let fps_i32 = i32::try_from(fps).map_err(|e| enc_err(path, "frame rate", e))?;
    let time_base = ff::Rational::new(1, fps_i32);
    let mut octx = ff::format::output_as(path, CONTAINER).map_err(|e| enc_err(path, "create file", e))?;
    let codec = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| enc_err(path, "codec", "FFmpeg has no libx264 encoder (install libavcodec with x264)"))?;
    let global_header = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let stream_index = {
        let stream = octx.add_stream(codec).map_err(|e| enc_err(path, "add stream", e))?;
        stream.index()
    };
    let mut encoder = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| enc_err(path, "encoder", e))?;
    encoder.set_width(width as u32);
    encoder.set_height(height as u32);
    encoder.set_format(ff::format::Pixel::YUV420P);
    encoder.set_time_base(time_base);
    encoder.set_frame_rate(Some(ff::Rational::new(fps_i32, 1)));
    encoder.set_colorspace(ff::color::Space::BT470BG);
    encoder.set_color_range(ff::color::Range::MPEG);
    if global_header {
        encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ff::Dictionary::new();
    opts.set("preset", X264_PRESET);
    opts.set("crf", &crf.to_string());
    // One thread per clip: deterministic output; clips themselves run in parallel.
    opts.set("threads", "1");
    // x264's C code, not its assembly: on a CPU with AVX-512 (measured on a Xeon of ours, x264 0.164.3095) encoding
    // the same frames twice in one process gave different bitstreams with the assembly enabled. At 48-64 px the C
    // code costs little.
    opts.set("x264-params", "asm=0");
    let mut encoder = encoder.open_with(opts).map_err(|e| enc_err(path, "open libx264", e))?;
    {
        let mut stream =
            octx.stream_mut(stream_index).ok_or_else(|| enc_err(path, "stream", "added stream disappeared"))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        stream.set_avg_frame_rate(ff::Rational::new(fps_i32, 1));
        stream.set_rate(ff::Rational::new(fps_i32, 1));
    }
    let mut header_opts = ff::Dictionary::new();
    // No random UIDs, no library version strings: identical input gives identical bytes.
    header_opts.set("fflags", "+bitexact");
    octx.write_header_with(header_opts).map_err(|e| enc_err(path, "write header", e))?;
    let stream_tb =
        octx.stream(stream_index).ok_or_else(|| enc_err(path, "stream", "added stream disappeared"))?.time_base();

    let mut packet = ff::Packet::empty();
    let mut drain = |encoder: &mut ff::encoder::Video, octx: &mut ff::format::context::Output| {
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(stream_index);
            packet.rescale_ts(time_base, stream_tb);
            packet.write_interleaved(octx).map_err(|e| enc_err(path, "write packet", e))?;
        }
        Ok::<(), SynthError>(())
    };
    let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, width as u32, height as u32);
    frame.set_color_space(ff::color::Space::BT470BG);
    frame.set_color_range(ff::color::Range::MPEG);
    for (k, rgb) in frames.iter().enumerate() {
        fill_yuv420(&mut frame, rgb, width, height);
        frame.set_pts(Some(k as i64));
        encoder.send_frame(&frame).map_err(|e| enc_err(path, "encode frame", e))?;
        drain(&mut encoder, &mut octx)?;
    }
    encoder.send_eof().map_err(|e| enc_err(path, "flush encoder", e))?;
    drain(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(|e| enc_err(path, "write trailer", e))?;
    Ok(())
}

/// Write mono samples (clamped to [-1, 1]) as a 16-bit PCM wav.
pub fn write_wav_mono_i16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), SynthError> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let werr = |cause| SynthError::Wav { path: path.to_path_buf(), cause };
    let mut w = hound::WavWriter::create(path, spec).map_err(werr)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32_767.0).round() as i16).map_err(werr)?;
    }
    w.finalize().map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_of_primaries() {
        let (y, cb, cr) = rgb_to_ycbcr(1.0, 1.0, 1.0);
        assert!((y - 235.0).abs() < 0.01 && (cb - 128.0).abs() < 0.01 && (cr - 128.0).abs() < 0.01);
        let (y, cb, cr) = rgb_to_ycbcr(0.0, 0.0, 0.0);
        assert!((y - 16.0).abs() < 0.01 && (cb - 128.0).abs() < 0.01 && (cr - 128.0).abs() < 0.01);
        let (_, _, cr) = rgb_to_ycbcr(1.0, 0.0, 0.0);
        assert!((cr - 240.0).abs() < 0.01);
    }
}
