//! wasm32 relaxed-SIMD kernels for 8-bit activations: the integer dots of `simd128_q8.rs` by
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` (16 byte products summed four by four into i32 lanes,
//! plus an accumulator: one instruction where `simd128_q8.rs` widens to i16 and needs two
//! `i32x4_dot_i16x8`). Compiled only into a module built with `+relaxed-simd` (the relaxed
//! build of the engine worker, `scripts/build-worker-relaxed.sh`) or with the crate feature
//! `relaxed-simd` (the wasm tests: Node runs relaxed SIMD with `--experimental-wasm-relaxed-simd`,
//! `.cargo/config.toml`); a module that contains these instructions does not validate in a
//! browser without relaxed SIMD, which is why the default build never has them.
//!
//! **Same bits as `simd128_q8.rs`.** The relaxed dot is deterministic (every engine computes
//! the exact integer) when its second operand is in 0..=127: here that operand is always the
//! weights in an unsigned form (Q4_1, Q5_1 as stored; Q4_0, Q5_0, Q3_K as `w + o` with `o` =
//! 8, 16, 4: 0..=31 at most), and the `-o · Σx` it adds is the start value of the accumulator
//! (the chunk's activation sums, computed once per product). The
//! activations (-127..=127) are the other operand. Within each 16 bytes, weights and activations
//! are put in the order [`PERM`], so that lane `i` of the relaxed dot sums the products of
//! weights `2i, 2i+1, 8+2i, 9+2i`: the lanes `i32x4_dot_i16x8` gives in `simd128_q8.rs`. The
//! integer lanes are thus equal, and the float part is the same code ([`Acc::ints`]): every
//! result is bit for bit that of the plain simd128 kernel (tests/wasm_simd.rs checks it).
//!
//! Covered: every type of `simd128_q8.rs` but Q8_0 (its weights use all 8 bits); Q8_0 runs the
//! plain simd128 kernel. Q4_K, Q5_K and Q6_K have their own relaxed kernels, per 256-block
//! (`simd128_q8k.rs`).

use core::arch::wasm32::*;

use super::simd128_q8::{
    f16_table, high_nibbles, load16, matmul_k, shr_mask, widen_acts, Acc, KernQ8, F16, Q3K, Q4_0,
    Q4_1, Q5_0, Q5_1, Q8_0, TOKS,
};
use super::GgmlType;

/// The byte order within 16 weights (and 16 activations) that gives `i32x4_dot_i16x8`'s lanes:
/// position `p` holds element `PERM[p]`.
const PERM: [u8; 16] = [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15];

#[inline(always)]
fn perm(v: v128) -> v128 {
    let p = PERM;
    i8x16_swizzle(
        v,
        u8x16(
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13],
            p[14], p[15],
        ),
    )
}

/// A block type whose weights have a 7-bit unsigned form.
trait KernU7: KernQ8 {
    /// `o` in `w = u - o` (0: the stored form is unsigned).
    const OFF: i8;
    /// Chunk `c` of block `b` as unsigned weights `u` in 0..=127, weights 0..16 and 16..32 each
    /// in [`PERM`] order, and the scales and offset of [`KernQ8::qchunk`].
    fn uchunk(b: &[u8], st: &Self::St, c: usize) -> ([v128; 2], f32, f32, f32);
}

impl KernU7 for Q4_0 {
    const OFF: i8 = 8;
    #[inline(always)]
    fn uchunk(b: &[u8], st: &[f32; 2], _c: usize) -> ([v128; 2], f32, f32, f32) {
        let d = st[0];
        let qs = perm(load16(b, 2));
        let lo = v128_and(qs, i8x16_splat(0x0F));
        let hi = high_nibbles(qs);
        ([lo, hi], d, d, 0.0)
    }
}

impl KernU7 for Q4_1 {
    const OFF: i8 = 0;
    #[inline(always)]
    fn uchunk(b: &[u8], st: &[f32; 2], _c: usize) -> ([v128; 2], f32, f32, f32) {
        let [d, m] = *st;
        let qs = perm(load16(b, 4));
        let lo = v128_and(qs, i8x16_splat(0x0F));
        let hi = high_nibbles(qs);
        ([lo, hi], d, d, m)
    }
}

/// `0x10` in byte `p` where bit `16 · half + PERM[p]` of `qh` is set: `high_bits` of
/// `simd128_q8.rs` in [`PERM`] order.
#[inline(always)]
fn high_bits_perm(qh: u32, half: usize) -> v128 {
    let v = u32x4_splat(qh);
    let sel = if half == 0 {
        i8x16(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1)
    } else {
        i8x16(2, 2, 3, 3, 2, 2, 3, 3, 2, 2, 3, 3, 2, 2, 3, 3)
    };
    let bytes = i8x16_swizzle(v, sel);
    let m = u8x16(1, 2, 1, 2, 4, 8, 4, 8, 16, 32, 16, 32, 64, 128, 64, 128);
    v128_and(i8x16_eq(v128_and(bytes, m), m), i8x16_splat(0x10))
}

impl KernU7 for Q5_0 {
    const OFF: i8 = 16;
    #[inline(always)]
    fn uchunk(b: &[u8], st: &[f32; 2], _c: usize) -> ([v128; 2], f32, f32, f32) {
        let d = st[0];
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = perm(load16(b, 6));
        let lo = v128_or(v128_and(qs, i8x16_splat(0x0F)), high_bits_perm(qh, 0));
        let hi = v128_or(high_nibbles(qs), high_bits_perm(qh, 1));
        ([lo, hi], d, d, 0.0)
    }
}

impl KernU7 for Q5_1 {
    const OFF: i8 = 0;
    #[inline(always)]
    fn uchunk(b: &[u8], st: &[f32; 2], _c: usize) -> ([v128; 2], f32, f32, f32) {
        let [d, m] = *st;
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = perm(load16(b, 8));
        let lo = v128_or(v128_and(qs, i8x16_splat(0x0F)), high_bits_perm(qh, 0));
        let hi = v128_or(high_nibbles(qs), high_bits_perm(qh, 1));
        ([lo, hi], d, d, m)
    }
}

impl KernU7 for Q3K {
    const OFF: i8 = 4;
    #[inline(always)]
    fn uchunk(b: &[u8], st: &[f32; 16], c: usize) -> ([v128; 2], f32, f32, f32) {
        let (half, j) = (c >> 2, c & 3);
        let m = i8x16_splat((1u8 << (4 * half + j)) as i8);
        let four = i8x16_splat(4);
        let three = i8x16_splat(3);
        // `q2 + 4 · hbit` (0..=7) = the weight + 4.
        #[inline(always)]
        fn part(hm: v128, q: v128, j: usize, m: v128, three: v128, four: v128) -> v128 {
            let q2 = shr_mask(q, 2 * j as u32, three);
            let set = i8x16_eq(v128_and(hm, m), m);
            v128_or(q2, v128_and(set, four))
        }
        let q = 32 + 32 * half;
        let w0 = part(load16(b, 0), load16(b, q), j, m, three, four);
        let w1 = part(load16(b, 16), load16(b, q + 16), j, m, three, four);
        ([perm(w0), perm(w1)], st[2 * c], st[2 * c + 1], 0.0)
    }
}

/// The activations of one product in [`PERM`] order, and the accumulators' start values: per
/// chunk `-o · Σx` over each lane's four activations (two per chunk, weights 0..16 and 16..32,
/// where `K::HALVES`, else one for the whole chunk); empty when `o` is 0.
struct ActsU7 {
    xp: Vec<v128>,
    neg: Vec<v128>,
}

#[target_feature(enable = "relaxed-simd")]
fn acts_u7<K: KernU7>(xq: &[i8]) -> ActsU7 {
    let xp: Vec<v128> = xq
        .chunks_exact(16)
        .map(|c| {
            // SAFETY: `c` is 16 readable bytes; `v128_load` allows unaligned addresses.
            perm(unsafe { v128_load(c.as_ptr() as *const v128) })
        })
        .collect();
    let mut neg = Vec::new();
    if K::OFF != 0 {
        let o = i8x16_splat(K::OFF);
        let zero = i32x4_splat(0);
        for pair in xp.chunks_exact(2) {
            // `o` (4..=32) is the 7-bit operand: exact.
            let lo = i32x4_relaxed_dot_i8x16_i7x16_add(pair[0], o, zero);
            if K::HALVES {
                let hi = i32x4_relaxed_dot_i8x16_i7x16_add(pair[1], o, zero);
                neg.push(i32x4_neg(lo));
                neg.push(i32x4_neg(hi));
            } else {
                neg.push(i32x4_neg(i32x4_relaxed_dot_i8x16_i7x16_add(pair[1], o, lo)));
            }
        }
    }
    ActsU7 { xp, neg }
}

/// The activations of one token, from its first chunk on.
#[derive(Clone, Copy)]
struct Tok<'a> {
    xp: &'a [v128],
    neg: &'a [v128],
    xd: &'a [f32],
    xs: &'a [f32],
}

impl<'a> Tok<'a> {
    /// The token `cpr · t` chunks further.
    #[inline(always)]
    fn at(&self, t: usize, cpr: usize, negs_per_chunk: usize) -> Tok<'a> {
        Tok {
            xp: &self.xp[2 * cpr * t..],
            neg: if self.neg.is_empty() {
                self.neg
            } else {
                &self.neg[negs_per_chunk * cpr * t..]
            },
            xd: &self.xd[cpr * t..],
            xs: &self.xs[cpr * t..],
        }
    }
}

/// Chunk `k` of token `x` against the unsigned weights `u` (scales `s0`, `s1`, offset `ofs`).
#[inline]
#[target_feature(enable = "relaxed-simd")]
#[allow(clippy::too_many_arguments)]
fn chunk_u7<K: KernU7>(a: &mut Acc, u: &[v128; 2], s0: f32, s1: f32, ofs: f32, x: &Tok, k: usize) {
    let (x0, x1) = (x.xp[2 * k], x.xp[2 * k + 1]);
    if K::HALVES {
        let (n0, n1) = if K::OFF != 0 {
            (x.neg[2 * k], x.neg[2 * k + 1])
        } else {
            (i32x4_splat(0), i32x4_splat(0))
        };
        let lo = i32x4_relaxed_dot_i8x16_i7x16_add(x0, u[0], n0);
        let hi = i32x4_relaxed_dot_i8x16_i7x16_add(x1, u[1], n1);
        a.ints::<K>(lo, hi, s0, s1, ofs, x.xd, x.xs, k);
    } else {
        let n = if K::OFF != 0 {
            x.neg[k]
        } else {
            i32x4_splat(0)
        };
        let lo = i32x4_relaxed_dot_i8x16_i7x16_add(x0, u[0], n);
        let sum = i32x4_relaxed_dot_i8x16_i7x16_add(x1, u[1], lo);
        a.ints::<K>(sum, sum, s0, s1, ofs, x.xd, x.xs, k);
    }
}

/// One row against one token.
#[inline]
#[target_feature(enable = "relaxed-simd")]
fn row1<K: KernU7>(row: &[u8], nb: usize, t: &F16, x: &Tok) -> f32 {
    let mut a = Acc::new();
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk, t);
        for c in 0..K::QK / 32 {
            let (u, s0, s1, ofs) = K::uchunk(blk, &st, c);
            chunk_u7::<K>(&mut a, &u, s0, s1, ofs, x, b * (K::QK / 32) + c);
        }
    }
    a.result()
}

/// Two rows against one token: per row exactly the operations of [`row1`], interleaved (the
/// activations loaded once for both; two weight streams read at once).
#[inline]
#[target_feature(enable = "relaxed-simd")]
fn row2<K: KernU7>(r0: &[u8], r1: &[u8], nb: usize, t: &F16, x: &Tok) -> [f32; 2] {
    let (mut a0, mut a1) = (Acc::new(), Acc::new());
    let blocks = r0.chunks_exact(K::BYTES).zip(r1.chunks_exact(K::BYTES));
    for (b, (b0, b1)) in blocks.take(nb).enumerate() {
        let (st0, st1) = (K::prep(b0, t), K::prep(b1, t));
        for c in 0..K::QK / 32 {
            let j = b * (K::QK / 32) + c;
            let (u, s0, s1, ofs) = K::uchunk(b0, &st0, c);
            chunk_u7::<K>(&mut a0, &u, s0, s1, ofs, x, j);
            let (u, s0, s1, ofs) = K::uchunk(b1, &st1, c);
            chunk_u7::<K>(&mut a1, &u, s0, s1, ofs, x, j);
        }
    }
    [a0.result(), a1.result()]
}

/// One row against four tokens (`x`, and the three after it `cpr` chunks apart): per token
/// exactly the operations of [`row1`].
#[inline]
#[target_feature(enable = "relaxed-simd")]
fn row4<K: KernU7>(row: &[u8], nb: usize, cpr: usize, t: &F16, x: &Tok) -> [f32; 4] {
    let npc = if K::HALVES { 2 } else { 1 };
    let (x1, x2, x3) = (x.at(1, cpr, npc), x.at(2, cpr, npc), x.at(3, cpr, npc));
    let (mut a0, mut a1, mut a2, mut a3) = (Acc::new(), Acc::new(), Acc::new(), Acc::new());
    for (b, blk) in row.chunks_exact(K::BYTES).take(nb).enumerate() {
        let st = K::prep(blk, t);
        for c in 0..K::QK / 32 {
            let (u, s0, s1, ofs) = K::uchunk(blk, &st, c);
            let j = b * (K::QK / 32) + c;
            chunk_u7::<K>(&mut a0, &u, s0, s1, ofs, x, j);
            chunk_u7::<K>(&mut a1, &u, s0, s1, ofs, &x1, j);
            chunk_u7::<K>(&mut a2, &u, s0, s1, ofs, &x2, j);
            chunk_u7::<K>(&mut a3, &u, s0, s1, ofs, &x3, j);
        }
    }
    [a0.result(), a1.result(), a2.result(), a3.result()]
}

#[target_feature(enable = "relaxed-simd")]
#[allow(clippy::too_many_arguments)]
fn matmul_u7<K: KernU7>(
    w: &[u8],
    cols: usize,
    xq: &[i8],
    xd: &[f32],
    xs: &[f32],
    n_tok: usize,
    out: &mut [f32],
) {
    let rows = out.len() / n_tok;
    let (nb, cpr) = (cols / K::QK, cols / 32);
    let npc = if K::HALVES { 2 } else { 1 };
    let rb = nb * K::BYTES;
    let acts = acts_u7::<K>(xq);
    let f16 = f16_table();
    let all = Tok {
        xp: &acts.xp,
        neg: &acts.neg,
        xd,
        xs,
    };
    let mut t = 0;
    while t + TOKS <= n_tok {
        let x = all.at(t, cpr, npc);
        for (r, row) in w.chunks_exact(rb).enumerate() {
            let v = row4::<K>(row, nb, cpr, f16, &x);
            for (i, &y) in v.iter().enumerate() {
                out[(t + i) * rows + r] = y;
            }
        }
        t += TOKS;
    }
    while t < n_tok {
        let x = all.at(t, cpr, npc);
        let o = &mut out[t * rows..(t + 1) * rows];
        if K::QK == 256 {
            // Q3_K (the one 256-weight type here): one row at a time. Two (`row2`) hold two
            // blocks' scales and sums at once, and decoded the K-quants slower when they ran
            // here (Qwen2.5 1.5B 3.8 → 4.1–4.2 tok/s with one, BENCHMARKS).
            for (o, r) in o.iter_mut().zip(w.chunks_exact(rb)) {
                *o = row1::<K>(r, nb, f16, &x);
            }
            t += 1;
            continue;
        }
        for (o, rr) in o.chunks_exact_mut(2).zip(w.chunks_exact(2 * rb)) {
            let (r0, r1) = rr.split_at(rb);
            o.copy_from_slice(&row2::<K>(r0, r1, nb, f16, &x));
        }
        if rows % 2 == 1 {
            o[rows - 1] = row1::<K>(&w[(rows - 1) * rb..], nb, f16, &x);
        }
        t += 1;
    }
}

/// `simd128_q8::matmul_q8` with the relaxed dot (same arguments, checked there; same results
/// bit for bit). Q8_0 runs the plain kernel.
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
    macro_rules! by_type {
        ($($gt:ident => $k:ty),*) => {
            match ty {
                // (A `#[target_feature]` function is safe to call on wasm32: a module with
                // instructions the engine lacks does not validate, so this never runs there.)
                $(GgmlType::$gt => matmul_u7::<$k>(w, cols, xq, xd, xs, n_tok, out),)*
                GgmlType::Q8_0 => {
                    matmul_k::<Q8_0>(w, cols, &widen_acts(xq), xd, xs, n_tok, out)
                }
                _ => unreachable!("no 8-bit kernel for {:?}", ty),
            }
        };
    }
    by_type!(Q4_0 => Q4_0, Q4_1 => Q4_1, Q5_0 => Q5_0, Q5_1 => Q5_1,
        Q3_K => Q3K)
}
