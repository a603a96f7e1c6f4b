//! The paper's Fig. 3 for a pre-trained SoftInfoNCE run: for a few clips of the retrieval split, a frame, the log-mel
//! spectrograms of the audio at speeds 1, 2 and 4, and the cross-affinity weight lambda the trained model gives each
//! sped-up audio view against the video. [`write`] computes the numbers ([`Fig3`], saved as JSON) and draws the PNG.
//!
//! lambda is computed exactly as in training (svaclr-loss's `cross_affinity` with the run's `lambda_temperature`
//! and `lambda_mode`, on the mapped representations l(y)) for the views of one training pair: audio at speeds
//! (1, s), video at speeds (1, 1). The figure prints lambda(a×s, v), the weight of the pair (sped-up audio, video):
//! with the default `all` mode the four weights average 1, so a value below 1 means the model finds the sped-up
//! audio less like the video than the original audio is (at s = 1 the views are identical and lambda is 1). The
//! model runs in eval mode (BatchNorm running statistics), as retrieval does.
//!
//! **Lambda measured** ([`LambdaSummary`]): over every clip of the manifest, the mean of lambda(a×s, v) (audio sped
//! up, video at speed 1) and of lambda(a, v×s) (video sped up, audio at speed 1) for s = 2 and 4, each with a 95 %
//! t-interval over clips (clips are the independent units; the interval says whether the mean differs from 1, the
//! weight of a pair the model finds as alike as the original one). The paper's Fig. 3 reads lambda falling below 1
//! as the speed gap grows.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use plotters::prelude::*;
use serde::Serialize;
use svaclr_data::{AvSample, ClipDataset, Manifest};
use svaclr_models::AvModel;
use svaclr_train::PretrainConfig;

use crate::error::EvalError;
use crate::report::write_json;
use crate::stats;
use crate::views::to_host;

/// The audio speeds shown (the paper's Fig. 3).
pub const SPEEDS: [f64; 3] = [1.0, 2.0, 4.0];
/// Clips shown (distinct labels first, in manifest order).
pub const CLIPS: usize = 4;

/// How lambda is defined, written into the JSON beside the figure.
const LAMBDA_DEFINITION: &str = "lambda(a x s, v): cross_affinity over audio views (1, s) x video views (1, 1), entry \
                                 (a x s, v); run's lambda_temperature and lambda_mode; eval mode";

/// Clips per forward pass of the lambda summary.
const SUMMARY_CHUNK: usize = 16;

/// The mean lambda of one sped-up modality at one speed over the manifest's clips.
#[derive(Clone, Debug, Serialize)]
pub struct LambdaSummary {
    /// `audio`: lambda(a×s, v); `video`: lambda(a, v×s).
    pub sped_up: &'static str,
    /// s.
    pub speed: f64,
    /// Clips averaged.
    pub clips: usize,
    /// Mean lambda.
    pub mean: f64,
    /// 95 % t-interval of the mean over clips (`None` for one clip).
    pub ci95: Option<[f64; 2]>,
}

/// The figure's numbers (saved beside the PNG as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Fig3 {
    /// The pre-training run.
    pub run: PathBuf,
    /// The manifest the clips come from.
    pub manifest: PathBuf,
    /// Its split (`null`: every entry).
    pub split: Option<String>,
    /// [`SPEEDS`].
    pub speeds: [f64; 3],
    /// What `lambda` is.
    pub lambda_definition: &'static str,
    /// The run's `loss.lambda_temperature`.
    pub lambda_temperature: f64,
    /// One entry per clip shown.
    pub examples: Vec<Fig3Example>,
    /// Lambda over every clip of the manifest, audio sped up then video sped up, s = 2 and 4.
    pub lambda_summary: Vec<LambdaSummary>,
}

/// One clip's row of the figure.
#[derive(Clone, Debug, Serialize)]
pub struct Fig3Example {
    /// Manifest id.
    pub id: String,
    /// Class, if the manifest has one.
    pub label: Option<usize>,
    /// Where the clip starts.
    pub start_sec: f64,
    /// lambda(a×s, v) per entry of [`SPEEDS`].
    pub lambda: Vec<f64>,
    /// cos(l(y_a×s), l(y_v)) per entry of [`SPEEDS`].
    pub cosine: Vec<f64>,
}

/// Compute the figure of `run_dir`'s model on the clips of `manifest` (of its `split` when given), write `png` and
/// the numbers beside it (`png` with the extension `.json`), and return the numbers.
pub fn write(
    run_dir: &Path,
    manifest: &Path,
    split: Option<&str>,
    device: &Device,
    png: &Path,
) -> Result<Fig3, EvalError> {
    let (cfg, model) = svaclr_train::RunDir::new(run_dir).load_pretrained(device)?;
    let model = model.valid();
    let ds = ClipDataset::new(&Manifest::load_split(manifest, split)?, split, cfg.data.clone())?;
    let picked = pick_clips(&ds);
    if picked.is_empty() {
        return Err(EvalError::invalid("manifest", format!("{}: no clips for the Fig. 3 figure", manifest.display())));
    }
    let samples: Vec<AvSample> =
        picked.iter().map(|&i| ds.speed_views(i, &[1.0], &SPEEDS)).collect::<Result<_, _>>()?;
    let [_, t, h, w] = cfg.data.video_view_shape();
    let [_, f, ts] = cfg.data.audio_view_shape();
    let (lambda, cosine) = audio_speed_lambdas(&model, &cfg, &samples, device)?;
    let examples = samples
        .iter()
        .zip(lambda)
        .zip(cosine)
        .map(|((s, lambda), cosine)| Fig3Example {
            id: s.spec.video_id.clone(),
            label: s.label,
            start_sec: s.spec.start_sec,
            lambda,
            cosine,
        })
        .collect();
    let fig = Fig3 {
        run: run_dir.to_path_buf(),
        manifest: manifest.to_path_buf(),
        split: split.map(str::to_string),
        speeds: SPEEDS,
        lambda_definition: LAMBDA_DEFINITION,
        lambda_temperature: cfg.loss.lambda_temperature,
        examples,
        lambda_summary: lambda_summary(&model, &cfg, &ds, device)?,
    };
    write_json(&png.with_extension("json"), &fig)?;
    let geometry =
        Geometry { video: [t, h, w], audio: [f, ts], mean: cfg.data.augment.mean, std: cfg.data.augment.std };
    draw(&fig.examples, &samples, &geometry, png)?;
    Ok(fig)
}

/// The affinity-mapped representations `l(y)` of the video views `[k, V, M]` and audio views `[k, A, M]` of `samples`
/// (every sample with the same numbers of views).
fn mapped(
    model: &AvModel,
    cfg: &PretrainConfig,
    samples: &[AvSample],
    device: &Device,
) -> Result<(Tensor<3>, Tensor<3>), EvalError> {
    let (k, nv, na) = (samples.len(), samples[0].video.len(), samples[0].audio.len());
    let [c, t, h, w] = cfg.data.video_view_shape();
    let [_, f, ts] = cfg.data.audio_view_shape();
    let video: Vec<f32> = samples.iter().flat_map(|s| s.video.iter().flatten().copied()).collect();
    let audio: Vec<f32> = samples.iter().flat_map(|s| s.audio.iter().flatten().copied()).collect();
    let video = Tensor::<5>::from_data(TensorData::new(video, [k * nv, c, t, h, w]), device);
    let audio = Tensor::<4>::from_data(TensorData::new(audio, [k * na, 1, f, ts]), device);
    let lv = model.map_video.forward(model.video.forward(video)); // [k*V, M]
    let la = model.map_audio.forward(model.audio.forward(audio)); // [k*A, M]
    let md = lv.dims()[1];
    if la.dims()[1] != md {
        let reason = format!(
            "the affinity maps give widths {} (audio) and {md} (video); lambda needs equal widths",
            la.dims()[1]
        );
        return Err(EvalError::invalid("model", reason));
    }
    Ok((lv.reshape([k, nv, md]), la.reshape([k, na, md])))
}

/// For each clip, entry `[i, j]` of the two-view affinity of audio views (0, `p`) x video views (0, `q`) of
/// `[k, views, M]` tensors, computed as in training: `[1, 0]` is lambda(a×s, v) for `p` the sped-up audio view,
/// `[0, 1]` lambda(a, v×s) for `q` the sped-up video view.
fn pair_lambda(
    cfg: &PretrainConfig,
    la: &Tensor<3>,
    lv: &Tensor<3>,
    (p, q): (usize, usize),
    [i, j]: [usize; 2],
) -> Result<Vec<f64>, EvalError> {
    let [k, _, md] = la.dims();
    let two = |x: &Tensor<3>, i: usize| {
        Tensor::cat(
            vec![x.clone().narrow(1, 0, 1).reshape([1, k, md]), x.clone().narrow(1, i, 1).reshape([1, k, md])],
            0,
        )
    };
    let loss = &cfg.loss;
    let lam = svaclr_loss::cross_affinity(two(la, p), two(lv, q), loss.lambda_temperature, loss.lambda_mode, true)?;
    let (lam, _) = to_host(lam.narrow(1, i, 1).narrow(2, j, 1).reshape([k, 1]))?; // [k, 2, 2] -> [k, 1]
    Ok(lam.into_iter().map(f64::from).collect())
}

/// Per sample (video at speed 1, audio at [`SPEEDS`]): lambda(a×s, v) and cos(l(y_a×s), l(y_v)) per speed.
type PerSpeed = Vec<Vec<f64>>;
fn audio_speed_lambdas(
    model: &AvModel,
    cfg: &PretrainConfig,
    samples: &[AvSample],
    device: &Device,
) -> Result<(PerSpeed, PerSpeed), EvalError> {
    let k = samples.len();
    let (lv, la) = mapped(model, cfg, samples, device)?;
    let md = lv.dims()[2];
    let mut lambda = vec![vec![0.0; SPEEDS.len()]; k];
    let mut cosine = vec![vec![0.0; SPEEDS.len()]; k];
    let lvn = svaclr_loss::l2_normalize(lv.clone().reshape([k, md]), 1);
    let lv2 = Tensor::cat(vec![lv.clone(), lv.clone()], 1); // [k, 2, M]: video views (1, 1)
    for si in 0..SPEEDS.len() {
        let lam = pair_lambda(cfg, &la, &lv2, (si, 0), [1, 0])?;
        let an = svaclr_loss::l2_normalize(la.clone().narrow(1, si, 1).reshape([k, md]), 1);
        let (cos, _) = to_host((an * lvn.clone()).sum_dim(1).reshape([k, 1]))?;
        for j in 0..k {
            lambda[j][si] = lam[j];
            cosine[j][si] = f64::from(cos[j]);
        }
    }
    Ok((lambda, cosine))
}

/// [`LambdaSummary`] over every clip of `ds`: audio sped up by 2 and 4 (video at 1), then video sped up by 2 and 4
/// (audio at 1), all views of a clip from one start ([`ClipDataset::speed_views`]).
fn lambda_summary(
    model: &AvModel,
    cfg: &PretrainConfig,
    ds: &ClipDataset,
    device: &Device,
) -> Result<Vec<LambdaSummary>, EvalError> {
    let mut audio = vec![Vec::new(); SPEEDS.len() - 1];
    let mut video = vec![Vec::new(); SPEEDS.len() - 1];
    let indices: Vec<usize> = (0..ds.len()).collect();
    for chunk in indices.chunks(SUMMARY_CHUNK) {
        let samples: Vec<AvSample> =
            chunk.iter().map(|&i| ds.speed_views(i, &SPEEDS, &SPEEDS)).collect::<Result<_, _>>()?;
        let (lv, la) = mapped(model, cfg, &samples, device)?;
        for si in 1..SPEEDS.len() {
            audio[si - 1].extend(pair_lambda(cfg, &la, &lv, (si, 0), [1, 0])?);
            video[si - 1].extend(pair_lambda(cfg, &la, &lv, (0, si), [0, 1])?);
        }
    }
    let summary = |sped_up: &'static str, speed: f64, values: &[f64]| LambdaSummary {
        sped_up,
        speed,
        clips: values.len(),
        mean: stats::mean(values),
        ci95: stats::mean_ci95(values),
    };
    let audio = audio.iter().zip(&SPEEDS[1..]).map(|(v, &s)| summary("audio", s, v));
    let video = video.iter().zip(&SPEEDS[1..]).map(|(v, &s)| summary("video", s, v));
    Ok(audio.chain(video).collect())
}

/// Up to [`CLIPS`] clip indices of `ds`: distinct labels first (the most varied examples), then the rest in order.
fn pick_clips(ds: &ClipDataset) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
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
    picked
}

/// What the drawing needs to know of the views: `[T, H, W]` of the video, `[mels, frames]` of the audio, and the
/// normalisation to undo on the frames.
struct Geometry {
    video: [usize; 3],
    audio: [usize; 2],
    mean: [f32; 3],
    std: [f32; 3],
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

/// One row per example: the middle frame, then a spectrogram per speed with lambda and the cosine under it.
fn draw(examples: &[Fig3Example], samples: &[AvSample], g: &Geometry, png: &Path) -> Result<(), EvalError> {
    let e = |x: String| EvalError::Plot { path: png.to_path_buf(), message: x };
    let ([t, h, w], [f, ts]) = (g.video, g.audio);
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
    for (ri, (ex, sample)) in examples.iter().zip(samples).enumerate() {
        let y0 = head + ri as i32 * (cell_h + foot + gap);
        // The middle frame, de-normalised, nearest-neighbour scaled to the cell.
        let v = &sample.video[0];
        let tm = t / 2;
        let side = cell_h.min(cell_w);
        for py in 0..side {
            for px in 0..side {
                let (y, x) = (py as usize * h / side as usize, px as usize * w / side as usize);
                let ch = |c: usize| {
                    let val = f64::from(v[((c * t + tm) * h + y) * w + x] * g.std[c] + g.mean[c]);
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
        let all: Vec<f32> = sample.audio.iter().flatten().copied().collect();
        let (lo, hi) = all.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let span = f64::from((hi - lo).max(1e-6));
        for (si, mel) in sample.audio.iter().enumerate() {
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
    root.present().map_err(|x| e(x.to_string()))
}
