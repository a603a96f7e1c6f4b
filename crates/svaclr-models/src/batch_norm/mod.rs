//! The encoders' training-mode BatchNorm on burn-flex as one operation: our two-pass kernels ([`kernel`]).
//!
//! Burn 0.22.1 differentiates `batch_norm_train` as one autodiff operation, but its backends compute it from
//! tensor operations: the statistics through a transpose and reshape of the whole activation (a copy), a mean, a
//! subtraction, a square, a second copy and mean, then about six element-wise passes for the output; the backward
//! takes a dozen more. burn-flex overrides none of it. [`forward`] takes Burn's `BatchNorm` module (so parameters,
//! records and torchvision import stay as they are) and, in training mode on a flex device with f32 data, runs
//! [`FastBatchNorm`]: statistics in one pass, the output in a second, and a backward of two
//! passes; it updates the running statistics exactly as Burn's module does (momentum, biased variance).
//! [`forward_relu`] folds the ReLU that follows most BatchNorms into the same passes. Anything else (inference
//! mode, a frozen layer, other backends) is the module's own `forward`. On LibTorch, Burn's BatchNorm stays: a
//! version through LibTorch's native `batch_norm` and autograd was tried and dropped (docs/backends.md, "Speed").

pub mod kernel;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};

use crate::conv::{f32_slice, flex_from};
use kernel::Layout;

/// Training-mode BatchNorm as a backend operation. Use [`forward`] instead.
#[backend_extension(Flex, Autodiff)]
pub trait FastBatchNorm: Backend {
    /// `x` `[N, C, ...]`, `gamma` and `beta` `[C]`; returns the output (shape of `x`; with `relu`, the ReLU of
    /// it), and the batch mean and biased variance `[C]` (constants: no gradient flows through them).
    fn bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

fn layout(x: &FlexTensor) -> Layout {
    let d = x.layout().shape().as_slice();
    assert!(d.len() >= 2, "batch norm: the input needs a channel axis");
    Layout { n: d[0], c: d[1], s: d[2..].iter().product() }
}

fn shape_of(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().as_slice().to_vec()
}

fn flex_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f64,
    relu: bool,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let l = layout(x);
    let (y, mean, var) = kernel::forward(&l, f32_slice(x), f32_slice(gamma), f32_slice(beta), eps, relu);
    (flex_from(y, &shape_of(&x)), flex_from(mean, &[l.c]), flex_from(var, &[l.c]))
}

impl FastBatchNorm for Flex {
    fn bn_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        flex_forward(&x.to_contiguous(), &gamma.to_contiguous(), &beta.to_contiguous(), epsilon, relu)
    }
}

/// Backward of [`FastBatchNorm::bn_train`] on flex: the kernels' two passes.
#[derive(Debug)]
struct FlexBnBackward;

/// What the backward needs: the input and parameters (contiguous), the batch statistics, epsilon and the ReLU flag.
#[derive(Clone, Debug)]
struct BnState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    eps: f64,
    relu: bool,
}

impl Backward<Flex, 3> for FlexBnBackward {
    type State = BnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let BnState { x, gamma, beta, mean, var, eps, relu } = ops.state;
        let l = layout(&x);
        let (dx, dgamma, dbeta) = kernel::backward(
            &l,
            f32_slice(&x),
            f32_slice(&dy),
            f32_slice(&mean),
            f32_slice(&var),
            f32_slice(&gamma),
            f32_slice(&beta),
            eps,
            relu,
        );
        let [node_x, node_gamma, node_beta] = ops.parents;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_from(dx, &shape_of(&x)));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_from(dgamma, &[l.c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex_from(dbeta, &[l.c]));
        }
    }
}

impl<C: CheckpointStrategy> FastBatchNorm for Autodiff<Flex, C> {
    fn bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = FlexBnBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
        let [x, gamma, beta] = [x.primitive(), gamma.primitive(), beta.primitive()].map(|t| t.to_contiguous());
        let (y, mean, var) = flex_forward(&x, &gamma, &beta, epsilon, relu);
        let stats = (Self::from_inner(mean.clone()), Self::from_inner(var.clone()));
        let y = match prep {
            OpsKind::Tracked(prep) => prep.finish(BnState { x, gamma, beta, mean, var, eps: epsilon, relu }, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, stats.0, stats.1)
    }
}

/// Whether [`FastBatchNorm`] can run on this input: a flex device (with or without autodiff) and f32 data.
fn supported<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_)) && x.dtype() == DType::F32 && D >= 2
}

/// `bn.forward(x)`, through [`FastBatchNorm`] in training mode where it applies.
///
/// # Shapes
/// `x` `[N, C, ...]` -> the same shape.
pub fn forward<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    train(bn, x, false).unwrap_or_else(|x| bn.forward(x))
}

/// `relu(bn.forward(x))`, through [`FastBatchNorm`] (one pass for both) in training mode where it applies.
///
/// # Shapes
/// `x` `[N, C, ...]` -> the same shape.
pub fn forward_relu<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    train(bn, x, true).unwrap_or_else(|x| relu(bn.forward(x)))
}

/// The training-mode operation and the running-statistics update Burn's module makes; `Err(x)` when it does not
/// apply (inference mode, a frozen layer, another backend or dtype).
fn train<const D: usize>(bn: &BatchNorm, x: Tensor<D>, with_relu: bool) -> Result<Tensor<D>, Tensor<D>> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) || !supported(&x) {
        return Err(x);
    }
    let device = x.device();
    let (gamma, beta) = (bn.gamma.val().into_dispatch(), bn.beta.val().into_dispatch());
    let (y, mean, var) = <Dispatch as FastBatchNorm>::bn_train(x.into_dispatch(), gamma, beta, bn.epsilon, with_relu);
    let (mean, var) = (Tensor::<1>::from_dispatch(mean).detach(), Tensor::<1>::from_dispatch(var).detach());
    let m = bn.momentum;
    let running = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let old = state.value_sync().to_device(&device);
        state.update(old.mul_scalar(1.0 - m).add(batch.mul_scalar(m)).detach());
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, var);
    Ok(Tensor::from_dispatch(y))
}
