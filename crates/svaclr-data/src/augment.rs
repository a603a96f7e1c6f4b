//! Visual augmentation: random resized crop, horizontal flip, colour jitter, grayscale, normalisation; and the
//! deterministic evaluation crops (centre, or left/centre/right along the long side).
//!
//! One [`ViewTransform`] is drawn per view and applied to every frame of it, so a view's frames share crop, flip
//! and jitter. Pixel operations follow torchvision / GDT (`datasets/video_transforms.py`):
//! - random resized crop: torchvision's `RandomResizedCrop.get_params` (10 tries, then a centre crop), bilinear
//!   resize with `align_corners=False` and no antialias (as `torch.nn.functional.interpolate`);
//! - colour jitter with probability `jitter_prob`: brightness, contrast and saturation factors drawn uniformly
//!   from `[max(0, 1 - s), 1 + s]`, applied in a random order on values in [0, 1] with clamping (torchvision's
//!   order of operations; GDT jitters after normalising, which we do not copy); contrast blends with the frame's
//!   mean grey level, saturation with the pixel's grey level (ITU-R 601 luma weights);
//! - grayscale with probability `grayscale_prob`; then `(x - mean) / std` per channel.
//!
//! Defaults are GDT's pre-training settings: scale (0.08, 1), ratio (3/4, 4/3), flip 0.5, jitter 0.4/0.4/0.4
//! with p = 0.8, grayscale p = 0.2, mean 0.45, std 0.225. (GDT's Gaussian blur is not implemented.)

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Luma weights (ITU-R 601) for grey levels.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];
/// Tries before random resized crop falls back to a centre crop (torchvision).
const CROP_TRIES: usize = 10;

/// Training-time visual augmentation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Range of the crop's area as a fraction of the frame.
    pub crop_scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip.
    pub flip_prob: f64,
    /// Probability of applying colour jitter to a view.
    pub jitter_prob: f64,
    /// Brightness jitter strength.
    pub brightness: f64,
    /// Contrast jitter strength.
    pub contrast: f64,
    /// Saturation jitter strength.
    pub saturation: f64,
    /// Probability of converting a view to grey.
    pub grayscale_prob: f64,
    /// Per-channel mean (RGB) subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB) divided by.
    pub std: [f32; 3],
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_prob: 0.5,
            jitter_prob: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            grayscale_prob: 0.2,
            mean: [0.45; 3],
            std: [0.225; 3],
        }
    }
}

impl AugmentConfig {
    /// Check ranges and probabilities; the error names the field.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Config(format!("augment: {m}")));
        let [s0, s1] = self.crop_scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return bad(format!("crop_scale must satisfy 0 < lo <= hi <= 1, got [{s0}, {s1}]"));
        }
        let [r0, r1] = self.crop_ratio;
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return bad(format!("crop_ratio must satisfy 0 < lo <= hi, got [{r0}, {r1}]"));
        }
        for (name, p) in
            [("flip_prob", self.flip_prob), ("jitter_prob", self.jitter_prob), ("grayscale_prob", self.grayscale_prob)]
        {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1], got {p}"));
            }
        }
        for (name, s) in [("brightness", self.brightness), ("contrast", self.contrast), ("saturation", self.saturation)]
        {
            if !(s >= 0.0 && s.is_finite()) {
                return bad(format!("{name} must be >= 0, got {s}"));
            }
        }
        if self.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            return bad(format!("std must be > 0, got {:?}", self.std));
        }
        Ok(())
    }
}

/// A crop rectangle in source pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// Colour jitter of one view: the order of the three operations (0 brightness, 1 contrast, 2 saturation) and
/// their factors (1 = unchanged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    /// Order in which the operations are applied.
    pub order: [usize; 3],
    /// Brightness, contrast and saturation factors.
    pub factors: [f32; 3],
}

/// Everything that is applied to the frames of one view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewTransform {
    /// Source rectangle, resized to the output size.
    pub crop: CropBox,
    /// Mirror left-right.
    pub flip: bool,
    /// Colour jitter, if drawn.
    pub jitter: Option<ColorJitter>,
    /// Convert to grey.
    pub grayscale: bool,
}

/// torchvision's `RandomResizedCrop.get_params` for a `height x width` frame.
pub fn random_resized_crop_box(
    rng: &mut impl Rng,
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
) -> CropBox {
    let area = (height * width) as f64;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..CROP_TRIES {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let aspect = if lr1 > lr0 { rng.random_range(lr0..=lr1).exp() } else { ratio[0] };
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if w > 0 && w <= width && h > 0 && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox { top, left, height: h, width: w };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        (((width as f64) / ratio[0]).round() as usize, width)
    } else if in_ratio > ratio[1] {
        (height, ((height as f64) * ratio[1]).round() as usize)
    } else {
        (height, width)
    };
    let (h, w) = (h.clamp(1, height), w.clamp(1, width));
    CropBox { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
}

/// Draw a training transform for a `height x width` frame.
pub fn draw_view_transform(rng: &mut impl Rng, cfg: &AugmentConfig, height: usize, width: usize) -> ViewTransform {
    let crop = random_resized_crop_box(rng, height, width, cfg.crop_scale, cfg.crop_ratio);
    let flip = rng.random::<f64>() < cfg.flip_prob;
    let jitter = if rng.random::<f64>() < cfg.jitter_prob {
        let mut order = [0usize, 1, 2];
        order.shuffle(rng);
        let mut factors = [1.0f32; 3];
        for (f, s) in factors.iter_mut().zip([cfg.brightness, cfg.contrast, cfg.saturation]) {
            if s > 0.0 {
                *f = rng.random_range((1.0 - s).max(0.0)..=1.0 + s) as f32;
            }
        }
        Some(ColorJitter { order, factors })
    } else {
        None
    };
    let grayscale = rng.random::<f64>() < cfg.grayscale_prob;
    ViewTransform { crop, flip, jitter, grayscale }
}

/// GDT's `uniform_crop`: a `size x size` square at position `index` (0, 1, 2 = left/top, centre, right/bottom)
/// along the long side, centred on the short side (offsets rounded up).
pub fn uniform_crop_box(height: usize, width: usize, size: usize, index: usize) -> CropBox {
    let size_h = size.min(height);
    let size_w = size.min(width);
    let mut top = (height - size_h).div_ceil(2);
    let mut left = (width - size_w).div_ceil(2);
    if height > width {
        match index {
            0 => top = 0,
            2 => top = height - size_h,
            _ => {}
        }
    } else {
        match index {
            0 => left = 0,
            2 => left = width - size_w,
            _ => {}
        }
    }
    CropBox { top, left, height: size_h, width: size_w }
}

/// The evaluation transform: `crops == 1` gives the centre crop, `crops == 3` the crop at `index` (0..3).
pub fn eval_transform(height: usize, width: usize, size: usize, crops: usize, index: usize) -> ViewTransform {
    let position = if crops == 1 { 1 } else { index };
    ViewTransform { crop: uniform_crop_box(height, width, size, position), flip: false, jitter: None, grayscale: false }
}

/// Source index pairs and weights for bilinear resizing (`align_corners=False`, no antialias).
fn bilinear_taps(in_len: usize, offset: usize, out_len: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_len as f64 / out_len as f64;
    (0..out_len)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(in_len - 1);
            let i1 = (i0 + 1).min(in_len - 1);
            (offset + i0, offset + i1, (src - i0 as f64) as f32)
        })
        .collect()
}

fn gray(p: &[f32]) -> f32 {
    LUMA[0] * p[0] + LUMA[1] * p[1] + LUMA[2] * p[2]
}

/// Apply a transform to the frames of one view and lay them out for the video encoder.
///
/// # Shapes
/// `frames`: `T` RGB24 frames, each `[height, width, 3]` row-major -> `[3, T, out, out]` row-major f32,
/// normalised with `mean` / `std`.
pub fn render_view(
    frames: &[&[u8]],
    height: usize,
    width: usize,
    out: usize,
    tf: &ViewTransform,
    mean: [f32; 3],
    std: [f32; 3],
) -> Vec<f32> {
    let t_len = frames.len();
    let plane = out * out;
    let mut result = vec![0.0f32; 3 * t_len * plane];
    let c = tf.crop;
    let (ch, cw) = (c.height.clamp(1, height), c.width.clamp(1, width));
    let ys = bilinear_taps(ch, c.top.min(height - ch), out);
    let xs = bilinear_taps(cw, c.left.min(width - cw), out);
    let inv255 = 1.0 / 255.0;
    let mut buf = vec![0.0f32; plane * 3];
    for (t, frame) in frames.iter().enumerate() {
        // Crop + resize (+ flip) into buf, values in [0, 1].
        for (oy, &(y0, y1, wy)) in ys.iter().enumerate() {
            let r0 = &frame[y0 * width * 3..(y0 + 1) * width * 3];
            let r1 = &frame[y1 * width * 3..(y1 + 1) * width * 3];
            for (ox, &(x0, x1, wx)) in xs.iter().enumerate() {
                let dst_x = if tf.flip { out - 1 - ox } else { ox };
                let d = &mut buf[(oy * out + dst_x) * 3..(oy * out + dst_x) * 3 + 3];
                for k in 0..3 {
                    let a = f32::from(r0[x0 * 3 + k]) * (1.0 - wx) + f32::from(r0[x1 * 3 + k]) * wx;
                    let b = f32::from(r1[x0 * 3 + k]) * (1.0 - wx) + f32::from(r1[x1 * 3 + k]) * wx;
                    d[k] = (a * (1.0 - wy) + b * wy) * inv255;
                }
            }
        }
        if let Some(j) = &tf.jitter {
            for &op in &j.order {
                let f = j.factors[op];
                if f == 1.0 {
                    continue;
                }
                match op {
                    0 => buf.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0)),
                    1 => {
                        let m = buf.chunks_exact(3).map(gray).sum::<f32>() / plane as f32;
                        buf.iter_mut().for_each(|v| *v = (f * *v + (1.0 - f) * m).clamp(0.0, 1.0));
                    }
                    _ => {
                        for p in buf.chunks_exact_mut(3) {
                            let g = gray(p);
                            p.iter_mut().for_each(|v| *v = (f * *v + (1.0 - f) * g).clamp(0.0, 1.0));
                        }
                    }
                }
            }
        }
        if tf.grayscale {
            for p in buf.chunks_exact_mut(3) {
                let g = gray(p);
                p.iter_mut().for_each(|v| *v = g);
            }
        }
        for k in 0..3 {
            let base = (k * t_len + t) * plane;
            let (m, s) = (mean[k], 1.0 / std[k]);
            for (i, dst) in result[base..base + plane].iter_mut().enumerate() {
                *dst = (buf[i * 3 + k] - m) * s;
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::sample_rng;

    fn ramp_frame(h: usize, w: usize) -> Vec<u8> {
        let mut f = vec![0u8; h * w * 3];
        for y in 0..h {
            for x in 0..w {
                f[(y * w + x) * 3] = (x * 255 / (w - 1)) as u8;
                f[(y * w + x) * 3 + 1] = (y * 255 / (h - 1)) as u8;
                f[(y * w + x) * 3 + 2] = 128;
            }
        }
        f
    }

    #[test]
    fn identity_crop_reproduces_pixels() {
        let (h, w) = (8, 8);
        let f = ramp_frame(h, w);
        let tf = ViewTransform {
            crop: CropBox { top: 0, left: 0, height: h, width: w },
            flip: false,
            jitter: None,
            grayscale: false,
        };
        let out = render_view(&[&f], h, w, 8, &tf, [0.0; 3], [1.0; 3]);
        for y in 0..h {
            for x in 0..w {
                assert!((out[y * w + x] - f[(y * w + x) * 3] as f32 / 255.0).abs() < 1e-6);
            }
        }
        let flipped = render_view(&[&f], h, w, 8, &ViewTransform { flip: true, ..tf }, [0.0; 3], [1.0; 3]);
        assert!((flipped[0] - 1.0).abs() < 1e-6 && flipped[7].abs() < 1e-6);
    }

    #[test]
    fn crops_stay_inside_and_eval_positions() {
        let cfg = AugmentConfig::default();
        let mut rng = sample_rng(3, 0, 0);
        for _ in 0..500 {
            let c = random_resized_crop_box(&mut rng, 128, 171, cfg.crop_scale, cfg.crop_ratio);
            assert!(c.height >= 1 && c.width >= 1 && c.top + c.height <= 128 && c.left + c.width <= 171, "{c:?}");
        }
        assert_eq!(uniform_crop_box(128, 171, 112, 0), CropBox { top: 8, left: 0, height: 112, width: 112 });
        assert_eq!(uniform_crop_box(128, 171, 112, 1), CropBox { top: 8, left: 30, height: 112, width: 112 });
        assert_eq!(uniform_crop_box(128, 171, 112, 2), CropBox { top: 8, left: 59, height: 112, width: 112 });
        assert_eq!(uniform_crop_box(171, 128, 112, 2).top, 59);
    }

    #[test]
    fn grayscale_and_normalise() {
        let f = ramp_frame(4, 4);
        let tf = ViewTransform {
            crop: CropBox { top: 0, left: 0, height: 4, width: 4 },
            flip: false,
            jitter: None,
            grayscale: true,
        };
        let out = render_view(&[&f], 4, 4, 4, &tf, [0.5; 3], [0.25; 3]);
        for i in 0..16 {
            assert!((out[i] - out[16 + i]).abs() < 1e-6 && (out[i] - out[32 + i]).abs() < 1e-6);
        }
        assert!(AugmentConfig { crop_scale: [0.5, 0.2], ..AugmentConfig::default() }.validate().is_err());
        assert!(AugmentConfig { flip_prob: 1.5, ..AugmentConfig::default() }.validate().is_err());
    }
}
