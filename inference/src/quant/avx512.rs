//! x86_64 AVX-512 VNNI variant of the 8-bit integer kernels (`Activations::Q8`): the block
//! decoders of `x86.rs` produce 32 weights at a time as before, and each chunk is placed in both
//! halves of a 512-bit register against two tokens, so the dot (`vpdpbusd`), the conversion, the
//! scaling and the FMA each cover 64 products per instruction — half the instructions of the
//! 256-bit kernel, which is what prefill (compute-bound) needs. Chosen at run time where the CPU
//! has AVX-512 F/BW/DQ/VNNI; otherwise `x86.rs`.
//!
//! Used for batches (prefill), two tokens per register: each decoded 32-weight chunk fills both
//! halves and meets two tokens' activations; a single token goes to the 256-bit kernel, which
//! streams memory faster. Per (row, token) both do exactly the same operations in the same
//! order, so a batch equals its tokens one by one bit for bit (a conversation's cache, filled
//! token by token, equals a recompute of the whole history).
//!
//! The K-quants (Q4_K, Q5_K, Q6_K) have their own kernel here, [`matmul_k`], for batches and
//! single tokens alike: activations quantized per 256-block (`Q8Acts::kq`, llama.cpp's
//! `block_q8_K`) let a whole block's dot products be summed and sub-scaled in integers, and a
//! batch equals its tokens one by one bit for bit.

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{hsum1, KernQ8};

/// Every feature the 512-bit kernels use (decoders need the AVX2 set, a subset).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512vl")
}

/// Two 256-bit halves as one 512-bit register.
#[inline(always)]
unsafe fn join_i(a: __m256i, b: __m256i) -> __m512i {
    // SAFETY: inlined into AVX-512 kernels only.
    unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b) }
}

#[inline(always)]
unsafe fn join_f(a: __m256, b: __m256) -> __m512 {
    // SAFETY: inlined into AVX-512 kernels only.
    unsafe { _mm512_insertf32x8::<1>(_mm512_castps256_ps512(a), b) }
}

/// The low and high 256-bit halves.
#[inline(always)]
unsafe fn halves(a: __m512) -> (__m256, __m256) {
    // SAFETY: inlined into AVX-512 kernels only.
    unsafe { (_mm512_castps512_ps256(a), _mm512_extractf32x8_ps::<1>(a)) }
}

/// `R` rows × `P` pairs of tokens: each decoded 32-weight chunk fills both halves of a 512-bit
/// register, and the halves take two tokens' activations. Per (row, token) these are exactly the
/// operations of `x86::tile_q8` — one 8-lane accumulator fed chunk after chunk, the offsets
/// summed as scalars, `hsum(acc) + (off + hsum(offv))` — so a token gets the same bits in a
/// 512-bit batch as alone in the 256-bit kernel. Returns `out[r][t]` for the `2P` tokens.
///
/// # Safety
/// `R` rows of `nb` blocks at `w` (`rb` bytes apart); `P` token pairs of `cpr` chunks at
/// `xq2`/`xd2` (interleaved, see [`interleave`]) and `2P` tokens at `xs`; the CPU has the
/// features of [`available`] and AVX2/FMA/F16C.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<K: KernQ8, const R: usize, const P: usize>(
    w: *const u8,
    rb: usize,
    nb: usize,
    cpr: usize,
    xq2: *const i8,
    xd2: *const f32,
    xs: *const f32,
) -> [[[f32; 2]; P]; R] {
    // SAFETY: every pointer below stays within the ranges the caller guarantees.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let mut off = [[[0f32; 2]; P]; R];
        // Lanes 0..8 take the first token's activation scale, 8..16 the second's.
        let pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut offv = [[_mm512_setzero_ps(); P]; R];
        let next = w.wrapping_add(R * rb);
        for b in 0..nb {
            let blk0 = w.add(b * K::BYTES);
            let mut o = 0;
            while o < R * K::BYTES {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * R * K::BYTES + o) as *const i8);
                o += 64;
            }
            let mut st = [K::prep(blk0); R];
            for r in 1..R {
                st[r] = K::prep(blk0.add(r * rb));
            }
            if K::BLOCK_OFFS {
                for p in 0..P {
                    let sx = join_f(
                        _mm256_loadu_ps(xs.add(2 * p * cpr + 8 * b)),
                        _mm256_loadu_ps(xs.add((2 * p + 1) * cpr + 8 * b)),
                    );
                    for r in 0..R {
                        let bo = K::block_offs(&st[r]);
                        offv[r][p] = _mm512_fmadd_ps(join_f(bo, bo), sx, offv[r][p]);
                    }
                }
            }
            for c in 0..K::QK / 32 {
                let j = b * (K::QK / 32) + c;
                for r in 0..R {
                    let (wq, sc, ofs) = K::qchunk(blk0.add(r * rb), &st[r], c);
                    let wq = join_i(wq, wq);
                    let sc = join_f(sc, sc);
                    let (wu, neg) = if K::UNSIGNED {
                        (wq, 0)
                    } else {
                        (_mm512_abs_epi8(wq), _mm512_movepi8_mask(wq))
                    };
                    for p in 0..P {
                        let (k0, k1) = (2 * p * cpr + j, (2 * p + 1) * cpr + j);
                        // Both tokens' chunk j, side by side (see `interleave`).
                        let ax = _mm512_loadu_si512(xq2.add(64 * (p * cpr + j)) as *const __m512i);
                        // x with w's sign, so that |w| can be the unsigned operand.
                        let ax = if K::UNSIGNED {
                            ax
                        } else {
                            _mm512_mask_sub_epi8(ax, neg, _mm512_setzero_si512(), ax)
                        };
                        let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, ax);
                        let two =
                            _mm_castpd_ps(_mm_load_sd(xd2.add(2 * (p * cpr + j)) as *const f64));
                        let dx = _mm512_permutexvar_ps(pair_idx, _mm512_castps128_ps512(two));
                        let sd = _mm512_mul_ps(sc, dx);
                        acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sd, acc[r][p]);
                        if K::UNSIGNED && !K::BLOCK_OFFS {
                            off[r][p][0] += ofs * *xs.add(k0);
                            off[r][p][1] += ofs * *xs.add(k1);
                        }
                    }
                }
            }
        }
        let mut out = [[[0f32; 2]; P]; R];
        for r in 0..R {
            for p in 0..P {
                let (a0, a1) = halves(acc[r][p]);
                let (v0, v1) = halves(offv[r][p]);
                out[r][p][0] = hsum1(a0) + (off[r][p][0] + hsum1(v0));
                out[r][p][1] = hsum1(a1) + (off[r][p][1] + hsum1(v1));
            }
        }
        out
    }
}

/// Rows `0..rows` against the `2P` tokens `t0..` (pair `t0 / 2..` of the interleaved
/// activations): tiles of `R` rows, then row by row.
///
/// # Safety
/// As [`matmul`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows<K: KernQ8, const R: usize, const P: usize>(
    w: &[u8],
    cols: usize,
    xq2: &[i8],
    xd2: &[f32],
    xs: &[f32],
    t0: usize,
    n_rows: usize,
    out: &mut [f32],
) {
    let nb = cols / K::QK;
    let cpr = cols / 32;
    let rb = nb * K::BYTES;
    // SAFETY: token `t0 + 2P - 1` is in bounds (checked by the caller).
    let (xqp, xdp, xsp) = unsafe {
        (
            xq2.as_ptr().add(t0 * cols),
            xd2.as_ptr().add(t0 * cpr),
            xs.as_ptr().add(t0 * cpr),
        )
    };
    let mut put = |r: usize, v: &[[f32; 2]; P]| {
        for (p, pair) in v.iter().enumerate() {
            out[(t0 + 2 * p) * n_rows + r] = pair[0];
            out[(t0 + 2 * p + 1) * n_rows + r] = pair[1];
        }
    };
    let mut r = 0;
    while r < n_rows {
        if r + R <= n_rows {
            // SAFETY: rows r..r+R are in bounds.
            let v = unsafe { tile::<K, R, P>(w.as_ptr().add(r * rb), rb, nb, cpr, xqp, xdp, xsp) };
            for (i, vr) in v.iter().enumerate() {
                put(r + i, vr);
            }
            r += R;
        } else {
            // SAFETY: row r is in bounds.
            let v = unsafe { tile::<K, 1, P>(w.as_ptr().add(r * rb), rb, nb, cpr, xqp, xdp, xsp) };
            put(r, &v[0]);
            r += 1;
        }
    }
}

/// The activations of token pairs side by side: for pair `p` and chunk `j`, 64 bytes (token
/// `2p`'s 32, then token `2p + 1`'s) in `xq2`, and the two scales in `xd2`, so a tile loads a
/// pair's chunk with one 512-bit load.
fn interleave(xq: &[i8], xd: &[f32], cols: usize, pairs: usize) -> (Vec<i8>, Vec<f32>) {
    let cpr = cols / 32;
    let mut xq2 = vec![0i8; pairs * 2 * cols];
    let mut xd2 = vec![0f32; pairs * 2 * cpr];
    for p in 0..pairs {
        for j in 0..cpr {
            for h in 0..2 {
                let t = 2 * p + h;
                let dst = 64 * (p * cpr + j) + 32 * h;
                xq2[dst..dst + 32].copy_from_slice(&xq[t * cols + 32 * j..t * cols + 32 * j + 32]);
                xd2[2 * (p * cpr + j) + h] = xd[t * cpr + j];
            }
        }
    }
    (xq2, xd2)
}

/// The 512-bit kernel for one block type: tiles of 2 rows × 8 tokens and 4 rows × 4 tokens;
/// returns how many tokens it did (an even number: a last odd token is left to the 256-bit
/// kernel, which computes it bit for bit the same).
///
/// # Safety
/// Lengths checked by the caller (as `x86::matmul_q8`), and the CPU has the features of
/// [`available`] plus AVX2/FMA/F16C.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul<K: KernQ8>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) -> usize {
    let n_rows = out.len() / n_tok;
    let (xq2, xd2) = interleave(xq, xd, cols, n_tok / 2);
    let mut t = 0;
    // SAFETY: tokens t..t+2P <= n_tok; lengths checked by the caller.
    unsafe {
        while t + 8 <= n_tok {
            rows::<K, 2, 4>(w, cols, &xq2, &xd2, xs, t, n_rows, out);
            t += 8;
        }
        while t + 4 <= n_tok {
            rows::<K, 4, 2>(w, cols, &xq2, &xd2, xs, t, n_rows, out);
            t += 4;
        }
        while t + 2 <= n_tok {
            rows::<K, 4, 1>(w, cols, &xq2, &xd2, xs, t, n_rows, out);
            t += 2;
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// K-quants against Q8_K-style activations (one scale per 256 values, `Q8Acts::kq`).
//
// With one activation scale per block, a whole block's integer dot products can be summed in
// integers: `vpdpbusd` gives 4-product sums (≤ 4 · 63 · 127 < 2^15, so they pack to i16 without
// saturating), `vpackssdw` packs two such vectors, and `vpdpwssd` multiplies them by the 6- or
// 8-bit sub-scales and accumulates in i32. One conversion and two FMAs per block and token are
// left of the float work (the old kernel converted and scaled every 64 values).
// ---------------------------------------------------------------------------------------------

/// One K-quant block ready for the integer kernel.
#[derive(Clone, Copy)]
pub(super) struct BlkK {
    /// Sub-scales as i16, laid out for the packed dot sums of weight vectors (0, 1) and (2, 3).
    s: [__m512i; 2],
    /// The block's `d`, in every lane.
    d: __m512,
    /// The offset of each 16-weight group (Q4_K/Q5_K `-dmin · min`, Q6_K `-32 · d · scale`),
    /// to meet `d_x · Σq` of the same group of activations.
    off: __m512,
}

/// A K-quant as 256 unsigned weights (natural order, four 64-byte vectors) and a [`BlkK`].
pub(super) trait KernQ8K {
    const BYTES: usize;
    unsafe fn prep(b: *const u8) -> BlkK;
    unsafe fn weights(b: *const u8) -> [__m512i; 4];
}

/// i16 lane `p` of the packed sums of weight vectors `2v`, `2v + 1` covers 16-weight group
/// `8v + 4·(p % 8 / 4) + p / 8` (`vpackssdw` packs per 128-bit lane).
const fn group_of(v: usize, p: usize) -> usize {
    8 * v + 4 * ((p % 8) / 4) + p / 8
}

/// `vpermw` indices that spread per-group scales (`div` groups share one) over the i16 lanes.
const fn scale_idx(v: usize, div: usize) -> [i16; 32] {
    let mut o = [0i16; 32];
    let mut p = 0;
    while p < 32 {
        o[p] = (group_of(v, p) / div) as i16;
        p += 1;
    }
    o
}

const K4_IDX: [[i16; 32]; 2] = [scale_idx(0, 2), scale_idx(1, 2)];
const K6_IDX: [[i16; 32]; 2] = [scale_idx(0, 1), scale_idx(1, 1)];

#[inline(always)]
unsafe fn idx(i: &[i16; 32]) -> __m512i {
    // SAFETY: 64 readable bytes; inlined into AVX-512 kernels only.
    unsafe { _mm512_loadu_si512(i.as_ptr() as *const __m512i) }
}

/// Q4_K / Q5_K: scales and mins from `k4_raw`.
#[inline(always)]
unsafe fn k4_blk(b: *const u8) -> BlkK {
    // SAFETY: forwarded from the caller; inlined into AVX-512 kernels only.
    unsafe {
        let (d, dmin, sc, mn) = super::k4_raw(b);
        let sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
        let mn = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128(mn as i64)));
        let mn = _mm512_mul_ps(mn, _mm512_set1_ps(-dmin));
        // Lane i of the offsets is group i of 16 = chunk i / 2.
        let pair = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        BlkK {
            s: [
                _mm512_permutexvar_epi16(idx(&K4_IDX[0]), sc),
                _mm512_permutexvar_epi16(idx(&K4_IDX[1]), sc),
            ],
            d: _mm512_set1_ps(d),
            off: _mm512_permutexvar_ps(pair, mn),
        }
    }
}

/// Four 64-weight vectors of 4-bit values from the Q4_K / Q5_K `qs` at `qs`: vector `v` is the
/// low nibbles of bytes `32v..32v+32` (chunk `2v`) then their high nibbles (chunk `2v + 1`).
#[inline(always)]
unsafe fn k4_nibbles(qs: *const u8) -> [__m512i; 4] {
    // SAFETY: 128 readable bytes at `qs`; inlined into AVX-512 kernels only.
    unsafe {
        // (Loops, not closures: a closure would not inherit the caller's target features.)
        let mut o = [_mm512_setzero_si512(); 4];
        for v in 0..4 {
            let q = _mm512_broadcast_i64x4(_mm256_loadu_si256(qs.add(32 * v) as *const __m256i));
            let q = _mm512_mask_srli_epi16::<4>(q, 0xFFFF_0000, q);
            o[v] = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
        }
        o
    }
}

impl KernQ8K for super::Q4K {
    const BYTES: usize = 144;
    #[inline(always)]
    unsafe fn prep(b: *const u8) -> BlkK {
        // SAFETY: forwarded from the caller.
        unsafe { k4_blk(b) }
    }
    #[inline(always)]
    unsafe fn weights(b: *const u8) -> [__m512i; 4] {
        // SAFETY: qs is bytes 16..144.
        unsafe { k4_nibbles(b.add(16)) }
    }
}

impl KernQ8K for super::Q5K {
    const BYTES: usize = 176;
    #[inline(always)]
    unsafe fn prep(b: *const u8) -> BlkK {
        // SAFETY: forwarded from the caller.
        unsafe { k4_blk(b) }
    }
    #[inline(always)]
    unsafe fn weights(b: *const u8) -> [__m512i; 4] {
        // SAFETY: qh is bytes 16..48, qs 48..176; inlined into AVX-512 kernels only.
        unsafe {
            let lo = k4_nibbles(b.add(48));
            let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(b.add(16) as *const __m256i));
            let mut o = lo;
            for v in 0..4 {
                // Bit 2v of qh[i] is the fifth bit of chunk 2v, bit 2v + 1 that of chunk 2v + 1.
                let bits = _mm512_inserti64x4::<1>(
                    _mm512_set1_epi8((1u8 << (2 * v)) as i8),
                    _mm256_set1_epi8((1u8 << (2 * v + 1)) as i8),
                );
                let k = _mm512_test_epi8_mask(qh, bits);
                o[v] = _mm512_mask_add_epi8(lo[v], k, lo[v], _mm512_set1_epi8(16));
            }
            o
        }
    }
}

impl KernQ8K for super::Q6K {
    const BYTES: usize = 210;
    #[inline(always)]
    unsafe fn prep(b: *const u8) -> BlkK {
        // SAFETY: scales[16] are bytes 192..208 and d bytes 208..210 of the block.
        unsafe {
            let d = super::f16_at(b.add(208));
            let sc = _mm_loadu_si128(b.add(192) as *const __m128i);
            let s16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(sc));
            let sf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc));
            BlkK {
                s: [
                    _mm512_permutexvar_epi16(idx(&K6_IDX[0]), s16),
                    _mm512_permutexvar_epi16(idx(&K6_IDX[1]), s16),
                ],
                d: _mm512_set1_ps(d),
                // The weights below are q + 32 (unsigned); this takes the 32 back off.
                off: _mm512_mul_ps(sf, _mm512_set1_ps(-32.0 * d)),
            }
        }
    }
    #[inline(always)]
    unsafe fn weights(b: *const u8) -> [__m512i; 4] {
        // SAFETY: ql is bytes 0..128, qh 128..192; inlined into AVX-512 kernels only.
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            let m2 = _mm512_set1_epi8(0x30);
            // Half h: ql[64h..64h+64] low nibbles are chunks 4h, 4h+1, high nibbles 4h+2, 4h+3;
            // chunk 4h+k takes bits 2k, 2k+1 of qh[32h..32h+32] as its bits 4, 5.
            let up = _mm512_inserti64x4::<1>(_mm512_set1_epi16(4), _mm256_set1_epi16(2));
            let dn = _mm512_inserti64x4::<1>(_mm512_set1_epi16(0), _mm256_set1_epi16(2));
            let mut o = [_mm512_setzero_si512(); 4];
            for h in 0..2 {
                let ql = _mm512_loadu_si512(b.add(64 * h) as *const __m512i);
                let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    b.add(128 + 32 * h) as *const __m256i
                ));
                let lo = _mm512_and_si512(ql, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4);
                let hl = _mm512_and_si512(_mm512_sllv_epi16(qh, up), m2);
                let hh = _mm512_and_si512(_mm512_srlv_epi16(qh, dn), m2);
                o[2 * h] = _mm512_or_si512(lo, hl);
                o[2 * h + 1] = _mm512_or_si512(hi, hh);
            }
            o
        }
    }
}

/// One row against `T` tokens: per block, integer dot sums scaled by the sub-scales in i32,
/// then `acc += f32(Σ) · d · d_x + off · (d_x Σq per group)`. Every (row, token) runs exactly
/// these operations whatever `T` is, so a batch equals its tokens one by one, bit for bit.
///
/// # Safety
/// One row of `nb` blocks at `w`; `T` tokens of `nb` blocks at `xq` (`cols` bytes apart) /
/// `xd` (`nb` apart) / `xb` (`16 nb` apart); AVX-512 F/BW/VNNI.
#[inline(always)]
unsafe fn tile_k<K: KernQ8K, const T: usize>(
    w: *const u8,
    next: *const u8,
    nb: usize,
    xq: *const i8,
    xd: *const f32,
    xb: *const f32,
) -> [f32; T] {
    // SAFETY: every pointer below stays within the ranges the caller guarantees; prefetches
    // never fault.
    unsafe {
        let cols = nb * 256;
        let mut acc = [_mm512_setzero_ps(); T];
        let z = _mm512_setzero_si512();
        for b in 0..nb {
            let blk = w.add(b * K::BYTES);
            let mut o = 0;
            while o < K::BYTES {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * K::BYTES + o) as *const i8);
                o += 64;
            }
            let st = K::prep(blk);
            let wv = K::weights(blk);
            for t in 0..T {
                let a = xq.add(t * cols + 256 * b);
                let mut p = [z; 4];
                for v in 0..4 {
                    let x = _mm512_loadu_si512(a.add(64 * v) as *const __m512i);
                    p[v] = _mm512_dpbusd_epi32(z, wv[v], x);
                }
                let i = _mm512_dpwssd_epi32(z, _mm512_packs_epi32(p[0], p[1]), st.s[0]);
                let i = _mm512_dpwssd_epi32(i, _mm512_packs_epi32(p[2], p[3]), st.s[1]);
                let k = t * nb + b;
                let dd = _mm512_mul_ps(st.d, _mm512_set1_ps(*xd.add(k)));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), dd, acc[t]);
                acc[t] = _mm512_fmadd_ps(st.off, _mm512_loadu_ps(xb.add(16 * k)), acc[t]);
            }
        }
        let mut out = [0f32; T];
        for t in 0..T {
            out[t] = _mm512_reduce_add_ps(acc[t]);
        }
        out
    }
}

/// Every row against tokens `t0..t0 + T`.
///
/// # Safety
/// As [`matmul_k`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_k<K: KernQ8K, const T: usize>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xb: &[f32],
    t0: usize,
    rs: std::ops::Range<usize>,
    n_rows: usize,
    out: &mut [f32],
) {
    let nb = cols / 256;
    let rb = nb * K::BYTES;
    // SAFETY: token `t0 + T - 1` and rows `rs` are in bounds (checked by the caller).
    unsafe {
        let (xq, xd, xb) = (
            xq.as_ptr().add(t0 * cols),
            xd.as_ptr().add(t0 * nb),
            xb.as_ptr().add(t0 * nb * 16),
        );
        for r in rs {
            let row = w.as_ptr().add(r * rb);
            let v = tile_k::<K, T>(row, row.wrapping_add(rb), nb, xq, xd, xb);
            for (t, &x) in v.iter().enumerate() {
                out[(t0 + t) * n_rows + r] = x;
            }
        }
    }
}

/// Weight bytes per panel of rows that all token groups of a batch pass over before the next
/// panel: it stays in L2, so the weights come from memory once per product.
const PANEL_BYTES: usize = 256 << 10;

/// A K-quant product with Q8_K-style activations: `xq` (n_tok × cols) bytes quantized per
/// 256-block, `xd` the block scales, `xb` `d · Σq` per 16 values.
///
/// # Safety
/// Lengths checked by the caller; `cols` a multiple of 256; the CPU has the features of
/// [`available`] plus AVX2/FMA/F16C.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul_k<K: KernQ8K>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xb: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    let n_rows = out.len() / n_tok;
    let rb = cols / 256 * K::BYTES;
    let panel = (PANEL_BYTES / rb.max(1)).max(1);
    let mut p = 0;
    while p < n_rows {
        let rs = p..(p + panel).min(n_rows);
        let mut t = 0;
        // SAFETY: tokens t..t+T <= n_tok, rows in `rs`; lengths checked by the caller.
        unsafe {
            while t + TOKS_K <= n_tok {
                rows_k::<K, TOKS_K>(w, cols, xq, xd, xb, t, rs.clone(), n_rows, out);
                t += TOKS_K;
            }
            while t + 4 <= n_tok {
                rows_k::<K, 4>(w, cols, xq, xd, xb, t, rs.clone(), n_rows, out);
                t += 4;
            }
            while t < n_tok {
                rows_k::<K, 1>(w, cols, xq, xd, xb, t, rs.clone(), n_rows, out);
                t += 1;
            }
        }
        p = rs.end;
    }
}

/// Tokens per tile of the K-quant kernel: the decoded block (four registers, its scales)
/// serves them all, and their accumulators fit the 32 registers.
const TOKS_K: usize = 16;
