//! Quantized kernels against independent fixtures.
//!
//! `tests/fixtures/quant/` is produced by `scripts/make-quant-fixtures.py`: raw ggml blocks taken
//! from a real GGUF model (or random valid blocks) plus the f32 values that the PyPI `gguf`
//! package's `gguf.quants.dequantize` computes from them.

use std::path::PathBuf;

use inference::quant::{
    self, dequantize, matmul, matmul_act, matvec, reference, vec_dot, Activations, GgmlType,
};

struct Fixture {
    name: String,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    raw: Vec<u8>,
    expected: Vec<f32>,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

fn load_fixtures() -> Vec<Fixture> {
    let dir = fixture_dir();
    let index = std::fs::read_to_string(dir.join("index.txt")).expect("read index.txt");
    let mut out = Vec::new();
    for line in index.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, ty_name) = (f[0], f[1]);
        let rows: usize = f[2].parse().unwrap();
        let cols: usize = f[3].parse().unwrap();
        let ty = *GgmlType::ALL
            .iter()
            .find(|t| t.name() == ty_name)
            .unwrap_or_else(|| panic!("unknown type {ty_name}"));
        let raw = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let exp_bytes = std::fs::read(dir.join(format!("{name}.f32"))).unwrap();
        let expected: Vec<f32> = exp_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(expected.len(), rows * cols, "{name}: expected values");
        assert_eq!(
            raw.len() as u64,
            ty.row_bytes(cols as u64).unwrap() * rows as u64,
            "{name}: raw byte length"
        );
        out.push(Fixture {
            name: name.to_string(),
            ty,
            rows,
            cols,
            raw,
            expected,
        });
    }
    out
}

/// Deterministic pseudo-random activations in [-1, 1) (xorshift64*).
fn random_x(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
            v as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// float64 reference dot and the scale for the tolerance (sum of |w_i x_i|).
fn ref_dot(w: &[f32], x: &[f32]) -> (f64, f64) {
    let mut dot = 0f64;
    let mut mag = 0f64;
    for (a, b) in w.iter().zip(x) {
        let p = *a as f64 * *b as f64;
        dot += p;
        mag += p.abs();
    }
    (dot, mag)
}

fn assert_close_dot(what: &str, got: f32, w: &[f32], x: &[f32]) {
    let (want, mag) = ref_dot(w, x);
    let tol = 1e-4 * mag + 1e-30;
    assert!(
        (got as f64 - want).abs() <= tol,
        "{what}: got {got}, want {want} (tolerance {tol})"
    );
}

#[test]
fn fixtures_cover_every_type() {
    let fixtures = load_fixtures();
    for ty in GgmlType::ALL {
        assert!(
            fixtures.iter().any(|f| f.ty == ty),
            "no fixture for {}",
            ty.name()
        );
    }
    // Real-model bytes for the types the test model has.
    for name in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "F16", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(
            fixtures.iter().any(|f| f.name == format!("{name}.real")),
            "no real-tensor fixture for {name}"
        );
    }
}

#[test]
fn dequantize_matches_reference() {
    for f in load_fixtures() {
        let check = |got: &[f32], want: &[f32], what: &str| {
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let ok = g.to_bits() == w.to_bits() || (g - w).abs() <= 1e-6 * w.abs();
                assert!(ok, "{}: {what} element {i}: got {g}, want {w}", f.name);
            }
        };
        // Whole matrix at once.
        let mut all = vec![f32::NAN; f.rows * f.cols];
        dequantize(f.ty, &f.raw, &mut all);
        check(&all, &f.expected, "matrix");
        // Row by row.
        let rb = f.raw.len() / f.rows;
        for r in 0..f.rows {
            let mut row = vec![f32::NAN; f.cols];
            dequantize(f.ty, &f.raw[r * rb..(r + 1) * rb], &mut row);
            check(&row, &f.expected[r * f.cols..(r + 1) * f.cols], "row");
        }
    }
}

#[test]
fn vec_dot_and_matvec_match_f64_reference() {
    for f in load_fixtures() {
        let rb = f.raw.len() / f.rows;
        let x = random_x(f.cols, 7);
        let mut mv = vec![f32::NAN; f.rows];
        matvec(f.ty, &f.raw, &x, &mut mv);
        for (r, &m) in mv.iter().enumerate() {
            let w = &f.expected[r * f.cols..(r + 1) * f.cols];
            let d = vec_dot(f.ty, &f.raw[r * rb..(r + 1) * rb], &x);
            assert_close_dot(&format!("{} vec_dot row {r}", f.name), d, w, &x);
            assert_close_dot(&format!("{} matvec row {r}", f.name), m, w, &x);
            assert_eq!(
                d.to_bits(),
                m.to_bits(),
                "{}: matvec differs from vec_dot",
                f.name
            );
        }
    }
}

#[test]
fn matmul_matches_matvec_per_token() {
    for f in load_fixtures() {
        for n_tok in [1usize, 3, 7] {
            let x = random_x(n_tok * f.cols, 100 + n_tok as u64);
            let mut out = vec![f32::NAN; n_tok * f.rows];
            matmul(f.ty, &f.raw, f.cols, &x, n_tok, &mut out);
            for t in 0..n_tok {
                let xt = &x[t * f.cols..(t + 1) * f.cols];
                let mut mv = vec![f32::NAN; f.rows];
                matvec(f.ty, &f.raw, xt, &mut mv);
                for r in 0..f.rows {
                    let got = out[t * f.rows + r];
                    assert_eq!(
                        got.to_bits(),
                        mv[r].to_bits(),
                        "{} n_tok={n_tok} t={t} r={r}: matmul {got} vs matvec {}",
                        f.name,
                        mv[r]
                    );
                    let w = &f.expected[r * f.cols..(r + 1) * f.cols];
                    assert_close_dot(&format!("{} matmul t={t} r={r}", f.name), got, w, xt);
                }
            }
        }
    }
}

#[test]
#[should_panic]
fn wrong_row_length_panics() {
    // 31 elements is not a whole Q4_0 block.
    vec_dot(GgmlType::Q4_0, &[0u8; 18], &[0.0; 31]);
}

// ---------------------------------------------------------------------------------------------
// SIMD kernels (AVX2 on x86_64, simd128 on wasm32) against the scalar reference. The default
// kernels are whatever `quant::kernels()` reports; on a machine without SIMD these compare the
// scalar kernels with themselves.
// ---------------------------------------------------------------------------------------------

/// Tolerance of a SIMD dot against the scalar one: both are f32 sums of the same products in a
/// different order (plus ≤ 1 ulp per weight from fused multiply-adds).
fn assert_close_scalar(what: &str, got: f32, want: f32, w: &[f32], x: &[f32]) {
    let (_, mag) = ref_dot(w, x);
    let tol = 2e-6 * mag + 1e-30;
    assert!(
        ((got - want) as f64).abs() <= tol,
        "{what}: SIMD {got} vs scalar {want} (tolerance {tol})"
    );
}

/// Random but valid blocks of `ty` for `n` elements: random bytes, with every f16 scale set to a
/// finite value of moderate size (the scale positions depend on the layout).
fn random_row(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    };
    let bytes = ty.row_bytes(n as u64).unwrap() as usize;
    let mut v: Vec<u8> = (0..bytes).map(|_| next() as u8).collect();
    let f16 = |x: f32| half::f16::from_f32(x).to_le_bytes();
    let scale = |next: &mut dyn FnMut() -> u32| f16((next() % 2000) as f32 / 1000.0 - 1.0);
    let bs = ty.type_size();
    let scale_offsets: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        GgmlType::F16 | GgmlType::BF16 => {
            // Every element is a float: make them all finite.
            for e in v.chunks_exact_mut(2) {
                let val = (next() % 2000) as f32 / 500.0 - 2.0;
                let b = if ty == GgmlType::F16 {
                    half::f16::from_f32(val).to_le_bytes()
                } else {
                    ((val.to_bits() >> 16) as u16).to_le_bytes()
                };
                e.copy_from_slice(&b);
            }
            &[]
        }
        GgmlType::F32 => {
            for e in v.chunks_exact_mut(4) {
                let val = (next() % 2000) as f32 / 500.0 - 2.0;
                e.copy_from_slice(&val.to_le_bytes());
            }
            &[]
        }
    };
    for blk in v.chunks_exact_mut(bs) {
        for &o in scale_offsets {
            let b = scale(&mut next);
            blk[o..o + 2].copy_from_slice(&b);
        }
    }
    v
}

/// Compare SIMD `vec_dot` / `matvec` / `matmul` with the scalar reference on one matrix, and
/// check that `matmul` is bit-identical to `matvec` per token.
fn check_simd_vs_scalar(name: &str, ty: GgmlType, raw: &[u8], rows: usize, cols: usize) {
    let rb = raw.len() / rows.max(1);
    let mut wf = vec![0f32; rows * cols];
    dequantize(ty, raw, &mut wf);
    let x = random_x(cols, 11);
    let mut mv = vec![f32::NAN; rows];
    matvec(ty, raw, &x, &mut mv);
    let mut mv_ref = vec![f32::NAN; rows];
    reference::matvec(ty, raw, &x, &mut mv_ref);
    for r in 0..rows {
        let w = &wf[r * cols..(r + 1) * cols];
        let d = vec_dot(ty, &raw[r * rb..(r + 1) * rb], &x);
        let d_ref = reference::vec_dot(ty, &raw[r * rb..(r + 1) * rb], &x);
        assert_eq!(d.to_bits(), mv[r].to_bits(), "{name}: matvec != vec_dot");
        assert_close_scalar(&format!("{name} row {r}"), d, d_ref, w, &x);
        assert_close_scalar(&format!("{name} matvec row {r}"), mv[r], mv_ref[r], w, &x);
    }
    for n_tok in [2usize, 3, 5] {
        let x = random_x(n_tok * cols, 200 + n_tok as u64);
        let mut out = vec![f32::NAN; n_tok * rows];
        matmul(ty, raw, cols, &x, n_tok, &mut out);
        let mut out_ref = vec![f32::NAN; n_tok * rows];
        reference::matmul(ty, raw, cols, &x, n_tok, &mut out_ref);
        for t in 0..n_tok {
            let xt = &x[t * cols..(t + 1) * cols];
            let mut one = vec![f32::NAN; rows];
            matvec(ty, raw, xt, &mut one);
            for r in 0..rows {
                let got = out[t * rows + r];
                assert_eq!(
                    got.to_bits(),
                    one[r].to_bits(),
                    "{name} n_tok={n_tok} t={t} r={r}: matmul {got} vs matvec {}",
                    one[r]
                );
                let w = &wf[r * cols..(r + 1) * cols];
                assert_close_scalar(
                    &format!("{name} matmul n_tok={n_tok} t={t} r={r}"),
                    got,
                    out_ref[t * rows + r],
                    w,
                    xt,
                );
            }
        }
    }
}

#[test]
fn simd_kernels_match_scalar_on_fixtures() {
    eprintln!("kernels: {}", quant::kernels());
    for f in load_fixtures() {
        check_simd_vs_scalar(&f.name, f.ty, &f.raw, f.rows, f.cols);
    }
}

#[test]
fn simd_kernels_match_scalar_on_random_rows() {
    for ty in GgmlType::ALL {
        let bs = ty.block_size();
        // Several lengths: one block, a few blocks, and for float types partial 32-chunks.
        let mut lens = vec![bs, 3 * bs, 8 * bs];
        if bs == 1 {
            lens.extend([1, 7, 31, 33, 100, 577]);
        }
        for (i, &cols) in lens.iter().enumerate() {
            let rows = 5;
            let raw = random_row(ty, rows * cols, 1000 + i as u64);
            check_simd_vs_scalar(
                &format!("{} random cols={cols}", ty.name()),
                ty,
                &raw,
                rows,
                cols,
            );
        }
    }
}

/// 8-bit activations: each chunk of `x` (32 values, or 256 where `q8_block` says so) is rounded
/// to multiples of `d = max|x| / 127`, so the error of a dot is at most `Σ_chunks d/2 · Σ|w|`,
/// plus the f16 rounding of `d` for the 32-element types (llama.cpp's `block_q8_0`/`block_q8_1`,
/// ≤ 2^-11 relative); and one product of many tokens equals the products of one token each, bit
/// for bit (the 512-bit batch kernel and the 256-bit single-token one sum in the same order).
fn check_q8(name: &str, ty: GgmlType, raw: &[u8], rows: usize, cols: usize) {
    // 21 tokens: every register tile shape (16, 8 and 4 tokens) plus a single token.
    check_q8_x(name, ty, raw, rows, cols, &random_x(21 * cols, 77));
}

fn check_q8_x(name: &str, ty: GgmlType, raw: &[u8], rows: usize, cols: usize, x: &[f32]) {
    let mut wf = vec![0f32; rows * cols];
    dequantize(ty, raw, &mut wf);
    let n_tok = x.len() / cols;
    let qb = quant::q8_block(ty);
    let mut out = vec![f32::NAN; n_tok * rows];
    matmul_act(Activations::Q8, ty, raw, cols, x, n_tok, &mut out);
    for t in 0..n_tok {
        let xt = &x[t * cols..(t + 1) * cols];
        let mut one = vec![f32::NAN; rows];
        matmul_act(Activations::Q8, ty, raw, cols, xt, 1, &mut one);
        for r in 0..rows {
            let got = out[t * rows + r];
            let w = &wf[r * cols..(r + 1) * cols];
            let (want, mag) = ref_dot(w, xt);
            // Every kernel family, 512-bit batches included: the same bits as one token alone
            // (a conversation's reused cache must equal a recompute).
            assert_eq!(
                got.to_bits(),
                one[r].to_bits(),
                "{name} q8 ({}): batch {got} vs single token {}",
                quant::q8_isa(),
                one[r]
            );
            let mut bound = 1e-3 * mag + 1e-30;
            if cols.is_multiple_of(qb) {
                for (wc, xc) in w.chunks_exact(qb).zip(xt.chunks_exact(qb)) {
                    let d = xc.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
                    bound += 0.5 * d * wc.iter().map(|v| v.abs() as f64).sum::<f64>();
                }
            }
            assert!(
                (got as f64 - want).abs() <= bound,
                "{name} q8 t={t} r={r}: got {got}, want {want} (bound {bound})"
            );
        }
    }
}

/// Held by the tests that run 8-bit kernels: one of them switches the kernel family
/// process-wide (`set_q8_isa`), and tests run in parallel threads.
static Q8_ISA_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn q8_activations_within_quantization_error() {
    let _isa = Q8_ISA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for f in load_fixtures() {
        check_q8(&f.name, f.ty, &f.raw, f.rows, f.cols);
    }
    for ty in GgmlType::ALL {
        let cols = 4 * ty.block_size().max(32);
        let raw = random_row(ty, 4 * cols, 4242);
        check_q8(&format!("{} random", ty.name()), ty, &raw, 4, cols);
    }
}

/// Every 8-bit kernel family this CPU has: AVX-VNNI (`vpdpbusd`) and plain AVX2 (`maddubs` +
/// `madd`) compute the same integers in the same order, so the same floats; each family (the
/// 512-bit one too) passes the quantization-error bound and gives a row the same result in a
/// register block of rows and alone (7 rows = one 4-row block + three single rows).
#[test]
fn q8_kernel_families_agree_and_rows_do_not_depend_on_blocks() {
    let _isa = Q8_ISA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let isas = quant::q8_isas();
    eprintln!("8-bit kernel families here: {isas:?}");
    for ty in GgmlType::ALL {
        let cols = 4 * ty.block_size().max(32);
        if !quant::uses_q8(Activations::Q8, ty, cols) {
            continue;
        }
        let rows = 7;
        let rb = ty.row_bytes(cols as u64).unwrap() as usize;
        let raw = random_row(ty, rows * cols, 99);
        let x = random_x(cols, 5);
        let mut results = Vec::new();
        for &isa in isas {
            quant::set_q8_isa(isa);
            assert_eq!(quant::q8_isa(), isa);
            let name = format!("{} random [{isa}]", ty.name());
            check_q8(&name, ty, &raw, rows, cols);
            let mut all = vec![f32::NAN; rows];
            matmul_act(Activations::Q8, ty, &raw, cols, &x, 1, &mut all);
            for r in 0..rows {
                let mut one = [f32::NAN];
                let row = &raw[r * rb..(r + 1) * rb];
                matmul_act(Activations::Q8, ty, row, cols, &x, 1, &mut one);
                assert_eq!(one[0].to_bits(), all[r].to_bits(), "{name} row {r}: alone");
            }
            results.push(all);
        }
        quant::set_q8_isa("best");
        if results.len() >= 2 {
            assert_eq!(results[0], results[1], "{}: avx2 vs avxvnni", ty.name());
        }
    }
}

/// The K-quants with activations quantized per 256-block (AVX-512 VNNI here, else the
/// per-32 kernels): activations with outliers, where one scale per 256 values costs precision,
/// still land within that format's error bound; on every tile shape; and a batch equals its
/// tokens one by one (checked inside `check_q8_x`).
#[test]
fn q8_k_quants_with_block_scales_within_quantization_error() {
    let _isa = Q8_ISA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for ty in [GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        eprintln!(
            "{}: activations per {} share a scale",
            ty.name(),
            quant::q8_block(ty)
        );
        for cols in [256, 1536] {
            let rows = 5;
            let raw = random_row(ty, rows * cols, 7 + cols as u64);
            // 37 tokens = 2 x 16 + 4 + 1; every 97th value an outlier (x 20), some tokens zero.
            let mut x = random_x(37 * cols, 3);
            for (i, v) in x.iter_mut().enumerate() {
                if i % 97 == 0 {
                    *v *= 20.0;
                }
            }
            x[5 * cols..6 * cols].fill(0.0);
            check_q8_x(&format!("{} x{cols}", ty.name()), ty, &raw, rows, cols, &x);
        }
    }
}

/// The vectorized activation quantizer gives the portable one's bytes and scales.
#[test]
fn q8_quantizer_simd_matches_portable() {
    let x = random_x(32 * 40, 8);
    let (mut a, mut b) = (quant::Q8Acts::default(), quant::Q8Acts::default());
    a.quantize(&x);
    b.quantize_portable(&x);
    assert_eq!(a.q, b.q);
    assert_eq!(a.d, b.d);
    assert_eq!(a.d16, b.d16);
    assert_eq!(a.s16, b.s16);
    // The per-256-block format too (1280 values = 5 blocks).
    a.quantize_k(&x);
    b.quantize_k_portable(&x);
    assert_eq!(a.kq, b.kq);
    assert_eq!(a.kd, b.kd);
    assert_eq!(a.kb, b.kb);
    assert_eq!((a.kq.len(), a.q.len()), (x.len(), 0));
    for (c, (sa, sb)) in a.s.iter().zip(&b.s).enumerate() {
        let mag: f32 = x[32 * c..32 * c + 32].iter().map(|v| v.abs()).sum();
        assert!((sa - sb).abs() <= 1e-6 * mag, "chunk {c}: sum {sa} vs {sb}");
    }
    // An all-zero chunk quantizes to zeros with scale 0 (no division by zero).
    a.quantize(&[0.0; 32]);
    assert!(a.q.iter().all(|&q| q == 0) && a.d == [0.0]);
    a.quantize_k(&[0.0; 256]);
    assert!(a.kq.iter().all(|&q| q == 0) && a.kd == [0.0] && a.kb == [0.0; 16]);
}
