//! The encoders' convolutions with their own backward: on burn-flex our im2col + gemm kernels ([`kernel`]), on
//! LibTorch its native convolution backward ([`tch`], feature `tch`).
//!
//! burn-flex 0.22.1 runs a convolution through a general tiled im2col in channels-last layout, and its backward
//! through Burn's generic decomposition (a transposed convolution for the input gradient, a convolution with the
//! batch as channels for the weight gradient); on the small, many-clip convolutions of our CPU presets most of
//! that time is spent in layout copies and scatter loops rather than in the matmuls (docs/models.md, "Speed").
//! [`forward3d`] and [`forward2d`] take Burn's `Conv3d` / `Conv2d` modules (so parameters, records and torchvision
//! import stay as they are) and, on a flex device with f32 data, explicit padding, no dilation and no groups,
//! run [`FastConv`]: a Burn backend extension whose autodiff version registers a backward that calls the kernels
//! directly. On a LibTorch device (same conditions) it runs LibTorch's convolution and, for the backward, LibTorch's
//! own `convolution_backward` instead of Burn's decomposition ([`tch`]). Anything else falls back to the module's
//! own `forward`. Results agree with Burn's convolution to float32 rounding (tests/models/kernels.rs); the backends
//! agreement and torchvision parity tests run through it.

// burn-tch (the `LibTorch` selector and `tch` module) is deprecated upstream but still supported (docs/backends.md).
#![cfg_attr(feature = "tch", allow(deprecated))]

mod direct;
pub mod kernel;
#[cfg(feature = "tch")]
mod tch;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::PaddingConfig3d;
use burn::nn::conv::{Conv2d, Conv3d};
use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Slice, Tensor, TensorData};

use kernel::Geometry;

/// A 3D convolution (no bias) as a backend operation. Use [`forward3d`] / [`forward2d`] instead.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait FastConv: Backend {
    /// `x` `[N, C, D, H, W]`, `weight` `[O, C, kd, kh, kw]`, symmetric zero `padding`; returns `[N, O, Do, Ho, Wo]`.
    fn conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> FloatTensor<Self>;
}

fn dims5(t: &FlexTensor) -> [usize; 5] {
    let d = t.layout().shape().as_slice();
    assert_eq!(d.len(), 5, "flex conv: tensors must have 5 dimensions");
    [d[0], d[1], d[2], d[3], d[4]]
}

/// The f32 data of a contiguous flex tensor (the fast paths' `supported` checks admit no other; shared with
/// [`crate::batch_norm`]).
pub(crate) fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("flex fast path: `supported` admits contiguous f32 tensors only")
}

/// A flex tensor of `shape` holding `values` (shared with [`crate::batch_norm`]).
pub(crate) fn flex_from(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// The geometry of `x` convolved with `w`, and the output shape.
fn geometry(x: &FlexTensor, w: &FlexTensor, stride: [usize; 3], padding: [usize; 3]) -> (Geometry, [usize; 5]) {
    let [n, c, d, h, wd] = dims5(x);
    let [o, cw, kd, kh, kw] = dims5(w);
    assert_eq!(c, cw, "flex conv: input has {c} channels, the weight expects {cw}");
    let g = Geometry { n, c, input: [d, h, wd], o, kernel: [kd, kh, kw], stride, padding };
    let [od, oh, ow] = g.output().expect("flex conv: the kernel does not fit the padded input");
    (g, [n, o, od, oh, ow])
}

fn forward(x: &FlexTensor, w: &FlexTensor, stride: [usize; 3], padding: [usize; 3]) -> FlexTensor {
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let (g, shape) = geometry(&x, &w, stride, padding);
    flex_from(kernel::forward(&g, f32_slice(&x), f32_slice(&w)), &shape)
}

impl FastConv for Flex {
    fn conv3d(x: FlexTensor, weight: FlexTensor, stride: [usize; 3], padding: [usize; 3]) -> FlexTensor {
        forward(&x, &weight, stride, padding)
    }
}

/// Backward of [`FastConv::conv3d`]: the input and weight gradients from the kernels.
#[derive(Debug)]
struct FlexConvBackward;

/// What the backward needs: the input and weight (contiguous) and the convolution's settings.
#[derive(Clone, Debug)]
struct ConvState {
    x: FlexTensor,
    w: FlexTensor,
    stride: [usize; 3],
    padding: [usize; 3],
}

impl Backward<Flex, 2> for FlexConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let ConvState { x, w, stride, padding } = ops.state;
        let (g, _) = geometry(&x, &w, stride, padding);
        let [node_x, node_w] = ops.parents;
        if let Some(node) = node_x {
            let dx = kernel::input_grad(&g, f32_slice(&dy), f32_slice(&w));
            grads.register::<Flex>(node.id, flex_from(dx, &dims5(&x)));
        }
        if let Some(node) = node_w {
            let dw = kernel::weight_grad(&g, f32_slice(&x), f32_slice(&dy));
            grads.register::<Flex>(node.id, flex_from(dw, &dims5(&w)));
        }
    }
}

impl<C: CheckpointStrategy> FastConv for Autodiff<Flex, C> {
    fn conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> FloatTensor<Self> {
        match FlexConvBackward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (xc, wc) = (x.primitive().to_contiguous(), weight.primitive().to_contiguous());
                let y = forward(&xc, &wc, stride, padding);
                prep.finish(ConvState { x: xc, w: wc, stride, padding }, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), weight.primitive(), stride, padding)),
        }
    }
}

/// Whether [`FastConv`] can run on this input: a flex device, or a LibTorch one with the `tch` feature (with or
/// without autodiff), and f32 data.
fn supported<const D: usize>(x: &Tensor<D>) -> bool {
    let backend = match x.device().inner().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(_) => true,
        _ => false,
    };
    backend && x.dtype() == DType::F32
}

fn fast_conv3d(x: Tensor<5>, weight: Tensor<5>, stride: [usize; 3], padding: [usize; 3]) -> Tensor<5> {
    Tensor::from_dispatch(<Dispatch as FastConv>::conv3d(x.into_dispatch(), weight.into_dispatch(), stride, padding))
}

/// `conv.forward(x)`, through [`FastConv`] where it applies.
pub fn forward3d(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    let padding = match conv.padding {
        PaddingConfig3d::Explicit(a, b, c) => [a, b, c],
        PaddingConfig3d::Valid => [0, 0, 0],
        _ => return conv.forward(x),
    };
    if !supported(&x) || conv.groups != 1 || conv.dilation != [1, 1, 1] {
        return burn_conv3d(conv, x, padding);
    }
    let y = fast_conv3d(x, conv.weight.val(), conv.stride, padding);
    match &conv.bias {
        Some(b) => {
            let o = b.dims()[0];
            y + b.val().reshape([1, o, 1, 1, 1])
        }
        None => y,
    }
}

/// `conv.forward(x)` (Burn's convolution, where [`FastConv`] does not apply), except that a strided 1x1x1 convolution
/// without padding (the ResNets' downsample shortcut) is computed as the unit-stride one on the strided input, which is
/// the same arithmetic: Burn 0.22.1's CubeCL backends give that convolution an all-zero input gradient (measured on
/// wgpu over lavapipe; `conv3d_gradients_agree` in svaclr-train's backends_wgpu tests; cuda shares the kernels), which
/// cut every layer before a downsample off from the loss. A strided slice's gradient is a scatter, exact on every
/// backend.
fn burn_conv3d(conv: &Conv3d, x: Tensor<5>, padding: [usize; 3]) -> Tensor<5> {
    let pointwise = conv.kernel_size == [1, 1, 1] && padding == [0, 0, 0];
    if !pointwise || conv.stride == [1, 1, 1] || conv.groups != 1 || conv.dilation != [1, 1, 1] {
        return conv.forward(x);
    }
    let [st, sh, sw] = conv.stride.map(|s| s as isize);
    let x = x.slice([
        Slice::full(),
        Slice::full(),
        Slice::new(0, None, st),
        Slice::new(0, None, sh),
        Slice::new(0, None, sw),
    ]);
    let bias = conv.bias.as_ref().map(|b| b.val());
    conv3d(x, conv.weight.val(), bias, ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1))
}

/// `conv.forward(x)` for a 2D convolution, as a 3D one of depth 1, through [`FastConv`] where it applies.
pub fn forward2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [0, top, left],
        PaddingConfig2d::Valid => [0, 0, 0],
        _ => return conv.forward(x),
    };
    if !supported(&x) || conv.groups != 1 || conv.dilation != [1, 1] {
        return conv.forward(x);
    }
    let [n, c, h, w] = x.dims();
    let [o, cw, kh, kw] = conv.weight.dims();
    let y = fast_conv3d(
        x.reshape([n, c, 1, h, w]),
        conv.weight.val().reshape([o, cw, 1, kh, kw]),
        [1, conv.stride[0], conv.stride[1]],
        padding,
    );
    let [_, _, _, oh, ow] = y.dims();
    let y = y.reshape([n, o, oh, ow]);
    match &conv.bias {
        Some(b) => y + b.val().reshape([1, o, 1, 1]),
        None => y,
    }
}
