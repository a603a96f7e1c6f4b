//! Loss configuration: which loss, its temperatures, and how the cross-affinity weights are formed.

use serde::{Deserialize, Serialize};

use crate::LossError;

/// Default InfoNCE temperature eta (GDT, AVID-CMA).
pub const DEFAULT_TEMPERATURE: f64 = 0.07;
/// Default cross-affinity temperature tau_lambda.
pub const DEFAULT_LAMBDA_TEMPERATURE: f64 = 0.1;

/// Which contrastive loss pre-training uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Eq. 1 over all cross-modal view pairs, every pair with weight 1.
    InfoNce,
    /// Eq. 3: each pair's InfoNCE term weighted by the cross-affinity lambda (Eq. 2).
    SoftInfoNce,
}

/// How the per-clip affinity matrix `S_i[p, q]` (shape `[V, V]`) becomes the weights lambda_i.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaMode {
    /// `V*V * softmax` over all `V*V` entries of the clip (default): uniform affinity gives weight 1 everywhere.
    All,
    /// `V * softmax` over the video views `q`, separately for each audio view `p`.
    Row,
}

/// Configuration of the pre-training loss.
///
/// NOTE: the paper gives neither eta nor tau_lambda; the defaults follow GDT / AVID-CMA (eta = 0.07) and a common
/// attention temperature (tau_lambda = 0.1). See `docs/loss.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// InfoNCE or SoftInfoNCE.
    pub kind: LossKind,
    /// InfoNCE temperature eta (logits are cosine similarities divided by it). Default 0.07.
    pub temperature: f64,
    /// Cross-affinity temperature tau_lambda (Eq. 2). Default 0.1.
    pub lambda_temperature: f64,
    /// How lambda is normalised. Default [`LambdaMode::All`].
    pub lambda_mode: LambdaMode,
    /// Stop the gradient through lambda (default `true`): lambda then only re-weights the pairs.
    pub detach_lambda: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: LossKind::InfoNce,
            temperature: DEFAULT_TEMPERATURE,
            lambda_temperature: DEFAULT_LAMBDA_TEMPERATURE,
            lambda_mode: LambdaMode::All,
            detach_lambda: true,
        }
    }
}

impl LossConfig {
    /// Check that both temperatures are finite and strictly positive.
    pub fn validate(&self) -> Result<(), LossError> {
        for (field, value) in [("temperature", self.temperature), ("lambda_temperature", self.lambda_temperature)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LossError::InvalidTemperature { field, value });
            }
        }
        Ok(())
    }
}
