//! The CPU forward pass: embed → N × [norm, attention + KV cache, norm, FFN] → norm → lm head.
//!
//! Activations are f32 throughout by default (no activation quantization), so this path is also
//! the exact reference the WebGPU kernels are checked against; [`Cpu::set_activations`] with
//! [`Activations::Q8`] quantizes the inputs of the matrix products to 8 bits like llama.cpp
//! (faster, logits within ~1 of exact math). A batch of tokens (prefill) goes through every
//! weight matrix once as a matrix × matrix product; decoding is the same code with one token.

use crate::error::{Error, Result};
use crate::model::{Arch, HParams, KvCache, LayerWeights, QTensor, Weights};
#[cfg(target_arch = "wasm32")]
use crate::quant;
use crate::quant::Activations;

#[cfg(not(target_arch = "wasm32"))]
use super::pool::Pool;

/// wasm32 runs single-threaded: the "pool" is the calling thread.
#[cfg(target_arch = "wasm32")]
struct Pool;

#[cfg(target_arch = "wasm32")]
impl Pool {
    fn new(_threads: usize) -> Pool {
        Pool
    }

    fn matmul(&self, act: Activations, w: &QTensor, x: &[f32], n: usize, out: &mut [f32]) {
        quant::matmul_act(act, w.ty, &w.data, w.cols, x, n, out);
    }

    fn matmul_many(
        &self,
        act: Activations,
        prods: &mut [(&QTensor, &mut [f32])],
        x: &[f32],
        n: usize,
    ) {
        for (w, out) in prods.iter_mut() {
            self.matmul(act, w, x, n, out);
        }
    }
}

/// The pool and the activation precision, passed down the forward pass.
struct Par<'a> {
    pool: &'a Pool,
    act: Activations,
}

impl Par<'_> {
    fn matmul(&self, w: &QTensor, x: &[f32], n: usize, out: &mut [f32]) {
        self.pool.matmul(self.act, w, x, n, out);
    }

    /// Products of one input as one pool job (q, k, v; gate, up).
    fn matmul_many(&self, prods: &mut [(&QTensor, &mut [f32])], x: &[f32], n: usize) {
        self.pool.matmul_many(self.act, prods, x, n);
    }
}

/// Which positions of a batch need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token of the batch (prefill before generation, decoding).
    Last,
    /// Every token of the batch (teacher forcing, `chord logits --all-positions`).
    All,
}

/// Reusable activation buffers, grown to the largest batch seen.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,      // (n, n_embd)      residual stream
    h: Vec<f32>,      // (n, n_embd)      normed input of a block
    q: Vec<f32>,      // (n, n_head * head_dim)
    k: Vec<f32>,      // (n, n_head_kv * head_dim)
    v: Vec<f32>,      // (n, n_head_kv * head_dim)
    att: Vec<f32>,    // (n, n_head * head_dim)
    o: Vec<f32>,      // (n, n_embd)      attention / FFN output
    gate: Vec<f32>,   // (n, n_ff)
    up: Vec<f32>,     // (n, n_ff)
    scores: Vec<f32>, // (n_ctx)         one head's attention scores
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// The CPU backend: a worker pool (native) and its scratch space.
pub struct Cpu {
    threads: usize,
    act: Activations,
    pool: Pool,
    scratch: Scratch,
}

impl Cpu {
    pub fn new(threads: usize) -> Self {
        let threads = if cfg!(target_arch = "wasm32") {
            1
        } else {
            threads.max(1)
        };
        Cpu {
            threads,
            act: Activations::F32,
            pool: Pool::new(threads),
            scratch: Scratch::default(),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Activation precision of the matrix products ([`Activations::F32`] unless set).
    pub fn activations(&self) -> Activations {
        self.act
    }

    pub fn set_activations(&mut self, act: Activations) {
        self.act = act;
    }

    /// Run `tokens` (positions `kv.len ..`) through the model, append their K/V to the cache and
    /// return logits: (n_vocab) for [`Logits::Last`], (n_tokens, n_vocab) for [`Logits::All`].
    pub fn forward(
        &mut self,
        hp: &HParams,
        w: &Weights,
        kv: &mut KvCache,
        tokens: &[u32],
        want: Logits,
    ) -> Result<Vec<f32>> {
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Invalid("no tokens to evaluate".into()));
        }
        let start = kv.len;
        if start + n > kv.n_ctx {
            return Err(Error::Invalid(format!(
                "context is full: {} + {n} tokens exceed the {}-token context",
                start, kv.n_ctx
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary ({} tokens)",
                hp.n_vocab
            )));
        }
        let pool = Par {
            pool: &self.pool,
            act: self.act,
        };
        let pool = &pool;
        let s = &mut self.scratch;
        let e = hp.n_embd;

        // ---- embeddings: dequantize the rows of token_embd (n_vocab, n_embd) ----
        let x = grow(&mut s.x, n * e);
        for (t, &tok) in tokens.iter().enumerate() {
            w.tok_embd
                .dequantize_row(tok as usize, &mut x[t * e..(t + 1) * e]);
        }
        if hp.arch == Arch::Gemma3 {
            let scale = (e as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }

        for (il, lw) in w.layers.iter().enumerate() {
            layer(hp, w, lw, il, kv, start, n, s, pool);
        }
        kv.len = start + n;

        // ---- output: norm, lm head, bias, soft-capping ----
        let rows: std::ops::Range<usize> = match want {
            Logits::Last => n - 1..n,
            Logits::All => 0..n,
        };
        let m = rows.len();
        let h = grow(&mut s.h, m * e);
        for (i, t) in rows.enumerate() {
            rms_norm(
                &s.x[t * e..(t + 1) * e],
                &w.output_norm,
                hp.norm_eps,
                &mut h[i * e..(i + 1) * e],
            );
        }
        let head = w.lm_head();
        let mut logits = vec![0f32; m * hp.n_vocab];
        pool.matmul(head, &s.h[..m * e], m, &mut logits);
        for row in logits.chunks_exact_mut(hp.n_vocab) {
            if let Some(b) = &w.output_bias {
                row.iter_mut().zip(b).for_each(|(l, b)| *l += b);
            }
            if let Some(cap) = hp.final_logit_softcap {
                row.iter_mut().for_each(|l| *l = (*l / cap).tanh() * cap);
            }
        }
        Ok(logits)
    }
}

/// One transformer block over a batch of `n` tokens at positions `start..start + n`.
#[allow(clippy::too_many_arguments)]
fn layer(
    hp: &HParams,
    w: &Weights,
    lw: &LayerWeights,
    il: usize,
    kv: &mut KvCache,
    start: usize,
    n: usize,
    s: &mut Scratch,
    pool: &Par,
) {
    let (e, qd, kvd, hd, ff) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.head_dim, hp.n_ff);
    let eps = hp.norm_eps;

    // ---- attention ----
    let h = grow(&mut s.h, n * e);
    for t in 0..n {
        rms_norm(
            &s.x[t * e..(t + 1) * e],
            &lw.attn_norm,
            eps,
            &mut h[t * e..(t + 1) * e],
        );
    }
    let h = &s.h[..n * e];
    grow(&mut s.q, n * qd);
    grow(&mut s.k, n * kvd);
    grow(&mut s.v, n * kvd);
    pool.matmul_many(
        &mut [
            (&lw.wq, &mut s.q[..n * qd]),
            (&lw.wk, &mut s.k[..n * kvd]),
            (&lw.wv, &mut s.v[..n * kvd]),
        ],
        h,
        n,
    );
    add_bias(&mut s.q[..n * qd], lw.bq.as_deref());
    add_bias(&mut s.k[..n * kvd], lw.bk.as_deref());
    add_bias(&mut s.v[..n * kvd], lw.bv.as_deref());
    if let Some(qn) = &lw.q_norm {
        for head in s.q[..n * qd].chunks_exact_mut(hd) {
            rms_norm_inplace(head, qn, eps);
        }
    }
    if let Some(kn) = &lw.k_norm {
        for head in s.k[..n * kvd].chunks_exact_mut(hd) {
            rms_norm_inplace(head, kn, eps);
        }
    }
    let (base, freq_scale) = hp.rope_for_layer(il);
    let rope = Rope::new(hd, base, freq_scale, hp.rope_neox, w.rope_freqs.as_deref());
    for t in 0..n {
        let pos = start + t;
        for head in s.q[t * qd..(t + 1) * qd].chunks_exact_mut(hd) {
            rope.apply(head, pos);
        }
        for head in s.k[t * kvd..(t + 1) * kvd].chunks_exact_mut(hd) {
            rope.apply(head, pos);
        }
    }
    if hp.q_scale != 1.0 {
        s.q[..n * qd].iter_mut().for_each(|x| *x *= hp.q_scale);
    }
    {
        let (kc, vc) = kv.layer_mut(il);
        kc[start * kvd..(start + n) * kvd].copy_from_slice(&s.k[..n * kvd]);
        vc[start * kvd..(start + n) * kvd].copy_from_slice(&s.v[..n * kvd]);
    }
    let (kc, vc) = kv.layer(il);
    let window = if hp.swa_layers[il] { hp.n_swa } else { 0 };
    let att = grow(&mut s.att, n * qd);
    let scores = grow(&mut s.scores, start + n);
    let group = hp.n_head / hp.n_head_kv;
    for t in 0..n {
        let pos = start + t;
        // Causal mask; a sliding-window layer also masks keys with pos - j >= window.
        let lo = if window > 0 {
            (pos + 1).saturating_sub(window)
        } else {
            0
        };
        for hh in 0..hp.n_head {
            let kvh = hh / group;
            let qh = &s.q[t * qd + hh * hd..t * qd + (hh + 1) * hd];
            let out = &mut att[t * qd + hh * hd..t * qd + (hh + 1) * hd];
            attend(
                qh,
                kc,
                vc,
                kvd,
                kvh * hd,
                lo,
                pos,
                hp.kq_scale,
                &mut scores[..pos + 1],
                out,
            );
        }
    }
    let o = grow(&mut s.o, n * e);
    pool.matmul(&lw.wo, &s.att[..n * qd], n, o);
    if let Some(pn) = &lw.post_attn_norm {
        for row in o.chunks_exact_mut(e) {
            rms_norm_inplace(row, pn, eps);
        }
    }
    s.x[..n * e]
        .iter_mut()
        .zip(&s.o[..n * e])
        .for_each(|(x, a)| *x += a);

    // ---- feed-forward ----
    let h = grow(&mut s.h, n * e);
    for t in 0..n {
        rms_norm(
            &s.x[t * e..(t + 1) * e],
            &lw.ffn_norm,
            eps,
            &mut h[t * e..(t + 1) * e],
        );
    }
    let h = &s.h[..n * e];
    grow(&mut s.gate, n * ff);
    grow(&mut s.up, n * ff);
    pool.matmul_many(
        &mut [
            (&lw.w_gate, &mut s.gate[..n * ff]),
            (&lw.w_up, &mut s.up[..n * ff]),
        ],
        h,
        n,
    );
    let gelu = hp.arch == Arch::Gemma3;
    for (g, u) in s.gate[..n * ff].iter_mut().zip(&s.up[..n * ff]) {
        *g = if gelu { gelu_tanh(*g) } else { silu(*g) } * u;
    }
    let o = grow(&mut s.o, n * e);
    pool.matmul(&lw.w_down, &s.gate[..n * ff], n, o);
    if let Some(pn) = &lw.post_ffn_norm {
        for row in o.chunks_exact_mut(e) {
            rms_norm_inplace(row, pn, eps);
        }
    }
    s.x[..n * e]
        .iter_mut()
        .zip(&s.o[..n * e])
        .for_each(|(x, f)| *x += f);
}

// ----------------------------------------------------------------------------------------------
// Ops
// ----------------------------------------------------------------------------------------------

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

fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
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

/// Rotary position embedding for one head of `head_dim` values.
pub struct Rope {
    /// base^(-2i/d) × freq_scale / freq_factor_i, i in 0..d/2, precomputed once per layer.
    inv_freq: Vec<f32>,
    neox: bool,
}

impl Rope {
    pub fn new(
        head_dim: usize,
        base: f32,
        freq_scale: f32,
        neox: bool,
        factors: Option<&[f32]>,
    ) -> Self {
        let half = head_dim / 2;
        let inv_freq = (0..half)
            .map(|i| {
                let f = (base as f64).powf(-2.0 * i as f64 / head_dim as f64) * freq_scale as f64;
                (f / factors.map_or(1.0, |ff| ff[i] as f64)) as f32
            })
            .collect();
        Rope { inv_freq, neox }
    }

    /// Rotate `x` (head_dim) for position `pos`: adjacent pairs (2i, 2i+1) for the original
    /// ordering, (i, i + d/2) for NeoX.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let half = self.inv_freq.len();
        for (i, &f) in self.inv_freq.iter().enumerate() {
            let theta = pos as f32 * f;
            let (sin, cos) = theta.sin_cos();
            let (a, b) = if self.neox {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (x[a], x[b]);
            x[a] = x0 * cos - x1 * sin;
            x[b] = x0 * sin + x1 * cos;
        }
    }
}

/// One query head against keys `lo..=pos` of one KV head: softmax(q·k × scale) · v → `out`.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    kc: &[f32], // (n_ctx, kv_dim)
    vc: &[f32], // (n_ctx, kv_dim)
    kv_dim: usize,
    off: usize,
    lo: usize,
    pos: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = q.len();
    let mut max = f32::NEG_INFINITY;
    for j in lo..=pos {
        let k = &kc[j * kv_dim + off..j * kv_dim + off + hd];
        let s = dot(q, k) * scale;
        scores[j] = s;
        max = max.max(s);
    }
    let mut sum = 0f32;
    for s in &mut scores[lo..=pos] {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for j in lo..=pos {
        let p = scores[j] * inv;
        let v = &vc[j * kv_dim + off..j * kv_dim + off + hd];
        out.iter_mut().zip(v).for_each(|(o, &v)| *o += p * v);
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: independent chains the compiler turns into SIMD lanes.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
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
        let q = [1.0, 2.0];
        let kc = [0.5, 0.5];
        let vc = [3.0, -4.0];
        let mut sc = [0.0];
        let mut out = [0.0; 2];
        attend(&q, &kc, &vc, 2, 0, 0, 0, 1.0, &mut sc, &mut out);
        assert_eq!(out, [3.0, -4.0]);
    }
}
