//! The fused CPU path: a Burn backend extension for flex whose autodiff version has its own backward.
//!
//! [`FusedLoss`] is routed by Burn's `Dispatch`: plain flex tensors reach `impl FusedLoss for Flex` (loss only),
//! autodiff-tracked ones `impl FusedLoss for Autodiff<Flex, C>`, which computes the loss and the gradients of every
//! tracked input in one kernel call ([`kernel::run`]) and registers a backward step that only scales the stored
//! gradients by the incoming one. Other backends are never routed here: [`fused_supported`] checks the device
//! and dtype first and the callers fall back to the composed tensor-op path.

pub mod kernel;
pub mod simd;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};

/// Whether the fused kernel can run on this tensor: a flex device (with or without autodiff) and f32 data.
pub fn fused_supported(t: &Tensor<3>) -> bool {
    let device = t.device().inner();
    matches!(device.as_dispatch(), DispatchDevice::Flex(_)) && t.dtype() == DType::F32
}

/// The fused losses as a backend operation. Use the tensor-level functions of the crate root instead.
#[backend_extension(Flex, Autodiff)]
pub trait FusedLoss: Backend {
    /// InfoNCE over `[V, N, D]` audio / video projections; returns the loss, shape `[1]`.
    fn fused_info_nce(za: FloatTensor<Self>, zv: FloatTensor<Self>, temperature: f64) -> FloatTensor<Self>;
    /// SoftInfoNCE with pair weights `lambda` `[N, V, V]`; returns the loss, shape `[1]`.
    fn fused_soft_info_nce(
        za: FloatTensor<Self>,
        zv: FloatTensor<Self>,
        lambda: FloatTensor<Self>,
        temperature: f64,
    ) -> FloatTensor<Self>;
}

/// `[V, N, D]` of a flex tensor, made contiguous.
fn host_vnd(t: &FlexTensor) -> (FlexTensor, [usize; 3]) {
    let c = t.to_contiguous();
    let dims = c.layout().shape().as_slice();
    assert_eq!(dims.len(), 3, "fused loss: embeddings must be [V, N, D]");
    let shape = [dims[0], dims[1], dims[2]];
    (c, shape)
}

fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("fused loss: fused_supported() admits contiguous f32 tensors only")
}

fn scalar_tensor(value: f64) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(vec![value as f32], [1]))
}

fn flex_from(vec: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(vec, shape.to_vec()))
}

/// Run the kernel on flex primitives.
fn eval(
    za: &FlexTensor,
    zv: &FlexTensor,
    lambda: Option<&FlexTensor>,
    temperature: f64,
    want_z: bool,
    want_lambda: bool,
) -> (kernel::Output, [usize; 3]) {
    let (za, shape) = host_vnd(za);
    let (zv, shape_v) = host_vnd(zv);
    assert_eq!(shape, shape_v, "fused loss: za and zv shapes differ");
    let lambda = lambda.map(FlexTensor::to_contiguous);
    let [v, n, d] = shape;
    let problem = kernel::Problem {
        za: f32_slice(&za),
        zv: f32_slice(&zv),
        lambda: lambda.as_ref().map(f32_slice),
        v,
        n,
        d,
        temperature,
    };
    (kernel::run(&problem, want_z, want_lambda), shape)
}

impl FusedLoss for Flex {
    fn fused_info_nce(za: FlexTensor, zv: FlexTensor, temperature: f64) -> FlexTensor {
        scalar_tensor(eval(&za, &zv, None, temperature, false, false).0.loss)
    }

    fn fused_soft_info_nce(za: FlexTensor, zv: FlexTensor, lambda: FlexTensor, temperature: f64) -> FlexTensor {
        scalar_tensor(eval(&za, &zv, Some(&lambda), temperature, false, false).0.loss)
    }
}

/// Backward of the fused losses: the gradients were computed in the forward kernel; scale them by the incoming
/// gradient of the (scalar) loss.
#[derive(Debug)]
struct FusedLossBackward;

/// Precomputed gradients, one per input (`None` when that input is not tracked).
type GradState<const N: usize> = [Option<FlexTensor>; N];

fn backward_scaled<const N: usize>(ops: Ops<GradState<N>, N>, grads: &mut Gradients) {
    let upstream = grads.consume::<Flex>(&ops.node).to_contiguous();
    let g = upstream.as_slice::<f32>().and_then(|s| s.first().copied()).unwrap_or(1.0);
    for (parent, grad) in ops.parents.into_iter().zip(ops.state) {
        if let (Some(node), Some(grad)) = (parent, grad) {
            let grad = if g == 1.0 { grad } else { Flex::float_mul_scalar(grad, g.into()) };
            grads.register::<Flex>(node.id, grad);
        }
    }
}

impl Backward<Flex, 2> for FusedLossBackward {
    type State = GradState<2>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        backward_scaled(ops, grads);
    }
}

impl Backward<Flex, 3> for FusedLossBackward {
    type State = GradState<3>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        backward_scaled(ops, grads);
    }
}

impl<C: CheckpointStrategy> FusedLoss for Autodiff<Flex, C> {
    fn fused_info_nce(za: FloatTensor<Self>, zv: FloatTensor<Self>, temperature: f64) -> FloatTensor<Self> {
        let (track_a, track_v) = (za.is_tracked(), zv.is_tracked());
        match <FusedLossBackward as Backward<Flex, 2>>::prepare::<C>(FusedLossBackward, [za.node(), zv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, shape) = eval(za.primitive(), zv.primitive(), None, temperature, true, false);
                let state = [
                    out.grad_za.filter(|_| track_a).map(|g| flex_from(g, &shape)),
                    out.grad_zv.filter(|_| track_v).map(|g| flex_from(g, &shape)),
                ];
                prep.finish(state, scalar_tensor(out.loss))
            }
            OpsKind::UnTracked(prep) => {
                let (out, _) = eval(za.primitive(), zv.primitive(), None, temperature, false, false);
                prep.finish(scalar_tensor(out.loss))
            }
        }
    }

    fn fused_soft_info_nce(
        za: FloatTensor<Self>,
        zv: FloatTensor<Self>,
        lambda: FloatTensor<Self>,
        temperature: f64,
    ) -> FloatTensor<Self> {
        let (track_a, track_v, track_l) = (za.is_tracked(), zv.is_tracked(), lambda.is_tracked());
        match <FusedLossBackward as Backward<Flex, 3>>::prepare::<C>(
            FusedLossBackward,
            [za.node(), zv.node(), lambda.node()],
        )
        .compute_bound()
        .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, shape) = eval(
                    za.primitive(),
                    zv.primitive(),
                    Some(lambda.primitive()),
                    temperature,
                    track_a || track_v,
                    track_l,
                );
                let [v, n, _] = shape;
                let state = [
                    out.grad_za.filter(|_| track_a).map(|g| flex_from(g, &shape)),
                    out.grad_zv.filter(|_| track_v).map(|g| flex_from(g, &shape)),
                    out.grad_lambda.map(|g| flex_from(g, &[n, v, v])),
                ];
                prep.finish(state, scalar_tensor(out.loss))
            }
            OpsKind::UnTracked(prep) => {
                let (out, _) =
                    eval(za.primitive(), zv.primitive(), Some(lambda.primitive()), temperature, false, false);
                prep.finish(scalar_tensor(out.loss))
            }
        }
    }
}

/// InfoNCE through the fused op. The caller has checked [`fused_supported`] and the shapes.
pub(crate) fn info_nce(za: Tensor<3>, zv: Tensor<3>, temperature: f64) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as FusedLoss>::fused_info_nce(za.into_dispatch(), zv.into_dispatch(), temperature))
}

/// SoftInfoNCE through the fused op. The caller has checked [`fused_supported`] and the shapes.
pub(crate) fn soft_info_nce(za: Tensor<3>, zv: Tensor<3>, lambda: Tensor<3>, temperature: f64) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as FusedLoss>::fused_soft_info_nce(
        za.into_dispatch(),
        zv.into_dispatch(),
        lambda.into_dispatch(),
        temperature,
    ))
}
