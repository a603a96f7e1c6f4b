//! Rendering a [`ClipParams`] into RGB frames and a mono waveform (in memory; `encode.rs` writes them).
//!
//! Frames: a static background (base colour, linear gradient, maybe a distractor) with the moving object drawn
//! anti-aliased from its signed distance function, plus per-pixel sensor noise. Audio: one event sound per motion
//! event (timbre and pitch set by the family), a quiet hum at the same pitch that swells to each event, coloured
//! background noise, and a random overall gain.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scene::{ClipParams, EVENT_GAIN_RANGE, EVENT_LOOKBACK_SECONDS, Family, Shape, event_times, object_at};

/// Peak level of the hum relative to the loudest event (see [`render_audio`]).
pub const HUM_GAIN: f64 = 0.15;

/// RNG stream (of the clip's `noise_seed`) for the per-pixel noise.
const VIDEO_NOISE_STREAM: u64 = 1;
/// RNG stream (of the clip's `noise_seed`) for event gains and audio noise.
const AUDIO_NOISE_STREAM: u64 = 2;

/// Decay time constant of a bounce impact (s).
pub const IMPACT_DECAY: f64 = 0.045;
/// Second resonance of an impact, relative to its fundamental (a struck bar's inharmonic mode).
pub const IMPACT_MODE_RATIO: f64 = 2.76;
/// Decay time constant of the impact's noise burst (s).
pub const IMPACT_NOISE_DECAY: f64 = 0.003;
/// Attack and decay of an orbit chime (s).
pub const CHIME_ATTACK: f64 = 0.003;
pub const CHIME_DECAY: f64 = 0.15;
/// Attack and decay of a sweep click (s), and the decay of its broadband tick.
pub const CLICK_ATTACK: f64 = 0.0005;
pub const CLICK_DECAY: f64 = 0.006;
pub const CLICK_TICK_DECAY: f64 = 0.0007;
/// Length of a pulse tone burst (s); the burst is centred on the size peak.
pub const BURST_LENGTH: f64 = 0.08;

/// SplitMix64 (Steele et al. 2014): a tiny, fast generator for the per-pixel noise, seeded from the clip's ChaCha
/// stream (hundreds of thousands of draws per clip).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One clip in memory.
#[derive(Clone, Debug)]
pub struct RenderedClip {
    pub params: ClipParams,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// One RGB24 frame per time step, each `[height, width, 3]` row-major.
    pub frames: Vec<Vec<u8>>,
    /// Mono samples in [-1, 1].
    pub audio: Vec<f32>,
    pub sample_rate: u32,
}

/// Composite a shape of radius `r` pixels centred at `(cx, cy)` (pixels) into an RGB float image.
#[allow(clippy::too_many_arguments)]
fn draw_shape(
    img: &mut [f32],
    width: usize,
    height: usize,
    shape: Shape,
    colour: [f32; 3],
    cx: f32,
    cy: f32,
    r: f32,
    rotation: f32,
) {
    // Every shape lies within 1.2 r of its centre; one more pixel for the anti-aliased edge.
    let reach = 1.25 * r + 1.0;
    let x0 = (cx - reach).floor().max(0.0) as usize;
    let y0 = (cy - reach).floor().max(0.0) as usize;
    let x1 = ((cx + reach).ceil().max(0.0) as usize).min(width);
    let y1 = ((cy + reach).ceil().max(0.0) as usize).min(height);
    let (s, c) = rotation.sin_cos();
    for y in y0..y1 {
        for x in x0..x1 {
            let dx = x as f32 + 0.5 - cx;
            let dy = y as f32 + 0.5 - cy;
            let d = shape.sdf(c * dx + s * dy, -s * dx + c * dy, r);
            let alpha = (0.5 - d).clamp(0.0, 1.0);
            if alpha > 0.0 {
                let px = &mut img[(y * width + x) * 3..(y * width + x) * 3 + 3];
                for ch in 0..3 {
                    px[ch] = px[ch] * (1.0 - alpha) + colour[ch] * alpha;
                }
            }
        }
    }
}

/// The static background of a clip as an RGB float image (0..1), `[height, width, 3]`.
pub fn render_background(p: &ClipParams, width: usize, height: usize) -> Vec<f32> {
    let b = &p.background;
    let (sa, ca) = b.angle.sin_cos();
    let mut img = vec![0.0f32; width * height * 3];
    for y in 0..height {
        let v = (y as f32 + 0.5) / height as f32 - 0.5;
        for x in 0..width {
            let u = (x as f32 + 0.5) / width as f32 - 0.5;
            let g = u * ca + v * sa;
            for ch in 0..3 {
                img[(y * width + x) * 3 + ch] = (b.base[ch] + b.gradient[ch] * g).clamp(0.0, 1.0);
            }
        }
    }
    if let Some(d) = &b.distractor {
        let short = width.min(height) as f32;
        draw_shape(
            &mut img,
            width,
            height,
            d.shape,
            d.colour,
            d.x * width as f32,
            d.y * height as f32,
            d.size * short,
            d.rotation,
        );
    }
    img
}

/// Render `frames` RGB24 frames at `fps` (frame k shows time k / fps).
pub fn render_video(p: &ClipParams, width: usize, height: usize, frames: usize, fps: u32) -> Vec<Vec<u8>> {
    let background = render_background(p, width, height);
    let short = width.min(height) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(p.noise_seed);
    rng.set_stream(VIDEO_NOISE_STREAM);
    let mut noise = SplitMix64(rng.random());
    // Sum of two uniforms (triangular, variance 1/6) scaled to unit variance: cheap and bounded sensor noise.
    let noise_scale = p.pixel_noise * 6f32.sqrt();
    let mut out = Vec::with_capacity(frames);
    let mut img = background.clone();
    for k in 0..frames {
        let t = k as f64 / f64::from(fps);
        let (x, y, scale) = object_at(p, t, width, height);
        img.copy_from_slice(&background);
        draw_shape(
            &mut img,
            width,
            height,
            p.shape,
            p.colour,
            x * width as f32,
            y * height as f32,
            p.size * scale * short,
            p.rotation,
        );
        let mut frame = vec![0u8; img.len()];
        // One 64-bit draw gives the noise of two values (four 16-bit uniforms).
        for (dst, src) in frame.chunks_mut(2).zip(img.chunks(2)) {
            let r = noise.next_u64();
            for (j, (d, &v)) in dst.iter_mut().zip(src).enumerate() {
                let bits = r >> (32 * j);
                let a = (bits & 0xFFFF) as f32 / 65_536.0;
                let b = ((bits >> 16) & 0xFFFF) as f32 / 65_536.0;
                let noisy = v + noise_scale * (a + b - 1.0);
                *d = (noisy * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
        out.push(frame);
    }
    out
}

/// How long before the motion event its sound starts: a tone burst is centred on the size peak, every other
/// sound starts at the event.
pub fn sound_lead(family: Family) -> f64 {
    match family {
        Family::Pulse => BURST_LENGTH / 2.0,
        _ => 0.0,
    }
}

/// How long an event's tonal part lasts before it is cut (below -55 dB for every family).
pub fn sound_length(family: Family) -> f64 {
    match family {
        Family::Bounce => 7.0 * IMPACT_DECAY,
        Family::Orbit => 7.0 * CHIME_DECAY,
        Family::Sweep => 8.0 * CLICK_DECAY,
        Family::Pulse => BURST_LENGTH,
    }
}

/// The tonal part of an event's sound `t` seconds after its onset (`t >= 0`), before the event gain.
fn tonal_sample(family: Family, f: f64, t: f64) -> f64 {
    use std::f64::consts::{PI, TAU};
    match family {
        Family::Bounce => {
            let body = (TAU * f * t).sin() + 0.5 * (TAU * IMPACT_MODE_RATIO * f * t).sin();
            body * (-t / IMPACT_DECAY).exp() / 1.5
        }
        Family::Orbit => {
            let body = (TAU * f * t).sin() + 0.35 * (TAU * 2.0 * f * t).sin() + 0.2 * (TAU * 3.0 * f * t).sin();
            (t / CHIME_ATTACK).min(1.0) * (-t / CHIME_DECAY).exp() * body / 1.55
        }
        Family::Sweep => (t / CLICK_ATTACK).min(1.0) * (-t / CLICK_DECAY).exp() * (TAU * f * t).sin(),
        Family::Pulse => {
            if t >= BURST_LENGTH {
                return 0.0;
            }
            let w = (PI * t / BURST_LENGTH).sin();
            w * w * ((TAU * f * t).sin() + 0.25 * (TAU * 2.0 * f * t).sin()) / 1.25
        }
    }
}

/// The broadband (noise) part of an event: `(amplitude, decay time)` of an exponentially decaying white-noise
/// burst, if the family has one.
fn noise_burst(family: Family) -> Option<(f64, f64)> {
    match family {
        Family::Bounce => Some((0.6, IMPACT_NOISE_DECAY)),
        Family::Sweep => Some((0.3, CLICK_TICK_DECAY)),
        Family::Orbit | Family::Pulse => None,
    }
}

/// Render `samples` mono samples at `sample_rate`: the events, normalised so the loudest is 1, plus coloured
/// noise at the clip's relative level, then scaled so that the mix peaks at the clip's gain.
///
/// Every event of a clip shares one tonal waveform (computed once, started at the sample nearest to the onset,
/// i.e. within 31 us at 16 kHz) scaled by a random per-event gain; the noise burst of impacts and clicks is
/// drawn fresh for each event.
pub fn render_audio(p: &ClipParams, samples: usize, sample_rate: u32) -> Vec<f32> {
    let sr = f64::from(sample_rate);
    let duration = samples as f64 / sr;
    let mut rng = ChaCha8Rng::seed_from_u64(p.noise_seed);
    rng.set_stream(AUDIO_NOISE_STREAM);
    let template: Vec<f64> = (0..(sound_length(p.family) * sr).ceil() as usize)
        .map(|i| tonal_sample(p.family, p.pitch_hz, i as f64 / sr))
        .collect();
    let burst = noise_burst(p.family);
    // The noise burst is cut after 8 decay times (-70 dB).
    let burst_len = burst.map_or(0, |(_, decay)| (8.0 * decay * sr).ceil() as usize);
    let mut events = vec![0.0f64; samples];
    let lead = sound_lead(p.family);
    for event in event_times(p, -EVENT_LOOKBACK_SECONDS, duration + lead) {
        let onset = ((event - lead) * sr).round() as i64;
        let gain = EVENT_GAIN_RANGE.0 + (EVENT_GAIN_RANGE.1 - EVENT_GAIN_RANGE.0) * rng.random::<f64>();
        for (j, v) in template.iter().enumerate() {
            let i = onset + j as i64;
            if i >= 0 && (i as usize) < samples {
                events[i as usize] += gain * v;
            }
        }
        if let Some((amp, decay)) = burst {
            for j in 0..burst_len {
                let white = 2.0 * rng.random::<f64>() - 1.0;
                let i = onset + j as i64;
                if i >= 0 && (i as usize) < samples {
                    events[i as usize] += gain * amp * (-(j as f64) / (decay * sr)).exp() * white;
                }
            }
        }
    }
    let event_peak = events.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if event_peak > 0.0 {
        events.iter_mut().for_each(|v| *v /= event_peak);
    }
    // The hum: a quiet sustained tone at the clip's pitch whose loudness swells to each motion event and fades
    // between them, so that every window of a clip carries its family (pitch) and rhythm, not only the windows
    // that hold an event.
    let per_cycle = f64::from(p.family.events_per_cycle());
    for (i, v) in events.iter_mut().enumerate() {
        let t = i as f64 / sr;
        let swell = 0.5 + 0.5 * (std::f64::consts::TAU * (p.rate_hz * t + p.phase) * per_cycle).cos();
        *v += HUM_GAIN * swell * (std::f64::consts::TAU * p.pitch_hz * t).sin();
    }
    // Coloured noise: white through a one-pole low-pass, scaled to the clip's RMS (relative to an event peak of 1).
    let c = f64::from(p.noise_smooth);
    let mut state = 0.0f64;
    let mut noise: Vec<f64> = (0..samples)
        .map(|_| {
            state = c * state + (1.0 - c) * (2.0 * rng.random::<f64>() - 1.0);
            state
        })
        .collect();
    let rms = (noise.iter().map(|v| v * v).sum::<f64>() / samples.max(1) as f64).sqrt();
    if rms > 0.0 {
        let k = f64::from(p.noise_rms) / rms;
        noise.iter_mut().for_each(|v| *v *= k);
    }
    let mix: Vec<f64> = events.iter().zip(&noise).map(|(e, n)| e + n).collect();
    let peak = mix.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    // Never amplify a clip without events beyond the level an event would have had.
    let scale = f64::from(p.peak_gain) / peak.max(1.0);
    mix.iter().map(|v| (v * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::sample_params;

    fn params(family: Family, seed: u64) -> ClipParams {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        sample_params(&mut rng, 0, family, 2.0, 32, 32)
    }

    #[test]
    fn audio_is_bounded_and_peaks_at_the_gain() {
        for family in Family::ALL {
            let p = params(family, 7);
            let a = render_audio(&p, 16_000, 16_000);
            let peak = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak <= 1.0);
            assert!((peak - p.peak_gain).abs() < 0.1 * p.peak_gain, "{family:?}: peak {peak} gain {}", p.peak_gain);
        }
    }

    #[test]
    fn audio_energy_follows_the_events() {
        // The 10 ms at each event (after it; around it for a centred tone burst) must be much louder than the
        // 10 ms before its sound starts.
        let sr = 16_000u32;
        for family in Family::ALL {
            let p = params(family, 3);
            let a = render_audio(&p, 3 * sr as usize, sr);
            let energy = |from: f64| {
                let i0 = (from * f64::from(sr)) as usize;
                a[i0..i0 + 160].iter().map(|v| v * v).sum::<f32>()
            };
            let lead = sound_lead(family);
            for t in event_times(&p, 0.1, 2.9) {
                let loud = energy(t - lead.min(0.005));
                assert!(loud > 4.0 * energy(t - lead - 0.011), "{family:?} at {t}");
            }
        }
    }

    #[test]
    fn frames_show_the_object_where_the_trajectory_says() {
        let mut p = params(Family::Bounce, 11);
        p.shape = Shape::Circle; // a ring has a hole at its centre
        let frames = render_video(&p, 32, 32, 4, 16);
        assert_eq!(frames.len(), 4);
        assert!(frames.iter().all(|f| f.len() == 32 * 32 * 3));
        let (x, y, _) = object_at(&p, 2.0 / 16.0, 32, 32);
        let (px, py) = ((x * 32.0) as usize, (y * 32.0) as usize);
        let got = &frames[2][(py * 32 + px) * 3..(py * 32 + px) * 3 + 3];
        for ch in 0..3 {
            // Sensor noise is at most 0.015 * sqrt(6) ~ 0.037 (10 levels).
            assert!((f32::from(got[ch]) - p.colour[ch] * 255.0).abs() <= 11.0, "{got:?} vs {:?}", p.colour);
        }
    }
}
