//! Leaf loops of the fused kernel: AVX2/FMA versions chosen at run time, scalar fallbacks elsewhere.
//!
//! Each public function checks the CPU (`is_x86_feature_detected!` caches the answer) and calls either a
//! `#[target_feature(enable = "avx2,fma")]` body or a plain loop with the same meaning. Without the target-feature
//! attribute `mul_add` compiles to a library call and the exp polynomial is not vectorised.
//!
//! Every exponential here has an argument `<= 0` (a value minus a maximum): results lie in `[0, 1]`, and arguments
//! below [`EXP_FLOOR`] (including the `-inf` of masked entries) give exactly 0.

/// Arguments below this give exactly 0 (e^-87.3 is the smallest normal f32; relative to the maximum term, which is
/// 1, anything smaller is below f32 resolution anyway).
pub const EXP_FLOOR: f32 = -87.0;

/// Set by [`force_scalar`]: run the scalar fallbacks even on an AVX2 CPU.
static FORCE_SCALAR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Force the scalar fallbacks (`true`) or let the CPU decide (`false`), process-wide. For tests and benchmarks;
/// the environment variable `SVACLR_LOSS_SIMD=0` does the same from the start of a process.
#[doc(hidden)]
pub fn force_scalar(on: bool) {
    FORCE_SCALAR.store(on, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2_fma() -> bool {
    static ENV_OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let env_off = *ENV_OFF.get_or_init(|| std::env::var("SVACLR_LOSS_SIMD").is_ok_and(|v| v.trim() == "0"));
    !env_off
        && !FORCE_SCALAR.load(std::sync::atomic::Ordering::Relaxed)
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
}

/// Which leaves run on this CPU: `"avx2+fma"` or `"scalar"`.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return "avx2+fma";
    }
    "scalar"
}

/// Scalar exp with the kernel's floor.
#[inline]
fn x_exp(x: f32) -> f32 {
    if x < EXP_FLOOR { 0.0 } else { x.exp() }
}

macro_rules! dispatch {
    ($avx:expr, $scalar:expr) => {{
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports avx2 and fma (checked on the line above).
            return unsafe { $avx };
        }
        $scalar
    }};
}

/// `sum_k a[k] * b[k]`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    dispatch!(avx2::dot(a, b), a.iter().zip(b).map(|(x, y)| x * y).sum())
}

/// The largest element (`-inf` for an empty or all-`-inf` slice).
pub fn max(x: &[f32]) -> f32 {
    dispatch!(avx2::max(x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max))
}

/// `mx[k] = max(mx[k], row[k])`.
pub fn max_update(mx: &mut [f32], row: &[f32]) {
    debug_assert_eq!(mx.len(), row.len());
    dispatch!(avx2::max_update(mx, row), {
        for (m, &x) in mx.iter_mut().zip(row) {
            *m = m.max(x);
        }
    })
}

/// `sm[k] += exp(row[k] - mx[k])`.
pub fn exp_acc(sm: &mut [f32], row: &[f32], mx: &[f32]) {
    debug_assert!(sm.len() == row.len() && row.len() == mx.len());
    dispatch!(avx2::exp_acc(sm, row, mx), {
        for ((s, &x), &m) in sm.iter_mut().zip(row).zip(mx) {
            *s += x_exp(x - m);
        }
    })
}

/// `sum_k exp(row[k] - m)`.
pub fn exp_sub_sum(row: &[f32], m: f32) -> f32 {
    dispatch!(avx2::exp_sub_sum(row, m), row.iter().map(|&x| x_exp(x - m)).sum())
}

/// `e[k] = exp(row[k] - m)`; returns `sum_k e[k]`.
pub fn exp_sub_store(row: &[f32], m: f32, e: &mut [f32]) -> f32 {
    debug_assert_eq!(row.len(), e.len());
    dispatch!(avx2::exp_sub_store(row, m, e), {
        let mut s = 0.0f32;
        for (o, &x) in e.iter_mut().zip(row) {
            *o = x_exp(x - m);
            s += *o;
        }
        s
    })
}

/// The gradient row over the logits row, in place: `row[k] = alpha * e[k] + beta[k] * exp(row[k] - mc[k])`.
///
/// `e` holds `exp(row - row_max)` from [`exp_sub_store`], `alpha` already divided by the row's sum; `mc` is the
/// column log-sum-exp. Masked (`-inf`) entries come out as 0.
pub fn grad_row(row: &mut [f32], e: &[f32], alpha: f32, beta: &[f32], mc: &[f32]) {
    debug_assert!(row.len() == e.len() && e.len() == beta.len() && beta.len() == mc.len());
    dispatch!(avx2::grad_row(row, e, alpha, beta, mc), {
        for (k, x) in row.iter_mut().enumerate() {
            *x = alpha * e[k] + beta[k] * x_exp(*x - mc[k]);
        }
    })
}

/// In place `row[k] = exp(row[k] - shift)`, `acc[k] += row[k]`; returns `sum_k row[k]` (one sweep of the
/// fixed-shift path: the row sum and the column partial sums together).
pub fn exp_shift_acc(row: &mut [f32], shift: f32, acc: &mut [f32]) -> f32 {
    assert_eq!(row.len(), acc.len(), "exp_shift_acc: length mismatch");
    dispatch!(avx2::exp_shift_acc(row, shift, acc), {
        let mut s = 0.0f32;
        for (x, a) in row.iter_mut().zip(acc.iter_mut()) {
            *x = x_exp(*x - shift);
            *a += *x;
            s += *x;
        }
        s
    })
}

/// In place `row[k] *= u + w[k]` (the gradient row of the fixed-shift path).
pub fn scale_row(row: &mut [f32], u: f32, w: &[f32]) {
    assert_eq!(row.len(), w.len(), "scale_row: length mismatch");
    dispatch!(avx2::scale_row(row, u, w), {
        for (x, &wk) in row.iter_mut().zip(w) {
            *x *= u + wk;
        }
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{EXP_FLOOR, x_exp};

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hmax(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_max_ps(lo, hi);
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    /// Cephes-style expf on 8 lanes (about 1 ulp on [-87, 0]); lanes below `EXP_FLOOR` (and `-inf`) give 0.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let below = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_FLOOR), _CMP_LT_OQ);
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_FLOOR)), _mm256_set1_ps(88.0));
        // n = round(x / ln 2); r = x - n ln 2, with ln 2 split in two parts for precision.
        let fx = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_199_9e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666_666_5e-1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
        let r2 = _mm256_mul_ps(r, r);
        let y = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        // 2^n through the exponent bits (n >= -126 after the clamp, so the result is normal).
        let n = _mm256_cvtps_epi32(fx);
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127))));
        _mm256_andnot_ps(below, _mm256_mul_ps(y, pow2))
    }

    // In every loop below the unchecked loads and stores stay at indices `k..k + 8` with `k + 8 <= n`, where `n`
    // is the length of every slice involved (asserted or taken as the minimum).

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut k = 0;
        while k + 16 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(k)), _mm256_loadu_ps(pb.add(k)), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(k + 8)), _mm256_loadu_ps(pb.add(k + 8)), acc1);
            }
            k += 16;
        }
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe { acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(k)), _mm256_loadu_ps(pb.add(k)), acc0) };
            k += 8;
        }
        let mut s = hsum(_mm256_add_ps(acc0, acc1));
        while k < n {
            s = a[k].mul_add(b[k], s);
            k += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(x: &[f32]) -> f32 {
        let n = x.len();
        let px = x.as_ptr();
        let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe { acc = _mm256_max_ps(acc, _mm256_loadu_ps(px.add(k))) };
            k += 8;
        }
        let mut m = hmax(acc);
        while k < n {
            m = m.max(x[k]);
            k += 1;
        }
        m
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max_update(mx: &mut [f32], row: &[f32]) {
        let n = mx.len().min(row.len());
        let (pm, pr) = (mx.as_mut_ptr(), row.as_ptr());
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                _mm256_storeu_ps(pm.add(k), _mm256_max_ps(_mm256_loadu_ps(pm.add(k)), _mm256_loadu_ps(pr.add(k))));
            }
            k += 8;
        }
        while k < n {
            mx[k] = mx[k].max(row[k]);
            k += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_acc(sm: &mut [f32], row: &[f32], mx: &[f32]) {
        let n = sm.len().min(row.len()).min(mx.len());
        let (ps, pr, pm) = (sm.as_mut_ptr(), row.as_ptr(), mx.as_ptr());
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), _mm256_loadu_ps(pm.add(k))));
                _mm256_storeu_ps(ps.add(k), _mm256_add_ps(_mm256_loadu_ps(ps.add(k)), e));
            }
            k += 8;
        }
        while k < n {
            sm[k] += x_exp(row[k] - mx[k]);
            k += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub_sum(row: &[f32], m: f32) -> f32 {
        let n = row.len();
        let pr = row.as_ptr();
        let mv = _mm256_set1_ps(m);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut k = 0;
        while k + 16 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                acc0 = _mm256_add_ps(acc0, exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), mv)));
                acc1 = _mm256_add_ps(acc1, exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k + 8)), mv)));
            }
            k += 16;
        }
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe { acc0 = _mm256_add_ps(acc0, exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), mv))) };
            k += 8;
        }
        let mut s = hsum(_mm256_add_ps(acc0, acc1));
        while k < n {
            s += x_exp(row[k] - m);
            k += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub_store(row: &[f32], m: f32, e: &mut [f32]) -> f32 {
        let n = row.len().min(e.len());
        let (pr, pe) = (row.as_ptr(), e.as_mut_ptr());
        let mv = _mm256_set1_ps(m);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut k = 0;
        while k + 16 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), mv));
                let e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k + 8)), mv));
                _mm256_storeu_ps(pe.add(k), e0);
                _mm256_storeu_ps(pe.add(k + 8), e1);
                acc0 = _mm256_add_ps(acc0, e0);
                acc1 = _mm256_add_ps(acc1, e1);
            }
            k += 16;
        }
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), mv));
                _mm256_storeu_ps(pe.add(k), e0);
                acc0 = _mm256_add_ps(acc0, e0);
            }
            k += 8;
        }
        let mut s = hsum(_mm256_add_ps(acc0, acc1));
        while k < n {
            e[k] = x_exp(row[k] - m);
            s += e[k];
            k += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_shift_acc(row: &mut [f32], shift: f32, acc: &mut [f32]) -> f32 {
        let n = row.len().min(acc.len());
        let (pr, pa) = (row.as_mut_ptr(), acc.as_mut_ptr());
        let sv = _mm256_set1_ps(shift);
        let mut sum = _mm256_setzero_ps();
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), sv));
                _mm256_storeu_ps(pr.add(k), e);
                _mm256_storeu_ps(pa.add(k), _mm256_add_ps(_mm256_loadu_ps(pa.add(k)), e));
                sum = _mm256_add_ps(sum, e);
            }
            k += 8;
        }
        let mut s = hsum(sum);
        while k < n {
            row[k] = x_exp(row[k] - shift);
            acc[k] += row[k];
            s += row[k];
            k += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scale_row(row: &mut [f32], u: f32, w: &[f32]) {
        let n = row.len().min(w.len());
        let (pr, pw) = (row.as_mut_ptr(), w.as_ptr());
        let uv = _mm256_set1_ps(u);
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                let f = _mm256_add_ps(uv, _mm256_loadu_ps(pw.add(k)));
                _mm256_storeu_ps(pr.add(k), _mm256_mul_ps(_mm256_loadu_ps(pr.add(k)), f));
            }
            k += 8;
        }
        while k < n {
            row[k] *= u + w[k];
            k += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn grad_row(row: &mut [f32], e: &[f32], alpha: f32, beta: &[f32], mc: &[f32]) {
        let n = row.len().min(e.len()).min(beta.len()).min(mc.len());
        let (pr, pe, pb, pc) = (row.as_mut_ptr(), e.as_ptr(), beta.as_ptr(), mc.as_ptr());
        let al = _mm256_set1_ps(alpha);
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: see the comment above the functions.
            unsafe {
                let col = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(k)), _mm256_loadu_ps(pc.add(k))));
                let g = _mm256_fmadd_ps(al, _mm256_loadu_ps(pe.add(k)), _mm256_mul_ps(_mm256_loadu_ps(pb.add(k)), col));
                _mm256_storeu_ps(pr.add(k), g);
            }
            k += 8;
        }
        while k < n {
            row[k] = alpha * e[k] + beta[k] * x_exp(row[k] - mc[k]);
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f32, want: f64, rel: f64) -> bool {
        (got as f64 - want).abs() <= rel * want.abs() + 1e-30
    }

    #[test]
    fn leaves_match_f64_loops() {
        for n in [0usize, 1, 7, 8, 9, 16, 37, 100] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.37).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.21).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-5, "dot n={n}");

            let mut row: Vec<f32> = (0..n).map(|i| (i as f32 - 20.0) * 0.9).collect();
            if n > 3 {
                row[3] = f32::NEG_INFINITY;
            }
            let m = max(&row);
            assert_eq!(m, row.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            let exact: Vec<f64> = row.iter().map(|&x| ((x - m) as f64).exp()).collect();
            let total: f64 = exact.iter().sum();
            let mut e = vec![0.0f32; n];
            let s = exp_sub_store(&row, m, &mut e);
            assert!(close(s, total, 1e-6), "sum n={n}");
            // Not bitwise: a kernel test may flip the global `force_scalar` switch between the two calls.
            assert!(close(exp_sub_sum(&row, m), s as f64, 1e-6), "exp_sub_sum n={n}");
            for k in 0..n {
                assert!(close(e[k], exact[k], 3e-7), "exp n={n} k={k}: {} vs {}", e[k], exact[k]);
            }
            if n > 3 {
                assert_eq!(e[3], 0.0);
            }

            let mut mx = vec![0.5f32; n];
            max_update(&mut mx, &row);
            let mut sm = vec![0.0f32; n];
            exp_acc(&mut sm, &row, &mx);
            exp_acc(&mut sm, &row, &mx);
            for k in 0..n {
                assert_eq!(mx[k], row[k].max(0.5));
                assert!(close(sm[k], 2.0 * ((row[k] - mx[k]) as f64).exp(), 1e-6), "exp_acc n={n} k={k}");
            }

            let beta: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let mc: Vec<f32> = (0..n).map(|i| 3.0 + i as f32 * 0.1).collect();
            let mut g = row.clone();
            grad_row(&mut g, &e, 1.5, &beta, &mc);
            for k in 0..n {
                let want = 1.5 * e[k] as f64 + beta[k] as f64 * ((row[k] - mc[k]) as f64).exp();
                assert!(close(g[k], want, 1e-6), "grad n={n} k={k}");
            }
        }
    }

    #[test]
    fn fixed_shift_leaves_match_f64_loops() {
        for n in [0usize, 1, 7, 8, 9, 37, 100] {
            let row: Vec<f32> =
                (0..n).map(|i| if i % 13 == 5 { f32::NEG_INFINITY } else { (i as f32 - 50.0) * 0.3 }).collect();
            let mut x = row.clone();
            let mut acc = vec![0.25f32; n];
            let s = exp_shift_acc(&mut x, 14.0, &mut acc);
            let want: Vec<f64> = row.iter().map(|&v| ((v - 14.0) as f64).exp()).collect();
            assert!(close(s, want.iter().sum(), 1e-6), "sum n={n}");
            for k in 0..n {
                assert!(close(x[k], want[k], 3e-7), "exp n={n} k={k}");
                assert!(close(acc[k], 0.25 + want[k], 3e-7), "acc n={n} k={k}");
            }
            let w: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let mut y = x.clone();
            scale_row(&mut y, 0.5, &w);
            for k in 0..n {
                assert_eq!(y[k], x[k] * (0.5 + w[k]), "scale n={n} k={k}");
            }
        }
    }

    #[test]
    fn exp_floor_gives_exact_zero() {
        let row = [-200.0f32, -87.5, -86.0, 0.0, f32::NEG_INFINITY, -1.0, -2.0, -3.0, -90.0];
        let mut e = [1.0f32; 9];
        exp_sub_store(&row, 0.0, &mut e);
        assert_eq!(e[0], 0.0);
        assert_eq!(e[1], 0.0);
        assert!(e[2] > 0.0);
        assert!((e[3] - 1.0).abs() < 1e-7);
        assert_eq!(e[4], 0.0);
        assert_eq!(e[8], 0.0);
    }
}
