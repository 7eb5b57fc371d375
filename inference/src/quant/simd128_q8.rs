//! wasm32 simd128 kernels for 8-bit activations ([`super::Activations::Q8`]). Compiled only with
//! `+simd128` (see `.cargo/config.toml`), like `simd128.rs`.
//!
//! The same activation format and the same arithmetic as the native 8-bit path (`x86.rs`):
//! activations quantized per 32-chunk by [`super::Q8Acts::quantize`] (`q`, scale `d`; for the
//! 32-weight types llama.cpp's f16-rounded `d16` / `s16 = f16(d · Σq)`, for Q3_K `d`); per
//! (row, token) and chunk, the integer dot `Σ w·q` of a weight group times `scale_w · d_x` is
//! added to an f32 accumulator, and the offset terms (`m · s16` of Q4_1 / Q5_1) are summed apart
//! and added at the end.
//! Results differ from x86's only in float rounding (four f32 lanes instead of eight, no FMA).
//!
//! Integers: a weight chunk is decoded to 32 signed bytes (|w| ≤ 128), widened to four `i16x8`
//! and multiplied with the activations (widened to i16 once per product) by `i32x4_dot_i16x8`
//! (pairs of i16 products summed into i32: exact). Each (row, token) gets exactly the same
//! operations (`Acc::chunk`, chunk after chunk) whether alone (decode) or in a tile of one row
//! × four tokens (prefill), so a batch gives each token the bits it gets alone. The sums of a
//! (row, token) are plain locals (`Acc`): arrays of accumulators indexed in loops would live in
//! linear memory.
//!
//! Covered: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q3_K. Q4_K, Q5_K and Q6_K take activations per
//! 256-block and have their own kernels (`simd128_q8k.rs`).
//! Where the module is built with relaxed SIMD, `simd128_rq8.rs` computes the same integers
//! with `i32x4_relaxed_dot_i8x16_i7x16_add` (same results bit for bit), unless
//! `set_q8_isa("simd128")`.

use core::arch::wasm32::*;
#[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
use core::sync::atomic::{AtomicBool, Ordering};

use super::scalar::{q3_k_scales, row_bytes};
use super::GgmlType;

/// One 32-weight chunk as integers: four `i16x8` (weights 0..8, 8..16, 16..24, 24..32).
pub(super) type Q16 = [v128; 4];

/// Where a block type's offset terms go (weights `w = scale · q + offset`).
#[derive(PartialEq, Eq)]
pub(super) enum Offs {
    /// No offset (`w = scale · q`).
    None,
    /// One offset `m` per 32-weight block (Q4_1, Q5_1): `m · s16` per chunk.
    Chunk,
}

/// A block type as 8-bit integers.
pub(super) trait KernQ8 {
    /// Weights per block and bytes per block.
    const QK: usize;
    const BYTES: usize;
    const OFFS: Offs;
    /// Two scales per chunk (16-weight groups: Q3_K, Q6_K), else one.
    const HALVES: bool;
    /// What [`KernQ8::prep`] decodes once per block.
    type St: Copy;
    /// `b` is one block (`BYTES` bytes); `t` converts its f16 scales ([`f16_table`]).
    fn prep(b: &[u8], t: &F16) -> Self::St;
    /// Chunk `c` of block `b` as integers, its scales (weights 0..16 and 16..32; equal unless
    /// `HALVES`) and its offset (`OFFS == Chunk`).
    fn qchunk(b: &[u8], st: &Self::St, c: usize) -> (Q16, f32, f32, f32);
}

/// The f16 at `b[off..off + 2]` as f32: the same value as `half`'s conversion (which is
/// software on wasm, with a branch per case), without branches except for Inf/NaN: the 15 bits
/// moved into an f32's exponent and mantissa and multiplied by 2^112 (exact, subnormals
/// included).
#[inline(always)]
pub(super) fn f16_at(b: &[u8], off: usize) -> f32 {
    let h = u16::from_le_bytes([b[off], b[off + 1]]) as u32;
    let bits = (h & 0x7fff) << 13;
    let v = if h & 0x7c00 == 0x7c00 {
        f32::from_bits(bits | 0x7f80_0000)
    } else {
        f32::from_bits(bits) * f32::from_bits(0x7780_0000)
    };
    f32::from_bits(v.to_bits() | ((h & 0x8000) << 16))
}

/// Every f16 as f32 ([`f16_at`]'s values), indexed by its bits: one load per scale instead of
/// a dozen integer and float operations (a 32-weight block has one or two scales per 32
/// weights). 256 KiB, made once per module instance.
pub(super) type F16 = [f32; 65536];

pub(super) fn f16_table() -> &'static F16 {
    static T: std::sync::OnceLock<Box<F16>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = Box::new([0f32; 65536]);
        for (h, v) in t.iter_mut().enumerate() {
            *v = f16_at(&(h as u16).to_le_bytes(), 0);
        }
        t
    })
}

/// The f16 at `b[off..off + 2]` through the table `t`.
#[inline(always)]
pub(super) fn f16_lut(t: &F16, b: &[u8], off: usize) -> f32 {
    t[u16::from_le_bytes([b[off], b[off + 1]]) as usize]
}

#[inline(always)]
pub(super) fn load16(b: &[u8], off: usize) -> v128 {
    let s = &b[off..off + 16];
    // SAFETY: `s` is 16 readable bytes; `v128_load` allows unaligned addresses.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

/// `v128_and(u8x16_shr(v, s), mask)` for a `mask` of bits below `8 - s` in every byte: the same
/// bytes from a 16-bit shift (the bits it moves across bytes are masked off). wasm has a byte
/// shift, but x86 has none: V8 emits a 16-bit shift, builds a mask in a register and ands, each
/// time; this is two instructions with the caller's (loop-invariant) mask.
#[inline(always)]
pub(super) fn shr_mask(v: v128, s: u32, mask: v128) -> v128 {
    v128_and(u16x8_shr(v, s), mask)
}

/// Each byte's high nibble (`u8x16_shr(v, 4)`), by [`shr_mask`].
#[inline(always)]
pub(super) fn high_nibbles(v: v128) -> v128 {
    shr_mask(v, 4, i8x16_splat(0x0F))
}

/// The 32 activations of one chunk (already widened to i16).
#[inline(always)]
fn load_x(xw: &[i16], k: usize) -> Q16 {
    let s = &xw[32 * k..32 * k + 32];
    let p = s.as_ptr() as *const v128;
    // SAFETY: `s` is 32 readable i16 (64 bytes = four v128); `v128_load` allows unaligned
    // addresses.
    unsafe {
        [
            v128_load(p),
            v128_load(p.add(1)),
            v128_load(p.add(2)),
            v128_load(p.add(3)),
        ]
    }
}

/// Two groups of 16 signed bytes (weights 0..16, 16..32) → four `i16x8` in weight order.
#[inline(always)]
fn widen(a: v128, b: v128) -> Q16 {
    [
        i16x8_extend_low_i8x16(a),
        i16x8_extend_high_i8x16(a),
        i16x8_extend_low_i8x16(b),
        i16x8_extend_high_i8x16(b),
    ]
}

/// `0x10` in byte `i` where bit `16 · half + i` of `qh` is set (the 5th bits of Q5_0 / Q5_1).
#[inline(always)]
fn high_bits(qh: u32, half: usize) -> v128 {
    let v = u32x4_splat(qh);
    let sel = if half == 0 {
        i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
    } else {
        i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)
    };
    let bytes = i8x16_swizzle(v, sel);
    let m = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    v128_and(i8x16_eq(v128_and(bytes, m), m), i8x16_splat(0x10))
}

pub(super) struct Q4_0;
impl KernQ8 for Q4_0 {
    const QK: usize = 32;
    const BYTES: usize = 18;
    const OFFS: Offs = Offs::None;
    const HALVES: bool = false;
    type St = [f32; 2];
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> [f32; 2] {
        [f16_lut(t, b, 0), 0.0]
    }
    #[inline(always)]
    fn qchunk(b: &[u8], st: &[f32; 2], _c: usize) -> (Q16, f32, f32, f32) {
        let d = st[0];
        let qs = load16(b, 2);
        let eight = i8x16_splat(8);
        let lo = i8x16_sub(v128_and(qs, i8x16_splat(0x0F)), eight);
        let hi = i8x16_sub(high_nibbles(qs), eight);
        (widen(lo, hi), d, d, 0.0)
    }
}

pub(super) struct Q4_1;
impl KernQ8 for Q4_1 {
    const QK: usize = 32;
    const BYTES: usize = 20;
    const OFFS: Offs = Offs::Chunk;
    const HALVES: bool = false;
    type St = [f32; 2];
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> [f32; 2] {
        [f16_lut(t, b, 0), f16_lut(t, b, 2)]
    }
    #[inline(always)]
    fn qchunk(b: &[u8], st: &[f32; 2], _c: usize) -> (Q16, f32, f32, f32) {
        let [d, m] = *st;
        let qs = load16(b, 4);
        let lo = v128_and(qs, i8x16_splat(0x0F));
        let hi = high_nibbles(qs);
        (widen(lo, hi), d, d, m)
    }
}

pub(super) struct Q5_0;
impl KernQ8 for Q5_0 {
    const QK: usize = 32;
    const BYTES: usize = 22;
    const OFFS: Offs = Offs::None;
    const HALVES: bool = false;
    type St = [f32; 2];
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> [f32; 2] {
        [f16_lut(t, b, 0), 0.0]
    }
    #[inline(always)]
    fn qchunk(b: &[u8], st: &[f32; 2], _c: usize) -> (Q16, f32, f32, f32) {
        let d = st[0];
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = load16(b, 6);
        let sixteen = i8x16_splat(16);
        let lo = v128_or(v128_and(qs, i8x16_splat(0x0F)), high_bits(qh, 0));
        let hi = v128_or(high_nibbles(qs), high_bits(qh, 1));
        (
            widen(i8x16_sub(lo, sixteen), i8x16_sub(hi, sixteen)),
            d,
            d,
            0.0,
        )
    }
}

pub(super) struct Q5_1;
impl KernQ8 for Q5_1 {
    const QK: usize = 32;
    const BYTES: usize = 24;
    const OFFS: Offs = Offs::Chunk;
    const HALVES: bool = false;
    type St = [f32; 2];
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> [f32; 2] {
        [f16_lut(t, b, 0), f16_lut(t, b, 2)]
    }
    #[inline(always)]
    fn qchunk(b: &[u8], st: &[f32; 2], _c: usize) -> (Q16, f32, f32, f32) {
        let [d, m] = *st;
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = load16(b, 8);
        let lo = v128_or(v128_and(qs, i8x16_splat(0x0F)), high_bits(qh, 0));
        let hi = v128_or(high_nibbles(qs), high_bits(qh, 1));
        (widen(lo, hi), d, d, m)
    }
}

pub(super) struct Q8_0;
impl KernQ8 for Q8_0 {
    const QK: usize = 32;
    const BYTES: usize = 34;
    const OFFS: Offs = Offs::None;
    const HALVES: bool = false;
    type St = [f32; 2];
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> [f32; 2] {
        [f16_lut(t, b, 0), 0.0]
    }
    #[inline(always)]
    fn qchunk(b: &[u8], st: &[f32; 2], _c: usize) -> (Q16, f32, f32, f32) {
        let d = st[0];
        (widen(load16(b, 2), load16(b, 18)), d, d, 0.0)
    }
}

pub(super) struct Q3K;
impl KernQ8 for Q3K {
    const QK: usize = 256;
    const BYTES: usize = 110;
    const OFFS: Offs = Offs::None;
    const HALVES: bool = true;
    /// `d · scale_i` of the sixteen 16-weight groups.
    type St = [f32; 16];
    #[inline(always)]
    fn prep(b: &[u8], t: &F16) -> [f32; 16] {
        let d = f16_lut(t, b, 108);
        q3_k_scales(&b[96..108]).map(|sc| d * sc as f32)
    }
    #[inline(always)]
    fn qchunk(b: &[u8], st: &[f32; 16], c: usize) -> (Q16, f32, f32, f32) {
        let (half, j) = (c >> 2, c & 3);
        let m = i8x16_splat((1u8 << (4 * half + j)) as i8);
        let four = i8x16_splat(4);
        let three = i8x16_splat(3);
        #[inline(always)]
        fn part(hm: v128, q: v128, j: usize, m: v128, three: v128, four: v128) -> v128 {
            let q2 = shr_mask(q, 2 * j as u32, three);
            let set = i8x16_eq(v128_and(hm, m), m);
            i8x16_sub(q2, v128_andnot(four, set))
        }
        let q = 32 + 32 * half;
        let w0 = part(load16(b, 0), load16(b, q), j, m, three, four);
        let w1 = part(load16(b, 16), load16(b, q + 16), j, m, three, four);
        let is = half * 8 + j * 2;
        (widen(w0, w1), st[is], st[is + 1], 0.0)
    }
}

/// Sum of the four lanes in a fixed order.
#[inline(always)]
fn hsum(a: v128) -> f32 {
    (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<1>(a))
        + (f32x4_extract_lane::<2>(a) + f32x4_extract_lane::<3>(a))
}

/// The sums of one (row, token): the scaled integer dots, and the offset terms apart.
#[derive(Clone, Copy)]
pub(super) struct Acc {
    v: v128,
    off: f32,
}

impl Acc {
    #[inline(always)]
    pub(super) fn new() -> Acc {
        Acc {
            v: f32x4_splat(0.0),
            off: 0.0,
        }
    }

    /// Chunk `k` of this token's activations (`xw`, `xd`, `xs`) against the decoded weight
    /// chunk `wq` with scales `s0`, `s1` and offset `ofs`: `v += f32(Σ w·x) · (s · dx)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn chunk<K: KernQ8>(
        &mut self,
        wq: &Q16,
        s0: f32,
        s1: f32,
        ofs: f32,
        xw: &[i16],
        xd: &[f32],
        xs: &[f32],
        k: usize,
    ) {
        let xv = load_x(xw, k);
        let lo = i32x4_add(i32x4_dot_i16x8(wq[0], xv[0]), i32x4_dot_i16x8(wq[1], xv[1]));
        let hi = i32x4_add(i32x4_dot_i16x8(wq[2], xv[2]), i32x4_dot_i16x8(wq[3], xv[3]));
        if K::HALVES {
            self.ints::<K>(lo, hi, s0, s1, ofs, xd, xs, k);
        } else {
            self.ints::<K>(i32x4_add(lo, hi), lo, s0, s1, ofs, xd, xs, k);
        }
    }

    /// The float part of [`Acc::chunk`], from the integer dots of chunk `k`: `lo` (weights
    /// 0..16) and `hi` (16..32) where `K::HALVES`, else `lo` = the whole chunk (`hi` unused).
    /// Lane `i` of the 16-weight dot `lo` holds the products of weights `2i, 2i+1, 8+2i, 9+2i`
    /// (the order `i32x4_dot_i16x8` gives); the relaxed-SIMD kernels (`simd128_rq8.rs`) give
    /// the same integers in the same lanes and share this code.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ints<K: KernQ8>(
        &mut self,
        lo: v128,
        hi: v128,
        s0: f32,
        s1: f32,
        ofs: f32,
        xd: &[f32],
        xs: &[f32],
        k: usize,
    ) {
        let dx = xd[k];
        if K::HALVES {
            let p0 = f32x4_mul(f32x4_convert_i32x4(lo), f32x4_splat(s0 * dx));
            let p1 = f32x4_mul(f32x4_convert_i32x4(hi), f32x4_splat(s1 * dx));
            self.v = f32x4_add(f32x4_add(self.v, p0), p1);
        } else {
            let p = f32x4_convert_i32x4(lo);
            self.v = f32x4_add(self.v, f32x4_mul(p, f32x4_splat(s0 * dx)));
        }
        if K::OFFS == Offs::Chunk {
            self.off += ofs * xs[k];
        }
    }

    #[inline(always)]
    pub(super) fn result(&self) -> f32 {
        hsum(self.v) + self.off
    }
}

/// One row against one token (`xw`/`xd`/`xs` from that token on).
#[inline(always)]
fn row1<K: KernQ8>(row: &[u8], nb: usize, t: &F16, xw: &[i16], xd: &[f32], xs: &[f32]) -> f32 {
    let mut a = Acc::new();
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk, t);
        for c in 0..K::QK / 32 {
            let (wq, s0, s1, ofs) = K::qchunk(blk, &st, c);
            a.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, b * (K::QK / 32) + c);
        }
    }
    a.result()
}

/// Two rows against one token: per row exactly the operations of [`row1`] (its own sums),
/// interleaved, so the activations are loaded once for both and two weight streams are read at
/// once.
#[inline(always)]
fn row2<K: KernQ8>(
    r0: &[u8],
    r1: &[u8],
    nb: usize,
    t: &F16,
    xw: &[i16],
    xd: &[f32],
    xs: &[f32],
) -> [f32; 2] {
    let (mut a0, mut a1) = (Acc::new(), Acc::new());
    let blocks = r0.chunks_exact(K::BYTES).zip(r1.chunks_exact(K::BYTES));
    for (b, (b0, b1)) in blocks.take(nb).enumerate() {
        let (st0, st1) = (K::prep(b0, t), K::prep(b1, t));
        for c in 0..K::QK / 32 {
            let j = b * (K::QK / 32) + c;
            let (wq, s0, s1, ofs) = K::qchunk(b0, &st0, c);
            a0.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, j);
            let (wq, s0, s1, ofs) = K::qchunk(b1, &st1, c);
            a1.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, j);
        }
    }
    [a0.result(), a1.result()]
}

/// One row against four tokens, `cpr` chunks apart (each decoded weight chunk serves all four;
/// per token exactly the operations of [`row1`]).
#[inline(always)]
fn row4<K: KernQ8>(
    row: &[u8],
    nb: usize,
    cpr: usize,
    t: &F16,
    xw: &[i16],
    xd: &[f32],
    xs: &[f32],
) -> [f32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (Acc::new(), Acc::new(), Acc::new(), Acc::new());
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk, t);
        for c in 0..K::QK / 32 {
            let (wq, s0, s1, ofs) = K::qchunk(blk, &st, c);
            let j = b * (K::QK / 32) + c;
            a0.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, j);
            a1.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, cpr + j);
            a2.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, 2 * cpr + j);
            a3.chunk::<K>(&wq, s0, s1, ofs, xw, xd, xs, 3 * cpr + j);
        }
    }
    [a0.result(), a1.result(), a2.result(), a3.result()]
}

/// Tokens per register tile of the batch kernel.
pub(super) const TOKS: usize = 4;

#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_k<K: KernQ8>(
    w: &[u8],
    cols: usize,
    xw: &[i16],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    let rows = out.len() / n_tok;
    let (nb, cpr) = (cols / K::QK, cols / 32);
    let rb = nb * K::BYTES;
    let f16 = f16_table();
    let mut t = 0;
    while t + TOKS <= n_tok {
        let (xw, xd, xs) = (&xw[t * cols..], &xd[t * cpr..], &xs[t * cpr..]);
        for (r, row) in w.chunks_exact(rb).enumerate() {
            let v = row4::<K>(row, nb, cpr, f16, xw, xd, xs);
            for (i, &x) in v.iter().enumerate() {
                out[(t + i) * rows + r] = x;
            }
        }
        t += TOKS;
    }
    while t < n_tok {
        let (xw, xd, xs) = (&xw[t * cols..], &xd[t * cpr..], &xs[t * cpr..]);
        let o = &mut out[t * rows..(t + 1) * rows];
        if K::QK == 256 {
            // Q3_K (the one 256-weight type here): one row at a time. Two (`row2`) hold two
            // blocks' scales and sums at once, and decoded the K-quants slower when they ran
            // here (Qwen2.5 1.5B 2.9 → 3.7 tok/s with one, BENCHMARKS).
            for (o, r) in o.iter_mut().zip(w.chunks_exact(rb)) {
                *o = row1::<K>(r, nb, f16, xw, xd, xs);
            }
            t += 1;
            continue;
        }
        let pairs = o.chunks_exact_mut(2).zip(w.chunks_exact(2 * rb));
        for (o, rr) in pairs {
            let (r0, r1) = rr.split_at(rb);
            o.copy_from_slice(&row2::<K>(r0, r1, nb, f16, xw, xd, xs));
        }
        if rows % 2 == 1 {
            o[rows - 1] = row1::<K>(&w[(rows - 1) * rb..], nb, f16, xw, xd, xs);
        }
        t += 1;
    }
}

/// The activations widened to i16 (once per product; every row reads them).
pub(super) fn widen_acts(xq: &[i8]) -> Vec<i16> {
    let mut xw = vec![0i16; xq.len()];
    for (o, i) in xw.chunks_exact_mut(16).zip(xq.chunks_exact(16)) {
        // SAFETY: `i` is 16 readable bytes and `o` 16 writable i16 (two v128); `v128_load` and
        // `v128_store` allow unaligned addresses.
        unsafe {
            let v = v128_load(i.as_ptr() as *const v128);
            let p = o.as_mut_ptr() as *mut v128;
            v128_store(p, i16x8_extend_low_i8x16(v));
            v128_store(p.add(1), i16x8_extend_high_i8x16(v));
        }
    }
    xw
}

/// Whether the relaxed-SIMD kernels (`simd128_rq8.rs`, in modules built with them) run: on by
/// default, off with `set_q8_isa("simd128")` (for tests and benchmarks; same results).
#[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
static RELAXED: AtomicBool = AtomicBool::new(true);

/// The 8-bit kernel families of this module, slowest first: `"simd128"` (`i32x4_dot_i16x8`),
/// and `"relaxed"` (`i32x4_relaxed_dot_i8x16_i7x16_add`) where it was built with them.
pub(super) fn isas() -> &'static [&'static str] {
    if cfg!(any(
        target_feature = "relaxed-simd",
        feature = "relaxed-simd"
    )) {
        &["simd128", "relaxed"]
    } else {
        &["simd128"]
    }
}

/// Use at most the family `isa` (see [`isas`]).
pub(super) fn set_isa(isa: &str) {
    #[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
    RELAXED.store(isa != "simd128", Ordering::Relaxed);
    let _ = isa;
}

/// The family in use now.
pub(super) fn isa() -> &'static str {
    #[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
    if RELAXED.load(Ordering::Relaxed) {
        return "relaxed";
    }
    "simd128"
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
    )
}

/// `matmul` with activations already quantized per 32-chunk: `xq` (n_tok × cols) signed bytes,
/// `xd` their scales and `xs` the sum of each chunk (`d16` / `s16` for the 32-weight types,
/// `d` / `s` for the K-quants, as on x86). `ty` must satisfy [`has_q8`].
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
    assert!(has_q8(ty), "no 8-bit kernel for {}", ty.name());
    assert_eq!(xq.len(), n_tok * cols, "activations are not n_tok x cols");
    assert!(cols.is_multiple_of(32) && xd.len() == xq.len() / 32 && xs.len() == xd.len());
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
        // Empty rows: every dot is 0 (and `chunks_exact` wants a non-zero length).
        out.fill(0.0);
        return;
    }
    #[cfg(any(target_feature = "relaxed-simd", feature = "relaxed-simd"))]
    if RELAXED.load(Ordering::Relaxed) {
        super::simd128_rq8::matmul_q8(ty, w, cols, xq, xd, xs, n_tok, out);
        return;
    }
    let xw = widen_acts(xq);
    macro_rules! by_type {
        ($($gt:ident => $k:ty),*) => {
            match ty {
                $(GgmlType::$gt => matmul_k::<$k>(w, cols, &xw, xd, xs, n_tok, out),)*
                _ => unreachable!("no 8-bit kernel for {:?}", ty),
            }
        };
    }
    by_type!(Q4_0 => Q4_0, Q4_1 => Q4_1, Q5_0 => Q5_0, Q5_1 => Q5_1, Q8_0 => Q8_0,
        Q3_K => Q3K)
}
