//! The convolution kernels on host memory: im2col + one gemm per clip, threaded over the batch.
//!
//! Layout is Burn's and PyTorch's: input `[N, C, D, H, W]`, weight `[O, C, kd, kh, kw]`, output `[N, O, Do, Ho, Wo]`,
//! all contiguous f32; no dilation, no groups, zero padding (symmetric per axis). With `K = C*kd*kh*kw` and
//! `P = Do*Ho*Wo`, clip `n` computes
//!
//! - forward: `y_n[O, P] = W[O, K] . col_n[K, P]` where `col_n = im2col(x_n)`;
//! - input gradient: `dx_n = col2im(W^T[K, O] . dy_n[O, P])`;
//! - weight gradient: `dW[O, K] = sum_n dy_n[O, P] . col_n^T[P, K]`.
//!
//! A pointwise convolution (1x1x1, stride 1, no padding) skips im2col: `col_n` is `x_n` itself.
//!
//! Threads: clips run in parallel (each with its own im2col buffer and a single-threaded gemm) when the batch has
//! at least as many clips as threads; otherwise clips run one after another with a threaded gemm. The weight
//! gradient is summed in a fixed number of batch chunks whose partial sums are added in order, so every result is
//! the same bit for bit whatever the thread count or scheduling.

use rayon::prelude::*;

/// Number of batch chunks of the weight gradient (fixed, so its summation order never depends on the threads).
const WEIGHT_GRAD_CHUNKS: usize = 8;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input depth (time), height, width.
    pub input: [usize; 3],
    /// Output channels.
    pub o: usize,
    /// Kernel size per axis.
    pub kernel: [usize; 3],
    /// Stride per axis.
    pub stride: [usize; 3],
    /// Zero padding per axis (both sides).
    pub padding: [usize; 3],
}

impl Geometry {
    /// Output depth, height and width; `None` when the kernel does not fit the padded input or a size is zero.
    pub fn output(&self) -> Option<[usize; 3]> {
        let mut out = [0; 3];
        for i in 0..3 {
            let padded = self.input[i] + 2 * self.padding[i];
            if self.kernel[i] == 0 || self.stride[i] == 0 || padded < self.kernel[i] {
                return None;
            }
            out[i] = (padded - self.kernel[i]) / self.stride[i] + 1;
        }
        Some(out)
    }

    fn out(&self) -> [usize; 3] {
        self.output().expect("conv kernel: the geometry was checked by the caller")
    }

    /// `K`: rows of the im2col matrix.
    pub fn k(&self) -> usize {
        self.c * self.kernel.iter().product::<usize>()
    }

    /// `P`: output positions per clip.
    pub fn p(&self) -> usize {
        self.out().iter().product()
    }

    /// Input values per clip.
    pub fn input_len(&self) -> usize {
        self.c * self.input.iter().product::<usize>()
    }

    /// Output values per clip.
    pub fn output_len(&self) -> usize {
        self.o * self.p()
    }

    fn pointwise(&self) -> bool {
        self.kernel == [1, 1, 1] && self.stride == [1, 1, 1] && self.padding == [0, 0, 0]
    }
}

/// The output indices `z` in `0..out` whose input index `z * stride + offset - pad` lies in `0..size`.
fn valid_range(out: usize, size: usize, stride: usize, offset: usize, pad: usize) -> std::ops::Range<usize> {
    // z * stride + offset >= pad  <=>  z >= ceil((pad - offset) / stride)
    let lo = if offset >= pad { 0 } else { (pad - offset).div_ceil(stride) };
    // z * stride + offset - pad <= size - 1  <=>  z <= (size - 1 + pad - offset) / stride
    let hi = if size + pad > offset { ((size - 1 + pad - offset) / stride + 1).min(out) } else { 0 };
    lo.min(hi)..hi
}

/// Visit every (im2col row, output position) pair that reads an input value: `f(col_index, input_index)` for each
/// run of output width positions, as `(col_start, input_start, len)` with the input advancing by the width stride.
fn for_each_run(g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
    let [d, h, w] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [sd, sh, sw] = g.stride;
    let [pd, ph, pw] = g.padding;
    let [od, oh, ow] = g.out();
    let p = od * oh * ow;
    for ci in 0..g.c {
        for a in 0..kd {
            let zd = valid_range(od, d, sd, a, pd);
            for b in 0..kh {
                let zh = valid_range(oh, h, sh, b, ph);
                for e in 0..kw {
                    let zw = valid_range(ow, w, sw, e, pw);
                    if zw.is_empty() {
                        continue;
                    }
                    let row = ((ci * kd + a) * kh + b) * kw + e;
                    for z1 in zd.clone() {
                        let id = z1 * sd + a - pd;
                        for z2 in zh.clone() {
                            let ih = z2 * sh + b - ph;
                            let iw = zw.start * sw + e - pw;
                            let col = row * p + (z1 * oh + z2) * ow + zw.start;
                            f(col, ((ci * d + id) * h + ih) * w + iw, zw.len());
                        }
                    }
                }
            }
        }
    }
}

/// `col[K, P]` of one clip `x[C, D, H, W]`. Writes only the positions that read the input: those that read padding
/// must already be zero, which holds for a zeroed buffer reused with the same geometry (the written positions are the
/// same every time), as [`per_clip`]'s scratch buffers are.
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    let sw = g.stride[2];
    for_each_run(g, |c0, i0, len| {
        let dst = &mut col[c0..c0 + len];
        if sw == 1 {
            dst.copy_from_slice(&x[i0..i0 + len]);
        } else {
            for (j, v) in dst.iter_mut().enumerate() {
                *v = x[i0 + j * sw];
            }
        }
    });
}

/// Add `col[K, P]` into one clip's input gradient `dx[C, D, H, W]` (the adjoint of [`im2col`]); `dx` starts at zero.
fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    let sw = g.stride[2];
    for_each_run(g, |c0, i0, len| {
        let src = &col[c0..c0 + len];
        if sw == 1 {
            for (d, s) in dx[i0..i0 + len].iter_mut().zip(src) {
                *d += s;
            }
        } else {
            for (j, s) in src.iter().enumerate() {
                dx[i0 + j * sw] += s;
            }
        }
    });
}

/// `dst[m, n] (+)= lhs[m, k] . rhs[k, n]` with (row, column) strides for each operand; `dst` is row-major.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n, "conv kernel: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "conv kernel: lhs out of bounds");
    assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "conv kernel: rhs out of bounds");
    // SAFETY: the asserts above keep every index gemm reads inside `lhs` and `rhs`, and `dst` holds m x n values
    // with row stride n; gemm reads `dst` only when `accumulate` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Whether to run clips in parallel (single-threaded gemm each) rather than one after another (threaded gemm).
fn clips_in_parallel(n: usize) -> bool {
    let threads = rayon::current_num_threads();
    threads <= 1 || n >= threads
}

fn gemm_threads(by_clip: bool) -> gemm::Parallelism {
    if by_clip || rayon::current_num_threads() <= 1 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(0) }
}

/// The im2col matrix of one clip: `x_n` itself for a pointwise convolution, else [`im2col`] into `scratch`.
fn columns<'a>(g: &Geometry, x_n: &'a [f32], scratch: &'a mut [f32]) -> &'a [f32] {
    if g.pointwise() {
        x_n
    } else {
        im2col(g, x_n, scratch);
        scratch
    }
}

/// Length of the per-thread im2col buffer (none for a pointwise convolution).
fn scratch_len(g: &Geometry) -> usize {
    if g.pointwise() { 0 } else { g.k() * g.p() }
}

/// Run `f(clip, out_chunk, scratch)` for every clip, in parallel over clips or one after another.
fn per_clip(
    out: &mut [f32],
    per_clip_len: usize,
    scratch_len: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32], gemm::Parallelism) + Sync,
) {
    if per_clip_len == 0 {
        return;
    }
    let n = out.len() / per_clip_len;
    let by_clip = clips_in_parallel(n);
    let par = gemm_threads(by_clip);
    if by_clip {
        out.par_chunks_mut(per_clip_len)
            .enumerate()
            .for_each_init(|| vec![0.0f32; scratch_len], |scratch, (i, chunk)| f(i, chunk, scratch, par));
    } else {
        let mut scratch = vec![0.0f32; scratch_len];
        for (i, chunk) in out.chunks_mut(per_clip_len).enumerate() {
            f(i, chunk, &mut scratch, par);
        }
    }
}

/// Forward: `x` `[N, C, D, H, W]`, `w` `[O, K]` -> `[N, O, Do, Ho, Wo]`.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    assert_eq!(x.len(), g.n * g.input_len(), "conv kernel: input size");
    assert_eq!(w.len(), o * k, "conv kernel: weight size");
    let mut y = vec![0.0f32; g.n * g.output_len()];
    per_clip(&mut y, g.output_len(), scratch_len(g), |i, y_n, scratch, par| {
        let col = columns(g, &x[i * g.input_len()..(i + 1) * g.input_len()], scratch);
        matmul(y_n, false, (o, p, k), w, (k, 1), col, (p, 1), par);
    });
    y
}

/// Input gradient: `dy` `[N, O, Do, Ho, Wo]`, `w` `[O, K]` -> `[N, C, D, H, W]`.
pub fn input_grad(g: &Geometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    assert_eq!(dy.len(), g.n * g.output_len(), "conv kernel: output gradient size");
    let mut dx = vec![0.0f32; g.n * g.input_len()];
    per_clip(&mut dx, g.input_len(), scratch_len(g), |i, dx_n, dcol, par| {
        let dy_n = &dy[i * g.output_len()..(i + 1) * g.output_len()];
        // W^T: row index k has stride 1, column index o has stride K.
        if g.pointwise() {
            matmul(dx_n, false, (k, p, o), w, (1, k), dy_n, (p, 1), par);
        } else {
            matmul(dcol, false, (k, p, o), w, (1, k), dy_n, (p, 1), par);
            col2im(g, dcol, dx_n);
        }
    });
    dx
}

/// Weight gradient: `x` `[N, C, D, H, W]`, `dy` `[N, O, Do, Ho, Wo]` -> `[O, K]`.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, o, n) = (g.k(), g.p(), g.o, g.n);
    assert_eq!(x.len(), n * g.input_len(), "conv kernel: input size");
    assert_eq!(dy.len(), n * g.output_len(), "conv kernel: output gradient size");
    let chunks = WEIGHT_GRAD_CHUNKS.min(n).max(1);
    let bounds = |j: usize| (j * n / chunks, (j + 1) * n / chunks);
    // One partial sum per chunk; `per_clip` runs the chunks in parallel when there are enough of them.
    let mut partials = vec![0.0f32; chunks * o * k];
    per_clip(&mut partials, o * k, scratch_len(g), |j, dw, scratch, par| {
        let (lo, hi) = bounds(j);
        for i in lo..hi {
            let dy_n = &dy[i * g.output_len()..(i + 1) * g.output_len()];
            let col = columns(g, &x[i * g.input_len()..(i + 1) * g.input_len()], scratch);
            // col^T: row index p has stride 1, column index k has stride P.
            matmul(dw, i > lo, (o, k, p), dy_n, (p, 1), col, (1, p), par);
        }
    });
    let mut dw = partials[..o * k].to_vec();
    for part in partials.chunks(o * k).skip(1) {
        for (a, b) in dw.iter_mut().zip(part) {
            *a += b;
        }
    }
    dw
}

#[cfg(test)]
mod tests {
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
        ];
        for (seed, g) in cases.into_iter().enumerate() {
            let (n, o) = (g.n, g.o);
            let x = values(n * g.input_len(), seed as u64 * 3 + 1);
            let w = values(o * g.k(), seed as u64 * 3 + 2);
            let dy = values(n * g.output_len(), seed as u64 * 3 + 3);
            let want = naive(&g, &x, &w);
            let got = forward(&g, &x, &w);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = got.iter().zip(&want).fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
            assert!(err <= 1e-5 * scale.max(1.0), "{g:?}: forward error {err}");
            // <dy, conv(x, w)> by the definition, and the magnitude of the terms it sums (for the tolerance).
            let lhs = dot(&dy, &want);
            let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
            let size = dot(&abs(&dy), &naive(&g, &abs(&x), &abs(&w)));
            let dx = input_grad(&g, &dy, &w);
            let dw = weight_grad(&g, &x, &dy);
            let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let (via_x, via_w) = (dot(&dx, &to64(&x)), dot(&dw, &to64(&w)));
            // One term of the sum is at least 1/(N*O*P*K) of `size`; float32 rounding is far below that.
            let tol = 1e-6 * size;
            assert!(tol * ((n * o * g.p() * g.k()) as f64) < size, "tolerance must resolve a single term");
            assert!((via_x - lhs).abs() <= tol, "{g:?}: input gradient {via_x} vs {lhs}");
            assert!((via_w - lhs).abs() <= tol, "{g:?}: weight gradient {via_w} vs {lhs}");
        }
    }
}
