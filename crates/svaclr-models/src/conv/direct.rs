//! Direct spatial convolutions on AVX2 + FMA: `1 x kh x kw` kernels with unit stride (R(2+1)D's `1x3x3`
//! convolutions outside the downsampling blocks, ResNet-9's `3x3` ones), without im2col.
//!
//! A clip's frames are first copied zero-padded in height and width into `[C, D, Hp, Wp]` (plus slack at the
//! end). In that layout output position `q = h * Wp + w` of a frame reads, for kernel tap `(b, e)`, the padded frame
//! at `q + b * Wp + e`: every tap is the same contiguous run shifted by a constant. Positions with `w >= Wo` are
//! computed too and never stored (the "padded width"); they cost `Wp / Wo - 1` extra work.
//!
//! - Forward: a register tile of up to [`OUT_BLOCK`] output channels x 16 positions accumulates, over input channels
//!   and taps, one broadcast weight times two unaligned vector loads of the padded input: no im2col matrix and no
//!   packing, which on our narrow convolutions (8-64 channels) cost more than the arithmetic.
//! - Input gradient: for unit stride it is the forward convolution of the output gradient, padded by
//!   `(kh - 1 - ph, kw - 1 - pw)`, with the kernel flipped in space and its channel axes swapped.
//! - Weight gradient: `dW[o, c, b, e] = sum over frames and q of dy[o, q] * xpad[c, q + b * Wp + e]`, with the
//!   output gradient in the padded-width layout (zeros at `w >= Wo`), as a tile of up to 4 output channels x 3
//!   kernel columns of vector partial sums, reduced across lanes at the end.
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
/// Output channels and kernel taps per weight-gradient register tile.
const WG_OUT: usize = 4;
const WG_TAPS: usize = 3;

/// Whether this CPU runs the direct kernels (x86-64 with AVX2 and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `g` is a convolution the direct kernels compute: kernel `[1, kh, kw]` larger than `1x1`, unit stride,
/// no time padding and at most `k - 1` padding per spatial axis (so the input gradient is a forward convolution).
pub fn covers(g: &Geometry) -> bool {
    let [kd, kh, kw] = g.kernel;
    let [pd, ph, pw] = g.padding;
    kd == 1 && kh * kw > 1 && g.stride == [1, 1, 1] && pd == 0 && ph < kh && pw < kw && g.output().is_some()
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

/// Whether the direct kernels pay on `g`: it is [`covered`](covers), and at least [`MIN_USEFUL`] of the positions
/// the forward tiles compute are stored. Below that (planes of 4x4 and smaller) the padded width and the rounding to
/// whole tiles waste more than im2col costs; measured per geometry on the CPU preset (docs/training.md).
pub fn pays(g: &Geometry) -> bool {
    covers(g) && {
        let (p, _) = planes(g);
        (p.ho * p.wo) as f64 >= MIN_USEFUL * p.positions(POSITIONS) as f64
    }
}

/// The smallest share of computed positions that are stored for [`pays`].
const MIN_USEFUL: f64 = 0.75;

/// The spatial layout shared by the three passes: input `[h, w]`, padding, kernel, and the padded frame.
#[derive(Clone, Copy, Debug)]
pub struct Plane {
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    /// Padded frame width and height.
    wp: usize,
    hp: usize,
    /// Output height and width.
    ho: usize,
    wo: usize,
}

impl Plane {
    fn new([h, w]: [usize; 2], [ph, pw]: [usize; 2], [kh, kw]: [usize; 2]) -> Self {
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        Plane { h, w, ph, pw, kh, kw, wp, hp, ho: hp + 1 - kh, wo: wp + 1 - kw }
    }

    /// Padded-width output positions of one frame, rounded up to `multiple`.
    fn positions(&self, multiple: usize) -> usize {
        (self.ho * self.wp).div_ceil(multiple) * multiple
    }

    fn frame(&self) -> usize {
        self.hp * self.wp
    }

    /// Offset of tap `(b, e)` in the padded frame.
    fn taps(&self) -> Vec<usize> {
        (0..self.kh).flat_map(|b| (0..self.kw).map(move |e| b * self.wp + e)).collect()
    }

    /// Values of a padded clip of `channels x frames`, with the slack the vector tiles read past the last frame.
    fn padded_len(&self, channels: usize, frames: usize) -> usize {
        channels * frames * self.frame() + self.positions(POSITIONS) + self.kh * self.wp + self.kw
    }

    /// Copy `src` `[channels, frames, h, w]` into `dst` zero-padded (every value of `dst` is written).
    fn pad(&self, src: &[f32], dst: &mut [f32]) {
        let (h, w, wp) = (self.h, self.w, self.wp);
        let planes = src.len() / (h * w);
        let body = planes * self.frame();
        for (frame, out) in src.chunks_exact(h * w).zip(dst[..body].chunks_exact_mut(self.frame())) {
            out[..self.ph * wp].fill(0.0);
            for (row, line) in frame.chunks_exact(w).zip(out[self.ph * wp..].chunks_exact_mut(wp)) {
                line[..self.pw].fill(0.0);
                line[self.pw..self.pw + w].copy_from_slice(row);
                line[self.pw + w..].fill(0.0);
            }
            out[(self.ph + h) * wp..].fill(0.0);
        }
        dst[body..].fill(0.0);
    }
}

/// The forward tiles' output-channel blocks `(first, size)`: as few as [`OUT_BLOCK`] allows, of nearly equal sizes
/// (8 channels are two tiles of 4, not 6 + 2, whose second would run at a third of the first's throughput).
fn blocks(cout: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = cout.div_ceil(OUT_BLOCK);
    (0..count).map(move |i| (i * cout / count, (i + 1) * cout / count - i * cout / count))
}

/// Weights `[cout, cin, taps]` (through `get(o, c, t)`) regrouped for the forward tiles: one `[cin, taps, size]`
/// block per [`blocks`] entry.
fn blocked(cout: usize, cin: usize, taps: usize, get: impl Fn(usize, usize, usize) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(cout * cin * taps);
    for (o0, nb) in blocks(cout) {
        for c in 0..cin {
            for t in 0..taps {
                out.extend((0..nb).map(|j| get(o0 + j, c, t)));
            }
        }
    }
    out
}

/// One clip of a forward convolution on the padded input `xp` (`cin` channels of `frames` padded frames): `y`
/// `[cout, frames, ho, wo]` from the blocked weights `wb`. `buf` holds [`OUT_BLOCK`] padded-width output frames.
fn conv_clip(p: &Plane, cin: usize, frames: usize, xp: &[f32], wb: &[f32], y: &mut [f32], buf: &mut [f32]) {
    let taps = p.taps();
    let (frame, qn) = (p.frame(), p.positions(POSITIONS));
    let cout = y.len() / (frames * p.ho * p.wo);
    let channel = frames * frame;
    // The furthest value a tile reads: last channel, last frame, last tile, last tap, second vector's last lane.
    let reach = (cin - 1) * channel + (frames - 1) * frame + qn - 1 + taps[taps.len() - 1];
    assert!(reach < xp.len() && wb.len() == cout * cin * taps.len() && buf.len() >= OUT_BLOCK * qn);
    for z in 0..frames {
        for (o0, nb) in blocks(cout) {
            let w = &wb[o0 * cin * taps.len()..];
            for q in (0..qn).step_by(POSITIONS) {
                let x = &xp[z * frame + q..];
                let out = &mut buf[q..];
                // SAFETY: `available()` was checked by the caller (see `applies_here`); the assert above bounds
                // every read of `x` (at most `reach - z * frame - q` past its start) and `w` (`cin * taps * nb`),
                // and `out` holds `nb` rows of stride `qn` from `q` with `POSITIONS` values each.
                unsafe {
                    match nb {
                        6 => tile::<6>(x, channel, &taps, cin, w, out, qn),
                        5 => tile::<5>(x, channel, &taps, cin, w, out, qn),
                        4 => tile::<4>(x, channel, &taps, cin, w, out, qn),
                        3 => tile::<3>(x, channel, &taps, cin, w, out, qn),
                        2 => tile::<2>(x, channel, &taps, cin, w, out, qn),
                        _ => tile::<1>(x, channel, &taps, cin, w, out, qn),
                    }
                }
            }
            for j in 0..nb {
                let dst = &mut y[((o0 + j) * frames + z) * p.ho * p.wo..][..p.ho * p.wo];
                for (h, row) in dst.chunks_exact_mut(p.wo).enumerate() {
                    row.copy_from_slice(&buf[j * qn + h * p.wp..][..p.wo]);
                }
            }
        }
    }
}

/// `out[j * stride + i] = sum over c < cin, t of w[(c * taps + t) * NB + j] * x[c * channel + taps[t] + i]` for
/// `j < NB`, `i < POSITIONS`.
///
/// # Safety
/// AVX2 and FMA are available; `x` is readable to `(cin - 1) * channel + max(taps) + POSITIONS`, `w` to
/// `cin * taps.len() * NB`, `out` writable to `(NB - 1) * stride + POSITIONS`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const NB: usize>(
    x: &[f32],
    channel: usize,
    taps: &[usize],
    cin: usize,
    w: &[f32],
    out: &mut [f32],
    stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract bounds every pointer below.
    unsafe {
        use std::arch::x86_64::*;
        let (x, mut w, out) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let mut acc = [[_mm256_setzero_ps(); 2]; NB];
        for c in 0..cin {
            let xc = x.add(c * channel);
            for &t in taps {
                let x0 = _mm256_loadu_ps(xc.add(t));
                let x1 = _mm256_loadu_ps(xc.add(t + LANES));
                for (j, a) in acc.iter_mut().enumerate() {
                    let wv = _mm256_broadcast_ss(&*w.add(j));
                    a[0] = _mm256_fmadd_ps(x0, wv, a[0]);
                    a[1] = _mm256_fmadd_ps(x1, wv, a[1]);
                }
                w = w.add(NB);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(j * stride), a[0]);
            _mm256_storeu_ps(out.add(j * stride + LANES), a[1]);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv: `available()` is false off x86-64, so no tile runs");
}

/// Scratch values per clip of [`forward_clip`] / [`input_grad_clip`] / [`weight_grad_clip`] for `g`.
pub fn scratch_len(g: &Geometry) -> usize {
    let (fwd, bwd) = planes(g);
    let forward = fwd.padded_len(g.c, g.input[0]) + OUT_BLOCK * fwd.positions(POSITIONS);
    let backward = bwd.padded_len(g.o, g.input[0]) + OUT_BLOCK * bwd.positions(POSITIONS);
    let weight = fwd.padded_len(g.c, g.input[0]) + g.o * g.input[0] * fwd.positions(LANES);
    forward.max(backward).max(weight)
}

/// The forward plane of `g`, and the plane of its input gradient as a forward convolution of `dy`.
fn planes(g: &Geometry) -> (Plane, Plane) {
    let [_, h, w] = g.input;
    let [_, ph, pw] = g.padding;
    let [_, kh, kw] = g.kernel;
    let fwd = Plane::new([h, w], [ph, pw], [kh, kw]);
    (fwd, Plane::new([fwd.ho, fwd.wo], [kh - 1 - ph, kw - 1 - pw], [kh, kw]))
}

/// Forward weights of `g` (`w` `[O, C, 1, kh, kw]`) in the tiles' layout.
pub fn forward_weights(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let taps = g.kernel[1] * g.kernel[2];
    blocked(g.o, g.c, taps, |o, c, t| w[(o * g.c + c) * taps + t])
}

/// Input-gradient weights of `g`: the kernel flipped in space, channel axes swapped.
pub fn input_grad_weights(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let taps = g.kernel[1] * g.kernel[2];
    blocked(g.c, g.o, taps, |c, o, t| w[(o * g.c + c) * taps + taps - 1 - t])
}

/// One clip of the forward: `x_n` `[C, D, H, W]` -> `y_n` `[O, D, Ho, Wo]`, `wb` from [`forward_weights`].
pub fn forward_clip(g: &Geometry, x_n: &[f32], wb: &[f32], y_n: &mut [f32], scratch: &mut [f32]) {
    let (p, _) = planes(g);
    let (xp, buf) = scratch.split_at_mut(p.padded_len(g.c, g.input[0]));
    p.pad(x_n, xp);
    conv_clip(&p, g.c, g.input[0], xp, wb, y_n, buf);
}

/// One clip of the input gradient: `dy_n` `[O, D, Ho, Wo]` -> `dx_n` `[C, D, H, W]`, `wb` from
/// [`input_grad_weights`].
pub fn input_grad_clip(g: &Geometry, dy_n: &[f32], wb: &[f32], dx_n: &mut [f32], scratch: &mut [f32]) {
    let (_, p) = planes(g);
    let (dyp, buf) = scratch.split_at_mut(p.padded_len(g.o, g.input[0]));
    p.pad(dy_n, dyp);
    conv_clip(&p, g.o, g.input[0], dyp, wb, dx_n, buf);
}

/// Add one clip's weight gradient to `dw_t` `[K, O]` (K = `(c * kh + b) * kw + e`, the transpose of `dW`):
/// `x_n` `[C, D, H, W]`, `dy_n` `[O, D, Ho, Wo]`.
pub fn weight_grad_clip(g: &Geometry, x_n: &[f32], dy_n: &[f32], dw_t: &mut [f32], scratch: &mut [f32]) {
    let (p, _) = planes(g);
    let (frames, o) = (g.input[0], g.o);
    let (xp, dyq) = scratch.split_at_mut(p.padded_len(g.c, frames));
    p.pad(x_n, xp);
    // dy in the padded-width layout [O, D, qn], zero where w >= Wo and past the frame's last position.
    let qn = p.positions(LANES);
    let dyq = &mut dyq[..o * frames * qn];
    for (src, dst) in dy_n.chunks_exact(p.ho * p.wo).zip(dyq.chunks_exact_mut(qn)) {
        for (row, line) in src.chunks_exact(p.wo).zip(dst.chunks_exact_mut(p.wp)) {
            line[..p.wo].copy_from_slice(row);
            line[p.wo..].fill(0.0);
        }
        dst[p.ho * p.wp..].fill(0.0);
    }
    let (frame, channel) = (p.frame(), frames * p.frame());
    let reach = (g.c - 1) * channel + (frames - 1) * frame + qn - 1 + (p.kh - 1) * p.wp + p.kw - 1;
    assert!(reach < xp.len() && dw_t.len() == g.k() * o);
    let taps = p.taps();
    let mut sums = [[0.0f32; WG_TAPS]; WG_OUT];
    for c in 0..g.c {
        let x = &xp[c * channel..];
        for t0 in (0..taps.len()).step_by(WG_TAPS) {
            let offsets = &taps[t0..(t0 + WG_TAPS).min(taps.len())];
            for o0 in (0..o).step_by(WG_OUT) {
                let no = WG_OUT.min(o - o0);
                let dy = &dyq[o0 * frames * qn..];
                let d = (frames, frame, qn);
                // SAFETY: `available()` was checked by the caller; `reach` bounds the reads of `x` (frames,
                // positions and the tap offsets past its start), and `dy` holds `no` rows of `frames * qn`.
                unsafe {
                    match (no, offsets.len()) {
                        (4, 3) => wg_tile::<4, 3>(x, offsets, dy, d, &mut sums),
                        (3, 3) => wg_tile::<3, 3>(x, offsets, dy, d, &mut sums),
                        (2, 3) => wg_tile::<2, 3>(x, offsets, dy, d, &mut sums),
                        (1, 3) => wg_tile::<1, 3>(x, offsets, dy, d, &mut sums),
                        (4, 2) => wg_tile::<4, 2>(x, offsets, dy, d, &mut sums),
                        (3, 2) => wg_tile::<3, 2>(x, offsets, dy, d, &mut sums),
                        (2, 2) => wg_tile::<2, 2>(x, offsets, dy, d, &mut sums),
                        (1, 2) => wg_tile::<1, 2>(x, offsets, dy, d, &mut sums),
                        (4, _) => wg_tile::<4, 1>(x, offsets, dy, d, &mut sums),
                        (3, _) => wg_tile::<3, 1>(x, offsets, dy, d, &mut sums),
                        (2, _) => wg_tile::<2, 1>(x, offsets, dy, d, &mut sums),
                        _ => wg_tile::<1, 1>(x, offsets, dy, d, &mut sums),
                    }
                }
                for (j, row) in sums.iter().enumerate().take(no) {
                    for (i, v) in row.iter().enumerate().take(offsets.len()) {
                        dw_t[(c * taps.len() + t0 + i) * o + o0 + j] += v;
                    }
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
    unreachable!("direct conv: `available()` is false off x86-64, so no tile runs");
}
