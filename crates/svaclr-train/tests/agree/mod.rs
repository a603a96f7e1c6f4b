//! Cross-backend agreement checks, shared by the flex/LibTorch tests (`backends.rs`, feature `tch`) and the
//! flex/wgpu tests (`backends_wgpu.rs`, feature `wgpu`): each check runs the same computation on flex and on the
//! `other` device from the same weights and inputs and asserts float32 agreement.
//!
//! Both sides start from the same weights: they are drawn on flex and forked to the other backend
//! (`ModelConfig::init_portable`, `svaclr_models::materialize`), because the backends' random generators differ.
//!
//! Tolerances are float32's: every comparison is `max |other - flex| <= rtol * max |flex|` (infinity norms), with
//! rtol about 100 (losses) to 1000 (deep networks) times f32's epsilon of 1.2e-7, because the backends' kernels sum in
//! different orders; a wrong kernel, layout or BatchNorm mode gives errors of order 1. Each check prints its measured
//! errors; docs/backends.md lists them.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use svaclr_loss::{KernelPath, LambdaMode, cross_affinity, info_nce, soft_info_nce};
use svaclr_models::{AudioEncoderConfig, SizePreset, VideoArch, VideoEncoderConfig, materialize};
use svaclr_synth::{GenerateOptions, Preset, SynthConfig, generate};
use svaclr_train::trainer::build_optimizer;
use svaclr_train::{PretrainConfig, PretrainOptions, RunDir, pretrain};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every test seeds flex's one global random generator and then draws weights or inputs from it: tests running in
/// parallel threads would draw from each other's streams and start the two backends from different weights. Each test
/// holds this lock for its whole run.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 read-back")
}

/// `max |got - want| / max |want|`.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs() as f64));
    let err = got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((*g as f64 - *w as f64).abs()));
    err / scale.max(f64::MIN_POSITIVE)
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f64) {
    let e = rel_err(got, want);
    eprintln!("{what}: relative error {e:.2e} (bound {rtol:.0e})");
    assert!(e <= rtol, "{what}: differs from flex by {e:e} (relative), more than {rtol:e}");
}

/// The same tensor on `dev`.
pub fn to<const D: usize>(t: &Tensor<D>, dev: &Device) -> Tensor<D> {
    Tensor::from_data(t.to_data(), dev)
}

/// Every float parameter (running statistics included), in visiting order.
pub fn params<M: Module>(m: &M) -> Vec<(String, Vec<f32>)> {
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.out.push((self.path.join("."), host(p.val())));
        }
    }
    let mut c = Collect { path: Vec::new(), out: Vec::new() };
    m.visit(&mut c);
    c.out
}

// -------------------------------------------------------------------------------------------------------------
// encoders

/// Input sizes of the encoder check: video `[B, 3, T, H, W]`, audio `[B, 1, mels, frames]`.
pub struct EncoderInputs {
    pub video: [usize; 5],
    pub audio: [usize; 4],
}

/// Forward (inference: running statistics) and training forward (batch statistics) + backward to the input, for
/// each encoder at the tiny preset, on flex and on `other` (a plain device; autodiff is added here).
pub fn encoders_agree(other: &Device, inputs: &EncoderInputs, rtol: f64) {
    let flex = Device::flex();
    flex.seed(11);
    for arch in [VideoArch::R2Plus1d18, VideoArch::R3d18] {
        let enc = VideoEncoderConfig::new(arch, SizePreset::Tiny).init(&flex.clone().autodiff());
        materialize(&enc);
        let x = Tensor::<5>::random(inputs.video, Distribution::Normal(0.0, 1.0), &flex);
        // Inference.
        let want = host(enc.valid().forward(x.clone()));
        let got = host(enc.clone().fork(other).valid().forward(to(&x, other)));
        assert_close(&format!("{arch:?} forward (eval)"), &got, &want, rtol);
        // Training mode (batch statistics), and the gradient to the input of a random weighting of the features
        // (that of their plain sum through training-mode BatchNorm is zero up to rounding: it would compare noise).
        let xf = to(&x, &flex.clone().autodiff()).require_grad();
        let yf = enc.forward(xf.clone());
        let w = Tensor::<2>::random(yf.dims(), Distribution::Normal(0.0, 1.0), &flex);
        let gf = xf.grad(&(yf.clone() * to(&w, &flex.clone().autodiff())).sum().backward()).expect("flex input grad");
        let ad = other.clone().autodiff();
        let xo = to(&x, &ad).require_grad();
        let yo = enc.clone().fork(&ad).forward(xo.clone());
        let go = xo.grad(&(yo.clone() * to(&w, &ad)).sum().backward()).expect("input grad");
        assert_close(&format!("{arch:?} forward (train)"), &host(yo), &host(yf), rtol);
        assert_close(&format!("{arch:?} d (w . features) / d input"), &host(go), &host(gf), rtol);
    }
    let enc = AudioEncoderConfig::new(SizePreset::Tiny).init(&flex.clone().autodiff());
    materialize(&enc);
    let x = Tensor::<4>::random(inputs.audio, Distribution::Normal(0.0, 1.0), &flex);
    let want = host(enc.valid().forward(x.clone()));
    let got = host(enc.clone().fork(other).valid().forward(to(&x, other)));
    assert_close("audio ResNet-9 forward (eval)", &got, &want, rtol);
    let xf = to(&x, &flex.clone().autodiff()).require_grad();
    let yf = enc.forward(xf.clone());
    let w = Tensor::<2>::random(yf.dims(), Distribution::Normal(0.0, 1.0), &flex);
    let gf = xf.grad(&(yf.clone() * to(&w, &flex.clone().autodiff())).sum().backward()).expect("flex input grad");
    let ad = other.clone().autodiff();
    let xo = to(&x, &ad).require_grad();
    let yo = enc.fork(&ad).forward(xo.clone());
    let go = xo.grad(&(yo.clone() * to(&w, &ad)).sum().backward()).expect("input grad");
    assert_close("audio ResNet-9 forward (train)", &host(yo), &host(yf), rtol);
    assert_close("audio ResNet-9 d (w . features) / d input", &host(go), &host(gf), rtol);
}

// -------------------------------------------------------------------------------------------------------------
// losses

/// InfoNCE and SoftInfoNCE (lambda from the cross-affinity module, gradients flowing through it) and their gradients
/// to every input: flex's fused kernel and composed path against `other`'s own path (`KernelPath::Auto`: the
/// composed one off flex).
pub fn losses_agree(other: &Device, rtol: f64) {
    let flex = Device::flex();
    flex.seed(5);
    let (v, n, d) = (2, 24, 32);
    let draw = || Tensor::<3>::random([v, n, d], Distribution::Normal(0.0, 1.0), &flex);
    let (za, zv, ya, yv) = (draw(), draw(), draw(), draw());
    // (value, [d/dza, d/dzv, d/dya, d/dyv]) of SoftInfoNCE and (value, [d/dza, d/dzv]) of InfoNCE.
    let run = |dev: &Device, path: KernelPath| {
        let leaf = |t: &Tensor<3>| to(t, dev).require_grad();
        let (a, b, la, lv) = (leaf(&za), leaf(&zv), leaf(&ya), leaf(&yv));
        let lambda = cross_affinity(la.clone(), lv.clone(), 0.1, LambdaMode::All, false).expect("cross_affinity");
        let soft = soft_info_nce(a.clone(), b.clone(), lambda, 0.2, path).expect("soft");
        let sv = host(soft.clone())[0];
        let g = soft.backward();
        let sg: Vec<Vec<f32>> = [&a, &b, &la, &lv].iter().map(|t| host(t.grad(&g).expect("grad"))).collect();
        let (a, b) = (leaf(&za), leaf(&zv));
        let info = info_nce(a.clone(), b.clone(), 0.07, path).expect("info");
        let iv = host(info.clone())[0];
        let g = info.backward();
        let ig: Vec<Vec<f32>> = [&a, &b].iter().map(|t| host(t.grad(&g).expect("grad"))).collect();
        (sv, sg, iv, ig)
    };
    let t = run(&other.clone().autodiff(), KernelPath::Auto);
    for (name, path) in [("fused", KernelPath::Fused), ("composed", KernelPath::Composed)] {
        let f = run(&flex.clone().autodiff(), path);
        assert_close(&format!("SoftInfoNCE value vs flex {name}"), &[t.0], &[f.0], rtol);
        for (i, input) in ["za", "zv", "ya", "yv"].iter().enumerate() {
            assert_close(&format!("SoftInfoNCE d/d{input} vs flex {name}"), &t.1[i], &f.1[i], rtol);
        }
        assert_close(&format!("InfoNCE value vs flex {name}"), &[t.2], &[f.2], rtol);
        for (i, input) in ["za", "zv"].iter().enumerate() {
            assert_close(&format!("InfoNCE d/d{input} vs flex {name}"), &t.3[i], &f.3[i], rtol);
        }
    }
}

// -------------------------------------------------------------------------------------------------------------
// one SGD step

/// configs/pretrain/smoke.json as a value (its manifest is not read here).
pub fn smoke_value() -> serde_json::Value {
    let text = std::fs::read_to_string(workspace().join("configs/pretrain/smoke.json")).expect("smoke config");
    serde_json::from_str(&text).expect("json")
}

/// One SGD step (momentum and weight decay as configured) of the smoke model on a random batch of 2 views x 4
/// clips, from the same weights, on flex and on `other`, for each video input of `inputs` (the paper's `rgb`, the
/// smoke preset's `temporal_residual`): the loss, and the change the step made to every parameter and BatchNorm
/// statistic.
///
/// Changes are compared against the largest change in the model (a tensor-by-tensor relative error would be
/// dominated by the projectors' first biases, which sit in front of a BatchNorm: their true gradient is zero, so
/// both backends move them by rounding noise of about 1e-9 of the largest change). The bound per tensor is `rtol`, or
/// 4 times how far flex moves that tensor from itself (float32's own conditioning of that step), whichever is
/// larger. Flex against itself is measured twice: the same batch with its clips in another order (the same sums in
/// another order), and the same batch with every video value nudged by a few units in the last place. With RGB input
/// both spreads are 1e-5 to 4e-5; with `temporal_residual` the nudge moves the stem's first convolution by 1.7e-2
/// (its true gradient nearly cancels, docs/backends.md) while the clip order may move it by only 1e-5, depending on
/// the CPU's gemm blocking (measured 8e-6 on an AVX-512 Xeon, where tch differed by 5.5e-4).
pub fn one_sgd_step_agrees(other: &Device, inputs: &[&str], rtol: f64) {
    const INTRINSIC_FACTOR: f64 = 4.0;
    let (views, clips) = (2, 4);
    let flex = Device::flex();
    flex.seed(1);
    let video = Tensor::<5>::random([views * clips, 3, 8, 32, 32], Distribution::Normal(0.0, 1.0), &flex);
    let audio = Tensor::<4>::random([views * clips, 1, 40, 50], Distribution::Normal(0.0, 1.0), &flex);
    for &input in inputs {
        let mut value = smoke_value();
        value["model"]["video_input"] = input.into();
        let cfg: PretrainConfig = serde_json::from_value(value).expect("smoke config");
        // `order`: the clips of the batch, in the order they are stacked (the same permutation in every view).
        let step = |dev: &Device, order: &[usize], video: &Tensor<5>| {
            Device::flex().seed(cfg.seed);
            let model = cfg.model.init_portable(dev).expect("model");
            let before = params(&model);
            let rows: Vec<i64> = (0..views).flat_map(|v| order.iter().map(move |c| (v * clips + c) as i64)).collect();
            let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [views * clips]), dev);
            let out = model.forward(to(video, dev).select(0, rows.clone()), to(&audio, dev).select(0, rows));
            let split = |t: Tensor<2>| {
                let [_, d] = t.dims();
                t.reshape([views, clips, d])
            };
            let lambda = cross_affinity(split(out.l_audio), split(out.l_video), 0.1, LambdaMode::All, true)
                .expect("cross_affinity");
            let loss =
                soft_info_nce(split(out.z_audio), split(out.z_video), lambda, cfg.loss.temperature, KernelPath::Auto)
                    .expect("soft_info_nce");
            let value = host(loss.clone())[0];
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = build_optimizer(&cfg).step(0.2, model, grads);
            let change: Vec<(String, Vec<f32>)> = params(&model)
                .into_iter()
                .zip(&before)
                .map(|((name, after), (_, b))| (name, after.iter().zip(b).map(|(a, b)| a - b).collect()))
                .collect();
            (value, before, change)
        };
        let identity: Vec<usize> = (0..clips).collect();
        // The same video, each value moved by a few units in the last place of float32 (relative 2^-22), with
        // NUDGES independent draws: how far float32 rounding alone moves a tensor's change is itself a noisy
        // quantity (one draw measured 2.3e-3 for the cancelling stem on an AMD EPYC, 1.7e-2 on a Xeon), so the
        // bound takes the largest of several.
        const NUDGES: u64 = 4;
        let (lf, bf, cf) = step(&flex.clone().autodiff(), &identity, &video);
        let (_, _, cp) = step(&flex.clone().autodiff(), &[2, 0, 3, 1], &video);
        let nudged_changes: Vec<Vec<(String, Vec<f32>)>> = (0..NUDGES)
            .map(|k| {
                flex.seed(1000 + k);
                let nudge = Tensor::<5>::random(video.shape(), Distribution::Uniform(-1.0, 1.0), &flex);
                step(&flex.clone().autodiff(), &identity, &(video.clone() * (nudge * 2f64.powi(-22) + 1.0))).2
            })
            .collect();
        let (lo, bo, co) = step(&other.clone().autodiff(), &identity, &video);
        assert_close(&format!("{input}: loss"), &[lo], &[lf], 1e-5);
        assert_eq!(cf.len(), co.len());
        let largest = cf.iter().flat_map(|(_, d)| d.iter()).fold(0.0f64, |m, x| m.max(x.abs() as f64));
        assert!(largest > 1e-3, "the step changed nothing ({largest})");
        let spread = |a: &[f32], b: &[f32]| {
            a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / largest
        };
        let mut worst = (0.0f64, 0.0f64, String::new());
        for (i, (((name, df), (_, dt)), (_, dp))) in cf.iter().zip(&co).zip(&cp).enumerate() {
            assert_eq!(bf[i].1, bo[i].1, "{name}: initial weights differ between backends");
            let nudged = nudged_changes.iter().map(|c| spread(df, &c[i].1)).fold(0.0f64, f64::max);
            let (err, intrinsic) = (spread(df, dt), spread(df, dp).max(nudged));
            let bound = rtol.max(INTRINSIC_FACTOR * intrinsic);
            assert!(
                err <= bound,
                "{input}: the step moved {name} differently off flex: {err:e} of the largest change, more than \
                 {bound:e} (flex against itself, reordered or nudged: {intrinsic:e})"
            );
            if err > worst.0 {
                worst = (err, intrinsic, name.clone());
            }
        }
        eprintln!(
            "{input}: parameter changes: worst error {:.2e} of the largest change ({}; flex against itself: {:.2e})",
            worst.0, worst.2, worst.1
        );
    }
}

// -------------------------------------------------------------------------------------------------------------
// pre-training

/// A smoke pre-training run of `steps` steps on SynthAV (64 clips, generated into a temporary directory) with the
/// smoke config, once on flex and once on `other`; their loss curves, and the directory holding both runs (`flex/`
/// and `<name>/`, each a run directory) for further checks.
pub fn smoke_curves(other: &Device, name: &str, steps: usize) -> (Vec<f64>, Vec<f64>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("synth");
    let synth = SynthConfig::preset(Preset::Small).with_seed(3).with_pretrain_clips(64);
    generate(&synth, &data, GenerateOptions { progress: false, force: false }).expect("generate SynthAV");
    let mut v = smoke_value();
    v["manifest"] = serde_json::Value::String(data.join("pretrain.jsonl").display().to_string());
    v["run"]["max_steps"] = steps.into();
    let cfg_path = dir.path().join("cfg.json");
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&v).expect("json")).expect("write config");
    let cfg = PretrainConfig::load(&cfg_path, None).expect("config");
    let curve = |device: &Device, name: &str| {
        let out = dir.path().join(name);
        let started = std::time::Instant::now();
        let summary = pretrain(&cfg, &out, device, name, &PretrainOptions::default()).expect("pretrain");
        eprintln!("{name}: {steps} steps in {:.1} s", started.elapsed().as_secs_f64());
        assert_eq!(summary.steps, steps);
        RunDir::new(&out).read_metrics().expect("metrics").iter().map(|r| r.stats.loss).collect::<Vec<f64>>()
    };
    let flex = curve(&Device::flex(), "flex");
    let theirs = curve(other, name);
    eprintln!("flex    {flex:?}\n{name} {theirs:?}");
    assert_eq!(flex.len(), steps);
    assert_eq!(theirs.len(), steps);
    assert!(theirs.iter().all(|l| l.is_finite()));
    (flex, theirs, dir)
}
