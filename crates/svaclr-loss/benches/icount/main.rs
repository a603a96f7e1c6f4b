//! Instruction counts of the losses under Valgrind's callgrind (gungraun): the regression gate of
//! `cargo xtask test`, against the committed `benches/icount/baseline.json` (docs/loss.md, "Instruction-count gate").
//!
//! One benchmark function per (kernel, path, pass), named `<kernel>_<path>_<pass>` (e.g.
//! `soft_info_nce_fused_fwd_bwd`), with shapes as bench ids `n<N>_v<V>_d<D>` (see `loss_bench!`). The setup (not
//! counted) builds the inputs and first runs the same loss on a tiny problem, so that lazy initialisations are done;
//! the count is then one call at the case's shape. "fwd" is the loss on a plain flex device; "fwd_bwd" the loss on
//! autodiff, its backward and the gradients of za and zv read back.
//!
//! Everything runs on one thread: rayon's global pool is one worker, the main thread itself, so every loop and
//! every gemm call runs where callgrind counts (it counts the benchmark function's thread) and no worker spins.
//! The counts are the total work of a call, the same whatever the machine's core count.
//!
//! Built in the dev profile with CI's features (`cargo test --workspace --features ... --bench icount --no-run`),
//! so it reuses CI's build of Burn; `cargo xtask bench-gate` runs it with `--bench` (gungraun's benchmark mode;
//! without it, gungraun's test mode runs each case once natively).

use std::hint::black_box;

use burn::tensor::{Device, Tensor, TensorData};
use gungraun::{library_benchmark, library_benchmark_group, main};
use svaclr_loss::{KernelPath, info_nce, soft_info_nce};

const TEMPERATURE: f64 = 0.07;

#[derive(Clone, Copy, Debug)]
enum Kernel {
    InfoNce,
    SoftInfoNce,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pass {
    Fwd,
    FwdBwd,
}

/// What a benchmark call needs, built by [`prepare`] outside the count.
struct Prepared {
    kernel: Kernel,
    path: KernelPath,
    pass: Pass,
    za: Tensor<3>,
    zv: Tensor<3>,
    lambda: Tensor<3>,
}

/// Deterministic `[a, b, c]` data in [-1, 1) (a fixed hash of the index, no RNG), so that the counts depend on
/// nothing but the code and the shape.
fn data(dims: [usize; 3], salt: u64, dev: &Device) -> Tensor<3> {
    let len = dims.iter().product::<usize>() as u64;
    let values: Vec<f32> = (0..len)
        .map(|i| {
            let h = (i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, dims.to_vec()), dev)
}

/// Rayon's global pool as one worker on the calling thread (idempotent: the first call wins, later ones fail
/// harmlessly because the pool exists).
fn one_thread() {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build_global();
    assert_eq!(rayon::current_num_threads(), 1, "icount: the rayon pool must be one thread");
}

/// The setup of a case (not counted): one thread, the inputs, and a call of the same loss on a tiny problem so that
/// lazy initialisations (CPU feature detection, Burn's autodiff state) are done before the measured call.
fn prepare(kernel: Kernel, path: KernelPath, pass: Pass, n: usize, v: usize, d: usize) -> Prepared {
    one_thread();
    black_box(measure(&inputs(kernel, path, pass, 2, 1, 8)));
    inputs(kernel, path, pass, n, v, d)
}

fn inputs(kernel: Kernel, path: KernelPath, pass: Pass, n: usize, v: usize, d: usize) -> Prepared {
    let flex = Device::flex();
    let dev = if pass == Pass::FwdBwd { flex.autodiff() } else { flex };
    let za = data([v, n, d], 1, &dev);
    let zv = data([v, n, d], 2, &dev);
    // Detached weights in [0.5, 1.5), around 1 as the cross-affinity gives them.
    let lambda = data([n, v, v], 3, &dev).mul_scalar(0.5).add_scalar(1.0);
    let (za, zv) = if pass == Pass::FwdBwd { (za.require_grad(), zv.require_grad()) } else { (za, zv) };
    Prepared { kernel, path, pass, za, zv, lambda }
}

/// The loss and, with `FwdBwd`, the gradients of za and zv.
type Measured = (f32, Option<TensorData>, Option<TensorData>);

/// The measured work: one loss call (and with `FwdBwd` its backward and both gradients read back).
fn measure(x: &Prepared) -> Measured {
    let loss = match x.kernel {
        Kernel::InfoNce => info_nce(x.za.clone(), x.zv.clone(), TEMPERATURE, x.path),
        Kernel::SoftInfoNce => soft_info_nce(x.za.clone(), x.zv.clone(), x.lambda.clone(), TEMPERATURE, x.path),
    }
    .expect("icount: benchmark inputs are valid");
    match x.pass {
        Pass::Fwd => (loss.into_scalar::<f32>(), None, None),
        Pass::FwdBwd => {
            let grads = loss.clone().backward();
            let ga = x.za.grad(&grads).map(|g| g.into_data());
            let gv = x.zv.grad(&grads).map(|g| g.into_data());
            (loss.into_scalar::<f32>(), ga, gv)
        }
    }
}

/// One benchmark function over the shapes, the ids the baseline knows: a mid shape with one view and a small one
/// (overheads dominate), and where given the pre-training shape. Keep in step with the baseline: the gate fails on a
/// case the baseline lacks and on a baseline case not measured.
macro_rules! loss_bench {
    ($name:ident, $kernel:expr, $path:expr, $pass:expr) => {
        #[library_benchmark(setup = prepare)]
        #[bench::n256_v1_d256(args = ($kernel, $path, $pass, 256, 1, 256))]
        #[bench::n64_v2_d64(args = ($kernel, $path, $pass, 64, 2, 64))]
        fn $name(x: Prepared) -> Measured {
            black_box(measure(black_box(&x)))
        }
    };
    // (The ids are literal: an id passed in by the caller breaks the hygiene of gungraun's generated code.)
    ($name:ident, $kernel:expr, $path:expr, $pass:expr, with_pretraining_shape) => {
        #[library_benchmark(setup = prepare)]
        #[bench::n512_v2_d128(args = ($kernel, $path, $pass, 512, 2, 128))]
        #[bench::n256_v1_d256(args = ($kernel, $path, $pass, 256, 1, 256))]
        #[bench::n64_v2_d64(args = ($kernel, $path, $pass, 64, 2, 64))]
        fn $name(x: Prepared) -> Measured {
            black_box(measure(black_box(&x)))
        }
    };
}

// The pre-training shape N = 512, V = 2, D = 128 for SoftInfoNCE only: it is InfoNCE's work plus the weights (the
// counts differ by 0.05%), and Valgrind takes 10-40 s per case at that size, so InfoNCE there would double the gate's
// time for no new code. Both kernels at the other shapes.
loss_bench!(info_nce_fused_fwd, Kernel::InfoNce, KernelPath::Fused, Pass::Fwd);
loss_bench!(info_nce_fused_fwd_bwd, Kernel::InfoNce, KernelPath::Fused, Pass::FwdBwd);
loss_bench!(info_nce_composed_fwd, Kernel::InfoNce, KernelPath::Composed, Pass::Fwd);
loss_bench!(info_nce_composed_fwd_bwd, Kernel::InfoNce, KernelPath::Composed, Pass::FwdBwd);
loss_bench!(soft_info_nce_fused_fwd, Kernel::SoftInfoNce, KernelPath::Fused, Pass::Fwd, with_pretraining_shape);
loss_bench!(soft_info_nce_fused_fwd_bwd, Kernel::SoftInfoNce, KernelPath::Fused, Pass::FwdBwd, with_pretraining_shape);
loss_bench!(soft_info_nce_composed_fwd, Kernel::SoftInfoNce, KernelPath::Composed, Pass::Fwd, with_pretraining_shape);
loss_bench!(
    soft_info_nce_composed_fwd_bwd,
    Kernel::SoftInfoNce,
    KernelPath::Composed,
    Pass::FwdBwd,
    with_pretraining_shape
);

library_benchmark_group!(
    name = loss,
    benchmarks = [
        info_nce_fused_fwd,
        info_nce_fused_fwd_bwd,
        info_nce_composed_fwd,
        info_nce_composed_fwd_bwd,
        soft_info_nce_fused_fwd,
        soft_info_nce_fused_fwd_bwd,
        soft_info_nce_composed_fwd,
        soft_info_nce_composed_fwd_bwd,
    ]
);

main!(library_benchmark_groups = loss);
