//! Cross-backend agreement checks, shared by the flex/LibTorch tests (`backends.rs`, feature `tch`) and the
//! flex/wgpu tests (`backends_wgpu.rs`, feature `wgpu`): each check runs the same computation on flex and on the
//! `other` device from the same weights and inputs and asserts float32 agreement.
//!
//! Both sides start from the same weights: they are drawn on flex and forked to the other backend
//! (`ModelConfig::init_portable`, `svaclr_models::materialize`), because the backends' random generators differ.
//!
//! Tolerances are float32's: every comparison is `max |other - flex| <= rtol * max |flex|` (infinity norms), with
//! rtol about 100 (losses) to 1000 (deep networks) times f32's epsilon of 1.2e-7, because the backends' kernels sum in
//! different orders; a wrong kernel, layout or BatchNorm mode gives errors of order 1. Where the computation itself
//! amplifies rounding (a gradient through a deep network in training mode, a parameter's change after a step), the
//! bound is instead a multiple of flex's own noise floor: how far the same quantity moves on flex when the input is
//! nudged by a few units in the last place ([`NUDGE_SCALES`]). Each check prints its measured errors and floors;
//! docs/backends.md lists them.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use svaclr_loss::{KernelPath, LambdaMode, cross_affinity, info_nce, soft_info_nce};
use svaclr_models::{AudioEncoderConfig, SizePreset, VideoArch, VideoEncoder, VideoEncoderConfig, materialize};
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

/// Every float parameter (running statistics included), in visiting order, named by its module path.
pub fn params<M: Module>(m: &M) -> Vec<(String, Vec<f32>)> {
    visit_floats(m, None)
}

/// The gradient in `grads` of every float parameter of `m` that has one, in visiting order, named by module path.
pub fn param_grads<M: Module>(m: &M, grads: &burn::tensor::Gradients) -> Vec<(String, Vec<f32>)> {
    visit_floats(m, Some(grads))
}

/// The values (`grads` None) or the gradients of `m`'s float parameters.
fn visit_floats<M: Module>(m: &M, grads: Option<&burn::tensor::Gradients>) -> Vec<(String, Vec<f32>)> {
    struct Collect<'a> {
        path: Vec<String>,
        grads: Option<&'a burn::tensor::Gradients>,
        out: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let value = match self.grads {
                None => Some(p.val()),
                Some(g) => p.val().grad(g),
            };
            if let Some(v) = value {
                self.out.push((self.path.join("."), host(v)));
            }
        }
    }
    let mut c = Collect { path: Vec::new(), grads, out: Vec::new() };
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

/// Relative nudges of an input for the noise floor of [`one_sgd_step_agrees`], in increasing order: `2^-22` (a few
/// units in the last place of float32) times each of these. The floor takes them in order up to the first that moves
/// flex's forward as far as the other backend's rounding does, and no further.
pub const NUDGE_SCALES: [f64; 4] = [1.0, 4.0, 16.0, 64.0];

/// A gradient may differ from flex's by this many times flex's own noise floor.
pub const FLOOR_FACTOR: f64 = 4.0;

/// Forward (inference: running statistics) and training forward (batch statistics) + backward, for each encoder at
/// the tiny preset, on flex and on `other` (a plain device; autodiff is added here).
///
/// The gradient to the input of a whole video encoder in training mode is ill-conditioned: BatchNorm over few values
/// per channel amplifies rounding, and a ReLU whose input sits within rounding of 0 switches its gradient on or off.
/// Measured on flex alone (tiny R(2+1)D-18, `[2, 3, 8, 32, 32]`): nudging the input by 1e-7, 1e-6 and 1e-5
/// (relative) moves that gradient by 2.7e-5, 8.1e-5 and 1.9e-2 (the last a ReLU switching); at batch 8 a 1e-7 nudge
/// already moves it by 2.7e-2. wgpu's float32 rounding moves it by the same 1.8e-2. So the video encoders' backward
/// is compared stage by stage ([`video_stages_agree`]: the stem, then each residual block, from the same input and
/// the same output weighting), where it is well-conditioned and `rtol` holds; the whole encoder's input gradient is
/// printed beside flex's own move under a nudge, for the record. The audio encoder, well-conditioned, is compared
/// whole.
pub fn encoders_agree(other: &Device, inputs: &EncoderInputs, rtol: f64) {
    let flex = Device::flex();
    for arch in [VideoArch::R2Plus1d18, VideoArch::R3d18] {
        flex.seed(11);
        let enc = VideoEncoderConfig::new(arch, SizePreset::Tiny).init(&flex.clone().autodiff());
        materialize(&enc);
        let x = Tensor::<5>::random(inputs.video, Distribution::Normal(0.0, 1.0), &flex);
        let want = host(enc.valid().forward(x.clone()));
        let got = host(enc.clone().fork(other).valid().forward(to(&x, other)));
        assert_close(&format!("{arch:?} forward (eval)"), &got, &want, rtol);
        let (yf, gf, w) = input_gradient(&flex, &x, None, |dev, x| enc.clone().fork(dev).forward(x));
        let (yo, go, _) = input_gradient(other, &x, Some(&w), |dev, x| enc.clone().fork(dev).forward(x));
        assert_close(&format!("{arch:?} forward (train)"), &yo, &yf, rtol);
        let (_, gn, _) =
            input_gradient(&flex, &nudged(&x, 64.0, 2000), Some(&w), |dev, x| enc.clone().fork(dev).forward(x));
        eprintln!(
            "{arch:?} whole encoder d (w . features) / d input: relative error {:.2e} (not asserted; flex against its \
             input nudged by 1.5e-5: {:.2e})",
            rel_err(&go, &gf),
            rel_err(&gn, &gf)
        );
        video_stages_agree(&format!("{arch:?}"), &enc, other, &x, rtol);
    }
    flex.seed(12);
    let enc = AudioEncoderConfig::new(SizePreset::Tiny).init(&flex.clone().autodiff());
    materialize(&enc);
    let x = Tensor::<4>::random(inputs.audio, Distribution::Normal(0.0, 1.0), &flex);
    let want = host(enc.valid().forward(x.clone()));
    let got = host(enc.clone().fork(other).valid().forward(to(&x, other)));
    assert_close("audio ResNet-9 forward (eval)", &got, &want, rtol);
    let (yf, gf, w) = input_gradient(&flex, &x, None, |dev, x| enc.clone().fork(dev).forward(x));
    let (yo, go, _) = input_gradient(other, &x, Some(&w), |dev, x| enc.clone().fork(dev).forward(x));
    assert_close("audio ResNet-9 forward (train)", &yo, &yf, rtol);
    assert_close("audio ResNet-9 d (w . features) / d input", &go, &gf, rtol);
}

/// Relative nudge of an input by `2^-22 * scale` per value, uniformly signed (a draw of flex's generator at `seed`):
/// `scale` 1 is a few units in the last place of float32.
pub fn nudged<const D: usize>(x: &Tensor<D>, scale: f64, seed: u64) -> Tensor<D> {
    let flex = Device::flex();
    flex.seed(seed);
    let u = Tensor::<D>::random(x.shape(), Distribution::Uniform(-1.0, 1.0), &flex);
    x.clone() * (u * (2f64.powi(-22) * scale) + 1.0)
}

/// Training-mode `f(device, x)` on `dev` and the gradient to `x` of `sum(w * f(x))` (`w` drawn on flex when `None`;
/// the gradient of a plain sum through training-mode BatchNorm is zero up to rounding: it would compare noise).
/// Returns the output, the input gradient and `w`.
fn input_gradient<const D: usize, const K: usize>(
    dev: &Device,
    x: &Tensor<D>,
    w: Option<&Tensor<K>>,
    f: impl Fn(&Device, Tensor<D>) -> Tensor<K>,
) -> (Vec<f32>, Vec<f32>, Tensor<K>) {
    let ad = dev.clone().autodiff();
    let xa = to(x, &ad).require_grad();
    let y = f(&ad, xa.clone());
    let w =
        w.cloned().unwrap_or_else(|| Tensor::<K>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex()));
    let g = (y.clone() * to(&w, &ad)).sum().backward();
    (host(y), host(xa.grad(&g).expect("input grad")), w)
}

/// The video encoder's backward, stage by stage: for the stem and each residual block in turn, flex and `other` run
/// that stage alone in training mode from the same input (flex's output of the stages before it) with the same
/// random weighting of its output; output, input gradient and every parameter gradient of the stage agree to `rtol`.
fn video_stages_agree(what: &str, enc: &VideoEncoder, other: &Device, x: &Tensor<5>, rtol: f64) {
    let blocks: Vec<&svaclr_models::video_resnet::VideoBlock> =
        enc.layer1.iter().chain(&enc.layer2).chain(&enc.layer3).chain(&enc.layer4).collect();
    let stage = |e: &VideoEncoder, s: usize, h: Tensor<5>| -> Tensor<5> {
        if s == 0 {
            e.stem.forward(h)
        } else {
            [&e.layer1, &e.layer2, &e.layer3, &e.layer4].into_iter().flatten().nth(s - 1).expect("block").forward(h)
        }
    };
    let run = |dev: &Device, s: usize, h: &Tensor<5>, w: Option<&Tensor<5>>| {
        let ad = dev.clone().autodiff();
        let e = enc.clone().fork(&ad);
        let ha = to(h, &ad).require_grad();
        let y = stage(&e, s, ha.clone());
        let w = w
            .cloned()
            .unwrap_or_else(|| Tensor::<5>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex()));
        let g = (y.clone() * to(&w, &ad)).sum().backward();
        let grads: Vec<Vec<f32>> = param_grads(&e, &g).into_iter().map(|(_, v)| v).collect();
        (y.clone().detach(), host(y), host(ha.grad(&g).expect("stage input grad")), grads, w)
    };
    let mut h = x.clone();
    let (mut worst, mut params) = (0.0f64, 0usize);
    for s in 0..=blocks.len() {
        let (next, yf, gf, pf, w) = run(&Device::flex(), s, &h, None);
        let (_, yo, go, po, _) = run(other, s, &h, Some(&w));
        let name = if s == 0 { format!("{what} stem") } else { format!("{what} block {s}") };
        assert_eq!(pf.len(), po.len(), "{name}: parameter gradients on flex and off it");
        assert!(!pf.is_empty(), "{name}: no parameter gradient");
        for (label, a, b) in [("output", &yo, &yf), ("input gradient", &go, &gf)] {
            let e = rel_err(a, b);
            assert!(e <= rtol, "{name} {label}: differs from flex by {e:e} (relative), more than {rtol:e}");
            worst = worst.max(e);
        }
        for (k, (a, b)) in po.iter().zip(&pf).enumerate() {
            let e = rel_err(a, b);
            assert!(
                e <= rtol,
                "{name} parameter gradient {k}: differs from flex by {e:e} (relative), more than {rtol:e}"
            );
            worst = worst.max(e);
        }
        params += pf.len();
        h = Tensor::from_data(next.into_data(), &Device::flex());
    }
    eprintln!(
        "{what} stage by stage (stem + {} blocks; outputs, input gradients and {params} parameter gradients): worst \
         relative error {worst:.2e} (bound {rtol:.0e})",
        blocks.len()
    );
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
/// Changes are compared against the largest change in the model (a tensor-by-tensor relative error would be dominated
/// by the projectors' first biases, which sit in front of a BatchNorm: their true gradient is zero, so both backends
/// move them by rounding noise of about 1e-9 of the largest change). The bound per tensor is `rtol`, or 4 times how far
/// flex moves that tensor from itself (float32's own conditioning of that step), whichever is larger. Flex against
/// itself is measured twice: the same batch with its clips in another order (the same sums in another order), and the
/// same batch with every video value nudged by a few units in the last place, then by 4, 16 and 64 times that, up to
/// the first nudge that moves flex's embeddings (before the step) at least as far as the other backend's rounding moves
/// them (so flex is perturbed no more than the other backend perturbs it). With RGB input both spreads are 1e-5 to
/// 4e-5; with `temporal_residual` the nudge moves the stem's first convolution by 1.7e-2 (its true gradient nearly
/// cancels, docs/backends.md) while the clip order may move it by only 1e-5, depending on the CPU's gemm blocking
/// (measured 8e-6 on an AVX-512 Xeon, where tch differed by 5.5e-4).
pub fn one_sgd_step_agrees(other: &Device, inputs: &[&str], rtol: f64) {
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
            let embeddings = [host(out.z_audio.clone()), host(out.z_video.clone())].concat();
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
            (value, before, change, embeddings)
        };
        let identity: Vec<usize> = (0..clips).collect();
        // The same video, each value moved by 2^-22 (a few units in the last place of float32) times each of
        // NUDGE_SCALES in turn (two draws each), up to the first that moves flex's embeddings as far as `other` does:
        // how far float32 rounding alone moves a tensor's change is itself a noisy quantity (one draw measured 2.3e-3
        // for the cancelling stem on an AMD EPYC, 1.7e-2 on a Xeon), so the bound takes the largest.
        let (lf, bf, cf, zf) = step(&flex.clone().autodiff(), &identity, &video);
        let (_, _, cp, _) = step(&flex.clone().autodiff(), &[2, 0, 3, 1], &video);
        let (lo, bo, co, zo) = step(&other.clone().autodiff(), &identity, &video);
        let moved = rel_err(&zo, &zf);
        let mut nudged_changes: Vec<Vec<(String, Vec<f32>)>> = Vec::new();
        for (k, scale) in NUDGE_SCALES.iter().enumerate() {
            let mut reached = false;
            for draw in 0..2 {
                let seed = 1000 + 2 * k as u64 + draw;
                let (_, _, c, z) = step(&flex.clone().autodiff(), &identity, &nudged(&video, *scale, seed));
                nudged_changes.push(c);
                reached |= rel_err(&z, &zf) >= moved;
            }
            if reached {
                break;
            }
        }
        eprintln!(
            "{input}: embeddings {moved:.2e} off flex; flex's floor from {} nudge(s) of the input",
            nudged_changes.len()
        );
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
            let bound = rtol.max(FLOOR_FACTOR * intrinsic);
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
