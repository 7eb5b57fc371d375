//! Quantization from f32: the inverse of [`super::dequantize`] for every type `chord quantize`
//! writes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q3_K, Q4_K, Q5_K, Q6_K).
//!
//! Each block type is a typed `#[repr(C)]` struct with the exact GGUF layout (`legacy.rs`: the
//! 32-weight types; `kquants.rs`: the 256-weight super-blocks) and a `write` that appends its
//! little-endian bytes. The algorithms are deliberately simple and deterministic (no threads, no
//! randomness, plain f32 arithmetic): a scale from the block's extreme value, then for the
//! K-quants a least-squares refit of each sub-block's scale (and offset) to its integer codes
//! before the scales themselves are quantized. Same input, same bytes, on every machine.

use half::{bf16, f16};

use super::GgmlType;
use crate::error::{Error, Result};

mod kquants;
mod legacy;

/// A quantized block: its GGUF byte layout and how many weights it holds.
pub(crate) trait Block: Sized {
    /// Weights per block.
    const QK: usize;
    /// Quantize exactly `QK` weights.
    fn quantize(x: &[f32]) -> Self;
    /// Append the block's bytes (little-endian, GGUF order).
    fn write(&self, out: &mut Vec<u8>);
}

/// Whether [`quantize`] can produce `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    !matches!(ty, GgmlType::Q2_K)
}

/// Quantize `x` (any number of rows; `x.len()` a multiple of `ty.block_size()`) to `ty`'s blocks:
/// exactly `ty.row_bytes(x.len())` bytes, which [`super::dequantize`] turns back into
/// approximately `x`.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>> {
    let bs = ty.block_size();
    if !x.len().is_multiple_of(bs) {
        return Err(Error::Invalid(format!(
            "cannot quantize {} values to {}: not a multiple of its block size {bs}",
            x.len(),
            ty.name()
        )));
    }
    let mut out = Vec::with_capacity(x.len() / bs * ty.type_size());
    match ty {
        GgmlType::F32 => x.iter().for_each(|v| out.extend(v.to_le_bytes())),
        GgmlType::F16 => x
            .iter()
            .for_each(|v| out.extend(f16::from_f32(*v).to_le_bytes())),
        GgmlType::BF16 => x
            .iter()
            .for_each(|v| out.extend(bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q4_0 => blocks::<legacy::BlockQ4_0>(x, &mut out),
        GgmlType::Q4_1 => blocks::<legacy::BlockQ4_1>(x, &mut out),
        GgmlType::Q5_0 => blocks::<legacy::BlockQ5_0>(x, &mut out),
        GgmlType::Q5_1 => blocks::<legacy::BlockQ5_1>(x, &mut out),
        GgmlType::Q8_0 => blocks::<legacy::BlockQ8_0>(x, &mut out),
        GgmlType::Q3_K => blocks::<kquants::BlockQ3K>(x, &mut out),
        GgmlType::Q4_K => blocks::<kquants::BlockQ4K>(x, &mut out),
        GgmlType::Q5_K => blocks::<kquants::BlockQ5K>(x, &mut out),
        GgmlType::Q6_K => blocks::<kquants::BlockQ6K>(x, &mut out),
        GgmlType::Q2_K => {
            return Err(Error::Unsupported(format!(
                "quantizing to {} (choose Q3_K or better)",
                ty.name()
            )))
        }
    }
    debug_assert_eq!(out.len(), x.len() / bs * ty.type_size());
    Ok(out)
}

fn blocks<B: Block>(x: &[f32], out: &mut Vec<u8>) {
    for chunk in x.chunks_exact(B::QK) {
        B::quantize(chunk).write(out);
    }
}

/// `v` as f16 bits, and the value those bits stand for (the scale the decoder will use).
#[inline]
fn f16_pair(v: f32) -> (u16, f32) {
    let h = f16::from_f32(v);
    (h.to_bits(), h.to_f32())
}

/// The element of largest magnitude, with its sign (the first one on a tie).
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    x.iter()
        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

/// `1 / d`, or 0 for a zero scale (a block of zeros).
#[inline]
fn inv(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// `round(v)` clamped to `lo..=hi` (ties away from zero, like C's `roundf`).
#[inline]
fn qround(v: f32, lo: i32, hi: i32) -> i32 {
    (v.round() as i32).clamp(lo, hi)
}

impl GgmlType {
    /// The type named `name` (`Q4_K`, `q8_0`, `F16`, …; case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GgmlType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests;
