//! Invariants of the losses, checked with proptest.

use crate::common::*;

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
