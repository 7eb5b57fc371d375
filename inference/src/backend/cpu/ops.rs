//! The elementwise and attention ops of the CPU forward pass (f32, exact).

use crate::model::QTensor;
use crate::quant::{self, Activations};

/// out = x / sqrt(mean(x²) + eps) * w   (sum in f64, as ggml does)
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let scale = (1.0 / (ss / x.len() as f64 + eps as f64).sqrt()) as f32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let scale = (1.0 / (ss / x.len() as f64 + eps as f64).sqrt()) as f32;
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// out = (x − mean) / sqrt(var + eps) * w + b   (LayerNorm; sums in f64)
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = (1.0 / (var + eps as f64).sqrt()) as f32;
    let mean = mean as f32;
    for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (v - mean) * scale * g + b;
    }
}

pub(crate) fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
        }
    }
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// The gated FFN's elementwise step, `gate = act(gate + b_gate) · (up + b_up)`, on the rows
/// `rows` of both products: `gate` and `up` (n, rows.len()) row-major. The pool applies it to each
/// chunk of rows right after computing them (the activation then runs on every thread); one thread
/// applies it to whole products. Either way each element gets the same operations.
#[derive(Clone)]
pub(crate) struct GateAct {
    pub act: fn(f32) -> f32,
    pub b_gate: Option<Vec<f32>>,
    pub b_up: Option<Vec<f32>>,
}

impl GateAct {
    pub fn apply(&self, rows: std::ops::Range<usize>, gate: &mut [f32], up: &[f32]) {
        let c = rows.len();
        let bg = self.b_gate.as_ref().map(|b| &b[rows.clone()]);
        let bu = self.b_up.as_ref().map(|b| &b[rows.clone()]);
        for (g, u) in gate.chunks_exact_mut(c).zip(up.chunks_exact(c)) {
            for (i, (g, &u)) in g.iter_mut().zip(u).enumerate() {
                let g1 = bg.map_or(*g, |b| *g + b[i]);
                let u1 = bu.map_or(u, |b| u + b[i]);
                *g = (self.act)(g1) * u1;
            }
        }
    }
}

/// A product the caller asks for: `out (n, w.rows) = x · wᵀ`; or, gated, `out = act(x · wᵀ +
/// b_gate) · (x · upᵀ + b_up)` (`up_out` is where one thread puts the up product).
pub(crate) struct Prod<'a> {
    pub w: &'a QTensor,
    pub out: &'a mut [f32],
    pub gated: Option<(&'a QTensor, &'a GateAct, &'a mut [f32])>,
}

impl<'a> Prod<'a> {
    /// A plain product, `out (n, w.rows) = x · wᵀ`.
    pub(crate) fn plain(w: &'a QTensor, out: &'a mut [f32]) -> Self {
        Prod {
            w,
            out,
            gated: None,
        }
    }

    /// The whole product on this thread.
    pub(crate) fn run_here(&mut self, act: Activations, x: &[f32], n: usize) {
        let w = self.w;
        quant::matmul_act(act, w.ty, &w.data, w.cols, x, n, self.out);
        if let Some((up, ga, up_out)) = &mut self.gated {
            quant::matmul_act(act, up.ty, &up.data, up.cols, x, n, up_out);
            ga.apply(0..w.rows, self.out, up_out);
        }
    }
}

pub use crate::model::rope::Rope;

/// Query tokens per block of [`attention`]: a block's queries (× the heads sharing a KV head)
/// meet each key and value while it is in L1.
pub(crate) const QUERY_BLOCK: usize = 16;

/// Where one layer's attention reads and writes, for `n` tokens at positions `start..start + n`.
#[derive(Clone, Copy)]
pub(crate) struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Sliding window (0 = none): a key at j is seen from position p only if p - j < window.
    pub window: usize,
    /// Scores soft-capped as cap · tanh(s / cap) before scaling (Gemma 2).
    pub softcap: Option<f32>,
    pub scale: f32,
    pub start: usize,
    pub n: usize,
}

impl AttnShape {
    /// Output floats per token of one unit ([`attention_units`]): the query heads that share a
    /// KV head × head_dim.
    pub(crate) fn unit_width(&self) -> usize {
        self.n_head / self.n_head_kv * self.head_dim
    }
}

/// softmax(q·k × scale) · v for every query head of `n` tokens against the cache (causal, and
/// windowed where asked): `q`, `out` (n, n_head · head_dim); `kc`, `vc` (n_ctx, n_head_kv ·
/// head_dim). The work is cut into units ([`attention_units`]), each computed by
/// [`attention_unit`]; the CPU pool runs the units of a layer on its threads.
pub(crate) fn attention(
    a: &AttnShape,
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (qd, ghd) = (a.n_head * a.head_dim, a.unit_width());
    for (kvh, t0) in attention_units(a) {
        let o = &mut out[t0 * qd + kvh * ghd..];
        attention_unit(a, q, kc, vc, (kvh, t0), scratch, o, qd);
    }
}

/// The units of work of an attention: (KV head, first token) for every KV head and block of
/// [`QUERY_BLOCK`] tokens. A unit's output is its block's tokens × the KV head's query heads.
pub(crate) fn attention_units(a: &AttnShape) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..a.n_head_kv).flat_map(move |kvh| (0..a.n).step_by(QUERY_BLOCK).map(move |t0| (kvh, t0)))
}

/// One unit of [`attention`]: the query heads of KV head `kvh` (the heads that share it) for
/// tokens `t0 .. t0 + QUERY_BLOCK` (or to `n`). Token `t0 + i`'s outputs for those heads go to
/// `out[i * out_stride ..][.. heads · head_dim]`. The queries are transposed so the SIMD kernels
/// of `quant` score a vector of rows per instruction ([`quant::ATTN_LANES`]: 8 on x86, 4 on
/// wasm) and each key and value is loaded once per unit. Every (query, key) pair gets the same
/// operations in the same order whatever the batch, so a token gets the same bits alone or in
/// a prefill, and on any thread. `scratch` is reused between calls.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_unit(
    a: &AttnShape,
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    (kvh, t0): (usize, usize),
    scratch: &mut Vec<f32>,
    out: &mut [f32],
    out_stride: usize,
) {
    let (hd, g) = (a.head_dim, a.n_head / a.n_head_kv);
    let (qd, kvd) = (a.n_head * hd, a.n_head_kv * hd);
    // Keys visible from position `pos`: lo(pos)..=pos.
    let lo = |pos: usize| {
        if a.window > 0 {
            (pos + 1).saturating_sub(a.window)
        } else {
            0
        }
    };
    let tb = QUERY_BLOCK.min(a.n - t0);
    let rows = tb * g; // row r: token t0 + r / g, head kvh · g + r % g
    let rp = rows.div_ceil(quant::ATTN_LANES) * quant::ATTN_LANES;
    let (first, last) = (lo(a.start + t0), a.start + t0 + tb - 1);
    let width = last + 1 - first;
    // scratch: qt (hd, rp) | scores (width, rp)
    let need = hd * rp + width * rp;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (qt, rest) = scratch.split_at_mut(hd * rp);
    let sc = &mut rest[..width * rp];
    // Row r: its query's offset in `q`, its output's in `out`, its first key and its position.
    let row = |r: usize| {
        let (t, hh) = (t0 + r / g, kvh * g + r % g);
        let pos = a.start + t;
        let oo = (r / g) * out_stride + (r % g) * hd;
        (t * qd + hh * hd, oo, lo(pos), pos)
    };
    qt.fill(0.0);
    for r in 0..rows {
        let (qo, _, _, _) = row(r);
        for (d, &x) in q[qo..qo + hd].iter().enumerate() {
            qt[d * rp + r] = x;
        }
    }
    // Scores of every row and key (masked ones are computed and never read).
    quant::dot_rows(qt, rp, &kc[first * kvd + kvh * hd..], kvd, width, sc);
    if let Some(cap) = a.softcap {
        sc.iter_mut().for_each(|s| *s = (*s / cap).tanh() * cap);
    }
    // Softmax of each row over its keys (`lo..=pos`), in key order.
    let (mut lo_r, mut hi_r) = ([0u32; 8 * QUERY_BLOCK], [0u32; 8 * QUERY_BLOCK]);
    let (mut lo_big, mut hi_big) = (Vec::new(), Vec::new());
    let (lo_r, hi_r): (&mut [u32], &mut [u32]) = if rp <= lo_r.len() {
        (&mut lo_r[..rp], &mut hi_r[..rp])
    } else {
        lo_big.resize(rp, 0);
        hi_big.resize(rp, 0);
        (&mut lo_big, &mut hi_big)
    };
    for r in 0..rp {
        if r < rows {
            let (_, _, l, pos) = row(r);
            (lo_r[r], hi_r[r]) = ((l - first) as u32, (pos - first) as u32);
        } else {
            (lo_r[r], hi_r[r]) = (1, 0); // padding: no keys
        }
    }
    quant::softmax_cols(sc, rp, width, lo_r, hi_r, a.scale);
    // Values: each row's weighted sum, key by key; two rows at once where they see the same
    // keys (the heads of one token).
    let mut r = 0;
    while r < rows {
        let (_, oo, l, pos) = row(r);
        let p = &sc[(l - first) * rp + r..];
        let v = &vc[l * kvd + kvh * hd..];
        match (r + 1 < rows).then(|| row(r + 1)) {
            Some((_, oo1, l1, pos1)) if (l1, pos1) == (l, pos) && oo1 == oo + hd => {
                let (o0, o1) = out[oo..oo + 2 * hd].split_at_mut(hd);
                quant::weighted_sum2(p, rp, v, kvd, pos + 1 - l, o0, o1);
                r += 2;
            }
            _ => {
                quant::weighted_sum(p, rp, v, kvd, pos + 1 - l, &mut out[oo..oo + hd]);
                r += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_orderings_rotate_the_right_pairs() {
        let mut a = vec![1.0, 0.0, 0.0, 0.0];
        Rope::new(4, 10000.0, 1.0, false, None).apply(&mut a, 1);
        // pair (0,1) rotated by 1 rad, pair (2,3) untouched (zero)
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = vec![1.0, 0.0, 0.0, 0.0];
        Rope::new(4, 10000.0, 1.0, true, None).apply(&mut b, 1);
        // NeoX pairs (0,2)
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn attention_of_one_key_returns_its_value() {
        let a = AttnShape {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 2,
            window: 0,
            softcap: None,
            scale: 1.0,
            start: 0,
            n: 1,
        };
        let mut out = [0.0; 2];
        attention(
            &a,
            &[1.0, 2.0],
            &[0.5, 0.5],
            &[3.0, -4.0],
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, [3.0, -4.0]);
    }

    /// A batch of tokens gets exactly what each token gets alone, with grouped heads and a
    /// sliding window.
    #[test]
    fn batched_attention_equals_one_token_at_a_time() {
        let (n_head, n_head_kv, hd, n) = (6, 2, 8, 37);
        let kvd = n_head_kv * hd;
        let val = |i: usize| ((i * 7919) % 101) as f32 / 50.0 - 1.0;
        let q: Vec<f32> = (0..n * n_head * hd).map(val).collect();
        let kc: Vec<f32> = (0..n * kvd).map(|i| val(i + 13)).collect();
        let vc: Vec<f32> = (0..n * kvd).map(|i| val(i + 29)).collect();
        for window in [0, 5] {
            let shape = |start, n| AttnShape {
                n_head,
                n_head_kv,
                head_dim: hd,
                window,
                softcap: None,
                scale: 0.3,
                start,
                n,
            };
            let mut all = vec![0.0; n * n_head * hd];
            attention(&shape(0, n), &q, &kc, &vc, &mut Vec::new(), &mut all);
            let qd = n_head * hd;
            for t in 0..n {
                let mut one = vec![0.0; qd];
                attention(
                    &shape(t, 1),
                    &q[t * qd..(t + 1) * qd],
                    &kc,
                    &vc,
                    &mut Vec::new(),
                    &mut one,
                );
                assert_eq!(one, all[t * qd..(t + 1) * qd], "token {t}, window {window}");
            }
        }
    }
}
