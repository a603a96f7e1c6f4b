//! svaclr-loss: InfoNCE and SoftInfoNCE over co-augmented audio-visual views.
//!
//! Layout: embeddings are `[V, N, D]` (view, clip, feature); view 0 is the original clip, view 1 the
//! speed-augmented one. Every clip contributes `V*V` positive cross-modal pairs (audio view p, video view q); the
//! negatives of a pair are every view of every *other* clip (the other view of the same clip is neither positive
//! nor negative); the loss is the mean over clips, view pairs and both directions, each pair's term weighted by
//! lambda (SoftInfoNCE) or by 1 (InfoNCE). See `docs/loss.md` for the exact definitions and the reference.
//!
//! Two implementations compute the same numbers:
//! - a fused CPU kernel for the flex backend ([`fused`]), with its own backward, used whenever the tensors live on
//!   a flex device (with or without autodiff) in f32;
//! - a composed tensor-op version for every other device and dtype.
//!
//! [`info_nce`] and [`soft_info_nce`] choose at run time ([`KernelPath::Auto`]); the `*_with` variants let a caller
//! (tests, benchmarks) force one.

mod composed;
mod config;
mod error;
pub mod fused;
mod stats;

use burn::tensor::Tensor;

pub use composed::l2_normalize;
pub use config::{DEFAULT_LAMBDA_TEMPERATURE, DEFAULT_TEMPERATURE, LambdaMode, LossConfig, LossKind};
pub use error::LossError;
pub use fused::fused_supported;
pub use stats::{LossStats, loss_stats, try_loss_stats};

/// The `eps` of every L2 normalisation: `x / max(||x||, NORM_EPS)` (the default of `torch.nn.functional.normalize`).
pub const NORM_EPS: f64 = 1e-12;

/// Which implementation computes a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelPath {
    /// The fused kernel when [`fused_supported`], else the composed one.
    #[default]
    Auto,
    /// The fused kernel; an error ([`LossError::FusedUnavailable`]) on devices or dtypes it does not support.
    Fused,
    /// The composed tensor-op implementation (any device).
    Composed,
}

fn check_temperature(field: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(LossError::InvalidTemperature { field, value }) }
}

fn check_embeddings(za: &Tensor<3>, zv: &Tensor<3>) -> Result<[usize; 3], LossError> {
    let dims = za.dims();
    if dims.contains(&0) {
        return Err(LossError::Empty { what: "za", got: dims.to_vec() });
    }
    if zv.dims() != dims {
        return Err(LossError::Shape {
            what: "zv",
            expected: format!("{dims:?} (the shape of za, [V, N, D])"),
            got: zv.dims().to_vec(),
        });
    }
    Ok(dims)
}

fn check_lambda(lambda: &Tensor<3>, [v, n, _]: [usize; 3]) -> Result<(), LossError> {
    if lambda.dims() != [n, v, v] {
        return Err(LossError::Shape {
            what: "lambda",
            expected: format!("[N={n}, V={v}, V={v}]"),
            got: lambda.dims().to_vec(),
        });
    }
    Ok(())
}

fn use_fused(path: KernelPath, tensors: &[&Tensor<3>]) -> Result<bool, LossError> {
    let ok = tensors.iter().all(|t| fused_supported(t));
    match path {
        KernelPath::Auto => Ok(ok),
        KernelPath::Composed => Ok(false),
        KernelPath::Fused if ok => Ok(true),
        KernelPath::Fused => Err(LossError::FusedUnavailable {
            device: format!("{:?}", tensors.first().map(|t| t.device())),
            dtype: format!("{:?}", tensors.first().map(|t| t.dtype())),
        }),
    }
}

/// InfoNCE (Eq. 1) over all `V*V` cross-modal view pairs, both directions, as a scalar loss (autodiff-able).
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]` audio / video projections (normalised here); returns `[1]`.
///
/// # Panics
/// On a shape mismatch, an empty dimension or a temperature that is not finite and positive
/// (use [`try_info_nce_with`] to get a [`LossError`] instead).
pub fn info_nce(za: Tensor<3>, zv: Tensor<3>, temperature: f64) -> Tensor<1> {
    try_info_nce_with(za, zv, temperature, KernelPath::Auto).unwrap_or_else(|e| panic!("info_nce: {e}"))
}

/// SoftInfoNCE (Eq. 3): InfoNCE with each pair's term (both directions) multiplied by `lambda[i][p][q]`.
///
/// Gradients flow into `lambda` unless it is detached (see [`cross_affinity`]).
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]`; `lambda`: `[N, V, V]`; returns `[1]`.
///
/// # Panics
/// As [`info_nce`], and when `lambda` is not `[N, V, V]`.
pub fn soft_info_nce(za: Tensor<3>, zv: Tensor<3>, lambda: Tensor<3>, temperature: f64) -> Tensor<1> {
    try_soft_info_nce_with(za, zv, lambda, temperature, KernelPath::Auto)
        .unwrap_or_else(|e| panic!("soft_info_nce: {e}"))
}

/// [`info_nce`] on a chosen implementation, with errors instead of panics.
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]`; returns `[1]`.
pub fn try_info_nce_with(
    za: Tensor<3>,
    zv: Tensor<3>,
    temperature: f64,
    path: KernelPath,
) -> Result<Tensor<1>, LossError> {
    check_temperature("temperature", temperature)?;
    check_embeddings(&za, &zv)?;
    Ok(if use_fused(path, &[&za, &zv])? {
        fused::info_nce(za, zv, temperature)
    } else {
        composed::loss(za, zv, None, temperature)
    })
}

/// [`soft_info_nce`] on a chosen implementation, with errors instead of panics.
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]`; `lambda`: `[N, V, V]`; returns `[1]`.
pub fn try_soft_info_nce_with(
    za: Tensor<3>,
    zv: Tensor<3>,
    lambda: Tensor<3>,
    temperature: f64,
    path: KernelPath,
) -> Result<Tensor<1>, LossError> {
    check_temperature("temperature", temperature)?;
    let dims = check_embeddings(&za, &zv)?;
    check_lambda(&lambda, dims)?;
    Ok(if use_fused(path, &[&za, &zv, &lambda])? {
        fused::soft_info_nce(za, zv, lambda, temperature)
    } else {
        composed::loss(za, zv, Some(lambda), temperature)
    })
}

/// Cross-affinity weights lambda (Eq. 2) from encoder representations already mapped by `l`.
///
/// `S_i[p, q] = <ya_i^p, yv_i^q> / tau` on L2-normalised rows, then [`LambdaMode::All`]: `V*V * softmax` over the
/// clip's `V*V` entries (uniform affinity gives 1 everywhere), or [`LambdaMode::Row`]: `V * softmax` over the video
/// views q for each audio view p. With `detach` the result is a constant for autodiff (the default of
/// [`LossConfig`]).
///
/// # Shapes
/// `ya`, `yv`: `[V, N, Dy]` (V = 2 in SvaCLR); returns `[N, V, V]`.
///
/// # Panics
/// When the shapes differ or are empty, or `tau` is not finite and positive (see [`try_cross_affinity`]).
pub fn cross_affinity(ya: Tensor<3>, yv: Tensor<3>, tau: f64, mode: LambdaMode, detach: bool) -> Tensor<3> {
    try_cross_affinity(ya, yv, tau, mode, detach).unwrap_or_else(|e| panic!("cross_affinity: {e}"))
}

/// [`cross_affinity`] with errors instead of panics.
///
/// # Shapes
/// `ya`, `yv`: `[V, N, Dy]`; returns `[N, V, V]`.
pub fn try_cross_affinity(
    ya: Tensor<3>,
    yv: Tensor<3>,
    tau: f64,
    mode: LambdaMode,
    detach: bool,
) -> Result<Tensor<3>, LossError> {
    check_temperature("lambda_temperature", tau)?;
    if ya.dims().contains(&0) {
        return Err(LossError::Empty { what: "ya", got: ya.dims().to_vec() });
    }
    if ya.dims() != yv.dims() {
        return Err(LossError::Shape {
            what: "yv",
            expected: format!(
                "{:?} (the shape of ya, [V, N, Dy]; the identity mapping l needs equal widths)",
                ya.dims()
            ),
            got: yv.dims().to_vec(),
        });
    }
    Ok(composed::cross_affinity(ya, yv, tau, mode, detach))
}

impl LossConfig {
    /// The configured loss: InfoNCE, or SoftInfoNCE with lambda from `affinity = (ya, yv)` (already mapped by l).
    ///
    /// Returns the loss and, for SoftInfoNCE, the lambda it used (for [`loss_stats`]).
    ///
    /// # Shapes
    /// `za`, `zv`: `[V, N, D]`; `ya`, `yv`: `[V, N, Dy]`; returns `[1]` and `[N, V, V]`.
    ///
    /// # Errors
    /// An invalid config, mismatched shapes, or SoftInfoNCE without `affinity`.
    pub fn loss(
        &self,
        za: Tensor<3>,
        zv: Tensor<3>,
        affinity: Option<(Tensor<3>, Tensor<3>)>,
    ) -> Result<(Tensor<1>, Option<Tensor<3>>), LossError> {
        self.validate()?;
        match (self.kind, affinity) {
            (LossKind::InfoNce, _) => Ok((try_info_nce_with(za, zv, self.temperature, KernelPath::Auto)?, None)),
            (LossKind::SoftInfoNce, Some((ya, yv))) => {
                let lambda = try_cross_affinity(ya, yv, self.lambda_temperature, self.lambda_mode, self.detach_lambda)?;
                let loss = try_soft_info_nce_with(za, zv, lambda.clone(), self.temperature, KernelPath::Auto)?;
                Ok((loss, Some(lambda)))
            }
            (LossKind::SoftInfoNce, None) => Err(LossError::MissingAffinity),
        }
    }
}
