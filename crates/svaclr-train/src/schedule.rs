//! The learning-rate schedule: linear warm-up, then cosine decay, as a pure function of the iteration.
//!
//! A pure function needs no scheduler state in checkpoints: resuming at step `s` gives `lr(s)` exactly.

use crate::config::ScheduleConfig;

/// Learning rate at optimiser step `step` (0-based) of a run with `steps_per_epoch` steps per epoch.
///
/// Warm-up: `lr_start -> lr_peak` linearly over `warmup_epochs * steps_per_epoch` steps; then
/// `lr_end + (lr_peak - lr_end) * (1 + cos(pi * t)) / 2` with `t` going 0 -> 1 over the remaining steps
/// (the paper: 0.064 -> 0.64 over 10 epochs, cosine to 0.1 over 90).
pub fn learning_rate(cfg: &ScheduleConfig, steps_per_epoch: usize, step: usize) -> f64 {
    let total = (cfg.epochs * steps_per_epoch).max(1) as f64;
    let warm = (cfg.warmup_epochs * steps_per_epoch as f64).round().min(total);
    let s = step as f64;
    if s < warm {
        return cfg.lr_start + (cfg.lr_peak - cfg.lr_start) * s / warm;
    }
    let rest = (total - warm).max(1.0);
    let t = ((s - warm) / rest).clamp(0.0, 1.0);
    cfg.lr_end + (cfg.lr_peak - cfg.lr_end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> ScheduleConfig {
        ScheduleConfig { lr_start: 0.064, lr_peak: 0.64, lr_end: 0.1, warmup_epochs: 10.0, epochs: 100 }
    }

    #[test]
    fn warmup_then_cosine_hits_the_papers_numbers() {
        let c = paper();
        let spe = 50;
        assert!((learning_rate(&c, spe, 0) - 0.064).abs() < 1e-12);
        assert!((learning_rate(&c, spe, 250) - (0.064 + 0.576 * 0.5)).abs() < 1e-12);
        assert!((learning_rate(&c, spe, 500) - 0.64).abs() < 1e-12);
        // halfway through the cosine: the mean of peak and end
        assert!((learning_rate(&c, spe, 500 + 2250) - 0.37).abs() < 1e-9);
        assert!((learning_rate(&c, spe, 5000) - 0.1).abs() < 1e-12);
        // monotone: up during warm-up, down after
        let lrs: Vec<f64> = (0..5000).map(|s| learning_rate(&c, spe, s)).collect();
        assert!(lrs[..500].windows(2).all(|w| w[1] > w[0]));
        assert!(lrs[500..].windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let c = ScheduleConfig { warmup_epochs: 0.0, ..paper() };
        assert!((learning_rate(&c, 10, 0) - 0.64).abs() < 1e-12);
    }
}
