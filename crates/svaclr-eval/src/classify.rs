//! Classification metrics on host logits: multi-view averaging, top-k accuracy, confusion matrices.
//!
//! Multi-view testing (GDT's `aggregrate_video_accuracy`): each test video is seen as `clips x crops` views; the
//! raw logits of its views are averaged (no softmax) and the video is scored once on the mean.
//!
//! Top-k uses the same pessimistic tie rule as retrieval: the true class's rank is
//! `1 + #{c != y : logit_c >= logit_y}`, so a tie with another class never counts in the model's favour.
//! The confusion matrix's prediction is the arg-max (the lowest class index among equal maxima).

use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// Average the logits of each video's views.
///
/// `logits` is `[videos * views, classes]` row-major with the views of one video consecutive (the order of
/// `ClipDataset::eval_samples`); the result is `[videos, classes]`.
pub fn average_views(logits: &[f32], classes: usize, views: usize) -> Result<Vec<f32>, EvalError> {
    if classes == 0 || views == 0 || !logits.len().is_multiple_of(classes * views) {
        return Err(EvalError::invalid(
            "logits",
            format!("{} values are not whole videos of {views} views x {classes} classes", logits.len()),
        ));
    }
    let videos = logits.len() / (classes * views);
    let mut out = vec![0f32; videos * classes];
    for (v, dst) in out.chunks_mut(classes).enumerate() {
        for (c, o) in dst.iter_mut().enumerate() {
            let s: f64 = (0..views).map(|j| f64::from(logits[(v * views + j) * classes + c])).sum();
            *o = (s / views as f64) as f32;
        }
    }
    Ok(out)
}

/// Rank (1 = best) of class `label` in one row of logits, ties counted against it.
pub fn true_class_rank(row: &[f32], label: usize) -> usize {
    let y = row[label];
    1 + row.iter().enumerate().filter(|&(c, &v)| c != label && v >= y).count()
}

/// Index of the largest logit (the lowest index among equal maxima).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (c, &v)| if v > row[best] { c } else { best })
}

fn check(logits: &[f32], classes: usize, labels: &[usize]) -> Result<(), EvalError> {
    if classes == 0 || logits.len() != labels.len() * classes {
        return Err(EvalError::invalid(
            "logits",
            format!("{} values for {} labels x {classes} classes", logits.len(), labels.len()),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= classes) {
        return Err(EvalError::invalid("labels", format!("label {l} with {classes} classes")));
    }
    if logits.iter().any(|v| v.is_nan()) {
        return Err(EvalError::invalid("logits", "NaN"));
    }
    Ok(())
}

/// Share of rows whose true class ranks within the top `k` (`logits` is `[labels.len(), classes]`).
pub fn topk_accuracy(logits: &[f32], classes: usize, labels: &[usize], k: usize) -> Result<f64, EvalError> {
    check(logits, classes, labels)?;
    if labels.is_empty() {
        return Err(EvalError::invalid("labels", "no samples to score"));
    }
    let hits =
        labels.iter().enumerate().filter(|&(i, &y)| true_class_rank(&logits[i * classes..(i + 1) * classes], y) <= k);
    Ok(hits.count() as f64 / labels.len() as f64)
}

/// Counts of (true class, predicted class).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Number of classes.
    pub classes: usize,
    /// `counts[t][p]`: samples of true class `t` predicted as `p`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An all-zero matrix.
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![vec![0; classes]; classes] }
    }

    /// From logits `[labels.len(), classes]` and true labels, predicting the arg-max.
    pub fn from_logits(logits: &[f32], classes: usize, labels: &[usize]) -> Result<Self, EvalError> {
        check(logits, classes, labels)?;
        let mut m = Self::new(classes);
        for (i, &y) in labels.iter().enumerate() {
            m.counts[y][argmax(&logits[i * classes..(i + 1) * classes])] += 1;
        }
        Ok(m)
    }

    /// Add another matrix of the same size (folds).
    pub fn add(&mut self, other: &ConfusionMatrix) -> Result<(), EvalError> {
        if other.classes != self.classes {
            return Err(EvalError::invalid(
                "confusion matrix",
                format!("{} vs {} classes", self.classes, other.classes),
            ));
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        Ok(())
    }

    /// Samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Share on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            return 0.0;
        }
        (0..self.classes).map(|c| self.counts[c][c]).sum::<u64>() as f64 / t as f64
    }

    /// Recall of each class (`None` for a class without samples).
    pub fn per_class_recall(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: u64 = row.iter().sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect()
    }
}

/// Video-level scores of one test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationScores {
    /// Top-1 accuracy in [0, 1].
    pub top1: f64,
    /// Top-5 accuracy in [0, 1] (1 when there are at most 5 classes).
    pub top5: f64,
    /// Videos scored.
    pub videos: usize,
    /// Views averaged per video.
    pub views_per_video: usize,
    /// Confusion matrix of the arg-max predictions.
    pub confusion: ConfusionMatrix,
}

/// Score per-view logits `[videos * views, classes]` (views of a video consecutive) against one label per video.
pub fn score_views(
    logits: &[f32],
    classes: usize,
    views: usize,
    labels: &[usize],
) -> Result<ClassificationScores, EvalError> {
    let video_logits = average_views(logits, classes, views)?;
    Ok(ClassificationScores {
        top1: topk_accuracy(&video_logits, classes, labels, 1)?,
        top5: topk_accuracy(&video_logits, classes, labels, 5)?,
        videos: labels.len(),
        views_per_video: views,
        confusion: ConfusionMatrix::from_logits(&video_logits, classes, labels)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_against_the_true_class() {
        assert_eq!(true_class_rank(&[1.0, 1.0, 0.0], 0), 2);
        assert_eq!(true_class_rank(&[1.0, 2.0, 3.0], 2), 1);
        assert_eq!(true_class_rank(&[0.0, 0.0, 0.0], 1), 3);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn confusion_counts_argmax() {
        let logits = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3];
        let m = ConfusionMatrix::from_logits(&logits, 2, &[0, 1, 1]).ok();
        assert_eq!(m.as_ref().map(|m| m.counts.clone()), Some(vec![vec![1, 0], vec![1, 1]]));
        assert_eq!(m.map(|m| m.accuracy()), Some(2.0 / 3.0));
    }
}
