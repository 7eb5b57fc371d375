//! The 256-weight super-block types: Q3_K, Q4_K, Q5_K, Q6_K (layouts as `scalar.rs` decodes them).
//!
//! Two levels, as in the format: each sub-block (16 or 32 weights) first gets its own f32 scale
//! (and, for Q4_K/Q5_K, a non-negative minimum), fitted to its weights — a start from the extreme
//! values, then least-squares refits of scale (and minimum) to the integer codes, kept while they
//! lower the squared error. Then the sub-block scales are themselves quantized against one f16
//! super-scale (6 bits for Q3_K/Q4_K/Q5_K, signed 8 bits for Q6_K), and the weights are coded
//! with the scales the decoder will actually use.

use super::{f16_pair, inv, qround, signed_absmax, Block};

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ3K {
    /// Third bit of each code: bit `4 * half + k` of `hmask[l]`.
    pub hmask: [u8; 32],
    /// Low two bits of each code.
    pub qs: [u8; 64],
    /// Sixteen 6-bit scales (biased by 32), packed.
    pub scales: [u8; 12],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    /// Eight 6-bit (scale, min) pairs, packed.
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    /// Fifth bits: bit `2g` of `qh[l]` for weight `64g + l`, bit `2g + 1` for `64g + 32 + l`.
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ6K {
    /// Low four bits of each code.
    pub ql: [u8; 128],
    /// High two bits of each code.
    pub qh: [u8; 64],
    /// One signed scale per 16 weights.
    pub scales: [i8; 16],
    pub d: u16,
}

const _: () = {
    assert!(std::mem::size_of::<BlockQ3K>() == 110);
    assert!(std::mem::size_of::<BlockQ4K>() == 144);
    assert!(std::mem::size_of::<BlockQ5K>() == 176);
    assert!(std::mem::size_of::<BlockQ6K>() == 210);
};

const QK_K: usize = 256;

// ---------------------------------------------------------------------------------------------
// Sub-block fits
// ---------------------------------------------------------------------------------------------

/// Squared error of `x ≈ s * q(x) - m`, codes `lo..=hi` (a symmetric fit has `m = 0`).
fn sq_err(x: &[f32], s: f32, m: f32, lo: i32, hi: i32) -> f32 {
    let is = inv(s);
    x.iter()
        .map(|&v| {
            let q = qround((v + m) * is, lo, hi) as f32;
            let e = v - (s * q - m);
            e * e
        })
        .sum()
}

/// A scale for codes `lo..=hi` around 0 (`lo = -hi - 1`): the extreme weight on code `lo`, then
/// refits `s = Σ x q / Σ q²` while they lower the error.
fn fit_symmetric(x: &[f32], lo: i32, hi: i32) -> f32 {
    let mut s = signed_absmax(x) / lo as f32;
    if s == 0.0 {
        return 0.0;
    }
    let mut err = sq_err(x, s, 0.0, lo, hi);
    for _ in 0..3 {
        let is = inv(s);
        let (mut xq, mut qq) = (0f32, 0f32);
        for &v in x {
            let q = qround(v * is, lo, hi) as f32;
            xq += v * q;
            qq += q * q;
        }
        if qq == 0.0 {
            break;
        }
        let s2 = xq / qq;
        let e2 = sq_err(x, s2, 0.0, lo, hi);
        if e2.is_nan() || e2 >= err {
            break;
        }
        (s, err) = (s2, e2);
    }
    s
}

/// A scale `s >= 0` and minimum `m >= 0` for `x ≈ s * q - m`, codes `0..=top`: `min(x, 0)..max(x)`
/// over every code, then least-squares refits of both while they lower the error.
fn fit_offset(x: &[f32], top: i32) -> (f32, f32) {
    let lo = x.iter().copied().fold(0f32, f32::min);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi <= lo {
        return (0.0, -lo);
    }
    let (mut s, mut m) = ((hi - lo) / top as f32, -lo);
    let mut err = sq_err(x, s, m, 0, top);
    let n = x.len() as f32;
    for _ in 0..3 {
        let is = inv(s);
        let (mut sq, mut sqq, mut sx, mut sxq) = (0f32, 0f32, 0f32, 0f32);
        for &v in x {
            let q = qround((v + m) * is, 0, top) as f32;
            sq += q;
            sqq += q * q;
            sx += v;
            sxq += v * q;
        }
        let den = n * sqq - sq * sq;
        if den <= 0.0 {
            break;
        }
        let mut s2 = (n * sxq - sq * sx) / den;
        let mut m2 = (s2 * sq - sx) / n;
        if m2 < 0.0 {
            // The best offset would be positive: the format only subtracts, so pin it at 0.
            m2 = 0.0;
            s2 = if sqq > 0.0 { sxq / sqq } else { 0.0 };
        }
        if s2 <= 0.0 {
            break;
        }
        let e2 = sq_err(x, s2, m2, 0, top);
        if e2.is_nan() || e2 >= err {
            break;
        }
        (s, m, err) = (s2, m2, e2);
    }
    (s, m)
}

/// Quantize non-negative sub-block values to 6 bits against one f16 super-scale:
/// `(super-scale bits, its value, codes)`.
fn six_bit<const N: usize>(v: &[f32; N]) -> (u16, f32, [u8; N]) {
    let max = v.iter().copied().fold(0f32, f32::max);
    let (bits, d) = f16_pair(max / 63.0);
    let id = inv(d);
    (bits, d, v.map(|s| qround(s * id, 0, 63) as u8))
}

// ---------------------------------------------------------------------------------------------
// Q4_K and Q5_K: eight 32-weight sub-blocks with a scale and a minimum each
// ---------------------------------------------------------------------------------------------

/// Codes `0..=top` of the 256 weights and the block's scale fields:
/// `(d bits, dmin bits, packed scales, codes)`.
fn scale_min_block(x: &[f32], top: i32) -> (u16, u16, [u8; 12], [u8; QK_K]) {
    let mut s = [0f32; 8];
    let mut m = [0f32; 8];
    for (j, sub) in x.chunks_exact(32).enumerate() {
        (s[j], m[j]) = fit_offset(sub, top);
    }
    let (d, dv, ls) = six_bit(&s);
    let (dmin, mv, lm) = six_bit(&m);
    let mut q = [0u8; QK_K];
    for (j, sub) in x.chunks_exact(32).enumerate() {
        let (ds, dm) = (dv * ls[j] as f32, mv * lm[j] as f32);
        let is = inv(ds);
        for (l, &v) in sub.iter().enumerate() {
            q[32 * j + l] = qround((v + dm) * is, 0, top) as u8;
        }
    }
    (d, dmin, pack_scale_min(&ls, &lm), q)
}

/// The inverse of `scalar::scale_min_k4`: scales and mins 0..4 in the low 6 bits of bytes 0..4 and
/// 4..8; 4..8 as low nibbles (scales) and high nibbles (mins) of bytes 8..12, their top two bits
/// in the top bits of bytes 0..4 (scales) and 4..8 (mins).
fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..4 {
        out[j] = sc[j] & 63;
        out[j + 4] = m[j] & 63;
    }
    for j in 4..8 {
        out[j + 4] = (sc[j] & 0x0F) | ((m[j] & 0x0F) << 4);
        out[j - 4] |= (sc[j] >> 4) << 6;
        out[j] |= (m[j] >> 4) << 6;
    }
    out
}

/// Low nibbles of 256 codes, Q4_K/Q5_K order: 32 bytes per 64 weights, weight `64g + l` in the
/// low nibble of byte `32g + l`, weight `64g + 32 + l` in its high nibble.
fn pack_k_nibbles(q: &[u8; QK_K]) -> [u8; 128] {
    std::array::from_fn(|i| {
        let (g, l) = (i / 32, i % 32);
        (q[64 * g + l] & 0x0F) | ((q[64 * g + 32 + l] & 0x0F) << 4)
    })
}

impl Block for BlockQ4K {
    const QK: usize = QK_K;
    fn quantize(x: &[f32]) -> Self {
        let (d, dmin, scales, q) = scale_min_block(x, 15);
        BlockQ4K {
            d,
            dmin,
            scales,
            qs: pack_k_nibbles(&q),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.dmin.to_le_bytes());
        out.extend(self.scales);
        out.extend(self.qs);
    }
}

impl Block for BlockQ5K {
    const QK: usize = QK_K;
    fn quantize(x: &[f32]) -> Self {
        let (d, dmin, scales, q) = scale_min_block(x, 31);
        let qh = std::array::from_fn(|l| {
            (0..4).fold(0u8, |acc, g| {
                let lo = (q[64 * g + l] >> 4) & 1;
                let hi = (q[64 * g + 32 + l] >> 4) & 1;
                acc | (lo << (2 * g)) | (hi << (2 * g + 1))
            })
        });
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs: pack_k_nibbles(&q),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.dmin.to_le_bytes());
        out.extend(self.scales);
        out.extend(self.qh);
        out.extend(self.qs);
    }
}

// ---------------------------------------------------------------------------------------------
// Q3_K and Q6_K: sixteen 16-weight sub-blocks with a signed scale each
// ---------------------------------------------------------------------------------------------

/// Signed codes `lo..=hi` of 256 weights with one scale per 16, the scales coded as integers
/// `slo..=shi` against an f16 super-scale: `(d bits, scale codes, weight codes)`.
fn signed_block(x: &[f32], lo: i32, hi: i32, slo: i32, shi: i32) -> (u16, [i32; 16], [i32; QK_K]) {
    let mut s = [0f32; 16];
    for (j, sub) in x.chunks_exact(16).enumerate() {
        s[j] = fit_symmetric(sub, lo, hi);
    }
    // The scale of largest magnitude lands on `slo` (the extra code on the negative side).
    let (d, dv) = f16_pair(signed_absmax(&s) / slo as f32);
    let id = inv(dv);
    let ls = s.map(|v| qround(v * id, slo, shi));
    let mut q = [0i32; QK_K];
    for (j, sub) in x.chunks_exact(16).enumerate() {
        let is = inv(dv * ls[j] as f32);
        for (l, &v) in sub.iter().enumerate() {
            q[16 * j + l] = qround(v * is, lo, hi);
        }
    }
    (d, ls, q)
}

impl Block for BlockQ3K {
    const QK: usize = QK_K;
    fn quantize(x: &[f32]) -> Self {
        let (d, ls, q) = signed_block(x, -4, 3, -32, 31);
        let mut b = BlockQ3K {
            hmask: [0; 32],
            qs: [0; 64],
            scales: [0; 12],
            d,
        };
        for (w, &v) in q.iter().enumerate() {
            // Stored code L = v + 4 in 0..8: low two bits in qs, the third in hmask.
            let code = (v + 4) as u8;
            let (half, r) = (w / 128, w % 128);
            let k = r / 32;
            b.qs[32 * half + r % 32] |= (code & 3) << (2 * k);
            b.hmask[r % 32] |= (code >> 2) << (4 * half + k);
        }
        for (j, &l) in ls.iter().enumerate() {
            // Biased scale 0..64: low nibble in byte j % 8 (low half for j < 8, high half after),
            // top two bits in byte 8 + j % 4, bit pair j / 4.
            let v = (l + 32) as u8;
            b.scales[j % 8] |= (v & 0x0F) << if j < 8 { 0 } else { 4 };
            b.scales[8 + j % 4] |= (v >> 4) << (2 * (j / 4));
        }
        b
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.hmask);
        out.extend(self.qs);
        out.extend(self.scales);
        out.extend(self.d.to_le_bytes());
    }
}

impl Block for BlockQ6K {
    const QK: usize = QK_K;
    fn quantize(x: &[f32]) -> Self {
        let (d, ls, q) = signed_block(x, -32, 31, -128, 127);
        let mut b = BlockQ6K {
            ql: [0; 128],
            qh: [0; 64],
            scales: ls.map(|v| v as i8),
            d,
        };
        for (w, &v) in q.iter().enumerate() {
            // Stored code v + 32 in 0..64: within each 128-weight half, weight l + 32k has its low
            // nibble in ql[l + 32 (k & 1)] (nibble k >> 1) and its top bits at 2k of qh[l].
            let code = (v + 32) as u8;
            let (half, r) = (w / 128, w % 128);
            let (k, l) = (r / 32, r % 32);
            b.ql[64 * half + l + 32 * (k & 1)] |= (code & 0x0F) << (4 * (k >> 1));
            b.qh[32 * half + l] |= (code >> 4) << (2 * k);
        }
        b
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.ql);
        out.extend(self.qh);
        out.extend(self.scales.map(|s| s as u8));
        out.extend(self.d.to_le_bytes());
    }
}
