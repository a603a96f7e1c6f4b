//! Projection heads h_v, h_a: the 2-layer MLP of GDT / SimCLR (Linear -> BN -> ReLU -> Linear).

use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::batch_norm;

/// Widths of a [`Projector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectorConfig {
    /// Input width (the encoder's representation).
    pub in_dim: usize,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Output width (the embedding the loss normalises).
    pub out_dim: usize,
}

impl ProjectorConfig {
    /// `in_dim -> hidden_dim -> out_dim`.
    pub fn new(in_dim: usize, hidden_dim: usize, out_dim: usize) -> Self {
        Self { in_dim, hidden_dim, out_dim }
    }

    /// Check that every width is positive.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (field, v) in [("proj in_dim", self.in_dim), ("proj_hidden", self.hidden_dim), ("proj_dim", self.out_dim)] {
            if v == 0 {
                return Err(ModelError::InvalidConfig { field, reason: "must be positive, got 0".into() });
            }
        }
        Ok(())
    }

    /// Build the projector (PyTorch's default `nn.Linear` initialisation; BN weight 1, bias 0).
    pub fn init(&self, device: &Device) -> Result<Projector, ModelError> {
        self.validate()?;
        Ok(Projector {
            fc1: LinearConfig::new(self.in_dim, self.hidden_dim).init(device),
            bn: crate::norm::batch_norm(self.hidden_dim, device),
            fc2: LinearConfig::new(self.hidden_dim, self.out_dim).init(device),
        })
    }
}

/// 2-layer MLP projector: `fc1 -> BN -> ReLU -> fc2` (both linears with bias, as `nn.Linear`).
#[derive(Module, Debug)]
pub struct Projector {
    /// First linear.
    pub fc1: Linear,
    /// BatchNorm1d on the hidden width.
    pub bn: BatchNorm,
    /// Second linear.
    pub fc2: Linear,
}

impl Projector {
    /// # Shapes
    /// - `y`: `[batch, in_dim]` -> `[batch, out_dim]` (not normalised)
    pub fn forward(&self, y: Tensor<2>) -> Tensor<2> {
        let h = batch_norm::forward_relu(&self.bn, self.fc1.forward(y)); // [B, hidden]
        self.fc2.forward(h) // [B, out]
    }
}
