//! What a SynthAV clip shows and sounds like: the motion families (the labels), the random nuisances (appearance,
//! placement, loudness, noise), the trajectory of the object and the times of its audible events.
//!
//! Everything here is a pure function of a [`ClipParams`], which is itself drawn from a seeded RNG, so a clip is
//! fully determined by (dataset seed, split, clip index).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Object radius as a fraction of the frame's shorter side (uniform range). A nuisance.
pub const SIZE_RANGE: (f32, f32) = (0.16, 0.24);
/// Bounce height (apex above the floor) as a fraction of the frame height.
pub const BOUNCE_HEIGHT_RANGE: (f32, f32) = (0.22, 0.34);
/// Orbit radius as a fraction of the frame's shorter side.
pub const ORBIT_RADIUS_RANGE: (f32, f32) = (0.12, 0.20);
/// Half-width of a sweep as a fraction of the frame width.
pub const SWEEP_AMPLITUDE_RANGE: (f32, f32) = (0.12, 0.20);
/// Largest vertical travel of a sweep (it runs on a tilted line), fraction of the frame height.
pub const SWEEP_TILT_MAX: f32 = 0.12;
/// Relative size change of a pulse: the scale runs between `1 - depth` and `1 + depth`.
pub const PULSE_DEPTH: f32 = 0.4;
/// Distance kept between the object and the frame border, fraction of the frame side.
pub const MARGIN: f32 = 0.04;
/// Background base colour channels are uniform in this range (0..1).
pub const BACKGROUND_RANGE: (f32, f32) = (0.1, 0.9);
/// Largest colour change across the background gradient, per channel.
pub const GRADIENT_MAX: f32 = 0.3;
/// Probability that a clip has a static distractor shape in the background.
pub const DISTRACTOR_PROBABILITY: f64 = 0.25;
/// Smallest Euclidean RGB distance (0..1 units) between the object (or distractor) and the background base colour.
pub const MIN_CONTRAST: f32 = 0.35;
/// Standard deviation of the per-pixel, per-frame sensor noise (0..1 units), uniform in this range.
pub const PIXEL_NOISE_RANGE: (f32, f32) = (0.0, 0.015);
/// Relative pitch jitter of a clip's sound around its family's base frequency (uniform in `1 +- jitter`).
pub const PITCH_JITTER: f64 = 0.06;
/// Background noise RMS relative to the loudest event (uniform range).
pub const NOISE_RMS_RANGE: (f32, f32) = (0.004, 0.04);
/// Smoothing coefficient of the one-pole low-pass that colours the noise (0 = white).
pub const NOISE_SMOOTH_RANGE: (f32, f32) = (0.0, 0.9);
/// Peak amplitude of the final mix, full scale = 1 (uniform range): loudness is a nuisance.
pub const PEAK_GAIN_RANGE: (f32, f32) = (0.3, 0.8);
/// Per-event amplitude (relative) is uniform in this range.
pub const EVENT_GAIN_RANGE: (f64, f64) = (0.7, 1.0);
/// Events this long before the clip starts still sound (their tails reach into the clip).
pub const EVENT_LOOKBACK_SECONDS: f64 = 1.0;

/// The motion family of a class: how the object moves, which events it makes and what they sound like.
///
/// The four base frequencies form an octave ladder (220, 440, 880, 1760 Hz): playing a clip `2^k` times faster
/// moves its sound `k` families up, which is the cow/cat effect the paper's SoftInfoNCE is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Vertical bounce on a floor (parabolic flight); a low damped "impact" at every floor contact.
    Bounce,
    /// Circular orbit; a ringing "chime" each time the object passes the top of its circle.
    Orbit,
    /// Back-and-forth sweep along a (tilted) line at constant speed; a short "click" at each turn.
    Sweep,
    /// The object stays put and grows/shrinks; a smooth "tone burst" at each size peak.
    Pulse,
}

impl Family {
    /// All families in label order.
    pub const ALL: [Family; 4] = [Family::Bounce, Family::Orbit, Family::Sweep, Family::Pulse];

    /// Lower-case name used in class names.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bounce => "bounce",
            Family::Orbit => "orbit",
            Family::Sweep => "sweep",
            Family::Pulse => "pulse",
        }
    }

    /// Audible events per motion cycle (a sweep turns twice per cycle).
    pub fn events_per_cycle(self) -> u32 {
        match self {
            Family::Sweep => 2,
            _ => 1,
        }
    }

    /// Fundamental frequency of the family's event sound, before the per-clip jitter.
    pub fn base_freq_hz(self) -> f64 {
        match self {
            Family::Bounce => 220.0,
            Family::Orbit => 440.0,
            Family::Sweep => 880.0,
            Family::Pulse => 1760.0,
        }
    }

    /// What the event sounds like (documentation and synthav.json).
    pub fn sound(self) -> &'static str {
        match self {
            Family::Bounce => "impact: damped 2-mode resonance (decay 45 ms) plus a 3 ms noise burst",
            Family::Orbit => "chime: harmonic bell tone, 3 ms attack, decay 150 ms",
            Family::Sweep => "click: 6 ms damped sinusoid plus a sub-millisecond broadband tick",
            Family::Pulse => "tone burst: 80 ms Hann-windowed tone with its octave",
        }
    }

    /// Which motion event is audible (documentation and synthav.json).
    pub fn event(self) -> &'static str {
        match self {
            Family::Bounce => "floor contact",
            Family::Orbit => "top of the circle",
            Family::Sweep => "turn at either end",
            Family::Pulse => "largest size",
        }
    }
}

/// Shape of the moving object (a nuisance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Ring,
}

impl Shape {
    /// All shapes.
    pub const ALL: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Ring];

    /// Signed distance (pixels, negative inside) from the point `(px, py)` (pixels, relative to the shape's centre,
    /// already rotated into the shape's frame) to a shape of radius `r` pixels.
    pub fn sdf(self, px: f32, py: f32, r: f32) -> f32 {
        match self {
            Shape::Circle => (px * px + py * py).sqrt() - r,
            Shape::Square => {
                // Half-side 0.8 r (corners at 1.13 r) keeps the area close to the circle's.
                let h = 0.8 * r;
                let qx = px.abs() - h;
                let qy = py.abs() - h;
                let ox = qx.max(0.0);
                let oy = qy.max(0.0);
                (ox * ox + oy * oy).sqrt() + qx.max(qy).min(0.0)
            }
            Shape::Triangle => {
                // Equilateral triangle with half-side `a` (Inigo Quilez's exact SDF), pointing up; circumradius
                // 1.1 r.
                let a = 0.95 * r;
                let k = 3f32.sqrt();
                let mut x = px.abs() - a;
                let mut y = -py + a / k;
                if x + k * y > 0.0 {
                    let (nx, ny) = ((x - k * y) / 2.0, (-k * x - y) / 2.0);
                    x = nx;
                    y = ny;
                }
                x -= x.clamp(-2.0 * a, 0.0);
                -(x * x + y * y).sqrt() * y.signum()
            }
            Shape::Ring => ((px * px + py * py).sqrt() - 0.7 * r).abs() - 0.3 * r,
        }
    }
}

/// A static shape drawn into the background.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distractor {
    pub shape: Shape,
    pub colour: [f32; 3],
    /// Radius, fraction of the shorter frame side.
    pub size: f32,
    /// Centre, normalised coordinates (x right, y down, 0..1).
    pub x: f32,
    pub y: f32,
    pub rotation: f32,
}

/// The static background of a clip: a base colour, a linear colour gradient and maybe a distractor shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Background {
    pub base: [f32; 3],
    /// Colour change per unit of the gradient coordinate (which runs from about -0.7 to 0.7 across the frame).
    pub gradient: [f32; 3],
    /// Gradient direction in radians.
    pub angle: f32,
    pub distractor: Option<Distractor>,
}

/// Where the motion happens (normalised coordinates) and its extent; the meaning of `extent` depends on the family
/// (bounce height, orbit radius, sweep half-width; unused for a pulse).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Motion {
    /// For a bounce `cy` is the floor (the centre's lowest point); otherwise the centre of the motion.
    pub cx: f32,
    pub cy: f32,
    pub extent: f32,
    /// Vertical travel of a sweep over its half-width (signed).
    pub tilt: f32,
    /// +1 or -1: orbit direction, or which end a sweep starts from.
    pub direction: f32,
}

/// Everything that determines one clip. Drawn by [`sample_params`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipParams {
    /// Class index (`family_index * rates + rate_index`).
    pub label: usize,
    pub family: Family,
    /// Motion cycles per second.
    pub rate_hz: f64,
    /// Motion phase at t = 0, in cycles (0..1): event times are random per clip.
    pub phase: f64,
    pub motion: Motion,
    pub shape: Shape,
    /// Object radius, fraction of the shorter frame side.
    pub size: f32,
    pub rotation: f32,
    pub colour: [f32; 3],
    pub background: Background,
    /// Sensor noise standard deviation (0..1 units).
    pub pixel_noise: f32,
    /// The clip's event frequency (family base frequency times the pitch jitter), Hz.
    pub pitch_hz: f64,
    /// Background noise RMS relative to the loudest event.
    pub noise_rms: f32,
    /// One-pole smoothing of the noise (0 = white).
    pub noise_smooth: f32,
    /// Peak of the final mix (full scale = 1).
    pub peak_gain: f32,
    /// Seed of the per-pixel noise and the audio noise/event gains.
    pub noise_seed: u64,
}

fn uniform(rng: &mut ChaCha8Rng, range: (f32, f32)) -> f32 {
    range.0 + (range.1 - range.0) * rng.random::<f32>()
}

fn random_colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    [rng.random::<f32>(), rng.random::<f32>(), rng.random::<f32>()]
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// A random colour at least [`MIN_CONTRAST`] away from `base` (rejection sampling with a fixed number of tries,
/// then the complement of `base`, which is always far enough since `base` stays inside [`BACKGROUND_RANGE`]).
fn contrasting_colour(rng: &mut ChaCha8Rng, base: [f32; 3]) -> [f32; 3] {
    const TRIES: usize = 32;
    for _ in 0..TRIES {
        let c = random_colour(rng);
        if distance(c, base) >= MIN_CONTRAST {
            return c;
        }
    }
    [1.0 - base[0], 1.0 - base[1], 1.0 - base[2]]
}

/// Uniform in `[lo, hi]`, or the midpoint when the interval is empty (a tiny frame where the margins overlap).
fn uniform_between(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    if hi > lo { lo + (hi - lo) * rng.random::<f32>() } else { 0.5 * (lo + hi) }
}

/// Draw a clip's parameters for class `label` of family `family` at `rate_hz`. `width` and `height` are needed
/// to keep the object inside non-square frames.
pub fn sample_params(
    rng: &mut ChaCha8Rng,
    label: usize,
    family: Family,
    rate_hz: f64,
    width: usize,
    height: usize,
) -> ClipParams {
    let short = width.min(height) as f32;
    // Radius of the object in normalised units along each axis.
    let size = uniform(rng, SIZE_RANGE);
    let rx = size * short / width as f32;
    let ry = size * short / height as f32;
    let phase = rng.random::<f64>();
    let direction = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let motion = match family {
        Family::Bounce => {
            let h = uniform(rng, BOUNCE_HEIGHT_RANGE);
            let cx = uniform_between(rng, rx + MARGIN, 1.0 - rx - MARGIN);
            let floor = uniform_between(rng, h + ry + MARGIN, 1.0 - ry - MARGIN);
            Motion { cx, cy: floor, extent: h, tilt: 0.0, direction }
        }
        Family::Orbit => {
            let r = uniform(rng, ORBIT_RADIUS_RANGE);
            let (ox, oy) = (r * short / width as f32, r * short / height as f32);
            let cx = uniform_between(rng, ox + rx + MARGIN, 1.0 - ox - rx - MARGIN);
            let cy = uniform_between(rng, oy + ry + MARGIN, 1.0 - oy - ry - MARGIN);
            Motion { cx, cy, extent: r, tilt: 0.0, direction }
        }
        Family::Sweep => {
            let a = uniform(rng, SWEEP_AMPLITUDE_RANGE);
            let tilt = uniform(rng, (-SWEEP_TILT_MAX, SWEEP_TILT_MAX));
            let cx = uniform_between(rng, a + rx + MARGIN, 1.0 - a - rx - MARGIN);
            let cy = uniform_between(rng, tilt.abs() + ry + MARGIN, 1.0 - tilt.abs() - ry - MARGIN);
            Motion { cx, cy, extent: a, tilt, direction }
        }
        Family::Pulse => {
            let (px, py) = (rx * (1.0 + PULSE_DEPTH), ry * (1.0 + PULSE_DEPTH));
            let cx = uniform_between(rng, px + MARGIN, 1.0 - px - MARGIN);
            let cy = uniform_between(rng, py + MARGIN, 1.0 - py - MARGIN);
            Motion { cx, cy, extent: 0.0, tilt: 0.0, direction }
        }
    };
    let shape = Shape::ALL[rng.random_range(0..Shape::ALL.len())];
    let rotation = rng.random::<f32>() * std::f32::consts::TAU;
    let base = [uniform(rng, BACKGROUND_RANGE), uniform(rng, BACKGROUND_RANGE), uniform(rng, BACKGROUND_RANGE)];
    let gradient = [
        uniform(rng, (-GRADIENT_MAX, GRADIENT_MAX)),
        uniform(rng, (-GRADIENT_MAX, GRADIENT_MAX)),
        uniform(rng, (-GRADIENT_MAX, GRADIENT_MAX)),
    ];
    let angle = rng.random::<f32>() * std::f32::consts::TAU;
    let colour = contrasting_colour(rng, base);
    let distractor = if rng.random_bool(DISTRACTOR_PROBABILITY) {
        let dsize = uniform(rng, SIZE_RANGE);
        Some(Distractor {
            shape: Shape::ALL[rng.random_range(0..Shape::ALL.len())],
            colour: contrasting_colour(rng, base),
            size: dsize,
            x: uniform_between(rng, dsize, 1.0 - dsize),
            y: uniform_between(rng, dsize, 1.0 - dsize),
            rotation: rng.random::<f32>() * std::f32::consts::TAU,
        })
    } else {
        None
    };
    let pixel_noise = uniform(rng, PIXEL_NOISE_RANGE);
    let pitch_hz = family.base_freq_hz() * (1.0 + PITCH_JITTER * (2.0 * rng.random::<f64>() - 1.0));
    let noise_rms = uniform(rng, NOISE_RMS_RANGE);
    let noise_smooth = uniform(rng, NOISE_SMOOTH_RANGE);
    let peak_gain = uniform(rng, PEAK_GAIN_RANGE);
    let noise_seed = rng.random::<u64>();
    ClipParams {
        label,
        family,
        rate_hz,
        phase,
        motion,
        shape,
        size,
        rotation,
        colour,
        background: Background { base, gradient, angle, distractor },
        pixel_noise,
        pitch_hz,
        noise_rms,
        noise_smooth,
        peak_gain,
        noise_seed,
    }
}

/// Position of the object at time `t` seconds: `(x, y, scale)` with `x, y` normalised (x right, y down) and
/// `scale` multiplying the radius.
pub fn object_at(p: &ClipParams, t: f64, width: usize, height: usize) -> (f32, f32, f32) {
    let cycles = p.rate_hz * t + p.phase;
    let frac = cycles.rem_euclid(1.0) as f32;
    let m = &p.motion;
    let short = width.min(height) as f32;
    match p.family {
        Family::Bounce => {
            // Parabolic flight between floor contacts at whole cycles.
            let h = m.extent * 4.0 * frac * (1.0 - frac);
            (m.cx, m.cy - h, 1.0)
        }
        Family::Orbit => {
            // At whole cycles the object is at the top of its circle.
            let theta = std::f64::consts::FRAC_PI_2 + f64::from(m.direction) * std::f64::consts::TAU * cycles;
            let (ox, oy) = (m.extent * short / width as f32, m.extent * short / height as f32);
            (m.cx + ox * theta.cos() as f32, m.cy - oy * theta.sin() as f32, 1.0)
        }
        Family::Sweep => {
            // Triangle wave: -1 at whole cycles, +1 at half cycles (the two turns), constant speed between.
            let tri = 1.0 - 4.0 * (frac - 0.5).abs();
            (m.cx + m.direction * m.extent * tri, m.cy + m.tilt * tri, 1.0)
        }
        Family::Pulse => {
            let scale = 1.0 + PULSE_DEPTH * (std::f64::consts::TAU * cycles).cos() as f32;
            (m.cx, m.cy, scale)
        }
    }
}

/// Times (seconds) of the clip's audible events in `[t0, t1)`, ascending: where the motion cycle count
/// `rate * t + phase` is a multiple of `1 / events_per_cycle`.
pub fn event_times(p: &ClipParams, t0: f64, t1: f64) -> Vec<f64> {
    let per_cycle = f64::from(p.family.events_per_cycle());
    let first = ((p.rate_hz * t0 + p.phase) * per_cycle).ceil() as i64;
    let mut out = Vec::new();
    for k in first.. {
        let t = (k as f64 / per_cycle - p.phase) / p.rate_hz;
        if t >= t1 {
            break;
        }
        if t >= t0 {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn params(family: Family, seed: u64) -> ClipParams {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        sample_params(&mut rng, 0, family, 2.0, 64, 48)
    }

    #[test]
    fn events_coincide_with_motion_events() {
        for seed in 0..20 {
            for family in Family::ALL {
                let p = params(family, seed);
                let events = event_times(&p, 0.0, 3.0);
                let expected = (3.0 * p.rate_hz * f64::from(family.events_per_cycle())).round() as usize;
                assert!(events.len().abs_diff(expected) <= 1, "{family:?}: {} events", events.len());
                for &t in &events {
                    let (x, y, s) = object_at(&p, t, 64, 48);
                    let m = &p.motion;
                    match family {
                        Family::Bounce => assert!((y - m.cy).abs() < 1e-4, "bounce not on the floor at an event"),
                        Family::Orbit => assert!((y - (m.cy - m.extent * 48.0 / 48.0)).abs() < 1e-3),
                        Family::Sweep => assert!((x - m.cx).abs() > 0.999 * m.extent, "sweep not at a turn"),
                        Family::Pulse => assert!((s - (1.0 + PULSE_DEPTH)).abs() < 1e-4),
                    }
                }
            }
        }
    }

    #[test]
    fn object_stays_inside_the_frame() {
        for seed in 0..200 {
            for family in Family::ALL {
                let p = params(family, seed);
                let (w, h) = (64usize, 48usize);
                let short = w.min(h) as f32;
                for k in 0..100 {
                    let (x, y, s) = object_at(&p, k as f64 * 0.031, w, h);
                    let (rx, ry) = (p.size * s * short / w as f32, p.size * s * short / h as f32);
                    assert!(x - rx >= 0.0 && x + rx <= 1.0, "{family:?} x={x} rx={rx}");
                    assert!(y - ry >= 0.0 && y + ry <= 1.0, "{family:?} y={y} ry={ry}");
                }
            }
        }
    }

    #[test]
    fn shapes_are_inside_at_centre_and_outside_far_away() {
        for s in Shape::ALL {
            let centre = if s == Shape::Ring { s.sdf(0.7 * 5.0, 0.0, 5.0) } else { s.sdf(0.0, 0.0, 5.0) };
            assert!(centre < 0.0, "{s:?}");
            assert!(s.sdf(20.0, 3.0, 5.0) > 0.0, "{s:?}");
        }
    }
}
