//! Named statistics of one loss evaluation, computed on the host without gradients.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::LossError;
use crate::fused::kernel;

/// Statistics of one loss evaluation (for logs and metrics files).
///
/// Similarities are cosine similarities of the L2-normalised projections (independent of the temperature).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossStats {
    /// The loss value (as passed in).
    pub loss: f64,
    /// Mean cosine similarity of the positive pairs (a_i^p, v_i^q), over clips and all `V*V` view pairs.
    pub pos_sim: f64,
    /// Mean cosine similarity of the negative pairs (views of different clips); 0 with a single clip.
    pub neg_sim: f64,
    /// Share of (pair, direction) events in which the positive beats every negative of its row (audio -> video)
    /// or column (video -> audio): the top-1 accuracy of the contrastive task. 1 with a single clip.
    pub top1_acc: f64,
    /// `top1_acc` per (audio view p, video view q) pair type, both directions (only when V = 2). View 0 is the
    /// original (speed 1) view, so `[0][0]` is the top-1 of the original pair (a_i, v_i) against every view of the
    /// other clips, the task of V->A retrieval; the other entries involve a speed-augmented view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_pq: Option<[[f64; 2]; 2]>,
    /// Mean of lambda over all entries (SoftInfoNCE only).
    pub lambda_mean: Option<f64>,
    /// Population standard deviation of lambda.
    pub lambda_std: Option<f64>,
    /// Smallest lambda.
    pub lambda_min: Option<f64>,
    /// Largest lambda.
    pub lambda_max: Option<f64>,
    /// Mean lambda per (audio view p, video view q), over clips (only when V = 2).
    pub lambda_pq: Option<[[f64; 2]; 2]>,
}

fn host(t: Tensor<3>, what: &'static str) -> Result<Vec<f32>, LossError> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| LossError::Readback { what, message: format!("{e:?}") })
}

/// Statistics of a loss evaluation: similarities and accuracy of the embeddings, summary of lambda.
///
/// Host-side: reads `za`, `zv` (and `lambda`) back, records no gradient. `temperature` is validated but the
/// statistics are in cosine units, so they do not depend on it.
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]`; `lambda`: `[N, V, V]`.
///
/// # Errors
/// On invalid shapes or temperature.
pub fn loss_stats(
    za: Tensor<3>,
    zv: Tensor<3>,
    lambda: Option<Tensor<3>>,
    temperature: f64,
    loss: f64,
) -> Result<LossStats, LossError> {
    crate::check_temperature("temperature", temperature)?;
    let dims = crate::check_embeddings(&za, &zv)?;
    if let Some(l) = &lambda {
        crate::check_lambda(l, dims)?;
    }
    let [v, n, d] = dims;
    let r = v * n;
    let za = host(za.detach(), "za")?;
    let zv = host(zv.detach(), "zv")?;
    let (mut a, mut b) = (vec![0.0f32; r * d], vec![0.0f32; r * d]);
    let mut norms = vec![0.0f32; r];
    kernel::normalize_rows(&za, d, &mut a, &mut norms);
    kernel::normalize_rows(&zv, d, &mut b, &mut norms);
    let mut cos = vec![0.0f32; r * r];
    kernel::similarity(&a, &b, r, d, 1.0, &mut cos);

    let clip = |x: usize| x % n;
    // Per-row and per-column maximum over the negatives.
    let mut row_neg_max = vec![f32::NEG_INFINITY; r];
    let mut col_neg_max = vec![f32::NEG_INFINITY; r];
    let (mut neg_sum, mut neg_count) = (0.0f64, 0usize);
    for row in 0..r {
        for col in 0..r {
            if clip(row) != clip(col) {
                let c = cos[row * r + col];
                neg_sum += c as f64;
                neg_count += 1;
                row_neg_max[row] = row_neg_max[row].max(c);
                col_neg_max[col] = col_neg_max[col].max(c);
            }
        }
    }
    let (mut pos_sum, mut hits) = (0.0f64, 0usize);
    let mut hits_pq = [[0usize; 2]; 2];
    for p in 0..v {
        for q in 0..v {
            for i in 0..n {
                let (row, col) = (p * n + i, q * n + i);
                let c = cos[row * r + col];
                pos_sum += c as f64;
                let h = usize::from(c > row_neg_max[row]) + usize::from(c > col_neg_max[col]);
                hits += h;
                hits_pq[p][q] += h;
            }
        }
    }
    let pairs = v * v * n;

    let mut stats = LossStats {
        loss,
        pos_sim: pos_sum / pairs as f64,
        neg_sim: if neg_count == 0 { 0.0 } else { neg_sum / neg_count as f64 },
        top1_acc: hits as f64 / (2 * pairs) as f64,
        top1_pq: (v == 2).then(|| hits_pq.map(|row| row.map(|h| h as f64 / (2 * n) as f64))),
        ..LossStats::default()
    };
    if let Some(lambda) = lambda {
        let lam = host(lambda.detach(), "lambda")?;
        let count = lam.len() as f64;
        let mean = lam.iter().map(|&x| x as f64).sum::<f64>() / count;
        let var = lam.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / count;
        stats.lambda_mean = Some(mean);
        stats.lambda_std = Some(var.sqrt());
        stats.lambda_min = lam.iter().map(|&x| x as f64).reduce(f64::min);
        stats.lambda_max = lam.iter().map(|&x| x as f64).reduce(f64::max);
        if v == 2 {
            let mut pq = [[0.0f64; 2]; 2];
            for (k, &x) in lam.iter().enumerate() {
                let (p, q) = ((k / 2) % 2, k % 2);
                pq[p][q] += x as f64 / n as f64;
            }
            stats.lambda_pq = Some(pq);
        }
    }
    Ok(stats)
}
