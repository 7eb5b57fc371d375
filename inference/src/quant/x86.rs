//! x86_64 AVX2 + FMA + F16C kernels (activations stay f32).
//!
//! Every block type is decoded in registers, 32 weights (four `__m256`) at a time, and multiplied
//! with f32 activations by FMA into four accumulators: vector `i` of every 32-weight chunk goes to
//! accumulator `i`, and the four are reduced in a fixed order at the end of the row. `matmul`
//! decodes each row once into a buffer through the very same chunk decoders and runs the same
//! FMA sequence per token, so it is bit-identical to `vec_dot` / `matvec` per token.
//!
//! The decoded weights equal `scalar.rs` exactly except for `q * d + m` style formulas, which are
//! one fused multiply-add here (≤ 1 ulp per weight); dot products agree with the scalar
//! reference to ~1e-6 relative (different summation order).
//!
//! All entry points check lengths before entering the `unsafe` code; the kernels themselves use
//! raw pointers within those checked bounds.

// Vector lanes and accumulators are indexed explicitly; that reads better than iterators here.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicU8, Ordering};

use super::scalar::{self, q3_k_scales, row_bytes};
use super::GgmlType;

#[path = "avx512.rs"]
mod avx512;

static DETECTED: AtomicU8 = AtomicU8::new(0); // 0 = not yet, 1 = no, 2 = yes

/// AVX2, FMA and F16C present (detected once, then cached).
pub(super) fn available() -> bool {
    match DETECTED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let ok = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            DETECTED.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
            ok
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Block decoders
// ---------------------------------------------------------------------------------------------

/// A block type: `chunk(b, st, c)` decodes weights `32c .. 32c + 32` of the block at `b`.
///
/// # Safety
/// `prep`/`chunk`/`one` read `BYTES` bytes at `b`; callers guarantee they are in bounds and that
/// the CPU has AVX2, FMA and F16C.
trait Kern {
    const QK: usize;
    const BYTES: usize;
    type St: Copy;
    unsafe fn prep(b: *const u8) -> Self::St;
    unsafe fn chunk(b: *const u8, st: &Self::St, c: usize) -> [__m256; 4];
    /// Element `i` of a partial trailing chunk (float types only).
    unsafe fn one(_b: *const u8, _i: usize) -> f32 {
        unreachable!("quantized rows have no partial chunk")
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(b: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes at `b`.
    let bits = unsafe { (b as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(b: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes at `b`.
    unsafe { _mm256_loadu_si256(b as *const __m256i) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load16(b: *const u8) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes at `b`.
    unsafe { _mm_loadu_si128(b as *const __m128i) }
}

/// 32 signed bytes → four vectors of 8 f32 (in byte order).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn i8x32_to_f32(v: __m256i) -> [__m256; 4] {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    [
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(lo))),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(hi))),
    ]
}

/// 16 bytes of packed nibbles → 32 bytes: low nibbles (weights 0..16), then high nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles(qs: __m128i) -> __m256i {
    let m = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(qs, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), m);
    _mm256_set_m128i(hi, lo)
}

/// Bit `j` of `x` → byte `j` is 0xFF (set) or 0 (llama.cpp's `bytes_from_bits_32`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_bits_32(x: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
    let bit_mask = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit_mask), _mm256_set1_epi64x(-1))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale4(f: [__m256; 4], d: f32) -> [__m256; 4] {
    let d = _mm256_set1_ps(d);
    f.map(|v| _mm256_mul_ps(v, d))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fma4(f: [__m256; 4], d: f32, m: f32) -> [__m256; 4] {
    let (d, m) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
    f.map(|v| _mm256_fmadd_ps(v, d, m))
}

/// `f * d - m` with (d, m) for the first 16 and the last 16 weights.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fms_halves(f: [__m256; 4], d0: f32, m0: f32, d1: f32, m1: f32) -> [__m256; 4] {
    let (d0, m0) = (_mm256_set1_ps(d0), _mm256_set1_ps(m0));
    let (d1, m1) = (_mm256_set1_ps(d1), _mm256_set1_ps(m1));
    [
        _mm256_fmsub_ps(f[0], d0, m0),
        _mm256_fmsub_ps(f[1], d0, m0),
        _mm256_fmsub_ps(f[2], d1, m1),
        _mm256_fmsub_ps(f[3], d1, m1),
    ]
}

/// `f * d` with one scale for the first 16 and another for the last 16 weights.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_halves(f: [__m256; 4], d0: f32, d1: f32) -> [__m256; 4] {
    let (d0, d1) = (_mm256_set1_ps(d0), _mm256_set1_ps(d1));
    [
        _mm256_mul_ps(f[0], d0),
        _mm256_mul_ps(f[1], d0),
        _mm256_mul_ps(f[2], d1),
        _mm256_mul_ps(f[3], d1),
    ]
}

struct Q4_0;
impl Kern for Q4_0 {
    const QK: usize = 32;
    const BYTES: usize = 18;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        // SAFETY: the block at `b` has 18 readable bytes (d, qs[16]).
        let (d, qs) = unsafe { (f16_at(b), load16(b.add(2))) };
        let v = _mm256_sub_epi8(nibbles(qs), _mm256_set1_epi8(8));
        scale4(i8x32_to_f32(v), d)
    }
}

struct Q4_1;
impl Kern for Q4_1 {
    const QK: usize = 32;
    const BYTES: usize = 20;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        // SAFETY: the block at `b` has 20 readable bytes (d, m, qs[16]).
        let (d, m, qs) = unsafe { (f16_at(b), f16_at(b.add(2)), load16(b.add(4))) };
        fma4(i8x32_to_f32(nibbles(qs)), d, m)
    }
}

struct Q5_0;
impl Kern for Q5_0 {
    const QK: usize = 32;
    const BYTES: usize = 22;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        // SAFETY: the block at `b` has 22 readable bytes (d, qh[4], qs[16]).
        let (d, qh, qs) = unsafe {
            (
                f16_at(b),
                (b.add(2) as *const u32).read_unaligned(),
                load16(b.add(6)),
            )
        };
        let hb = _mm256_and_si256(bytes_from_bits_32(u32::from_le(qh)), _mm256_set1_epi8(0x10));
        let v = _mm256_sub_epi8(_mm256_or_si256(nibbles(qs), hb), _mm256_set1_epi8(16));
        scale4(i8x32_to_f32(v), d)
    }
}

struct Q5_1;
impl Kern for Q5_1 {
    const QK: usize = 32;
    const BYTES: usize = 24;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        // SAFETY: the block at `b` has 24 readable bytes (d, m, qh[4], qs[16]).
        let (d, m, qh, qs) = unsafe {
            (
                f16_at(b),
                f16_at(b.add(2)),
                (b.add(4) as *const u32).read_unaligned(),
                load16(b.add(8)),
            )
        };
        let hb = _mm256_and_si256(bytes_from_bits_32(u32::from_le(qh)), _mm256_set1_epi8(0x10));
        fma4(i8x32_to_f32(_mm256_or_si256(nibbles(qs), hb)), d, m)
    }
}

struct Q8_0;
impl Kern for Q8_0 {
    const QK: usize = 32;
    const BYTES: usize = 34;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        // SAFETY: the block at `b` has 34 readable bytes (d, qs[32]).
        let (d, qs) = unsafe { (f16_at(b), load32(b.add(2))) };
        scale4(i8x32_to_f32(qs), d)
    }
}

struct Q2K;
impl Kern for Q2K {
    const QK: usize = 256;
    const BYTES: usize = 84;
    type St = (f32, f32);
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(b: *const u8) -> (f32, f32) {
        // SAFETY: d and dmin are bytes 80..84 of the block.
        unsafe { (f16_at(b.add(80)), f16_at(b.add(82))) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, st: &(f32, f32), c: usize) -> [__m256; 4] {
        let (half, j) = (c >> 2, c & 3);
        // SAFETY: scales are bytes 0..16, qs 16..80; half < 2, so 32 bytes at 16 + 32*half fit.
        let (s0, s1, q) = unsafe {
            (
                *b.add(half * 8 + j * 2),
                *b.add(half * 8 + j * 2 + 1),
                load32(b.add(16 + 32 * half)),
            )
        };
        let v = _mm256_and_si256(
            _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
            _mm256_set1_epi8(3),
        );
        let (d, m) = *st;
        fms_halves(
            i8x32_to_f32(v),
            d * (s0 & 0x0F) as f32,
            m * (s0 >> 4) as f32,
            d * (s1 & 0x0F) as f32,
            m * (s1 >> 4) as f32,
        )
    }
}

struct Q3K;
impl Kern for Q3K {
    const QK: usize = 256;
    const BYTES: usize = 110;
    type St = [f32; 16];
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(b: *const u8) -> [f32; 16] {
        // SAFETY: scales are bytes 96..108 and d is 108..110 of the 110-byte block.
        let (s, d) = unsafe {
            (
                std::slice::from_raw_parts(b.add(96), 12),
                f16_at(b.add(108)),
            )
        };
        q3_k_scales(s).map(|sc| d * sc as f32)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, st: &[f32; 16], c: usize) -> [__m256; 4] {
        let (half, j) = (c >> 2, c & 3);
        // SAFETY: hmask is bytes 0..32, qs 32..96; half < 2.
        let (hm, q) = unsafe { (load32(b), load32(b.add(32 + 32 * half))) };
        let q2 = _mm256_and_si256(
            _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
            _mm256_set1_epi8(3),
        );
        let m = _mm256_set1_epi8((1u8 << (4 * half + j)) as i8);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, m), m);
        let sub = _mm256_andnot_si256(set, _mm256_set1_epi8(4));
        let is = half * 8 + j * 2;
        mul_halves(i8x32_to_f32(_mm256_sub_epi8(q2, sub)), st[is], st[is + 1])
    }
}

/// Scales and mins of the eight 32-weight groups of a Q4_K / Q5_K block, as f32.
#[derive(Clone, Copy)]
struct K4 {
    /// `d · scale_j`
    d: [f32; 8],
    /// `dmin · min_j`
    m: [f32; 8],
}

/// A Q4_K / Q5_K block's `d`, `dmin` and its eight 6-bit scales and mins as bytes, unpacked from
/// the 12 scale bytes with 32-bit word masks (no per-group bit fiddling).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_raw(b: *const u8) -> (f32, f32, u64, u64) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    // SAFETY: d, dmin and scales[12] are bytes 0..16 of the block.
    let (d, dmin, w) = unsafe {
        let p = b.add(4) as *const u32;
        (
            f16_at(b),
            f16_at(b.add(2)),
            [
                p.read_unaligned(),
                p.add(1).read_unaligned(),
                p.add(2).read_unaligned(),
            ]
            .map(u32::from_le),
        )
    };
    // scales 0..3 = s[0..4] & 63; scales 4..7 = s[8..12] & 15 | (s[0..4] >> 6) << 4
    // mins   0..3 = s[4..8] & 63; mins   4..7 = s[8..12] >> 4 | (s[4..8] >> 6) << 4
    let sc = (w[0] & LOW6) as u64 | ((((w[2] & LOW4) | (((w[0] >> 6) & LOW2) << 4)) as u64) << 32);
    let mn = (w[1] & LOW6) as u64
        | (((((w[2] >> 4) & LOW4) | (((w[1] >> 6) & LOW2) << 4)) as u64) << 32);
    (d, dmin, sc, mn)
}

/// A Q4_K / Q5_K block's scales and mins, scaled by `d` / `dmin` all eight at once. The same
/// values as `scalar::scale_min_k4` times `d` / `dmin`, bit for bit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_prep(b: *const u8) -> K4 {
    // SAFETY: forwarded from the caller.
    let (d, dmin, sc, mn) = unsafe { k4_raw(b) };
    let to_f32 = |v: u64, f: f32| {
        let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64)));
        let mut o = [0f32; 8];
        // SAFETY: `o` holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), _mm256_mul_ps(v, _mm256_set1_ps(f))) };
        o
    };
    K4 {
        d: to_f32(sc, d),
        m: to_f32(mn, dmin),
    }
}

struct Q4K;
impl Kern for Q4K {
    const QK: usize = 256;
    const BYTES: usize = 144;
    type St = K4;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(b: *const u8) -> K4 {
        // SAFETY: forwarded from the caller.
        unsafe { k4_prep(b) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, st: &K4, c: usize) -> [__m256; 4] {
        // SAFETY: qs is bytes 16..144; c < 8, so 32 bytes at 16 + 32*(c/2) fit.
        let q = unsafe { load32(b.add(16 + 32 * (c >> 1))) };
        let q = if c & 1 == 0 {
            q
        } else {
            _mm256_srli_epi16::<4>(q)
        };
        let v = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
        let (d, m) = (st.d[c], st.m[c]);
        fms_halves(i8x32_to_f32(v), d, m, d, m)
    }
}

struct Q5K;
impl Kern for Q5K {
    const QK: usize = 256;
    const BYTES: usize = 176;
    type St = K4;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(b: *const u8) -> K4 {
        // SAFETY: forwarded from the caller.
        unsafe { k4_prep(b) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, st: &K4, c: usize) -> [__m256; 4] {
        // SAFETY: qh is bytes 16..48, qs 48..176; c < 8.
        let (qh, q) = unsafe { (load32(b.add(16)), load32(b.add(48 + 32 * (c >> 1)))) };
        let q = if c & 1 == 0 {
            q
        } else {
            _mm256_srli_epi16::<4>(q)
        };
        let lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
        let m = _mm256_set1_epi8((1u8 << c) as i8);
        let hb = _mm256_and_si256(
            _mm256_cmpeq_epi8(_mm256_and_si256(qh, m), m),
            _mm256_set1_epi8(0x10),
        );
        let (d, mn) = (st.d[c], st.m[c]);
        fms_halves(i8x32_to_f32(_mm256_or_si256(lo, hb)), d, mn, d, mn)
    }
}

struct Q6K;
impl Kern for Q6K {
    const QK: usize = 256;
    const BYTES: usize = 210;
    /// `d · scale_i` of the sixteen 16-weight groups.
    type St = [f32; 16];
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(b: *const u8) -> [f32; 16] {
        // SAFETY: scales[16] are bytes 192..208 and d bytes 208..210 of the block.
        let (sc, d) = unsafe { (load16(b.add(192)), _mm256_set1_ps(f16_at(b.add(208)))) };
        let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc));
        let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(sc)));
        let mut o = [0f32; 16];
        // SAFETY: `o` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(o.as_mut_ptr(), _mm256_mul_ps(lo, d));
            _mm256_storeu_ps(o.as_mut_ptr().add(8), _mm256_mul_ps(hi, d));
        }
        o
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, st: &[f32; 16], c: usize) -> [__m256; 4] {
        let (h, k) = (c >> 2, c & 3);
        // SAFETY: ql is bytes 0..128, qh 128..192; h < 2, k < 4.
        let (ql, qh) = unsafe {
            (
                load32(b.add(64 * h + 32 * (k & 1))),
                load32(b.add(128 + 32 * h)),
            )
        };
        let ql = if k >> 1 == 0 {
            ql
        } else {
            _mm256_srli_epi16::<4>(ql)
        };
        let lo = _mm256_and_si256(ql, _mm256_set1_epi8(0x0F));
        let hi = _mm256_and_si256(
            _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32)),
            _mm256_set1_epi8(3),
        );
        let hi = _mm256_slli_epi16::<4>(hi);
        let v = _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
        mul_halves(i8x32_to_f32(v), st[2 * c], st[2 * c + 1])
    }
}

struct F32;
impl Kern for F32 {
    const QK: usize = 32;
    const BYTES: usize = 128;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        let p = b as *const f32;
        // SAFETY: the chunk has 32 readable f32 at `b` (unaligned loads).
        unsafe {
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn one(b: *const u8, i: usize) -> f32 {
        // SAFETY: the caller guarantees element `i` of the partial chunk is in bounds.
        unsafe { (b as *const f32).add(i).read_unaligned() }
    }
}

struct F16;
impl Kern for F16 {
    const QK: usize = 32;
    const BYTES: usize = 64;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        // SAFETY: the chunk has 64 readable bytes at `b`.
        unsafe {
            [
                _mm256_cvtph_ps(load16(b)),
                _mm256_cvtph_ps(load16(b.add(16))),
                _mm256_cvtph_ps(load16(b.add(32))),
                _mm256_cvtph_ps(load16(b.add(48))),
            ]
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn one(b: *const u8, i: usize) -> f32 {
        // SAFETY: the caller guarantees element `i` of the partial chunk is in bounds.
        unsafe { f16_at(b.add(2 * i)) }
    }
}

struct Bf16;
impl Kern for Bf16 {
    const QK: usize = 32;
    const BYTES: usize = 64;
    type St = ();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep(_b: *const u8) {}
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(b: *const u8, _: &(), _c: usize) -> [__m256; 4] {
        let cvt =
            |v: __m128i| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v)));
        // SAFETY: the chunk has 64 readable bytes at `b`.
        unsafe {
            [
                cvt(load16(b)),
                cvt(load16(b.add(16))),
                cvt(load16(b.add(32))),
                cvt(load16(b.add(48))),
            ]
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn one(b: *const u8, i: usize) -> f32 {
        // SAFETY: the caller guarantees element `i` of the partial chunk is in bounds.
        let bits = unsafe { (b.add(2 * i) as *const u16).read_unaligned() };
        f32::from_bits((u16::from_le(bits) as u32) << 16)
    }
}

// ---------------------------------------------------------------------------------------------
// Row kernels (generic over the block type)
// ---------------------------------------------------------------------------------------------

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(a: [__m256; 4]) -> f32 {
    let s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    // SAFETY: this function is compiled with AVX2.
    unsafe { hsum1(s) }
}

/// Elements in whole blocks, and how many trailing elements follow (float types only).
fn split<K: Kern>(n: usize) -> (usize, usize) {
    let nb = n / K::QK;
    (nb, n - nb * K::QK)
}

/// Dot product of one row with `x`, decoding in registers.
///
/// # Safety
/// `row` holds the blocks of `x.len()` elements; AVX2/FMA/F16C are present.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_row<K: Kern>(row: &[u8], x: &[f32]) -> f32 {
    let (nb, tail) = split::<K>(x.len());
    debug_assert!(row.len() >= nb * K::BYTES);
    let (rp, xp) = (row.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    for b in 0..nb {
        // SAFETY: block `b` and its `QK` activations are in bounds (nb blocks of each).
        unsafe {
            let blk = rp.add(b * K::BYTES);
            let st = K::prep(blk);
            for c in 0..K::QK / 32 {
                let w = K::chunk(blk, &st, c);
                let xc = xp.add(b * K::QK + c * 32);
                for i in 0..4 {
                    acc[i] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xc.add(8 * i)), acc[i]);
                }
            }
        }
    }
    let mut s = hsum(acc);
    for i in 0..tail {
        // SAFETY: the partial chunk's `tail` elements follow the whole blocks.
        s += unsafe { K::one(rp.add(nb * K::BYTES), i) } * x[nb * K::QK + i];
    }
    s
}

/// Decode a row into `buf` with the same chunk decoders as [`dot_row`].
///
/// # Safety
/// As [`dot_row`] with `buf.len()` elements.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn deq_row<K: Kern>(row: &[u8], buf: &mut [f32]) {
    let (nb, tail) = split::<K>(buf.len());
    let (rp, bp) = (row.as_ptr(), buf.as_mut_ptr());
    for b in 0..nb {
        // SAFETY: block `b` and its `QK` outputs are in bounds.
        unsafe {
            let blk = rp.add(b * K::BYTES);
            let st = K::prep(blk);
            for c in 0..K::QK / 32 {
                let w = K::chunk(blk, &st, c);
                let o = bp.add(b * K::QK + c * 32);
                for (i, wi) in w.iter().enumerate() {
                    _mm256_storeu_ps(o.add(8 * i), *wi);
                }
            }
        }
    }
    for i in 0..tail {
        // SAFETY: the partial chunk's `tail` elements follow the whole blocks.
        buf[nb * K::QK + i] = unsafe { K::one(rp.add(nb * K::BYTES), i) };
    }
}

/// The FMA sequence of [`dot_row`] over an already decoded row (`whole` = elements in whole
/// 32-chunks).
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_buf(w: &[f32], x: &[f32], whole: usize) -> f32 {
    assert!(w.len() == x.len() && whole <= w.len() && whole.is_multiple_of(32));
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    for c in 0..whole / 32 {
        // SAFETY: chunk `c` of both slices is in bounds (`whole` <= len).
        unsafe {
            let (wc, xc) = (wp.add(32 * c), xp.add(32 * c));
            for i in 0..4 {
                acc[i] = _mm256_fmadd_ps(
                    _mm256_loadu_ps(wc.add(8 * i)),
                    _mm256_loadu_ps(xc.add(8 * i)),
                    acc[i],
                );
            }
        }
    }
    let mut s = hsum(acc);
    for i in whole..w.len() {
        s += w[i] * x[i];
    }
    s
}

/// Two decoded rows against the same `x` (reads `x` once); each result is bit-identical to
/// [`dot_buf`].
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_buf2(w0: &[f32], w1: &[f32], x: &[f32], whole: usize) -> (f32, f32) {
    assert!(
        w0.len() == x.len() && w1.len() == x.len() && whole <= x.len() && whole.is_multiple_of(32)
    );
    let (p0, p1, xp) = (w0.as_ptr(), w1.as_ptr(), x.as_ptr());
    let mut a = [_mm256_setzero_ps(); 4];
    let mut b = [_mm256_setzero_ps(); 4];
    for c in 0..whole / 32 {
        // SAFETY: chunk `c` of all three slices is in bounds (`whole` <= len).
        unsafe {
            for i in 0..4 {
                let o = 32 * c + 8 * i;
                let xv = _mm256_loadu_ps(xp.add(o));
                a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(o)), xv, a[i]);
                b[i] = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(o)), xv, b[i]);
            }
        }
    }
    let (mut s0, mut s1) = (hsum(a), hsum(b));
    for i in whole..x.len() {
        s0 += w0[i] * x[i];
        s1 += w1[i] * x[i];
    }
    (s0, s1)
}

/// # Safety
/// Lengths checked by the caller (`w` holds `out.len() / n_tok` rows of `cols`); AVX2/FMA/F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matmul_k<K: Kern>(w: &[u8], cols: usize, x: &[f32], n_tok: usize, out: &mut [f32]) {
    let rows = out.len() / n_tok;
    let (nb, _) = split::<K>(cols);
    let rb = w.len() / rows.max(1);
    debug_assert!(rb >= nb * K::BYTES);
    if n_tok == 1 {
        for (r, o) in out.iter_mut().enumerate() {
            // SAFETY: row `r` holds the blocks of `cols` elements.
            *o = unsafe { dot_row::<K>(&w[r * rb..(r + 1) * rb], x) };
        }
        return;
    }
    let whole = nb * K::QK / 32 * 32;
    let mut buf = vec![0f32; 2 * cols];
    let (b0, b1) = buf.split_at_mut(cols);
    let mut r = 0;
    while r + 2 <= rows {
        // SAFETY: rows `r` and `r + 1` hold the blocks of `cols` elements.
        unsafe {
            deq_row::<K>(&w[r * rb..(r + 1) * rb], b0);
            deq_row::<K>(&w[(r + 1) * rb..(r + 2) * rb], b1);
        }
        for t in 0..n_tok {
            let (s0, s1) = dot_buf2(b0, b1, &x[t * cols..(t + 1) * cols], whole);
            out[t * rows + r] = s0;
            out[t * rows + r + 1] = s1;
        }
        r += 2;
    }
    if r < rows {
        // SAFETY: row `r` holds the blocks of `cols` elements.
        unsafe { deq_row::<K>(&w[r * rb..(r + 1) * rb], b0) };
        for t in 0..n_tok {
            out[t * rows + r] = dot_buf(b0, &x[t * cols..(t + 1) * cols], whole);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points (called from `mod.rs` after `available()` returned true)
// ---------------------------------------------------------------------------------------------

macro_rules! dispatch {
    ($ty:expr, $f:ident :: <K> ($($arg:expr),*)) => {
        match $ty {
            GgmlType::F32 => $f::<F32>($($arg),*),
            GgmlType::F16 => $f::<F16>($($arg),*),
            GgmlType::BF16 => $f::<Bf16>($($arg),*),
            GgmlType::Q4_0 => $f::<Q4_0>($($arg),*),
            GgmlType::Q4_1 => $f::<Q4_1>($($arg),*),
            GgmlType::Q5_0 => $f::<Q5_0>($($arg),*),
            GgmlType::Q5_1 => $f::<Q5_1>($($arg),*),
            GgmlType::Q8_0 => $f::<Q8_0>($($arg),*),
            GgmlType::Q2_K => $f::<Q2K>($($arg),*),
            GgmlType::Q3_K => $f::<Q3K>($($arg),*),
            GgmlType::Q4_K => $f::<Q4K>($($arg),*),
            GgmlType::Q5_K => $f::<Q5K>($($arg),*),
            GgmlType::Q6_K => $f::<Q6K>($($arg),*),
        }
    };
}

pub(super) fn vec_dot(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    assert!(available());
    assert_eq!(
        row.len(),
        row_bytes(ty, x.len()),
        "quantized row has the wrong byte length"
    );
    // SAFETY: the row length matches `x.len()` elements of `ty`; the CPU features were checked.
    unsafe { dispatch!(ty, dot_row::<K>(row, x)) }
}

pub(super) fn matmul(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    assert!(available());
    if scalar::matmul_dims(ty, w, cols, x, n_tok, out).is_none() {
        return;
    }
    // SAFETY: `w` holds `rows` rows of `cols` elements of `ty`; the CPU features were checked.
    unsafe { dispatch!(ty, matmul_k::<K>(w, cols, x, n_tok, out)) }
}

// ---------------------------------------------------------------------------------------------
// 8-bit activations (`Activations::Q8`): integer dot products with `_mm256_maddubs_epi16`
// ---------------------------------------------------------------------------------------------

/// A block type as 8-bit integers: chunk `c` as 32 i8 weights, the f32 scale of each group of
/// four weights (one per i32 lane of `_mm256_madd_epi16`), and `off` such that the chunk's dot
/// with activations `x` is `Σ scale·w·x + off·Σx`.
trait KernQ8: Kern {
    /// All weights are in 0..=127 (no sign trick needed for `maddubs`).
    const UNSIGNED: bool;
    /// One offset per 32-chunk and eight chunks a block (Q4_K, Q5_K): the eight offsets come
    /// from [`KernQ8::block_offs`] and meet the eight chunk sums of `x` in one FMA per block;
    /// `qchunk`'s own offset is then unused.
    const BLOCK_OFFS: bool = false;
    unsafe fn block_offs(_st: &Self::St) -> __m256 {
        unreachable!("only for BLOCK_OFFS types")
    }
    unsafe fn qchunk(b: *const u8, st: &Self::St, c: usize) -> (__m256i, __m256, f32);
}

impl KernQ8 for Q4_0 {
    const UNSIGNED: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, _: &(), _c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: the block at `b` has 18 readable bytes (d, qs[16]).
        let (d, qs) = unsafe { (f16_at(b), load16(b.add(2))) };
        let v = _mm256_sub_epi8(nibbles(qs), _mm256_set1_epi8(8));
        (v, _mm256_set1_ps(d), 0.0)
    }
}

impl KernQ8 for Q4_1 {
    const UNSIGNED: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, _: &(), _c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: the block at `b` has 20 readable bytes (d, m, qs[16]).
        let (d, m, qs) = unsafe { (f16_at(b), f16_at(b.add(2)), load16(b.add(4))) };
        (nibbles(qs), _mm256_set1_ps(d), m)
    }
}

impl KernQ8 for Q5_0 {
    const UNSIGNED: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, _: &(), _c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: the block at `b` has 22 readable bytes (d, qh[4], qs[16]).
        let (d, qh, qs) = unsafe {
            (
                f16_at(b),
                (b.add(2) as *const u32).read_unaligned(),
                load16(b.add(6)),
            )
        };
        let hb = _mm256_and_si256(bytes_from_bits_32(u32::from_le(qh)), _mm256_set1_epi8(0x10));
        let v = _mm256_sub_epi8(_mm256_or_si256(nibbles(qs), hb), _mm256_set1_epi8(16));
        (v, _mm256_set1_ps(d), 0.0)
    }
}

impl KernQ8 for Q5_1 {
    const UNSIGNED: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, _: &(), _c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: the block at `b` has 24 readable bytes (d, m, qh[4], qs[16]).
        let (d, m, qh, qs) = unsafe {
            (
                f16_at(b),
                f16_at(b.add(2)),
                (b.add(4) as *const u32).read_unaligned(),
                load16(b.add(8)),
            )
        };
        let hb = _mm256_and_si256(bytes_from_bits_32(u32::from_le(qh)), _mm256_set1_epi8(0x10));
        (_mm256_or_si256(nibbles(qs), hb), _mm256_set1_ps(d), m)
    }
}

impl KernQ8 for Q8_0 {
    const UNSIGNED: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, _: &(), _c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: the block at `b` has 34 readable bytes (d, qs[32]).
        let (d, qs) = unsafe { (f16_at(b), load32(b.add(2))) };
        (qs, _mm256_set1_ps(d), 0.0)
    }
}

/// Scale lanes: `d0` for the first 16 weights (lanes 0..4), `d1` for the last 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn halves(d0: f32, d1: f32) -> __m256 {
    _mm256_set_ps(d1, d1, d1, d1, d0, d0, d0, d0)
}

impl KernQ8 for Q3K {
    const UNSIGNED: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, st: &[f32; 16], c: usize) -> (__m256i, __m256, f32) {
        let (half, j) = (c >> 2, c & 3);
        // SAFETY: hmask is bytes 0..32, qs 32..96; half < 2.
        let (hm, q) = unsafe { (load32(b), load32(b.add(32 + 32 * half))) };
        let q2 = _mm256_and_si256(
            _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
            _mm256_set1_epi8(3),
        );
        let m = _mm256_set1_epi8((1u8 << (4 * half + j)) as i8);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, m), m);
        let sub = _mm256_andnot_si256(set, _mm256_set1_epi8(4));
        let is = half * 8 + j * 2;
        (_mm256_sub_epi8(q2, sub), halves(st[is], st[is + 1]), 0.0)
    }
}

impl KernQ8 for Q4K {
    const UNSIGNED: bool = true;
    const BLOCK_OFFS: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block_offs(st: &K4) -> __m256 {
        // SAFETY: `m` holds 8 floats.
        _mm256_sub_ps(_mm256_setzero_ps(), unsafe {
            _mm256_loadu_ps(st.m.as_ptr())
        })
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, st: &K4, c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: qs is bytes 16..144; c < 8.
        let q = unsafe { load32(b.add(16 + 32 * (c >> 1))) };
        let q = if c & 1 == 0 {
            q
        } else {
            _mm256_srli_epi16::<4>(q)
        };
        (
            _mm256_and_si256(q, _mm256_set1_epi8(0x0F)),
            _mm256_set1_ps(st.d[c]),
            0.0,
        )
    }
}

impl KernQ8 for Q5K {
    const UNSIGNED: bool = true;
    const BLOCK_OFFS: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block_offs(st: &K4) -> __m256 {
        // SAFETY: `m` holds 8 floats.
        _mm256_sub_ps(_mm256_setzero_ps(), unsafe {
            _mm256_loadu_ps(st.m.as_ptr())
        })
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, st: &K4, c: usize) -> (__m256i, __m256, f32) {
        // SAFETY: qh is bytes 16..48, qs 48..176; c < 8.
        let (qh, q) = unsafe { (load32(b.add(16)), load32(b.add(48 + 32 * (c >> 1)))) };
        let q = if c & 1 == 0 {
            q
        } else {
            _mm256_srli_epi16::<4>(q)
        };
        let lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
        let m = _mm256_set1_epi8((1u8 << c) as i8);
        let hb = _mm256_and_si256(
            _mm256_cmpeq_epi8(_mm256_and_si256(qh, m), m),
            _mm256_set1_epi8(0x10),
        );
        (_mm256_or_si256(lo, hb), _mm256_set1_ps(st.d[c]), 0.0)
    }
}

impl KernQ8 for Q6K {
    const UNSIGNED: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn qchunk(b: *const u8, st: &[f32; 16], c: usize) -> (__m256i, __m256, f32) {
        let (h, k) = (c >> 2, c & 3);
        // SAFETY: ql is bytes 0..128, qh 128..192; h < 2, k < 4.
        let (ql, qh) = unsafe {
            (
                load32(b.add(64 * h + 32 * (k & 1))),
                load32(b.add(128 + 32 * h)),
            )
        };
        let ql = if k >> 1 == 0 {
            ql
        } else {
            _mm256_srli_epi16::<4>(ql)
        };
        let lo = _mm256_and_si256(ql, _mm256_set1_epi8(0x0F));
        let hi = _mm256_and_si256(
            _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32)),
            _mm256_set1_epi8(3),
        );
        let v = _mm256_sub_epi8(
            _mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi)),
            _mm256_set1_epi8(32),
        );
        (v, halves(st[2 * c], st[2 * c + 1]), 0.0)
    }
}

/// Quantize activations to 8 bits per 32-chunk (see `Q8Acts`): `q = round_ties_even(x / d)`
/// with `d = max|x| / 127`, plus each chunk's f32 sum and llama.cpp's f16-rounded `d` and
/// `d · Σq`. Vectorized because it runs before every product (7 per layer).
///
/// # Safety
/// `x.len()` is a multiple of 32, `q.len() == x.len()`, the other slices `x.len() / 32` long;
/// AVX2/FMA/F16C present.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8(
    x: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    d16: &mut [f32],
    s16: &mut [f32],
) {
    let f16r = |v: f32| half::f16::from_f32(v).to_f32();
    let sign = _mm256_set1_ps(-0.0);
    // packs_epi32/packs_epi16 interleave 128-bit lanes; this restores element order.
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for c in 0..x.len() / 32 {
        // SAFETY: chunk `c` of `x` (32 floats) and of `q` (32 bytes) is in bounds.
        unsafe {
            let xp = x.as_ptr().add(32 * c);
            let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(xp.add(o)));
            let a = v.map(|vi| _mm256_andnot_ps(sign, vi));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
            let dc = amax / 127.0;
            let id = _mm256_set1_ps(if dc > 0.0 { 1.0 / dc } else { 0.0 });
            let i = v.map(|vi| {
                _mm256_cvtps_epi32(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(_mm256_mul_ps(vi, id)))
            });
            let w16 = [
                _mm256_packs_epi32(i[0], i[1]),
                _mm256_packs_epi32(i[2], i[3]),
            ];
            let b8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w16[0], w16[1]), perm);
            _mm256_storeu_si256(q.as_mut_ptr().add(32 * c) as *mut __m256i, b8);
            let isum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
            let isum = _mm_add_epi32(
                _mm256_castsi256_si128(isum),
                _mm256_extracti128_si256::<1>(isum),
            );
            let isum = _mm_add_epi32(isum, _mm_shuffle_epi32::<0b01_00_11_10>(isum));
            let qsum = _mm_cvtsi128_si32(_mm_add_epi32(
                isum,
                _mm_shuffle_epi32::<0b10_11_00_01>(isum),
            ));
            let xsum = hsum(v);
            d[c] = dc;
            s[c] = xsum;
            d16[c] = f16r(dc);
            s16[c] = f16r(qsum as f32 * dc);
        }
    }
}

/// Quantize activations to 8 bits per 256-element block (see `Q8Acts::kq`): one scale
/// `d = max|x| / 127` per block, `q = round_ties_even(x / d)`, and `d · Σq` of every 16 values.
///
/// # Safety
/// `x.len()` is a multiple of 256, `q.len() == x.len()`, `d.len() == x.len() / 256`,
/// `b.len() == x.len() / 16`; AVX2/FMA/F16C present.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8k(x: &[f32], q: &mut [i8], d: &mut [f32], b: &mut [f32]) {
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for k in 0..x.len() / 256 {
        // SAFETY: block `k` of `x` and `q` (256 values), `d[k]` and `b[16k..16k+16]` are in
        // bounds.
        unsafe {
            let xp = x.as_ptr().add(256 * k);
            let mut m = _mm256_setzero_ps();
            for o in (0..256).step_by(8) {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xp.add(o))));
            }
            let amax = hmax(m);
            let dk = amax / 127.0;
            let id = _mm256_set1_ps(if dk > 0.0 { 1.0 / dk } else { 0.0 });
            for c in 0..8 {
                let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(xp.add(32 * c + o)));
                let i = v.map(|vi| {
                    _mm256_cvtps_epi32(_mm256_round_ps::<
                        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                    >(_mm256_mul_ps(vi, id)))
                });
                let w16 = [
                    _mm256_packs_epi32(i[0], i[1]),
                    _mm256_packs_epi32(i[2], i[3]),
                ];
                let b8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w16[0], w16[1]), perm);
                _mm256_storeu_si256(q.as_mut_ptr().add(256 * k + 32 * c) as *mut __m256i, b8);
                for h in 0..2 {
                    let s = hsum_i32(_mm256_add_epi32(i[2 * h], i[2 * h + 1]));
                    b[16 * k + 2 * c + h] = dk * s as f32;
                }
            }
            d[k] = dk;
        }
    }
}

/// Largest lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax(m: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
}

/// Sum of the eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32(v: __m256i) -> i32 {
    let v = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
    _mm_cvtsi128_si32(_mm_add_epi32(v, _mm_shuffle_epi32::<0b10_11_00_01>(v)))
}

/// Whether [`matmul_q8`] has an integer kernel for `ty`.
pub(super) fn has_q8(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
    )
}

/// How 32 unsigned weight bytes meet 32 signed activation bytes: each i32 lane of the result is
/// the sum of four `u8 · i8` products. Neither form can overflow or saturate here (weights are at
/// most 128 in magnitude, activations at most 127), so both give the same integers.
trait IDot {
    unsafe fn dot(wu: __m256i, ax: __m256i) -> __m256i;
}

/// AVX2: `maddubs` (u8·i8 pairs → i16) then `madd` with ones (i16 pairs → i32).
struct Maddubs;
impl IDot for Maddubs {
    #[inline(always)]
    unsafe fn dot(wu: __m256i, ax: __m256i) -> __m256i {
        // SAFETY: only inlined into kernels compiled with AVX2 (see `matmul_q8`).
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(wu, ax), _mm256_set1_epi16(1)) }
    }
}

/// AVX-VNNI: `vpdpbusd` does the same in one instruction (Alder Lake, Sapphire Rapids, Zen 5).
struct Vnni;
impl IDot for Vnni {
    #[inline(always)]
    unsafe fn dot(wu: __m256i, ax: __m256i) -> __m256i {
        // SAFETY: only inlined into `matmul_q8_vnni`, compiled with AVX-VNNI after detection.
        unsafe { _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), wu, ax) }
    }
}

/// One 32-chunk of one row against activations `ax`: `Σ w·x` per i32 lane, as f32.
#[inline(always)]
unsafe fn q8_dot<K: KernQ8, D: IDot>(wq: __m256i, ax: __m256i) -> __m256 {
    // SAFETY: inlined into AVX2 kernels only.
    unsafe {
        let p = if K::UNSIGNED {
            D::dot(wq, ax)
        } else {
            // |w| · (x with w's sign) = w · x, with the weight operand unsigned.
            D::dot(_mm256_abs_epi8(wq), _mm256_sign_epi8(ax, wq))
        };
        _mm256_cvtepi32_ps(p)
    }
}

/// Horizontal sum of one accumulator.
#[inline(always)]
unsafe fn hsum1(a: __m256) -> f32 {
    // SAFETY: inlined into AVX2 kernels only.
    unsafe {
        let v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_shuffle_ps::<1>(v, v));
        _mm_cvtss_f32(v)
    }
}

/// Rows per register block of the one-token kernel: each row keeps one accumulator and each
/// 32-byte activation chunk is loaded once for all of them. Four rows are four independent FMA
/// chains (enough to hide the FMA latency) and stay within the sixteen ymm registers.
const ROWS: usize = 4;

/// Register tile of the batch (prefill) kernel: 2 rows × 4 tokens, eight accumulators; each
/// decoded weight chunk serves four tokens and each activation chunk two rows.
const TILE_ROWS: usize = 2;
const TILE_TOKS: usize = 4;

/// `R` rows starting at `w` (`rb` bytes apart) against `T` tokens (`xq`/`xd`/`xs` of token `t` at
/// `t · cpr` chunks): per (row, token), chunk by chunk, `acc = fma(Σw·x, scale·dx, acc)` and
/// the offset terms, then `hsum(acc) + off`. Every tile shape does exactly these operations per
/// (row, token), so results never depend on how rows and tokens are grouped, how many tokens are
/// in a batch, or how many threads share the rows. Returns `out[r][t]`.
///
/// # Safety
/// `R` rows of `nb` blocks at `w`; `T` tokens of `cpr` chunks at `xq`/`xd`/`xs`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_q8<K: KernQ8, D: IDot, const R: usize, const T: usize>(
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
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let mut off = [[0f32; T]; R];
        let mut offv = [[_mm256_setzero_ps(); T]; R];
        // The next register block's bytes, streamed in as this one is consumed: R rows apart,
        // this block's rows are R short streams that the hardware prefetcher picks up late
        // (1.4x decode speed). `wrapping_add`: past the last row this points beyond the matrix,
        // and a prefetch never faults.
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
                for t in 0..T {
                    let sx = _mm256_loadu_ps(xs.add(t * cpr + 8 * b));
                    for r in 0..R {
                        offv[r][t] = _mm256_fmadd_ps(K::block_offs(&st[r]), sx, offv[r][t]);
                    }
                }
            }
            for c in 0..K::QK / 32 {
                let j = b * (K::QK / 32) + c;
                for r in 0..R {
                    let (wq, sc, ofs) = K::qchunk(blk0.add(r * rb), &st[r], c);
                    for t in 0..T {
                        let k = t * cpr + j;
                        let ax = load32(xq.add(32 * k) as *const u8);
                        let p = q8_dot::<K, D>(wq, ax);
                        let s = _mm256_mul_ps(sc, _mm256_set1_ps(*xd.add(k)));
                        acc[r][t] = _mm256_fmadd_ps(p, s, acc[r][t]);
                        if K::UNSIGNED && !K::BLOCK_OFFS {
                            off[r][t] += ofs * *xs.add(k);
                        }
                    }
                }
            }
        }
        let mut out = [[0f32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = hsum1(acc[r][t]) + (off[r][t] + hsum1(offv[r][t]));
            }
        }
        out
    }
}

/// Rows `r0..rows` against tokens `t0..t0 + T` in tiles of `R` rows, the rest row by row.
///
/// # Safety
/// As [`matmul_q8_k`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_q8<K: KernQ8, D: IDot, const R: usize, const T: usize>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    t0: usize,
    rows: usize,
    out: &mut [f32],
) {
    let nb = cols / K::QK;
    let cpr = cols / 32;
    let rb = nb * K::BYTES;
    // SAFETY: token `t0 + T - 1` and every row below `rows` are in bounds (checked by the caller).
    let (xqp, xdp, xsp) = unsafe {
        (
            xq.as_ptr().add(t0 * cols),
            xd.as_ptr().add(t0 * cpr),
            xs.as_ptr().add(t0 * cpr),
        )
    };
    let put = |out: &mut [f32], r: usize, t: usize, v: f32| out[(t0 + t) * rows + r] = v;
    let mut r = 0;
    while r + R <= rows {
        // SAFETY: rows r..r+R are in bounds.
        let v =
            unsafe { tile_q8::<K, D, R, T>(w.as_ptr().add(r * rb), rb, nb, cpr, xqp, xdp, xsp) };
        for (i, vr) in v.iter().enumerate() {
            for (t, &x) in vr.iter().enumerate() {
                put(out, r + i, t, x);
            }
        }
        r += R;
    }
    while r < rows {
        // SAFETY: row r is in bounds.
        let v =
            unsafe { tile_q8::<K, D, 1, T>(w.as_ptr().add(r * rb), rb, nb, cpr, xqp, xdp, xsp) };
        for (t, &x) in v[0].iter().enumerate() {
            put(out, r, t, x);
        }
        r += 1;
    }
}

/// # Safety
/// Lengths checked by the caller: `w` holds `out.len() / n_tok` rows of `cols` elements, `xq`
/// holds `n_tok * cols` bytes, `xd`/`xs` `n_tok * cols / 32` floats; the CPU has AVX2/FMA/F16C
/// (and AVX-VNNI when `D` is [`Vnni`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_q8_k<K: KernQ8, D: IDot>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    let rows = out.len() / n_tok;
    let mut t = 0;
    // SAFETY: (for all calls) tokens t..t+T < n_tok, rows < rows; lengths checked by the caller.
    unsafe {
        while t + TILE_TOKS <= n_tok {
            if K::BLOCK_OFFS {
                // Their vector offset sums take another R·T registers: one row per tile.
                rows_q8::<K, D, 1, TILE_TOKS>(w, cols, xq, xd, xs, t, rows, out);
            } else {
                rows_q8::<K, D, TILE_ROWS, TILE_TOKS>(w, cols, xq, xd, xs, t, rows, out);
            }
            t += TILE_TOKS;
        }
        while t < n_tok {
            rows_q8::<K, D, ROWS, 1>(w, cols, xq, xd, xs, t, rows, out);
            t += 1;
        }
    }
}

/// `kernel::<K, extra…>(args)` for the block type `K` of `$ty`, for every type with an 8-bit
/// kernel (one type `match` shared by the 256-bit and 512-bit families).
macro_rules! q8_dispatch {
    ($ty:expr, $($f:ident)::+ [$($e:ty),*], ($($arg:expr),*)) => {
        match $ty {
            GgmlType::Q4_0 => $($f)::+::<Q4_0 $(, $e)*>($($arg),*),
            GgmlType::Q4_1 => $($f)::+::<Q4_1 $(, $e)*>($($arg),*),
            GgmlType::Q5_0 => $($f)::+::<Q5_0 $(, $e)*>($($arg),*),
            GgmlType::Q5_1 => $($f)::+::<Q5_1 $(, $e)*>($($arg),*),
            GgmlType::Q8_0 => $($f)::+::<Q8_0 $(, $e)*>($($arg),*),
            GgmlType::Q3_K => $($f)::+::<Q3K $(, $e)*>($($arg),*),
            GgmlType::Q4_K => $($f)::+::<Q4K $(, $e)*>($($arg),*),
            GgmlType::Q5_K => $($f)::+::<Q5K $(, $e)*>($($arg),*),
            GgmlType::Q6_K => $($f)::+::<Q6K $(, $e)*>($($arg),*),
            _ => unreachable!("no 8-bit kernel for {:?}", $ty),
        }
    };
}

/// The integer kernels compiled for AVX2 (`maddubs`).
///
/// # Safety
/// As [`matmul_q8_k`]; AVX2/FMA/F16C present.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_q8_avx2(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { q8_dispatch!(ty, matmul_q8_k[Maddubs], (w, cols, xq, xd, xs, n_tok, out)) }
}

/// The same kernels compiled for AVX-VNNI (`vpdpbusd`); the same integers, so the same results.
///
/// # Safety
/// As [`matmul_q8_k`]; AVX2/FMA/F16C and AVX-VNNI present.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_q8_vnni(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { q8_dispatch!(ty, matmul_q8_k[Vnni], (w, cols, xq, xd, xs, n_tok, out)) }
}

/// The 8-bit kernel families, slowest first.
pub(super) const Q8_ISAS: [&str; 3] = ["avx2", "avxvnni", "avx512vnni"];

static Q8_DETECTED: AtomicU8 = AtomicU8::new(u8::MAX); // the best family the CPU has
static Q8_CAP: AtomicU8 = AtomicU8::new(u8::MAX); // the best family allowed (set_q8_isa)

fn q8_detected() -> u8 {
    match Q8_DETECTED.load(Ordering::Relaxed) {
        u8::MAX => {
            let l = if avx512::available() {
                2
            } else if is_x86_feature_detected!("avxvnni") {
                1
            } else {
                0
            };
            Q8_DETECTED.store(l, Ordering::Relaxed);
            l
        }
        l => l,
    }
}

/// The 8-bit kernel family in use: the best the CPU has, capped by [`set_q8_isa`].
pub(super) fn q8_isa() -> &'static str {
    Q8_ISAS[q8_detected().min(Q8_CAP.load(Ordering::Relaxed)) as usize]
}

/// The families this CPU can run.
pub(super) fn q8_isas() -> &'static [&'static str] {
    &Q8_ISAS[..=q8_detected() as usize]
}

/// Use at most family `isa` (one of [`Q8_ISAS`]); unknown names reset to the best.
pub(super) fn set_q8_isa(isa: &str) {
    let l = Q8_ISAS
        .iter()
        .position(|&n| n == isa)
        .unwrap_or(u8::MAX as usize);
    Q8_CAP.store(l as u8, Ordering::Relaxed);
}

/// The 512-bit kernels, on an even number of the tokens; returns how many it did.
///
/// # Safety
/// As [`matmul_q8_k`]; the features of `avx512::available()` plus AVX2/FMA/F16C present.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vnni,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_q8_avx512(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { q8_dispatch!(ty, avx512::matmul[], (w, cols, xq, xd, xs, n_tok, out)) }
}

/// Whether [`matmul_q8k`] runs `ty`: the K-quants with 256-element blocks, on the 512-bit
/// family (elsewhere they keep the per-32-chunk kernels).
pub(super) fn has_q8k(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K)
        && available()
        && q8_isa() == "avx512vnni"
}

/// The 512-bit K-quant kernels with Q8_K-style activations.
///
/// # Safety
/// As [`matmul_q8_avx512`]; `cols` a multiple of 256 and the `xd` / `xb` lengths match.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vnni,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_q8k_avx512(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xb: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            GgmlType::Q4_K => avx512::matmul_k::<Q4K>(w, cols, xq, xd, xb, n_tok, out),
            GgmlType::Q5_K => avx512::matmul_k::<Q5K>(w, cols, xq, xd, xb, n_tok, out),
            GgmlType::Q6_K => avx512::matmul_k::<Q6K>(w, cols, xq, xd, xb, n_tok, out),
            _ => unreachable!("no Q8_K kernel for {ty:?}"),
        }
    }
}

/// `matmul` of a K-quant with activations quantized per 256-block: `xq` (n_tok × cols) signed
/// bytes, `xd` one scale per block, `xb` `d · Σq` of every 16 values. Only where [`has_q8k`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_q8k(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xb: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    assert!(has_q8k(ty));
    assert_eq!(xq.len(), n_tok * cols, "activations are not n_tok x cols");
    assert!(cols.is_multiple_of(256) && xd.len() == xq.len() / 256 && xb.len() == xq.len() / 16);
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
    // SAFETY: lengths checked above; `has_q8k` checked the CPU features.
    unsafe { matmul_q8k_avx512(ty, w, cols, xq, xd, xb, n_tok, out) }
}

/// `matmul` with activations already quantized per 32-chunk: `xq` (n_tok × cols) signed bytes,
/// `xd` their scales and `xs` the exact f32 sum of each chunk. `ty` must satisfy [`has_q8`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_q8(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    assert!(available() && has_q8(ty));
    assert_eq!(xq.len(), n_tok * cols, "activations are not n_tok x cols");
    assert!(cols.is_multiple_of(32) && xd.len() == xq.len() / 32 && xs.len() == xd.len());
    if n_tok == 0 {
        return;
    }
    assert_eq!(out.len() % n_tok, 0, "output is not n_tok x rows");
    let rows = out.len() / n_tok;
    let rb = row_bytes(ty, cols);
    assert_eq!(
        w.len(),
        rb * rows,
        "weight matrix has the wrong byte length"
    );
    // SAFETY: lengths checked above; the CPU features were checked (`q8_isa` detects them).
    unsafe {
        match q8_isa() {
            // One token is bound by memory, not arithmetic, and the 256-bit kernel streams it
            // faster here (76 vs 65 tok/s on SmolLM2); batches are compute-bound: 512 bits, two
            // tokens a register, a last odd token by the 256-bit kernel (the same bits).
            "avx512vnni" if n_tok > 1 => {
                let done = matmul_q8_avx512(ty, w, cols, xq, xd, xs, n_tok, out);
                if done < n_tok {
                    let (rows, cpr) = (out.len() / n_tok, cols / 32);
                    matmul_q8_vnni(
                        ty,
                        w,
                        cols,
                        &xq[done * cols..],
                        &xd[done * cpr..],
                        &xs[done * cpr..],
                        n_tok - done,
                        &mut out[done * rows..],
                    );
                }
            }
            "avx512vnni" | "avxvnni" => matmul_q8_vnni(ty, w, cols, xq, xd, xs, n_tok, out),
            _ => matmul_q8_avx2(ty, w, cols, xq, xd, xs, n_tok, out),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Attention (f32): the two inner loops of the CPU backend's attention.
// ---------------------------------------------------------------------------------------------

/// [`super::dot_rows`]: tiles of up to 4 keys × 3 register groups (24 rows) as independent FMA
/// chains; each (row, key) is `fma(q, k, acc)` in `d` order from zero.
pub(super) fn dot_rows(
    qt: &[f32],
    rp: usize,
    k: &[f32],
    k_stride: usize,
    nk: usize,
    scores: &mut [f32],
) {
    let hd = qt.len() / rp;
    assert!(available() && rp.is_multiple_of(8) && scores.len() >= nk * rp);
    assert!(nk == 0 || k.len() >= (nk - 1) * k_stride + hd);
    // SAFETY: the features were checked; the lengths above bound every access.
    unsafe {
        let mut j = 0;
        while j < nk {
            let kn = (nk - j).min(4);
            let mut r0 = 0;
            while r0 < rp {
                let gn = (rp - r0).min(24) / 8;
                match (kn, gn) {
                    (4, 3) => dot_tile::<4, 3>(qt, rp, hd, k, k_stride, j, r0, scores),
                    (4, 2) => dot_tile::<4, 2>(qt, rp, hd, k, k_stride, j, r0, scores),
                    (4, _) => dot_tile::<4, 1>(qt, rp, hd, k, k_stride, j, r0, scores),
                    (_, 3) => {
                        for i in 0..kn {
                            dot_tile::<1, 3>(qt, rp, hd, k, k_stride, j + i, r0, scores);
                        }
                    }
                    (_, 2) => {
                        for i in 0..kn {
                            dot_tile::<1, 2>(qt, rp, hd, k, k_stride, j + i, r0, scores);
                        }
                    }
                    _ => {
                        for i in 0..kn {
                            dot_tile::<1, 1>(qt, rp, hd, k, k_stride, j + i, r0, scores);
                        }
                    }
                }
                r0 += 8 * gn;
            }
            j += kn;
        }
    }
}

/// `KN` keys from `j0` × `GN` groups of 8 rows from `r0`.
///
/// # Safety
/// AVX2/FMA present; keys `j0..j0 + KN` and rows `r0..r0 + 8·GN` within the checked lengths.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile<const KN: usize, const GN: usize>(
    qt: &[f32],
    rp: usize,
    hd: usize,
    k: &[f32],
    k_stride: usize,
    j0: usize,
    r0: usize,
    scores: &mut [f32],
) {
    // SAFETY: as the function's contract.
    unsafe {
        let (q, kp) = (qt.as_ptr(), k.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); GN]; KN];
        for d in 0..hd {
            let mut qv = [_mm256_setzero_ps(); GN];
            for (g, v) in qv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(q.add(d * rp + r0 + 8 * g));
            }
            for (i, ai) in acc.iter_mut().enumerate() {
                let kb = _mm256_set1_ps(*kp.add((j0 + i) * k_stride + d));
                for (g, a) in ai.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(qv[g], kb, *a);
                }
            }
        }
        for (i, ai) in acc.iter().enumerate() {
            for (g, a) in ai.iter().enumerate() {
                _mm256_storeu_ps(scores.as_mut_ptr().add((j0 + i) * rp + r0 + 8 * g), *a);
            }
        }
    }
}

/// [`super::weighted_sum`]: 64 values of `out` in eight registers at a time, `fma(p, v, o)` in
/// `j` order.
pub(super) fn weighted_sum(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out: &mut [f32],
) {
    assert!(available());
    assert!(n == 0 || (p.len() > (n - 1) * p_stride && v.len() >= (n - 1) * v_stride + out.len()));
    // SAFETY: the features were checked; the lengths above bound every access.
    unsafe { weighted_sum_fma(p, p_stride, v, v_stride, n, out) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum_fma(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out: &mut [f32],
) {
    let hd = out.len();
    let vp = v.as_ptr();
    let mut i0 = 0;
    // SAFETY: j < n and i0 + 64 <= hd (or i0 + 8 <= hd): within `v` and `out` (checked).
    unsafe {
        while i0 + 64 <= hd {
            let mut o = [_mm256_setzero_ps(); 8];
            for j in 0..n {
                let pv = _mm256_set1_ps(*p.get_unchecked(j * p_stride));
                let row = vp.add(j * v_stride + i0);
                for (q, oq) in o.iter_mut().enumerate() {
                    *oq = _mm256_fmadd_ps(pv, _mm256_loadu_ps(row.add(8 * q)), *oq);
                }
            }
            for (q, oq) in o.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(i0 + 8 * q), *oq);
            }
            i0 += 64;
        }
        while i0 + 8 <= hd {
            let mut o = _mm256_setzero_ps();
            for j in 0..n {
                let pv = _mm256_set1_ps(*p.get_unchecked(j * p_stride));
                o = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vp.add(j * v_stride + i0)), o);
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(i0), o);
            i0 += 8;
        }
    }
    for i in i0..hd {
        let mut o = 0f32;
        for j in 0..n {
            o = p[j * p_stride].mul_add(v[j * v_stride + i], o);
        }
        out[i] = o;
    }
}

/// [`super::weighted_sum2`]: two rows × 32 values in eight registers, each value loaded once;
/// per element `fma(p, v, o)` in `j` order, as [`weighted_sum`].
pub(super) fn weighted_sum2(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out0: &mut [f32],
    out1: &mut [f32],
) {
    let hd = out0.len();
    assert!(available() && out1.len() == hd);
    assert!(n == 0 || (p.len() > (n - 1) * p_stride + 1 && v.len() >= (n - 1) * v_stride + hd));
    let whole = hd / 32 * 32;
    // SAFETY: the features were checked; the lengths above bound every access.
    unsafe { weighted_sum2_fma(p, p_stride, v, v_stride, n, whole, out0, out1) };
    if whole < hd {
        let (a, b) = (&mut out0[whole..], &mut out1[whole..]);
        weighted_sum(p, p_stride, &v[whole..], v_stride, n, a);
        weighted_sum(&p[1..], p_stride, &v[whole..], v_stride, n, b);
    }
}

#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn weighted_sum2_fma(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    whole: usize,
    out0: &mut [f32],
    out1: &mut [f32],
) {
    let vp = v.as_ptr();
    // SAFETY: j < n, i0 + 32 <= whole <= hd: within `v`, `p` and the outputs (checked).
    unsafe {
        for i0 in (0..whole).step_by(32) {
            let mut o0 = [_mm256_setzero_ps(); 4];
            let mut o1 = [_mm256_setzero_ps(); 4];
            for j in 0..n {
                let p0 = _mm256_set1_ps(*p.get_unchecked(j * p_stride));
                let p1 = _mm256_set1_ps(*p.get_unchecked(j * p_stride + 1));
                let row = vp.add(j * v_stride + i0);
                for q in 0..4 {
                    let vv = _mm256_loadu_ps(row.add(8 * q));
                    o0[q] = _mm256_fmadd_ps(p0, vv, o0[q]);
                    o1[q] = _mm256_fmadd_ps(p1, vv, o1[q]);
                }
            }
            for q in 0..4 {
                _mm256_storeu_ps(out0.as_mut_ptr().add(i0 + 8 * q), o0[q]);
                _mm256_storeu_ps(out1.as_mut_ptr().add(i0 + 8 * q), o1[q]);
            }
        }
    }
}

/// [`super::expf`] on eight lanes (FMA).
#[inline(always)]
unsafe fn exp_poly8(x: __m256) -> __m256 {
    use super::expf::*;
    // SAFETY: inlined into AVX2/FMA functions only.
    unsafe {
        let x = _mm256_max_ps(x, _mm256_set1_ps(MIN));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(
            _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r),
            _mm256_set1_ps(1.0),
        );
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(e, _mm256_castsi256_ps(bits))
    }
}

/// [`super::softmax_cols`]: eight rows per register, key after key.
pub(super) fn softmax_cols(
    sc: &mut [f32],
    rp: usize,
    width: usize,
    lo: &[u32],
    hi: &[u32],
    scale: f32,
) {
    assert!(available() && rp.is_multiple_of(8) && sc.len() >= rp * width);
    assert!(lo.len() >= rp && hi.len() >= rp);
    // SAFETY: the features were checked; rows r0..r0 + 8 <= rp, keys < width: within `sc`.
    unsafe { softmax_cols_fma(sc, rp, width, lo, hi, scale) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_cols_fma(
    sc: &mut [f32],
    rp: usize,
    width: usize,
    lo: &[u32],
    hi: &[u32],
    scale: f32,
) {
    // SAFETY: as the caller's contract.
    unsafe {
        let p = sc.as_mut_ptr();
        let sv = _mm256_set1_ps(scale);
        // Unsigned compares as signed ones on values below 2^31 (positions are).
        for r0 in (0..rp).step_by(8) {
            let lov = _mm256_loadu_si256(lo.as_ptr().add(r0) as *const __m256i);
            let hiv = _mm256_loadu_si256(hi.as_ptr().add(r0) as *const __m256i);
            let inside = |j: usize| {
                let jv = _mm256_set1_epi32(j as i32);
                // lo <= j <= hi  ⇔  !(lo > j) && !(j > hi)
                let out = _mm256_or_si256(_mm256_cmpgt_epi32(lov, jv), _mm256_cmpgt_epi32(jv, hiv));
                _mm256_castsi256_ps(_mm256_xor_si256(out, _mm256_set1_epi32(-1)))
            };
            let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
            for j in 0..width {
                let at = p.add(j * rp + r0);
                let s = _mm256_mul_ps(_mm256_loadu_ps(at), sv);
                _mm256_storeu_ps(at, s);
                max = _mm256_blendv_ps(max, _mm256_max_ps(max, s), inside(j));
            }
            let mut sum = _mm256_setzero_ps();
            for j in 0..width {
                let at = p.add(j * rp + r0);
                let e = exp_poly8(_mm256_sub_ps(_mm256_loadu_ps(at), max));
                let e = _mm256_and_ps(e, inside(j));
                _mm256_storeu_ps(at, e);
                sum = _mm256_add_ps(sum, e);
            }
            let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(sum, _mm256_setzero_ps());
            let inv = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0), sum), pos);
            for j in 0..width {
                let at = p.add(j * rp + r0);
                _mm256_storeu_ps(at, _mm256_mul_ps(_mm256_loadu_ps(at), inv));
            }
        }
    }
}
