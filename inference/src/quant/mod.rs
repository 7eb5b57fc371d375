//! GGML tensor types: block layouts, reference dequantization and the CPU dot kernels.
//!
//! Weights are never expanded to f32 in memory: a matvec walks the quantized blocks of one row and
//! dequantizes them in registers. `scalar.rs` is the portable reference; `x86.rs` (AVX2 + FMA +
//! F16C, detected at run time, every type) and `simd128.rs` (wasm32 with `+simd128`: F32, F16,
//! Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) are used when available, unless [`set_simd`] turned them off.
//! [`matmul_act`] with [`Activations::Q8`] adds llama.cpp-style 8-bit activations (integer
//! kernels in `x86.rs` / `avx512.rs` and, for wasm32 `+simd128`, `simd128_q8.rs`).
//! `dequantize` always runs the scalar reference (it only serves embedding rows).

use crate::error::{Error, Result};

mod quantize;
mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128_acts;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128_q8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128_q8k;
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    any(target_feature = "relaxed-simd", feature = "relaxed-simd")
))]
mod simd128_rq8;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use quantize::{can_quantize, quantize};

use std::sync::atomic::{AtomicBool, Ordering};

static SIMD_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn the SIMD kernels on or off process-wide (on by default; off = the scalar reference).
/// For benchmarks and tests; results differ only by float rounding.
pub fn set_simd(enabled: bool) {
    SIMD_ENABLED.store(enabled, Ordering::Relaxed);
}

/// The 8-bit integer kernel families this machine can run, slowest first: `"avx2"`
/// (`maddubs`), `"avxvnni"` (256-bit `vpdpbusd`), `"avx512vnni"` (512-bit); `"simd128"` on
/// wasm32 (`i32x4_dot_i16x8`), and `"relaxed"` (`i32x4_relaxed_dot_i8x16_i7x16_add`, same
/// results) in a module built with relaxed SIMD. Empty where there is no 8-bit kernel (no AVX2 on x86_64, SIMD
/// turned off, or another ISA).
pub fn q8_isas() -> &'static [&'static str] {
    #[cfg(target_arch = "x86_64")]
    if simd().is_some() {
        return x86::q8_isas();
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd().is_some() {
        return simd128_q8::isas();
    }
    &[]
}

/// Use at most the 8-bit kernel family `isa` (default: the best the CPU has). `"avx2"` and
/// `"avxvnni"` compute the same integers in the same order, so the same results; `"avx512vnni"`
/// sums chunk pairs, so its floats differ in rounding. For tests and benchmarks.
pub fn set_q8_isa(isa: &str) {
    #[cfg(target_arch = "x86_64")]
    x86::set_q8_isa(isa);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128_q8::set_isa(isa);
    let _ = isa;
}

/// The 8-bit kernel family in use now (`""` where there is none).
pub fn q8_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if simd().is_some() {
        return x86::q8_isa();
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd().is_some() {
        return simd128_q8::isa();
    }
    ""
}

/// The kernel set [`vec_dot`] / [`matvec`] / [`matmul`] use now: `"avx2"`, `"simd128"` or
/// `"scalar"`.
pub fn kernels() -> &'static str {
    match simd() {
        Some(isa) => isa,
        None => "scalar",
    }
}

#[inline]
fn simd() -> Option<&'static str> {
    if !SIMD_ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    let isa = x86::available().then_some("avx2");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let isa = Some("simd128");
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    let isa = None;
    isa
}

/// The portable scalar kernels, whatever [`set_simd`] says: the reference the SIMD kernels are
/// tested against.
pub mod reference {
    pub use super::scalar::{matmul, matvec, vec_dot};
}

// ---------------------------------------------------------------------------------------------
// Kernels. This is the single dispatch point: ISA-specific files (`x86.rs`, `simd128.rs`) slot in
// here behind the same signatures; `scalar.rs` is the portable reference every variant must match.
// Inputs are validated by the caller (tensor shapes come from the GGUF reader / model loader), so
// a length mismatch is a programmer error and panics.
// ---------------------------------------------------------------------------------------------

/// Dequantize `dst.len()` elements (a multiple of `ty.block_size()`) from the blocks in `src`.
///
/// `src` must hold exactly `ty.row_bytes(dst.len())` bytes.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    scalar::dequantize(ty, src, dst)
}

/// Dot product of one quantized row of `x.len()` elements with f32 `x`.
///
/// `row` must hold exactly `ty.row_bytes(x.len())` bytes.
pub fn vec_dot(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    match simd() {
        #[cfg(target_arch = "x86_64")]
        Some(_) => x86::vec_dot(ty, row, x),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Some(_) => simd128::vec_dot(ty, row, x),
        _ => scalar::vec_dot(ty, row, x),
    }
}

/// `out[r] = row_r · x` for `r in 0..out.len()`; `w` holds `out.len()` contiguous rows of
/// `x.len()` elements.
pub fn matvec(ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
    // One token of `matmul` is the same computation as `vec_dot` row by row.
    matmul(ty, w, x.len(), x, 1, out)
}

/// Batched product (prefill): `x` is `(n_tok, cols)` row-major, `out` is `(n_tok, rows)`
/// row-major with `rows = out.len() / n_tok`; `out[t*rows + r] = row_r · x[t*cols..(t+1)*cols]`.
///
/// Each weight block is decoded once into a stack buffer and dotted with every token, so the
/// weights are read once and never expanded to f32. For each token the result is bit-identical
/// to [`matvec`].
pub fn matmul(ty: GgmlType, w: &[u8], cols: usize, x: &[f32], n_tok: usize, out: &mut [f32]) {
    match simd() {
        #[cfg(target_arch = "x86_64")]
        Some(_) => x86::matmul(ty, w, cols, x, n_tok, out),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Some(_) => simd128::matmul(ty, w, cols, x, n_tok, out),
        _ => scalar::matmul(ty, w, cols, x, n_tok, out),
    }
}

/// Rows per vector of the attention kernels ([`dot_rows`], [`softmax_cols`]): their row count
/// `rp` is a multiple of it, and the attention pads a block's rows only to it (a decode step of
/// three heads per KV head computes four rows on wasm's four lanes, not eight).
pub const ATTN_LANES: usize = if cfg!(target_arch = "x86_64") { 8 } else { 4 };

/// Attention's inner products, per ISA (used by the CPU backend's attention): for `nk` keys
/// (`k[j · k_stride..][..hd]`) and the `rp` rows (a multiple of [`ATTN_LANES`]) of `qt` — a
/// block of queries transposed, (hd, rp) —, `scores[j · rp + r] = Σ_d qt[d · rp + r] · k_j[d]`, summed in `d`
/// order (fused multiply-adds where the CPU has them). Every (row, key) gets the same operations
/// however many rows and keys there are, so a token scores the same alone or in a batch.
pub fn dot_rows(qt: &[f32], rp: usize, k: &[f32], k_stride: usize, nk: usize, scores: &mut [f32]) {
    let hd = qt.len() / rp.max(1);
    assert!(rp.is_multiple_of(ATTN_LANES) && scores.len() >= nk * rp);
    assert!(nk == 0 || k.len() >= (nk - 1) * k_stride + hd);
    match simd() {
        #[cfg(target_arch = "x86_64")]
        Some(_) => x86::dot_rows(qt, rp, k, k_stride, nk, scores),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Some(_) => simd128::dot_rows(qt, rp, k, k_stride, nk, scores),
        _ => scalar::dot_rows(qt, rp, k, k_stride, nk, scores),
    }
}

/// [`weighted_sum`] of two rows whose weights sit side by side (`p[j · p_stride]` and
/// `p[j · p_stride + 1]`) over the same values: the same bits as two calls, each value loaded
/// once for both (x86).
pub fn weighted_sum2(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out0: &mut [f32],
    out1: &mut [f32],
) {
    assert_eq!(out0.len(), out1.len());
    assert!(
        n == 0 || (p.len() > (n - 1) * p_stride + 1 && v.len() >= (n - 1) * v_stride + out0.len())
    );
    match simd() {
        #[cfg(target_arch = "x86_64")]
        Some(_) => x86::weighted_sum2(p, p_stride, v, v_stride, n, out0, out1),
        _ => {
            weighted_sum(p, p_stride, v, v_stride, n, out0);
            weighted_sum(&p[1..], p_stride, v, v_stride, n, out1);
        }
    }
}

/// Attention's softmax, per ISA, over scores stored key-major: `sc` (width, rp), row `r`'s keys
/// `lo[r]..=hi[r]` (indices into `0..width`; an empty range for padding rows). Each row's
/// scores are scaled by `scale`, then `exp(s - max)` (a polynomial `exp`, the same on every lane),
/// normalized to sum to 1 (summed in key order); keys outside a row's range become 0. Eight (or
/// four) rows per vector, one key after another: a row gets the same bits whatever the others.
pub fn softmax_cols(sc: &mut [f32], rp: usize, width: usize, lo: &[u32], hi: &[u32], scale: f32) {
    assert!(
        rp.is_multiple_of(ATTN_LANES) && sc.len() >= rp * width && lo.len() >= rp && hi.len() >= rp
    );
    match simd() {
        #[cfg(target_arch = "x86_64")]
        Some(_) => x86::softmax_cols(sc, rp, width, lo, hi, scale),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Some(_) => simd128::softmax_cols(sc, rp, width, lo, hi, scale),
        _ => scalar::softmax_cols(sc, rp, width, lo, hi, scale),
    }
}

/// The polynomial `exp` of [`softmax_cols`] (Cephes' `expf`: range reduction by ln 2 in two
/// parts, a degree-5 polynomial, the exponent added in the bits), for `x <= 0`; relative error
/// below 2e-7. Written out per ISA with the same operations (`mul` + `add`; FMA on x86).
pub(crate) mod expf {
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    pub const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_66,
        0.5,
    ];
    /// Below this `exp` is 0 for a softmax (and 2^n stays a normal number).
    pub const MIN: f32 = -87.0;
}

/// Attention's weighted sum of values, per ISA: `out[i] = Σ_j p[j · p_stride] · v[j · v_stride + i]`
/// for `n` values `j`, summed in `j` order (fused multiply-adds where the CPU has them), element
/// by element the same whatever the other rows.
pub fn weighted_sum(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out: &mut [f32],
) {
    assert!(n == 0 || (p.len() > (n - 1) * p_stride && v.len() >= (n - 1) * v_stride + out.len()));
    match simd() {
        #[cfg(target_arch = "x86_64")]
        Some(_) => x86::weighted_sum(p, p_stride, v, v_stride, n, out),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Some(_) => simd128::weighted_sum(p, p_stride, v, v_stride, n, out),
        _ => scalar::weighted_sum(p, p_stride, v, v_stride, n, out),
    }
}

/// How a matrix product treats its f32 activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activations {
    /// Exact: weights are decoded to f32 and multiplied with the f32 activations (within ~1e-6
    /// relative of exact math). The reference path.
    #[default]
    F32,
    /// Like llama.cpp's CPU backend: each token's activations are quantized once per product to
    /// 8 bits in blocks of 32 (scale = max|x| / 127) and multiplied with integer dot products;
    /// for Q4_K, Q5_K and Q6_K on AVX-512 VNNI and on wasm32 simd128, in blocks of 256 like
    /// llama.cpp's `block_q8_K` ([`q8_block`]).
    /// About twice as fast; moves logits by up to ~1 from exact math. Used where an integer
    /// kernel exists (x86_64 AVX2 and wasm32 simd128: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q3_K, Q4_K,
    /// Q5_K, Q6_K); other types and ISAs fall back to [`Activations::F32`].
    Q8,
}

impl Activations {
    pub fn name(self) -> &'static str {
        match self {
            Activations::F32 => "f32",
            Activations::Q8 => "q8",
        }
    }
}

/// Activations quantized to 8 bits (row-major, like `x`), in the format the kernel for the
/// weight type wants ([`Q8Acts::quantize_for`]): per 32-element chunk, or per 256-element block
/// where [`q8_block`] says so. The other format's buffers are left empty.
#[derive(Default)]
pub struct Q8Acts {
    /// `round(x / d)` in -127..=127.
    pub q: Vec<i8>,
    /// Scale `d = max|x| / 127` of each chunk.
    pub d: Vec<f32>,
    /// Exact f32 sum of each chunk (for the offset terms of Q4_K and Q5_K).
    pub s: Vec<f32>,
    /// `d` rounded to f16, and `f16(d · Σq)`: what llama.cpp's `block_q8_0` / `block_q8_1`
    /// store. Used with the 32-element weight types so that the results track llama.cpp.
    pub d16: Vec<f32>,
    pub s16: Vec<f32>,
    /// Per 256-element block (llama.cpp's `block_q8_K`), for the K-quant kernels that sum a
    /// whole block in integers: `round(x / kd)` with `kd = max|x| / 127` of the block.
    pub kq: Vec<i8>,
    pub kd: Vec<f32>,
    /// `kd · Σkq` of every 16 values (the offset terms of Q4_K, Q5_K and Q6_K).
    pub kb: Vec<f32>,
}

impl Q8Acts {
    /// Quantize `x` ((n_tok, cols) of an input to weights of type `ty`) in the format that
    /// [`matmul_q8`] uses for `ty` here.
    pub fn quantize_for(&mut self, ty: GgmlType, x: &[f32]) {
        if q8_block(ty) == 256 {
            self.quantize_k(x)
        } else {
            self.quantize(x)
        }
    }

    /// Quantize `x` (length a multiple of 32): `q = round_ties_even(x / d)` per 32-chunk.
    pub fn quantize(&mut self, x: &[f32]) {
        self.size_for(x);
        #[cfg(target_arch = "x86_64")]
        if simd().is_some() {
            // SAFETY: the lengths were set just above; `simd()` checked AVX2/FMA/F16C.
            unsafe {
                x86::quantize_q8(
                    x,
                    &mut self.q,
                    &mut self.d,
                    &mut self.s,
                    &mut self.d16,
                    &mut self.s16,
                )
            };
            return;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if simd().is_some() {
            let (q, d, s) = (&mut self.q, &mut self.d, &mut self.s);
            simd128_acts::quantize_q8(x, q, d, s, &mut self.d16, &mut self.s16);
            return;
        }
        self.quantize_portable(x);
    }

    /// Quantize `x` (length a multiple of 256) per 256-block: `kq = round_ties_even(x / kd)`.
    pub fn quantize_k(&mut self, x: &[f32]) {
        self.size_k_for(x);
        #[cfg(target_arch = "x86_64")]
        if simd().is_some() {
            // SAFETY: the lengths were set just above; `simd()` checked AVX2/FMA/F16C.
            unsafe { x86::quantize_q8k(x, &mut self.kq, &mut self.kd, &mut self.kb) };
            return;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if simd().is_some() {
            simd128_acts::quantize_q8k(x, &mut self.kq, &mut self.kd, &mut self.kb);
            return;
        }
        self.quantize_k_portable(x);
    }

    /// Size the per-32 buffers for `x` (length a multiple of 32); empty the per-256 ones.
    fn size_for(&mut self, x: &[f32]) {
        assert_eq!(x.len() % 32, 0, "activations are not whole 32-chunks");
        let nc = x.len() / 32;
        self.q.resize(x.len(), 0);
        for v in [&mut self.d, &mut self.s, &mut self.d16, &mut self.s16] {
            v.resize(nc, 0.0);
        }
        self.kq.clear();
        self.kd.clear();
        self.kb.clear();
    }

    /// Size the per-256 buffers for `x` (length a multiple of 256); empty the per-32 ones.
    fn size_k_for(&mut self, x: &[f32]) {
        assert_eq!(x.len() % 256, 0, "activations are not whole 256-blocks");
        self.kq.resize(x.len(), 0);
        self.kd.resize(x.len() / 256, 0.0);
        self.kb.resize(x.len() / 16, 0.0);
        self.q.clear();
        for v in [&mut self.d, &mut self.s, &mut self.d16, &mut self.s16] {
            v.clear();
        }
    }

    /// [`Q8Acts::quantize`] in portable code (the SIMD version must give the same bytes and
    /// scales; the chunk sums may differ in rounding).
    pub fn quantize_portable(&mut self, x: &[f32]) {
        self.size_for(x);
        let f16r = |v: f32| half::f16::from_f32(v).to_f32();
        for (c, xc) in x.chunks_exact(32).enumerate() {
            let amax = xc.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let q = &mut self.q[32 * c..32 * c + 32];
            for (qi, v) in q.iter_mut().zip(xc) {
                *qi = (v * id).round_ties_even() as i8;
            }
            let qsum: i32 = q.iter().map(|&q| q as i32).sum();
            self.d[c] = d;
            self.s[c] = xc.iter().sum();
            self.d16[c] = f16r(d);
            self.s16[c] = f16r(qsum as f32 * d);
        }
    }

    /// [`Q8Acts::quantize_k`] in portable code (the SIMD version must give the same bytes,
    /// scales and sums).
    pub fn quantize_k_portable(&mut self, x: &[f32]) {
        self.size_k_for(x);
        for (k, xk) in x.chunks_exact(256).enumerate() {
            let amax = xk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let q = &mut self.kq[256 * k..256 * k + 256];
            for (qi, v) in q.iter_mut().zip(xk) {
                *qi = (v * id).round_ties_even() as i8;
            }
            for (g, qg) in q.chunks_exact(16).enumerate() {
                self.kb[16 * k + g] = d * qg.iter().map(|&q| q as i32).sum::<i32>() as f32;
            }
            self.kd[k] = d;
        }
    }
}

/// Whether [`matmul_act`] with `act` runs an 8-bit integer kernel for `ty` and `cols` here;
/// if so, [`Q8Acts::quantize_for`] + [`matmul_q8`] do the same work with the input quantized
/// once.
pub fn uses_q8(act: Activations, ty: GgmlType, cols: usize) -> bool {
    act == Activations::Q8 && has_q8_kernel(ty) && cols.is_multiple_of(32)
}

/// [`matmul_act`] with 8-bit activations already quantized (`q` from [`Q8Acts::quantize_for`]
/// with `ty`, of the `(n_tok, cols)` input). Only where [`uses_q8`] said so.
pub fn matmul_q8(ty: GgmlType, w: &[u8], cols: usize, q: &Q8Acts, n_tok: usize, out: &mut [f32]) {
    assert!(
        uses_q8(Activations::Q8, ty, cols),
        "no 8-bit kernel for {} here",
        ty.name()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if q8_block(ty) == 256 {
            assert!(
                q.kq.len() == n_tok * cols,
                "activations not quantized per 256-block (use Q8Acts::quantize_for)"
            );
            x86::matmul_q8k(ty, w, cols, &q.kq, &q.kd, &q.kb, n_tok, out);
            return;
        }
        let (d, s) = if ty.block_size() == 32 {
            (&q.d16, &q.s16)
        } else {
            (&q.d, &q.s)
        };
        x86::matmul_q8(ty, w, cols, &q.q, d, s, n_tok, out);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        if q8_block(ty) == 256 {
            assert!(
                q.kq.len() == n_tok * cols,
                "activations not quantized per 256-block (use Q8Acts::quantize_for)"
            );
            simd128_q8k::matmul_q8k(ty, w, cols, &q.kq, &q.kd, n_tok, out);
            return;
        }
        // The same format as x86's per-32 kernels.
        let (d, s) = if ty.block_size() == 32 {
            (&q.d16, &q.s16)
        } else {
            (&q.d, &q.s)
        };
        simd128_q8::matmul_q8(ty, w, cols, &q.q, d, s, n_tok, out);
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    let _ = (w, q, n_tok, out);
}

/// How many activations share one 8-bit scale in [`matmul_q8`] for `ty` here: 256 where the
/// K-quant kernel sums whole blocks in integers (Q4_K, Q5_K, Q6_K, like llama.cpp's
/// `block_q8_K`: x86 with AVX-512 VNNI, and wasm32 simd128), else 32.
pub fn q8_block(ty: GgmlType) -> usize {
    #[cfg(target_arch = "x86_64")]
    if simd().is_some() && x86::has_q8k(ty) {
        return 256;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd().is_some() && simd128_q8k::has_q8k(ty) {
        return 256;
    }
    let _ = ty;
    32
}

/// Whether `matmul_act(Activations::Q8, ty, ..)` uses an 8-bit integer kernel on this machine
/// (otherwise it runs the f32 kernels).
pub fn has_q8_kernel(ty: GgmlType) -> bool {
    #[cfg(target_arch = "x86_64")]
    if simd().is_some() {
        return x86::has_q8(ty);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd().is_some() {
        return simd128_q8::has_q8(ty) || simd128_q8k::has_q8k(ty);
    }
    let _ = ty;
    false
}

/// [`matmul`] with a choice of activation precision (see [`Activations`]).
pub fn matmul_act(
    act: Activations,
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    if uses_q8(act, ty, cols) {
        let mut q = Q8Acts::default();
        q.quantize_for(ty, x);
        matmul_q8(ty, w, cols, &q, n_tok, out);
        return;
    }
    matmul(ty, w, cols, x, n_tok, out)
}

/// A tensor element type as numbered in GGUF (`ggml_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    BF16,
}

impl GgmlType {
    pub const ALL: [GgmlType; 13] = [
        Self::F32,
        Self::F16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q2_K,
        Self::Q3_K,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
        Self::BF16,
    ];

    /// Map a GGUF type id; ids of types this engine does not run give a clear error.
    pub fn from_id(id: u32) -> Result<Self> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            30 => Self::BF16,
            _ => {
                return Err(Error::Unsupported(format!(
                    "tensor type {} ({})",
                    id,
                    type_name_of_id(id)
                )))
            }
        })
    }

    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::BF16 => 30,
        }
    }

    pub fn name(self) -> &'static str {
        type_name_of_id(self.id())
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => 32,
            Self::Q2_K | Self::Q3_K | Self::Q4_K | Self::Q5_K | Self::Q6_K => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q2_K => 84,
            Self::Q3_K => 110,
            Self::Q4_K => 144,
            Self::Q5_K => 176,
            Self::Q6_K => 210,
        }
    }

    /// Bytes of a row of `n` elements, or `None` if `n` is not a whole number of blocks
    /// or the size overflows.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(self.type_size() as u64)
    }
}

/// Human-readable names for every ggml type id, supported or not (for error messages).
pub fn type_name_of_id(id: u32) -> &'static str {
    match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}
