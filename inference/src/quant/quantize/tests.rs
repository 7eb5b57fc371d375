//! Round trips: quantize, dequantize with the engine's reference decoder, measure the error.

use super::*;
use crate::quant::dequantize;

/// Deterministic test weights: a mix of a Gaussian-ish bulk, a few outliers and a block offset,
/// like real weight rows.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    (0..n)
        .map(|i| {
            let g = (0..4).map(|_| next()).sum::<f32>() * 0.05;
            let outlier = if i % 97 == 13 { next() * 0.8 } else { 0.0 };
            let offset = if (i / 256) % 3 == 1 { 0.02 } else { 0.0 };
            g + outlier + offset
        })
        .collect()
}

/// RMS error relative to the RMS of `x`, and the worst error relative to the largest |x| of its
/// block.
fn round_trip(ty: GgmlType, x: &[f32]) -> (f64, f64) {
    let q = quantize(ty, x).expect("quantizes");
    assert_eq!(q.len() as u64, ty.row_bytes(x.len() as u64).unwrap());
    let mut y = vec![0f32; x.len()];
    dequantize(ty, &q, &mut y);
    let (mut se, mut ss, mut worst) = (0f64, 0f64, 0f64);
    let bs = ty.block_size().max(32);
    for (xb, yb) in x.chunks(bs).zip(y.chunks(bs)) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        for (&a, &b) in xb.iter().zip(yb) {
            let e = (a - b) as f64;
            se += e * e;
            ss += (a as f64) * (a as f64);
            if amax > 0.0 {
                worst = worst.max(e.abs() / amax);
            }
        }
    }
    ((se / ss).sqrt(), worst)
}

#[test]
fn every_type_round_trips_within_its_bound() {
    // (type, relative RMS error bound, worst error relative to the block's largest |x|)
    let bounds = [
        (GgmlType::F32, 0.0, 0.0),
        (GgmlType::F16, 1e-3, 1e-3),
        (GgmlType::BF16, 5e-3, 5e-3),
        (GgmlType::Q8_0, 0.01, 0.5 / 127.0 * 1.01),
        (GgmlType::Q6_K, 0.03, 0.03),
        (GgmlType::Q5_0, 0.08, 1.0 / 16.0 * 1.01),
        (GgmlType::Q5_1, 0.05, 0.5 / 31.0 * 2.0 * 1.01),
        (GgmlType::Q5_K, 0.05, 0.04),
        (GgmlType::Q4_0, 0.15, 1.0 / 8.0 * 1.01),
        (GgmlType::Q4_1, 0.10, 0.5 / 15.0 * 2.0 * 1.01),
        (GgmlType::Q4_K, 0.10, 0.08),
        (GgmlType::Q3_K, 0.22, 0.2),
    ];
    let x = weights(256 * 24, 7);
    for (ty, rms_bound, worst_bound) in bounds {
        let (rms, worst) = round_trip(ty, &x);
        eprintln!("{}: relative RMS {rms:.4}, worst {worst:.4}", ty.name());
        assert!(
            rms <= rms_bound && worst <= worst_bound,
            "{}: relative RMS error {rms:.4} (bound {rms_bound}), worst {worst:.4} (bound {worst_bound})",
            ty.name()
        );
    }
}

#[test]
fn more_bits_less_error() {
    let x = weights(256 * 16, 11);
    let rms = |ty| round_trip(ty, &x).0;
    assert!(rms(GgmlType::Q3_K) > rms(GgmlType::Q4_K));
    assert!(rms(GgmlType::Q4_K) > rms(GgmlType::Q5_K));
    assert!(rms(GgmlType::Q5_K) > rms(GgmlType::Q6_K));
    assert!(rms(GgmlType::Q6_K) > rms(GgmlType::Q8_0));
    assert!(rms(GgmlType::Q4_0) > rms(GgmlType::Q5_0));
    assert!(rms(GgmlType::Q4_1) > rms(GgmlType::Q5_1));
}

#[test]
fn exact_where_the_grid_allows() {
    // Zeros stay zeros; a block of small integers is exact in Q8_0, and a constant block in the
    // offset types.
    for ty in GgmlType::ALL.into_iter().filter(|&t| can_quantize(t)) {
        let q = quantize(ty, &[0.0; 256]).unwrap();
        let mut y = vec![1f32; 256];
        dequantize(ty, &q, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{}: zeros", ty.name());
    }
    let ints: Vec<f32> = (0..32).map(|i| (i as f32 * 8.0 - 127.0) * 0.25).collect();
    let q = quantize(GgmlType::Q8_0, &ints).unwrap();
    let mut y = vec![0f32; 32];
    dequantize(GgmlType::Q8_0, &q, &mut y);
    assert_eq!(y, ints);
    for ty in [GgmlType::Q4_1, GgmlType::Q5_1] {
        let q = quantize(ty, &[0.75; 32]).unwrap();
        dequantize(ty, &q, &mut y);
        assert!(y.iter().all(|&v| v == 0.75), "{}: constant", ty.name());
    }
}

#[test]
fn signs_and_extremes_survive() {
    // One huge weight per block must come back with its sign and size (it sets the scale).
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        for sign in [1.0f32, -1.0] {
            let mut x = weights(256, 3);
            x[37] = 9.0 * sign;
            let q = quantize(ty, &x).unwrap();
            let mut y = vec![0f32; 256];
            dequantize(ty, &q, &mut y);
            assert!(
                (y[37] - x[37]).abs() < 0.6,
                "{}: extreme {} came back as {}",
                ty.name(),
                x[37],
                y[37]
            );
        }
    }
}

#[test]
fn deterministic_and_checked() {
    let x = weights(512, 5);
    for ty in GgmlType::ALL.into_iter().filter(|&t| can_quantize(t)) {
        assert_eq!(quantize(ty, &x).unwrap(), quantize(ty, &x).unwrap());
    }
    assert!(quantize(GgmlType::Q4_K, &x[..300]).is_err());
    assert!(quantize(GgmlType::Q2_K, &x).is_err());
    assert_eq!(GgmlType::from_name("q4_k"), Some(GgmlType::Q4_K));
    assert_eq!(GgmlType::from_name("Q9_9"), None);
}
