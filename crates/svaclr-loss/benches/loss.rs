//! Criterion benchmarks of the losses on flex: InfoNCE and SoftInfoNCE, forward and forward+backward, for
//! N in {64, 256, 512}, V in {1, 2}, D in {128, 256}, on the fused kernel; forward+backward also on the composed
//! tensor-op path (group suffix `_composed`) to show what the kernel buys.
//!
//! With `--features tch` the same losses also run on LibTorch's CPU device (group suffix `_tch`; the composed path,
//! the only one there), so the backends can be compared on this machine.
//!
//! Ids: `<kernel>_<pass>[_composed|_tch]/n<N>_v<V>_d<D>`, e.g. `soft_info_nce_fwd_bwd/n512_v2_d128`; results land in
//! `target/criterion/<group>/<id>/new/estimates.json`. `cargo xtask bench loss` runs these and the PyTorch
//! counterpart (`scripts/bench/loss_torch.py`) and writes `results/bench/loss.{json,md}`.
//! Threads: rayon's global pool (set `RAYON_NUM_THREADS`; the xtask uses 2, like `torch.set_num_threads(2)`).

use std::hint::black_box;

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use svaclr_loss::{KernelPath, info_nce, soft_info_nce};

const NS: [usize; 3] = [64, 256, 512];
const VS: [usize; 2] = [1, 2];
const DS: [usize; 2] = [128, 256];
const TEMPERATURE: f64 = 0.07;

#[derive(Clone, Copy)]
enum Kernel {
    InfoNce,
    SoftInfoNce,
}

impl Kernel {
    fn name(self) -> &'static str {
        match self {
            Kernel::InfoNce => "info_nce",
            Kernel::SoftInfoNce => "soft_info_nce",
        }
    }
}

struct Inputs {
    za: Tensor<3>,
    zv: Tensor<3>,
    lambda: Tensor<3>,
}

fn inputs(dev: &Device, v: usize, n: usize, d: usize, track: bool) -> Inputs {
    let za = Tensor::<3>::random([v, n, d], Distribution::Normal(0.0, 1.0), dev);
    let zv = Tensor::<3>::random([v, n, d], Distribution::Normal(0.0, 1.0), dev);
    // Detached weights around 1, as the cross-affinity module produces by default.
    let lambda = Tensor::<3>::random([n, v, v], Distribution::Uniform(0.5, 1.5), dev);
    if track { Inputs { za: za.require_grad(), zv: zv.require_grad(), lambda } } else { Inputs { za, zv, lambda } }
}

fn loss(kernel: Kernel, x: &Inputs, path: KernelPath) -> Tensor<1> {
    let r = match kernel {
        Kernel::InfoNce => info_nce(x.za.clone(), x.zv.clone(), TEMPERATURE, path),
        Kernel::SoftInfoNce => soft_info_nce(x.za.clone(), x.zv.clone(), x.lambda.clone(), TEMPERATURE, path),
    };
    r.expect("benchmark inputs are valid")
}

/// The (device, pass, path, group suffix) runs: flex's fused kernel both passes, flex's composed path fwd+bwd, and
/// with `tch` LibTorch's CPU device both passes.
#[allow(deprecated)] // Device::libtorch() is marked deprecated upstream but supported.
fn runs() -> Vec<(Device, &'static str, KernelPath, &'static str)> {
    let flex = Device::flex();
    #[allow(unused_mut)]
    let mut runs = vec![
        (flex.clone(), "fwd", KernelPath::Fused, ""),
        (flex.clone(), "fwd_bwd", KernelPath::Fused, ""),
        (flex, "fwd_bwd", KernelPath::Composed, "_composed"),
    ];
    #[cfg(feature = "tch")]
    runs.extend([
        (Device::libtorch(), "fwd", KernelPath::Auto, "_tch"),
        (Device::libtorch(), "fwd_bwd", KernelPath::Auto, "_tch"),
    ]);
    runs
}

fn benches(c: &mut Criterion) {
    for kernel in [Kernel::InfoNce, Kernel::SoftInfoNce] {
        for (device, pass, path, suffix) in runs() {
            let plain = device.clone();
            let autodiff = device.autodiff();
            plain.seed(7);
            let mut group = c.benchmark_group(format!("{}_{pass}{suffix}", kernel.name()));
            for n in NS {
                for v in VS {
                    for d in DS {
                        let id = BenchmarkId::from_parameter(format!("n{n}_v{v}_d{d}"));
                        if pass == "fwd" {
                            let x = inputs(&plain, v, n, d, false);
                            group.bench_function(id, |b| {
                                b.iter(|| black_box(loss(kernel, &x, path).into_scalar::<f32>()))
                            });
                        } else {
                            let x = inputs(&autodiff, v, n, d, true);
                            group.bench_function(id, |b| {
                                b.iter(|| {
                                    let grads = loss(kernel, &x, path).backward();
                                    let ga = x.za.grad(&grads).map(|g| g.into_data());
                                    let gv = x.zv.grad(&grads).map(|g| g.into_data());
                                    black_box((ga, gv))
                                })
                            });
                        }
                    }
                }
            }
            group.finish();
        }
    }
}

criterion_group!(loss_benches, benches);
criterion_main!(loss_benches);
