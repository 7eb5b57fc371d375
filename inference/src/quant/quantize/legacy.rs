//! The 32-weight block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (layouts as `scalar.rs` decodes them).
//!
//! Symmetric types (`_0`) take the scale from the element of largest magnitude, signed, so that
//! it lands exactly on the most negative code (`-8`, `-16`) and the one extra code on that side
//! is used; Q8_0 is symmetric around 0 (`±127`). Offset types (`_1`) spread `min..max` over all
//! codes. Codes are computed with the f16-rounded scale the decoder will multiply by.

use super::{f16_pair, inv, qround, signed_absmax, Block};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockQ4_0 {
    /// f16 scale.
    pub d: u16,
    /// Low nibbles: weights 0..16; high nibbles: 16..32. Weight = (q - 8) * d.
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockQ4_1 {
    pub d: u16,
    /// f16 offset (the minimum). Weight = q * d + m.
    pub m: u16,
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockQ5_0 {
    pub d: u16,
    /// Bit j (u32 little-endian) = 5th bit of weight j. Weight = (q - 16) * d.
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockQ8_0 {
    pub d: u16,
    /// Weight = q * d.
    pub qs: [i8; 32],
}

const _: () = {
    assert!(std::mem::size_of::<BlockQ4_0>() == 18);
    assert!(std::mem::size_of::<BlockQ4_1>() == 20);
    assert!(std::mem::size_of::<BlockQ5_0>() == 22);
    assert!(std::mem::size_of::<BlockQ5_1>() == 24);
    assert!(std::mem::size_of::<BlockQ8_0>() == 34);
};

/// Pack 32 codes of up to 4 bits: weight j in the low nibble of byte j, weight j + 16 in the
/// high nibble.
fn pack_nibbles(q: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| (q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4))
}

/// The 5th bits of 32 codes, bit j of a little-endian u32 for weight j.
fn pack_high_bits(q: &[u8; 32]) -> [u8; 4] {
    let bits = q
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &v)| acc | (((u32::from(v) >> 4) & 1) << j));
    bits.to_le_bytes()
}

/// Codes `0..2 * half` of a symmetric block (weight = (q - half) * d): `(d bits, codes)`.
fn symmetric(x: &[f32], half: i32) -> (u16, [u8; 32]) {
    let (d, dv) = f16_pair(signed_absmax(x) / -(half as f32));
    let id = inv(dv);
    let q = std::array::from_fn(|j| (qround(x[j] * id, -half, half - 1) + half) as u8);
    (d, q)
}

/// Codes of an offset block with codes `0..=top`: `(d bits, m bits, codes)`.
fn offset(x: &[f32], top: i32) -> (u16, u16, [u8; 32]) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (d, dv) = f16_pair((max - min) / top as f32);
    let (m, mv) = f16_pair(min);
    let id = inv(dv);
    let q = std::array::from_fn(|j| qround((x[j] - mv) * id, 0, top) as u8);
    (d, m, q)
}

impl Block for BlockQ4_0 {
    const QK: usize = 32;
    fn quantize(x: &[f32]) -> Self {
        let (d, q) = symmetric(x, 8);
        BlockQ4_0 {
            d,
            qs: pack_nibbles(&q),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.qs);
    }
}

impl Block for BlockQ4_1 {
    const QK: usize = 32;
    fn quantize(x: &[f32]) -> Self {
        let (d, m, q) = offset(x, 15);
        BlockQ4_1 {
            d,
            m,
            qs: pack_nibbles(&q),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.m.to_le_bytes());
        out.extend(self.qs);
    }
}

impl Block for BlockQ5_0 {
    const QK: usize = 32;
    fn quantize(x: &[f32]) -> Self {
        let (d, q) = symmetric(x, 16);
        BlockQ5_0 {
            d,
            qh: pack_high_bits(&q),
            qs: pack_nibbles(&q),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.qh);
        out.extend(self.qs);
    }
}

impl Block for BlockQ5_1 {
    const QK: usize = 32;
    fn quantize(x: &[f32]) -> Self {
        let (d, m, q) = offset(x, 31);
        BlockQ5_1 {
            d,
            m,
            qh: pack_high_bits(&q),
            qs: pack_nibbles(&q),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.m.to_le_bytes());
        out.extend(self.qh);
        out.extend(self.qs);
    }
}

impl Block for BlockQ8_0 {
    const QK: usize = 32;
    fn quantize(x: &[f32]) -> Self {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (d, dv) = f16_pair(amax / 127.0);
        let id = inv(dv);
        BlockQ8_0 {
            d,
            qs: std::array::from_fn(|j| qround(x[j] * id, -127, 127) as i8),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.d.to_le_bytes());
        out.extend(self.qs.map(|q| q as u8));
    }
}
