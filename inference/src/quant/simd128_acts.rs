//! The activation quantizer of the 8-bit kernels in wasm32 `simd128`: what
//! [`super::Q8Acts::quantize_portable`] and [`super::Q8Acts::quantize_k_portable`] compute, four
//! lanes at a time. The bytes, scales and integer sums are the same bit for bit (the maximum is
//! exact in any order, and each value is scaled and rounded with the same f32 operations); the
//! f32 chunk sum `s` adds in another order (`tests/wasm_simd.rs` checks both).
//!
//! Once per product (or per pool job), and in a threaded decode step on the path that no other
//! thread can share: in scalar code it was a few µs of every job.

use core::arch::wasm32::*;

/// The first 32 values of `x` as eight vectors.
#[inline(always)]
fn load8(x: &[f32]) -> [v128; 8] {
    assert!(x.len() >= 32);
    // SAFETY: `x` has at least 32 readable f32 (checked above); `v128_load` allows unaligned
    // addresses.
    std::array::from_fn(|i| unsafe { v128_load(x.as_ptr().add(4 * i) as *const v128) })
}

/// `max |v|` over the vectors, starting from 0 like the portable fold (`pmax(m, a)` is
/// `m < a ? a : m`: a NaN lane of `a` leaves `m`, as `f32::max` does).
#[inline(always)]
fn abs_max(v: &[v128]) -> f32 {
    let mut m = f32x4_splat(0.0);
    for &a in v {
        m = f32x4_pmax(m, f32x4_abs(a));
    }
    let m = f32x4_pmax(m, i32x4_shuffle::<2, 3, 0, 1>(m, m));
    let m = f32x4_pmax(m, i32x4_shuffle::<1, 0, 3, 2>(m, m));
    f32x4_extract_lane::<0>(m)
}

/// `round_ties_even(v · id) as i8` as i32 lanes: NaN to 0 and out-of-range values saturated to
/// -128..=127, as `as i8` does (only a subnormal scale, whose inverse is infinite, gets there),
/// so that the sums of the lanes are those of the stored bytes.
#[inline(always)]
fn round_scaled(v: v128, id: v128) -> v128 {
    let r = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v, id)));
    i32x4_max(i32x4_min(r, i32x4_splat(127)), i32x4_splat(-128))
}

/// 32 values `v` scaled by `id` and rounded ([`round_scaled`]), stored as i8 at `q` (32 bytes);
/// returns the rounded i32 lanes, whose sums are those of the stored bytes.
#[inline(always)]
fn quantize32(v: &[v128; 8], id: v128, q: &mut [i8]) -> [v128; 8] {
    assert!(q.len() >= 32);
    let r: [v128; 8] = std::array::from_fn(|i| round_scaled(v[i], id));
    for (half, r) in r.chunks_exact(4).enumerate() {
        let lo = i16x8_narrow_i32x4(r[0], r[1]);
        let hi = i16x8_narrow_i32x4(r[2], r[3]);
        // SAFETY: `q` has at least 32 writable bytes (checked above), so bytes 16·half .. +16
        // are in it; unaligned stores are allowed.
        unsafe {
            let p = q.as_mut_ptr().add(16 * half) as *mut v128;
            v128_store(p, i8x16_narrow_i16x8(lo, hi));
        }
    }
    r
}

/// The sum of an i32x4's lanes.
#[inline(always)]
fn hsum_i32(v: v128) -> i32 {
    let v = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = i32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    i32x4_extract_lane::<0>(v)
}

/// The sum of an f32x4's lanes.
#[inline(always)]
fn hsum_f32(v: v128) -> f32 {
    let v = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = f32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    f32x4_extract_lane::<0>(v)
}

/// Per 32-chunk of `x`: `q = round_ties_even(x / d)` with `d = max|x| / 127`, `s = Σx`,
/// `d16 = f16(d)`, `s16 = f16(d · Σq)`. Every output is sized for `x` by the caller.
pub(super) fn quantize_q8(
    x: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    d16: &mut [f32],
    s16: &mut [f32],
) {
    let f16r = |v: f32| half::f16::from_f32(v).to_f32();
    let outs = q.chunks_exact_mut(32).zip(d.iter_mut().zip(s.iter_mut()));
    let outs16 = d16.iter_mut().zip(s16.iter_mut());
    for ((xc, (qc, (dc, sc))), (d16c, s16c)) in x.chunks_exact(32).zip(outs).zip(outs16) {
        let v = load8(xc);
        let dv = abs_max(&v) / 127.0;
        let id = f32x4_splat(if dv > 0.0 { 1.0 / dv } else { 0.0 });
        let r = quantize32(&v, id, qc);
        let qsum = hsum_i32(r.iter().fold(i32x4_splat(0), |a, &b| i32x4_add(a, b)));
        *dc = dv;
        *sc = hsum_f32(v.iter().fold(f32x4_splat(0.0), |a, &b| f32x4_add(a, b)));
        *d16c = f16r(dv);
        *s16c = f16r(qsum as f32 * dv);
    }
}

/// Per 256-block of `x`: `kq = round_ties_even(x / kd)` with `kd = max|x| / 127`, and
/// `kb = kd · Σkq` of every 16 values. Every output is sized for `x` by the caller.
pub(super) fn quantize_q8k(x: &[f32], kq: &mut [i8], kd: &mut [f32], kb: &mut [f32]) {
    let blocks = kq
        .chunks_exact_mut(256)
        .zip(kd.iter_mut().zip(kb.chunks_exact_mut(16)));
    for (xk, (qk, (dk, bk))) in x.chunks_exact(256).zip(blocks) {
        let mut m = 0f32;
        for xc in xk.chunks_exact(32) {
            m = m.max(abs_max(&load8(xc)));
        }
        let dv = m / 127.0;
        let id = f32x4_splat(if dv > 0.0 { 1.0 / dv } else { 0.0 });
        for ((xc, qc), bc) in xk
            .chunks_exact(32)
            .zip(qk.chunks_exact_mut(32))
            .zip(bk.chunks_exact_mut(2))
        {
            let r = quantize32(&load8(xc), id, qc);
            for (b, g) in bc.iter_mut().zip(r.chunks_exact(4)) {
                let sum = i32x4_add(i32x4_add(g[0], g[1]), i32x4_add(g[2], g[3]));
                *b = dv * hsum_i32(sum) as f32;
            }
        }
        *dk = dv;
    }
}
