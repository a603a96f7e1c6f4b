//! `metrics.png`: the loss and learning-rate curves, the mean lambda per (audio view, video view) per epoch, and, when
//! the run has a monitor, its loss and positive-pair top-1 on the fixed clips per evaluation.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::TrainError;
use crate::metrics::{MonitorRecord, StepRecord};

fn perr(path: &Path) -> impl Fn(String) -> TrainError + '_ {
    move |message| TrainError::Other(format!("{}: cannot draw plot: {message}", path.display()))
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'p, 'a> = ChartContext<'p, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One panel's axes: `x` from 0 to `x_max` (labelled `x_desc`), `y` over `ys`, a caption on top.
fn chart<'p, 'a>(
    panel: &'p Panel<'a>,
    caption: &str,
    (x_max, x_desc): (f64, &str),
    (lo, hi): (f64, f64),
    path: &Path,
) -> Result<Chart<'p, 'a>, TrainError> {
    let e = perr(path);
    let mut c = ChartBuilder::on(panel)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, lo..hi)
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh().x_desc(x_desc).draw().map_err(|x| e(x.to_string()))?;
    Ok(c)
}

/// Draw the run's curves into `path` (PNG): three panels, four with `monitor` records.
pub fn plot_run(
    records: &[StepRecord],
    monitor: &[MonitorRecord],
    steps_per_epoch: usize,
    path: &Path,
) -> Result<(), TrainError> {
    let e = perr(path);
    let n_panels = if monitor.is_empty() { 3 } else { 4 };
    let root = BitMapBackend::new(path, (500 * n_panels as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let panels = root.split_evenly((1, n_panels));
    let max_step = records.last().map_or(1, |r| r.step).max(1) as f64;

    // Loss and top-1 accuracy of the positive.
    let ys = range(records.iter().map(|r| r.stats.loss));
    let mut c = chart(&panels[0], "loss (InfoNCE / SoftInfoNCE)", (max_step, "step"), ys, path)?;
    c.draw_series(LineSeries::new(records.iter().map(|r| (r.step as f64, r.stats.loss)), &BLUE))
        .map_err(|x| e(x.to_string()))?;

    let ys = range(records.iter().map(|r| r.lr));
    let mut c = chart(&panels[1], "learning rate", (max_step, "step"), ys, path)?;
    c.draw_series(LineSeries::new(records.iter().map(|r| (r.step as f64, r.lr)), &RED))
        .map_err(|x| e(x.to_string()))?;

    // Lambda per epoch: mean over the epoch's steps of each (p, q) entry.
    let epochs = records.last().map_or(0, |r| r.epoch + 1);
    let mut per_epoch = vec![[[0f64; 2]; 2]; epochs];
    let mut counts = vec![0usize; epochs];
    for r in records {
        if let Some(m) = r.stats.lambda_pq {
            for p in 0..2 {
                for q in 0..2 {
                    per_epoch[r.epoch][p][q] += m[p][q];
                }
            }
            counts[r.epoch] += 1;
        }
    }
    let has_lambda = counts.iter().any(|&c| c > 0);
    let caption =
        if has_lambda { "mean lambda per epoch (audio view, video view)" } else { "lambda: not used (InfoNCE)" };
    let mut c = chart(&panels[2], caption, (epochs.max(1) as f64, "epoch"), (0.0, 2.2), path)?;
    if has_lambda {
        let colours = [BLUE, RED, GREEN, MAGENTA];
        let names = ["(orig, orig)", "(orig, fast)", "(fast, orig)", "(fast, fast)"];
        for (k, (p, q)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
            let pts: Vec<(f64, f64)> = (0..epochs)
                .filter(|&ep| counts[ep] > 0)
                .map(|ep| (ep as f64 + 0.5, per_epoch[ep][p][q] / counts[ep] as f64))
                .collect();
            let col = colours[k];
            c.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                .map_err(|x| e(x.to_string()))?
                .label(names[k])
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], col));
            c.draw_series(pts.into_iter().map(|pt| Circle::new(pt, 3, col.filled()))).map_err(|x| e(x.to_string()))?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(x.to_string()))?;
    }
    if let Some(panel) = panels.get(3) {
        // The monitor: loss on the fixed clips per evaluation, its top-1 in the caption.
        let ys = range(monitor.iter().map(|r| r.stats.loss));
        let last = monitor.last().map_or(1, |r| r.step).max(1) as f64;
        let (first, final_) = (monitor.first(), monitor.last());
        let caption = match (first, final_) {
            (Some(a), Some(b)) => {
                format!("monitor ({} clips): loss; top-1 {:.3} -> {:.3}", b.clips, a.stats.top1_acc, b.stats.top1_acc)
            }
            _ => "monitor".to_string(),
        };
        let mut c = chart(panel, &caption, (last, "step"), ys, path)?;
        let pts: Vec<(f64, f64)> = monitor.iter().map(|r| (r.step as f64, r.stats.loss)).collect();
        c.draw_series(LineSeries::new(pts.clone(), &BLACK)).map_err(|x| e(x.to_string()))?;
        c.draw_series(pts.into_iter().map(|pt| Circle::new(pt, 3, BLACK.filled()))).map_err(|x| e(x.to_string()))?;
    }
    let _ = steps_per_epoch;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}
