//! Deterministic evaluation views in batches, and small tensor/host helpers shared by the protocols.

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use svaclr_data::{AvSample, ClipDataset, HostBatch};

use crate::error::EvalError;

/// A progress bar on stderr (hidden when `show` is false); `unit` names what is counted.
pub fn bar(show: bool, total: u64, unit: &str) -> ProgressBar {
    let target = if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}, ETA {{eta}} | {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Run `f` on batches of the deterministic evaluation views (`clips` temporal positions x `crops` spatial crops,
/// see `ClipDataset::eval_samples`) of every clip of `ds`, in clip order. A batch holds whole videos: as many as fit
/// in `views_per_batch` views (at least one). Samples are decoded in parallel. `bar` advances by one per clip.
pub fn for_each_eval_batch(
    ds: &ClipDataset,
    clips: usize,
    crops: usize,
    views_per_batch: usize,
    bar: &ProgressBar,
    mut f: impl FnMut(&HostBatch) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let views = clips * crops;
    let videos_per_batch = (views_per_batch / views.max(1)).max(1);
    let n = ds.len();
    for start in (0..n).step_by(videos_per_batch) {
        let end = (start + videos_per_batch).min(n);
        let samples: Vec<Vec<AvSample>> =
            (start..end).into_par_iter().map(|i| ds.eval_samples(i, clips, crops)).collect::<Result<_, _>>()?;
        let batch = HostBatch::from_samples(samples.into_iter().flatten().collect(), ds.config())?;
        f(&batch)?;
        bar.inc((end - start) as u64);
    }
    Ok(())
}

/// Read a `[rows, cols]` tensor back to the host, row-major.
pub fn to_host(t: Tensor<2>) -> Result<(Vec<f32>, usize), EvalError> {
    let [_, cols] = t.dims();
    let v = t.try_into_vec_as::<f32>().map_err(|e| EvalError::invalid("tensor read-back", format!("{e:?}")))?;
    Ok((v, cols))
}

/// Class labels as an `Int` tensor.
///
/// # Shapes
/// `[labels.len()]`.
pub fn label_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, [labels.len()]), device)
}
