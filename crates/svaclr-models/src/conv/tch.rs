//! The encoders' convolutions on LibTorch (`tch-cpu`, `tch-cuda`): LibTorch's convolution forward *and its native
//! backward*.
//!
//! Burn 0.22.1's autodiff differentiates a convolution through its generic decomposition (a transposed convolution
//! for the input gradient, a convolution with the batch as channels for the weight gradient) on every backend that
//! does not override `conv3d_x_backward` / `conv3d_weight_backward`, and burn-tch overrides neither, so LibTorch's
//! own convolution backward (the one PyTorch's training step calls) was never used (docs/backends.md, "Speed").
//! Here the tracked forward runs `conv3d` on detached leaves of the input and weight with LibTorch's autograd on,
//! keeps that one-node graph in the Burn backward's state, and the backward asks LibTorch's autograd for the input
//! and weight gradients Burn needs (`torch.autograd.grad` of `sum(y * dy)`, whose gradient with respect to `y` is
//! `dy`), which runs LibTorch's `convolution_backward`.
//!
//! The state also holds Burn handles of the input and weight, so burn-tch sees their storage as shared and never
//! writes into it in place while the graph needs it (as Burn's own convolution backward keeps them).

use burn::backend::LibTorch;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;

use super::FastConv;

/// `x` `[N, C, D, H, W]` convolved with `w` `[O, C, kd, kh, kw]` by LibTorch (no bias, dilation 1, one group).
fn torch_conv3d(x: &tch::Tensor, w: &tch::Tensor, stride: [usize; 3], padding: [usize; 3]) -> tch::Tensor {
    x.conv3d(w, None::<tch::Tensor>, stride.map(|s| s as i64), padding.map(|p| p as i64), [1i64; 3], 1)
}

impl FastConv for LibTorch {
    fn conv3d(x: TchTensor, weight: TchTensor, stride: [usize; 3], padding: [usize; 3]) -> TchTensor {
        TchTensor::new(torch_conv3d(&x.tensor, &weight.tensor, stride, padding))
    }
}

/// Backward of the LibTorch convolution: LibTorch's autograd over the graph the forward recorded.
#[derive(Debug)]
struct TchConvBackward;

/// The recorded graph: the output `y` (with its LibTorch grad function), the leaves it was computed from, and Burn
/// handles of the input and weight (see the module docs).
#[derive(Clone, Debug)]
struct TchConvState {
    y: TchTensor,
    leaves: [TchTensor; 2],
    _inputs: [TchTensor; 2],
}

impl Backward<LibTorch, 2> for TchConvBackward {
    type State = TchConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<LibTorch>(&ops.node);
        let TchConvState { y, leaves, _inputs } = ops.state;
        let wanted: Vec<_> =
            ops.parents.iter().zip(&leaves).filter_map(|(node, leaf)| Some((node.as_ref()?.id, leaf))).collect();
        if wanted.is_empty() {
            return;
        }
        let root = (&y.tensor * &dy.tensor).sum(tch::Kind::Float);
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|(_, leaf)| &leaf.tensor).collect();
        let grads_out = tch::Tensor::run_backward(&[root], &inputs, false, false);
        for ((id, _), g) in wanted.into_iter().zip(grads_out) {
            grads.register::<LibTorch>(id, TchTensor::new(g));
        }
    }
}

impl<C: CheckpointStrategy> FastConv for Autodiff<LibTorch, C> {
    fn conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> FloatTensor<Self> {
        match TchConvBackward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (xb, wb) = (x.primitive().clone(), weight.primitive().clone());
                let leaf = |t: &TchTensor| TchTensor::new(t.tensor.detach().set_requires_grad(true));
                let leaves = [leaf(&xb), leaf(&wb)];
                let y = torch_conv3d(&leaves[0].tensor, &leaves[1].tensor, stride, padding);
                let out = TchTensor::new(y.detach());
                prep.finish(TchConvState { y: TchTensor::new(y), leaves, _inputs: [xb, wb] }, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(TchTensor::new(torch_conv3d(
                &x.primitive().tensor,
                &weight.primitive().tensor,
                stride,
                padding,
            ))),
        }
    }
}
