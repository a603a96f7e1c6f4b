//! A PNG contact sheet of a SynthAV dataset: for each class, the first downstream-test clip's frames over its
//! first second, its log-frequency spectrogram aligned under them, and the same audio played twice as fast
//! (same time scale) to show the speed shift of pitch and rhythm.

use std::path::Path;

use plotters::element::BitMapElement;
use plotters::prelude::*;
use realfft::RealFftPlanner;

use super::{Split, SynthConfig, SynthError, render, split_labels};

/// File name of the preview inside the dataset folder.
pub const PREVIEW_FILE: &str = "synthav_preview.png";

/// Frames shown per clip, and the source-frame stride between them.
const SHOWN_FRAMES: usize = 8;
const FRAME_STRIDE: usize = 2;
/// Displayed frame size and gap (pixels).
const CELL: usize = 64;
const GAP: usize = 4;
/// Left column for class names.
const LABEL_W: usize = 150;
/// Spectrogram strip height, gap under the frames and gap between rows.
const SPEC_H: usize = 64;
const SPEC_GAP: usize = 3;
const ROW_GAP: usize = 14;
const HEADER_H: usize = 48;
/// Gap between the aligned spectrogram and the 2x-speed one.
const SPEED_GAP: usize = 16;
/// Speed-up factor of the right-hand spectrogram.
const SPEEDUP: f64 = 2.0;
/// Spectrogram: FFT size, hop, displayed frequency range (log axis) and dynamic range.
const N_FFT: usize = 512;
const HOP: usize = 64;
const SMOOTH_FRAMES: usize = 4;
const F_LO: f64 = 110.0;
const OCTAVES: f64 = 6.0;
const DYN_RANGE_DB: f64 = 50.0;
/// Steps of the spectrogram colour map.
const COLOUR_LEVELS: f64 = 24.0;
/// Frequencies marked on the axis (the family ladder).
const TICKS_HZ: [f64; 5] = [220.0, 440.0, 880.0, 1760.0, 3520.0];

/// Magnitude spectrogram in dB: `[frames][N_FFT / 2 + 1]`, frame k centred at sample k * HOP.
fn spectrogram_db(audio: &[f32]) -> Vec<Vec<f64>> {
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(N_FFT);
    let window: Vec<f64> =
        (0..N_FFT).map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / N_FFT as f64).cos()).collect();
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let frames = audio.len() / HOP;
    let mut out = Vec::with_capacity(frames);
    for k in 0..frames {
        for (i, x) in input.iter_mut().enumerate() {
            let j = (k * HOP + i) as isize - (N_FFT / 2) as isize;
            let s = if j >= 0 && (j as usize) < audio.len() { f64::from(audio[j as usize]) } else { 0.0 };
            *x = s * window[i];
        }
        // Lengths come from the planner itself, so this cannot fail.
        let _ = fft.process(&mut input, &mut spectrum);
        out.push(spectrum.iter().map(|c| c.norm_sqr()).collect::<Vec<f64>>());
    }
    // Power averaged over SMOOTH_FRAMES consecutive frames (a Welch-style estimate): a calmer noise floor.
    (0..frames)
        .map(|k| {
            let lo = k.saturating_sub(SMOOTH_FRAMES / 2);
            let hi = (lo + SMOOTH_FRAMES).min(frames);
            (0..out[k].len())
                .map(|b| {
                    let p = out[lo..hi].iter().map(|col| col[b]).sum::<f64>() / (hi - lo) as f64;
                    10.0 * (p + 1e-12).log10()
                })
                .collect()
        })
        .collect()
}

/// Dark-to-bright colour map (black, purple, orange, pale yellow), `v` in 0..1.
fn colour_map(v: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] =
        [[0.0, 0.0, 4.0], [87.0, 16.0, 110.0], [188.0, 55.0, 84.0], [249.0, 142.0, 9.0], [252.0, 255.0, 164.0]];
    // Quantised to COLOUR_LEVELS steps: the picture reads the same and compresses several times better.
    let v = (v.clamp(0.0, 1.0) * COLOUR_LEVELS).floor() / COLOUR_LEVELS;
    let x = v * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mut c = [0u8; 3];
    for ch in 0..3 {
        c[ch] = (STOPS[i][ch] * (1.0 - f) + STOPS[i + 1][ch] * f).round() as u8;
    }
    c
}

/// Simple RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
}

/// Draw an RGB24 frame scaled (bilinear) into a CELL x CELL square at `(x0, y0)`.
fn draw_frame(canvas: &mut Canvas, frame: &[u8], fw: usize, fh: usize, x0: usize, y0: usize) {
    for y in 0..CELL {
        let sy = ((y as f64 + 0.5) * fh as f64 / CELL as f64 - 0.5).clamp(0.0, (fh - 1) as f64);
        let (y1, fy) = (sy.floor() as usize, sy.fract());
        let y2 = (y1 + 1).min(fh - 1);
        for x in 0..CELL {
            let sx = ((x as f64 + 0.5) * fw as f64 / CELL as f64 - 0.5).clamp(0.0, (fw - 1) as f64);
            let (x1, fx) = (sx.floor() as usize, sx.fract());
            let x2 = (x1 + 1).min(fw - 1);
            let mut c = [0u8; 3];
            for (ch, out) in c.iter_mut().enumerate() {
                let p = |xx: usize, yy: usize| f64::from(frame[(yy * fw + xx) * 3 + ch]);
                let top = p(x1, y1) * (1.0 - fx) + p(x2, y1) * fx;
                let bottom = p(x1, y2) * (1.0 - fx) + p(x2, y2) * fx;
                *out = (top * (1.0 - fy) + bottom * fy).round() as u8;
            }
            canvas.set(x0 + x, y0 + y, c);
        }
    }
}

/// Draw a spectrogram strip `width` pixels wide at `(x0, y0)`: time `t = x / px_per_sec` of the audio played
/// `speed` times faster, on a log-frequency axis from F_LO over OCTAVES octaves.
#[allow(clippy::too_many_arguments)]
fn draw_spectrogram(
    canvas: &mut Canvas,
    spec: &[Vec<f64>],
    peak_db: f64,
    sample_rate: u32,
    speed: f64,
    px_per_sec: f64,
    x0: usize,
    y0: usize,
    width: usize,
) {
    let bin_hz = f64::from(sample_rate) / N_FFT as f64;
    let bins = N_FFT / 2 + 1;
    for x in 0..width {
        // Played `speed` times faster: display time t shows source time speed * t and source frequency f / speed.
        let t_src = speed * (x as f64 + 0.5) / px_per_sec;
        let k = (t_src * f64::from(sample_rate) / HOP as f64).round() as usize;
        for y in 0..SPEC_H {
            let f_shown = F_LO * 2f64.powf(OCTAVES * (1.0 - (y as f64 + 0.5) / SPEC_H as f64));
            let b = f_shown / speed / bin_hz;
            let c = match spec.get(k) {
                Some(col) if b < (bins - 1) as f64 => {
                    let (i, f) = (b.floor() as usize, b.fract());
                    let db = col[i] * (1.0 - f) + col[i + 1] * f;
                    colour_map((db - peak_db + DYN_RANGE_DB) / DYN_RANGE_DB)
                }
                _ => [40, 40, 40],
            };
            canvas.set(x0 + x, y0 + y, c);
        }
    }
}

fn preview_err(path: &Path, e: impl std::fmt::Display) -> SynthError {
    SynthError::Preview { path: path.to_path_buf(), reason: e.to_string() }
}

/// Write the contact sheet of `cfg`'s dataset (one row per class, clips from the downstream test split) to `path`.
pub fn write_preview(cfg: &SynthConfig, path: &Path) -> Result<(), SynthError> {
    cfg.validate()?;
    let classes = cfg.classes();
    let labels = split_labels(cfg, Split::Test);
    let shown_seconds = (SHOWN_FRAMES * FRAME_STRIDE) as f64 / f64::from(cfg.fps);
    let strip_w = SHOWN_FRAMES * (CELL + GAP) - GAP;
    let px_per_sec = (SHOWN_FRAMES * (CELL + GAP)) as f64 / shown_seconds;
    let speed_w = (strip_w as f64 / SPEEDUP).round() as usize;
    let width = LABEL_W + strip_w + SPEED_GAP + speed_w + 10;
    let row_h = CELL + SPEC_GAP + SPEC_H + ROW_GAP;
    let height = HEADER_H + classes.len() * row_h;
    let mut canvas = Canvas { w: width, h: height, px: vec![255; width * height * 3] };
    let mut texts: Vec<(String, (i32, i32), u32)> = Vec::new();
    let x_frames = LABEL_W;
    let x_speed = LABEL_W + strip_w + SPEED_GAP;
    for class in &classes {
        let index = labels
            .iter()
            .position(|&l| l == class.label)
            .ok_or_else(|| preview_err(path, format!("no downstream test clip of class {}", class.name)))?;
        let clip = render(cfg, super::clip_params(cfg, Split::Test, index, class.label));
        let y0 = HEADER_H + class.label * row_h;
        for i in 0..SHOWN_FRAMES {
            let k = (i * FRAME_STRIDE).min(clip.frames.len() - 1);
            draw_frame(&mut canvas, &clip.frames[k], clip.width, clip.height, x_frames + i * (CELL + GAP), y0);
        }
        let spec = spectrogram_db(&clip.audio);
        let peak_db = spec.iter().flatten().fold(f64::MIN, |m, &v| m.max(v));
        let y_spec = y0 + CELL + SPEC_GAP;
        draw_spectrogram(&mut canvas, &spec, peak_db, cfg.sample_rate, 1.0, px_per_sec, x_frames, y_spec, strip_w);
        draw_spectrogram(&mut canvas, &spec, peak_db, cfg.sample_rate, SPEEDUP, px_per_sec, x_speed, y_spec, speed_w);
        // Event onsets (ticks above the aligned spectrogram).
        for t in super::event_times(&clip.params, 0.0, shown_seconds) {
            let x = x_frames + (t * px_per_sec) as usize;
            for dy in 0..SPEC_GAP {
                canvas.set(x, y_spec - 1 - dy, [220, 0, 0]);
            }
        }
        texts.push((class.name.clone(), (8, (y0 + 8) as i32), 17));
        let detail = format!("{:.0} Hz, {} ev/s", clip.params.pitch_hz, class.events_per_second);
        texts.push((detail, (8, (y0 + 30) as i32), 13));
        for f in TICKS_HZ {
            let y = y_spec as f64 + SPEC_H as f64 * (1.0 - (f / F_LO).log2() / OCTAVES);
            texts.push((format!("{f:.0} Hz"), ((LABEL_W - 52) as i32, y as i32 - 6), 10));
            canvas.set(x_frames - 3, y as usize, [0, 0, 0]);
            canvas.set(x_frames - 2, y as usize, [0, 0, 0]);
        }
    }
    texts.push((
        format!(
            "SynthAV preset {} seed {}: {} frames every {:.3} s, spectrogram (log f) aligned below; red ticks = events",
            cfg.preset.name(),
            cfg.seed,
            SHOWN_FRAMES,
            FRAME_STRIDE as f64 / f64::from(cfg.fps)
        ),
        (8, 6),
        15,
    ));
    texts.push((format!("same audio at {SPEEDUP}x speed"), (x_speed as i32, 28), 14));

    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let image = BitMapElement::with_owned_buffer((0, 0), (width as u32, height as u32), canvas.px)
        .ok_or_else(|| preview_err(path, "canvas buffer has the wrong size"))?;
    root.draw(&image).map_err(|e| preview_err(path, e))?;
    for (text, pos, size) in texts {
        let style = ("sans-serif", size).into_font().color(&BLACK);
        root.draw(&Text::new(text, pos, style)).map_err(|e| preview_err(path, e))?;
    }
    root.present().map_err(|e| preview_err(path, e))?;
    Ok(())
}
