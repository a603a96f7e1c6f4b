//! Training-mode BatchNorm on contiguous f32 data `[N, C, S]` (S: every axis after the channel one), forward and
//! backward, each in two passes over the activation.
//!
//! Forward: per channel the mean and the biased variance (f64 sums of x and x² in 8 lanes, one pass), then
//! `y = (x - mean) / sqrt(var + eps) * gamma + beta` as one multiply-add per element, optionally followed by a ReLU
//! in the same pass. Backward, with `xhat = (x - mean) * invstd`, M = N x S elements per channel, and `g` the output
//! gradient (with the ReLU: `dy` where the output is positive, else 0, the mask recomputed from x):
//! `dbeta = sum(g)`, `dgamma = sum(g * xhat)` (one pass), then
//! `dx = gamma * invstd / M * (M * g - dbeta - xhat * dgamma)` (a second pass).
//! Channels are reduced in parallel; the element-wise passes run in parallel over `[n, c]` rows of S elements.

use rayon::prelude::*;

/// `[N, C, S]`: batch, channels, and the elements of one channel of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

impl Layout {
    /// Elements per channel over the batch (the M of the statistics).
    pub fn per_channel(&self) -> usize {
        self.n * self.s
    }

    pub fn len(&self) -> usize {
        self.n * self.c * self.s
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The S-long rows of channel `c`, one per sample.
    fn rows<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (cs, s) = (self.c * self.s, self.s);
        (0..self.n).map(move |n| &x[n * cs + c * s..n * cs + (c + 1) * s])
    }
}

/// Independent f64 accumulators per reduction: one running sum would be a chain of dependent additions (one per
/// element, each waiting for the last); lanes let the adds overlap and vectorise.
const LANES: usize = 8;

/// The ReLU's mask in the backward: an output gradient counts where `(v - mean) * scale + beta > 0` (the forward's
/// expression in the same f32 rounding, so the mask is the forward's; NaN counts, as `max` would pass it).
#[derive(Clone, Copy, Debug)]
struct Mask {
    mean: f32,
    scale: f32,
    beta: f32,
}

impl Mask {
    fn apply(&self, g: f32, v: f32) -> f32 {
        if (v - self.mean) * self.scale + self.beta <= 0.0 { 0.0 } else { g }
    }
}

/// `(sum w, sum w * v)` in f64 over the values `v` of `rows` and their paired values `o`, with `w = o`, or `o`
/// masked by `mask` at `v`; in [`LANES`] lanes (element `i` of a row in lane `i mod LANES`), each a running f64 sum
/// of f64 products (no fused multiply-add), summed in order at the end. The AVX2 path computes exactly the same
/// operations in the same order, so the result is the same bit for bit on every CPU and never depends on threads.
fn pair_sums<'a>(rows: impl Iterator<Item = (&'a [f32], &'a [f32])>, mask: Option<Mask>) -> (f64, f64) {
    pair_sums_with(rows, mask, crate::cpu::has_avx2_fma())
}

/// [`pair_sums`], on the AVX2 path when `avx2` (which must then be available).
fn pair_sums_with<'a>(
    rows: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    mask: Option<Mask>,
    avx2: bool,
) -> (f64, f64) {
    let (mut s, mut q) = ([0.0f64; LANES], [0.0f64; LANES]);
    for (row, other) in rows {
        let body = row.len() / LANES * LANES;
        if avx2 {
            // SAFETY: AVX2 is available; both slices hold `body` values.
            unsafe { lanes_avx2(&row[..body], &other[..body], mask, &mut s, &mut q) };
        } else {
            for (c, o) in row[..body].chunks_exact(LANES).zip(other[..body].chunks_exact(LANES)) {
                for j in 0..LANES {
                    let g = f64::from(mask.map_or(o[j], |m| m.apply(o[j], c[j])));
                    s[j] += g;
                    q[j] += g * f64::from(c[j]);
                }
            }
        }
        for (j, (&v, &o)) in row[body..].iter().zip(&other[body..]).enumerate() {
            let g = f64::from(mask.map_or(o, |m| m.apply(o, v)));
            s[j] += g;
            q[j] += g * f64::from(v);
        }
    }
    (s.iter().sum(), q.iter().sum())
}

/// [`pair_sums`]'s lanes over whole chunks of [`LANES`] values, with AVX2.
///
/// # Safety
/// AVX2 is available; `row.len() == other.len()`, a multiple of [`LANES`].
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
unsafe fn lanes_avx2(row: &[f32], other: &[f32], mask: Option<Mask>, s: &mut [f64; LANES], q: &mut [f64; LANES]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: every load reads 8 values at a multiple of 8 below `row.len()`; the accumulators are arrays of 8.
    unsafe {
        use std::arch::x86_64::*;
        let (mut s0, mut s1) = (_mm256_loadu_pd(s.as_ptr()), _mm256_loadu_pd(s.as_ptr().add(4)));
        let (mut q0, mut q1) = (_mm256_loadu_pd(q.as_ptr()), _mm256_loadu_pd(q.as_ptr().add(4)));
        let m = mask.map(|m| (_mm256_set1_ps(m.mean), _mm256_set1_ps(m.scale), _mm256_set1_ps(m.beta)));
        for i in (0..row.len()).step_by(LANES) {
            let v = _mm256_loadu_ps(row.as_ptr().add(i));
            let mut g = _mm256_loadu_ps(other.as_ptr().add(i));
            if let Some((mean, scale, beta)) = m {
                let t = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, mean), scale), beta);
                // Keep g where !(t <= 0) (unordered compares true, as the scalar `<=` is false for NaN).
                g = _mm256_and_ps(g, _mm256_cmp_ps::<_CMP_NLE_UQ>(t, _mm256_setzero_ps()));
            }
            let (g0, g1) = (_mm256_cvtps_pd(_mm256_castps256_ps128(g)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(g)));
            let (v0, v1) = (_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)));
            s0 = _mm256_add_pd(s0, g0);
            s1 = _mm256_add_pd(s1, g1);
            q0 = _mm256_add_pd(q0, _mm256_mul_pd(g0, v0));
            q1 = _mm256_add_pd(q1, _mm256_mul_pd(g1, v1));
        }
        _mm256_storeu_pd(s.as_mut_ptr(), s0);
        _mm256_storeu_pd(s.as_mut_ptr().add(4), s1);
        _mm256_storeu_pd(q.as_mut_ptr(), q0);
        _mm256_storeu_pd(q.as_mut_ptr().add(4), q1);
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("batch norm: AVX2 is never detected off x86-64");
}

/// The batch statistics: per channel mean and biased variance.
pub fn stats(l: &Layout, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let m = l.per_channel() as f64;
    // f32 partial sums would lose digits on long channels; accumulate in f64, channels in parallel.
    let sums: Vec<(f64, f64)> =
        (0..l.c).into_par_iter().map(|c| pair_sums(l.rows(x, c).map(|r| (r, r)), None)).collect();
    sums.into_iter()
        .map(|(s, q)| {
            let mean = s / m;
            ((mean) as f32, (q / m - mean * mean).max(0.0) as f32)
        })
        .unzip()
}

/// `1 / sqrt(var + eps)` per channel, in f64 then rounded.
pub fn inv_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter().map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32).collect()
}

/// The per channel scale `gamma / sqrt(var + eps)`, with `y = (x - mean) * scale + beta` (subtracting the mean
/// first keeps the digits a folded `x * scale + shift` loses when |mean| is large against the spread).
fn scale(inv: &[f32], gamma: &[f32]) -> Vec<f32> {
    gamma.iter().zip(inv).map(|(g, i)| g * i).collect()
}

/// Apply `out = (x - mean[c]) * scale[c] + beta[c]` (then `max(out, 0)` with `relu`) row by row, rows in parallel.
fn affine(l: &Layout, x: &[f32], mean: &[f32], scale: &[f32], beta: &[f32], relu: bool) -> Vec<f32> {
    let mut out = vec![0.0f32; l.len()];
    let s = l.s.max(1);
    let avx2 = crate::cpu::has_avx2_fma();
    out.par_chunks_mut(s).zip(x.par_chunks(s)).enumerate().for_each(|(row, (o, xi))| {
        let c = row % l.c;
        let args = (mean[c], scale[c], beta[c], relu);
        if avx2 {
            // SAFETY: AVX2 is available.
            unsafe { affine_row_avx2(o, xi, args) }
        } else {
            affine_row(o, xi, args)
        }
    });
    out
}

/// One row of [`affine`]: `(mean, scale, beta, relu)`.
#[inline(always)]
fn affine_row(o: &mut [f32], x: &[f32], (m, a, b, relu): (f32, f32, f32, bool)) {
    if relu {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = ((v - m) * a + b).max(0.0);
        }
    } else {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = (v - m) * a + b;
        }
    }
}

/// [`affine_row`] compiled for AVX2 (8 lanes instead of SSE2's 4; the same operations, so the same bits).
///
/// # Safety
/// AVX2 is available.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
unsafe fn affine_row_avx2(o: &mut [f32], x: &[f32], args: (f32, f32, f32, bool)) {
    affine_row(o, x, args)
}

/// Training-mode forward, with an optional ReLU after it: `(y, mean, biased var)`.
pub fn forward(
    l: &Layout,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = stats(l, x);
    let scale = scale(&inv_std(&var, eps), gamma);
    (affine(l, x, &mean, &scale, beta, relu), mean, var)
}

/// Gradients `(dx, dgamma, dbeta)` of the training-mode forward (with the ReLU when `relu`), given the statistics
/// it used and the parameters (`beta` only matters for the ReLU's mask).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    l: &Layout,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv = inv_std(var, eps);
    let scale = scale(&inv, gamma);
    // The output gradient of element v of channel c: dy, or 0 where the ReLU's output was 0.
    let mask = |c: usize| relu.then(|| Mask { mean: mean[c], scale: scale[c], beta: beta[c] });
    // The channel's mean is applied per channel below: sum(g * x) here.
    let sums: Vec<(f64, f64)> =
        (0..l.c).into_par_iter().map(|c| pair_sums(l.rows(x, c).zip(l.rows(dy, c)), mask(c))).collect();
    let m = l.per_channel() as f64;
    let mut dgamma = Vec::with_capacity(l.c);
    let mut dbeta = Vec::with_capacity(l.c);
    // dx = k * g + a * (x - mean) + b per channel, with k = gamma * invstd,
    // a = -k * invstd^2 * sum(g (x - mean)) / M and b = -k * sum(g) / M.
    let (mut k, mut a, mut b) = (vec![0.0f32; l.c], vec![0.0f32; l.c], vec![0.0f32; l.c]);
    for c in 0..l.c {
        let (sum_g, sum_g_x) = sums[c];
        let (mu, is) = (f64::from(mean[c]), f64::from(inv[c]));
        let sum_g_centered = sum_g_x - mu * sum_g;
        dbeta.push(sum_g as f32);
        dgamma.push((sum_g_centered * is) as f32);
        let kc = f64::from(gamma[c]) * is;
        k[c] = kc as f32;
        a[c] = (-kc * is * is * sum_g_centered / m) as f32;
        b[c] = (-kc * sum_g / m) as f32;
    }
    let mut dx = vec![0.0f32; l.len()];
    let s = l.s.max(1);
    let avx2 = crate::cpu::has_avx2_fma();
    dx.par_chunks_mut(s).zip(dy.par_chunks(s).zip(x.par_chunks(s))).enumerate().for_each(|(row, (o, (g, xi)))| {
        let c = row % l.c;
        let args = (k[c], a[c], b[c], mean[c], mask(c));
        if avx2 {
            // SAFETY: AVX2 is available.
            unsafe { input_grad_row_avx2(o, g, xi, args) }
        } else {
            input_grad_row(o, g, xi, args)
        }
    });
    (dx, dgamma, dbeta)
}

/// The input gradient's coefficients for one row: `(k, a, b, mean, mask)`, `dx = k * g + a * (x - mean) + b`.
type RowGrad = (f32, f32, f32, f32, Option<Mask>);

/// One row of the input gradient.
#[inline(always)]
fn input_grad_row(o: &mut [f32], g: &[f32], x: &[f32], (kc, ac, bc, mc, mask): RowGrad) {
    match mask {
        Some(m) => {
            for ((o, &g), &v) in o.iter_mut().zip(g).zip(x) {
                *o = kc * m.apply(g, v) + ac * (v - mc) + bc;
            }
        }
        None => {
            for ((o, &g), &v) in o.iter_mut().zip(g).zip(x) {
                *o = kc * g + ac * (v - mc) + bc;
            }
        }
    }
}

/// [`input_grad_row`] compiled for AVX2 (the same operations, so the same bits).
///
/// # Safety
/// AVX2 is available.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
unsafe fn input_grad_row_avx2(o: &mut [f32], g: &[f32], x: &[f32], args: RowGrad) {
    input_grad_row(o, g, x, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64, offset: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                offset + 3.0 * ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            })
            .collect()
    }

    /// The definition in f64: statistics, output, and the gradients of `sum(r * y)` by central differences of
    /// that f64 forward.
    fn reference(l: &Layout, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64, relu: bool) -> Vec<f64> {
        let m = l.per_channel() as f64;
        let mut y = vec![0.0; l.len()];
        for c in 0..l.c {
            let idx: Vec<usize> = (0..l.n).flat_map(|n| (0..l.s).map(move |s| n * l.c * l.s + c * l.s + s)).collect();
            let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / m;
            let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / m;
            for &i in &idx {
                y[i] = (x[i] - mean) / (var + eps).sqrt() * gamma[c] + beta[c];
                if relu {
                    y[i] = y[i].max(0.0);
                }
            }
        }
        y
    }

    /// The AVX2 paths compute the same operations in the same order as the portable ones: the same bits, for rows of
    /// every length around the vector width, with masked values, NaN and signed zeros among the inputs.
    #[test]
    fn avx2_paths_give_the_portable_paths_bits() {
        if !crate::cpu::has_avx2_fma() {
            eprintln!("no AVX2 on this CPU: the portable paths are the only ones");
            return;
        }
        let mask = Mask { mean: 0.1, scale: 1.7, beta: -0.2 };
        for len in (0..=20).chain([37, 64, 1001]) {
            let mut x = values(len, len as u64, 0.0);
            let mut o = values(len, len as u64 + 100, 0.5);
            if len > 3 {
                (x[1], o[2], x[3]) = (f32::NAN, -0.0, 0.1);
            }
            let rows = || x.chunks(len.max(1)).zip(o.chunks(len.max(1)));
            for m in [None, Some(mask)] {
                let (a, b) = (pair_sums_with(rows(), m, false), pair_sums_with(rows(), m, true));
                assert_eq!((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()), "len {len} mask {m:?}");
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
            for relu in [false, true] {
                let (mut p, mut q) = (vec![0.0f32; len], vec![0.0f32; len]);
                affine_row(&mut p, &x, (0.3, 1.9, -0.4, relu));
                // SAFETY: AVX2 was detected above.
                unsafe { affine_row_avx2(&mut q, &x, (0.3, 1.9, -0.4, relu)) };
                assert_eq!(bits(&p), bits(&q), "affine len {len} relu {relu}");
                let args = (1.3, -0.7, 0.05, 0.3, relu.then_some(mask));
                input_grad_row(&mut p, &o, &x, args);
                // SAFETY: as above.
                unsafe { input_grad_row_avx2(&mut q, &o, &x, args) };
                assert_eq!(bits(&p), bits(&q), "input gradient len {len} relu {relu}");
            }
        }
    }

    #[test]
    fn forward_and_backward_agree_with_the_definition() {
        let eps = 1e-5;
        let layouts = [Layout { n: 3, c: 4, s: 10 }, Layout { n: 1, c: 2, s: 7 }, Layout { n: 5, c: 3, s: 1 }];
        for (i, (l, relu)) in layouts.into_iter().flat_map(|l| [(l, false), (l, true)]).enumerate() {
            let seed = 10 * i as u64;
            // An offset far from 0 checks that the one-pass variance keeps its digits.
            let x = values(l.len(), seed, 40.0);
            let r = values(l.len(), seed + 1, 0.0);
            let gamma = values(l.c, seed + 2, 1.0);
            let beta = values(l.c, seed + 3, 0.0);
            let f64s = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
            let (xd, gd, bd) = (f64s(&x), f64s(&gamma), f64s(&beta));
            let (y, _, _) = forward(&l, &x, &gamma, &beta, eps, relu);
            let want = reference(&l, &xd, &gd, &bd, eps, relu);
            for (a, b) in y.iter().zip(&want) {
                assert!((f64::from(*a) - b).abs() < 2e-5 * (1.0 + b.abs()), "{l:?} relu {relu}: y {a} vs {b}");
            }
            let (mean, var) = stats(&l, &x);
            let (dx, dgamma, dbeta) = backward(&l, &x, &r, &mean, &var, &gamma, &beta, eps, relu);
            let loss = |x: &[f64], g: &[f64], b: &[f64]| {
                reference(&l, x, g, b, eps, relu).iter().zip(&r).map(|(y, r)| y * f64::from(*r)).sum::<f64>()
            };
            let h = 1e-4;
            let numeric = |v: &[f64], j: usize, f: &dyn Fn(&[f64]) -> f64| {
                let (mut p, mut q) = (v.to_vec(), v.to_vec());
                p[j] += h;
                q[j] -= h;
                (f(&p) - f(&q)) / (2.0 * h)
            };
            let close = |what: &str, got: f32, want: f64| {
                assert!(
                    (f64::from(got) - want).abs() < 1e-3 * (1.0 + want.abs()),
                    "{l:?} relu {relu}: {what} {got} vs {want}"
                );
            };
            for j in 0..l.len() {
                close("dx", dx[j], numeric(&xd, j, &|v| loss(v, &gd, &bd)));
            }
            for c in 0..l.c {
                close("dgamma", dgamma[c], numeric(&gd, c, &|v| loss(&xd, v, &bd)));
                close("dbeta", dbeta[c], numeric(&bd, c, &|v| loss(&xd, &gd, v)));
            }
        }
    }
}
