//! A minimal reproduction of what is left between `tch-cpu` and PyTorch (docs/backends.md, "Speed"): one training
//! BatchNorm + ReLU, forward and backward, at an encoder's activation shape, through Burn on LibTorch (Burn's
//! BatchNorm module and autodiff over burn-tch) against LibTorch's own `batch_norm` and `relu` under its autograd
//! (what PyTorch's training step runs), in the same process, on the same threads.
//!
//!     cargo bench -p svaclr-models --bench tch_batch_norm --features tch -- [--shape N,C,T,H,W] [--iters N]
//!
//! Both sides compute `sum(w * relu(bn(x)))` and its gradients to x, gamma and beta; each prints the median of N
//! timed iterations after a warm-up, and the two sides alternate iteration by iteration so that the machine's drift
//! hits both. Thread count: LibTorch's pool (set OMP_NUM_THREADS; 2 in docs/backends.md's table).

use std::time::Instant;

use burn::nn::BatchNormConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let shape: Vec<usize> = arg("--shape")
        .unwrap_or_else(|| "32,16,8,16,16".into())
        .split(',')
        .map(|d| d.parse().expect("--shape N,C,T,H,W"))
        .collect();
    let [n, c, t, h, w] = shape[..] else { panic!("--shape takes 5 dimensions") };
    let iters: usize = arg("--iters").map_or(20, |s| s.parse().expect("--iters N"));
    #[allow(deprecated)]
    let dev = Device::libtorch().autodiff();
    let bn = BatchNormConfig::new(c).init(&dev);
    let x = Tensor::<5>::random([n, c, t, h, w], Distribution::Normal(0.0, 1.0), &dev);
    let wy = Tensor::<5>::random([n, c, t, h, w], Distribution::Normal(0.0, 1.0), &dev);
    let burn_step = || {
        let xa = x.clone().detach().require_grad();
        let y = relu(bn.forward(xa.clone()));
        let g = (y * wy.clone()).sum().backward();
        let dx = xa.grad(&g).expect("dx");
        let dgamma = bn.gamma.val().grad(&g).expect("dgamma");
        let dbeta = bn.beta.val().grad(&g).expect("dbeta");
        // Read back one number per gradient, as the LibTorch side does: both wait for every gradient.
        let _: f64 = [dx.sum(), dgamma.sum(), dbeta.sum()].into_iter().map(|v| v.into_scalar::<f32>() as f64).sum();
    };
    let opts = (tch::Kind::Float, tch::Device::Cpu);
    let dims = [n, c, t, h, w].map(|d| d as i64);
    let tx = tch::Tensor::randn(dims, opts);
    let tw = tch::Tensor::randn(dims, opts);
    let gamma = tch::Tensor::ones([c as i64], opts).set_requires_grad(true);
    let beta = tch::Tensor::zeros([c as i64], opts).set_requires_grad(true);
    let (mut mean, mut var) = (tch::Tensor::zeros([c as i64], opts), tch::Tensor::ones([c as i64], opts));
    let mut torch_step = || {
        let xa = tx.detach().set_requires_grad(true);
        let y =
            xa.batch_norm(Some(&gamma), Some(&beta), Some(&mut mean), Some(&mut var), true, 0.1, 1e-5, false).relu();
        let root = (&y * &tw).sum(tch::Kind::Float);
        let grads = tch::Tensor::run_backward(&[root], &[&xa, &gamma, &beta], false, false);
        let _ = grads.iter().map(|g| g.sum(tch::Kind::Float).double_value(&[])).sum::<f64>();
    };
    burn_step();
    torch_step();
    let (mut tb, mut tt) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        let s = Instant::now();
        burn_step();
        tb.push(s.elapsed().as_secs_f64() * 1e3);
        let s = Instant::now();
        torch_step();
        tt.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, p) = (median(tb), median(tt));
    println!(
        "BatchNorm+ReLU fwd+bwd [{n},{c},{t},{h},{w}], {iters} iterations, LibTorch threads {}: Burn on LibTorch {b:.2} ms, \
         LibTorch's own {p:.2} ms, ratio {:.2}",
        tch::get_num_threads(),
        b / p
    );
}
