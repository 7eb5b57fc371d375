//! Micro-benchmark of the 8-bit kernels on Qwen2.5-1.5B-sized products (random weights):
//! the best of 7 runs of one product, `cargo run --release --example q8bench [n_tok]`.
use inference::quant::{self, GgmlType};
use std::time::Instant;

fn main() {
    let n_tok: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let mut seed = 12345u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let f16 = |v: f32| half::f16::from_f32(v).to_bits().to_le_bytes();
    for (ty, rows, cols) in [
        (GgmlType::Q4_K, 8960, 1536),
        (GgmlType::Q6_K, 1536, 8960),
        (GgmlType::Q4_K, 1536, 1536),
    ] {
        let bs = ty.type_size();
        let rb = cols / ty.block_size() * bs;
        let mut w: Vec<u8> = (0..rows * rb).map(|_| rnd() as u8).collect();
        // Finite block scales: d (and dmin) at the type's offsets.
        for blk in w.chunks_exact_mut(bs) {
            if ty == GgmlType::Q6_K {
                blk[208..210].copy_from_slice(&f16(0.01));
            } else {
                blk[0..2].copy_from_slice(&f16(0.01));
                blk[2..4].copy_from_slice(&f16(0.02));
            }
        }
        let x: Vec<f32> = (0..n_tok * cols)
            .map(|_| (rnd() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let mut best = f64::MAX;
        let mut out = vec![0f32; n_tok * rows];
        for _ in 0..7 {
            let t = Instant::now();
            let mut q = quant::Q8Acts::default();
            q.quantize_for(ty, &x);
            quant::matmul_q8(ty, &w, cols, &q, n_tok, &mut out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{} {rows}x{cols} n={n_tok} ({}, per {}): {:.2} ms, {:.1} GMAC/s",
            ty.name(),
            quant::q8_isa(),
            quant::q8_block(ty),
            best * 1e3,
            (rows * cols * n_tok) as f64 / best / 1e9
        );
    }
}
