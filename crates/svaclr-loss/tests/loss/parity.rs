//! Parity with the PyTorch reference fixtures, on both kernel paths (and on LibTorch with `--features tch`).

use crate::common::*;

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
