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
//! [`info_nce`] and [`soft_info_nce`] take a [`KernelPath`]: [`KernelPath::Auto`] chooses at run time, the other
//! two force one (tests, benchmarks). Every function returns a [`LossError`] for bad shapes or temperatures.
//!
//! **The one place a loss is chosen** is [`LossConfig::loss`]: it takes the config, the `[V, N, D]` views (built by
//! [`view_major`]) and which clips are this caller's anchors ([`Anchors`]: all of them, or one rank's share of a
//! gathered batch in data-parallel training), and returns the loss and the lambda it used.

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
pub use stats::{LossStats, loss_stats};

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

/// InfoNCE (Eq. 1) over all `V*V` cross-modal view pairs, both directions, as a scalar loss (autodiff-able), on
/// the implementation `path` chooses.
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]` audio / video projections (normalised here); returns `[1]`.
///
/// # Errors
/// A shape mismatch, an empty dimension, a temperature that is not finite and positive, or
/// [`KernelPath::Fused`] where the fused kernel does not run.
pub fn info_nce(za: Tensor<3>, zv: Tensor<3>, temperature: f64, path: KernelPath) -> Result<Tensor<1>, LossError> {
    check_temperature("temperature", temperature)?;
    check_embeddings(&za, &zv)?;
    Ok(if use_fused(path, &[&za, &zv])? {
        fused::info_nce(za, zv, temperature)
    } else {
        composed::loss(za, zv, None, temperature)
    })
}

/// SoftInfoNCE (Eq. 3): InfoNCE with each pair's term (both directions) multiplied by `lambda[i][p][q]`, on the
/// implementation `path` chooses. Gradients flow into `lambda` unless it is detached (see [`cross_affinity`]).
///
/// # Shapes
/// `za`, `zv`: `[V, N, D]`; `lambda`: `[N, V, V]`; returns `[1]`.
///
/// # Errors
/// As [`info_nce`], and when `lambda` is not `[N, V, V]`.
pub fn soft_info_nce(
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
/// # Errors
/// When the shapes differ or are empty, or `tau` is not finite and positive.
pub fn cross_affinity(
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

/// `[V*N, D]` rows stacked view-major (all clips of view 0, then view 1, ...) as the `[V, N, D]` layout every loss
/// takes. The encoders see the views of a batch concatenated on the batch axis; this is the one place that layout
/// is undone.
///
/// # Shapes
/// `rows`: `[V*N, D]`; returns `[V, N, D]`.
///
/// # Errors
/// When the row count is not a multiple of `views`, or `views` is 0.
pub fn view_major(rows: Tensor<2>, views: usize) -> Result<Tensor<3>, LossError> {
    let [r, d] = rows.dims();
    if views == 0 || !r.is_multiple_of(views) {
        return Err(LossError::Shape {
            what: "view_major: rows",
            expected: format!("[V*N, D] with V = {views}"),
            got: vec![r, d],
        });
    }
    Ok(rows.reshape([views, r / views, d]))
}

/// Which clips of a batch are the anchors of a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Anchors {
    /// Every clip: the loss is the mean over all clips.
    #[default]
    All,
    /// Data-parallel training with gathered negatives: the batch is `world` equal, contiguous shares (rank order)
    /// and this caller owns share `rank`. The loss is `world` times the sum over its own clips' terms (every clip is
    /// a negative) divided by the batch size, so the mean of the `world` shares is the loss over all clips, and the
    /// sum of their gradients is `world` times the gradient of that loss.
    Share {
        /// This caller's share, `0..world`.
        rank: usize,
        /// Number of shares.
        world: usize,
    },
}

impl Anchors {
    /// Per-clip weights `[N, V, V]` that restrict a loss over `n` clips to this share (`None` for [`Anchors::All`]).
    fn weights(self, n: usize, views: usize, device: &burn::tensor::Device) -> Result<Option<Tensor<3>>, LossError> {
        let Anchors::Share { rank, world } = self else {
            return Ok(None);
        };
        if world == 0 || rank >= world || !n.is_multiple_of(world) {
            return Err(LossError::Shape {
                what: "anchors",
                expected: format!("a batch divisible into {world} shares with rank {rank} < {world}"),
                got: vec![n],
            });
        }
        let (own, per_clip) = (n / world, views * views);
        let mut w = vec![0f32; n * per_clip];
        w[rank * own * per_clip..(rank + 1) * own * per_clip].fill(world as f32);
        Ok(Some(Tensor::from_data(burn::tensor::TensorData::new(w, [n, views, views]), device)))
    }
}

impl LossConfig {
    /// The configured loss: InfoNCE, or SoftInfoNCE with lambda from `affinity = (ya, yv)` (already mapped by l),
    /// over the anchors `anchors` names. Returns the loss and, for SoftInfoNCE, the lambda of the whole batch (for
    /// [`loss_stats`]).
    ///
    /// # Shapes
    /// `za`, `zv`: `[V, N, D]`; `ya`, `yv`: `[V, N, Dy]`; returns `[1]` and `[N, V, V]`.
    ///
    /// # Errors
    /// An invalid config, mismatched shapes, SoftInfoNCE without `affinity`, or anchors that do not divide the batch.
    pub fn loss(
        &self,
        za: Tensor<3>,
        zv: Tensor<3>,
        affinity: Option<(Tensor<3>, Tensor<3>)>,
        anchors: Anchors,
    ) -> Result<(Tensor<1>, Option<Tensor<3>>), LossError> {
        self.validate()?;
        let [v, n, _] = check_embeddings(&za, &zv)?;
        let share = anchors.weights(n, v, &za.device())?;
        let eta = self.temperature;
        match (self.kind, affinity) {
            (LossKind::InfoNce, _) => Ok(match share {
                None => (info_nce(za, zv, eta, KernelPath::Auto)?, None),
                Some(w) => (soft_info_nce(za, zv, w, eta, KernelPath::Auto)?, None),
            }),
            (LossKind::SoftInfoNce, Some((ya, yv))) => {
                let lambda = cross_affinity(ya, yv, self.lambda_temperature, self.lambda_mode, self.detach_lambda)?;
                let weights = match share {
                    None => lambda.clone(),
                    Some(w) => lambda.clone() * w,
                };
                Ok((soft_info_nce(za, zv, weights, eta, KernelPath::Auto)?, Some(lambda)))
            }
            (LossKind::SoftInfoNce, None) => Err(LossError::MissingAffinity),
        }
    }
}
