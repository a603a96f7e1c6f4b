//! Writing synthetic media files: the tests and benchmarks create videos with known content at run time.
//!
//! [`write_video`] uses video-rs's `Encoder` (H.264, video only). [`write_av`] muxes H.264 video and an audio
//! track (16-bit PCM, or AAC for MP4/MOV, which cannot hold PCM) with FFmpeg directly, because video-rs does not
//! encode audio. Both encode with `qp=0` (lossless in YUV 4:2:0) when `lossless` is set.

use std::collections::HashMap;
use std::path::Path;

use video_rs::encode::Settings;
use video_rs::ffmpeg;
use video_rs::{Encoder, Frame, Options, Time};

use crate::error::DataError;
use crate::video::init_ffmpeg;

fn enc_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::Io { path: path.to_path_buf(), source: std::io::Error::other(reason.to_string()) }
}

/// H.264 options: `qp=0` (lossless) or the default rate control, always `preset=ultrafast`.
fn x264_options(lossless: bool) -> HashMap<String, String> {
    let mut m = HashMap::from([("preset".to_string(), "ultrafast".to_string())]);
    if lossless {
        m.insert("qp".to_string(), "0".to_string());
    }
    m
}

/// Frame rate as a rational: integers exactly, NTSC-style rates over 1001.
fn fps_rational(fps: f64) -> ffmpeg::Rational {
    if (fps - fps.round()).abs() < 1e-9 {
        ffmpeg::Rational::new(fps.round() as i32, 1)
    } else {
        ffmpeg::Rational::new((fps * 1001.0).round() as i32, 1001)
    }
}

/// Write `n_frames` RGB24 frames (`frame(i)` returns `[height, width, 3]` row-major) at `fps` with video-rs's
/// encoder. Use `.mkv` to avoid MP4 edit lists. Width and height must be even (YUV 4:2:0).
pub fn write_video(
    path: &Path,
    width: usize,
    height: usize,
    fps: f64,
    n_frames: usize,
    lossless: bool,
    mut frame: impl FnMut(usize) -> Vec<u8>,
) -> Result<(), DataError> {
    init_ffmpeg();
    let opts: Options = x264_options(lossless).into();
    let settings = Settings::preset_h264_custom(width, height, ffmpeg::format::Pixel::YUV420P, opts);
    let mut encoder = Encoder::new(path, settings).map_err(|e| enc_err(path, e))?;
    for i in 0..n_frames {
        let data = frame(i);
        let f = Frame::from_shape_vec((height, width, 3), data).map_err(|e| enc_err(path, e))?;
        encoder.encode(&f, Time::from_secs_f64(i as f64 / fps)).map_err(|e| enc_err(path, e))?;
    }
    encoder.finish().map_err(|e| enc_err(path, e))
}

/// Write a container with H.264 video (`frame(i)` as in [`write_video`]) and, when `audio` is given, a mono
/// audio track `(samples, rate)`: 16-bit PCM, or AAC when the extension is mp4/m4v/mov.
#[allow(clippy::too_many_arguments)]
pub fn write_av(
    path: &Path,
    width: usize,
    height: usize,
    fps: f64,
    n_frames: usize,
    lossless: bool,
    mut frame: impl FnMut(usize) -> Vec<u8>,
    audio: Option<(&[f32], u32)>,
) -> Result<(), DataError> {
    use ffmpeg::format::Pixel;
    init_ffmpeg();
    let e = |r: ffmpeg::Error| enc_err(path, r);
    let mut octx = ffmpeg::format::output(path).map_err(e)?;
    let global = octx.format().flags().contains(ffmpeg::format::Flags::GLOBAL_HEADER);

    // Video stream.
    let vcodec = ffmpeg::encoder::find_by_name("libx264")
        .or_else(|| ffmpeg::encoder::find(ffmpeg::codec::Id::H264))
        .ok_or_else(|| enc_err(path, "no H.264 encoder"))?;
    let vidx = octx.add_stream(vcodec).map_err(e)?.index();
    let rate = fps_rational(fps);
    let vtb = rate.invert();
    let mut vctx = ffmpeg::codec::context::Context::new_with_codec(vcodec);
    if global {
        vctx.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    }
    let mut venc = vctx.encoder().video().map_err(e)?;
    venc.set_width(width as u32);
    venc.set_height(height as u32);
    venc.set_format(Pixel::YUV420P);
    venc.set_time_base(vtb);
    venc.set_frame_rate(Some(rate));
    let mut dict = ffmpeg::Dictionary::new();
    for (k, v) in x264_options(lossless) {
        dict.set(&k, &v);
    }
    let mut venc = venc.open_with(dict).map_err(e)?;
    if let Some(mut st) = octx.stream_mut(vidx) {
        st.set_parameters(&venc);
        st.set_time_base(vtb);
    }

    // Audio stream.
    let mut audio_enc = None;
    if let Some((samples, sr)) = audio {
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("").to_ascii_lowercase();
        let use_aac = matches!(ext.as_str(), "mp4" | "m4v" | "mov");
        let (id, fmt) = if use_aac {
            (ffmpeg::codec::Id::AAC, ffmpeg::format::Sample::F32(ffmpeg::format::sample::Type::Planar))
        } else {
            (ffmpeg::codec::Id::PCM_S16LE, ffmpeg::format::Sample::I16(ffmpeg::format::sample::Type::Packed))
        };
        let acodec = ffmpeg::encoder::find(id).ok_or_else(|| enc_err(path, format!("no {id:?} encoder")))?;
        let aidx = octx.add_stream(acodec).map_err(e)?.index();
        let mut actx = ffmpeg::codec::context::Context::new_with_codec(acodec);
        if global {
            actx.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        }
        let mut aenc = actx.encoder().audio().map_err(e)?;
        aenc.set_rate(sr as i32);
        aenc.set_channel_layout(ffmpeg::ChannelLayout::MONO);
        aenc.set_format(fmt);
        aenc.set_time_base(ffmpeg::Rational::new(1, sr as i32));
        let aenc = aenc.open_as(acodec).map_err(e)?;
        if let Some(mut st) = octx.stream_mut(aidx) {
            st.set_parameters(&aenc);
            st.set_time_base(ffmpeg::Rational::new(1, sr as i32));
        }
        audio_enc = Some((aenc, aidx, fmt, samples, sr));
    }

    octx.write_header().map_err(e)?;

    // Encode video.
    let mut scaler = ffmpeg::software::scaling::Context::get(
        Pixel::RGB24,
        width as u32,
        height as u32,
        Pixel::YUV420P,
        width as u32,
        height as u32,
        ffmpeg::software::scaling::Flags::BILINEAR,
    )
    .map_err(e)?;
    let vst_tb = octx.stream(vidx).map(|s| s.time_base()).unwrap_or(vtb);
    let drain_video =
        |enc: &mut ffmpeg::encoder::Video, octx: &mut ffmpeg::format::context::Output| -> Result<(), ffmpeg::Error> {
            let mut pkt = ffmpeg::Packet::empty();
            while enc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(vidx);
                pkt.rescale_ts(vtb, vst_tb);
                pkt.write_interleaved(octx)?;
            }
            Ok(())
        };
    for i in 0..n_frames {
        let data = frame(i);
        if data.len() != width * height * 3 {
            return Err(enc_err(path, format!("frame {i} has {} bytes, expected {}", data.len(), width * height * 3)));
        }
        let mut rgb = ffmpeg::frame::Video::new(Pixel::RGB24, width as u32, height as u32);
        let stride = rgb.stride(0);
        for y in 0..height {
            rgb.data_mut(0)[y * stride..y * stride + width * 3]
                .copy_from_slice(&data[y * width * 3..(y + 1) * width * 3]);
        }
        let mut yuv = ffmpeg::frame::Video::empty();
        scaler.run(&rgb, &mut yuv).map_err(e)?;
        yuv.set_pts(Some(i as i64));
        venc.send_frame(&yuv).map_err(e)?;
        drain_video(&mut venc, &mut octx).map_err(e)?;
    }
    venc.send_eof().map_err(e)?;
    drain_video(&mut venc, &mut octx).map_err(e)?;

    // Encode audio.
    if let Some((mut aenc, aidx, fmt, samples, sr)) = audio_enc {
        let ast_tb = octx.stream(aidx).map(|s| s.time_base()).unwrap_or(ffmpeg::Rational::new(1, sr as i32));
        let atb = ffmpeg::Rational::new(1, sr as i32);
        let chunk = if aenc.frame_size() > 0 { aenc.frame_size() as usize } else { 1024 };
        let drain_audio = |enc: &mut ffmpeg::encoder::Audio,
                           octx: &mut ffmpeg::format::context::Output|
         -> Result<(), ffmpeg::Error> {
            let mut pkt = ffmpeg::Packet::empty();
            while enc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(aidx);
                pkt.rescale_ts(atb, ast_tb);
                pkt.write_interleaved(octx)?;
            }
            Ok(())
        };
        let mut offset = 0usize;
        while offset < samples.len() {
            let n = chunk.min(samples.len() - offset);
            // AAC needs full frames except the last; pad the last one with silence.
            let frame_len = if matches!(fmt, ffmpeg::format::Sample::F32(_)) { chunk } else { n };
            let mut af = ffmpeg::frame::Audio::new(fmt, frame_len, ffmpeg::ChannelLayout::MONO);
            af.set_rate(sr);
            let bytes = af.data_mut(0);
            for k in 0..frame_len {
                let v = if k < n { samples[offset + k].clamp(-1.0, 1.0) } else { 0.0 };
                match fmt {
                    ffmpeg::format::Sample::F32(_) => bytes[k * 4..k * 4 + 4].copy_from_slice(&v.to_ne_bytes()),
                    _ => bytes[k * 2..k * 2 + 2].copy_from_slice(&((v * 32_767.0).round() as i16).to_ne_bytes()),
                }
            }
            af.set_pts(Some(offset as i64));
            aenc.send_frame(&af).map_err(e)?;
            drain_audio(&mut aenc, &mut octx).map_err(e)?;
            offset += n;
        }
        aenc.send_eof().map_err(e)?;
        drain_audio(&mut aenc, &mut octx).map_err(e)?;
    }
    octx.write_trailer().map_err(e)
}
