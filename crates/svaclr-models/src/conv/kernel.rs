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
//! A pointwise convolution (1x1x1, stride 1, no padding) skips im2col: `col_n` is `x_n` itself. On a CPU with AVX2
//! and FMA, the spatial (any stride) and unit-stride temporal convolutions of large enough planes run the direct
//! kernels of [`super::direct`] instead (see [`super::direct::chosen`]; strided input gradients excepted); the im2col + gemm path
//! stays for everything else and other CPUs.
//!
//! Threads: clips run in parallel (each with its own im2col buffer and a single-threaded gemm) when the batch has
//! at least as many clips as threads; otherwise clips run one after another with a threaded gemm. The weight
//! gradient is summed in a fixed number of batch chunks whose partial sums are added in order, so every result is
//! the same bit for bit whatever the thread count or scheduling.

use rayon::prelude::*;

use super::direct;

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

    /// A temporal convolution (kernel `[kd, 1, 1]`, unit strides, padding in time only, as R(2+1)D's `(3, 1, 1)`
    /// convolutions outside the downsampling blocks) runs without im2col: see [`taps`].
    fn temporal(&self) -> bool {
        let [_, kh, kw] = self.kernel;
        kh == 1 && kw == 1 && self.stride == [1, 1, 1] && self.padding[1..] == [0, 0] && !self.pointwise()
    }
}

/// One kernel tap of a temporal convolution over the output frames it reaches, in elements of one channel's
/// `[D, H, W]` block: tap `a` maps output frame `z` to input frame `z + a - pd`, so over its frames it is a
/// `[O, C] x [C, len]` matrix product whose right operand is the input itself from element `input` on (channel
/// stride `D*H*W`), written to the output from element `output` on (channel stride `Do*H*W`).
struct Tap {
    a: usize,
    output: usize,
    input: usize,
    len: usize,
}

/// The taps of a temporal convolution that reach at least one output frame.
fn taps(g: &Geometry) -> impl Iterator<Item = Tap> {
    let (od, d, pd, hw) = (g.out()[0], g.input[0], g.padding[0], g.input[1] * g.input[2]);
    (0..g.kernel[0]).filter_map(move |a| {
        let z = valid_range(od, d, 1, a, pd);
        (!z.is_empty()).then(|| Tap { a, output: z.start * hw, input: (z.start + a - pd) * hw, len: z.len() * hw })
    })
}

/// The output indices `z` in `0..out` whose input index `z * stride + offset - pad` lies in `0..size`.
fn valid_range(out: usize, size: usize, stride: usize, offset: usize, pad: usize) -> std::ops::Range<usize> {
    // z * stride + offset >= pad  <=>  z >= ceil((pad - offset) / stride)
    let lo = if offset >= pad { 0 } else { (pad - offset).div_ceil(stride) };
    // z * stride + offset - pad <= size - 1  <=>  z <= (size - 1 + pad - offset) / stride
    let hi = if size + pad > offset { ((size - 1 + pad - offset) / stride + 1).min(out) } else { 0 };
    lo.min(hi)..hi
}

/// Visit every (im2col row, output position) pair that reads an input value (for [`col2im`]):
/// `f(col_index, input_index)` for each run of output width positions, as `(col_start, input_start, len)` with the
/// input advancing by the width stride.
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

/// `col[K, P]` of one clip `x[C, D, H, W]`. Writes every value of `col`, zeros where the kernel reads padding, so
/// the buffer may hold anything before (the per-thread scratch of [`with_scratch`] is reused across geometries).
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    let [d, h, w] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [sd, sh, sw] = g.stride;
    let [pd, ph, pw] = g.padding;
    let [od, oh, ow] = g.out();
    let col = &mut col[..g.k() * od * oh * ow];
    // One im2col row per (channel, kernel offset), each `od` planes of `oh` lines of `ow` positions.
    for (row, dst_row) in col.chunks_exact_mut(od * oh * ow).enumerate() {
        let (e, b, a, ci) = (row % kw, row / kw % kh, row / (kw * kh) % kd, row / (kw * kh * kd));
        let zd = valid_range(od, d, sd, a, pd);
        let zh = valid_range(oh, h, sh, b, ph);
        let zw = valid_range(ow, w, sw, e, pw);
        for (z1, plane) in dst_row.chunks_exact_mut(oh * ow).enumerate() {
            if !zd.contains(&z1) || zw.is_empty() {
                plane.fill(0.0);
                continue;
            }
            let id = z1 * sd + a - pd;
            for (z2, line) in plane.chunks_exact_mut(ow).enumerate() {
                if !zh.contains(&z2) {
                    line.fill(0.0);
                    continue;
                }
                let ih = z2 * sh + b - ph;
                let i0 = ((ci * d + id) * h + ih) * w + zw.start * sw + e - pw;
                line[..zw.start].fill(0.0);
                let run = &mut line[zw.clone()];
                if sw == 1 {
                    run.copy_from_slice(&x[i0..i0 + run.len()]);
                } else {
                    // One bounds check for the run, not one per value; stride 2 (the stem, the downsampling
                    // blocks) as pairs, which the compiler turns into shuffles.
                    let src = &x[i0..=i0 + (run.len() - 1) * sw];
                    if sw == 2 {
                        let (body, last) = run.split_at_mut(run.len() - 1);
                        for (v, pair) in body.iter_mut().zip(src.chunks_exact(2)) {
                            *v = pair[0];
                        }
                        last[0] = src[src.len() - 1];
                    } else {
                        for (v, s) in run.iter_mut().zip(src.iter().step_by(sw)) {
                            *v = *s;
                        }
                    }
                }
                line[zw.end..].fill(0.0);
            }
        }
    }
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
            for (d, s) in dx[i0..=i0 + (len - 1) * sw].iter_mut().step_by(sw).zip(src) {
                *d += s;
            }
        }
    });
}

/// `dst[m, n] (+)= lhs[m, k] . rhs[k, n]` with (row, column) strides for every operand.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_rs + (n - 1) * dst_cs < dst.len(), "conv kernel: destination too small");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "conv kernel: lhs out of bounds");
    assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "conv kernel: rhs out of bounds");
    // SAFETY: the asserts above keep every index gemm touches inside `dst`, `lhs` and `rhs`; gemm reads `dst` only
    // when `accumulate` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
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

thread_local! {
    /// Each thread's scratch memory (im2col matrices, transposed output gradients), kept between calls: allocating
    /// and zeroing it per call and per rayon split cost page faults and memsets in every convolution.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Run `f` with this thread's scratch memory of at least `len` values (contents arbitrary). Re-entry (a rayon job
/// stolen while `f` waits) finds the buffer taken and uses a fresh one, so it never aliases.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.take();
    if buf.len() < len {
        buf = vec![0.0; len];
    }
    let r = f(&mut buf[..len]);
    SCRATCH.set(buf);
    r
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

/// Length of the per-thread im2col buffer (none for a pointwise or temporal convolution).
fn scratch_len(g: &Geometry) -> usize {
    if g.pointwise() || g.temporal() { 0 } else { g.k() * g.p() }
}

/// Run `f(clip, out_chunk, scratch)` for every clip, in parallel over clips or one after another; `scratch` holds
/// `scratch_len` values of arbitrary contents.
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
            .for_each(|(i, chunk)| with_scratch(scratch_len, |scratch| f(i, chunk, scratch, par)));
    } else {
        with_scratch(scratch_len, |scratch| {
            for (i, chunk) in out.chunks_mut(per_clip_len).enumerate() {
                f(i, chunk, scratch, par);
            }
        });
    }
}

/// Forward: `x` `[N, C, D, H, W]`, `w` `[O, K]` -> `[N, O, Do, Ho, Wo]`.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    forward_with(g, x, w, direct::chosen(g))
}

/// [`forward`] on the direct kernels when `form` (the convolution they compute `g` as), else on im2col + gemm.
fn forward_with(g: &Geometry, x: &[f32], w: &[f32], form: Option<Geometry>) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    assert_eq!(x.len(), g.n * g.input_len(), "conv kernel: input size");
    assert_eq!(w.len(), o * k, "conv kernel: weight size");
    let mut y = vec![0.0f32; g.n * g.output_len()];
    let blocked = form.map(|d| direct::forward_weights(&d, w));
    let scratch = form.map_or_else(|| scratch_len(g), |d| direct::scratch_len(&d));
    per_clip(&mut y, g.output_len(), scratch, |i, y_n, scratch, par| {
        let x_n = &x[i * g.input_len()..(i + 1) * g.input_len()];
        if let (Some(d), Some(wb)) = (&form, &blocked) {
            direct::forward_clip(d, x_n, wb, y_n, scratch);
        } else if g.temporal() {
            let (kd, channel) = (g.kernel[0], g.input_len() / g.c);
            for t in taps(g) {
                // y_n[:, z] += W[:, tap a] . x_n[:, z + a - pd]; W's tap a: row index o stride K, column index c
                // stride kd. y_n starts at zero.
                let (dst, src) = (&mut y_n[t.output..], &x_n[t.input..]);
                matmul(dst, (p, 1), true, (o, t.len, g.c), &w[t.a..], (k, kd), src, (channel, 1), par);
            }
        } else {
            let col = columns(g, x_n, scratch);
            matmul(y_n, (p, 1), false, (o, p, k), w, (k, 1), col, (p, 1), par);
        }
    });
    y
}

/// Input gradient: `dy` `[N, O, Do, Ho, Wo]`, `w` `[O, K]` -> `[N, C, D, H, W]`.
pub fn input_grad(g: &Geometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    input_grad_with(g, dy, w, direct::chosen(g))
}

/// [`input_grad`] on the direct kernels when `form` and they compute this gradient (unit stride), else on
/// im2col + gemm.
fn input_grad_with(g: &Geometry, dy: &[f32], w: &[f32], form: Option<Geometry>) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    assert_eq!(dy.len(), g.n * g.output_len(), "conv kernel: output gradient size");
    let mut dx = vec![0.0f32; g.n * g.input_len()];
    let form = form.filter(direct::covers_input_grad);
    let blocked = form.map(|d| direct::input_grad_weights(&d, w));
    let scratch = form.map_or_else(|| scratch_len(g), |d| direct::scratch_len(&d));
    per_clip(&mut dx, g.input_len(), scratch, |i, dx_n, dcol, par| {
        let dy_n = &dy[i * g.output_len()..(i + 1) * g.output_len()];
        // W^T: row index k has stride 1, column index o has stride K.
        if let (Some(d), Some(wb)) = (&form, &blocked) {
            direct::input_grad_clip(d, dy_n, wb, dx_n, dcol);
        } else if g.pointwise() {
            matmul(dx_n, (p, 1), false, (k, p, o), w, (1, k), dy_n, (p, 1), par);
        } else if g.temporal() {
            let (kd, channel) = (g.kernel[0], g.input_len() / g.c);
            for t in taps(g) {
                // dx_n[:, z + a - pd] += W[:, tap a]^T . dy_n[:, z]; W's tap a transposed: row index c stride kd,
                // column index o stride K. dx_n starts at zero.
                let (dst, src) = (&mut dx_n[t.input..], &dy_n[t.output..]);
                matmul(dst, (channel, 1), true, (g.c, t.len, o), &w[t.a..], (kd, k), src, (p, 1), par);
            }
        } else {
            matmul(dcol, (p, 1), false, (k, p, o), w, (1, k), dy_n, (p, 1), par);
            col2im(g, dcol, dx_n);
        }
    });
    dx
}

/// Weight gradient: `x` `[N, C, D, H, W]`, `dy` `[N, O, Do, Ho, Wo]` -> `[O, K]`.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    weight_grad_with(g, x, dy, direct::chosen(g))
}

/// [`weight_grad`] on the direct kernels when `form`, else on im2col + gemm.
fn weight_grad_with(g: &Geometry, x: &[f32], dy: &[f32], form: Option<Geometry>) -> Vec<f32> {
    let (k, p, o, n) = (g.k(), g.p(), g.o, g.n);
    assert_eq!(x.len(), n * g.input_len(), "conv kernel: input size");
    assert_eq!(dy.len(), n * g.output_len(), "conv kernel: output gradient size");
    let chunks = WEIGHT_GRAD_CHUNKS.min(n).max(1);
    let bounds = |j: usize| (j * n / chunks, (j + 1) * n / chunks);
    let col_len = scratch_len(g);
    // One partial sum per chunk, each `[K, O]` (dW transposed); `per_clip` runs the chunks in parallel when there are
    // enough of them. The scratch holds the im2col matrix and `dy_n` transposed to `[P, O]`. The layouts are
    // gemm's: it works column-major and packs its left operand along the output rows, so `dW[O, K]` is computed
    // column-major from `dy_n` with O contiguous; the natural row-major `dy_n . col^T` makes gemm transpose the
    // problem and pack `col` (`[K, P]`, P contiguous) with a strided gather as large as im2col itself.
    let mut partials = vec![0.0f32; chunks * o * k];
    let entries = form.map(|d| direct::weight_grad_entries(&d));
    let scratch = form.map_or(col_len + p * o, |d| direct::scratch_len(&d));
    per_clip(&mut partials, o * k, scratch, |j, dw_t, scratch, par| {
        let (lo, hi) = bounds(j);
        if let (Some(d), Some(entries)) = (&form, &entries) {
            for i in lo..hi {
                let x_n = &x[i * g.input_len()..(i + 1) * g.input_len()];
                let dy_n = &dy[i * g.output_len()..(i + 1) * g.output_len()];
                direct::weight_grad_clip(d, entries, x_n, dy_n, dw_t, scratch);
            }
            return;
        }
        let (scratch, dyt) = scratch.split_at_mut(col_len);
        for i in lo..hi {
            let dy_n = &dy[i * g.output_len()..(i + 1) * g.output_len()];
            for (oi, dy_row) in dy_n.chunks_exact(p).enumerate() {
                for (pi, v) in dy_row.iter().enumerate() {
                    dyt[pi * o + oi] = *v;
                }
            }
            let x_n = &x[i * g.input_len()..(i + 1) * g.input_len()];
            if g.temporal() {
                let (kd, channel) = (g.kernel[0], g.input_len() / g.c);
                for t in taps(g) {
                    // dW[:, tap a] += dy_n[:, z] . x_n[:, z + a - pd]^T, column-major: dW's tap a has row index o
                    // stride 1 and column index c stride kd*O; x_n shifted and transposed: row index (frame,
                    // pixel) stride 1, column index c stride D*H*W. The partial sums start at zero.
                    let (dst, lhs, rhs) = (&mut dw_t[t.a * o..], &dyt[t.output * o..], &x_n[t.input..]);
                    matmul(dst, (1, kd * o), true, (o, g.c, t.len), lhs, (1, o), rhs, (1, channel), par);
                }
            } else {
                let col = columns(g, x_n, scratch);
                // dW column-major (row index o has stride 1, column index k stride O); dy_n from its transpose
                // (row index o has stride 1, column index p has stride O); col^T (row index p has stride 1, column
                // index k has stride P).
                matmul(dw_t, (1, o), i > lo, (o, k, p), dyt, (1, o), col, (1, p), par);
            }
        }
    });
    let (first, rest) = partials.split_at_mut(o * k);
    for part in rest.chunks(o * k) {
        for (a, b) in first.iter_mut().zip(part) {
            *a += b;
        }
    }
    // [K, O] -> [O, K].
    let mut dw = vec![0.0f32; o * k];
    for (ki, row) in first.chunks_exact(o).enumerate() {
        for (oi, v) in row.iter().enumerate() {
            dw[oi * k + ki] = *v;
        }
    }
    dw
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
