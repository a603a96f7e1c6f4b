//! Retrieval metrics (hand-computed cases with ties, NumPy parity, properties) and multi-view averaging.

use crate::common::*;

// ---------------------------------------------------------------------------------------------------------------
// Retrieval metrics, by hand.

#[test]
fn instance_recall_hand_computed() {
    // Video queries (rows) against audio gallery (columns), 2-d embeddings:
    //   v0 = (1, 0), v1 = (0, 1), v2 = (1, 1), v3 = (-1, 0)
    //   a0 = (1, 0), a1 = (1, 0.5), a2 = (0, 1), a3 = (-1, 0)
    // sims v0: [1, 1, 0, -1]   true a0 = 1, a1 ties at 1           -> rank 2 (pessimistic)
    //      v1: [0, .5, 1, 0]   true a1 = .5, a2 = 1 above          -> rank 2
    //      v2: [1, 1.5, 1, -1] true a2 = 1, a0 ties, a1 above      -> rank 3
    //      v3: [-1, -1, 0, 1]  true a3 = 1, unique best            -> rank 1
    let v = emb(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[-1.0, 0.0]]);
    let a = emb(&[&[1.0, 0.0], &[1.0, 0.5], &[0.0, 1.0], &[-1.0, 0.0]]);
    let sim = similarity(&v, &a).expect("sim");
    assert_eq!(instance_ranks(&sim, 4).expect("ranks"), vec![2, 2, 3, 1]);
    let (inst, class) = evaluate_pairs(&v, &a, None, &[1, 2, 3]).expect("evaluate");
    assert!(class.is_none());
    assert_eq!(inst.v2a.at(1), Some(0.25));
    assert_eq!(inst.v2a.at(2), Some(0.75));
    assert_eq!(inst.v2a.at(3), Some(1.0));
    assert_eq!(inst.v2a.median_rank, 2.0);
    assert_eq!(inst.v2a.mean_rank, 2.0);
    // Audio queries: sims are the transpose.
    //   a0: [1, 0, 1, -1]   true v0 = 1, v2 ties                    -> rank 2
    //   a1: [1, .5, 1.5, -1] true v1 = .5, v0 and v2 above          -> rank 3
    //   a2: [0, 1, 1, 0]    true v2 = 1, v1 ties                    -> rank 2
    //   a3: [-1, 0, -1, 1]  true v3 unique best                     -> rank 1
    assert_eq!(inst.a2v.at(1), Some(0.25));
    assert_eq!(inst.a2v.at(2), Some(0.75));
    assert_eq!(inst.a2v.median_rank, 2.0);
}

#[test]
fn class_level_recall_hand_computed() {
    // Same embeddings, classes [0, 1, 0, 1]. v2a:
    //   v0 [1, 1, 0, -1]:   relevant {a0, a2}, best 1 (a0); irrelevant a1 = 1 ties        -> rank 2
    //   v1 [0, .5, 1, 0]:   relevant {a1, a3}, best .5; irrelevant a2 = 1 above           -> rank 2
    //   v2 [1, 1.5, 1, -1]: relevant {a0, a2}, best 1; irrelevant a1 = 1.5 above          -> rank 2
    //   v3 [-1, -1, 0, 1]:  relevant {a1, a3}, best 1; nothing irrelevant at >= 1         -> rank 1
    let v = emb(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[-1.0, 0.0]]);
    let a = emb(&[&[1.0, 0.0], &[1.0, 0.5], &[0.0, 1.0], &[-1.0, 0.0]]);
    let labels = [0usize, 1, 0, 1];
    let sim = similarity(&v, &a).expect("sim");
    assert_eq!(class_ranks(&sim, &labels, &labels).expect("ranks"), vec![Some(2), Some(2), Some(2), Some(1)]);
    let (_, class) = evaluate_pairs(&v, &a, Some(&labels), &[1, 2]).expect("evaluate");
    let class = class.expect("class level");
    assert_eq!(class.v2a.at(1), Some(0.25));
    assert_eq!(class.v2a.at(2), Some(1.0));
}

#[test]
fn degenerate_embeddings_score_zero_not_one() {
    // Every embedding identical: every similarity ties, so the true item ranks last.
    let same = emb(&[&[0.5, 0.5], &[0.5, 0.5], &[0.5, 0.5], &[0.5, 0.5], &[0.5, 0.5]]);
    let (inst, _) = evaluate_pairs(&same, &same, None, &[1, 4, 5]).expect("evaluate");
    assert_eq!(inst.v2a.at(1), Some(0.0));
    assert_eq!(inst.v2a.at(4), Some(0.0));
    assert_eq!(inst.v2a.at(5), Some(1.0));
    assert_eq!(inst.a2v.median_rank, 5.0);
}

#[test]
fn queries_without_relevant_items_are_misses() {
    let sim = [0.9, 0.1, 0.2, 0.8];
    // Query 0 of class 2 has no gallery item of its class.
    let r = class_ranks(&sim, &[2, 1], &[0, 1]).expect("ranks");
    assert_eq!(r, vec![None, Some(1)]);
    assert_eq!(recall_at_k(&r, 2), 0.5);
    let d = DirectionResult::from_ranks(&r, 2, &[1]);
    assert_eq!(d.mean_rank, (3.0 + 1.0) / 2.0);
    assert!(first_relevant_ranks(&sim, 3, |_, _| true).is_err(), "4 values are not rows of 3");
}

#[test]
fn bad_embeddings_are_refused() {
    assert!(Embeddings::new(vec![1.0, f32::NAN], 1, 2).is_err());
    assert!(Embeddings::new(vec![1.0, 2.0, 3.0], 2, 2).is_err());
    let v = emb(&[&[1.0, 0.0]]);
    let a = emb(&[&[1.0, 0.0, 0.0]]);
    assert!(matches!(similarity(&v, &a), Err(EvalError::Invalid { .. })));
    assert!(evaluate_pairs(&v, &v, None, &[0]).is_err());
    assert!(evaluate_pairs(&v, &emb(&[&[1.0, 0.0], &[0.0, 1.0]]), None, &[1]).is_err());
}

#[test]
fn l2_normalise_and_group_mean() {
    let e = Embeddings::new(vec![3.0, 4.0, 0.0, 2.0, 0.0, 0.0, 1.0, 1.0], 4, 2).expect("embeddings");
    let n = e.l2_normalized();
    assert_eq!(n.row(0), &[0.6, 0.8]);
    assert_eq!(n.row(1), &[0.0, 1.0]);
    assert_eq!(n.row(2), &[0.0, 0.0], "a zero row stays zero");
    let g = n.group_mean(2).expect("groups");
    assert_eq!(g.rows(), 2);
    assert!((g.row(0)[0] - 0.3).abs() < 1e-7 && (g.row(0)[1] - 0.9).abs() < 1e-7);
    assert!(e.group_mean(3).is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// Retrieval metrics against NumPy.

fn matrix(v: &Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().expect("rows");
    let dim = rows[0].as_array().expect("row").len();
    let data: Vec<f32> =
        rows.iter().flat_map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("num") as f32)).collect();
    (data, rows.len(), dim)
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("int") as usize).collect()
}

// Equivalent NumPy (scripts/reference/retrieval_reference.py):
//   sv = video.astype(f64) @ audio.astype(f64).T ; sa = sv.T
//   best = np.where(relevant, sim, -inf).max(1) ; rank = 1 + ((~relevant) & (sim >= best[:, None])).sum(1)
//   recall@k = (rank <= k).mean()
#[test]
fn numpy_parity() {
    let path = fixture_dir().join("retrieval_numpy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text).expect("fixture JSON");
    let cases = root["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let clips = case["clips"].as_u64().expect("clips") as usize;
        let ks = usizes(&case["ks"]);
        let labels = usizes(&case["labels"]);
        let (v, nv, d) = matrix(&case["video"]);
        let (a, na, _) = matrix(&case["audio"]);
        let pool = |x: Vec<f32>, n: usize| {
            let e = Embeddings::new(x, n, d).expect("embeddings");
            if clips > 1 { e.l2_normalized().group_mean(clips).expect("groups").l2_normalized() } else { e }
        };
        let (video, audio) = (pool(v, nv), pool(a, na));
        let (inst, class) = evaluate_pairs(&video, &audio, Some(&labels), &ks).expect("evaluate");
        let class = class.expect("class level");
        let n = video.rows();
        let sv = similarity(&video, &audio).expect("sim");
        let sa = similarity(&audio, &video).expect("sim");
        let ranks = [
            (
                "instance",
                "v2a",
                instance_ranks(&sv, n).expect("r").into_iter().map(Some).collect::<Vec<_>>(),
                &inst.v2a,
            ),
            ("instance", "a2v", instance_ranks(&sa, n).expect("r").into_iter().map(Some).collect(), &inst.a2v),
            ("class_level", "v2a", class_ranks(&sv, &labels, &labels).expect("r"), &class.v2a),
            ("class_level", "a2v", class_ranks(&sa, &labels, &labels).expect("r"), &class.a2v),
        ];
        for (level, dir, got_ranks, summary) in ranks {
            let want = &case[level][dir];
            let want_ranks: Vec<Option<usize>> = usizes(&want["ranks"]).into_iter().map(Some).collect();
            assert_eq!(got_ranks, want_ranks, "{name} {level} {dir}: ranks");
            for k in &ks {
                let w = want["recall"][k.to_string()].as_f64().expect("recall");
                assert!((summary.at(*k).expect("k") - w).abs() < 1e-12, "{name} {level} {dir} R@{k}");
            }
            assert_eq!(summary.median_rank, want["median_rank"].as_f64().expect("median"), "{name} {level} {dir}");
            assert!((summary.mean_rank - want["mean_rank"].as_f64().expect("mean")).abs() < 1e-9);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Properties.

fn arb_pairs() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, Vec<usize>, usize, usize)> {
    (2usize..12, 1usize..5).prop_flat_map(|(n, d)| {
        (
            proptest::collection::vec(-3i8..=3, n * d),
            proptest::collection::vec(-3i8..=3, n * d),
            proptest::collection::vec(0usize..3, n),
            Just(n),
            Just(d),
        )
            .prop_map(|(v, a, l, n, d)| {
                // Small integers: plenty of exact ties.
                (v.into_iter().map(f32::from).collect(), a.into_iter().map(f32::from).collect(), l, n, d)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Relabelling the clips (the same permutation of video rows, audio rows and labels) changes no metric,
    /// recall grows with K, R@N is 1, and the class level is never below the instance level.
    #[test]
    fn permutation_invariant_and_monotone((v, a, l, n, d) in arb_pairs(), shift in 0usize..11) {
        let ks: Vec<usize> = (1..=n).collect();
        let (ve, ae) = (Embeddings::new(v.clone(), n, d).unwrap_or_else(|_| unreachable!()), Embeddings::new(a.clone(), n, d).unwrap_or_else(|_| unreachable!()));
        let (inst, class) = evaluate_pairs(&ve, &ae, Some(&l), &ks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let class = class.ok_or_else(|| TestCaseError::fail("no class level"))?;
        let perm: Vec<usize> = (0..n).map(|i| (i * 7 + shift) % n).collect();
        let mut uniq = perm.clone();
        uniq.sort_unstable();
        uniq.dedup();
        prop_assume!(uniq.len() == n);
        let permute = |x: &[f32]| perm.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect::<Vec<f32>>();
        let lp: Vec<usize> = perm.iter().map(|&i| l[i]).collect();
        let (vp, ap) = (Embeddings::new(permute(&v), n, d).unwrap_or_else(|_| unreachable!()), Embeddings::new(permute(&a), n, d).unwrap_or_else(|_| unreachable!()));
        let (inst_p, class_p) = evaluate_pairs(&vp, &ap, Some(&lp), &ks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&inst.v2a.recall, &inst_p.v2a.recall);
        prop_assert_eq!(&inst.a2v.recall, &inst_p.a2v.recall);
        prop_assert_eq!(&class.v2a.recall, &class_p.ok_or_else(|| TestCaseError::fail("no class level"))?.v2a.recall);
        for w in ks.windows(2) {
            prop_assert!(inst.v2a.at(w[0]) <= inst.v2a.at(w[1]));
        }
        prop_assert_eq!(inst.v2a.at(n), Some(1.0));
        prop_assert_eq!(inst.a2v.at(n), Some(1.0));
        for &k in &ks {
            prop_assert!(class.v2a.at(k) >= inst.v2a.at(k));
            prop_assert!(class.a2v.at(k) >= inst.a2v.at(k));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Multi-view testing.

#[test]
fn ten_clips_by_three_crops_are_averaged_per_video() {
    // 2 videos x 30 views x 4 classes. View j (clip j / 3, crop j % 3) of video v has logits
    //   l[c] = (v + 1) * (c == (j % 4)) + 0.001 * j * c   (a one-hot that rotates over the views, plus a ramp).
    let (videos, views, classes) = (2usize, 30usize, 4usize);
    let mut logits = Vec::new();
    for v in 0..videos {
        for j in 0..views {
            for c in 0..classes {
                let hot = if c == j % 4 { (v + 1) as f32 } else { 0.0 };
                logits.push(hot + 0.001 * j as f32 * c as f32);
            }
        }
    }
    let avg = average_views(&logits, classes, views).expect("average");
    assert_eq!(avg.len(), videos * classes);
    // By hand: views j = 0..29 hit class c when j % 4 == c: 8 views for c in {0, 1}, 7 for {2, 3}. The ramp adds
    // 0.001 * c * mean(j) = 0.001 * c * 14.5.
    for v in 0..videos {
        for c in 0..classes {
            let hits = if c < 2 { 8.0 } else { 7.0 };
            let want = (v + 1) as f64 * hits / 30.0 + 0.001 * c as f64 * 14.5;
            assert!((f64::from(avg[v * classes + c]) - want).abs() < 1e-6, "video {v} class {c}");
        }
    }
    // Video 0: [0.2667, 0.2812, 0.2623, 0.2768] -> class 1 (right); video 1: [0.5333, 0.5478, 0.4957, 0.5102] ->
    // class 1 (wrong: its label 0 is second, so top-2 is perfect).
    let s = score_views(&logits, classes, views, &[1, 0]).expect("score");
    assert_eq!(s.top1, 0.5);
    assert_eq!(s.videos, 2);
    assert_eq!(s.views_per_video, 30);
    assert_eq!(s.confusion.counts, vec![vec![0, 1, 0, 0], vec![0, 1, 0, 0], vec![0; 4], vec![0; 4]]);
    assert_eq!(topk_accuracy(&avg, classes, &[1, 0], 2).expect("top2"), 1.0);
    // A count that is not whole videos is refused.
    assert!(average_views(&logits[..4 * 29], classes, views).is_err());
}
