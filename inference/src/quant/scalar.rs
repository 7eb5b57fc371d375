//! Portable scalar kernels: reference dequantization of every block type and the f32 dot
//! products built on it. No `unsafe`, no intrinsics.
//!
//! Every kernel walks a row in *chunks*: one quantized block (32 or 256 weights) is dequantized
//! into a stack buffer and handed to a visitor. `dequantize` copies the chunk out, `vec_dot` feeds
//! it to a 16-lane accumulator together with the matching slice of `x`, and `matmul` feeds the
//! same chunk to one accumulator per token — so each weight is decoded once per row and
//! `matmul` is bit-identical to `vec_dot` per token (same chunks, same lane order, same final
//! reduction).
//!
//! The block decoders follow ggml's `dequantize_row_*` (llama.cpp `ggml-quants.c`) bit for bit,
//! including the order of the float operations, so results match the reference exactly.

use super::GgmlType;
use half::f16;

/// Elements per chunk for the unquantized types (F32, F16, BF16 have a block size of 1).
const FLOAT_CHUNK: usize = 32;
/// Independent accumulators in the dot products (lets LLVM keep several vector registers busy).
const LANES: usize = 16;

#[inline(always)]
fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

#[inline(always)]
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

// ---------------------------------------------------------------------------------------------
// Q4_0
// ---------------------------------------------------------------------------------------------
// block_q4_0: d f16, qs[16] (low nibbles = weights 0..16, high nibbles = 16..32) — 32 weights,
// 18 bytes. w = (q - 8) * d.
fn deq_q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_1
// ---------------------------------------------------------------------------------------------
// block_q4_1: d f16, m f16, qs[16] — 32 weights, 20 bytes. w = q * d + m.
fn deq_q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_0
// ---------------------------------------------------------------------------------------------
// block_q5_0: d f16, qh[4] (u32 LE: bit j = 5th bit of weight j), qs[16] — 32 weights,
// 22 bytes. w = (q - 16) * d.
fn deq_q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = ((qs[j] & 0x0F) | h0) as i32 - 16;
        let x1 = ((qs[j] >> 4) | h1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_1
// ---------------------------------------------------------------------------------------------
// block_q5_1: d f16, m f16, qh[4] (u32 LE), qs[16] — 32 weights, 24 bytes. w = q * d + m.
fn deq_q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = (qs[j] & 0x0F) | h0;
        let x1 = (qs[j] >> 4) | h1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_0
// ---------------------------------------------------------------------------------------------
// block_q8_0: d f16, qs[32] i8 — 32 weights, 34 bytes. w = q * d.
fn deq_q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for (yj, &q) in y.iter_mut().zip(&b[2..34]) {
        *yj = (q as i8) as f32 * d;
    }
}

// ---------------------------------------------------------------------------------------------
// Q2_K
// ---------------------------------------------------------------------------------------------
// block_q2_K: scales[16] (low nibble = scale, high nibble = min, per 16 weights), qs[64]
// (2-bit), d f16, dmin f16 — 256 weights, 84 bytes. Each 128-weight half uses 32 bytes of qs;
// bit pair `shift` of qs[l] / qs[l+16] gives 16-weight sub-blocks. w = d*sc * q - dmin*m.
fn deq_q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let scales = &b[0..16];
    let d = f16_at(b, 80);
    let min = f16_at(b, 82);
    let mut is = 0;
    let mut out = 0;
    for half in 0..2 {
        let q = &b[16 + 32 * half..16 + 32 * half + 32];
        for shift in [0u32, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = min * (sc >> 4) as f32;
                let q = &q[16 * part..16 * part + 16];
                for l in 0..16 {
                    y[out + l] = dl * ((q[l] >> shift) & 3) as f32 - ml;
                }
                out += 16;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q3_K
// ---------------------------------------------------------------------------------------------
// block_q3_K: hmask[32] (3rd bit; bit k of hmask[l] for 32-weight group k), qs[64] (low 2 bits),
// scales[12] (sixteen 6-bit signed scales, biased by 32, packed), d f16 — 256 weights,
// 110 bytes. w = d * (sc - 32) * (q2 - (hbit ? 0 : 4)).
pub(super) fn q3_k_scales(s: &[u8]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let a1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
    let tmp = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, a) in aux.iter().enumerate() {
        for (k, byte) in a.to_le_bytes().iter().enumerate() {
            out[4 * i + k] = *byte as i8 - 32;
        }
    }
    out
}

fn deq_q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let hm = &b[0..32];
    let scales = q3_k_scales(&b[96..108]);
    let d_all = f16_at(b, 108);
    let mut m = 1u8;
    let mut is = 0;
    let mut out = 0;
    for half in 0..2 {
        let q = &b[32 + 32 * half..32 + 32 * half + 32];
        for shift in [0u32, 2, 4, 6] {
            for part in 0..2 {
                let dl = d_all * scales[is] as f32;
                is += 1;
                let q = &q[16 * part..16 * part + 16];
                let h = &hm[16 * part..16 * part + 16];
                for l in 0..16 {
                    let q2 = ((q[l] >> shift) & 3) as i32;
                    let sub = if h[l] & m != 0 { 0 } else { 4 };
                    y[out + l] = dl * (q2 - sub) as f32;
                }
                out += 16;
            }
            m <<= 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by Q4_K and Q5_K: eight (scale, min) pairs of 6 bits packed into 12 bytes.
// ---------------------------------------------------------------------------------------------
// Bytes 0..4: low 6 bits = scales 0..4, top 2 bits = high bits of scales 4..8.
// Bytes 4..8: low 6 bits = mins 0..4, top 2 bits = high bits of mins 4..8.
// Bytes 8..12: low nibble = low 4 bits of scales 4..8, high nibble = low 4 bits of mins 4..8.
#[inline(always)]
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_K
// ---------------------------------------------------------------------------------------------
// block_q4_K: d f16, dmin f16, scales[12] (6-bit packed scale/min pairs), qs[128] — 256 weights,
// 144 bytes. Each 64-weight group uses 32 bytes of qs: low nibbles are weights 0..32 (pair 2i),
// high nibbles 32..64 (pair 2i+1). w = d*sc * q - dmin*m.
fn deq_q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    for g in 0..4 {
        let q = &b[16 + 32 * g..16 + 32 * g + 32];
        let (sc1, m1) = scale_min_k4(2 * g, scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let y = &mut y[64 * g..64 * g + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_K
// ---------------------------------------------------------------------------------------------
// block_q5_K: d f16, dmin f16, scales[12] (as Q4_K), qh[32] (5th bits: bit 2g of qh[l] for the
// low-nibble half of group g, bit 2g+1 for the high half), qs[128] — 256 weights, 176 bytes.
// w = d*sc * (q4 + 16*hbit) - dmin*m.
fn deq_q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    for g in 0..4 {
        let ql = &b[48 + 32 * g..48 + 32 * g + 32];
        let (sc1, m1) = scale_min_k4(2 * g, scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let u1 = 1u8 << (2 * g);
        let u2 = 2u8 << (2 * g);
        let y = &mut y[64 * g..64 * g + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K
// ---------------------------------------------------------------------------------------------
// block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] i8 (per 16 weights),
// d f16 — 256 weights, 210 bytes. Each 128-weight half uses ql[64], qh[32], scales[8]:
// weight l + 32k takes ql[l + 32(k&1)] nibble (k>>1) and bits 2k..2k+2 of qh[l].
// w = d * sc * (q - 32).
fn deq_q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row walkers
// ---------------------------------------------------------------------------------------------

/// Decode the `n` weights of `src` (exactly `n / QK` blocks of `BYTES` bytes) block by block,
/// calling `f(offset, chunk)` with each decoded block.
#[inline(always)]
fn walk_blocks<const QK: usize, const BYTES: usize>(
    src: &[u8],
    n: usize,
    deq: impl Fn(&[u8; BYTES], &mut [f32; QK]),
    f: &mut impl FnMut(usize, &[f32]),
) {
    assert_eq!(
        n % QK,
        0,
        "row length {n} is not a multiple of the block size {QK}"
    );
    assert_eq!(
        src.len(),
        n / QK * BYTES,
        "quantized row has the wrong byte length"
    );
    let mut buf = [0f32; QK];
    for (i, block) in src.chunks_exact(BYTES).enumerate() {
        let block: &[u8; BYTES] = block.try_into().expect("chunks_exact yields BYTES");
        deq(block, &mut buf);
        f(i * QK, &buf);
    }
}

/// Decode `n` unquantized elements of `ES` bytes each in chunks of `FLOAT_CHUNK`, the last chunk
/// possibly shorter.
#[inline(always)]
fn walk_floats<const ES: usize>(
    src: &[u8],
    n: usize,
    conv: impl Fn([u8; ES]) -> f32,
    f: &mut impl FnMut(usize, &[f32]),
) {
    assert_eq!(src.len(), n * ES, "float row has the wrong byte length");
    let mut buf = [0f32; FLOAT_CHUNK];
    let mut chunks = src.chunks_exact(FLOAT_CHUNK * ES);
    let mut off = 0;
    for chunk in &mut chunks {
        for (y, e) in buf.iter_mut().zip(chunk.chunks_exact(ES)) {
            *y = conv(e.try_into().expect("chunks_exact yields ES"));
        }
        f(off, &buf);
        off += FLOAT_CHUNK;
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let m = rem.len() / ES;
        for (y, e) in buf.iter_mut().zip(rem.chunks_exact(ES)) {
            *y = conv(e.try_into().expect("chunks_exact yields ES"));
        }
        f(off, &buf[..m]);
    }
}

/// Decode one row (or several contiguous rows) of `n` elements of type `ty`, chunk by chunk.
#[inline(always)]
fn walk(ty: GgmlType, src: &[u8], n: usize, f: &mut impl FnMut(usize, &[f32])) {
    match ty {
        GgmlType::F32 => walk_floats::<4>(src, n, f32::from_le_bytes, f),
        GgmlType::F16 => walk_floats::<2>(src, n, |b| f16::from_le_bytes(b).to_f32(), f),
        GgmlType::BF16 => walk_floats::<2>(src, n, |b| bf16_to_f32(u16::from_le_bytes(b)), f),
        GgmlType::Q4_0 => walk_blocks::<32, 18>(src, n, deq_q4_0, f),
        GgmlType::Q4_1 => walk_blocks::<32, 20>(src, n, deq_q4_1, f),
        GgmlType::Q5_0 => walk_blocks::<32, 22>(src, n, deq_q5_0, f),
        GgmlType::Q5_1 => walk_blocks::<32, 24>(src, n, deq_q5_1, f),
        GgmlType::Q8_0 => walk_blocks::<32, 34>(src, n, deq_q8_0, f),
        GgmlType::Q2_K => walk_blocks::<256, 84>(src, n, deq_q2_k, f),
        GgmlType::Q3_K => walk_blocks::<256, 110>(src, n, deq_q3_k, f),
        GgmlType::Q4_K => walk_blocks::<256, 144>(src, n, deq_q4_k, f),
        GgmlType::Q5_K => walk_blocks::<256, 176>(src, n, deq_q5_k, f),
        GgmlType::Q6_K => walk_blocks::<256, 210>(src, n, deq_q6_k, f),
    }
}

// ---------------------------------------------------------------------------------------------
// Accumulator
// ---------------------------------------------------------------------------------------------

/// A dot-product accumulator with `LANES` independent partial sums. Element `i` of every chunk
/// of `LANES` goes to lane `i`; the sum is reduced in a fixed tree order, so two callers that
/// feed the same chunks get bit-identical results.
#[derive(Clone, Copy)]
struct Acc([f32; LANES]);

impl Acc {
    const ZERO: Acc = Acc([0.0; LANES]);

    #[inline(always)]
    fn add(&mut self, w: &[f32], x: &[f32]) {
        debug_assert_eq!(w.len(), x.len());
        let mut wc = w.chunks_exact(LANES);
        let mut xc = x.chunks_exact(LANES);
        for (a, b) in (&mut wc).zip(&mut xc) {
            let a: &[f32; LANES] = a.try_into().expect("chunks_exact yields LANES");
            let b: &[f32; LANES] = b.try_into().expect("chunks_exact yields LANES");
            for i in 0..LANES {
                self.0[i] += a[i] * b[i];
            }
        }
        for (i, (a, b)) in wc.remainder().iter().zip(xc.remainder()).enumerate() {
            self.0[i] += a * b;
        }
    }

    #[inline(always)]
    fn sum(self) -> f32 {
        let mut v = self.0;
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                v[i] += v[i + width];
            }
        }
        v[0]
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels (inputs validated by the callers in `mod.rs`)
// ---------------------------------------------------------------------------------------------

pub(super) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    walk(ty, src, n, &mut |off, chunk: &[f32]| {
        dst[off..off + chunk.len()].copy_from_slice(chunk);
    });
}

pub fn vec_dot(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    let mut acc = Acc::ZERO;
    walk(ty, row, x.len(), &mut |off, chunk: &[f32]| {
        acc.add(chunk, &x[off..off + chunk.len()]);
    });
    acc.sum()
}

pub fn matvec(ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
    let rb = row_bytes(ty, x.len());
    assert_eq!(
        w.len(),
        rb * out.len(),
        "weight matrix has the wrong byte length"
    );
    if rb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        *o = vec_dot(ty, row, x);
    }
}

pub fn matmul(ty: GgmlType, w: &[u8], cols: usize, x: &[f32], n_tok: usize, out: &mut [f32]) {
    let Some((rows, rb)) = matmul_dims(ty, w, cols, x, n_tok, out) else {
        return;
    };
    let mut accs = vec![Acc::ZERO; n_tok];
    for (r, row) in w.chunks_exact(rb).enumerate() {
        accs.fill(Acc::ZERO);
        walk(ty, row, cols, &mut |off, chunk: &[f32]| {
            for (t, acc) in accs.iter_mut().enumerate() {
                let xs = &x[t * cols + off..t * cols + off + chunk.len()];
                acc.add(chunk, xs);
            }
        });
        for (t, acc) in accs.iter().enumerate() {
            out[t * rows + r] = acc.sum();
        }
    }
}

/// Shape checks shared by every ISA's `matmul`: `Some((rows, row_bytes))` when there is work,
/// `None` when there is none (no tokens, or empty rows: `out` is zeroed).
pub(super) fn matmul_dims(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
) -> Option<(usize, usize)> {
    assert_eq!(x.len(), n_tok * cols, "activations are not n_tok x cols");
    if n_tok == 0 {
        return None;
    }
    assert_eq!(out.len() % n_tok, 0, "output is not n_tok x rows");
    let rows = out.len() / n_tok;
    let rb = row_bytes(ty, cols);
    assert_eq!(
        w.len(),
        rb * rows,
        "weight matrix has the wrong byte length"
    );
    if rb == 0 {
        out.fill(0.0);
        return None;
    }
    Some((rows, rb))
}

/// Bytes of a row of `cols` elements (panics on a partial block).
pub(super) fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    assert_eq!(
        cols % ty.block_size(),
        0,
        "row length {cols} is not a multiple of the block size"
    );
    cols / ty.block_size() * ty.type_size()
}

/// [`super::dot_rows`]: row by row, `acc + q · k` in `d` order.
pub(super) fn dot_rows(
    qt: &[f32],
    rp: usize,
    k: &[f32],
    k_stride: usize,
    nk: usize,
    scores: &mut [f32],
) {
    let hd = qt.len() / rp;
    for j in 0..nk {
        let kj = &k[j * k_stride..j * k_stride + hd];
        for (r, s) in scores[j * rp..(j + 1) * rp].iter_mut().enumerate() {
            let mut acc = 0f32;
            for (d, &kd) in kj.iter().enumerate() {
                acc += qt[d * rp + r] * kd;
            }
            *s = acc;
        }
    }
}

/// [`super::weighted_sum`]: `o + p · v` in `j` order, element by element.
pub(super) fn weighted_sum(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    n: usize,
    out: &mut [f32],
) {
    out.fill(0.0);
    for j in 0..n {
        let (pj, vj) = (p[j * p_stride], &v[j * v_stride..j * v_stride + out.len()]);
        out.iter_mut().zip(vj).for_each(|(o, &v)| *o += pj * v);
    }
}

/// [`super::expf`] in scalar f32 (`mul` + `add`).
fn exp_poly(x: f32) -> f32 {
    use super::expf::*;
    let x = x.max(MIN);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = P[0];
    for &c in &P[1..] {
        p = p * r + c;
    }
    let e = (p * r * r + r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// [`super::softmax_cols`], row by row in key order.
pub(super) fn softmax_cols(
    sc: &mut [f32],
    rp: usize,
    width: usize,
    lo: &[u32],
    hi: &[u32],
    scale: f32,
) {
    for r in 0..rp {
        let inside = |j: usize| j as u32 >= lo[r] && j as u32 <= hi[r];
        let mut max = f32::NEG_INFINITY;
        for j in 0..width {
            let s = &mut sc[j * rp + r];
            *s *= scale;
            if inside(j) {
                max = max.max(*s);
            }
        }
        let mut sum = 0f32;
        for j in 0..width {
            let s = &mut sc[j * rp + r];
            *s = if inside(j) { exp_poly(*s - max) } else { 0.0 };
            sum += *s;
        }
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        for j in 0..width {
            sc[j * rp + r] *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn q4_0_nibble_order() {
        let mut b = [0u8; 18];
        b[0..2].copy_from_slice(&f16_bytes(0.5));
        b[2] = 0xF0; // weight 0: q=0 -> -8, weight 16: q=15 -> 7
        b[17] = 0x19; // weight 15: q=9 -> 1, weight 31: q=1 -> -7
        let mut y = [0f32; 32];
        deq_q4_0(&b, &mut y);
        assert_eq!(y[0], -4.0);
        assert_eq!(y[16], 3.5);
        assert_eq!(y[15], 0.5);
        assert_eq!(y[31], -3.5);
        assert_eq!(y[1], -4.0); // q = 0
    }

    #[test]
    fn q5_0_high_bits() {
        let mut b = [0u8; 22];
        b[0..2].copy_from_slice(&f16_bytes(1.0));
        // bit 0 -> weight 0, bit 16 -> weight 16, bit 31 -> weight 31
        b[2..6].copy_from_slice(&(1u32 | 1 << 16 | 1 << 31).to_le_bytes());
        let mut y = [0f32; 32];
        deq_q5_0(&b, &mut y);
        assert_eq!(y[0], 0.0); // 16 - 16
        assert_eq!(y[1], -16.0);
        assert_eq!(y[16], 0.0);
        assert_eq!(y[31], 0.0);
        assert_eq!(y[30], -16.0);
    }

    #[test]
    fn q3_k_scale_unpacking_extremes() {
        // All scale bits set: every 6-bit scale is 63 -> 31 after the bias.
        assert_eq!(q3_k_scales(&[0xFF; 12]), [31; 16]);
        assert_eq!(q3_k_scales(&[0; 12]), [-32; 16]);
        // Scale 0 low nibble, scale 8 from the high nibble of byte 0; high bits from byte 8.
        let mut s = [0u8; 12];
        s[0] = 0x21; // scale0 low=1, scale8 low=2
        s[8] = 0b0011_0010; // scale0 hi=2, scale4 hi=0, scale8 hi=3, scale12 hi=0
        let sc = q3_k_scales(&s);
        assert_eq!(sc[0], (1 | 2 << 4) - 32);
        assert_eq!(sc[8], (2 | 3 << 4) - 32);
    }

    #[test]
    fn k4_scale_min_unpacking() {
        let mut s = [0u8; 12];
        s[0] = 0b11_000101; // scale0 = 5, high bits of scale4 = 3
        s[4] = 0b10_000111; // min0 = 7, high bits of min4 = 2
        s[8] = 0x9A; // scale4 low = 0xA, min4 low = 0x9
        assert_eq!(scale_min_k4(0, &s), (5, 7));
        assert_eq!(scale_min_k4(4, &s), (0xA | 3 << 4, 0x9 | 2 << 4));
    }

    #[test]
    fn float_tail_and_accumulator_order() {
        // 37 elements: one full chunk of 32 plus a tail of 5.
        let vals: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 3.0).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.125).collect();
        let mut out = vec![0f32; 37];
        dequantize(GgmlType::F32, &bytes, &mut out);
        assert_eq!(out, vals);
        let want: f64 = vals
            .iter()
            .zip(&x)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum();
        let got = vec_dot(GgmlType::F32, &bytes, &x);
        assert!((got as f64 - want).abs() < 1e-4, "{got} vs {want}");
        let mut mm = [0f32; 1];
        matmul(GgmlType::F32, &bytes, 37, &x, 1, &mut mm);
        assert_eq!(mm[0].to_bits(), got.to_bits());
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(vec_dot(GgmlType::Q4_K, &[], &[]), 0.0);
        let mut out = [1.0f32; 2];
        matvec(GgmlType::Q8_0, &[], &[], &mut out);
        assert_eq!(out, [0.0, 0.0]);
        matmul(GgmlType::Q6_K, &[], 256, &[], 0, &mut []);
    }
}
