//! The composed path: the losses written with ordinary Burn tensor ops. Runs on every device, autodiff gives the
//! backward. Exact (no approximations): masked entries are `-inf` (not a large negative constant), every
//! log-sum-exp is shifted by a detached maximum over the entries it sums, and softplus goes through `log1p`.

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};

use crate::{LambdaMode, NORM_EPS};

/// L2-normalise along `dim`: `x / max(||x||, NORM_EPS)`, the definition of `torch.nn.functional.normalize`.
///
/// Finite for zero vectors (value 0, gradient `g / NORM_EPS`). The norm is `sqrt(max(sum x^2, eps^2))`, which equals
/// `max(||x||, eps)` and keeps the square root away from 0, where its derivative is infinite.
///
/// # Shapes
/// `x`: any; returns the same shape.
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(dim).clamp_min(NORM_EPS * NORM_EPS).sqrt();
    x / norm
}

/// `log(1 + exp(x))`, accurate (through `log1p`) and exact in gradient for every finite `x`: each branch only sees
/// inputs clamped to its own side of 0, so the unselected branch never overflows (no `0 * inf` in the backward).
fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let positive = x.clone().greater_elem(0.0);
    let xn = x.clone().clamp_max(0.0);
    let xp = x.clamp_min(0.0);
    let neg_branch = xn.exp().log1p(); // softplus(x) for x <= 0
    let pos_branch = xp.clone() + xp.neg().exp().log1p(); // softplus(x) for x > 0
    neg_branch.mask_where(positive, pos_branch)
}

/// (Soft)InfoNCE with ordinary tensor ops.
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]`; `lambda`: `[N, V, V]` or `None` (all ones); returns `[1]`.
pub(crate) fn loss(za: Tensor<3>, zv: Tensor<3>, lambda: Option<Tensor<3>>, temperature: f64) -> Tensor<1> {
    let [v, n, d] = za.dims();
    let device = za.device();
    if n < 2 {
        // One clip: each denominator holds only the positive; the loss is exactly 0 (kept in the graph).
        return (za.sum() + zv.sum()).mul_scalar(0.0);
    }
    let r = v * n;
    let a = l2_normalize(za, 2); // [V, N, D]
    let b = l2_normalize(zv, 2);

    // Positive logits s[p, q, i] = <a_i^p, b_i^q> / eta.
    let s = (a.clone().reshape([v, 1, n, d]) * b.clone().reshape([1, v, n, d]))
        .sum_dim(3)
        .reshape([v, v, n])
        .div_scalar(temperature); // [V(p), V(q), N]

    let a = a.reshape([r, d]);
    let b = b.reshape([r, d]);
    let logits = a.matmul(b.transpose()).div_scalar(temperature); // [R, R], row (p,i) = p*N+i, column (q,j)

    // Same-clip mask: true where clip(row) == clip(column) (the positives and the other views of the clip).
    let clip = Tensor::<1, Int>::arange(0..r as i64, &device).remainder_scalar(n as i64);
    let same = clip.clone().reshape([r, 1]).expand([r, r]).equal(clip.reshape([1, r]).expand([r, r])); // [R, R]

    // Log-sum-exp over the negatives only: the same-clip entries become -inf (exp gives exactly 0 and a zero
    // gradient), and the shift is the detached maximum over the negatives (finite with N >= 2), so every sum is >= 1.
    // (Shifting by a maximum that includes the positives would underflow the negatives at small eta.)
    let neg = logits.mask_fill(same, f32::NEG_INFINITY); // [R, R]
    let row_max = neg.clone().detach().max_dim(1); // [R, 1]
    let m_row = (neg.clone() - row_max.clone()).exp().sum_dim(1).log() + row_max; // [R, 1]
    let col_max = neg.clone().detach().max_dim(0); // [1, R]
    let m_col = (neg - col_max.clone()).exp().sum_dim(0).log() + col_max; // [1, R]

    let l_av = softplus(m_row.reshape([v, 1, n]) - s.clone()); // [V, V, N]
    let l_va = softplus(m_col.reshape([1, v, n]) - s);
    let terms = (l_av + l_va).mul_scalar(0.5); // [V(p), V(q), N]
    match lambda {
        Some(w) => (terms * w.permute([1, 2, 0])).mean(),
        None => terms.mean(),
    }
}

/// Cross-affinity weights (Eq. 2) from representations already mapped by `l`.
///
/// `S_i[p, q] = <ya_i^p, yv_i^q> / tau` on L2-normalised rows; [`LambdaMode::All`] gives `V*V * softmax` over the
/// `V*V` entries of clip i, [`LambdaMode::Row`] gives `V * softmax` over q for each p. `detach` stops the gradient.
///
/// # Shapes
/// `ya`, `yv`: `[V, N, Dy]`; returns `[N, V, V]` (`lambda[i][p][q]`, audio view p, video view q).
pub(crate) fn cross_affinity(ya: Tensor<3>, yv: Tensor<3>, tau: f64, mode: LambdaMode, detach: bool) -> Tensor<3> {
    let [v, n, _] = ya.dims();
    let a = l2_normalize(ya, 2).swap_dims(0, 1); // [N, V, Dy]
    let b = l2_normalize(yv, 2).swap_dims(0, 1);
    let s = a.matmul(b.swap_dims(1, 2)).div_scalar(tau); // [N, V(p), V(q)]
    let lambda = match mode {
        LambdaMode::All => softmax(s.reshape([n, v * v]), 1).mul_scalar((v * v) as f64).reshape([n, v, v]),
        LambdaMode::Row => softmax(s, 2).mul_scalar(v as f64),
    };
    if detach { lambda.detach() } else { lambda }
}
