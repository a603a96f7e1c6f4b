//! Figures of the reproduction tables (plotters, PNG).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use serde_json::Value;

/// Grouped bars: each row's downstream top-1 and V->A R@1 (ours, mean over seeds), the baseline last.
pub fn table_bars(table: &Value, path: &Path) -> Result<()> {
    let e = |x: String| anyhow!("{}: cannot draw figure: {x}", path.display());
    let mut bars: Vec<(String, f64, f64)> = table["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or("").to_string(),
                        r["ours"]["downstream_top1"]["mean"].as_f64().unwrap_or(0.0),
                        r["ours"]["v2a_r1"]["mean"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    bars.push((
        "random init".into(),
        table["baseline"]["ours"]["downstream_top1"]["mean"].as_f64().unwrap_or(0.0),
        table["baseline"]["ours"]["v2a_r1"]["mean"].as_f64().unwrap_or(0.0),
    ));
    let root = BitMapBackend::new(path, (1100, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let panels = root.split_evenly((1, 2));
    for (k, (title, colour)) in [("downstream top-1 (%)", BLUE), ("V->A R@1 (%)", RED)].into_iter().enumerate() {
        let vals: Vec<f64> = bars.iter().map(|b| if k == 0 { b.1 } else { b.2 }).map(|v| if v.is_finite() { v } else { 0.0 }).collect();
        let top = vals.iter().cloned().fold(1.0, f64::max) * 1.15;
        let mut c = ChartBuilder::on(&panels[k])
            .caption(format!("{} - {}", table["table"].as_str().unwrap_or(""), title), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)
            .map_err(|x| e(x.to_string()))?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .draw()
            .map_err(|x| e(x.to_string()))?;
        c.draw_series(vals.iter().enumerate().map(|(i, v)| {
            Rectangle::new([(i as f64 + 0.12, 0.0), (i as f64 + 0.88, *v)], colour.mix(0.7).filled())
        }))
        .map_err(|x| e(x.to_string()))?;
        // Row names under the bars (numbered like the table's rows) and each value above its bar.
        c.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let name = if i + 1 == bars.len() { b.0.clone() } else { format!("{}: {}", i + 1, b.0) };
            Text::new(name, (i as f64 + 0.08, -top * 0.03), ("sans-serif", 11).into_font())
        }))
        .map_err(|x| e(x.to_string()))?;
        c.draw_series(vals.iter().enumerate().map(|(i, v)| {
            Text::new(format!("{v:.1}"), (i as f64 + 0.35, v + top * 0.02), ("sans-serif", 13).into_font())
        }))
        .map_err(|x| e(x.to_string()))?;
    }
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}
