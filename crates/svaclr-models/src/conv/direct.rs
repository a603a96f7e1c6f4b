//! Direct spatial convolutions on AVX2 + FMA: `1 x kh x kw` kernels (R(2+1)D's `1x3x3` and `1x7x7` ones, ResNet-9's
//! `3x3` and `7x7`), and temporal `kd x 1 x 1` ones seen as `kd x 1` over the `[D, H*W]` plane, without im2col.
//!
//! A clip's frames are first copied zero-padded in height and width, so that output position `q = h * Wq + w` of a
//! frame reads, for each kernel tap, one value at a constant offset from `q`: every (channel, tap) pair is the same
//! contiguous run shifted by a constant (an "entry"). Unit stride: the layout is `[C, D, Hp, Wp]` and tap `(b, e)`
//! sits at `b * Wp + e`. Stride `(sh, sw)`: each channel is split into its `sh * sw` phases (rows `ry` mod `sh`,
//! columns `rx` mod `sw` of the padded frame), each a `[Hq, Wq]` plane, so that tap `(b, e)` reads phase
//! `(b mod sh, e mod sw)` at `(b / sh) * Wq + e / sw`: a strided convolution is a unit-stride one over the phases.
//! Positions with `w >= Wo` are computed too and never stored (the "padded width").
//!
//! - Forward: a register tile of up to [`OUT_BLOCK`] output channels x 16 positions accumulates, over the entries,
//!   one broadcast weight times two unaligned vector loads: no im2col matrix and no gemm packing, which on our narrow
//!   convolutions (3-64 channels) cost more than the arithmetic.
//! - Input gradient (unit stride only): the forward convolution of the output gradient, padded by
//!   `(kh - 1 - ph, kw - 1 - pw)`, with the kernel flipped in space and its channel axes swapped.
//! - Weight gradient: `dW[o, entry] = sum over frames and q of dy[o, q] * xpad[q + offset(entry)]`, with the output
//!   gradient in the padded-width layout (zeros at `w >= Wo`), as a tile of up to 4 output channels x 3 entries of
//!   vector partial sums, reduced across lanes at the end.
//!
//! Every clip is computed by one thread in a fixed order, so results do not depend on the thread count. The
//! summation order differs from the im2col + gemm path, so the two agree to float32 rounding, not bit for bit.

use super::kernel::Geometry;

/// Lanes of one AVX vector of f32.
const LANES: usize = 8;
/// Output positions per forward register tile (two vectors).
const POSITIONS: usize = 2 * LANES;
/// Output channels per forward register tile.
const OUT_BLOCK: usize = 6;
/// Output channels and entries per weight-gradient register tile.
const WG_OUT: usize = 4;
const WG_TAPS: usize = 3;
/// The smallest share of computed positions that are stored for [`pays`].
const MIN_USEFUL: f64 = 0.75;
/// The fewest vector steps per weight-gradient tile for [`pays`].
const MIN_VECTORS: usize = 16;
/// The largest per-clip working set (bytes) for [`pays`]: three quarters of a 512 KiB L2 cache.
const WORKING_SET: usize = 384 << 10;

/// The convolution the direct kernels compute `g` as on this machine, if they do: its [`form`], when they [pay](pays)
/// on it and the CPU has AVX2 and FMA. Not the thread count: which path runs, and so the result's bits, must not
/// depend on it (a batch with fewer clips than threads runs them one after another, each single-threaded).
pub fn chosen(g: &Geometry) -> Option<Geometry> {
    form(g).filter(pays).filter(|_| crate::cpu::has_avx2_fma())
}

/// Whether `g` is a convolution the direct forward and weight gradient compute: kernel `[1, kh, kw]` larger than
/// `1x1`, no stride or padding in time.
fn covers(g: &Geometry) -> bool {
    let [kd, kh, kw] = g.kernel;
    kd == 1 && kh * kw > 1 && g.stride[0] == 1 && g.padding[0] == 0 && g.output().is_some()
}

/// Whether the direct input gradient computes `g` (a [covered](covers) one): unit stride and at most `k - 1` padding
/// per axis, so that it is a forward convolution of the output gradient.
pub fn covers_input_grad(g: &Geometry) -> bool {
    let ([_, kh, kw], [_, ph, pw]) = (g.kernel, g.padding);
    g.stride == [1, 1, 1] && ph < kh && pw < kw
}

/// The convolution the direct kernels compute `g` as, if any: `g` itself when they [cover](covers) it; a temporal
/// convolution (kernel `[kd, 1, 1]`, unit stride, padding in time only, as R(2+1)D's `3x1x1` outside the
/// downsampling blocks) as the `[1, kd, 1]` one over `[1, D, H * W]`, which is the same arithmetic on the same memory.
pub fn form(g: &Geometry) -> Option<Geometry> {
    let [kd, kh, kw] = g.kernel;
    let [pd, ph, pw] = g.padding;
    let temporal = kh == 1 && kw == 1 && g.stride == [1, 1, 1] && ph == 0 && pw == 0;
    let [d, h, w] = g.input;
    let form = if temporal && !covers(g) {
        Geometry { input: [1, d, h * w], kernel: [1, kd, 1], padding: [0, pd, 0], ..*g }
    } else {
        *g
    };
    covers(&form).then_some(form)
}

/// Whether the direct kernels pay on `g` (a [`form`]), measured per geometry on the CPU preset and at the paper's
/// size (docs/training.md):
/// - at least [`MIN_USEFUL`] of the positions the forward tiles compute are stored (below that, on planes of 4x4 and
///   smaller, the padded width and the rounding to whole tiles waste more than im2col costs);
/// - a weight-gradient tile runs at least [`MIN_VECTORS`] vector steps before its sums are reduced across lanes;
/// - one clip's padded input and padded-width output gradient fit in [`WORKING_SET`] bytes: the tiles have no cache
///   blocking (every tile streams the clip), so on the paper's widths (64 channels of 56 x 56 x 8: 7 MB) they ran
///   the step 1.3-1.5x slower than im2col + gemm, whose gemm blocks for the caches.
pub fn pays(g: &Geometry) -> bool {
    let p = Plane::forward(g);
    let frames = g.input[0];
    let useful = (p.ho * p.wo) as f64 >= MIN_USEFUL * p.positions(POSITIONS) as f64;
    let vectors = frames * p.positions(LANES) / LANES >= MIN_VECTORS;
    let bytes = 4 * (p.padded_len(g.c, frames) + g.o * frames * p.positions(LANES));
    useful && vectors && bytes <= WORKING_SET
}

/// The spatial layout of one pass: input `[h, w]`, padding, kernel, stride, the phase planes and the output.
#[derive(Clone, Copy, Debug)]
struct Plane {
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    /// Phase plane height and width (the padded frame's when the stride is 1).
    hq: usize,
    wq: usize,
    /// Output height and width.
    ho: usize,
    wo: usize,
}

impl Plane {
    fn new([h, w]: [usize; 2], [ph, pw]: [usize; 2], [kh, kw]: [usize; 2], [sh, sw]: [usize; 2]) -> Self {
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let (hq, wq) = (hp.div_ceil(sh), wp.div_ceil(sw));
        Plane { h, w, ph, pw, kh, kw, sh, sw, hq, wq, ho: (hp - kh) / sh + 1, wo: (wp - kw) / sw + 1 }
    }

    /// The plane of `g`'s forward (and weight gradient).
    fn forward(g: &Geometry) -> Self {
        let [_, h, w] = g.input;
        let ([_, ph, pw], [_, kh, kw], [_, sh, sw]) = (g.padding, g.kernel, g.stride);
        Plane::new([h, w], [ph, pw], [kh, kw], [sh, sw])
    }

    /// The plane of `g`'s input gradient as a forward convolution of `dy` ([`covers_input_grad`]).
    fn input_grad(g: &Geometry) -> Self {
        let f = Plane::forward(g);
        Plane::new([f.ho, f.wo], [f.kh - 1 - f.ph, f.kw - 1 - f.pw], [f.kh, f.kw], [1, 1])
    }

    /// Padded-width output positions of one frame, rounded up to `multiple`.
    fn positions(&self, multiple: usize) -> usize {
        (self.ho * self.wq).div_ceil(multiple) * multiple
    }

    /// Values of one phase plane.
    fn frame(&self) -> usize {
        self.hq * self.wq
    }

    fn phases(&self) -> usize {
        self.sh * self.sw
    }

    /// Every (input channel, kernel tap) pair as `(offset, k)`: where its run starts in a padded clip of `cin`
    /// channels and `frames` frames (relative to the frame), and its index `(c * kh + b) * kw + e` in the weight.
    fn entries(&self, cin: usize, frames: usize) -> Vec<(usize, usize)> {
        let (kh, kw, sh, sw) = (self.kh, self.kw, self.sh, self.sw);
        let channel = frames * self.frame();
        let mut out = Vec::with_capacity(cin * kh * kw);
        for c in 0..cin {
            for b in 0..kh {
                for e in 0..kw {
                    let phase = (c * sh + b % sh) * sw + e % sw;
                    out.push((phase * channel + (b / sh) * self.wq + e / sw, (c * kh + b) * kw + e));
                }
            }
        }
        out
    }

    /// Values of a padded clip of `channels x frames`, with the slack the vector tiles read past the last frame.
    fn padded_len(&self, channels: usize, frames: usize) -> usize {
        channels * self.phases() * frames * self.frame() + self.positions(POSITIONS) + self.kh * self.wq + self.kw
    }

    /// Copy `src` `[channels, frames, h, w]` into `dst` zero-padded and split into phases, `[channels, sh, sw,
    /// frames, hq, wq]` (every value of `dst` is written).
    fn pad(&self, src: &[f32], channels: usize, dst: &mut [f32]) {
        let (h, w, wq) = (self.h, self.w, self.wq);
        let planes = src.len() / (h * w);
        let body = planes * self.phases() * self.frame();
        if self.phases() == 1 {
            // One fill per frame, then the rows: per-row fills of the 1-3 padding columns were calls to memset.
            for (frame, out) in src.chunks_exact(h * w).zip(dst[..body].chunks_exact_mut(self.frame())) {
                out.fill(0.0);
                for (row, line) in frame.chunks_exact(w).zip(out[self.ph * wq..].chunks_exact_mut(wq)) {
                    copy_short(&mut line[self.pw..self.pw + w], row);
                }
            }
        } else {
            let (frames, frame) = (planes / channels, self.frame());
            let (sh, sw, ph, pw) = (self.sh, self.sw, self.ph, self.pw);
            for (plane, out) in dst[..body].chunks_exact_mut(frame).enumerate() {
                // Plane index ((c * sh + ry) * sw + rx) * frames + z; its value (r, s) is the padded frame's
                // (sh * r + ry, sw * s + rx), which is x[sh * r + ry - ph, sw * s + rx - pw] or padding.
                let (z, phase) = (plane % frames, plane / frames);
                let (rx, ry, c) = (phase % sw, phase / sw % sh, phase / (sw * sh));
                let x = &src[(c * frames + z) * h * w..][..h * w];
                for (r, line) in out.chunks_exact_mut(wq).enumerate() {
                    let i = (sh * r + ry).wrapping_sub(ph);
                    if i >= h {
                        line.fill(0.0);
                        continue;
                    }
                    for (s, v) in line.iter_mut().enumerate() {
                        let j = (sw * s + rx).wrapping_sub(pw);
                        *v = if j < w { x[i * w + j] } else { 0.0 };
                    }
                }
            }
        }
        dst[body..].fill(0.0);
    }
}
/// `dst.copy_from_slice(src)` for the short rows of a frame (8-64 values) without a call to `memcpy` per row: whole
/// vectors of 8, then the last 8 again (overlapping) for a tail.
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    const V: usize = 8;
    assert_eq!(dst.len(), src.len(), "direct conv: row lengths");
    let n = dst.len();
    if n < V {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        return;
    }
    // As arrays, so that each copy is two vector moves (a slice copy stays a call, even of a constant length).
    let vector = |d: &mut [f32], s: &[f32]| {
        if let (Ok(d), Ok(s)) = (<&mut [f32; V]>::try_from(d), <&[f32; V]>::try_from(s)) {
            *d = *s;
        }
    };
    for (d, s) in dst.chunks_exact_mut(V).zip(src.chunks_exact(V)) {
        vector(d, s);
    }
    if !n.is_multiple_of(V) {
        vector(&mut dst[n - V..], &src[n - V..]);
    }
}

/// The forward tiles' output-channel blocks `(first, size)`: as few as [`OUT_BLOCK`] allows, of nearly equal sizes
/// (8 channels are two tiles of 4, not 6 + 2, whose second would run at a third of the first's throughput).
fn blocks(cout: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = cout.div_ceil(OUT_BLOCK);
    (0..count).map(move |i| (i * cout / count, (i + 1) * cout / count - i * cout / count))
}

/// A forward convolution in the tiles' layout: the entries' offsets, and the weights regrouped into one
/// `[entries, size]` block per [`blocks`] entry.
pub struct Prepared {
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl Prepared {
    /// `get(o, k)` is the weight of output channel `o` at entry index `k` (see [`Plane::entries`]).
    fn new(entries: &[(usize, usize)], cout: usize, get: impl Fn(usize, usize) -> f32) -> Self {
        let mut weights = Vec::with_capacity(cout * entries.len());
        for (o0, nb) in blocks(cout) {
            for &(_, k) in entries {
                weights.extend((0..nb).map(|j| get(o0 + j, k)));
            }
        }
        Prepared { offsets: entries.iter().map(|e| e.0).collect(), weights }
    }
}

/// Forward of `g` (a [`form`]; `w` `[O, K]`) in the tiles' layout.
pub fn forward_weights(g: &Geometry, w: &[f32]) -> Prepared {
    let entries = Plane::forward(g).entries(g.c, g.input[0]);
    Prepared::new(&entries, g.o, |o, k| w[o * g.k() + k])
}

/// Input gradient of `g` ([`covers_input_grad`]): a forward convolution over `dy`'s `O` channels with the kernel
/// flipped in space and the channel axes swapped.
pub fn input_grad_weights(g: &Geometry, w: &[f32]) -> Prepared {
    let taps = g.kernel[1] * g.kernel[2];
    let entries = Plane::input_grad(g).entries(g.o, g.input[0]);
    // Entry k = o * taps + t of the flipped kernel is tap taps - 1 - t of W[o, c].
    Prepared::new(&entries, g.c, |c, k| w[(k / taps * g.c + c) * taps + taps - 1 - k % taps])
}

/// One clip of a forward convolution on the padded input `xp` (`frames` frames per phase plane): `y`
/// `[cout, frames, ho, wo]`. `buf` holds [`OUT_BLOCK`] padded-width output frames.
fn conv_clip(p: &Plane, frames: usize, xp: &[f32], prep: &Prepared, y: &mut [f32], buf: &mut [f32]) {
    let offsets = &prep.offsets;
    let (frame, qn) = (p.frame(), p.positions(POSITIONS));
    let cout = y.len() / (frames * p.ho * p.wo);
    // The furthest value a tile reads: last frame, last tile, furthest entry, second vector's last lane.
    let reach = (frames - 1) * frame + qn - 1 + offsets.iter().max().copied().unwrap_or(0);
    assert!(reach < xp.len() && prep.weights.len() == cout * offsets.len() && buf.len() >= OUT_BLOCK * qn);
    for z in 0..frames {
        for (o0, nb) in blocks(cout) {
            let w = &prep.weights[o0 * offsets.len()..];
            for q in (0..qn).step_by(POSITIONS) {
                let x = &xp[z * frame + q..];
                let out = &mut buf[q..];
                // SAFETY: AVX2 and FMA were checked by the caller ([`chosen`]); the assert
                // above bounds every read of `x` (at most `reach - z * frame - q` past its start) and `w`
                // (`offsets.len() * nb` values), and `out` holds `nb` rows of stride `qn` from `q` with `POSITIONS`
                // values each.
                unsafe {
                    match nb {
                        6 => tile::<6>(x, offsets, w, out, qn),
                        5 => tile::<5>(x, offsets, w, out, qn),
                        4 => tile::<4>(x, offsets, w, out, qn),
                        3 => tile::<3>(x, offsets, w, out, qn),
                        2 => tile::<2>(x, offsets, w, out, qn),
                        _ => tile::<1>(x, offsets, w, out, qn),
                    }
                }
            }
            for j in 0..nb {
                let dst = &mut y[((o0 + j) * frames + z) * p.ho * p.wo..][..p.ho * p.wo];
                for (h, row) in dst.chunks_exact_mut(p.wo).enumerate() {
                    copy_short(row, &buf[j * qn + h * p.wq..][..p.wo]);
                }
            }
        }
    }
}

/// `out[j * stride + i] = sum over entries e of w[e * NB + j] * x[offsets[e] + i]` for `j < NB`, `i < POSITIONS`.
///
/// # Safety
/// AVX2 and FMA are available; `x` is readable to `max(offsets) + POSITIONS`, `w` to `offsets.len() * NB`, `out`
/// writable to `(NB - 1) * stride + POSITIONS`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn tile<const NB: usize>(x: &[f32], offsets: &[usize], w: &[f32], out: &mut [f32], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract bounds every pointer below.
    unsafe {
        use std::arch::x86_64::*;
        let (x, mut w, out) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let mut acc = [[_mm256_setzero_ps(); 2]; NB];
        for &off in offsets {
            let x0 = _mm256_loadu_ps(x.add(off));
            let x1 = _mm256_loadu_ps(x.add(off + LANES));
            for (j, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*w.add(j));
                a[0] = _mm256_fmadd_ps(x0, wv, a[0]);
                a[1] = _mm256_fmadd_ps(x1, wv, a[1]);
            }
            w = w.add(NB);
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(j * stride), a[0]);
            _mm256_storeu_ps(out.add(j * stride + LANES), a[1]);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv: AVX2 is never detected off x86-64, so no tile runs");
}

/// Scratch values per clip of [`forward_clip`], [`input_grad_clip`] and [`weight_grad_clip`] for `g` (a [`form`]).
pub fn scratch_len(g: &Geometry) -> usize {
    let (fwd, frames) = (Plane::forward(g), g.input[0]);
    let forward = fwd.padded_len(g.c, frames) + OUT_BLOCK * fwd.positions(POSITIONS);
    let weight = fwd.padded_len(g.c, frames) + g.o * frames * fwd.positions(LANES);
    let backward = if covers_input_grad(g) {
        let bwd = Plane::input_grad(g);
        bwd.padded_len(g.o, frames) + OUT_BLOCK * bwd.positions(POSITIONS)
    } else {
        0
    };
    forward.max(backward).max(weight)
}

/// One clip of the forward: `x_n` `[C, D, H, W]` -> `y_n` `[O, D, Ho, Wo]`, `prep` from [`forward_weights`].
pub fn forward_clip(g: &Geometry, x_n: &[f32], prep: &Prepared, y_n: &mut [f32], scratch: &mut [f32]) {
    let p = Plane::forward(g);
    let (xp, buf) = scratch.split_at_mut(p.padded_len(g.c, g.input[0]));
    p.pad(x_n, g.c, xp);
    conv_clip(&p, g.input[0], xp, prep, y_n, buf);
}

/// One clip of the input gradient: `dy_n` `[O, D, Ho, Wo]` -> `dx_n` `[C, D, H, W]`, `prep` from
/// [`input_grad_weights`].
pub fn input_grad_clip(g: &Geometry, dy_n: &[f32], prep: &Prepared, dx_n: &mut [f32], scratch: &mut [f32]) {
    let p = Plane::input_grad(g);
    let (dyp, buf) = scratch.split_at_mut(p.padded_len(g.o, g.input[0]));
    p.pad(dy_n, g.o, dyp);
    conv_clip(&p, g.input[0], dyp, prep, dx_n, buf);
}

/// The weight gradient's `(offset, k)` pairs of `g` (see [`Plane::entries`]), computed once per call for every
/// clip's [`weight_grad_clip`].
pub fn weight_grad_entries(g: &Geometry) -> Vec<(usize, usize)> {
    Plane::forward(g).entries(g.c, g.input[0])
}

/// Add one clip's weight gradient to `dw_t` `[K, O]` (K = `(c * kh + b) * kw + e`, the transpose of `dW`):
/// `x_n` `[C, D, H, W]`, `dy_n` `[O, D, Ho, Wo]`, `entries` from [`weight_grad_entries`].
pub fn weight_grad_clip(
    g: &Geometry,
    entries: &[(usize, usize)],
    x_n: &[f32],
    dy_n: &[f32],
    dw_t: &mut [f32],
    scratch: &mut [f32],
) {
    let p = Plane::forward(g);
    let (frames, o) = (g.input[0], g.o);
    let (xp, dyq) = scratch.split_at_mut(p.padded_len(g.c, frames));
    p.pad(x_n, g.c, xp);
    // dy in the padded-width layout [O, D, qn], zero where w >= Wo and past the frame's last position.
    let qn = p.positions(LANES);
    let dyq = &mut dyq[..o * frames * qn];
    for (src, dst) in dy_n.chunks_exact(p.ho * p.wo).zip(dyq.chunks_exact_mut(qn)) {
        dst.fill(0.0);
        for (row, line) in src.chunks_exact(p.wo).zip(dst.chunks_exact_mut(p.wq)) {
            copy_short(&mut line[..p.wo], row);
        }
    }
    let frame = p.frame();
    let reach = (frames - 1) * frame + qn - 1 + entries.iter().map(|e| e.0).max().unwrap_or(0);
    assert!(reach < xp.len() && dw_t.len() == g.k() * o);
    let mut sums = [[0.0f32; WG_TAPS]; WG_OUT];
    for group in entries.chunks(WG_TAPS) {
        let mut offsets = [0usize; WG_TAPS];
        for (dst, e) in offsets.iter_mut().zip(group) {
            *dst = e.0;
        }
        let offsets = &offsets[..group.len()];
        for o0 in (0..o).step_by(WG_OUT) {
            let no = WG_OUT.min(o - o0);
            let dy = &dyq[o0 * frames * qn..];
            let d = (frames, frame, qn);
            // SAFETY: AVX2 and FMA were checked by the caller ([`chosen`]); `reach` bounds the reads of `x` (frames, positions
            // and the entries' offsets), and `dy` holds `no` rows of `frames * qn`.
            unsafe {
                match (no, offsets.len()) {
                    (4, 3) => wg_tile::<4, 3>(xp, offsets, dy, d, &mut sums),
                    (3, 3) => wg_tile::<3, 3>(xp, offsets, dy, d, &mut sums),
                    (2, 3) => wg_tile::<2, 3>(xp, offsets, dy, d, &mut sums),
                    (1, 3) => wg_tile::<1, 3>(xp, offsets, dy, d, &mut sums),
                    (4, 2) => wg_tile::<4, 2>(xp, offsets, dy, d, &mut sums),
                    (3, 2) => wg_tile::<3, 2>(xp, offsets, dy, d, &mut sums),
                    (2, 2) => wg_tile::<2, 2>(xp, offsets, dy, d, &mut sums),
                    (1, 2) => wg_tile::<1, 2>(xp, offsets, dy, d, &mut sums),
                    (4, _) => wg_tile::<4, 1>(xp, offsets, dy, d, &mut sums),
                    (3, _) => wg_tile::<3, 1>(xp, offsets, dy, d, &mut sums),
                    (2, _) => wg_tile::<2, 1>(xp, offsets, dy, d, &mut sums),
                    _ => wg_tile::<1, 1>(xp, offsets, dy, d, &mut sums),
                }
            }
            for (j, row) in sums.iter().enumerate().take(no) {
                for (v, e) in row.iter().zip(group) {
                    dw_t[e.1 * o + o0 + j] += v;
                }
            }
        }
    }
}

/// `sums[j][i] = sum over frames z and positions q < qn of dy[j * frames * qn + z * qn + q] *
/// x[z * frame + q + offsets[i]]` for `j < NO`, `i < NE`.
///
/// # Safety
/// AVX2 and FMA are available; `offsets` has `NE` entries; `x` is readable to
/// `(frames - 1) * frame + qn - 1 + max(offsets)`, `dy` to `NO * frames * qn`; `qn` is a multiple of [`LANES`].
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn wg_tile<const NO: usize, const NE: usize>(
    x: &[f32],
    offsets: &[usize],
    dy: &[f32],
    (frames, frame, qn): (usize, usize, usize),
    sums: &mut [[f32; WG_TAPS]; WG_OUT],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract bounds every pointer below.
    unsafe {
        use std::arch::x86_64::*;
        let (x, dy) = (x.as_ptr(), dy.as_ptr());
        let mut off = [0usize; NE];
        off.copy_from_slice(&offsets[..NE]);
        let mut acc = [[_mm256_setzero_ps(); NE]; NO];
        for z in 0..frames {
            let (xz, dz) = (x.add(z * frame), dy.add(z * qn));
            for q in (0..qn).step_by(LANES) {
                let mut xv = [_mm256_setzero_ps(); NE];
                for (i, v) in xv.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(xz.add(q + off[i]));
                }
                for (j, a) in acc.iter_mut().enumerate() {
                    let d = _mm256_loadu_ps(dz.add(j * frames * qn + q));
                    for (ai, xi) in a.iter_mut().zip(&xv) {
                        *ai = _mm256_fmadd_ps(d, *xi, *ai);
                    }
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            for (i, v) in a.iter().enumerate() {
                // Lanes summed pairwise in a fixed order.
                let s = _mm_add_ps(_mm256_castps256_ps128(*v), _mm256_extractf128_ps::<1>(*v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
                sums[j][i] = _mm_cvtss_f32(s);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv: AVX2 is never detected off x86-64, so no tile runs");
}
