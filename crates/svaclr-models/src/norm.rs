//! BatchNorm construction and "precise BN": re-estimating the running statistics after training.
//!
//! During training every BatchNorm normalises with the current batch's statistics and keeps an exponential moving
//! average (momentum [`BN_MOMENTUM`]) for inference. When the weights move fast (short schedules, high learning
//! rates) that average lags far behind the statistics of the final weights, and inference-mode features, which
//! linear probes, retrieval and fine-tuning's evaluation all use, become nearly constant. Precise BN (Wu & Johnson,
//! "Rethinking Batch in BatchNorm", 2021) fixes this after training: run a few batches through the final weights in
//! training mode, without optimiser steps, and set each running mean and variance to the average of the batch
//! statistics.
//!
//! [`PreciseBn`] does that for any module, without knowing its layout: before each batch it zeroes every running
//! statistic, so that after one training-mode forward each one holds exactly `BN_MOMENTUM x` its batch statistic;
//! it accumulates those and finally writes their mean back. The result does not depend on the running statistics the
//! module had before, so re-estimating twice gives the same model.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;

use crate::RUNNING_STATS;

/// Momentum of every BatchNorm's running statistics in our networks (PyTorch's and Burn's default).
pub const BN_MOMENTUM: f64 = 0.1;

/// A BatchNorm over `features` channels with the project's momentum.
pub(crate) fn batch_norm(features: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features).with_momentum(BN_MOMENTUM).init(device)
}

/// Fold pending running-statistic updates into their values.
///
/// NOTE: Burn's `RunningState::update` parks a training forward's new statistic per thread and folds it in lazily
/// (on the next training forward, or on `valid()`); visitors and mappers see the folded value only. `valid()` is
/// the public operation that folds every pending update of the module in place, so it is called and its copy
/// dropped. Without this a mapped value would be overwritten by a parked update on the next forward.
fn sync_running_stats<M: Module>(module: &M) {
    drop(module.valid());
}

/// Tracks the module path so that running statistics can be told from parameters.
#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn at_running_stat(&self) -> bool {
        self.0.last().is_some_and(|n| RUNNING_STATS.contains(&n.as_str()))
    }
}

/// Replaces every running statistic, in visiting order, by `values[i]` (or by zeros when `values` is `None`).
struct SetStats<'a> {
    path: Path,
    values: Option<&'a [Tensor<1>]>,
    index: usize,
}

impl ModuleMapper for SetStats<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.path.at_running_stat() {
            return param;
        }
        let index = self.index;
        self.index += 1;
        let values = self.values;
        param.map(|value| match values {
            Some(values) => values[index].clone().to_device(&value.device()).reshape(value.shape()),
            None => value.zeros_like(),
        })
    }
}

/// Reads every running statistic, in visiting order.
struct ReadStats {
    path: Path,
    values: Vec<Tensor<1>>,
}

impl ModuleVisitor for ReadStats {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.at_running_stat() {
            let t = param.val();
            let n = t.shape().num_elements();
            self.values.push(t.reshape([n]).detach());
        }
    }
}

/// Every running statistic of `module`, in visiting order (pending updates folded in first).
fn read_running_stats<M: Module>(module: &M) -> Vec<Tensor<1>> {
    sync_running_stats(module);
    let mut reader = ReadStats { path: Path::default(), values: Vec::new() };
    module.visit(&mut reader);
    reader.values
}

/// `module` with every running statistic replaced, in visiting order, by `values[i]` (zeros when `None`).
fn write_running_stats<M: Module>(module: M, values: Option<&[Tensor<1>]>) -> M {
    sync_running_stats(&module);
    module.map(&mut SetStats { path: Path::default(), values, index: 0 })
}

/// A copy of every running statistic of a module, to put back after training-mode forwards that must not count
/// (a monitor evaluation in the middle of training: it needs batch statistics, as training does, but must leave the
/// moving averages exactly as training left them).
pub struct SavedRunningStats(Vec<Tensor<1>>);

impl SavedRunningStats {
    /// Copy `module`'s running statistics (pending updates folded in first).
    pub fn save<M: Module>(module: &M) -> Self {
        Self(read_running_stats(module))
    }

    /// Write the saved statistics back into `module` (the one they were saved from), discarding every update since.
    pub fn restore<M: Module>(&self, module: M) -> M {
        write_running_stats(module, Some(&self.0))
    }
}

/// Precise-BN accumulator: `prepare` before each batch, one training-mode forward, `record` after it, `finish` at the
/// end. Works on any module whose BatchNorms all use [`BN_MOMENTUM`].
#[derive(Default)]
pub struct PreciseBn {
    sums: Vec<Tensor<1>>,
    batches: usize,
}

impl PreciseBn {
    /// A fresh accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Zero every running statistic of `module` (call before each batch's forward).
    pub fn prepare<M: Module>(&self, module: M) -> M {
        write_running_stats(module, None)
    }

    /// Add the statistics of the batch just forwarded (the module's running statistics, zeroed by `prepare`, now
    /// hold `BN_MOMENTUM x` that batch's).
    pub fn record<M: Module>(&mut self, module: &M) {
        let values = read_running_stats(module);
        if self.sums.is_empty() {
            self.sums = values;
        } else {
            for (s, v) in self.sums.iter_mut().zip(values) {
                *s = s.clone() + v;
            }
        }
        self.batches += 1;
    }

    /// Batches recorded so far.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Write the mean batch statistics into `module`'s running statistics. With no batch recorded the module is
    /// returned unchanged.
    pub fn finish<M: Module>(self, module: M) -> M {
        if self.batches == 0 {
            return module;
        }
        let scale = 1.0 / (self.batches as f64 * BN_MOMENTUM);
        let means: Vec<Tensor<1>> = self.sums.into_iter().map(|s| s.mul_scalar(scale)).collect();
        write_running_stats(module, Some(&means))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let (a, b) = (a.into_data().try_to_vec::<f32>().expect("f32"), b.into_data().try_to_vec::<f32>().expect("f32"));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    fn plain(x: &Tensor<2>) -> Tensor<2> {
        Tensor::from_data(x.to_data(), &Device::default())
    }

    #[derive(Module, Debug)]
    struct Net {
        a: BatchNorm,
        b: BatchNorm,
    }

    impl Net {
        fn forward(&self, x: Tensor<2>) -> Tensor<2> {
            self.b.forward(self.a.forward(x).mul_scalar(3.0).add_scalar(1.0))
        }
    }

    fn net(device: &Device) -> Net {
        Net { a: batch_norm(4, device), b: batch_norm(4, device) }
    }

    /// After precise BN over one batch, inference mode on that batch reproduces training mode on it (up to the
    /// biased/unbiased variance, which Burn's training path and running statistics share).
    #[test]
    fn precise_bn_makes_inference_match_the_batch_statistics() {
        let device = Device::default().autodiff();
        device.seed(3);
        let mut m = net(&device);
        let x = Tensor::<2>::random([64, 4], Distribution::Normal(5.0, 7.0), &device);
        let train_out = plain(&m.forward(x.clone()));
        // Running statistics after one EMA step are far from the batch's: inference differs from training.
        let ema_out = m.valid().forward(plain(&x));
        assert!(max_abs_diff(ema_out, train_out.clone()) > 0.1);
        let mut p = PreciseBn::new();
        for _ in 0..3 {
            m = p.prepare(m);
            let _ = m.forward(x.clone());
            p.record(&m);
        }
        assert_eq!(p.batches(), 3);
        let m = p.finish(m);
        let out = m.valid().forward(plain(&x));
        let err = max_abs_diff(out, train_out);
        assert!(err < 2e-2, "inference after precise BN differs from training mode by {err}");
    }

    /// The estimate is the mean over batches and does not depend on the running statistics before.
    #[test]
    fn precise_bn_is_the_mean_of_batch_statistics_and_idempotent() {
        let device = Device::default().autodiff();
        device.seed(5);
        let xs: Vec<Tensor<2>> =
            (0..2).map(|i| Tensor::random([32, 4], Distribution::Normal(i as f64, 1.0 + i as f64), &device)).collect();
        let run = |m: Net| {
            let mut p = PreciseBn::new();
            let mut m = m;
            for x in &xs {
                m = p.prepare(m);
                let _ = m.forward(x.clone());
                p.record(&m);
            }
            p.finish(m)
        };
        let once = run(net(&device));
        let expected_mean = (xs[0].clone().mean_dim(0) + xs[1].clone().mean_dim(0)).div_scalar(2.0).reshape([4]);
        assert!(max_abs_diff(once.a.running_mean.value(), expected_mean) < 1e-4);
        let twice = run(once.clone());
        for (x, y) in [(&once.a, &twice.a), (&once.b, &twice.b)] {
            assert!(max_abs_diff(x.running_mean.value(), y.running_mean.value()) < 1e-6);
            assert!(max_abs_diff(x.running_var.value(), y.running_var.value()) < 1e-6);
        }
    }
}
