//! The statistics a table prints: differences between rows paired by seed, their 95 % t-intervals, and the smallest
//! difference a design can detect.
//!
//! **Why paired t-intervals over seeds.** A seed fixes everything a row does not change: the initial weights, the
//! data order and the evaluation split. The difference between two rows at one seed therefore cancels what the seed
//! alone decides, and seeds are the independent replicates. With `n` seeds the interval is `mean(d) ± t(0.975, n-1) *
//! sd(d) / sqrt(n)` (`sd` the sample standard deviation). Each seed's value already averages over every test clip,
//! so the test set's sampling noise is inside the seed-to-seed spread; a bootstrap over seeds and test clips would
//! need per-clip results for every row and, with 3 to 10 seeds, says no more than the t-interval while being less
//! exact at small `n`. The t-interval assumes the differences are roughly normal; with few seeds that is an
//! assumption, and the table says how many seeds each interval rests on.
//!
//! **Smallest detectable difference.** For a two-sided paired t-test at level 0.05 with power 0.8, a true
//! difference `delta` is detected when `delta >= (t(0.975, df) + t(0.8, df)) * sd / sqrt(n)`. `sd` is pooled over the
//! rows' paired differences (`df = sum(n_i - 1)`), the design's own noise level estimated from all its rows.

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; relative error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let s = G.iter().enumerate().skip(1).fold(G[0], |s, (i, g)| s + g / (x + i as f64));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = if d.abs() < TINY { TINY } else { d };
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        for aa in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 + aa * d;
            d = if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function `I_x(a, b)`.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// Student's t distribution function with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t with `df > 0` degrees of freedom (bisection on [`t_cdf`], to 1e-12).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    while hi - lo > 1e-12 * hi.max(1.0) {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// The mean of `values` (NaN for none).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The sample standard deviation, `sqrt(sum (x - mean)^2 / (n - 1))`; 0 for fewer than two values.
pub fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

/// The 95 % t-interval of the mean of `values`, `mean ± t(0.975, n-1) * sd / sqrt(n)` (`None` for fewer than two).
pub fn mean_ci95(values: &[f64]) -> Option<[f64; 2]> {
    let n = values.len();
    (n >= 2).then(|| {
        let (m, half) = (mean(values), t_quantile(0.975, (n - 1) as f64) * sample_std(values) / (n as f64).sqrt());
        [m - half, m + half]
    })
}

/// A row's difference to a reference row, paired by seed, with its 95 % t-interval.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairedDiff {
    /// Per seed (in the table's seed order, seeds where either value is missing left out): row minus reference.
    pub diffs: Vec<f64>,
    /// Mean difference.
    pub mean: f64,
    /// Sample standard deviation of the differences.
    pub sd: f64,
    /// 95 % t-interval `[low, high]` of the mean difference (`None` for fewer than two pairs).
    pub ci95: Option<[f64; 2]>,
}

impl PairedDiff {
    /// Pair `row` and `reference` by position (one entry per seed; `None` where a seed has no number).
    /// `None` when no seed has both.
    pub fn of(row: &[Option<f64>], reference: &[Option<f64>]) -> Option<PairedDiff> {
        let diffs: Vec<f64> =
            row.iter().zip(reference).filter_map(|(a, b)| Some((*a)? - (*b)?)).filter(|d| d.is_finite()).collect();
        if diffs.is_empty() {
            return None;
        }
        let ci95 = mean_ci95(&diffs);
        Some(PairedDiff { mean: mean(&diffs), sd: sample_std(&diffs), ci95, diffs })
    }

    /// Whether the 95 % interval excludes 0 (the difference is established at that level).
    pub fn excludes_zero(&self) -> bool {
        self.ci95.is_some_and(|[lo, hi]| lo > 0.0 || hi < 0.0)
    }
}

/// The standard deviation of several comparisons' paired differences, pooled:
/// `sqrt(sum((n_i - 1) sd_i^2) / sum(n_i - 1))`, with its degrees of freedom `sum(n_i - 1)`. `None` without a degree
/// of freedom.
pub fn pooled_sd(diffs: &[&PairedDiff]) -> Option<(f64, usize)> {
    let df: usize = diffs.iter().map(|d| d.diffs.len().saturating_sub(1)).sum();
    let ss: f64 = diffs.iter().map(|d| d.sd * d.sd * d.diffs.len().saturating_sub(1) as f64).sum();
    (df > 0).then(|| ((ss / df as f64).sqrt(), df))
}

/// The smallest true difference a paired design detects with probability 0.8 at two-sided level 0.05, with `n`
/// seeds per comparison: [`detectable_at`] of the comparisons' [`pooled_sd`]. The quantiles are those of the test each
/// comparison runs (its own t-interval over its `n` paired differences, `n - 1` degrees of freedom); the pooled sd is
/// the best estimate of the paired differences' spread. `None` for fewer than 2 seeds or no pooled degree of freedom.
pub fn detectable_difference(diffs: &[&PairedDiff], n: usize) -> Option<f64> {
    let (sd, _) = pooled_sd(diffs)?;
    (n >= 2).then(|| detectable_at(sd, n))
}

/// The smallest true paired difference `n` seeds detect (probability 0.8, two-sided 0.05) when the paired
/// differences spread by `sd`: `(t(0.975, n - 1) + t(0.8, n - 1)) * sd / sqrt(n)` (the usual approximation to the
/// power of a one-sample t-test). Infinite for `n < 2`.
pub fn detectable_at(sd: f64, n: usize) -> f64 {
    if n < 2 {
        return f64::INFINITY;
    }
    let df = (n - 1) as f64;
    (t_quantile(0.975, df) + t_quantile(0.8, df)) * sd / (n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantiles as R's `qt` prints them (checked by integrating the density numerically).
    #[test]
    fn t_quantiles_equal_published_values() {
        for (p, df, want) in [
            (0.975, 1.0, 12.706205),
            (0.975, 2.0, 4.302653),
            (0.975, 4.0, 2.776445),
            (0.975, 9.0, 2.262157),
            (0.975, 1e7, 1.959964),
            (0.8, 2.0, 1.060660),
            (0.8, 8.0, 0.888890),
            (0.025, 4.0, -2.776445),
        ] {
            let got = t_quantile(p, df);
            assert!((got - want).abs() < 2e-6, "qt({p}, {df}) = {got}, want {want}");
        }
        assert!((t_cdf(2.0, 3.0) - 0.930337).abs() < 1e-6);
    }

    /// By hand: diffs 1, 2, 6 -> mean 3, sd sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7), half width
    /// 4.302653 * sqrt(7) / sqrt(3) = 6.572410, so [-3.572410, 9.572410]: not established.
    #[test]
    fn paired_interval_by_hand() {
        let row = [Some(11.0), Some(12.0), Some(16.0), None];
        let reference = [Some(10.0), Some(10.0), Some(10.0), Some(3.0)];
        let d = PairedDiff::of(&row, &reference).expect("pairs");
        assert_eq!(d.diffs, vec![1.0, 2.0, 6.0]);
        assert_eq!(d.mean, 3.0);
        assert!((d.sd - 7f64.sqrt()).abs() < 1e-12);
        let [lo, hi] = d.ci95.expect("interval");
        assert!((lo + 3.572410).abs() < 1e-5 && (hi - 9.572410).abs() < 1e-5, "[{lo}, {hi}]");
        assert!(!d.excludes_zero());
        // diffs 2, 3, 4: mean 3, sd 1, half width 4.302653 / sqrt(3) = 2.484138: [0.515862, 5.484138], established.
        let e = PairedDiff::of(&[Some(2.0), Some(3.0), Some(4.0)], &[Some(0.0); 3]).expect("pairs");
        let [lo, hi] = e.ci95.expect("interval");
        assert!((lo - 0.515862).abs() < 1e-5 && (hi - 5.484138).abs() < 1e-5, "[{lo}, {hi}]");
        assert!(e.excludes_zero());
        assert_eq!(PairedDiff::of(&[Some(1.0)], &[Some(0.5)]).expect("one pair").ci95, None);
        assert_eq!(PairedDiff::of(&[None], &[Some(0.5)]), None);
    }

    /// By hand: two rows with sd sqrt(7) (2 df) and 1 (2 df) pool to sqrt((7*2 + 1*2) / 4) = 2; three seeds per
    /// comparison test with 2 df: (4.302653 + 1.060660) * 2 / sqrt(3) = 6.193020. Ten seeds at the same spread:
    /// (2.262157 + 0.883404) * 2 / sqrt(10) = 1.989427.
    #[test]
    fn detectable_difference_by_hand() {
        let a = PairedDiff::of(&[Some(1.0), Some(2.0), Some(6.0)], &[Some(0.0); 3]).expect("a");
        let b = PairedDiff::of(&[Some(2.0), Some(3.0), Some(4.0)], &[Some(0.0); 3]).expect("b");
        let got = detectable_difference(&[&a, &b], 3).expect("pooled");
        assert!((got - 6.193020).abs() < 1e-5, "{got}");
        assert!((detectable_at(2.0, 10) - 1.989427).abs() < 1e-5);
        assert_eq!(detectable_at(2.0, 1), f64::INFINITY);
        let single = PairedDiff::of(&[Some(1.0)], &[Some(0.0)]).expect("one");
        assert_eq!(detectable_difference(&[&single], 1), None);
    }
}
