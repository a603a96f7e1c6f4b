//! A figure in the spirit of the paper's Fig. 3: for a few clips of the retrieval split, a frame, the log-mel
//! spectrograms of the audio at speeds 1, 2 and 4, and the cross-affinity weight lambda the trained model gives each
//! sped-up audio view against the video.
//!
//! lambda is computed exactly as in training (svaclr-loss's `cross_affinity` with the run's `lambda_temperature`
//! and `lambda_mode`, on the mapped representations l(y)) for the views of one training pair: audio at speeds
//! (1, s), video at speeds (1, 1). The figure prints lambda(a×s, v), the weight of the pair (sped-up audio, video):
//! with the default `all` mode the four weights average 1, so a value below 1 means the model finds the sped-up
//! audio less like the video than the original audio is (at s = 1 the views are identical and lambda is 1). The
//! model runs in eval mode (BatchNorm running statistics), as retrieval does.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use plotters::prelude::*;
use serde_json::json;
use svaclr_data::{AvSample, ClipDataset, Manifest};
use svaclr_train::device::parse_device;

/// The audio speeds shown (the paper's Fig. 3).
pub const SPEEDS: [f64; 3] = [1.0, 2.0, 4.0];
/// Clips shown (distinct labels first, in manifest order).
pub const CLIPS: usize = 4;

/// One clip's row of the figure.
struct Example {
    id: String,
    label: Option<usize>,
    sample: AvSample,
    /// lambda(a×s, v) per entry of [`SPEEDS`].
    lambda: Vec<f64>,
    /// cos(l(y_a×s), l(y_v)) per entry of [`SPEEDS`].
    cosine: Vec<f64>,
}

/// Compute the examples of `run_dir`'s model on `manifest` and write `png` (and the numbers beside it as JSON).
pub fn write(run_dir: &Path, manifest: &Path, device: &str, png: &Path) -> Result<()> {
    let (_, dev) = parse_device(device)?;
    let (cfg, model) = svaclr_train::RunDir::new(run_dir).load_pretrained(&dev)?;
    let model = model.valid();
    let m = Manifest::load(manifest)?;
    let ds = ClipDataset::new(&m, None, cfg.data.clone())?;
    // Distinct labels first (the most varied examples), then the rest in order.
    let mut picked: Vec<usize> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0..ds.len() {
        if picked.len() < CLIPS && seen.insert(ds.label(i)) {
            picked.push(i);
        }
    }
    for i in 0..ds.len() {
        if picked.len() < CLIPS && !picked.contains(&i) {
            picked.push(i);
        }
    }
    if picked.is_empty() {
        anyhow::bail!("{}: no clips for the Fig. 3 figure", manifest.display());
    }
    let samples: Vec<AvSample> =
        picked.iter().map(|&i| ds.speed_views(i, &[1.0], &SPEEDS)).collect::<Result<_, _>>()?;
    let k = samples.len();
    let [c, t, h, w] = cfg.data.video_view_shape();
    let [_, f, ts] = cfg.data.audio_view_shape();
    let video: Vec<f32> = samples.iter().flat_map(|s| s.video[0].iter().copied()).collect();
    let audio: Vec<f32> = samples.iter().flat_map(|s| s.audio.iter().flatten().copied()).collect();
    let video = Tensor::<5>::from_data(TensorData::new(video, [k, c, t, h, w]), &dev);
    let audio = Tensor::<4>::from_data(TensorData::new(audio, [k * SPEEDS.len(), 1, f, ts]), &dev);
    let lv = model.map_video.forward(model.video.forward(video)); // [k, M]
    let la = model.map_audio.forward(model.audio.forward(audio)); // [k*S, M]
    let md = lv.dims()[1];
    if la.dims()[1] != md {
        anyhow::bail!(
            "{}: the affinity maps give widths {} (audio) and {md} (video); lambda needs equal widths",
            run_dir.display(),
            la.dims()[1]
        );
    }
    let la = la.reshape([k, SPEEDS.len(), md]);
    let loss = &cfg.loss;
    let mut lambda = vec![vec![0.0; SPEEDS.len()]; k];
    let mut cosine = vec![vec![0.0; SPEEDS.len()]; k];
    let lvn = svaclr_loss::l2_normalize(lv.clone(), 1);
    for (si, _) in SPEEDS.iter().enumerate() {
        let a_orig = la.clone().narrow(1, 0, 1).reshape([1, k, md]);
        let a_fast = la.clone().narrow(1, si, 1).reshape([1, k, md]);
        let ya = Tensor::cat(vec![a_orig, a_fast.clone()], 0); // [2, k, M]
        let yv = Tensor::cat(vec![lv.clone().reshape([1, k, md]), lv.clone().reshape([1, k, md])], 0);
        let lam = svaclr_loss::cross_affinity(ya, yv, loss.lambda_temperature, loss.lambda_mode, true)?; // [k, 2, 2]
        let lam: Vec<f32> = lam
            .narrow(1, 1, 1)
            .narrow(2, 0, 1)
            .reshape([k])
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow!("reading lambda: {e:?}"))?;
        let an = svaclr_loss::l2_normalize(a_fast.reshape([k, md]), 1);
        let cos: Vec<f32> = (an * lvn.clone())
            .sum_dim(1)
            .reshape([k])
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow!("reading similarities: {e:?}"))?;
        for j in 0..k {
            lambda[j][si] = f64::from(lam[j]);
            cosine[j][si] = f64::from(cos[j]);
        }
    }
    let examples: Vec<Example> = samples
        .into_iter()
        .zip(lambda)
        .zip(cosine)
        .map(|((s, lambda), cosine)| Example { id: s.spec.video_id.clone(), label: s.label, sample: s, lambda, cosine })
        .collect();
    let numbers = json!({
        "run": run_dir, "manifest": manifest, "speeds": SPEEDS,
        "lambda_definition": "lambda(a x s, v): cross_affinity over audio views (1, s) x video views (1, 1), entry (a x s, v); run's lambda_temperature and lambda_mode; eval mode",
        "lambda_temperature": loss.lambda_temperature,
        "examples": examples.iter().map(|e| json!({"id": e.id, "label": e.label, "start_sec": e.sample.spec.start_sec, "lambda": e.lambda, "cosine": e.cosine})).collect::<Vec<_>>(),
    });
    let json_path = png.with_extension("json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&numbers)?)
        .with_context(|| json_path.display().to_string())?;
    draw(&examples, [t, h, w], [f, ts], &cfg.data.augment.mean, &cfg.data.augment.std, png)
}

/// A dark-to-bright ramp for spectrograms (x in [0, 1]).
fn ramp(x: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] =
        [(10.0, 8.0, 40.0), (70.0, 30.0, 120.0), (190.0, 60.0, 90.0), (245.0, 150.0, 40.0), (250.0, 240.0, 160.0)];
    let x = x.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let u = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw(
    examples: &[Example],
    [t, h, w]: [usize; 3],
    [f, ts]: [usize; 2],
    mean: &[f32; 3],
    std: &[f32; 3],
    png: &Path,
) -> Result<()> {
    let e = |x: String| anyhow!("{}: cannot draw figure: {x}", png.display());
    let (cell_w, cell_h, gap, head, foot) = (200i32, 150i32, 10i32, 40i32, 24i32);
    let cols = 1 + SPEEDS.len() as i32;
    let width = cols * (cell_w + gap) + gap;
    let height = head + examples.len() as i32 * (cell_h + foot + gap) + gap;
    let root = BitMapBackend::new(png, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let font = ("sans-serif", 15).into_font();
    let titles = ["frame (middle of the clip)", "audio ×1", "audio ×2", "audio ×4"];
    for (ci, title) in titles.iter().enumerate() {
        root.draw_text(title, &TextStyle::from(font.clone()), (gap + ci as i32 * (cell_w + gap), 12))
            .map_err(|x| e(x.to_string()))?;
    }
    for (ri, ex) in examples.iter().enumerate() {
        let y0 = head + ri as i32 * (cell_h + foot + gap);
        // The middle frame, de-normalised, nearest-neighbour scaled to the cell.
        let v = &ex.sample.video[0];
        let tm = t / 2;
        let side = cell_h.min(cell_w);
        for py in 0..side {
            for px in 0..side {
                let (y, x) = (py as usize * h / side as usize, px as usize * w / side as usize);
                let ch = |c: usize| {
                    let val = f64::from(v[((c * t + tm) * h + y) * w + x] * std[c] + mean[c]);
                    (val.clamp(0.0, 1.0) * 255.0).round() as u8
                };
                root.draw_pixel((gap + px, y0 + py), &RGBColor(ch(0), ch(1), ch(2))).map_err(|x| e(x.to_string()))?;
            }
        }
        let label = ex.label.map_or(String::new(), |l| format!(", class {l}"));
        root.draw_text(
            &format!("{}{label}", ex.id),
            &TextStyle::from(("sans-serif", 13).into_font()),
            (gap, y0 + cell_h + 4),
        )
        .map_err(|x| e(x.to_string()))?;
        // Spectrograms on one colour scale per clip (low frequencies at the bottom).
        let all: Vec<f32> = ex.sample.audio.iter().flatten().copied().collect();
        let (lo, hi) = all.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let span = f64::from((hi - lo).max(1e-6));
        for (si, mel) in ex.sample.audio.iter().enumerate() {
            let x0 = gap + (si as i32 + 1) * (cell_w + gap);
            for py in 0..cell_h {
                for px in 0..cell_w {
                    let fi = f - 1 - (py as usize * f / cell_h as usize);
                    let ti = px as usize * ts / cell_w as usize;
                    let val = f64::from(mel[fi * ts + ti] - lo) / span;
                    root.draw_pixel((x0 + px, y0 + py), &ramp(val)).map_err(|x| e(x.to_string()))?;
                }
            }
            let text = if si == 0 {
                format!("λ = {:.2} (reference)   cos {:.2}", ex.lambda[si], ex.cosine[si])
            } else {
                format!("λ(a×{}, v) = {:.2}   cos {:.2}", SPEEDS[si], ex.lambda[si], ex.cosine[si])
            };
            root.draw_text(&text, &TextStyle::from(("sans-serif", 13).into_font()), (x0, y0 + cell_h + 4))
                .map_err(|x| e(x.to_string()))?;
        }
    }
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}
