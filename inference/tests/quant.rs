//! Quantized kernels against independent fixtures.
//!
//! `tests/fixtures/quant/` is produced by `scripts/make-quant-fixtures.py`: raw ggml blocks taken
//! from a real GGUF model (or random valid blocks) plus the f32 values that the PyPI `gguf`
//! package's `gguf.quants.dequantize` computes from them.

use std::path::PathBuf;

use inference::quant::{dequantize, matmul, matvec, vec_dot, GgmlType};

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
