//! Integration tests of svaclr-loss: parity with the PyTorch reference fixtures (both implementations), the
//! invariants of the losses (proptest), dispatch and fallback, errors, config and statistics.
//!
//! Fixtures: the folder named by `SVACLR_REFERENCE_DIR`, else `<workspace>/tests/fixtures`. New cases can be made
//! with `python scripts/reference/softinfonce_reference.py OUT --seed S` (needs torch) and checked with
//! `SVACLR_REFERENCE_DIR=OUT cargo test -p svaclr-loss --test loss parity`.

use std::path::PathBuf;

use burn::tensor::{DType, Device, Tensor, TensorData};
use proptest::prelude::*;
use svaclr_loss::{
    Anchors, KernelPath, LambdaMode, LossConfig, LossError, LossKind, cross_affinity, fused_supported, info_nce,
    loss_stats, soft_info_nce,
};

// ---------------------------------------------------------------------------------------------------------------
// helpers

fn device() -> Device {
    Device::flex().autodiff()
}

fn tensor(data: &[f32], shape: [usize; 3], dev: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), dev)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 read-back")
}

fn scalar(t: Tensor<1>) -> f64 {
    host(t)[0] as f64
}

/// `max |got - want| <= rtol * max |want|` (the arrays' infinity norm as the scale).
fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64) {
    assert_close_abs(what, got, want, rtol, 0.0);
}

/// `max |got - want| <= rtol * max |want| + atol`.
fn assert_close_abs(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let err = got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    assert!(err <= rtol * scale + atol, "{what}: max abs error {err:e} > {rtol:e} * {scale:e} + {atol:e}");
}

fn assert_scalar(what: &str, got: f64, want: f64, rtol: f64) {
    assert!((got - want).abs() <= rtol * want.abs(), "{what}: {got} vs {want} (rel {:e})", ((got - want) / want).abs());
}

const PATHS: [KernelPath; 2] = [KernelPath::Fused, KernelPath::Composed];

// ---------------------------------------------------------------------------------------------------------------
// fixtures

fn fixture_dir() -> PathBuf {
    match std::env::var_os("SVACLR_REFERENCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"),
    }
}

struct Fixture(serde_json::Value);

impl Fixture {
    fn load(name: &str) -> Self {
        let path = fixture_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display())))
    }

    fn f64(&self, key: &str) -> f64 {
        self.0[key].as_f64().unwrap_or_else(|| panic!("fixture field {key} is not a number"))
    }

    fn usize(&self, key: &str) -> usize {
        self.f64(key) as usize
    }

    fn array(&self, key: &str) -> Vec<f64> {
        fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
            match v {
                serde_json::Value::Array(items) => items.iter().for_each(|x| flatten(x, out)),
                x => out.push(x.as_f64().expect("numeric array")),
            }
        }
        let mut out = Vec::new();
        flatten(&self.0[key], &mut out);
        assert!(!out.is_empty(), "fixture field {key} is missing or empty");
        out
    }

    fn tensor(&self, key: &str, shape: [usize; 3], dev: &Device) -> Tensor<3> {
        let v: Vec<f32> = self.array(key).iter().map(|&x| x as f32).collect();
        tensor(&v, shape, dev).require_grad()
    }

    fn vnd(&self) -> [usize; 3] {
        [self.usize("V"), self.usize("N"), self.usize("D")]
    }
}

/// InfoNCE value and gradients from the fixture's inputs, on one path, compared with the fixture.
fn check_info_nce_fixture(name: &str, path: KernelPath) {
    check_info_nce_fixture_on(name, path, &device());
}

fn check_info_nce_fixture_on(name: &str, path: KernelPath, dev: &Device) {
    let fx = Fixture::load(name);
    let dev = dev.clone();
    let shape = fx.vnd();
    let za = fx.tensor("za", shape, &dev);
    let zv = fx.tensor("zv", shape, &dev);
    let loss = info_nce(za.clone(), zv.clone(), fx.f64("eta"), path).expect("valid inputs");
    assert_scalar(&format!("{name} {path:?} info_nce"), scalar(loss.clone()), fx.f64("info_nce"), 1e-5);
    let grads = loss.backward();
    assert_close(
        &format!("{name} {path:?} d/dza"),
        &host(za.grad(&grads).expect("za grad")),
        &fx.array("info_nce_grad_za"),
        1e-5,
    );
    assert_close(
        &format!("{name} {path:?} d/dzv"),
        &host(zv.grad(&grads).expect("zv grad")),
        &fx.array("info_nce_grad_zv"),
        1e-5,
    );
}

/// SoftInfoNCE with lambda from the cross-affinity of the fixture's ya, yv, on one path.
fn check_soft_fixture(name: &str, path: KernelPath) {
    check_soft_fixture_on(name, path, &device());
}

fn check_soft_fixture_on(name: &str, path: KernelPath, dev: &Device) {
    let fx = Fixture::load(name);
    let dev = dev.clone();
    let shape = fx.vnd();
    let [v, n, _] = shape;
    let yshape = [v, n, fx.usize("Dy")];
    let za = fx.tensor("za", shape, &dev);
    let zv = fx.tensor("zv", shape, &dev);
    let ya = fx.tensor("ya", yshape, &dev);
    let yv = fx.tensor("yv", yshape, &dev);
    let mode = match fx.0["lambda_mode"].as_str() {
        Some("all") => LambdaMode::All,
        Some("row") => LambdaMode::Row,
        other => panic!("unknown lambda_mode {other:?}"),
    };
    let detach = fx.0["detach_lambda"].as_bool().expect("detach_lambda");
    let lambda = cross_affinity(ya.clone(), yv.clone(), fx.f64("tau_lambda"), mode, detach).expect("cross_affinity");
    assert_close(&format!("{name} lambda"), &host(lambda.clone()), &fx.array("lambda"), 1e-5);
    let loss = soft_info_nce(za.clone(), zv.clone(), lambda, fx.f64("eta"), path).expect("valid inputs");
    assert_scalar(&format!("{name} {path:?} soft_info_nce"), scalar(loss.clone()), fx.f64("soft_info_nce"), 1e-5);
    let grads = loss.backward();
    assert_close(
        &format!("{name} {path:?} d/dza"),
        &host(za.grad(&grads).expect("za grad")),
        &fx.array("soft_grad_za"),
        1e-5,
    );
    assert_close(
        &format!("{name} {path:?} d/dzv"),
        &host(zv.grad(&grads).expect("zv grad")),
        &fx.array("soft_grad_zv"),
        1e-5,
    );
    for (key, t) in [("soft_grad_ya", &ya), ("soft_grad_yv", &yv)] {
        let want = fx.array(key);
        match t.grad(&grads) {
            Some(g) => assert_close(&format!("{name} {path:?} {key}"), &host(g), &want, 1e-5),
            // A detached lambda gives ya / yv no gradient at all; the reference then stores zeros.
            None => assert!(detach && want.iter().all(|&w| w == 0.0), "{name} {path:?}: {key} missing"),
        }
    }
}

// PyTorch (scripts/reference/softinfonce_reference.py, float64), V = 1:
//   a = F.normalize(za, dim=-1).reshape(V*N, D); v = F.normalize(zv, dim=-1).reshape(V*N, D)
//   logits = a @ v.T / eta
//   l_av = logsumexp(cat([pos, logits[rows].masked_fill(same_clip, -inf)]), 1) - pos   (and l_va on logits.T)
//   loss = stack([0.5 * (l_av + l_va)]).mean(); ga, gv = torch.autograd.grad(loss, [za, zv])
#[test]
fn parity_baseline_v1_info_nce() {
    for path in PATHS {
        check_info_nce_fixture("baseline_v1", path);
    }
}

// PyTorch, V = 2 (the other view of clip i is masked out of the denominators):
//   loss = info_nce(za, zv, eta)   # mean over i, (p, q) in {0,1}^2, both directions
//   ga, gv = torch.autograd.grad(loss, [za, zv])
#[test]
fn parity_speed_v2_info_nce() {
    for path in PATHS {
        check_info_nce_fixture("speed_v2", path);
    }
}

// PyTorch, V = 2, lambda "all", detached:
//   a = F.normalize(ya, dim=-1).permute(1, 0, 2); v = F.normalize(yv, dim=-1).permute(1, 0, 2)
//   s = a @ v.transpose(1, 2) / tau; lam = (4 * torch.softmax(s.reshape(n, 4), -1).reshape(n, 2, 2)).detach()
//   soft = info_nce(za, zv, eta, lam)   # terms.append(lam[:, p, q] * 0.5 * (l_av + l_va))
//   grads = torch.autograd.grad(soft, [za, zv, ya, yv], allow_unused=True)   # ya, yv: None -> zeros
#[test]
fn parity_speed_v2_soft_info_nce_detached() {
    for path in PATHS {
        check_soft_fixture("speed_v2", path);
    }
}

// PyTorch, V = 2, lambda "row", NOT detached (gradients flow into ya, yv through lambda):
//   lam = 2 * torch.softmax(s, -1)
//   soft = info_nce(za, zv, eta, lam); grads = torch.autograd.grad(soft, [za, zv, ya, yv])
#[test]
fn parity_soft_row_nodetach() {
    for path in PATHS {
        check_soft_fixture("soft_row_nodetach", path);
    }
}

// PyTorch, the same fixtures without weights, for the soft fixtures' InfoNCE fields:
//   loss = info_nce(za, zv, eta); ga, gv = torch.autograd.grad(loss, [za, zv])
#[test]
fn parity_soft_row_nodetach_info_nce() {
    for path in PATHS {
        check_info_nce_fixture("soft_row_nodetach", path);
    }
}

// Regression (found by proptest): at a small temperature a positive logit (200) dominates its row by more than
// f32's exp range; a log-sum-exp shifted by a maximum that includes the positives underflowed the negatives.
// PyTorch (scripts/reference/softinfonce_reference.py, float64):
//   za = torch.tensor([0, 0, 0, 0, 0, -1.1700017, 0, 0]).reshape(2, 2, 2)
//   zv = torch.tensor([0, -1.0283194, 0, 0, 0, 0, 0, 0]).reshape(2, 2, 2)
//   info_nce(za, zv, 0.005, torch.full((2, 2, 2), 0.1))  # 0.09612857525845962
#[test]
fn small_temperature_with_a_dominant_positive() {
    let dev = device();
    let za = [0.0, 0.0, 0.0, 0.0, 0.0, -1.170_001_7, 0.0, 0.0];
    let zv = [0.0, -1.028_319_4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    for path in PATHS {
        let a = tensor(&za, [2, 2, 2], &dev).require_grad();
        let b = tensor(&zv, [2, 2, 2], &dev).require_grad();
        let loss = soft_info_nce(a.clone(), b.clone(), tensor(&[0.1; 8], [2, 2, 2], &dev), 0.005, path).expect("valid");
        assert_scalar(&format!("{path:?}"), scalar(loss.clone()), 0.096_128_575_258_459_62, 1e-5);
        let grads = loss.backward();
        for g in [a.grad(&grads), b.grad(&grads)] {
            assert!(host(g.expect("gradient")).iter().all(|x| x.is_finite()), "{path:?}");
        }
    }
}

// The same PyTorch reference on LibTorch (`--features tch`): the default dispatch must take the composed path there
// (the fused op is flex-only) and still match, with gradients through autodiff on LibTorch.
#[cfg(feature = "tch")]
#[test]
#[allow(deprecated)] // Device::libtorch() is marked deprecated upstream
fn parity_on_libtorch_through_the_default_dispatch() {
    let dev = Device::libtorch().autodiff();
    assert!(!fused_supported(&Tensor::<3>::zeros([1, 2, 2], &dev)));
    for name in ["baseline_v1", "speed_v2", "soft_row_nodetach"] {
        check_info_nce_fixture_on(name, KernelPath::Auto, &dev);
    }
    for name in ["speed_v2", "soft_row_nodetach"] {
        check_soft_fixture_on(name, KernelPath::Auto, &dev);
    }
    assert!(matches!(
        info_nce(Tensor::zeros([1, 2, 2], &dev), Tensor::zeros([1, 2, 2], &dev), 0.1, KernelPath::Fused),
        Err(LossError::FusedUnavailable { .. })
    ));
}

// ---------------------------------------------------------------------------------------------------------------
// dispatch, fallback, errors

#[test]
fn fused_runs_on_flex_with_and_without_autodiff() {
    let za: Vec<f32> = (0..2 * 4 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    let zv: Vec<f32> = (0..2 * 4 * 3).map(|i| (i as f32 * 0.91).cos()).collect();
    let mut values = Vec::new();
    for dev in [Device::flex(), Device::flex().autodiff()] {
        let a = tensor(&za, [2, 4, 3], &dev);
        assert!(fused_supported(&a));
        let b = tensor(&zv, [2, 4, 3], &dev);
        values.push(scalar(info_nce(a, b, 0.1, KernelPath::Fused).expect("fused on flex")));
    }
    assert_eq!(values[0], values[1]);
}

#[test]
fn upstream_gradients_scale_the_fused_backward() {
    // The fused backward stores d loss / d input and multiplies by the incoming gradient: check a factor != 1 and a
    // loss used twice (the gradients of both uses add up).
    let dev = device();
    let za: Vec<f32> = (0..2 * 6 * 5).map(|i| (i as f32 * 0.61).sin()).collect();
    let zv: Vec<f32> = (0..2 * 6 * 5).map(|i| (i as f32 * 0.23).cos()).collect();
    let lam: Vec<f32> = (0..6 * 4).map(|i| 0.5 + (i % 5) as f32 * 0.3).collect();
    let mut out = Vec::new();
    for path in PATHS {
        let a = tensor(&za, [2, 6, 5], &dev).require_grad();
        let b = tensor(&zv, [2, 6, 5], &dev).require_grad();
        let l = tensor(&lam, [6, 2, 2], &dev).require_grad();
        let loss = soft_info_nce(a.clone(), b.clone(), l.clone(), 0.1, path).expect("valid");
        let total = loss.clone().mul_scalar(2.5) + loss.clone().powf_scalar(2.0);
        let grads = total.backward();
        let factor = 2.5 + 2.0 * scalar(loss) as f32;
        out.push((
            factor,
            host(a.grad(&grads).expect("za")),
            host(b.grad(&grads).expect("zv")),
            host(l.grad(&grads).expect("lambda")),
        ));
    }
    let (f, c) = (&out[0], &out[1]);
    let wide = |x: &Vec<f32>| x.iter().map(|&y| y as f64).collect::<Vec<_>>();
    assert_close("scaled d/dza", &f.1, &wide(&c.1), 1e-5);
    assert_close("scaled d/dzv", &f.2, &wide(&c.2), 1e-5);
    assert_close("scaled d/dlambda", &f.3, &wide(&c.3), 1e-5);
    // And against the unscaled gradient times the chain-rule factor.
    let a = tensor(&za, [2, 6, 5], &dev).require_grad();
    let b = tensor(&zv, [2, 6, 5], &dev).require_grad();
    let l = tensor(&lam, [6, 2, 2], &dev);
    let grads = soft_info_nce(a.clone(), b, l, 0.1, KernelPath::Fused).expect("valid").backward();
    let unit = host(a.grad(&grads).expect("za"));
    assert_close("factor * unit", &f.1, &unit.iter().map(|&g| (g * f.0) as f64).collect::<Vec<_>>(), 1e-5);
}

#[test]
fn unsupported_dtype_falls_back_to_the_composed_path() {
    let dev = Device::flex();
    let za: Vec<f64> = (0..2 * 5 * 4).map(|i| (i as f64 * 0.37).sin()).collect();
    let zv: Vec<f64> = (0..2 * 5 * 4).map(|i| (i as f64 * 0.91).cos()).collect();
    let a64 = Tensor::<3>::from_data(TensorData::new(za.clone(), [2, 5, 4]), (&dev, DType::F64));
    let v64 = Tensor::<3>::from_data(TensorData::new(zv.clone(), [2, 5, 4]), (&dev, DType::F64));
    assert_eq!(a64.dtype(), DType::F64);
    assert!(!fused_supported(&a64));
    // Forcing the fused kernel is an error, not a panic; Auto falls back and agrees with f32 on the fused path.
    assert!(matches!(
        info_nce(a64.clone(), v64.clone(), 0.1, KernelPath::Fused),
        Err(LossError::FusedUnavailable { .. })
    ));
    let fallback = info_nce(a64, v64, 0.1, KernelPath::Auto)
        .expect("info_nce")
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("read back")[0];
    let za32: Vec<f32> = za.iter().map(|&x| x as f32).collect();
    let zv32: Vec<f32> = zv.iter().map(|&x| x as f32).collect();
    let fused = scalar(
        info_nce(tensor(&za32, [2, 5, 4], &dev), tensor(&zv32, [2, 5, 4], &dev), 0.1, KernelPath::Auto)
            .expect("info_nce"),
    );
    assert_scalar("f64 fallback vs f32 fused", fused, fallback, 1e-5);
}

#[test]
fn lambda_from_a_plain_device_is_a_constant_for_autodiff_inputs() {
    let dev = device();
    let za = tensor(&[0.3, -1.0, 0.2, 0.5, 0.9, 0.1, -0.4, 0.7, 0.2, 0.0, 0.6, -0.8], [1, 4, 3], &dev).require_grad();
    let zv = tensor(&[0.1, 0.4, -0.2, 0.7, -0.3, 0.5, 0.2, 0.2, 0.9, -0.6, 0.1, 0.3], [1, 4, 3], &dev).require_grad();
    let lam = tensor(&[0.5, 1.5, 1.0, 2.0], [4, 1, 1], &Device::flex());
    let mut out = Vec::new();
    for path in PATHS {
        let loss = soft_info_nce(za.clone(), zv.clone(), lam.clone(), 0.2, path).expect("valid");
        let grads = loss.clone().backward();
        out.push((scalar(loss), host(za.grad(&grads).expect("za grad"))));
    }
    assert_scalar("fused vs composed", out[0].0, out[1].0, 1e-6);
    assert_close("fused vs composed grad", &out[0].1, &out[1].1.iter().map(|&x| x as f64).collect::<Vec<_>>(), 1e-5);
}

#[test]
fn bad_inputs_are_errors() {
    let dev = Device::flex();
    let z = tensor(&[1.0; 2 * 3 * 4], [2, 3, 4], &dev);
    let other = tensor(&[1.0; 2 * 3 * 5], [2, 3, 5], &dev);
    assert!(matches!(info_nce(z.clone(), other, 0.1, KernelPath::Auto), Err(LossError::Shape { what: "zv", .. })));
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            info_nce(z.clone(), z.clone(), t, KernelPath::Auto),
            Err(LossError::InvalidTemperature { field: "temperature", .. })
        ));
    }
    let bad_lambda = tensor(&[1.0; 3 * 2], [3, 2, 1], &dev);
    assert!(matches!(
        soft_info_nce(z.clone(), z.clone(), bad_lambda, 0.1, KernelPath::Auto),
        Err(LossError::Shape { what: "lambda", .. })
    ));
    let empty = Tensor::<3>::zeros([2, 0, 4], &dev);
    assert!(matches!(info_nce(empty.clone(), empty, 0.1, KernelPath::Auto), Err(LossError::Empty { .. })));
    let ya = tensor(&[1.0; 2 * 3 * 4], [2, 3, 4], &dev);
    let yv = tensor(&[1.0; 2 * 3 * 6], [2, 3, 6], &dev);
    let err = cross_affinity(ya, yv, 0.1, LambdaMode::All, true).expect_err("widths differ");
    assert!(err.to_string().contains("identity mapping"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------------
// config

#[test]
fn config_defaults_serde_and_validation() {
    let c = LossConfig::default();
    assert_eq!(
        (c.kind, c.temperature, c.lambda_temperature, c.lambda_mode, c.detach_lambda),
        (LossKind::InfoNce, 0.07, 0.1, LambdaMode::All, true)
    );
    let json = serde_json::to_string(&c).expect("serialise");
    assert_eq!(
        json,
        r#"{"kind":"info_nce","temperature":0.07,"lambda_temperature":0.1,"lambda_mode":"all","detach_lambda":true}"#
    );
    let back: LossConfig = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, c);
    let soft: LossConfig = serde_json::from_str(
        r#"{"kind":"soft_info_nce","temperature":0.1,"lambda_temperature":0.5,"lambda_mode":"row","detach_lambda":false}"#,
    )
    .expect("parse");
    assert_eq!((soft.kind, soft.lambda_mode), (LossKind::SoftInfoNce, LambdaMode::Row));
    assert!(
        serde_json::from_str::<LossConfig>(&json.replace("\"detach_lambda\"", "\"typo\":1,\"detach_lambda\"")).is_err()
    );
    assert!(c.validate().is_ok());
    let bad = LossConfig { lambda_temperature: 0.0, ..c.clone() };
    assert!(matches!(bad.validate(), Err(LossError::InvalidTemperature { field: "lambda_temperature", .. })));
    let bad = LossConfig { temperature: f64::NAN, ..c };
    assert!(matches!(bad.validate(), Err(LossError::InvalidTemperature { field: "temperature", .. })));
}

#[test]
fn config_loss_uses_the_configured_kind() {
    let dev = Device::flex();
    let za = tensor(&(0..2 * 4 * 3).map(|i| (i as f32).sin()).collect::<Vec<_>>(), [2, 4, 3], &dev);
    let zv = tensor(&(0..2 * 4 * 3).map(|i| (i as f32 * 1.3).cos()).collect::<Vec<_>>(), [2, 4, 3], &dev);
    let ya = tensor(&(0..2 * 4 * 5).map(|i| (i as f32 * 0.7).sin()).collect::<Vec<_>>(), [2, 4, 5], &dev);
    let yv = tensor(&(0..2 * 4 * 5).map(|i| (i as f32 * 0.2).cos()).collect::<Vec<_>>(), [2, 4, 5], &dev);
    let cfg = LossConfig { kind: LossKind::SoftInfoNce, ..LossConfig::default() };
    let (loss, lambda) = cfg.loss(za.clone(), zv.clone(), Some((ya.clone(), yv.clone())), Anchors::All).expect("valid");
    let lambda = lambda.expect("soft loss returns lambda");
    let direct = soft_info_nce(
        za.clone(),
        zv.clone(),
        cross_affinity(ya, yv, 0.1, LambdaMode::All, true).expect("cross_affinity"),
        0.07,
        KernelPath::Auto,
    )
    .expect("soft_info_nce");
    assert_eq!(scalar(loss), scalar(direct));
    assert_eq!(lambda.dims(), [4, 2, 2]);
    assert!(matches!(cfg.loss(za.clone(), zv.clone(), None, Anchors::All), Err(LossError::MissingAffinity)));
    let (plain, none) = LossConfig::default().loss(za.clone(), zv.clone(), None, Anchors::All).expect("valid");
    assert!(none.is_none());
    assert_eq!(scalar(plain), scalar(info_nce(za, zv, 0.07, KernelPath::Auto).expect("info_nce")));
}

/// Gathered negatives: the shares of a batch (each rank's own clips as anchors, every clip as a negative) average to
/// the loss over the whole batch, and their gradients sum to `world` times its gradient.
#[test]
fn anchor_shares_average_to_the_whole_batch_loss() {
    let dev = device();
    let (v, n, d) = (2, 6, 3);
    let data = |k: f32, w: usize| (0..v * n * w).map(|i| (i as f32 * k).sin()).collect::<Vec<f32>>();
    let (za, zv, ya, yv) = (data(0.37, d), data(1.1, d), data(0.61, 5), data(0.23, 5));
    for kind in [LossKind::InfoNce, LossKind::SoftInfoNce] {
        let cfg = LossConfig { kind, ..LossConfig::default() };
        let run = |anchors: Anchors| {
            let a = tensor(&za, [v, n, d], &dev).require_grad();
            let b = tensor(&zv, [v, n, d], &dev).require_grad();
            let aff = Some((tensor(&ya, [v, n, 5], &dev), tensor(&yv, [v, n, 5], &dev)));
            let (loss, _) = cfg.loss(a.clone(), b.clone(), aff, anchors).expect("valid");
            let value = scalar(loss.clone());
            let g = loss.backward();
            (value, host(a.grad(&g).expect("grad")))
        };
        let (whole, g_whole) = run(Anchors::All);
        for world in [2, 3] {
            let shares: Vec<(f64, Vec<f32>)> = (0..world).map(|rank| run(Anchors::Share { rank, world })).collect();
            let mean = shares.iter().map(|s| s.0).sum::<f64>() / world as f64;
            assert!((mean - whole).abs() < 1e-5, "{kind:?} world {world}: mean of shares {mean} vs {whole}");
            for (i, g) in g_whole.iter().enumerate() {
                let sum: f32 = shares.iter().map(|s| s.1[i]).sum();
                assert!((sum - world as f32 * g).abs() < 1e-5, "{kind:?} world {world}: gradient {i}: {sum} vs {g}");
            }
            // One share alone is not the whole loss (so the weights really select anchors).
            assert!((shares[0].0 - whole).abs() > 1e-4, "{kind:?}: share 0 equals the whole loss");
        }
        let bad = cfg.loss(
            tensor(&za, [v, n, d], &dev),
            tensor(&zv, [v, n, d], &dev),
            None,
            Anchors::Share { rank: 0, world: 4 },
        );
        assert!(bad.is_err(), "6 clips do not split into 4 shares");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// cross-affinity and stats

#[test]
fn cross_affinity_modes_normalise_as_documented() {
    let dev = Device::flex();
    let ya = tensor(&(0..2 * 6 * 5).map(|i| (i as f32 * 0.71).sin()).collect::<Vec<_>>(), [2, 6, 5], &dev);
    let yv = tensor(&(0..2 * 6 * 5).map(|i| (i as f32 * 0.29).cos()).collect::<Vec<_>>(), [2, 6, 5], &dev);
    let all = host(cross_affinity(ya.clone(), yv.clone(), 0.1, LambdaMode::All, true).expect("cross_affinity"));
    for clip in all.chunks(4) {
        assert!((clip.iter().sum::<f32>() - 4.0).abs() < 1e-5, "{clip:?}");
        assert!(clip.iter().all(|&x| x > 0.0));
    }
    let row = host(cross_affinity(ya, yv, 0.1, LambdaMode::Row, true).expect("cross_affinity"));
    for r in row.chunks(2) {
        assert!((r.iter().sum::<f32>() - 2.0).abs() < 1e-5, "{r:?}");
    }
    // Uniform affinity (all views identical) gives weight exactly 1.
    let same = tensor(&[0.5; 2 * 3 * 4], [2, 3, 4], &dev);
    for mode in [LambdaMode::All, LambdaMode::Row] {
        let lam = host(cross_affinity(same.clone(), same.clone(), 0.1, mode, true).expect("cross_affinity"));
        assert!(lam.iter().all(|&x| (x - 1.0).abs() < 1e-6), "{mode:?}: {lam:?}");
    }
}

#[test]
fn stats_on_a_known_case() {
    let dev = Device::flex();
    // Clip i's audio and video views both point along axis i (orthonormal): positives 1, negatives 0.
    let (v, n) = (2, 3);
    let mut z = vec![0.0f32; v * n * n];
    for p in 0..v {
        for i in 0..n {
            z[(p * n + i) * n + i] = 1.0 + p as f32;
        }
    }
    let za = tensor(&z, [v, n, n], &dev);
    let lam = tensor(&[1.0, 2.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 3.0, 0.0, 0.0, 1.0], [3, 2, 2], &dev);
    let s = loss_stats(za.clone(), za.clone(), Some(lam), 0.07, 1.25).expect("loss_stats");
    assert_eq!(s.loss, 1.25);
    assert!((s.pos_sim - 1.0).abs() < 1e-6 && s.neg_sim.abs() < 1e-6 && s.top1_acc == 1.0, "{s:?}");
    assert!((s.lambda_mean.expect("mean") - 1.0).abs() < 1e-9);
    assert_eq!((s.lambda_min, s.lambda_max), (Some(0.0), Some(3.0)));
    let pq = s.lambda_pq.expect("V = 2");
    assert!((pq[0][0] - 5.0 / 3.0).abs() < 1e-6 && (pq[0][1] - 1.0).abs() < 1e-6, "{pq:?}");
    assert!((pq[1][0] - 0.5).abs() < 1e-6 && (pq[1][1] - 2.5 / 3.0).abs() < 1e-6, "{pq:?}");
    let std = s.lambda_std.expect("std");
    let want = ([1.0f64, 2.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 3.0, 0.0, 0.0, 1.0]
        .iter()
        .map(|x| (x - 1.0).powi(2))
        .sum::<f64>()
        / 12.0)
        .sqrt();
    assert!((std - want).abs() < 1e-9);
    // Video of clip i swapped with clip i+1: every positive loses against a negative.
    let mut shifted = vec![0.0f32; v * n * n];
    for p in 0..v {
        for i in 0..n {
            shifted[(p * n + i) * n + (i + 1) % n] = 1.0;
        }
    }
    assert_eq!(s.top1_pq, Some([[1.0; 2]; 2]));
    let s = loss_stats(za, tensor(&shifted, [v, n, n], &dev), None, 0.07, 0.0).expect("loss_stats");
    assert_eq!(s.top1_acc, 0.0);
    assert_eq!(s.top1_pq, Some([[0.0; 2]; 2]));
    assert!(s.pos_sim.abs() < 1e-6 && s.lambda_mean.is_none() && s.lambda_pq.is_none());
}

#[test]
fn top1_per_view_pair_separates_the_original_pair_from_the_speed_views() {
    let dev = Device::flex();
    // 3 clips along orthonormal axes. Audio view 0 of clip i is axis i, audio view 1 is axis i+1 (as if the speed view
    // sounded like the next clip); both video views of clip i are axis i.
    let n = 3;
    let mut a = vec![0.0f32; 2 * n * n];
    let mut vid = vec![0.0f32; 2 * n * n];
    for i in 0..n {
        a[i * n + i] = 1.0;
        a[(n + i) * n + (i + 1) % n] = 1.0;
        vid[i * n + i] = 1.0;
        vid[(n + i) * n + i] = 1.0;
    }
    let s = loss_stats(tensor(&a, [2, n, n], &dev), tensor(&vid, [2, n, n], &dev), None, 0.1, 0.0).expect("loss_stats");
    // (a^0, v^q): audio -> video is won (1 against 0), video -> audio lost (clip i-1's audio view 1 ties at 1).
    // (a^1, v^q): the positive is orthogonal (0) while clip i+1's videos score 1: lost both ways.
    assert_eq!(s.top1_pq, Some([[0.5, 0.5], [0.0, 0.0]]), "{s:?}");
    assert_eq!(s.top1_acc, 0.25, "the overall top-1 is the mean of the four pair types");
    // One view per modality: no per-pair split.
    let one = loss_stats(tensor(&a[..n * n], [1, n, n], &dev), tensor(&vid[..n * n], [1, n, n], &dev), None, 0.1, 0.0)
        .expect("loss_stats");
    assert_eq!((one.top1_acc, one.top1_pq), (1.0, None));
}

// ---------------------------------------------------------------------------------------------------------------
// properties

/// Random `[V, N, D]` pair plus positive weights `[N, V, V]`.
fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, Vec<f32>)> {
    (1usize..=2, 2usize..=9, 1usize..=12).prop_flat_map(|(v, n, d)| {
        let m = v * n * d;
        (
            Just(v),
            Just(n),
            Just(d),
            prop::collection::vec(-2.0f32..2.0, m),
            prop::collection::vec(-2.0f32..2.0, m),
            prop::collection::vec(0.1f32..3.0, n * v * v),
        )
    })
}

fn eval_loss(za: &[f32], zv: &[f32], lam: Option<&[f32]>, [v, n, d]: [usize; 3], t: f64, path: KernelPath) -> f64 {
    let dev = Device::flex();
    let (a, b) = (tensor(za, [v, n, d], &dev), tensor(zv, [v, n, d], &dev));
    let loss = match lam {
        Some(l) => soft_info_nce(a, b, tensor(l, [n, v, v], &dev), t, path),
        None => info_nce(a, b, t, path),
    };
    scalar(loss.expect("valid inputs"))
}

fn permute_clips(z: &[f32], v: usize, n: usize, width: usize, perm: &[usize]) -> Vec<f32> {
    // z is [V, N, width] (or [N, width] with v = 1 for lambda laid out per clip).
    let mut out = vec![0.0; z.len()];
    for p in 0..v {
        for (new, &old) in perm.iter().enumerate() {
            out[(p * n + new) * width..][..width].copy_from_slice(&z[(p * n + old) * width..][..width]);
        }
    }
    out
}

fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

proptest! {
    // 40 cases per property by default; `PROPTEST_CASES=N` runs more.
    #![proptest_config(ProptestConfig { cases: proptest_cases(), ..ProptestConfig::default() })]

    #[test]
    fn permuting_clips_leaves_the_loss_unchanged((v, n, d, za, zv, lam) in case(), seed in any::<u64>(), t in 0.05f64..1.0) {
        let mut perm: Vec<usize> = (0..n).collect();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let (pa, pv) = (permute_clips(&za, v, n, d, &perm), permute_clips(&zv, v, n, d, &perm));
        let pl = permute_clips(&lam, 1, n, v * v, &perm);
        for path in PATHS {
            let base = eval_loss(&za, &zv, Some(&lam), [v, n, d], t, path);
            let permuted = eval_loss(&pa, &pv, Some(&pl), [v, n, d], t, path);
            prop_assert!((base - permuted).abs() <= 1e-5 * base.abs(), "{path:?}: {base} vs {permuted}");
        }
    }

    #[test]
    fn swapping_audio_and_video_leaves_the_loss_unchanged((v, n, d, za, zv, lam) in case(), t in 0.05f64..1.0) {
        // Swapping roles transposes each clip's weight matrix: lambda'[i][q][p] = lambda[i][p][q].
        let mut lam_t = lam.clone();
        for i in 0..n {
            for p in 0..v {
                for q in 0..v {
                    lam_t[(i * v + q) * v + p] = lam[(i * v + p) * v + q];
                }
            }
        }
        for path in PATHS {
            let ab = eval_loss(&za, &zv, Some(&lam), [v, n, d], t, path);
            let ba = eval_loss(&zv, &za, Some(&lam_t), [v, n, d], t, path);
            prop_assert!((ab - ba).abs() <= 1e-5 * ab.abs(), "{path:?}: {ab} vs {ba}");
            let ab = eval_loss(&za, &zv, None, [v, n, d], t, path);
            let ba = eval_loss(&zv, &za, None, [v, n, d], t, path);
            prop_assert!((ab - ba).abs() <= 1e-5 * ab.abs(), "{path:?}: {ab} vs {ba}");
        }
    }

    #[test]
    fn lambda_one_everywhere_is_exactly_info_nce((v, n, d, za, zv, _lam) in case(), t in 0.05f64..1.0) {
        let ones = vec![1.0f32; n * v * v];
        for path in PATHS {
            let soft = eval_loss(&za, &zv, Some(&ones), [v, n, d], t, path);
            let plain = eval_loss(&za, &zv, None, [v, n, d], t, path);
            prop_assert_eq!(soft, plain, "{:?}", path);
        }
    }

    #[test]
    fn v1_info_nce_is_the_mean_of_the_two_cross_entropies((_v, n, d, za, zv, _lam) in case(), t in 0.05f64..1.0) {
        let za = &za[..n * d];
        let zv = &zv[..n * d];
        // Independent formulation: the N x N similarity matrix and log_softmax along rows and columns.
        let dev = Device::flex();
        let a = svaclr_loss::l2_normalize(tensor(za, [1, n, d], &dev), 2).reshape([n, d]);
        let b = svaclr_loss::l2_normalize(tensor(zv, [1, n, d], &dev), 2).reshape([n, d]);
        let logits = a.matmul(b.transpose()).div_scalar(t);
        let eye = Tensor::<2>::eye(n, &dev);
        let ce_rows = -(burn::tensor::activation::log_softmax(logits.clone(), 1) * eye.clone()).sum() / n as f64;
        let ce_cols = -(burn::tensor::activation::log_softmax(logits, 0) * eye).sum() / n as f64;
        let want = (scalar(ce_rows) + scalar(ce_cols)) / 2.0;
        // The f32 log_softmax reference loses ~eps * max|logit| = eps / t absolutely (x - LSE(x) cancels when the
        // loss is tiny), hence the absolute term.
        let atol = 4.0 * f32::EPSILON as f64 / t;
        for path in PATHS {
            let got = eval_loss(za, zv, None, [1, n, d], t, path);
            prop_assert!((got - want).abs() <= 1e-5 * want.abs() + atol, "{path:?}: {got} vs {want}");
        }
    }

    #[test]
    fn fused_and_composed_agree_in_value_and_gradients(
        (v, n, d, za, zv, lam) in case(),
        // Both regimes of the fused kernel: one shared exp shift (2/eta < 80) and per-row/column maxima (tiny eta).
        t in prop_oneof![0.005f64..0.025, 0.025f64..1.0],
    ) {
        // D = 1 is degenerate for the gradients: a normalised 1-d vector is constant, the exact gradient is 0 and
        // both paths return rounding noise amplified by 1/||z||.
        prop_assume!(d >= 2);
        let dev = device();
        let mut results = Vec::new();
        for path in PATHS {
            let a = tensor(&za, [v, n, d], &dev).require_grad();
            let b = tensor(&zv, [v, n, d], &dev).require_grad();
            let l = tensor(&lam, [n, v, v], &dev).require_grad();
            let loss = soft_info_nce(a.clone(), b.clone(), l.clone(), t, path).expect("valid");
            let grads = loss.clone().backward();
            results.push((
                scalar(loss),
                host(a.grad(&grads).expect("za grad")),
                host(b.grad(&grads).expect("zv grad")),
                host(l.grad(&grads).expect("lambda grad")),
            ));
        }
        let (f, c) = (&results[0], &results[1]);
        // Relative 1e-5 for eta >= 0.025. Below, f32 logits (|L| up to 1/eta = 200) carry absolute errors ~eps/eta
        // that both paths amplify alike, so the tolerance grows as 0.025/eta.
        let rtol = 1e-5 * (0.025 / t).max(1.0);
        prop_assert!((f.0 - c.0).abs() <= rtol * c.0.abs() + 1e-9, "loss {} vs {}", f.0, c.0);
        let wide = |x: &Vec<f32>| x.iter().map(|&y| y as f64).collect::<Vec<_>>();
        // Plus an absolute 1e-9 for saturated cases (tiny eta, two clips) whose whole gradient is ~1e-13 and both
        // paths return rounding noise; ordinary gradients here are 1e-3..10.
        assert_close_abs("d/dza", &f.1, &wide(&c.1), rtol, 1e-9);
        assert_close_abs("d/dzv", &f.2, &wide(&c.2), rtol, 1e-9);
        assert_close_abs("d/dlambda", &f.3, &wide(&c.3), rtol, 1e-9);
    }

    #[test]
    fn finite_for_identical_or_zero_norm_inputs((v, n, d, za, _zv, lam) in case(), zero_rows in prop::collection::vec(any::<bool>(), 18)) {
        let mut zeroed = za.clone();
        for (r, row) in zeroed.chunks_mut(d).enumerate() {
            if zero_rows[r % zero_rows.len()] {
                row.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        let dev = device();
        for (x, y) in [(&za, &za), (&zeroed, &za), (&zeroed, &zeroed)] {
            for path in PATHS {
                let a = tensor(x, [v, n, d], &dev).require_grad();
                let b = tensor(y, [v, n, d], &dev).require_grad();
                let l = tensor(&lam, [n, v, v], &dev).require_grad();
                let loss = soft_info_nce(a.clone(), b.clone(), l.clone(), 0.07, path).expect("valid");
                let grads = loss.clone().backward();
                prop_assert!(scalar(loss).is_finite());
                for g in [a.grad(&grads), b.grad(&grads), l.grad(&grads)].into_iter().flatten() {
                    prop_assert!(host(g).iter().all(|x| x.is_finite()), "{:?}: non-finite gradient", path);
                }
            }
        }
    }
}
