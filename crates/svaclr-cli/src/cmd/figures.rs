//! Figures of the reproduction tables (plotters, PNG).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use serde_json::Value;

/// One panel per figure column (`figure_columns`, default every column): a bar per row (ours, mean over seeds), the
/// baseline last. Columns a preset did not run show no bar.
pub fn table_bars(table: &Value, path: &Path) -> Result<()> {
    let e = |x: String| anyhow!("{}: cannot draw figure: {x}", path.display());
    let columns: Vec<(String, String)> = table["columns"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| (c["key"].as_str().unwrap_or("").to_string(), c["label"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let wanted: Option<Vec<&str>> =
        table["figure_columns"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect());
    let panels_of: Vec<(String, String)> =
        columns.into_iter().filter(|(k, _)| wanted.as_ref().is_none_or(|w| w.contains(&k.as_str()))).collect();
    let mean = |r: &Value, key: &str| r["ours"][key]["mean"].as_f64();
    let mut bars: Vec<(String, Vec<Option<f64>>)> = table["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (r["name"].as_str().unwrap_or("").to_string(), panels_of.iter().map(|(k, _)| mean(r, k)).collect())
                })
                .collect()
        })
        .unwrap_or_default();
    if table["baseline"].is_object() {
        let b = &table["baseline"];
        bars.push(("random init".into(), panels_of.iter().map(|(k, _)| mean(b, k)).collect()));
    }
    let has_baseline = table["baseline"].is_object();
    // Columns no row has a number for (an evaluation the preset does not run) get no panel.
    let keep: Vec<usize> = (0..panels_of.len()).filter(|&k| bars.iter().any(|b| b.1[k].is_some())).collect();
    let panels_of: Vec<(String, String)> = keep.iter().map(|&k| panels_of[k].clone()).collect();
    for b in &mut bars {
        b.1 = keep.iter().map(|&k| b.1[k]).collect();
    }
    let np = panels_of.len().max(1);
    let root = BitMapBackend::new(path, (550 * np as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let panels = root.split_evenly((1, np));
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (k, (_, title)) in panels_of.iter().enumerate() {
        let colour = palette[k % palette.len()];
        let vals: Vec<f64> = bars.iter().map(|b| b.1[k].filter(|v| v.is_finite()).unwrap_or(0.0)).collect();
        let top = vals.iter().cloned().fold(1.0, f64::max) * 1.15;
        let mut c = ChartBuilder::on(&panels[k])
            .caption(format!("{} - {}", table["table"].as_str().unwrap_or(""), title), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)
            .map_err(|x| e(x.to_string()))?;
        c.configure_mesh().disable_x_mesh().x_labels(0).draw().map_err(|x| e(x.to_string()))?;
        c.draw_series(
            vals.iter().enumerate().map(|(i, v)| {
                Rectangle::new([(i as f64 + 0.12, 0.0), (i as f64 + 0.88, *v)], colour.mix(0.7).filled())
            }),
        )
        .map_err(|x| e(x.to_string()))?;
        // Row names under the bars (numbered like the table's rows) and each value above its bar.
        c.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let name = if has_baseline && i + 1 == bars.len() { b.0.clone() } else { format!("{}: {}", i + 1, b.0) };
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
