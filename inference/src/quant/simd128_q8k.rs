//! wasm32 kernels for the K-quants Q4_K, Q5_K and Q6_K with 8-bit activations quantized per
//! 256-block ([`super::Q8Acts::kq`] / `kd`, llama.cpp's `block_q8_K`): a whole block is summed
//! in integers, and only then scaled in f32 — where the per-32-chunk kernels of `simd128_q8.rs`
//! convert, scale and add floats for every chunk.
//!
//! Per (row, token) and block, with `u` the weights as stored (unsigned: Q4_K 0..=15, Q5_K
//! 0..=31, Q6_K `q + 32` in 0..=63), `q` the activations, `sc_g` the block's sub-scales (per 32
//! weights for Q4_K / Q5_K, per 16 for Q6_K) and `Σq_g` the activation sums of each group:
//!
//! - `S = Σ_g sc_g · Σ_{i∈g} u_i · q_i` (minus `32 · Σ_g sc_g · Σq_g` for Q6_K),
//! - `M = Σ_g min_g · Σq_g` (Q4_K / Q5_K),
//! - `acc += f32(S) · (d · dx)`, then `acc += f32(M) · (-dmin · dx)`.
//!
//! All sums are exact i32 (at most 256 · 63 · 128 · 128 + 32 · 16 · 128 · 2048 < 2^31), so they
//! do not depend on how an instruction groups the products: the simd128 family (`u` widened to
//! i16, `i32x4_dot_i16x8`) and the relaxed family (`i32x4_relaxed_dot_i8x16_i7x16_add`, with `u`
//! — at most 63 — as its 7-bit operand, where every engine computes the exact integer) give the
//! same bits, and a (row, token) in a 4-token tile gets the bits it gets alone.

use core::arch::wasm32::*;

use super::scalar::row_bytes;
use super::simd128_q8::{f16_lut, f16_table, high_nibbles, load16, shr_mask, widen_acts, F16};
use super::GgmlType;

/// Tokens per tile in a batch (prefill): a decoded block serves four tokens.
const TOKS: usize = 4;

/// A block's scales, decoded once per block (and row).
struct BlkK {
    /// `d` of the block, and `-dmin` (0 for Q6_K).
    d: f32,
    neg_dmin: f32,
    /// The sub-scales as `i16x8` for each step of [`tile`]: lanes 0..4 the scale of its first
    /// group, lanes 4..8 of its second (Q4_K / Q5_K: steps of two 32-weight groups, four
    /// steps; Q6_K: steps of two 16-weight groups, eight steps).
    scv: [v128; 8],
    /// The offset coefficients of the groups' activation sums as `i16x8` (eight groups per
    /// vector): Q4_K / Q5_K `min_g` (towards `M`), Q6_K `-32 · sc_g` (towards `S`).
    off: [v128; 2],
}

/// `i8x16_swizzle` indices that spread i16 lanes `2k` and `2k + 1` over lanes 0..4 and 4..8.
const PAIRS: [v128; 4] = [
    i8x16(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3),
    i8x16(4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7),
    i8x16(8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11),
    i8x16(
        12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15,
    ),
];

/// A K-quant block as unsigned weights in groups.
trait KernK {
    const BYTES: usize;
    /// Weights per group (one sub-scale): 32 or 16.
    const GROUP: usize;
    /// The offset terms go to `M` (times `-dmin`), not into `S`.
    const MINS: bool;
    fn prep(b: &[u8], t: &F16) -> BlkK;
    /// Weights `32c..32c + 32` of block `b` as unsigned bytes, in order (two vectors of 16).
    fn weights(b: &[u8], c: usize) -> [v128; 2];
}

/// Q4_K / Q5_K scales and mins: the twelve bytes at `b[4..16]` hold eight 6-bit scales and
/// eight 6-bit mins (`scale_min_k4`'s layout), unpacked with 32-bit masks and shifts.
#[inline(always)]
fn k4_prep(b: &[u8], t: &F16) -> BlkK {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (a0, a1, a2) = (w(4), w(8), w(12));
    let sc = (a0 & LOW6) as u64 | (((a2 & LOW4) | (((a0 >> 6) & LOW2) << 4)) as u64) << 32;
    let mn = (a1 & LOW6) as u64 | ((((a2 >> 4) & LOW4) | (((a1 >> 6) & LOW2) << 4)) as u64) << 32;
    let sc = u16x8_extend_low_u8x16(u64x2_splat(sc));
    let z = i32x4_splat(0);
    let mut scv = [z; 8];
    for (v, idx) in scv.iter_mut().zip(PAIRS) {
        *v = i8x16_swizzle(sc, idx);
    }
    BlkK {
        d: f16_lut(t, b, 0),
        neg_dmin: -f16_lut(t, b, 2),
        scv,
        off: [u16x8_extend_low_u8x16(u64x2_splat(mn)), z],
    }
}

struct Q4K;
impl KernK for Q4K {
    const BYTES: usize = 144;
    const GROUP: usize = 32;
    const MINS: bool = true;
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> BlkK {
        k4_prep(b, t)
    }
    #[inline(always)]
    fn weights(b: &[u8], c: usize) -> [v128; 2] {
        // qs (bytes 16..144): 32 bytes per 64 weights, low nibbles first.
        let off = 16 + 32 * (c >> 1);
        let (a, bb) = (load16(b, off), load16(b, off + 16));
        if c & 1 == 0 {
            let m = i8x16_splat(0x0F);
            [v128_and(a, m), v128_and(bb, m)]
        } else {
            [high_nibbles(a), high_nibbles(bb)]
        }
    }
}

struct Q5K;
impl KernK for Q5K {
    const BYTES: usize = 176;
    const GROUP: usize = 32;
    const MINS: bool = true;
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> BlkK {
        k4_prep(b, t)
    }
    #[inline(always)]
    fn weights(b: &[u8], c: usize) -> [v128; 2] {
        // qs (bytes 48..176) as Q4_K's; bit c of qh[i] (bytes 16..48) is the fifth bit of
        // weight i of group c.
        let off = 48 + 32 * (c >> 1);
        let m = i8x16_splat((1u8 << c) as i8);
        #[inline(always)]
        fn part(q: v128, qh: v128, c: usize, m: v128) -> v128 {
            let lo = if c & 1 == 0 {
                v128_and(q, i8x16_splat(0x0F))
            } else {
                high_nibbles(q)
            };
            v128_or(
                lo,
                v128_and(i8x16_eq(v128_and(qh, m), m), i8x16_splat(0x10)),
            )
        }
        [
            part(load16(b, off), load16(b, 16), c, m),
            part(load16(b, off + 16), load16(b, 32), c, m),
        ]
    }
}

struct Q6K;
impl KernK for Q6K {
    const BYTES: usize = 210;
    const GROUP: usize = 16;
    const MINS: bool = false;
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> BlkK {
        let s = load16(b, 192);
        let (lo, hi) = (i16x8_extend_low_i8x16(s), i16x8_extend_high_i8x16(s));
        let mut scv = [lo; 8];
        for (k, idx) in PAIRS.into_iter().enumerate() {
            scv[k] = i8x16_swizzle(lo, idx);
            scv[k + 4] = i8x16_swizzle(hi, idx);
        }
        // -32 · sc: the weights below are `q + 32`.
        let m32 = i16x8_splat(-32);
        BlkK {
            d: f16_lut(t, b, 208),
            neg_dmin: 0.0,
            scv,
            off: [i16x8_mul(lo, m32), i16x8_mul(hi, m32)],
        }
    }
    #[inline(always)]
    fn weights(b: &[u8], c: usize) -> [v128; 2] {
        // Half h = c / 4 of the block: ql[64h..64h+64] low nibbles are groups of 32 4h, 4h+1,
        // high nibbles 4h+2, 4h+3; group 4h+k takes bits 2k, 2k+1 of qh[32h..32h+32].
        let (h, k) = (c >> 2, c & 3);
        let (lo_off, hi_off) = (64 * h + 32 * (k & 1), 128 + 32 * h);
        #[inline(always)]
        fn part(ql: v128, qh: v128, k: usize) -> v128 {
            let lo = if k >> 1 == 0 {
                v128_and(ql, i8x16_splat(0x0F))
            } else {
                high_nibbles(ql)
            };
            // Bits 2k, 2k + 1 of qh as bits 4, 5: 16-bit shifts, the bits they move across
            // bytes land outside the mask (`shr_mask`'s reasoning).
            let m = i8x16_splat(0x30);
            let hi = if k < 3 {
                v128_and(i16x8_shl(qh, 4 - 2 * k as u32), m)
            } else {
                shr_mask(qh, 2, m)
            };
            v128_or(lo, hi)
        }
        [
            part(load16(b, lo_off), load16(b, hi_off), k),
            part(load16(b, lo_off + 16), load16(b, hi_off + 16), k),
        ]
    }
}

/// How 16 unsigned weights (0..=63) meet 16 activations: an `i32x4` whose lanes sum to the
/// exact dot product (how the products are grouped in lanes is the instruction's business).
trait Dot {
    /// The activations as this family reads them.
    type X: Copy;
    fn acts(xq: &[i8]) -> Vec<Self::X>;
    /// `x` = 16 readable activations.
    unsafe fn dot16(u: v128, x: *const Self::X, acc: v128) -> v128;
}

/// simd128: weights widened to i16, activations widened once per product, `i32x4_dot_i16x8`.
struct Plain;
impl Dot for Plain {
    type X = i16;
    fn acts(xq: &[i8]) -> Vec<i16> {
        widen_acts(xq)
    }
    #[inline(always)]
    unsafe fn dot16(u: v128, x: *const i16, acc: v128) -> v128 {
        // SAFETY: 16 readable i16 at `x` (the caller's promise); unaligned loads are allowed.
        let (x0, x1) = unsafe {
            (
                v128_load(x as *const v128),
                v128_load(x.add(8) as *const v128),
            )
        };
        let lo = i32x4_dot_i16x8(u16x8_extend_low_u8x16(u), x0);
        let hi = i32x4_dot_i16x8(u16x8_extend_high_u8x16(u), x1);
        i32x4_add(acc, i32x4_add(lo, hi))
    }
}

/// Relaxed SIMD: `i32x4_relaxed_dot_i8x16_i7x16_add` with the weights as the 7-bit operand.
#[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
struct Relaxed;
#[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
impl Dot for Relaxed {
    type X = i8;
    fn acts(xq: &[i8]) -> Vec<i8> {
        xq.to_vec()
    }
    #[inline(always)]
    unsafe fn dot16(u: v128, x: *const i8, acc: v128) -> v128 {
        // SAFETY: 16 readable bytes at `x` (the caller's promise); unaligned loads are allowed.
        let xv = unsafe { v128_load(x as *const v128) };
        i32x4_relaxed_dot_i8x16_i7x16_add(xv, u, acc)
    }
}

/// Sum of the four i32 lanes (exact).
#[inline(always)]
fn hsum_i32(v: v128) -> i32 {
    let v = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = i32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    i32x4_extract_lane::<0>(v)
}

/// One token's activations from block 0 of a row on: `x` its bytes (as the family reads
/// them), `xd` its block scales, `bs` its group sums (`GROUP` values each, as i16).
#[derive(Clone, Copy)]
struct Tok<X> {
    x: *const X,
    xd: *const f32,
    bs: *const i16,
}

/// `acc + Σ` of the two groups' dots `p0`, `p1` (i32 lanes within ±32767: at most eight
/// products of 31 · 128 or four of 63 · 128) times their scales in `scv` (i16x8).
#[inline(always)]
fn scaled(acc: v128, p0: v128, p1: v128, scv: v128) -> v128 {
    i32x4_add(acc, i32x4_dot_i16x8(i16x8_narrow_i32x4(p0, p1), scv))
}

/// One row (`nb` blocks at `row`) against `T` tokens: per block the integer sums of the module
/// doc, then the two f32 steps; every token gets exactly the operations it gets alone.
///
/// # Safety
/// `row` holds `nb` blocks; each token has `256 nb` activations, `nb` scales and
/// `256 nb / GROUP` group sums.
#[inline(always)]
unsafe fn tile<K: KernK, D: Dot, const T: usize>(
    row: &[u8],
    nb: usize,
    t16: &F16,
    toks: &[Tok<D::X>; T],
) -> [f32; T] {
    let mut acc = [0f32; T];
    let gpb = 256 / K::GROUP;
    let z = i32x4_splat(0);
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk, t16);
        let mut s = [z; T];
        if K::GROUP == 16 {
            // Step c: the two 16-weight groups of weights 32c..32c+32.
            for c in 0..8 {
                let u = K::weights(blk, c);
                for (t, x) in toks.iter().enumerate() {
                    // SAFETY: activations `256 b + 32 c .. + 32` of the token are in bounds.
                    let (p0, p1) = unsafe {
                        let xp = x.x.add(256 * b + 32 * c);
                        (D::dot16(u[0], xp, z), D::dot16(u[1], xp.add(16), z))
                    };
                    s[t] = scaled(s[t], p0, p1, st.scv[c]);
                }
            }
        } else {
            // Step k: the 32-weight groups 2k and 2k + 1.
            for k in 0..4 {
                let (ua, ub) = (K::weights(blk, 2 * k), K::weights(blk, 2 * k + 1));
                for (t, x) in toks.iter().enumerate() {
                    // SAFETY: activations `256 b + 64 k .. + 64` of the token are in bounds.
                    let (pa, pb) = unsafe {
                        let xp = x.x.add(256 * b + 64 * k);
                        let pa = D::dot16(ua[1], xp.add(16), D::dot16(ua[0], xp, z));
                        let pb = D::dot16(ub[1], xp.add(48), D::dot16(ub[0], xp.add(32), z));
                        (pa, pb)
                    };
                    s[t] = scaled(s[t], pa, pb, st.scv[k]);
                }
            }
        }
        for (t, x) in toks.iter().enumerate() {
            // SAFETY: the group sums and the scale of block `b` of the token are in bounds.
            let (o, dx) = unsafe {
                let bs = x.bs.add(gpb * b) as *const v128;
                let mut o = i32x4_dot_i16x8(st.off[0], v128_load(bs));
                if gpb == 16 {
                    o = i32x4_add(o, i32x4_dot_i16x8(st.off[1], v128_load(bs.add(1))));
                }
                (o, *x.xd.add(b))
            };
            if K::MINS {
                acc[t] += hsum_i32(s[t]) as f32 * (st.d * dx);
                acc[t] += hsum_i32(o) as f32 * (st.neg_dmin * dx);
            } else {
                acc[t] += hsum_i32(i32x4_add(s[t], o)) as f32 * (st.d * dx);
            }
        }
    }
    acc
}

/// Every row against every token, four-token tiles then single tokens.
#[inline(always)]
fn run<K: KernK, D: Dot>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    let rows = out.len() / n_tok;
    let nb = cols / 256;
    let rb = nb * K::BYTES;
    let gpt = cols / K::GROUP;
    let x = D::acts(xq);
    // The activation sums of every group of every token (|Σ| ≤ 32 · 128: an i16).
    let bs: Vec<i16> = xq
        .chunks_exact(K::GROUP)
        .map(|g| g.iter().map(|&q| q as i16).sum())
        .collect();
    assert!(x.len() == n_tok * cols && xd.len() == n_tok * nb && bs.len() == n_tok * gpt);
    let tok = |t: usize| Tok {
        // In bounds: t < n_tok (the loops below).
        x: x[t * cols..].as_ptr(),
        xd: xd[t * nb..].as_ptr(),
        bs: bs[t * gpt..].as_ptr(),
    };
    let t16 = f16_table();
    let mut t = 0;
    while t + TOKS <= n_tok {
        let toks = [tok(t), tok(t + 1), tok(t + 2), tok(t + 3)];
        for (r, row) in w.chunks_exact(rb).enumerate() {
            // SAFETY: the row and the four tokens' buffers have the sizes asserted above.
            let v = unsafe { tile::<K, D, TOKS>(row, nb, t16, &toks) };
            for (i, &y) in v.iter().enumerate() {
                out[(t + i) * rows + r] = y;
            }
        }
        t += TOKS;
    }
    while t < n_tok {
        let toks = [tok(t)];
        for (o, row) in out[t * rows..(t + 1) * rows]
            .iter_mut()
            .zip(w.chunks_exact(rb))
        {
            // SAFETY: as above, for one token.
            *o = unsafe { tile::<K, D, 1>(row, nb, t16, &toks) }[0];
        }
        t += 1;
    }
}

/// The types [`matmul_q8k`] runs.
pub(super) fn has_q8k(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K)
}

fn run_plain(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    n: usize,
    out: &mut [f32],
) {
    match ty {
        GgmlType::Q4_K => run::<Q4K, Plain>(w, cols, xq, xd, n, out),
        GgmlType::Q5_K => run::<Q5K, Plain>(w, cols, xq, xd, n, out),
        GgmlType::Q6_K => run::<Q6K, Plain>(w, cols, xq, xd, n, out),
        _ => unreachable!("no Q8_K kernel for {ty:?}"),
    }
}

// (A `#[target_feature]` function is safe to call on wasm32: a module with instructions the
// engine lacks does not validate, so this never runs there.)
#[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
#[target_feature(enable = "relaxed-simd")]
fn run_relaxed(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    n: usize,
    out: &mut [f32],
) {
    match ty {
        GgmlType::Q4_K => run::<Q4K, Relaxed>(w, cols, xq, xd, n, out),
        GgmlType::Q5_K => run::<Q5K, Relaxed>(w, cols, xq, xd, n, out),
        GgmlType::Q6_K => run::<Q6K, Relaxed>(w, cols, xq, xd, n, out),
        _ => unreachable!("no Q8_K kernel for {ty:?}"),
    }
}

/// `matmul` of a K-quant with activations quantized per 256-block: `xq` (n_tok × cols) signed
/// bytes, `xd` one scale per block. Only where [`has_q8k`]; the kernel family of
/// `simd128_q8::isa` (same results either way).
pub(super) fn matmul_q8k(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    assert!(has_q8k(ty), "no Q8_K kernel for {}", ty.name());
    assert_eq!(xq.len(), n_tok * cols, "activations are not n_tok x cols");
    assert!(cols.is_multiple_of(256) && xd.len() == xq.len() / 256);
    if n_tok == 0 {
        return;
    }
    assert_eq!(out.len() % n_tok, 0, "output is not n_tok x rows");
    let rows = out.len() / n_tok;
    assert_eq!(
        w.len(),
        row_bytes(ty, cols) * rows,
        "weight matrix has the wrong byte length"
    );
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    #[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
    if super::simd128_q8::isa() == "relaxed" {
        run_relaxed(ty, w, cols, xq, xd, n_tok, out);
        return;
    }
    run_plain(ty, w, cols, xq, xd, n_tok, out);
}
