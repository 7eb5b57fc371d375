//! Kernel micro-benchmark: `cargo run --release -p inference --example kbench`.
//! Times `quant::matmul` per type (SIMD vs scalar) on a random 576 x 1536 matrix.
use inference::quant::{self, Activations, GgmlType};
use std::time::Instant;

fn main() {
    let (rows, cols) = (576usize, 1536usize);
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x: Vec<f32> = (0..cols * 64)
        .map(|_| (rnd() % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    for ty in GgmlType::ALL {
        let bytes = ty.row_bytes(cols as u64).unwrap() as usize * rows;
        // Small random bytes keep every f16 scale finite; the values don't matter for timing.
        let w: Vec<u8> = (0..bytes).map(|_| (rnd() % 0x3c) as u8).collect();
        for n in [1usize, 64] {
            let mut out = vec![0f32; rows * n];
            let mut t = [0f64; 3];
            for (k, simd, act) in [
                (0, true, Activations::F32),
                (1, false, Activations::F32),
                (2, true, Activations::Q8),
            ] {
                quant::set_simd(simd);
                let reps = if n == 1 { 200 } else { 4 };
                let t0 = Instant::now();
                for _ in 0..reps {
                    quant::matmul_act(act, ty, &w, cols, &x[..n * cols], n, &mut out);
                }
                t[k] = t0.elapsed().as_secs_f64() / reps as f64;
            }
            println!(
                "{:5} n={n:2}: simd {:8.1} us ({:6.2} GB/s)  scalar {:8.1} us  x{:.1}  q8 {:8.1} us ({:6.2} GB/s{})",
                ty.name(),
                t[0] * 1e6,
                bytes as f64 / t[0] / 1e9,
                t[1] * 1e6,
                t[1] / t[0],
                t[2] * 1e6,
                bytes as f64 / t[2] / 1e9,
                if quant::has_q8_kernel(ty) { "" } else { ", f32 fallback" }
            );
        }
    }
}
