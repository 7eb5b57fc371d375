//! x86_64 AVX-512 VNNI variant of the 8-bit integer kernels (`Activations::Q8`): the block
//! decoders of `x86.rs` produce 32 weights at a time as before, and two such chunks are joined
//! into one 512-bit register, so the dot (`vpdpbusd`), the conversion, the scaling and the FMA
//! each cover 64 weights per instruction — half the instructions of the 256-bit kernel, which
//! is what prefill (compute-bound) needs. Chosen at run time where the CPU has AVX-512 F/BW/DQ/
//! VNNI and a row has an even number of 32-chunks (every model we know); otherwise `x86.rs`.
//!
//! Used for batches (prefill); a single token goes to the 256-bit kernel, which streams memory
//! faster. Per (row, token) the sums run over chunk pairs in a fixed order whatever the tile
//! shape, and differ from the 256-bit kernel's only in float summation order — so on an
//! AVX-512 machine a batch agrees with its tokens one by one to rounding, not bit for bit.

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

/// Whether a row of `cols` elements of `K` splits into whole chunk pairs (a pair never crosses
/// a block of a K-quant; the 32-element types pair two blocks).
pub(super) fn fits<K: KernQ8>(cols: usize) -> bool {
    let nb = cols / K::QK;
    K::QK >= 64 || nb.is_multiple_of(2)
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

/// `R` rows × `T` tokens, as `x86::tile_q8` but over chunk pairs in 512-bit registers.
///
/// # Safety
/// `R` rows of `nb` blocks at `w` (`rb` bytes apart); `T` tokens of `cpr` chunks at
/// `xq`/`xd`/`xs`; [`fits`] holds; the CPU has the features of [`available`] and AVX2/FMA/F16C.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<K: KernQ8, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    nb: usize,
    cpr: usize,
    xq: *const i8,
    xd: *const f32,
    xs: *const f32,
) -> [[f32; T]; R] {
    // SAFETY: every pointer below stays within the ranges the caller guarantees.
    unsafe {
        let cpb = K::QK / 32; // chunks per block
        let bpg = if cpb == 1 { 2 } else { 1 }; // blocks per group of whole chunk pairs
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        let mut off = [[0f32; T]; R];
        let mut offv = [[_mm256_setzero_ps(); T]; R];
        // Lanes 0..8 take the first chunk's activation scale, 8..16 the second's.
        let pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let next = w.wrapping_add(R * rb);
        for g in 0..nb / bpg {
            let b0 = g * bpg;
            let mut o = 0;
            while o < R * bpg * K::BYTES {
                let p = next.wrapping_add(b0 * R * K::BYTES + o);
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
                o += 64;
            }
            // Block states of the group's (one or two) blocks, per row.
            let mut st = [[K::prep(w.add(b0 * K::BYTES)); 2]; R];
            for r in 0..R {
                for i in 0..bpg {
                    st[r][i] = K::prep(w.add(r * rb + (b0 + i) * K::BYTES));
                }
            }
            if K::BLOCK_OFFS {
                for t in 0..T {
                    let sx = _mm256_loadu_ps(xs.add(t * cpr + 8 * b0));
                    for r in 0..R {
                        offv[r][t] = _mm256_fmadd_ps(K::block_offs(&st[r][0]), sx, offv[r][t]);
                    }
                }
            }
            for jp in 0..bpg * cpb / 2 {
                let j = b0 * cpb + 2 * jp; // first chunk of the pair (row-relative)
                let (i0, c0) = ((2 * jp) / cpb, (2 * jp) % cpb);
                let (i1, c1) = ((2 * jp + 1) / cpb, (2 * jp + 1) % cpb);
                // Both chunks' activation scales in their halves, per token.
                let mut dx = [_mm512_setzero_ps(); T];
                for t in 0..T {
                    let two = _mm_castpd_ps(_mm_load_sd(xd.add(t * cpr + j) as *const f64));
                    dx[t] = _mm512_permutexvar_ps(pair_idx, _mm512_castps128_ps512(two));
                }
                for r in 0..R {
                    let base = w.add(r * rb + b0 * K::BYTES);
                    let (w0, s0, f0) = K::qchunk(base.add(i0 * K::BYTES), &st[r][i0], c0);
                    let (w1, s1, f1) = K::qchunk(base.add(i1 * K::BYTES), &st[r][i1], c1);
                    let wq = join_i(w0, w1);
                    let sc = join_f(s0, s1);
                    let (wu, neg) = if K::UNSIGNED {
                        (wq, 0)
                    } else {
                        (_mm512_abs_epi8(wq), _mm512_movepi8_mask(wq))
                    };
                    for t in 0..T {
                        let k = t * cpr + j;
                        let ax = _mm512_loadu_si512(xq.add(32 * k) as *const __m512i);
                        // x with w's sign, so that |w| can be the unsigned operand.
                        let ax = if K::UNSIGNED {
                            ax
                        } else {
                            _mm512_mask_sub_epi8(ax, neg, _mm512_setzero_si512(), ax)
                        };
                        let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, ax);
                        let s = _mm512_mul_ps(sc, dx[t]);
                        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc[r][t]);
                        if K::UNSIGNED && !K::BLOCK_OFFS {
                            off[r][t] += f0 * *xs.add(k) + f1 * *xs.add(k + 1);
                        }
                    }
                }
            }
        }
        let mut out = [[0f32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = _mm512_reduce_add_ps(acc[r][t]) + (off[r][t] + hsum1(offv[r][t]));
            }
        }
        out
    }
}

/// Rows `0..rows` against tokens `t0..t0 + T`: tiles of `R` rows, then row by row.
///
/// # Safety
/// As [`matmul`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows<K: KernQ8, const R: usize, const T: usize>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    t0: usize,
    n_rows: usize,
    out: &mut [f32],
) {
    let nb = cols / K::QK;
    let cpr = cols / 32;
    let rb = nb * K::BYTES;
    // SAFETY: token `t0 + T - 1` is in bounds (checked by the caller).
    let (xqp, xdp, xsp) = unsafe {
        (
            xq.as_ptr().add(t0 * cols),
            xd.as_ptr().add(t0 * cpr),
            xs.as_ptr().add(t0 * cpr),
        )
    };
    let mut r = 0;
    while r < n_rows {
        if r + R <= n_rows {
            // SAFETY: rows r..r+R are in bounds.
            let v = unsafe { tile::<K, R, T>(w.as_ptr().add(r * rb), rb, nb, cpr, xqp, xdp, xsp) };
            for (i, vr) in v.iter().enumerate() {
                for (t, &x) in vr.iter().enumerate() {
                    out[(t0 + t) * n_rows + r + i] = x;
                }
            }
            r += R;
        } else {
            // SAFETY: row r is in bounds.
            let v = unsafe { tile::<K, 1, T>(w.as_ptr().add(r * rb), rb, nb, cpr, xqp, xdp, xsp) };
            for (t, &x) in v[0].iter().enumerate() {
                out[(t0 + t) * n_rows + r] = x;
            }
            r += 1;
        }
    }
}

/// The 512-bit kernel for one block type: 4-row tiles for one token (decode), 2 × 4 tiles for a
/// batch, the leftover tokens one by one.
///
/// # Safety
/// Lengths checked by the caller (as `x86::matmul_q8`), [`fits`] holds, and the CPU has the
/// features of [`available`] plus AVX2/FMA/F16C.
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
) {
    let n_rows = out.len() / n_tok;
    let mut t = 0;
    // SAFETY: tokens t..t+T <= n_tok; lengths checked by the caller.
    unsafe {
        while t + 8 <= n_tok {
            rows::<K, 2, 8>(w, cols, xq, xd, xs, t, n_rows, out);
            t += 8;
        }
        while t + 4 <= n_tok {
            rows::<K, 4, 4>(w, cols, xq, xd, xs, t, n_rows, out);
            t += 4;
        }
        while t < n_tok {
            rows::<K, 4, 1>(w, cols, xq, xd, xs, t, n_rows, out);
            t += 1;
        }
    }
}
