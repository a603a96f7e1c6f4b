//! The weighted k-nearest-neighbour classifier on frozen features, the usual companion of the linear probe in
//! self-supervised papers (InstDisc, DINO): nothing is trained, so its accuracy has no optimisation noise.
//!
//! Features are L2-normalised; a test feature's neighbours are the `k` training features of highest cosine
//! similarity `s` (ties broken by the lower training index), each voting for its class with weight `exp(s / T)`.
//! The class scores are those vote sums, scored like logits by [`crate::classify::topk_accuracy`] (a tie with the
//! true class counts against it).

use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::retrieval::Embeddings;

/// The kNN classifier's settings (the `linear_probe.knn` object of a finetune config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnConfig {
    /// Neighbours that vote (DINO: 20); capped at the number of training features.
    pub k: usize,
    /// Temperature T of the vote weights `exp(s / T)` (DINO: 0.07).
    pub temperature: f64,
}

impl KnnConfig {
    /// Check the fields; the message names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.k == 0 {
            return Err("linear_probe.knn.k must be >= 1".into());
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!("linear_probe.knn.temperature must be > 0, got {}", self.temperature));
        }
        Ok(())
    }
}

/// Class scores `[test.rows(), classes]` (row-major) of every test feature from its `k` nearest training features.
pub fn knn_scores(
    train: &Embeddings,
    train_labels: &[usize],
    test: &Embeddings,
    classes: usize,
    cfg: &KnnConfig,
) -> Result<Vec<f32>, EvalError> {
    cfg.validate().map_err(|m| EvalError::invalid("knn", m))?;
    if train.rows() != train_labels.len() || train.rows() == 0 {
        return Err(EvalError::invalid(
            "knn",
            format!("{} training features for {} labels", train.rows(), train_labels.len()),
        ));
    }
    if train.dim() != test.dim() {
        return Err(EvalError::invalid("knn", format!("train dim {} != test dim {}", train.dim(), test.dim())));
    }
    if let Some(&l) = train_labels.iter().find(|&&l| l >= classes) {
        return Err(EvalError::invalid("knn", format!("label {l} with {classes} classes")));
    }
    let (train, test) = (train.l2_normalized(), test.l2_normalized());
    let k = cfg.k.min(train.rows());
    let mut scores = vec![0f32; test.rows() * classes];
    let mut sims: Vec<(f64, usize)> = Vec::with_capacity(train.rows());
    for (q, out) in scores.chunks_mut(classes).enumerate() {
        let query = test.row(q);
        sims.clear();
        sims.extend((0..train.rows()).map(|j| {
            let s = train.row(j).iter().zip(query).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>();
            (s, j)
        }));
        sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut votes = vec![0f64; classes];
        for &(s, j) in &sims[..k] {
            votes[train_labels[j]] += (s / cfg.temperature).exp();
        }
        for (o, v) in out.iter_mut().zip(votes) {
            *o = v as f32;
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::topk_accuracy;

    fn emb(rows: &[[f32; 2]]) -> Embeddings {
        Embeddings::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).expect("embeddings")
    }

    /// By hand, training features (1, 0), (0, 1), (-1, 0), (0.6, 0.8) with classes 0, 1, 2, 1, T = 0.5, and the
    /// query (1, 1), whose similarity is a = 1/sqrt(2) to the first two (exactly equal), -a to the third and
    /// 1.4 a to the fourth:
    /// - k = 1: the fourth alone votes, class 1;
    /// - k = 2: the fourth, then the first (the similarity tie with the second goes to the lower index): class 1
    ///   exp(2.8 a) against class 0 exp(2 a);
    /// - without the fourth, k = 2 gives classes 0 and 1 the same vote exp(2 a): a tie, so top-1 counts it as a miss
    ///   for either label, and k = 1 takes the first (lower index): class 0.
    #[test]
    fn knn_top1_by_hand_with_a_tie() {
        let a = std::f64::consts::FRAC_1_SQRT_2;
        let query = emb(&[[1.0, 1.0]]);
        let train = emb(&[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]]);
        let labels = [0, 1, 2, 1];
        let knn = |train: &Embeddings, labels: &[usize], k| {
            knn_scores(train, labels, &query, 3, &KnnConfig { k, temperature: 0.5 }).expect("scores")
        };
        let close = |got: f32, want: f64| (f64::from(got) - want).abs() < 1e-5 * want.max(1.0);
        let s = knn(&train, &labels, 1);
        assert!(s[0] == 0.0 && close(s[1], (2.8 * a).exp()) && s[2] == 0.0, "{s:?}");
        let s = knn(&train, &labels, 2);
        assert!(close(s[0], (2.0 * a).exp()) && close(s[1], (2.8 * a).exp()) && s[2] == 0.0, "{s:?}");
        assert_eq!(topk_accuracy(&s, 3, &[1], 1).expect("top1"), 1.0);

        let three = emb(&[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]);
        let s = knn(&three, &labels[..3], 2);
        assert!(s[0] == s[1] && close(s[0], (2.0 * a).exp()) && s[2] == 0.0, "{s:?}");
        assert_eq!(topk_accuracy(&s, 3, &[0], 1).expect("top1"), 0.0, "a tie is a miss");
        assert_eq!(topk_accuracy(&s, 3, &[1], 1).expect("top1"), 0.0, "for either label");
        let s = knn(&three, &labels[..3], 1);
        assert_eq!(topk_accuracy(&s, 3, &[0], 1).expect("top1"), 1.0, "the lower index wins a similarity tie");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let train = emb(&[[1.0, 0.0]]);
        let test = emb(&[[0.0, 1.0]]);
        let ok = KnnConfig { k: 1, temperature: 0.07 };
        assert!(knn_scores(&train, &[0, 1], &test, 2, &ok).is_err());
        assert!(knn_scores(&train, &[2], &test, 2, &ok).is_err());
        assert!(knn_scores(&train, &[0], &test, 2, &KnnConfig { k: 0, temperature: 0.07 }).is_err());
        assert!(knn_scores(&train, &[0], &test, 2, &KnnConfig { k: 1, temperature: 0.0 }).is_err());
    }
}
