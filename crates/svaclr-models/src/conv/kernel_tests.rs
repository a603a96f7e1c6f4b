//! Tests of the convolution kernels: both paths (im2col + gemm, direct) against the definition.

use super::*;

/// The convolution by its definition, in f64.
fn naive(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f64> {
    let [d, h, wd] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [od, oh, ow] = g.out();
    let mut y = vec![0.0f64; g.n * g.output_len()];
    for n in 0..g.n {
        for o in 0..g.o {
            for z1 in 0..od {
                for z2 in 0..oh {
                    for z3 in 0..ow {
                        let mut acc = 0.0f64;
                        for c in 0..g.c {
                            for a in 0..kd {
                                for b in 0..kh {
                                    for e in 0..kw {
                                        let id = (z1 * g.stride[0] + a) as isize - g.padding[0] as isize;
                                        let ih = (z2 * g.stride[1] + b) as isize - g.padding[1] as isize;
                                        let iw = (z3 * g.stride[2] + e) as isize - g.padding[2] as isize;
                                        if id < 0 || ih < 0 || iw < 0 {
                                            continue;
                                        }
                                        let (id, ih, iw) = (id as usize, ih as usize, iw as usize);
                                        if id >= d || ih >= h || iw >= wd {
                                            continue;
                                        }
                                        let xv = x[(((n * g.c + c) * d + id) * h + ih) * wd + iw] as f64;
                                        let wv = w[(((o * g.c + c) * kd + a) * kh + b) * kw + e] as f64;
                                        acc += xv * wv;
                                    }
                                }
                            }
                        }
                        y[(((n * g.o + o) * od + z1) * oh + z2) * ow + z3] = acc;
                    }
                }
            }
        }
    }
    y
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A clip batch's input, weight and output gradient for `g`, from seeds `seed`, `seed + 1`, `seed + 2`.
fn inputs(g: &Geometry, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (values(g.n * g.input_len(), seed), values(g.o * g.k(), seed + 1), values(g.n * g.output_len(), seed + 2))
}

/// The three passes' results, `(y, dx, dW)`.
type Passes = (Vec<f32>, Vec<f32>, Vec<f32>);

/// `a` and `b` are the same bit for bit, pass by pass.
fn assert_same_bits(g: &Geometry, a: &Passes, b: &Passes) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&a.0), bits(&b.0), "{g:?}: forward");
    assert_eq!(bits(&a.1), bits(&b.1), "{g:?}: input gradient");
    assert_eq!(bits(&a.2), bits(&b.2), "{g:?}: weight gradient");
}

fn dot(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum()
}

#[test]
fn valid_range_matches_a_scan() {
    for out in 0..6 {
        for size in 1..7 {
            for stride in 1..4 {
                for offset in 0..4 {
                    for pad in 0..4 {
                        let want: Vec<usize> = (0..out)
                            .filter(|&z| {
                                let i = (z * stride + offset) as isize - pad as isize;
                                i >= 0 && (i as usize) < size
                            })
                            .collect();
                        let got: Vec<usize> = valid_range(out, size, stride, offset, pad).collect();
                        assert_eq!(got, want, "out {out} size {size} stride {stride} offset {offset} pad {pad}");
                    }
                }
            }
        }
    }
}

/// The scratch memory is reused between calls and geometries: whatever an earlier call left in it (here NaN)
/// must not reach a result, so every result equals the one computed with fresh memory, bit for bit.
#[test]
fn results_do_not_depend_on_what_the_scratch_held() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    let geo = |n, c, input, o, kernel, stride, padding| Geometry { n, c, input, o, kernel, stride, padding };
    for g in [
        geo(2, 3, [4, 9, 9], 5, [1, 3, 3], [1, 2, 2], [0, 1, 1]),
        geo(3, 4, [5, 6, 7], 2, [3, 1, 1], [2, 1, 1], [1, 0, 0]),
        geo(2, 3, [4, 8, 8], 4, [3, 3, 3], [1, 1, 1], [1, 1, 1]),
        geo(1, 2, [2, 11, 10], 3, [1, 7, 7], [1, 2, 2], [0, 3, 3]),
        geo(3, 4, [5, 3, 4], 3, [3, 1, 1], [1, 1, 1], [1, 0, 0]),
        geo(2, 5, [3, 7, 9], 7, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
    ] {
        let (x, w, dy) = inputs(&g, 11);
        let run = |dirty: bool| {
            pool.install(|| {
                SCRATCH.set(if dirty { vec![f32::NAN; 1 << 16] } else { Vec::new() });
                let y = forward(&g, &x, &w);
                if dirty {
                    SCRATCH.set(vec![f32::NAN; 1 << 16]);
                }
                let dx = input_grad(&g, &dy, &w);
                if dirty {
                    SCRATCH.set(vec![f32::NAN; 1 << 16]);
                }
                (y, dx, weight_grad(&g, &x, &dy))
            })
        };
        let (clean, dirty) = (run(false), run(true));
        assert_same_bits(&g, &dirty, &clean);
        assert!(clean.0.iter().chain(&clean.1).chain(&clean.2).all(|v| v.is_finite()), "{g:?}");
    }
}

/// Forward against the definition; both gradients against the adjoint identities
/// `<dy, conv(x, w)> = <input_grad(dy, w), x> = <weight_grad(x, dy), w>`, for kernels, strides and paddings of
/// the encoders and a few odd ones.
#[test]
fn forward_and_gradients_agree_with_the_definition() {
    let geo = |n, c, input, o, kernel, stride, padding| Geometry { n, c, input, o, kernel, stride, padding };
    let cases = [
        geo(2, 3, [4, 9, 9], 5, [1, 3, 3], [1, 2, 2], [0, 1, 1]),
        geo(3, 4, [5, 6, 7], 2, [3, 1, 1], [2, 1, 1], [1, 0, 0]),
        geo(2, 3, [4, 8, 8], 4, [3, 3, 3], [1, 1, 1], [1, 1, 1]),
        geo(9, 2, [3, 5, 5], 3, [1, 1, 1], [1, 1, 1], [0, 0, 0]),
        geo(2, 3, [3, 6, 6], 2, [1, 1, 1], [2, 2, 2], [0, 0, 0]),
        geo(1, 2, [2, 11, 10], 3, [1, 7, 7], [1, 2, 2], [0, 3, 3]),
        geo(2, 1, [1, 7, 6], 2, [1, 2, 3], [1, 3, 2], [0, 2, 1]),
        // Temporal convolutions (no im2col): R(2+1)D's, an unpadded one, one wider than the clip, a 1-frame one.
        geo(3, 4, [5, 3, 4], 3, [3, 1, 1], [1, 1, 1], [1, 0, 0]),
        geo(2, 3, [6, 2, 3], 5, [3, 1, 1], [1, 1, 1], [0, 0, 0]),
        geo(2, 2, [2, 3, 3], 2, [5, 1, 1], [1, 1, 1], [2, 0, 0]),
        geo(1, 3, [1, 2, 2], 4, [1, 1, 1], [1, 1, 1], [1, 0, 0]),
        // Spatial unit-stride convolutions (also run by the direct kernels): R(2+1)D's layer-1 widths (three
        // full forward tiles, a partial input-gradient one), widths that are no multiple of a vector, no
        // padding, a non-square kernel with a padding below its size minus one, a tall kernel one column wide,
        // the stem's kernel at unit stride, a 2x2 plane with many channels.
        geo(2, 8, [2, 8, 8], 18, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(2, 5, [3, 7, 9], 7, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(1, 2, [2, 4, 5], 9, [1, 3, 3], [1, 1, 1], [0, 0, 0]),
        geo(2, 3, [1, 5, 6], 4, [1, 2, 3], [1, 1, 1], [0, 1, 2]),
        geo(1, 1, [1, 11, 3], 2, [1, 5, 1], [1, 1, 1], [0, 2, 0]),
        geo(1, 2, [1, 9, 10], 3, [1, 7, 7], [1, 1, 1], [0, 3, 3]),
        geo(2, 64, [1, 2, 2], 13, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        // Strided spatial ones (the direct forward and weight gradient split the input into phases): a kernel of
        // even size whose phases give one output row more than the convolution has, the audio stem's kernel, no
        // padding.
        geo(2, 3, [1, 9, 8], 4, [1, 4, 4], [1, 2, 2], [0, 1, 1]),
        geo(2, 1, [1, 12, 15], 4, [1, 7, 7], [1, 2, 2], [0, 3, 3]),
        geo(1, 2, [2, 7, 9], 3, [1, 3, 3], [1, 2, 2], [0, 0, 0]),
    ];
    // im2col + gemm, and the direct kernels on every geometry they cover (whether or not they pay on it).
    let paths = |g: &Geometry| {
        let direct = direct::form(g).filter(|_| crate::cpu::has_avx2_fma());
        std::iter::once(None).chain(direct.map(Some))
    };
    let runs = cases.into_iter().enumerate().flat_map(|(seed, g)| paths(&g).map(move |d| (seed, g, d)));
    for (seed, g, form) in runs {
        let (n, o) = (g.n, g.o);
        let direct = form.is_some();
        let (x, w, dy) = inputs(&g, seed as u64 * 3 + 1);
        let want = naive(&g, &x, &w);
        let got = forward_with(&g, &x, &w, form);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = got.iter().zip(&want).fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        assert!(err <= 1e-5 * scale.max(1.0), "{g:?} (direct {direct}): forward error {err}");
        // <dy, conv(x, w)> by the definition, and the magnitude of the terms it sums (for the tolerance).
        let lhs = dot(&dy, &want);
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
        let size = dot(&abs(&dy), &naive(&g, &abs(&x), &abs(&w)));
        let dx = input_grad_with(&g, &dy, &w, form);
        let dw = weight_grad_with(&g, &x, &dy, form);
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (via_x, via_w) = (dot(&dx, &to64(&x)), dot(&dw, &to64(&w)));
        // One term of the sum is at least 1/(N*O*P*K) of `size`; float32 rounding is far below that.
        let tol = 1e-6 * size;
        assert!(tol * ((n * o * g.p() * g.k()) as f64) < size, "tolerance must resolve a single term");
        assert!((via_x - lhs).abs() <= tol, "{g:?} (direct {direct}): input gradient {via_x} vs {lhs}");
        assert!((via_w - lhs).abs() <= tol, "{g:?} (direct {direct}): weight gradient {via_w} vs {lhs}");
    }
}

/// Which convolutions the direct kernels take (`direct::pays` on `direct::form`; `direct::chosen` adds the CPU check): the CPU preset's spatial, temporal
/// and stem convolutions; not the small planes, nor the paper's widths, whose working set exceeds the cache budget.
#[test]
fn the_direct_kernels_take_the_geometries_they_were_measured_faster_on() {
    let geo = |c, input, o, kernel, stride, padding| Geometry { n: 64, c, input, o, kernel, stride, padding };
    let pays = |g: &Geometry| direct::form(g).is_some_and(|d| direct::pays(&d));
    let taken = [
        geo(8, [8, 16, 16], 18, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(18, [8, 16, 16], 8, [3, 1, 1], [1, 1, 1], [1, 0, 0]),
        geo(3, [8, 32, 32], 6, [1, 7, 7], [1, 2, 2], [0, 3, 3]),
        geo(16, [4, 8, 8], 36, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(8, [1, 10, 13], 8, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
    ];
    let left = [
        geo(64, [1, 2, 2], 144, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(32, [2, 4, 4], 72, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(512, [1, 7, 7], 512, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(64, [8, 56, 56], 144, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(3, [8, 112, 112], 45, [1, 7, 7], [1, 2, 2], [0, 3, 3]),
        geo(8, [8, 16, 16], 16, [1, 1, 1], [2, 2, 2], [0, 0, 0]),
    ];
    for g in taken {
        assert!(pays(&g), "{g:?} should run the direct kernels");
    }
    for g in left {
        assert!(!pays(&g), "{g:?} should stay on im2col + gemm");
    }
}

/// The path a convolution takes, and so its bits, never depends on the thread count: batches of fewer and of more
/// clips than threads give the same results on 1 and on 3 threads (a direct geometry, a temporal one, an im2col one).
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let geo = |n, c, input, o, kernel, stride, padding| Geometry { n, c, input, o, kernel, stride, padding };
    for g in [
        geo(1, 8, [2, 16, 16], 18, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(2, 8, [2, 16, 16], 18, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(5, 8, [2, 16, 16], 18, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
        geo(1, 6, [4, 8, 8], 8, [3, 1, 1], [1, 1, 1], [1, 0, 0]),
        geo(2, 16, [1, 4, 4], 20, [1, 3, 3], [1, 1, 1], [0, 1, 1]),
    ] {
        let (x, w, dy) = inputs(&g, 31);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
            pool.install(|| (forward(&g, &x, &w), input_grad(&g, &dy, &w), weight_grad(&g, &x, &dy)))
        };
        assert_same_bits(&g, &run(1), &run(3));
    }
}
