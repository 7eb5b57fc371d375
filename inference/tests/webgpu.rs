//! The WebGPU backend against the CPU reference: every matvec / dequant kernel on random blocks and
//! on real tensors, the binding-size split, and whole-model fidelity (rules of
//! `tests/data/golden/README.md`, as in `fidelity.rs`). Needs a WebGPU adapter (lavapipe:
//! `apt-get install mesa-vulkan-drivers`); without one every test FAILS with that message.
#![cfg(all(feature = "webgpu", not(target_arch = "wasm32")))]

mod common;

use std::rc::Rc;

use common::*;
use inference::backend::webgpu::{self, GpuDevice, GpuOptions};
use inference::backend::{BackendPref, Output, Want};
use inference::engine::{block_on, Session, SessionOptions};
use inference::loader::{LoadOptions, LoadedModel};
use inference::model::Model;
use inference::quant::{self, Activations, GgmlType};
use inference::sampler::argmax;

fn device(opts: &GpuOptions) -> GpuDevice {
    match pollster::block_on(GpuDevice::new(opts)) {
        Ok(d) => d,
        Err(e) => panic!(
            "no WebGPU adapter for the GPU tests: {e}\n(install mesa-vulkan-drivers for lavapipe, or set VK_ICD_FILENAMES)"
        ),
    }
}

/// `model` (on the host) uploaded to the GPU as well.
fn gpu_model(model: &Rc<Model>, opts: &GpuOptions) -> LoadedModel {
    let dev = device(opts);
    eprintln!("adapter: {}", dev.adapter_info());
    block_on(LoadedModel::gpu_copy(model.clone(), dev, opts.clone())).expect("weights upload")
}

/// A session on the GPU with a cache of `n_ctx` positions.
fn gpu_session(gm: &LoadedModel, n_ctx: usize) -> Session {
    let opts = SessionOptions {
        n_ctx,
        ..Default::default()
    };
    let s = Session::new(gm, &opts).expect("GPU session");
    assert!(s.backend().gpu().is_some());
    s
}

/// Evaluate `tokens` and return the greedy next token.
fn argmax_of(s: &mut Session, tokens: &[u32]) -> inference::Result<u32> {
    match block_on(s.eval(tokens, Want::Argmax))? {
        Output::Token(t) => Ok(t),
        other => panic!("not a token: {other:?}"),
    }
}

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// Random but valid blocks: random quant bits, small finite scales in the f16 fields.
fn random_rows(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let nb = rows * cols / ty.block_size();
    let ts = ty.type_size();
    let mut out = Vec::with_capacity(nb * ts);
    for _ in 0..nb {
        let mut b: Vec<u8> = (0..ts).map(|_| rng.next() as u8).collect();
        let halves: &[usize] = match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q6_K => &[208],
            _ => &[],
        };
        for &o in halves {
            b[o..o + 2].copy_from_slice(&f16_bytes(rng.f() * 0.05));
        }
        match ty {
            GgmlType::F32 => b.copy_from_slice(&rng.f().to_le_bytes()),
            GgmlType::F16 => b.copy_from_slice(&f16_bytes(rng.f())),
            GgmlType::BF16 => b.copy_from_slice(&half::bf16::from_f32(rng.f()).to_le_bytes()),
            _ => {}
        }
        out.extend_from_slice(&b);
    }
    out
}

/// CPU reference: y (n, rows) = W · x, from `quant::dequantize`, summed in f64.
fn reference_matvec(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &[u8],
    x: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let rb = w.len() / rows;
    let mut y = vec![0f32; n * rows];
    let mut mag = vec![0f32; n * rows];
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        quant::dequantize(ty, &w[r * rb..(r + 1) * rb], &mut row);
        for t in 0..n {
            let xs = &x[t * cols..(t + 1) * cols];
            let s: f64 = row.iter().zip(xs).map(|(&a, &b)| a as f64 * b as f64).sum();
            let m: f64 = row
                .iter()
                .zip(xs)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            y[t * rows + r] = s as f32;
            mag[t * rows + r] = m as f32;
        }
    }
    (y, mag)
}

#[allow(clippy::too_many_arguments)]
fn check_matvec(
    dev: &GpuDevice,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &[u8],
    n: usize,
    rng: &mut Rng,
    what: &str,
) {
    let x: Vec<f32> = (0..n * cols).map(|_| rng.f()).collect();
    let got = pollster::block_on(webgpu::matvec(dev, ty, rows, cols, w, &x, n))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let (want, mag) = reference_matvec(ty, rows, cols, w, &x, n);
    for i in 0..want.len() {
        let tol = 1e-5 * mag[i] + 1e-5;
        assert!(
            (got[i] - want[i]).abs() <= tol,
            "{what} {}: y[{i}] = {} vs CPU {} (tolerance {tol})",
            ty.name(),
            got[i],
            want[i]
        );
    }
    // The CPU dot kernel agrees with the exact reference too (same tolerance scale).
    let rb = w.len() / rows;
    for r in [0, rows - 1] {
        let d = quant::vec_dot(ty, &w[r * rb..(r + 1) * rb], &x[..cols]);
        assert!(
            (d - want[r]).abs() <= 1e-3 * mag[r] + 1e-4,
            "{what} {}: vec_dot row {r} = {d} vs {}",
            ty.name(),
            want[r]
        );
    }
}

#[test]
fn matvec_every_type_on_random_blocks() {
    let dev = device(&GpuOptions::default());
    let mut rng = Rng(7);
    for ty in GgmlType::ALL {
        let cols = 512;
        let rows = 37;
        let w = random_rows(ty, rows, cols, &mut rng);
        check_matvec(&dev, ty, rows, cols, &w, 1, &mut rng, "random n=1");
        check_matvec(&dev, ty, rows, cols, &w, 11, &mut rng, "random n=11");
        // several 32-token tiles, the last one partial
        check_matvec(&dev, ty, rows, cols, &w, 45, &mut rng, "random n=45");
    }
}

/// Rows of `w` dequantized, as f64.
fn dequantized(ty: GgmlType, rows: usize, cols: usize, w: &[u8]) -> Vec<Vec<f64>> {
    let rb = w.len() / rows;
    let mut row = vec![0f32; cols];
    (0..rows)
        .map(|r| {
            quant::dequantize(ty, &w[r * rb..(r + 1) * rb], &mut row);
            row.iter().map(|&v| v as f64).collect()
        })
        .collect()
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

fn gelu(v: f64) -> f64 {
    let a = (0.797_884_6 * (v + 0.044_715 * v * v * v)).clamp(-15.0, 15.0);
    0.5 * v * (1.0 + a.tanh())
}

/// Each fused product (q·k·v-like concat of three types with the RMSNorm and biases, gated
/// gate·up with SiLU and GELU, up·act, the residual add with the next norm's input) of every
/// weight type, one token and a batch, against the dequantized weights in f64.
#[test]
fn fused_products_every_type_against_the_cpu() {
    use webgpu::{Fuse, FusedMatrix};
    fn matrix(ty: GgmlType, rows: usize, cols: usize, data: &[u8]) -> FusedMatrix<'_> {
        FusedMatrix {
            ty,
            rows,
            cols,
            data,
        }
    }
    let dev = device(&GpuOptions::default());
    let mut rng = Rng(23);
    let all = GgmlType::ALL;
    let cols = 512;
    let eps = 1e-5f32;
    for (i, &a) in all.iter().enumerate() {
        let types = [a, all[(i + 3) % all.len()], all[(i + 7) % all.len()]];
        for n in [1usize, 11, 45] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.f()).collect();
            let res: Vec<f32> = (0..n * cols).map(|_| rng.f() * 3.0).collect();
            let inv: Vec<f64> = (0..n)
                .map(|t| {
                    let r = &res[t * cols..(t + 1) * cols];
                    let ss: f64 = r.iter().map(|&v| v as f64 * v as f64).sum();
                    1.0 / (ss / cols as f64 + eps as f64).sqrt()
                })
                .collect();
            // (value, Σ|w·x|) of row r of `w` with token t's x
            let dot = |w: &[Vec<f64>], r: usize, t: usize| -> (f64, f64) {
                let xs = &x[t * cols..(t + 1) * cols];
                w[r].iter().zip(xs).fold((0.0, 0.0), |(s, m), (&a, &b)| {
                    (s + a * b as f64, m + (a * b as f64).abs())
                })
            };
            let what = |mode: &str| format!("{mode} {:?} n={n}", types.map(|t| t.name()));
            let base = Fuse {
                eps,
                res_scale: 1.0,
                ..Fuse::default()
            };

            // concat of three types, norm, bias
            let rows = [40usize, 12, 12];
            let ws: Vec<Vec<u8>> = (0..3)
                .map(|s| random_rows(types[s], rows[s], cols, &mut rng))
                .collect();
            let mats: Vec<FusedMatrix> = (0..3)
                .map(|s| matrix(types[s], rows[s], cols, &ws[s]))
                .collect();
            let total: usize = rows.iter().sum();
            let bias: Vec<f32> = (0..total).map(|_| rng.f()).collect();
            let f = Fuse { norm: true, ..base };
            let (y, _) = pollster::block_on(webgpu::fused_matvec(
                &dev,
                &mats,
                &x,
                Some(&res),
                Some(&bias),
                None,
                f,
                n,
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", what("concat")));
            let dq: Vec<Vec<Vec<f64>>> = (0..3)
                .map(|s| dequantized(types[s], rows[s], cols, &ws[s]))
                .collect();
            for t in 0..n {
                let mut r0 = 0;
                for s in 0..3 {
                    for r in 0..rows[s] {
                        let (v, mag) = dot(&dq[s], r, t);
                        let want = v * inv[t] + bias[r0 + r] as f64;
                        let got = y[t * total + r0 + r] as f64;
                        let tol = 1e-5 * mag * inv[t] + 1e-5;
                        assert!(
                            (got - want).abs() <= tol,
                            "{} token {t} segment {s} row {r}: {got} vs {want}",
                            what("concat")
                        );
                    }
                    r0 += rows[s];
                }
            }

            // gated gate·up, norm, bias, SiLU and GELU
            let rows = 37;
            let wg = random_rows(types[0], rows, cols, &mut rng);
            let wu = random_rows(types[1], rows, cols, &mut rng);
            let mats = [
                matrix(types[0], rows, cols, &wg),
                matrix(types[1], rows, cols, &wu),
            ];
            let (dg, du) = (
                dequantized(types[0], rows, cols, &wg),
                dequantized(types[1], rows, cols, &wu),
            );
            let bias: Vec<f32> = (0..2 * rows).map(|_| rng.f()).collect();
            for use_gelu in [false, true] {
                let f = Fuse {
                    norm: true,
                    gated: true,
                    gelu: use_gelu,
                    ..base
                };
                let (y, _) = pollster::block_on(webgpu::fused_matvec(
                    &dev,
                    &mats,
                    &x,
                    Some(&res),
                    Some(&bias),
                    None,
                    f,
                    n,
                ))
                .unwrap_or_else(|e| panic!("{}: {e}", what("gated")));
                for t in 0..n {
                    for r in 0..rows {
                        let ((g, mg), (u, mu)) = (dot(&dg, r, t), dot(&du, r, t));
                        let g = g * inv[t] + bias[r] as f64;
                        let u = u * inv[t] + bias[rows + r] as f64;
                        let act = if use_gelu { gelu(g) } else { silu(g) };
                        let want = act * u;
                        let got = y[t * rows + r] as f64;
                        let tol = 1e-5
                            * (mg * inv[t] * (1.0 + u.abs()) + mu * inv[t] * (1.0 + act.abs()))
                            + 1e-5;
                        assert!(
                            (got - want).abs() <= tol,
                            "{} gelu={use_gelu} token {t} row {r}: {got} vs {want}",
                            what("gated")
                        );
                    }
                }
            }

            // up·act without a norm
            let rows = 29;
            let w = random_rows(types[2], rows, cols, &mut rng);
            let mats = [matrix(types[2], rows, cols, &w)];
            let dw = dequantized(types[2], rows, cols, &w);
            let f = Fuse { act: true, ..base };
            let (y, _) = pollster::block_on(webgpu::fused_matvec(
                &dev, &mats, &x, None, None, None, f, n,
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", what("act")));
            for t in 0..n {
                for r in 0..rows {
                    let (v, mag) = dot(&dw, r, t);
                    let (want, got) = (silu(v), y[t * rows + r] as f64);
                    assert!(
                        (got - want).abs() <= 1e-5 * mag + 1e-5,
                        "{} token {t} row {r}: {got} vs {want}",
                        what("act")
                    );
                }
            }

            // residual add (× 0.5) and the next norm's input
            let rows = 96;
            let w = random_rows(types[0], rows, cols, &mut rng);
            let mats = [matrix(types[0], rows, cols, &w)];
            let dw = dequantized(types[0], rows, cols, &w);
            let res0: Vec<f32> = (0..n * rows).map(|_| rng.f()).collect();
            let nw: Vec<f32> = (0..rows).map(|_| rng.f()).collect();
            let bias: Vec<f32> = (0..rows).map(|_| rng.f()).collect();
            let f = Fuse {
                resid: true,
                res_scale: 0.5,
                ..base
            };
            let (y, res1) = pollster::block_on(webgpu::fused_matvec(
                &dev,
                &mats,
                &x,
                Some(&res0),
                Some(&bias),
                Some(&nw),
                f,
                n,
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", what("residual")));
            for t in 0..n {
                for r in 0..rows {
                    let (v, mag) = dot(&dw, r, t);
                    let i = t * rows + r;
                    let want = res0[i] as f64 + (v + bias[r] as f64) * 0.5;
                    let tol = 1e-5 * mag + 1e-5;
                    assert!(
                        (res1[i] as f64 - want).abs() <= tol,
                        "{} token {t} row {r}: residual {} vs {want}",
                        what("residual"),
                        res1[i]
                    );
                    let want_y = res1[i] as f64 * nw[r] as f64;
                    assert!(
                        (y[i] as f64 - want_y).abs() <= 1e-6 * want_y.abs() + 1e-7,
                        "{} token {t} row {r}: next input {} vs {want_y}",
                        what("residual"),
                        y[i]
                    );
                }
            }
        }
    }
}

#[test]
fn embedding_lookup_every_type_equals_dequantize() {
    let dev = device(&GpuOptions::default());
    let mut rng = Rng(11);
    for ty in GgmlType::ALL {
        let (rows, cols) = (19, 256);
        let w = random_rows(ty, rows, cols, &mut rng);
        let ids = [3u32, 0, 18, 7, 7];
        let got = pollster::block_on(webgpu::embed_rows(&dev, ty, rows, cols, &w, &ids))
            .unwrap_or_else(|e| panic!("{}: {e}", ty.name()));
        let rb = w.len() / rows;
        let mut want = vec![0f32; cols];
        for (t, &id) in ids.iter().enumerate() {
            let id = id as usize;
            quant::dequantize(ty, &w[id * rb..(id + 1) * rb], &mut want);
            for c in 0..cols {
                let g = got[t * cols + c];
                assert!(
                    (g - want[c]).abs() <= 1e-6 * want[c].abs() + 1e-7,
                    "{}: row {id} col {c}: {g} vs {}",
                    ty.name(),
                    want[c]
                );
            }
        }
    }
}

#[test]
fn matvec_on_real_tensors_of_every_quant_type() {
    let model = Model::load_file(&model_path("smollm2-4layer-mixed")).expect("model loads");
    let dev = device(&GpuOptions::default());
    let mut rng = Rng(3);
    let w = &model.weights;
    let mut seen = std::collections::BTreeSet::new();
    let mut all = vec![&w.tok_embd];
    for l in &w.layers {
        all.extend(l.matrices());
    }
    all.extend(w.output.as_ref());
    for t in all {
        if !seen.insert(t.ty.name()) {
            continue;
        }
        // at most 512 rows of each (the embedding has 49152)
        let rows = t.rows.min(512);
        let data = &t.data[..rows * t.row_bytes()];
        check_matvec(&dev, t.ty, rows, t.cols, data, 1, &mut rng, &t.name);
        check_matvec(&dev, t.ty, rows, t.cols, data, 3, &mut rng, &t.name);
    }
    eprintln!("real tensors checked: {seen:?}");
    for want in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "F16", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(
            seen.contains(want),
            "the 4-layer model has no {want} tensor?"
        );
    }
}

#[test]
fn tensors_larger_than_the_binding_limit_are_split_by_rows() {
    let mut rng = Rng(5);
    let small = device(&GpuOptions {
        max_binding_bytes: Some(4096),
        ..Default::default()
    });
    assert_eq!(small.max_binding_bytes(), 4096);
    for ty in [GgmlType::Q4_0, GgmlType::Q6_K, GgmlType::F16] {
        let (rows, cols) = (300, 256);
        let w = random_rows(ty, rows, cols, &mut rng);
        let m = webgpu::GpuMatrix::upload(&small, "w", ty, rows, cols, &w).expect("upload");
        assert!(m.n_chunks() > 1, "{}: not split", ty.name());
        check_matvec(&small, ty, rows, cols, &w, 2, &mut rng, "split");
        let ids = [0u32, 299, 150];
        let got = pollster::block_on(webgpu::embed_rows(&small, ty, rows, cols, &w, &ids)).unwrap();
        let rb = w.len() / rows;
        let mut want = vec![0f32; cols];
        for (t, &id) in ids.iter().enumerate() {
            quant::dequantize(ty, &w[id as usize * rb..(id as usize + 1) * rb], &mut want);
            assert_eq!(
                &got[t * cols..(t + 1) * cols],
                &want[..],
                "split embedding row {id}"
            );
        }
    }
}

#[test]
fn shader_errors_and_bad_input_are_errors_not_panics() {
    let dev = device(&GpuOptions::default());
    let e = pollster::block_on(dev.compile("broken", "fn main( {", "main")).unwrap_err();
    assert!(e.to_string().contains("failed to compile"), "{e}");
    let e = pollster::block_on(dev.compile(
        "no_entry",
        "@compute @workgroup_size(1) fn main() {}",
        "other",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("GPU"), "{e}");
    // a row that is not a whole number of blocks
    let e = webgpu::GpuMatrix::upload(&dev, "w", GgmlType::Q4_0, 2, 48, &[0u8; 54]).err();
    assert!(e.is_some());
}

/// A device lost in the middle of a conversation (destroyed on purpose here, as a driver reset
/// or the browser would) makes the next step a clear error — not a panic, not a hang — and every
/// later use of that device too, including a new session.
#[test]
fn a_lost_device_is_an_error_not_a_panic_or_a_hang() {
    let model = load_model("smollm2-4layer-mixed");
    let opts = GpuOptions::default();
    let gm = gpu_model(&model, &opts);
    let mut s = gpu_session(&gm, 64);
    let t = argmax_of(&mut s, &[1, 2, 3, 4]).expect("prefill before the loss");
    gm.gpu.as_ref().expect("GPU model").device().destroy();
    let e = argmax_of(&mut s, &[t]).expect_err("a step on a lost device");
    assert!(e.to_string().contains("GPU device lost"), "{e}");
    let e = argmax_of(&mut s, &[t]).expect_err("a second step");
    assert!(e.to_string().contains("GPU device lost"), "{e}");
    let again =
        Session::new(&gm, &SessionOptions::default()).and_then(|mut s| argmax_of(&mut s, &[1, 2]));
    let e = again.expect_err("a new session on a lost device");
    assert!(e.to_string().contains("GPU device lost"), "{e}");
}

// ----------------------------------------------------------------------------------------------
// Whole models
// ----------------------------------------------------------------------------------------------

/// Load `name` straight onto the GPU: matrices uploaded tensor by tensor as the file is read,
/// as the browser does (the loader every front end uses).
fn streamed_gpu_model(name: &str, opts: &GpuOptions) -> LoadedModel {
    let lo = LoadOptions {
        backend: BackendPref::WebGpu,
        gpu: opts.clone(),
    };
    let m = LoadedModel::load_file(&model_path(name), &lo).expect("model streams onto the GPU");
    assert!(m.choice.is_gpu(), "not on the GPU: {:?}", m.choice);
    m
}

fn check_model(name: &str, opts: &GpuOptions) -> Report {
    let gm = gpu_model(&load_model(name), opts);
    check_gpu(name, &gm)
}

fn check_gpu(name: &str, gm: &LoadedModel) -> Report {
    check_gpu_within(name, gm, 0.05)
}

/// The golden rules, and top-20 logits within `tol` of the exact reference.
fn check_gpu_within(name: &str, gm: &LoadedModel, tol: f32) -> Report {
    let rep = check_golden(name, gm.model.hp.n_vocab, Some(tol), |seq| {
        let mut s = gpu_session(gm, seq.len());
        logits(&mut s, seq, true)
    });
    eprintln!(
        "GPU {name}: {} forced positions agree; top-20 max |Δ| llama.cpp {:.3}, reference {:.2e}",
        rep.forced, rep.worst_llama, rep.worst_ref
    );
    rep
}

#[test]
fn fidelity_smollm2_4layer_mixed_every_quant_type() {
    check_model("smollm2-4layer-mixed", &GpuOptions::default());
}

/// The optional f16 KV cache (where the adapter has `shader-f16`; lavapipe has it): the
/// fidelity rules hold within 0.1 of the exact reference, decoding agrees with the f32 cache,
/// and the cache takes half the bytes.
#[test]
fn fidelity_with_an_f16_kv_cache() {
    let model = load_model("smollm2-4layer-mixed");
    let opts = GpuOptions {
        f16_kv: true,
        ..Default::default()
    };
    let gm = gpu_model(&model, &opts);
    let dev = gm.gpu.as_ref().expect("GPU model").device();
    if !dev.adapter_has_shader_f16() {
        eprintln!(
            "{}: no shader-f16, the f16 KV cache cannot be tested here",
            dev.adapter_info()
        );
        return;
    }
    assert!(
        dev.has_f16_kv(),
        "shader-f16 is there but the cache is not f16"
    );
    check_gpu_within("smollm2-4layer-mixed", &gm, 0.1);
    let f32_gm = gpu_model(&model, &GpuOptions::default());
    let toks: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314, 253, 1345, 30, 2];
    let (mut a, mut b) = (gpu_session(&gm, 64), gpu_session(&f32_gm, 64));
    let d = logits(&mut a, &toks, true)
        .iter()
        .zip(&logits(&mut b, &toks, true))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("f16 vs f32 KV cache, 10 positions: max |Δlogit| {d}");
    assert!(d < 0.1, "f16 vs f32 KV cache: max |Δlogit| {d}");
    let (sa, sb) = (
        a.backend().gpu().expect("GPU").stats(),
        b.backend().gpu().expect("GPU").stats(),
    );
    assert_eq!(sa.kv_cache_bytes * 2, sb.kv_cache_bytes);
}

/// SmolLM2 streamed onto the GPU (no host copy of its matrices): the fidelity rules hold, the
/// GPU holds exactly the file's tensor bytes, and the CPU engine refuses the GPU-only model.
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn fidelity_smollm2_135m_q4_1_streamed_onto_the_gpu() {
    let opts = GpuOptions::default();
    let gm = streamed_gpu_model("smollm2-135m-q4_1", &opts);
    let model = &gm.model;
    assert!(model.offloaded);
    assert_eq!(
        model.weights.matrix_bytes(),
        0,
        "matrices stayed on the host"
    );
    let g = gm.gpu.as_ref().expect("GPU model");
    assert_eq!(g.buffer_bytes(), g.tensor_bytes());
    let err = Session::cpu(model.clone(), &SessionOptions::default())
        .err()
        .expect("CPU session on a GPU-only model");
    assert!(err.to_string().contains("GPU only"), "{err}");
    check_gpu("smollm2-135m-q4_1", &gm);
    // decoding: the fused graph's dispatches, one submit, 4 bytes read back
    let mut s = gpu_session(&gm, 64);
    let first = argmax_of(&mut s, &[1, 2, 3]).expect("prefill");
    argmax_of(&mut s, &[first]).expect("decode");
    let st = s.backend().gpu().expect("GPU session").stats();
    let n_layer = model.hp.n_layer;
    eprintln!("SmolLM2 135M on the GPU: {st:?}");
    assert!(
        st.dispatches_per_token <= 6 * n_layer + 8,
        "{} dispatches per token for {n_layer} layers",
        st.dispatches_per_token
    );
    assert_eq!((st.submits_per_token, st.readback_bytes_per_token), (1, 4));
}

/// Qwen2.5 1.5B (Q/K/V biases, 28 layers, a 151936-token Q6_K output split across bindings),
/// streamed onto the GPU like the browser does: the fidelity rules of the golden README on a
/// software GPU. Too slow for CI on lavapipe (17.5 minutes on this 2-core machine, about 1.5
/// TFLOP of work), so it runs on demand with the slow tier (`scripts/test-slow.sh`).
#[test]
#[ignore = "slow tier (17 minutes on lavapipe): scripts/test-slow.sh"]
fn fidelity_qwen2_5_1_5b_q4_k_m_streamed_onto_the_gpu() {
    let opts = GpuOptions::default();
    let gm = streamed_gpu_model("qwen2.5-coder-1.5b-q4_k_m", &opts);
    let g = gm.gpu.as_ref().expect("GPU model");
    assert_eq!(g.buffer_bytes(), g.tensor_bytes());
    check_gpu("qwen2.5-coder-1.5b-q4_k_m", &gm);
}

/// Gemma 3: sliding-window layers with their own RoPE base, Q/K norms, post-norms, GeGLU, and a
/// 178 MB token embedding that exceeds lavapipe's 128 MiB binding limit (so it is split).
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn fidelity_gemma3_270m_q4_k_m() {
    check_model("gemma-3-270m-q4_k_m", &GpuOptions::default());
}

/// The same model with the token embedding / lm head split across buffers (4 MiB bindings) and
/// small prefill batches gives the same logits.
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn fidelity_with_forced_split_and_small_batches() {
    let opts = GpuOptions {
        max_binding_bytes: Some(4 << 20),
        max_batch: Some(5),
        ..Default::default()
    };
    let gm = gpu_model(&load_model("smollm2-4layer-mixed"), &opts);
    assert!(
        gm.gpu.as_ref().expect("GPU model").embedding_chunks() > 1,
        "token_embd was not split"
    );
    check_model("smollm2-4layer-mixed", &opts);
}

/// GPU logits equal the CPU engine's; greedy decoding on the GPU (prefill + steps, one submit and
/// 4 bytes per token) picks the argmax of those logits; counters are what the design promises.
/// One token over a long cache: its attention is split across workgroups (flash decoding,
/// three splits at 700 positions) and combined; the logits equal the CPU's.
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn split_attention_over_a_long_cache_matches_the_cpu() {
    let model = load_model("smollm2-4layer-mixed");
    let gm = gpu_model(&model, &GpuOptions::default());
    let mut rng = Rng(5);
    let prompt: Vec<u32> = (0..700).map(|_| 2 + (rng.next() % 4000) as u32).collect();
    let mut cpu = cpu_session(&model, 1024, 2, Activations::F32);
    let mut gpu = gpu_session(&gm, 1024);
    logits(&mut cpu, &prompt, false);
    logits(&mut gpu, &prompt, false);
    let mut worst = 0f32;
    for (i, tok) in [17u32, 400, 3000, 5].into_iter().enumerate() {
        let want = logits(&mut cpu, &[tok], false);
        let got = logits(&mut gpu, &[tok], false);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d < 2e-2,
            "decode step {i} at position {}: max |Δ| {d}",
            700 + i
        );
        worst = worst.max(d);
    }
    eprintln!("split attention at 700..704 positions: max |Δ| vs the CPU {worst}");
    let st = gpu.backend().gpu().expect("GPU session").stats();
    let n_layer = model.hp.n_layer;
    // one combine per layer on top of the fused graph
    assert!(
        st.dispatches_per_token > 7 * n_layer && st.dispatches_per_token <= 7 * n_layer + 8,
        "{} dispatches per token for {n_layer} layers",
        st.dispatches_per_token
    );
}

#[test]
fn gpu_matches_cpu_and_decodes_with_one_submit_per_token() {
    let model = load_model("smollm2-4layer-mixed");
    let gm = gpu_model(&model, &GpuOptions::default());
    let toks: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314, 253, 1345, 30, 2];
    let nv = model.hp.n_vocab;
    let mut cpu = cpu_session(&model, 64, 2, Activations::F32);
    let want = logits(&mut cpu, &toks, true);
    let mut s = gpu_session(&gm, 64);
    let got = logits(&mut s, &toks, true);
    let d = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("GPU vs CPU logits, 10 positions: max |Δ| {d}");
    assert!(d < 2e-2, "GPU vs CPU max |Δ| {d}");

    // Greedy decode, token by token, against CPU argmax of the same sequence.
    let mut s = gpu_session(&gm, 64);
    let mut next = argmax_of(&mut s, &toks).unwrap();
    assert_eq!(next, argmax(&want[(toks.len() - 1) * nv..]));
    let mut seq = toks.clone();
    for _ in 0..8 {
        seq.push(next);
        let l = logits(&mut cpu, &[next], false);
        let gpu_next = argmax_of(&mut s, &[next]).unwrap();
        let cpu_next = argmax(&l);
        let mut sorted = l.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 0.05 {
            assert_eq!(gpu_next, cpu_next, "after {seq:?}");
        }
        next = gpu_next;
    }
    let st = s.backend().gpu().expect("GPU session").stats();
    eprintln!("{st:?}");
    assert_eq!(st.submits_per_token, 1);
    assert_eq!(st.readback_bytes_per_token, 4);
    // the fused graph: six dispatches per layer, at most eight more (embedding, the first
    // layer's scaled input, the head)
    let n_layer = gm.model.hp.n_layer;
    assert!(
        st.dispatches_per_token > 6 * n_layer && st.dispatches_per_token <= 6 * n_layer + 8,
        "{} dispatches per token for {n_layer} layers",
        st.dispatches_per_token
    );
    assert!(
        st.buffer_bytes >= st.tensor_bytes * 99 / 100
            && st.buffer_bytes <= st.tensor_bytes * 101 / 100,
        "buffer bytes {} vs tensor bytes {}",
        st.buffer_bytes,
        st.tensor_bytes
    );
    assert_eq!(
        st.kv_cache_bytes,
        (2 * 4 * 64 * model.hp.kv_dim() * 4) as u64
    );
}

/// Structured output on the GPU: a JSON-schema constraint reads the logits back (the mask is
/// applied on the CPU), greedy and sampled replies parse and have the schema's keys, greedy
/// equals the CPU engine's constrained reply, and an unconstrained reply afterwards is back to
/// one 4-byte readback per token.
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn constrained_generation_on_the_gpu() {
    use inference::chat::ChatMessage;
    use inference::conversation::ChatPrompt;
    use inference::engine::GenerateParams;
    use inference::grammar::{Grammar, TokenTable};
    use inference::sampler::SamplerParams;
    use std::sync::Arc;

    let model = load_model("smollm2-135m-q4_1");
    let gm = streamed_gpu_model("smollm2-135m-q4_1", &GpuOptions::default());
    let table = Arc::new(TokenTable::new(&model.tokenizer));
    let schema = serde_json::json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}}, "required": ["name", "age"]});
    let grammar = Arc::new(Grammar::json_schema(&schema).expect("schema"));
    let msgs = [
        ChatMessage::system("You answer with JSON only."),
        ChatMessage::user("Give me a person (name, age) as JSON."),
    ];
    let p = ChatPrompt::new(&model, &msgs).expect("prompt");
    let mut sink = |_: Option<u32>, _: &str| true;
    let run = |s: &mut Session, temperature: f32| {
        let params = GenerateParams {
            max_tokens: 60,
            sampler: SamplerParams {
                temperature,
                seed: 11,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut sink = |_: Option<u32>, _: &str| true;
        block_on(s.generate_constrained(
            &p.tokens,
            &params,
            Some(grammar.matcher(&table)),
            &mut sink,
        ))
        .expect("constrained generation")
    };
    let mut cpu = cpu_session(&model, 256, 1, Activations::F32);
    let want = run(&mut cpu, 0.0);
    for temperature in [0.0, 0.8] {
        let mut s = gpu_session(&gm, 256);
        let got = run(&mut s, temperature);
        eprintln!(
            "GPU, temperature {temperature}: {:?} {}",
            got.stop, got.text
        );
        let v: serde_json::Value = serde_json::from_str(&got.text).expect("GPU reply is JSON");
        assert!(v["name"].is_string() && v["age"].is_i64(), "{v}");
        if temperature == 0.0 {
            assert_eq!(
                got.text, want.text,
                "GPU and CPU constrained greedy replies"
            );
        }
        let st = s.backend().gpu().expect("GPU").stats();
        assert!(
            st.readback_bytes_per_token >= 4 * model.hp.n_vocab,
            "{st:?}"
        );
        // Unconstrained again: the GPU samples, one 4-byte readback per token.
        let free = GenerateParams {
            max_tokens: 4,
            ignore_eos: true,
            ..Default::default()
        };
        block_on(s.generate(&[2], &free, &mut sink)).expect("free generation");
        assert_eq!(
            s.backend()
                .gpu()
                .expect("GPU")
                .stats()
                .readback_bytes_per_token,
            4
        );
    }
}

// ----------------------------------------------------------------------------------------------
// Conversations
// ----------------------------------------------------------------------------------------------

/// The scripted 6-turn chat (`common/chat.rs`) on the GPU: each turn's tokens equal a fresh GPU
/// session's given the whole history, only the new tokens are evaluated, Regenerate evaluates
/// one token, an edited turn 2 reuses the prefix before it.
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn conversation_on_the_gpu_reuses_the_cache() {
    let gm = streamed_gpu_model("smollm2-135m-q4_1", &GpuOptions::default());
    let mut s = gpu_session(&gm, 512);
    common::chat::run_script(&gm.model, &mut s, || gpu_session(&gm, 512), 8);
}

/// The context shift on the GPU: a long chat on a 256-token context is shifted and goes on (the
/// 4-layer SmolLM2, for lavapipe's speed).
#[test]
fn context_shift_on_the_gpu() {
    let gm = gpu_model(&load_model("smollm2-4layer-mixed"), &GpuOptions::default());
    let mut s = gpu_session(&gm, 256);
    common::chat::check_context_shift(&gm.model, &mut s, false);
}

/// The GPU's shift computes what llama.cpp's does (SmolLM2 135M against its golden data,
/// `common::chat::check_shift_golden`).
#[test]
#[ignore = "slow tier (minutes on lavapipe): scripts/test-slow.sh"]
fn context_shift_on_the_gpu_matches_llama_cpp() {
    let gm = streamed_gpu_model("smollm2-135m-q4_1", &GpuOptions::default());
    let mut s = gpu_session(&gm, 512);
    common::chat::check_shift_golden("smollm2-135m-q4_1", &mut s);
}

/// The GPU's shift moves and rotates the cache exactly as the CPU's: every layer's keys and
/// values after a shift agree with the CPU engine's (same model, same tokens).
#[test]
fn gpu_shift_equals_cpu_shift() {
    let model = load_model("smollm2-4layer-mixed");
    // the portable f32 cache, and the f16 one where the adapter has shader-f16 (f16's own
    // rounding: 2⁻¹¹ relative)
    for (f16_kv, tol) in [(false, 1e-3f32), (true, 2e-3)] {
        let opts = GpuOptions {
            f16_kv,
            ..Default::default()
        };
        let gm = gpu_model(&model, &opts);
        let dev = gm.gpu.as_ref().expect("GPU model").device();
        if f16_kv && !dev.adapter_has_shader_f16() {
            continue;
        }
        assert_eq!(dev.has_f16_kv(), f16_kv);
        let toks: Vec<u32> = (1..60).map(|i| (i * 37) % 4000 + 10).collect();
        let mut cpu = cpu_session(&model, 64, 1, Activations::F32);
        let mut gpu = gpu_session(&gm, 64);
        logits(&mut cpu, &toks, false);
        logits(&mut gpu, &toks, false);
        for s in [&mut cpu, &mut gpu] {
            block_on(s.shift(4, 20)).expect("shift");
            assert_eq!(s.len(), toks.len() - 20);
        }
        let c = cpu.backend().cpu().expect("CPU").kv();
        let n = cpu.len() * model.hp.kv_dim();
        let mut worst = 0f32;
        for il in 0..model.hp.n_layer {
            let (ck, cv) = c.layer(il);
            let g = gpu.backend().gpu().expect("GPU");
            let (gk, gv) = block_on(g.read_kv(il)).expect("readback");
            for (a, b) in ck[..n].iter().zip(&gk).chain(cv[..n].iter().zip(&gv)) {
                worst = worst.max((a - b).abs() / (1.0 + a.abs()));
            }
        }
        eprintln!("GPU (f16 KV: {f16_kv}) vs CPU KV cache after a shift: max rel |Δ| {worst:.2e}");
        assert!(
            worst < tol,
            "GPU (f16 KV: {f16_kv}) and CPU caches differ after a shift: {worst}"
        );
        // A snapshot's round trip (read, write back) leaves the cache as it was.
        let g = gpu.backend_mut().gpu_mut().expect("GPU");
        let before = block_on(g.read_kv(1)).expect("readback");
        g.write_kv(1, &before.0, &before.1).expect("write back");
        assert_eq!(block_on(g.read_kv(1)).expect("readback"), before);
        // And the next token's logits agree.
        let a = logits(&mut cpu, &[42], false);
        let b = logits(&mut gpu, &[42], false);
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            d < 2e-2,
            "logits after a shift (f16 KV: {f16_kv}): GPU vs CPU {d}"
        );
    }
}

// ----------------------------------------------------------------------------------------------
// Tiny random-weight models of every architecture against llama.cpp (as tests/architectures.rs
// on the CPU; models from common/tiny.rs, golden logits in tests/data/arch/). Appended block: it
// shares nothing with the tests above but `gpu_model` / `gpu_session`.
// ----------------------------------------------------------------------------------------------

/// Max |Δlogit| of the GPU against llama.cpp on the tiny models (F32 weights): the CPU's bound.
const TINY_GPU_TOL: f32 = tiny::TOL;

fn tiny_gpu_check(name: &str) {
    let bytes = tiny::tiny_model(name);
    let model = Rc::new(
        Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("tiny {name} does not load: {e}")),
    );
    assert_eq!(
        model.hp.arch.name(),
        tiny::arch_of(name),
        "{name}: architecture"
    );
    let gm = gpu_model(&model, &GpuOptions::default());
    let w = tiny::check_logits(name, model.hp.n_vocab, TINY_GPU_TOL, |toks| {
        let mut s = gpu_session(&gm, tiny::N_CTX);
        logits(&mut s, toks, true)
    });
    eprintln!(
        "{name} (GPU): {} positions agree; max |Δ| {:.2e} (seq {}, pos {}, token {})",
        w.positions, w.delta, w.at.0, w.at.1, w.at.2
    );
}

macro_rules! tiny_gpu_tests {
    ($($test:ident => $name:literal $(, $ignore:literal)?;)*) => {$(
        #[test]
        $(#[ignore = $ignore])?
        fn $test() {
            tiny_gpu_check($name);
        }
    )*};
}

tiny_gpu_tests! {
    tiny_llama_gpu => "llama";
    tiny_qwen2_gpu => "qwen2";
    tiny_gemma3_gpu => "gemma3";
    tiny_qwen3_gpu => "qwen3";
    tiny_gemma2_gpu => "gemma2";
    tiny_phi3_short_factors_gpu => "phi3";
    tiny_phi3_long_factors_gpu => "phi3-long";
    tiny_phi3_partial_rope_gpu => "phi3-partial";
    tiny_smollm3_gpu => "smollm3";
    tiny_granite_gpu => "granite";
    tiny_olmo2_gpu => "olmo2";
    tiny_starcoder2_gpu => "starcoder2";
    tiny_mistral3_gpu => "mistral3";
    tiny_gemma4_gpu => "gemma4", "stretch: not implemented";
    tiny_qwen35_gpu => "qwen35", "stretch: not implemented";
}
