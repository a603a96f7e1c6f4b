//! Kernel dispatch, the composed fallback and input errors.

use crate::common::*;

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
