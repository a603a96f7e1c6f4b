//! Unit tests of the fused kernel against direct f64 computations.

use super::*;

/// Straightforward f64 transcription of the PyTorch reference (loops, explicit masks), for small cases.
fn reference(za: &[f32], zv: &[f32], lam: Option<&[f32]>, v: usize, n: usize, d: usize, t: f64) -> f64 {
    let norm = |z: &[f32]| -> Vec<f64> {
        z.chunks(d)
            .flat_map(|row| {
                let nr = row.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
                row.iter().map(move |&x| x as f64 / nr).collect::<Vec<_>>()
            })
            .collect()
    };
    let (a, b) = (norm(za), norm(zv));
    let r = v * n;
    let lg = |x: usize, y: usize| (0..d).map(|k| a[x * d + k] * b[y * d + k]).sum::<f64>() / t;
    let lse = |xs: &[f64]| {
        let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    };
    let mut total = 0.0;
    for pp in 0..v {
        for q in 0..v {
            for i in 0..n {
                let (row, col) = (pp * n + i, q * n + i);
                let pos = lg(row, col);
                let mut av = vec![pos];
                let mut va = vec![pos];
                for c in 0..r {
                    if c % n != i {
                        av.push(lg(row, c));
                        va.push(lg(c, col));
                    }
                }
                let w = lam.map_or(1.0, |l| l[(i * v + pp) * v + q] as f64);
                total += w * 0.5 * ((lse(&av) - pos) + (lse(&va) - pos));
            }
        }
    }
    total / (v * v * n) as f64
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn problem<'a>(za: &'a [f32], zv: &'a [f32], lam: Option<&'a [f32]>, v: usize, n: usize, d: usize) -> Problem<'a> {
    Problem { za, zv, lambda: lam, v, n, d, temperature: 0.2 }
}

/// Temperatures on both sides of the fixed-shift threshold (2 / eta = 80 at eta = 0.025).
const TEMPERATURES: [f64; 3] = [0.2, 0.03, 0.01];

#[test]
fn loss_matches_a_loop_transcription_of_the_reference() {
    for (v, n, d) in [(1, 2, 3), (1, 9, 5), (2, 5, 8), (2, 17, 12), (3, 4, 6)] {
        let za = values(v * n * d, 1 + v as u64);
        let zv = values(v * n * d, 50 + n as u64);
        let lam: Vec<f32> = values(n * v * v, 9).iter().map(|x| x + 1.5).collect();
        for l in [None, Some(lam.as_slice())] {
            for t in TEMPERATURES {
                let got = run(&Problem { temperature: t, ..problem(&za, &zv, l, v, n, d) }, false, false).loss;
                let want = reference(&za, &zv, l, v, n, d, t);
                assert!((got - want).abs() <= 2e-6 * want.abs(), "v={v} n={n} d={d} t={t}: {got} vs {want}");
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    for t in [0.2, 0.02] {
        gradients_match_finite_differences_at(t);
    }
}

fn gradients_match_finite_differences_at(t: f64) {
    let (v, n, d) = (2, 4, 5);
    let za = values(v * n * d, 3);
    let zv = values(v * n * d, 4);
    let lam: Vec<f32> = values(n * v * v, 5).iter().map(|x| x + 1.5).collect();
    let out = run(&Problem { temperature: t, ..problem(&za, &zv, Some(&lam), v, n, d) }, true, true);
    let f = |za: &[f32], zv: &[f32], lam: &[f32]| reference(za, zv, Some(lam), v, n, d, t);
    let h = 1e-3f32;
    let check = |analytic: &[f32], which: usize| {
        for k in 0..analytic.len() {
            let (mut za2, mut zv2, mut l2) = (za.clone(), zv.clone(), lam.clone());
            let (mut za3, mut zv3, mut l3) = (za.clone(), zv.clone(), lam.clone());
            match which {
                0 => {
                    za2[k] += h;
                    za3[k] -= h;
                }
                1 => {
                    zv2[k] += h;
                    zv3[k] -= h;
                }
                _ => {
                    l2[k] += h;
                    l3[k] -= h;
                }
            }
            let fd = (f(&za2, &zv2, &l2) - f(&za3, &zv3, &l3)) / (2.0 * h as f64);
            assert!(
                (analytic[k] as f64 - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                "input {which}[{k}]: {} vs {fd}",
                analytic[k]
            );
        }
    };
    check(out.grad_za.as_deref().unwrap_or_default(), 0);
    check(out.grad_zv.as_deref().unwrap_or_default(), 1);
    check(out.grad_lambda.as_deref().unwrap_or_default(), 2);
}

#[test]
fn scalar_fallback_matches_the_simd_path() {
    // Both kernel regimes, all outputs. On a CPU without AVX2 both runs are scalar and trivially equal.
    let (v, n, d) = (2, 13, 19);
    let za = values(v * n * d, 21);
    let zv = values(v * n * d, 22);
    let lam: Vec<f32> = values(n * v * v, 23).iter().map(|x| x + 1.5).collect();
    for t in TEMPERATURES {
        let p = Problem { temperature: t, ..problem(&za, &zv, Some(&lam), v, n, d) };
        // `force_scalar` is process-global: hold the lock so no bitwise-comparing test runs meanwhile.
        let _guard = FORCE_SCALAR_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        simd::force_scalar(true);
        let scalar = run(&p, true, true);
        simd::force_scalar(false);
        drop(_guard);
        let fast = run(&p, true, true);
        assert!((scalar.loss - fast.loss).abs() <= 1e-6 * fast.loss.abs(), "t={t}: {} vs {}", scalar.loss, fast.loss);
        for (x, y) in [
            (&scalar.grad_za, &fast.grad_za),
            (&scalar.grad_zv, &fast.grad_zv),
            (&scalar.grad_lambda, &fast.grad_lambda),
        ] {
            let (x, y) = (x.as_deref().unwrap_or_default(), y.as_deref().unwrap_or_default());
            let scale = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let err = x.iter().zip(y).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-5 * scale, "t={t}: gradient differs by {err} (scale {scale})");
        }
    }
}

/// Serialises the tests that flip or depend on the process-global `simd::force_scalar` switch.
static FORCE_SCALAR_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn pooled_buffers_do_not_leak_state_between_calls() {
    // Bitwise comparison: keep the scalar-fallback test from flipping the global SIMD switch meanwhile.
    let _guard = FORCE_SCALAR_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (v, n, d) = (2, 6, 4);
    let za = values(v * n * d, 11);
    let zv = values(v * n * d, 12);
    let first = run(&problem(&za, &zv, None, v, n, d), true, false);
    // A bigger call in between reuses and grows the pooled buffers.
    let big = values(2 * 40 * 16, 13);
    let _ = run(&problem(&big, &big, None, 2, 40, 16), true, false);
    let second = run(&problem(&za, &zv, None, v, n, d), true, false);
    assert_eq!(first.loss, second.loss);
    assert_eq!(first.grad_za, second.grad_za);
    assert_eq!(first.grad_zv, second.grad_zv);
}

#[test]
fn one_clip_has_zero_loss_and_zero_gradients() {
    let za = values(2 * 3, 1);
    let out = run(&problem(&za, &za, None, 2, 1, 3), true, true);
    assert_eq!(out.loss, 0.0);
    assert!(out.grad_za.unwrap_or_default().iter().all(|&g| g == 0.0));
}
