//! Audio-visual retrieval metrics (paper Table 3 and Table 1's K-Sounds@1): recall at K, instance- and class-level.
//!
//! Every function here works on host memory and is independent of Burn; [`crate::retrieve`] extracts the embeddings.
//!
//! **Tie rule (pessimistic).** For a query q, let `best` be the highest similarity of any *relevant* gallery item.
//! The rank of q's first relevant item is
//!
//! ```text
//! rank(q) = 1 + #{ g irrelevant : sim(q, g) >= best }
//! ```
//!
//! An irrelevant item that ties with the best relevant one is counted as ranked *above* it. Instance level, the one
//! relevant item is q's own pair, so `rank = 1 + #{g != q : sim(q, g) >= sim(q, q)}` (equivalently
//! `#{g : sim(q, g) >= sim(q, q)}`). A degenerate model whose embeddings are all equal therefore scores R@K = 0 for
//! K < N instead of a perfect 1, and results never depend on the order of the gallery. A query with no relevant
//! item has no rank and counts as a miss at every K.
//!
//! Similarities are dot products accumulated in f64 (inputs are f32); embeddings are L2-normalised by the caller
//! when cosine similarity is wanted ([`Embeddings::l2_normalized`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// The K of the paper's Table 3.
pub const DEFAULT_KS: [usize; 4] = [1, 5, 10, 20];

/// Norm below which a row is left unnormalised (all zeros), as `torch.nn.functional.normalize`'s eps.
pub const NORM_EPS: f64 = 1e-12;

/// Row-major embeddings `[rows, dim]`, every value finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    rows: usize,
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wrap `data` as `[rows, dim]`. Refuses a length mismatch, `dim == 0` and non-finite values.
    pub fn new(data: Vec<f32>, rows: usize, dim: usize) -> Result<Self, EvalError> {
        if dim == 0 {
            return Err(EvalError::invalid("embeddings", "dimension 0"));
        }
        if data.len() != rows * dim {
            return Err(EvalError::invalid(
                "embeddings",
                format!("{} values cannot be shaped [{rows}, {dim}]", data.len()),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::invalid(
                "embeddings",
                format!("row {} holds a non-finite value ({})", i / dim, data[i]),
            ));
        }
        Ok(Self { rows, dim, data })
    }

    /// From equally long rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self, EvalError> {
        let dim = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != dim) {
            return Err(EvalError::invalid("embeddings", format!("row {i} has {} values, row 0 has {dim}", r.len())));
        }
        Self::new(rows.concat(), rows.len(), dim)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= rows()`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Every row divided by its L2 norm (rows with a norm below [`NORM_EPS`] are divided by `NORM_EPS`).
    pub fn l2_normalized(&self) -> Self {
        let mut data = self.data.clone();
        for row in data.chunks_mut(self.dim) {
            let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt().max(NORM_EPS);
            for v in row.iter_mut() {
                *v = (f64::from(*v) / norm) as f32;
            }
        }
        Self { rows: self.rows, dim: self.dim, data }
    }

    /// Per-dimension mean and standard deviation over the rows (population, accumulated in f64).
    pub fn column_stats(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.rows.max(1) as f64;
        let mut mean = vec![0f64; self.dim];
        for row in self.data.chunks(self.dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v) / n;
            }
        }
        let mut var = vec![0f64; self.dim];
        for row in self.data.chunks(self.dim) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2) / n;
            }
        }
        (mean, var.into_iter().map(f64::sqrt).collect())
    }

    /// `(x - mean) / sqrt(std^2 + eps)` per dimension, with statistics given (e.g. from training features).
    pub fn standardized(&self, mean: &[f64], std: &[f64], eps: f64) -> Result<Self, EvalError> {
        if mean.len() != self.dim || std.len() != self.dim {
            return Err(EvalError::invalid(
                "feature statistics",
                format!("{} means and {} deviations for dimension {}", mean.len(), std.len(), self.dim),
            ));
        }
        let mut data = self.data.clone();
        for row in data.chunks_mut(self.dim) {
            for ((v, m), s) in row.iter_mut().zip(mean).zip(std) {
                *v = ((f64::from(*v) - m) / (s * s + eps).sqrt()) as f32;
            }
        }
        Ok(Self { rows: self.rows, dim: self.dim, data })
    }

    /// The mean of each consecutive group of `group` rows (`rows` must be a multiple of `group`): averaging the
    /// embeddings of the clips sampled from one video.
    pub fn group_mean(&self, group: usize) -> Result<Self, EvalError> {
        if group == 0 || !self.rows.is_multiple_of(group) {
            return Err(EvalError::invalid(
                "embeddings",
                format!("{} rows cannot be split into groups of {group}", self.rows),
            ));
        }
        let n = self.rows / group;
        let mut out = vec![0f32; n * self.dim];
        for (g, dst) in out.chunks_mut(self.dim).enumerate() {
            for (d, v) in dst.iter_mut().enumerate() {
                let s: f64 = (0..group).map(|j| f64::from(self.data[(g * group + j) * self.dim + d])).sum();
                *v = (s / group as f64) as f32;
            }
        }
        Ok(Self { rows: n, dim: self.dim, data: out })
    }
}

/// Similarity matrix `sim[q * gallery.rows() + g] = <queries_q, gallery_g>`, accumulated in f64.
pub fn similarity(queries: &Embeddings, gallery: &Embeddings) -> Result<Vec<f64>, EvalError> {
    if queries.dim != gallery.dim {
        return Err(EvalError::invalid(
            "embeddings",
            format!("queries have dimension {}, the gallery {}", queries.dim, gallery.dim),
        ));
    }
    let mut sim = Vec::with_capacity(queries.rows * gallery.rows);
    for q in 0..queries.rows {
        let qr = queries.row(q);
        for g in 0..gallery.rows {
            sim.push(qr.iter().zip(gallery.row(g)).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum());
        }
    }
    Ok(sim)
}

/// The pessimistic rank of each query's first relevant gallery item (see the module docs), or `None` when the
/// query has no relevant item. `sim` is `[n_queries, n_gallery]` row-major.
pub fn first_relevant_ranks(
    sim: &[f64],
    n_gallery: usize,
    is_relevant: impl Fn(usize, usize) -> bool,
) -> Result<Vec<Option<usize>>, EvalError> {
    if n_gallery == 0 || !sim.len().is_multiple_of(n_gallery) {
        return Err(EvalError::invalid(
            "similarity matrix",
            format!("{} values do not form rows of {n_gallery}", sim.len()),
        ));
    }
    if let Some(v) = sim.iter().find(|v| v.is_nan()) {
        return Err(EvalError::invalid("similarity matrix", format!("holds {v}")));
    }
    let ranks = sim
        .chunks(n_gallery)
        .enumerate()
        .map(|(q, row)| {
            let best = (0..n_gallery).filter(|&g| is_relevant(q, g)).map(|g| row[g]).reduce(f64::max)?;
            Some(1 + (0..n_gallery).filter(|&g| !is_relevant(q, g) && row[g] >= best).count())
        })
        .collect();
    Ok(ranks)
}

/// Instance-level ranks: query `i`'s relevant item is gallery item `i` (its own pair). `sim` must be square.
pub fn instance_ranks(sim: &[f64], n: usize) -> Result<Vec<usize>, EvalError> {
    if sim.len() != n * n {
        return Err(EvalError::invalid("similarity matrix", format!("{} values for {n} x {n} pairs", sim.len())));
    }
    // Every query has its own pair, so every rank exists.
    Ok(first_relevant_ranks(sim, n, |q, g| q == g)?.into_iter().map(|r| r.unwrap_or(n + 1)).collect())
}

/// Class-level ranks: a gallery item is relevant when it shares the query's class (the query's own pair included).
pub fn class_ranks(
    sim: &[f64],
    query_labels: &[usize],
    gallery_labels: &[usize],
) -> Result<Vec<Option<usize>>, EvalError> {
    if sim.len() != query_labels.len() * gallery_labels.len() {
        return Err(EvalError::invalid(
            "similarity matrix",
            format!("{} values for {} queries x {} gallery items", sim.len(), query_labels.len(), gallery_labels.len()),
        ));
    }
    first_relevant_ranks(sim, gallery_labels.len(), |q, g| query_labels[q] == gallery_labels[g])
}

/// Share of queries whose first relevant item has rank <= `k` (queries without a rank are misses).
pub fn recall_at_k(ranks: &[Option<usize>], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64 / ranks.len() as f64
}

/// Median rank (the mean of the two middle ranks for an even count); queries without a rank count as
/// `n_gallery + 1`.
pub fn median_rank(ranks: &[Option<usize>], n_gallery: usize) -> f64 {
    let mut r: Vec<usize> = ranks.iter().map(|r| r.unwrap_or(n_gallery + 1)).collect();
    if r.is_empty() {
        return f64::NAN;
    }
    r.sort_unstable();
    let m = r.len() / 2;
    if r.len() % 2 == 1 { r[m] as f64 } else { (r[m - 1] + r[m]) as f64 / 2.0 }
}

/// Recall at each K plus rank summaries, for one direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectionResult {
    /// R@K as a fraction in [0, 1], keyed by K written as a string (`"1"`, `"5"`, ...).
    pub recall: BTreeMap<String, f64>,
    /// Median rank of the first relevant item (1 is best).
    pub median_rank: f64,
    /// Mean rank of the first relevant item.
    pub mean_rank: f64,
    /// Number of queries.
    pub queries: usize,
}

impl DirectionResult {
    /// Summarise ranks at every K of `ks`.
    pub fn from_ranks(ranks: &[Option<usize>], n_gallery: usize, ks: &[usize]) -> Self {
        let recall = ks.iter().map(|&k| (k.to_string(), recall_at_k(ranks, k))).collect();
        let filled: Vec<f64> = ranks.iter().map(|r| r.unwrap_or(n_gallery + 1) as f64).collect();
        let mean_rank = if filled.is_empty() { f64::NAN } else { filled.iter().sum::<f64>() / filled.len() as f64 };
        Self { recall, median_rank: median_rank(ranks, n_gallery), mean_rank, queries: ranks.len() }
    }

    /// R@k, if k was evaluated.
    pub fn at(&self, k: usize) -> Option<f64> {
        self.recall.get(&k.to_string()).copied()
    }
}

/// Both directions of one retrieval level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BothDirections {
    /// Video queries, audio gallery.
    pub v2a: DirectionResult,
    /// Audio queries, video gallery.
    pub a2v: DirectionResult,
}

/// Instance-level (and optionally class-level) retrieval between paired video and audio embeddings: row `i` of
/// `video` and row `i` of `audio` come from the same clip.
pub fn evaluate_pairs(
    video: &Embeddings,
    audio: &Embeddings,
    labels: Option<&[usize]>,
    ks: &[usize],
) -> Result<(BothDirections, Option<BothDirections>), EvalError> {
    let n = video.rows();
    if audio.rows() != n {
        return Err(EvalError::invalid("embeddings", format!("{n} video rows but {} audio rows", audio.rows())));
    }
    if n == 0 {
        return Err(EvalError::invalid("embeddings", "no clips to retrieve"));
    }
    if ks.is_empty() || ks.contains(&0) {
        return Err(EvalError::invalid("retrieval k", format!("{ks:?}: give one or more K >= 1")));
    }
    let v2a = similarity(video, audio)?;
    let a2v = similarity(audio, video)?;
    let some = |r: Vec<usize>| r.into_iter().map(Some).collect::<Vec<_>>();
    let instance = BothDirections {
        v2a: DirectionResult::from_ranks(&some(instance_ranks(&v2a, n)?), n, ks),
        a2v: DirectionResult::from_ranks(&some(instance_ranks(&a2v, n)?), n, ks),
    };
    let class = match labels {
        None => None,
        Some(l) => {
            if l.len() != n {
                return Err(EvalError::invalid("labels", format!("{} labels for {n} clips", l.len())));
            }
            Some(BothDirections {
                v2a: DirectionResult::from_ranks(&class_ranks(&v2a, l, l)?, n, ks),
                a2v: DirectionResult::from_ranks(&class_ranks(&a2v, l, l)?, n, ks),
            })
        }
    };
    Ok((instance, class))
}

/// Parse a K list such as `"1,5,10,20"` (sorted, duplicates removed).
pub fn parse_ks(s: &str) -> Result<Vec<usize>, EvalError> {
    let mut ks = s
        .split(',')
        .map(|p| {
            p.trim().parse::<usize>().ok().filter(|&k| k >= 1).ok_or_else(|| {
                EvalError::invalid("retrieval k", format!("'{}' in '{s}' is not an integer >= 1", p.trim()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    ks.sort_unstable();
    ks.dedup();
    Ok(ks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_count_ties_against_the_true_item() {
        // Query 0: own pair 0.5, one other at 0.5 (tie) and one at 0.9 -> rank 3.
        // Query 1: own pair is the unique best -> rank 1.
        // Query 2: all equal -> rank 3 (the last possible).
        let sim = [0.5, 0.5, 0.9, 0.1, 0.8, 0.2, 0.3, 0.3, 0.3];
        assert_eq!(instance_ranks(&sim, 3).ok(), Some(vec![3, 1, 3]));
    }

    #[test]
    fn class_rank_uses_best_relevant_item() {
        // Labels [0, 0, 1]: query 2's relevant set is {2}; query 0's is {0, 1}.
        let sim = [0.1, 0.7, 0.9, 0.6, 0.2, 0.6, 0.5, 0.9, 0.4];
        let r = class_ranks(&sim, &[0, 0, 1], &[0, 0, 1]).ok();
        // q0: best relevant 0.7 (item 1), irrelevant item 2 at 0.9 >= 0.7 -> rank 2.
        // q1: best relevant 0.6 (item 0), irrelevant item 2 at 0.6 ties -> rank 2.
        // q2: relevant item 2 at 0.4; items 0 (0.5) and 1 (0.9) above -> rank 3.
        assert_eq!(r, Some(vec![Some(2), Some(2), Some(3)]));
    }

    #[test]
    fn parse_ks_sorts_and_rejects_zero() {
        assert_eq!(parse_ks("10, 1,5,5").ok(), Some(vec![1, 5, 10]));
        assert!(parse_ks("0,1").is_err());
        assert!(parse_ks("a").is_err());
    }
}
