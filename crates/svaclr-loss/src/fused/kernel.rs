//! The fused (Soft)InfoNCE kernel on host slices: loss and, on request, all gradients in one call.
//!
//! Notation (see `docs/loss.md`): `R = V*N` rows, row/column `r = p*N + i` (view p, clip i). `A`, `B` are the
//! L2-normalised audio/video embeddings `[R, D]`, `L = A B^T / eta` the logits `[R, R]`. For the pair
//! (i, p, q) the positive logit is `s = L[(p,i), (q,i)]`, the row negatives are the columns of every other clip
//! and the column negatives the rows of every other clip. With `M_r` / `M^c_c` the log-sum-exp of row r / column c
//! over its negatives:
//!
//! ```text
//! loss   = sum_{i,p,q} lambda_ipq * (softplus(M_(p,i) - s_ipq) + softplus(M^c_(q,i) - s_ipq)) / (2 V^2 N)
//! dL/dL  = alpha_r * exp(L - M_r) + beta_c * exp(L - M^c_c)         on negatives
//!        = -kappa_ipq * (sigmoid(M_(p,i) - s) + sigmoid(M^c_(q,i) - s))   on the positive (q,i) of row (p,i)
//!        = 0                                                           on the other view of the same clip
//! kappa_ipq = lambda_ipq / (2 V^2 N), alpha_(p,i) = sum_q kappa sigmoid(row), beta_(q,i) = sum_p kappa sigmoid(col)
//! dA = dL/dL B / eta, dB = (dL/dL)^T A / eta, then back through the normalisation.
//! ```
//!
//! Work: one `R x R x D` matmul forward, two for the gradients (all through the `gemm` crate, threaded with
//! rayon). Same-clip entries are set to `-inf` after the positives are read, so no pass needs a mask. Then one of
//! two regimes for the log-sum-exps:
//!
//! - **fixed shift** (`2/eta < 80`, e.g. the default eta = 0.07): unit vectors bound every logit by `1/eta`, so
//!   `E = exp(L - 1/eta)` stays a normal float. One sweep writes `E` over `L` and sums it by rows and (per block of
//!   32 rows, then in block order: bitwise reproducible) by columns; one exponential per element in all. The gradient
//!   is then `E * (alpha_r / rowsum_r + beta_c / colsum_c)`, a multiply in place.
//! - **general** (smaller eta): column maxima and sums over column blocks that stay in cache, row maxima and sums,
//!   and a gradient sweep with two exponentials per element.
//!
//! Per-pair scalars are f64. Large buffers come from a small pool so repeated calls do not page-fault.

use std::sync::Mutex;

use rayon::prelude::*;

use super::simd;
use crate::NORM_EPS;

/// One loss evaluation on host data. All slices are row-major and contiguous.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    /// Audio projections `[V, N, D]` (not normalised).
    pub za: &'a [f32],
    /// Video projections `[V, N, D]` (not normalised).
    pub zv: &'a [f32],
    /// Pair weights `[N, V, V]` (`lambda[i][p][q]`, audio view p, video view q); `None` = all ones (InfoNCE).
    pub lambda: Option<&'a [f32]>,
    /// Views per modality.
    pub v: usize,
    /// Clips.
    pub n: usize,
    /// Feature width.
    pub d: usize,
    /// Temperature eta.
    pub temperature: f64,
}

/// What [`run`] returns.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// The loss.
    pub loss: f64,
    /// `d loss / d za`, `[V, N, D]`, when asked for.
    pub grad_za: Option<Vec<f32>>,
    /// `d loss / d zv`, `[V, N, D]`, when asked for.
    pub grad_zv: Option<Vec<f32>>,
    /// `d loss / d lambda`, `[N, V, V]`, when asked for.
    pub grad_lambda: Option<Vec<f32>>,
}

/// Below this many multiply-adds a matmul runs on the calling thread.
const GEMM_PARALLEL_MIN: usize = 64 * 64 * 64;

/// A pool of reusable f32 buffers (the `R x R` logits and the normalised embeddings).
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// How many buffers the pool keeps.
const POOL_KEEP: usize = 6;

/// A buffer of at least `len` floats, taken from the pool (contents unspecified).
fn take(len: usize) -> Vec<f32> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    // Prefer the smallest buffer that is large enough, else grow the largest one.
    let pick = pool
        .iter()
        .enumerate()
        .filter(|(_, b)| b.len() >= len)
        .min_by_key(|(_, b)| b.len())
        .map(|(i, _)| i)
        .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.len()).map(|(i, _)| i));
    let mut buf = match pick {
        Some(i) => pool.swap_remove(i),
        None => Vec::new(),
    };
    drop(pool);
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    buf
}

/// Return a buffer to the pool.
fn give(buf: Vec<f32>) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_KEEP {
        pool.push(buf);
    } else if let Some(smallest) = pool.iter_mut().min_by_key(|b| b.len())
        && smallest.len() < buf.len()
    {
        *smallest = buf;
    }
}

/// L2-normalise the rows of `z` (`[rows, d]`) into `out`, with `max(||z_r||, NORM_EPS)` as the divisor (as
/// `torch.nn.functional.normalize`); `norms[r]` receives that divisor.
pub fn normalize_rows(z: &[f32], d: usize, out: &mut [f32], norms: &mut [f32]) {
    let eps = NORM_EPS as f32;
    let work = |(zr, (or, nr)): (&[f32], (&mut [f32], &mut f32))| {
        let norm = simd::dot(zr, zr).sqrt().max(eps);
        *nr = norm;
        let inv = 1.0 / norm;
        for (o, &x) in or.iter_mut().zip(zr) {
            *o = x * inv;
        }
    };
    if z.len() >= 1 << 16 {
        z.par_chunks(d).zip(out.par_chunks_mut(d).zip(norms.par_iter_mut())).for_each(work);
    } else {
        z.chunks(d).zip(out.chunks_mut(d).zip(norms.iter_mut())).for_each(work);
    }
}

/// Back through [`normalize_rows`], in place: `g <- (g - a (a.g)) / norm` where `norm > eps`, else `g / eps`.
fn normalize_rows_backward(g: &mut [f32], a: &[f32], norms: &[f32], d: usize) {
    let eps = NORM_EPS as f32;
    let work = |(gr, (ar, &norm)): (&mut [f32], (&[f32], &f32))| {
        let inv = 1.0 / norm;
        if norm > eps {
            let ag = simd::dot(ar, gr);
            for (gj, &aj) in gr.iter_mut().zip(ar) {
                *gj = (*gj - aj * ag) * inv;
            }
        } else {
            for gj in gr.iter_mut() {
                *gj *= inv;
            }
        }
    };
    if g.len() >= 1 << 16 {
        g.par_chunks_mut(d).zip(a.par_chunks(d).zip(norms.par_iter())).for_each(work);
    } else {
        g.chunks_mut(d).zip(a.chunks(d).zip(norms.iter())).for_each(work);
    }
}

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= GEMM_PARALLEL_MIN && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m x n] = scale * lhs[m x k] rhs[k x n]`, with explicit (row, column) strides for lhs and rhs.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    scale: f32,
) {
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "matmul: lhs out of bounds");
    assert!(k == 0 || (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "matmul: rhs out of bounds");
    // SAFETY: the asserts above keep every index gemm touches inside the three slices; `dst` is written only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            scale,
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
}

/// `L[R x R] = A B^T * inv_t` for row-normalised `a`, `b` (`[R, D]`).
pub fn similarity(a: &[f32], b: &[f32], r: usize, d: usize, inv_t: f32, l: &mut [f32]) {
    matmul(l, r, r, d, a, (d, 1), b, (1, d), inv_t);
}

/// `(softplus(x), sigmoid(x))` = `(log(1 + exp(x)), 1 / (1 + exp(-x)))`, stable for large |x|, sharing one `exp`.
fn softplus_sigmoid(x: f64) -> (f64, f64) {
    let e = (-x.abs()).exp();
    let sp = x.max(0.0) + e.ln_1p();
    let sig = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (sp, sig)
}

/// Width of the column blocks of the general column pass: a multiple of 8, about four blocks per thread, 16..=128.
fn column_block(r: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let want = r.div_ceil(4 * threads).div_ceil(8) * 8;
    want.clamp(16, 128)
}

/// Rows per block of the fixed-shift sweep. Fixed (not derived from the thread count) so that the column sums are
/// added in the same order whatever the number of threads: results are bitwise reproducible.
const ROW_BLOCK: usize = 32;

/// The fixed-shift path applies when every `exp(L - 1/eta)` stays a normal float: `2 / eta` below this.
const FIXED_SHIFT_MAX_SPAN: f64 = 80.0;

/// The row and column log-sum-exp over the negatives, and what the gradient sweep needs.
enum Lse {
    /// `L` now holds `E = exp(L - shift)`; `row_sum[r] = sum_c E[r, c]`, `col_sum[c] = sum_r E[r, c]`.
    Fixed { shift: f32, row_sum: Vec<f32>, col_sum: Vec<f32> },
    /// `L` is unchanged; `m_row`, `m_col` are the log-sum-exps.
    General { m_row: Vec<f32>, m_col: Vec<f32> },
}

impl Lse {
    fn m_row(&self, r: usize) -> f64 {
        match self {
            Lse::Fixed { shift, row_sum, .. } => *shift as f64 + (row_sum[r] as f64).ln(),
            Lse::General { m_row, .. } => m_row[r] as f64,
        }
    }

    fn m_col(&self, c: usize) -> f64 {
        match self {
            Lse::Fixed { shift, col_sum, .. } => *shift as f64 + (col_sum[c] as f64).ln(),
            Lse::General { m_col, .. } => m_col[c] as f64,
        }
    }
}

/// One sweep for both directions: `E = exp(L - shift)` in place, row sums, and column sums (per row block, then
/// added in block order).
fn lse_fixed(l: &mut [f32], r: usize, shift: f32) -> Lse {
    let blocks = r.div_ceil(ROW_BLOCK);
    let mut row_sum = vec![0.0f32; r];
    let mut partial = vec![0.0f32; blocks * r];
    l.par_chunks_mut(ROW_BLOCK * r).zip(row_sum.par_chunks_mut(ROW_BLOCK)).zip(partial.par_chunks_mut(r)).for_each(
        |((rows, sums), acc)| {
            for (row, sum) in rows.chunks_exact_mut(r).zip(sums.iter_mut()) {
                *sum = simd::exp_shift_acc(row, shift, acc);
            }
        },
    );
    let mut col_sum = vec![0.0f32; r];
    col_sum.par_chunks_mut(256).enumerate().for_each(|(k, out)| {
        let c0 = k * 256;
        for blk in partial.chunks_exact(r) {
            for (o, x) in out.iter_mut().zip(&blk[c0..]) {
                *o += x;
            }
        }
    });
    Lse::Fixed { shift, row_sum, col_sum }
}

/// Row and column log-sum-exp with per-row / per-column maxima (any temperature); `L` is left unchanged.
fn lse_general(l: &[f32], r: usize) -> Lse {
    let mut m_col = vec![0.0f32; r];
    let cb = column_block(r);
    m_col.par_chunks_mut(cb).enumerate().for_each(|(blk, out)| {
        let c0 = blk * cb;
        let w = out.len();
        let mut mx = vec![f32::NEG_INFINITY; w];
        for row in l.chunks_exact(r) {
            simd::max_update(&mut mx, &row[c0..c0 + w]);
        }
        let mut sm = vec![0.0f32; w];
        for row in l.chunks_exact(r) {
            simd::exp_acc(&mut sm, &row[c0..c0 + w], &mx);
        }
        for ((o, m), s) in out.iter_mut().zip(&mx).zip(&sm) {
            *o = m + s.ln();
        }
    });
    let mut m_row = vec![0.0f32; r];
    l.par_chunks(r).zip(m_row.par_iter_mut()).for_each(|(row, out)| {
        let m = simd::max(row);
        *out = m + simd::exp_sub_sum(row, m).ln();
    });
    Lse::General { m_row, m_col }
}

/// Evaluate the loss and, when `want_z` / `want_lambda`, the gradients wrt `za`, `zv` / `lambda`.
///
/// # Panics
/// If a slice length does not match `v`, `n`, `d` (callers check shapes first).
pub fn run(p: &Problem<'_>, want_z: bool, want_lambda: bool) -> Output {
    let (v, n, d) = (p.v, p.n, p.d);
    let r = v * n;
    let vv = v * v;
    assert_eq!(p.za.len(), r * d, "fused kernel: za has the wrong length");
    assert_eq!(p.zv.len(), r * d, "fused kernel: zv has the wrong length");
    if let Some(lam) = p.lambda {
        assert_eq!(lam.len(), n * vv, "fused kernel: lambda has the wrong length");
    }
    let scale = 1.0 / (2.0 * (vv * n) as f64);
    let lam = |i: usize, pp: usize, q: usize| p.lambda.map_or(1.0, |l| l[(i * v + pp) * v + q] as f64);

    if n < 2 || d == 0 {
        // One clip: every denominator holds only the positive, each term is log(1) = 0 and nothing has a gradient.
        return Output {
            loss: 0.0,
            grad_za: want_z.then(|| vec![0.0; r * d]),
            grad_zv: want_z.then(|| vec![0.0; r * d]),
            grad_lambda: want_lambda.then(|| vec![0.0; n * vv]),
        };
    }

    let inv_t = (1.0 / p.temperature) as f32;
    let mut a_buf = take(r * d);
    let mut b_buf = take(r * d);
    let mut l_buf = take(r * r);
    let a = &mut a_buf[..r * d];
    let b = &mut b_buf[..r * d];
    let l = &mut l_buf[..r * r];
    let mut na = vec![0.0f32; r];
    let mut nb = vec![0.0f32; r];
    normalize_rows(p.za, d, a, &mut na);
    normalize_rows(p.zv, d, b, &mut nb);
    similarity(a, b, r, d, inv_t, l);

    // Positives s[(i*V + p)*V + q], then mask every same-clip entry.
    let mut s = vec![0.0f32; n * vv];
    for i in 0..n {
        for pp in 0..v {
            for q in 0..v {
                let idx = (pp * n + i) * r + q * n + i;
                s[(i * v + pp) * v + q] = l[idx];
                l[idx] = f32::NEG_INFINITY;
            }
        }
    }

    // Unit vectors bound every logit by 1/eta, so exp(L - 1/eta) lies in [exp(-2/eta), 1]: with 2/eta < 80 it never
    // leaves the normal floats and one shift serves every row and column.
    let lse = if 2.0 * inv_t as f64 * (1.0 + 1e-3) < FIXED_SHIFT_MAX_SPAN {
        lse_fixed(l, r, inv_t)
    } else {
        lse_general(l, r)
    };

    // Per pair: softplus / sigmoid of (LSE - positive) in both directions (f64), clips in parallel. Per clip i:
    // its loss share, d loss / d lambda_i, the positives' gradients, alpha of its rows (p, i), beta of its columns.
    let m_row: Vec<f64> = (0..r).map(|x| lse.m_row(x)).collect();
    let m_col: Vec<f64> = (0..r).map(|x| lse.m_col(x)).collect();
    let mut clip_loss = vec![0.0f64; n];
    let mut grad_lambda = vec![0.0f32; n * vv];
    let mut pos_grad = vec![0.0f32; n * vv];
    let mut clip_alpha = vec![0.0f64; n * v]; // [i][p]
    let mut clip_beta = vec![0.0f64; n * v]; // [i][q]
    clip_loss
        .par_iter_mut()
        .zip(grad_lambda.par_chunks_mut(vv))
        .zip(pos_grad.par_chunks_mut(vv))
        .zip(clip_alpha.par_chunks_mut(v).zip(clip_beta.par_chunks_mut(v)))
        .enumerate()
        .for_each(|(i, (((cl, gl), pg), (al, be)))| {
            for pp in 0..v {
                for q in 0..v {
                    let t = pp * v + q;
                    let pos = s[i * vv + t] as f64;
                    let (sp_r, sig_r) = softplus_sigmoid(m_row[pp * n + i] - pos);
                    let (sp_c, sig_c) = softplus_sigmoid(m_col[q * n + i] - pos);
                    let term = (sp_r + sp_c) * scale;
                    let w = lam(i, pp, q);
                    *cl += w * term;
                    gl[t] = term as f32;
                    let kappa = w * scale;
                    al[pp] += kappa * sig_r;
                    be[q] += kappa * sig_c;
                    pg[t] = (-kappa * (sig_r + sig_c)) as f32;
                }
            }
        });
    let loss: f64 = clip_loss.iter().sum();
    let grad_lambda = want_lambda.then_some(grad_lambda);
    // alpha / beta by row / column index (p*N + i).
    let mut alpha = vec![0.0f64; r];
    let mut beta = vec![0.0f64; r];
    for i in 0..n {
        for x in 0..v {
            alpha[x * n + i] = clip_alpha[i * v + x];
            beta[x * n + i] = clip_beta[i * v + x];
        }
    }

    let (mut grad_za, mut grad_zv) = (None, None);
    if want_z {
        // dloss/dL in place: alpha_r exp(L - M_r) + beta_c exp(L - M^c_c) on the negatives, 0 on the masked
        // entries (exp(-inf) = 0), then the positives.
        match &lse {
            Lse::Fixed { row_sum, col_sum, .. } => {
                // exp(L - M_r) = E / row_sum[r]: the gradient is E * (u_r + w_c).
                let w: Vec<f32> = beta.iter().zip(col_sum).map(|(b, s)| (b / *s as f64) as f32).collect();
                l.par_chunks_mut(r).enumerate().for_each(|(row, lrow)| {
                    simd::scale_row(lrow, (alpha[row] / row_sum[row] as f64) as f32, &w);
                });
            }
            Lse::General { m_row, m_col } => {
                let beta32: Vec<f32> = beta.iter().map(|&b| b as f32).collect();
                l.par_chunks_mut(r).enumerate().for_each_init(
                    || vec![0.0f32; r],
                    |e, (row, lrow)| {
                        simd::exp_sub_store(lrow, m_row[row], e);
                        simd::grad_row(lrow, e, alpha[row] as f32, &beta32, m_col);
                    },
                );
            }
        }
        for i in 0..n {
            for pp in 0..v {
                for q in 0..v {
                    l[(pp * n + i) * r + q * n + i] = pos_grad[(i * v + pp) * v + q];
                }
            }
        }
        let g = &*l;
        let mut da = vec![0.0f32; r * d];
        let mut db = vec![0.0f32; r * d];
        matmul(&mut da, r, d, r, g, (r, 1), b, (d, 1), inv_t);
        matmul(&mut db, r, d, r, g, (1, r), a, (d, 1), inv_t);
        normalize_rows_backward(&mut da, a, &na, d);
        normalize_rows_backward(&mut db, b, &nb, d);
        grad_za = Some(da);
        grad_zv = Some(db);
    }
    give(l_buf);
    give(a_buf);
    give(b_buf);
    Output { loss, grad_za, grad_zv, grad_lambda }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
