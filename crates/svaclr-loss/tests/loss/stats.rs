//! The cross-affinity lambda and `LossStats`.

use crate::common::*;

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
