//! wasm32 simd128 kernels (activations stay f32). Compiled only with `+simd128` (see
//! `.cargo/config.toml`), so no runtime detection is needed.
//!
//! Same structure as `x86.rs`: a block type is decoded 32 weights (eight `f32x4`) at a time and
//! multiplied with the activations into eight accumulators (vector `i` of every chunk goes to
//! accumulator `i`), reduced in a fixed order. `matmul` decodes each row once into a buffer with
//! the same decoders and runs the same multiply-add sequence per token, so it is bit-identical
//! to `vec_dot` / `matvec` per token. simd128 has no fused multiply-add: `w * x + acc` is
//! rounded twice, like the scalar code.
//!
//! Covered: F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K. Other types use the scalar kernels.

use core::arch::wasm32::*;

use super::scalar::{self, row_bytes, scale_min_k4};
use super::GgmlType;
use half::f16;

type W = [v128; 8];

trait Kern {
    const QK: usize;
    const BYTES: usize;
    type St: Copy;
    fn prep(b: &[u8]) -> Self::St;
    /// Weights `32c .. 32c + 32` of the block `b` (exactly `BYTES` bytes).
    fn chunk(b: &[u8], st: &Self::St, c: usize) -> W;
    /// Element `i` of a partial trailing chunk (float types only).
    fn one(_b: &[u8], _i: usize) -> f32 {
        unreachable!("quantized rows have no partial chunk")
    }
}

#[inline(always)]
fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

#[inline(always)]
fn load16(b: &[u8], off: usize) -> v128 {
    let s = &b[off..off + 16];
    // SAFETY: `s` is 16 readable bytes; `v128_load` allows unaligned addresses.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

#[inline(always)]
fn load_f32x4(x: &[f32], off: usize) -> v128 {
    let s = &x[off..off + 4];
    // SAFETY: `s` is 4 readable f32 (16 bytes); `v128_load` allows unaligned addresses.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

#[inline(always)]
fn store_f32x4(o: &mut [f32], v: v128) {
    assert_eq!(o.len(), 4);
    // SAFETY: `o` is 4 writable f32 (16 bytes); `v128_store` allows unaligned addresses.
    unsafe { v128_store(o.as_mut_ptr() as *mut v128, v) }
}

/// 16 signed bytes → four f32x4 in byte order.
#[inline(always)]
fn i8x16_to_f32(v: v128) -> [v128; 4] {
    let lo = i16x8_extend_low_i8x16(v);
    let hi = i16x8_extend_high_i8x16(v);
    [
        f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo)),
        f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo)),
        f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi)),
        f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi)),
    ]
}

/// Two groups of 16 signed bytes → eight f32x4, each group scaled `q * d + m`.
#[inline(always)]
fn affine(a: v128, b: v128, d0: f32, m0: f32, d1: f32, m1: f32) -> W {
    let fa = i8x16_to_f32(a);
    let fb = i8x16_to_f32(b);
    let (d0, m0, d1, m1) = (
        f32x4_splat(d0),
        f32x4_splat(m0),
        f32x4_splat(d1),
        f32x4_splat(m1),
    );
    let mut w = [f32x4_splat(0.0); 8];
    for i in 0..4 {
        w[i] = f32x4_add(f32x4_mul(fa[i], d0), m0);
        w[i + 4] = f32x4_add(f32x4_mul(fb[i], d1), m1);
    }
    w
}

/// Like [`affine`] without the offset (exactly `q * d`).
#[inline(always)]
fn scaled(a: v128, b: v128, d0: f32, d1: f32) -> W {
    let fa = i8x16_to_f32(a);
    let fb = i8x16_to_f32(b);
    let (d0, d1) = (f32x4_splat(d0), f32x4_splat(d1));
    let mut w = [f32x4_splat(0.0); 8];
    for i in 0..4 {
        w[i] = f32x4_mul(fa[i], d0);
        w[i + 4] = f32x4_mul(fb[i], d1);
    }
    w
}

struct Q4_0;
impl Kern for Q4_0 {
    const QK: usize = 32;
    const BYTES: usize = 18;
    type St = ();
    fn prep(_b: &[u8]) {}
    #[inline(always)]
    fn chunk(b: &[u8], _: &(), _c: usize) -> W {
        let d = f16_at(b, 0);
        let qs = load16(b, 2);
        let eight = i8x16_splat(8);
        let lo = i8x16_sub(v128_and(qs, i8x16_splat(0x0F)), eight);
        let hi = i8x16_sub(u8x16_shr(qs, 4), eight);
        scaled(lo, hi, d, d)
    }
}

struct Q4_1;
impl Kern for Q4_1 {
    const QK: usize = 32;
    const BYTES: usize = 20;
    type St = ();
    fn prep(_b: &[u8]) {}
    #[inline(always)]
    fn chunk(b: &[u8], _: &(), _c: usize) -> W {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qs = load16(b, 4);
        let lo = v128_and(qs, i8x16_splat(0x0F));
        let hi = u8x16_shr(qs, 4);
        affine(lo, hi, d, m, d, m)
    }
}

struct Q8_0;
impl Kern for Q8_0 {
    const QK: usize = 32;
    const BYTES: usize = 34;
    type St = ();
    fn prep(_b: &[u8]) {}
    #[inline(always)]
    fn chunk(b: &[u8], _: &(), _c: usize) -> W {
        let d = f16_at(b, 0);
        scaled(load16(b, 2), load16(b, 18), d, d)
    }
}

struct Q4K;
impl Kern for Q4K {
    const QK: usize = 256;
    const BYTES: usize = 144;
    type St = [(f32, f32); 8];
    #[inline(always)]
    fn prep(b: &[u8]) -> [(f32, f32); 8] {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let mut out = [(0f32, 0f32); 8];
        for (j, o) in out.iter_mut().enumerate() {
            let (sc, m) = scale_min_k4(j, &b[4..16]);
            *o = (d * sc as f32, -(dmin * m as f32));
        }
        out
    }
    #[inline(always)]
    fn chunk(b: &[u8], st: &[(f32, f32); 8], c: usize) -> W {
        let off = 16 + 32 * (c >> 1);
        let (a, bb) = (load16(b, off), load16(b, off + 16));
        let (a, bb) = if c & 1 == 0 {
            let m = i8x16_splat(0x0F);
            (v128_and(a, m), v128_and(bb, m))
        } else {
            (u8x16_shr(a, 4), u8x16_shr(bb, 4))
        };
        let (d, m) = st[c];
        affine(a, bb, d, m, d, m)
    }
}

struct Q6K;
impl Kern for Q6K {
    const QK: usize = 256;
    const BYTES: usize = 210;
    type St = f32;
    #[inline(always)]
    fn prep(b: &[u8]) -> f32 {
        f16_at(b, 208)
    }
    #[inline(always)]
    fn chunk(b: &[u8], d: &f32, c: usize) -> W {
        let (h, k) = (c >> 2, c & 3);
        let lo_off = 64 * h + 32 * (k & 1);
        let hi_off = 128 + 32 * h;
        let s0 = b[192 + 8 * h + 2 * k] as i8;
        let s1 = b[192 + 8 * h + 2 * k + 1] as i8;
        let m4 = i8x16_splat(0x0F);
        let m2 = i8x16_splat(3);
        let q = |i: usize| {
            let ql = load16(b, lo_off + 16 * i);
            let ql = if k >> 1 == 0 {
                v128_and(ql, m4)
            } else {
                u8x16_shr(ql, 4)
            };
            let qh = v128_and(u8x16_shr(load16(b, hi_off + 16 * i), 2 * k as u32), m2);
            i8x16_sub(v128_or(ql, i8x16_shl(qh, 4)), i8x16_splat(32))
        };
        scaled(q(0), q(1), *d * s0 as f32, *d * s1 as f32)
    }
}

struct F32;
impl Kern for F32 {
    const QK: usize = 32;
    const BYTES: usize = 128;
    type St = ();
    fn prep(_b: &[u8]) {}
    #[inline(always)]
    fn chunk(b: &[u8], _: &(), _c: usize) -> W {
        let mut w = [f32x4_splat(0.0); 8];
        for (i, wi) in w.iter_mut().enumerate() {
            *wi = load16(b, 16 * i);
        }
        w
    }
    fn one(b: &[u8], i: usize) -> f32 {
        f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    }
}

struct F16;
impl Kern for F16 {
    const QK: usize = 32;
    const BYTES: usize = 64;
    type St = ();
    fn prep(_b: &[u8]) {}
    #[inline(always)]
    fn chunk(b: &[u8], _: &(), _c: usize) -> W {
        let mut w = [f32x4_splat(0.0); 8];
        for (i, wi) in w.iter_mut().enumerate() {
            let e = |j: usize| f16_at(b, 8 * i + 2 * j);
            *wi = f32x4(e(0), e(1), e(2), e(3));
        }
        w
    }
    fn one(b: &[u8], i: usize) -> f32 {
        f16_at(b, 2 * i)
    }
}

#[inline(always)]
fn hsum(a: &W) -> f32 {
    let s0 = f32x4_add(f32x4_add(a[0], a[1]), f32x4_add(a[2], a[3]));
    let s1 = f32x4_add(f32x4_add(a[4], a[5]), f32x4_add(a[6], a[7]));
    let s = f32x4_add(s0, s1);
    (f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s))
        + (f32x4_extract_lane::<2>(s) + f32x4_extract_lane::<3>(s))
}

#[inline(always)]
fn fmadd(acc: &mut W, w: &W, x: &[f32], off: usize) {
    for i in 0..8 {
        acc[i] = f32x4_add(acc[i], f32x4_mul(w[i], load_f32x4(x, off + 4 * i)));
    }
}

fn dot_row<K: Kern>(row: &[u8], x: &[f32]) -> f32 {
    let nb = x.len() / K::QK;
    let tail = x.len() - nb * K::QK;
    let mut acc = [f32x4_splat(0.0); 8];
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk);
        for c in 0..K::QK / 32 {
            let w = K::chunk(blk, &st, c);
            fmadd(&mut acc, &w, x, b * K::QK + 32 * c);
        }
    }
    let mut s = hsum(&acc);
    let rest = &row[nb * K::BYTES..];
    for i in 0..tail {
        s += K::one(rest, i) * x[nb * K::QK + i];
    }
    s
}

fn deq_row<K: Kern>(row: &[u8], buf: &mut [f32]) {
    let nb = buf.len() / K::QK;
    let tail = buf.len() - nb * K::QK;
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk);
        for c in 0..K::QK / 32 {
            let w = K::chunk(blk, &st, c);
            let o = &mut buf[b * K::QK + 32 * c..b * K::QK + 32 * c + 32];
            for (i, wi) in w.iter().enumerate() {
                store_f32x4(&mut o[4 * i..4 * i + 4], *wi);
            }
        }
    }
    let rest = &row[nb * K::BYTES..];
    for i in 0..tail {
        buf[nb * K::QK + i] = K::one(rest, i);
    }
}

fn dot_buf(w: &[f32], x: &[f32], whole: usize) -> f32 {
    let mut acc = [f32x4_splat(0.0); 8];
    for c in 0..whole / 32 {
        let mut wv = [f32x4_splat(0.0); 8];
        for (i, v) in wv.iter_mut().enumerate() {
            *v = load_f32x4(w, 32 * c + 4 * i);
        }
        fmadd(&mut acc, &wv, x, 32 * c);
    }
    let mut s = hsum(&acc);
    for i in whole..w.len() {
        s += w[i] * x[i];
    }
    s
}

fn matmul_k<K: Kern>(w: &[u8], cols: usize, x: &[f32], n_tok: usize, out: &mut [f32]) {
    let rows = out.len() / n_tok;
    let rb = w.len() / rows;
    if n_tok == 1 {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
            *o = dot_row::<K>(row, x);
        }
        return;
    }
    let whole = cols / K::QK * K::QK;
    let mut buf = vec![0f32; cols];
    for (r, row) in w.chunks_exact(rb).enumerate() {
        deq_row::<K>(row, &mut buf);
        for t in 0..n_tok {
            out[t * rows + r] = dot_buf(&buf, &x[t * cols..(t + 1) * cols], whole);
        }
    }
}

pub(super) fn vec_dot(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    assert_eq!(
        row.len(),
        row_bytes(ty, x.len()),
        "quantized row has the wrong byte length"
    );
    match ty {
        GgmlType::F32 => dot_row::<F32>(row, x),
        GgmlType::F16 => dot_row::<F16>(row, x),
        GgmlType::Q4_0 => dot_row::<Q4_0>(row, x),
        GgmlType::Q4_1 => dot_row::<Q4_1>(row, x),
        GgmlType::Q8_0 => dot_row::<Q8_0>(row, x),
        GgmlType::Q4_K => dot_row::<Q4K>(row, x),
        GgmlType::Q6_K => dot_row::<Q6K>(row, x),
        _ => scalar::vec_dot(ty, row, x),
    }
}

pub(super) fn matmul(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    if scalar::matmul_dims(ty, w, cols, x, n_tok, out).is_none() {
        return;
    }
    match ty {
        GgmlType::F32 => matmul_k::<F32>(w, cols, x, n_tok, out),
        GgmlType::F16 => matmul_k::<F16>(w, cols, x, n_tok, out),
        GgmlType::Q4_0 => matmul_k::<Q4_0>(w, cols, x, n_tok, out),
        GgmlType::Q4_1 => matmul_k::<Q4_1>(w, cols, x, n_tok, out),
        GgmlType::Q8_0 => matmul_k::<Q8_0>(w, cols, x, n_tok, out),
        GgmlType::Q4_K => matmul_k::<Q4K>(w, cols, x, n_tok, out),
        GgmlType::Q6_K => matmul_k::<Q6K>(w, cols, x, n_tok, out),
        _ => scalar::matmul(ty, w, cols, x, n_tok, out),
    }
}

/// [`super::dot_rows`]: four rows per vector, four keys at a time (independent chains), `acc +
/// q · k` in `d` order (as `scalar.rs`, lane by lane).
pub(super) fn dot_rows(
    qt: &[f32],
    rp: usize,
    k: &[f32],
    k_stride: usize,
    nk: usize,
    scores: &mut [f32],
) {
    let hd = qt.len() / rp;
    let mut j = 0;
    while j < nk {
        let kn = (nk - j).min(4);
        for r0 in (0..rp).step_by(4) {
            let mut acc = [f32x4_splat(0.0); 4];
            for d in 0..hd {
                let q = load_f32x4(qt, d * rp + r0);
                for (i, a) in acc.iter_mut().enumerate().take(kn) {
                    let kv = f32x4_splat(k[(j + i) * k_stride + d]);
                    *a = f32x4_add(*a, f32x4_mul(q, kv));
                }
            }
            for (i, a) in acc.iter().enumerate().take(kn) {
                store_f32x4(&mut scores[(j + i) * rp + r0..(j + i) * rp + r0 + 4], *a);
            }
        }
        j += kn;
    }
}

/// [`super::weighted_sum`]: 16 values of `out` in four vectors at a time, `o + p · v` in `j`
/// order (as `scalar.rs`, lane by lane).
pub(super) fn weighted_sum(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out: &mut [f32],
) {
    let hd = out.len();
    let mut i0 = 0;
    while i0 + 16 <= hd {
        let mut o = [f32x4_splat(0.0); 4];
        for j in 0..n {
            let pv = f32x4_splat(p[j * p_stride]);
            for (q, oq) in o.iter_mut().enumerate() {
                let vv = load_f32x4(v, j * v_stride + i0 + 4 * q);
                *oq = f32x4_add(*oq, f32x4_mul(pv, vv));
            }
        }
        for (q, oq) in o.iter().enumerate() {
            store_f32x4(&mut out[i0 + 4 * q..i0 + 4 * q + 4], *oq);
        }
        i0 += 16;
    }
    for i in i0..hd {
        let mut o = 0f32;
        for j in 0..n {
            o += p[j * p_stride] * v[j * v_stride + i];
        }
        out[i] = o;
    }
}

/// [`super::expf`] on four lanes (`mul` + `add`, as `scalar.rs` lane by lane).
#[inline(always)]
fn exp_poly4(x: v128) -> v128 {
    use super::expf::*;
    let x = f32x4_max(x, f32x4_splat(MIN));
    let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(LOG2E)));
    let r = f32x4_sub(
        f32x4_sub(x, f32x4_mul(n, f32x4_splat(LN2_HI))),
        f32x4_mul(n, f32x4_splat(LN2_LO)),
    );
    let mut p = f32x4_splat(P[0]);
    for &c in &P[1..] {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(c));
    }
    let e = f32x4_add(
        f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r),
        f32x4_splat(1.0),
    );
    let bits = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    f32x4_mul(e, bits)
}

/// [`super::softmax_cols`]: four rows per vector, key after key.
pub(super) fn softmax_cols(
    sc: &mut [f32],
    rp: usize,
    width: usize,
    lo: &[u32],
    hi: &[u32],
    scale: f32,
) {
    let sv = f32x4_splat(scale);
    for r0 in (0..rp).step_by(4) {
        let lov = u32x4(lo[r0], lo[r0 + 1], lo[r0 + 2], lo[r0 + 3]);
        let hiv = u32x4(hi[r0], hi[r0 + 1], hi[r0 + 2], hi[r0 + 3]);
        let inside = |j: usize| {
            let jv = u32x4_splat(j as u32);
            v128_and(u32x4_ge(jv, lov), u32x4_le(jv, hiv))
        };
        let mut max = f32x4_splat(f32::NEG_INFINITY);
        for j in 0..width {
            let o = j * rp + r0;
            let s = f32x4_mul(load_f32x4(sc, o), sv);
            store_f32x4(&mut sc[o..o + 4], s);
            max = v128_bitselect(f32x4_max(max, s), max, inside(j));
        }
        let mut sum = f32x4_splat(0.0);
        for j in 0..width {
            let o = j * rp + r0;
            let e = exp_poly4(f32x4_sub(load_f32x4(sc, o), max));
            let e = v128_and(e, inside(j));
            store_f32x4(&mut sc[o..o + 4], e);
            sum = f32x4_add(sum, e);
        }
        let pos = f32x4_gt(sum, f32x4_splat(0.0));
        let inv = v128_and(f32x4_div(f32x4_splat(1.0), sum), pos);
        for j in 0..width {
            let o = j * rp + r0;
            let v = f32x4_mul(load_f32x4(sc, o), inv);
            store_f32x4(&mut sc[o..o + 4], v);
        }
    }
}
