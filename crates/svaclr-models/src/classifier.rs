//! Classification head for fine-tuning and linear probes: dropout then one linear layer (as GDT's heads).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Widths and dropout of a [`Classifier`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Input width (the encoder's representation).
    pub in_dim: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Dropout probability before the linear layer, in [0, 1).
    pub dropout: f64,
}

impl ClassifierConfig {
    /// A head `in_dim -> num_classes` with dropout `dropout`.
    pub fn new(in_dim: usize, num_classes: usize, dropout: f64) -> Self {
        Self { in_dim, num_classes, dropout }
    }

    /// Check widths and the dropout range.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.in_dim == 0 || self.num_classes == 0 {
            return Err(ModelError::InvalidConfig {
                field: "classifier",
                reason: format!(
                    "needs positive widths, got in_dim {} and num_classes {}",
                    self.in_dim, self.num_classes
                ),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::InvalidConfig {
                field: "dropout",
                reason: format!("must be in [0, 1), got {}", self.dropout),
            });
        }
        Ok(())
    }

    /// Build the head.
    pub fn init(&self, device: &Device) -> Result<Classifier, ModelError> {
        self.validate()?;
        Ok(Classifier {
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(self.in_dim, self.num_classes).init(device),
        })
    }
}

/// Dropout (active only when training on an autodiff device) followed by a linear layer.
#[derive(Module, Debug)]
pub struct Classifier {
    /// Dropout on the representation.
    pub dropout: Dropout,
    /// The linear layer.
    pub fc: Linear,
}

impl Classifier {
    /// # Shapes
    /// - `y`: `[batch, in_dim]` -> logits `[batch, num_classes]`
    pub fn forward(&self, y: Tensor<2>) -> Tensor<2> {
        self.fc.forward(self.dropout.forward(y))
    }
}
