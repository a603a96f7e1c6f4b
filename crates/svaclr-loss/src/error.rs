//! The error type of this crate.

/// Everything that can go wrong when configuring or calling the losses.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// A temperature (`temperature` = eta or `lambda_temperature` = tau_lambda) is not a finite positive number.
    #[error("loss config: `{field}` must be finite and > 0, got {value}")]
    InvalidTemperature {
        /// The config field.
        field: &'static str,
        /// The offending value.
        value: f64,
    },
    /// A tensor handed to a loss function has the wrong shape.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// Which argument (e.g. `"soft_info_nce: lambda"`).
        what: &'static str,
        /// The expected shape, written out (e.g. `"[N=8, V=2, V=2]"`).
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// A tensor has a zero-sized dimension (no views, no clips or no features).
    #[error("{what}: every dimension must be non-zero, got {got:?}")]
    Empty {
        /// Which argument.
        what: &'static str,
        /// The shape received.
        got: Vec<usize>,
    },
    /// [`crate::KernelPath::Fused`] was requested for tensors the fused kernel does not handle.
    #[error("the fused loss kernel needs f32 tensors on a flex device, got {dtype} on {device}")]
    FusedUnavailable {
        /// The device of the first input.
        device: String,
        /// The dtype of the first input.
        dtype: String,
    },
    /// SoftInfoNCE was configured but no representations for the cross-affinity module were given.
    #[error("loss config: kind = soft_info_nce needs the representations (ya, yv) for the cross-affinity weights")]
    MissingAffinity,
    /// Reading a tensor back to the host failed.
    #[error("reading {what} back to the host failed: {message}")]
    Readback {
        /// Which tensor.
        what: &'static str,
        /// The cause reported by Burn.
        message: String,
    },
}
