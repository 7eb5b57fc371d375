//! The CPU backend: embed → N × [norm, attention + KV cache, norm, FFN] → norm → lm head.
//!
//! Activations are f32 throughout by default (no activation quantization), so this path is also
//! the exact reference the WebGPU kernels are checked against; [`Cpu::set_activations`] with
//! [`Activations::Q8`] quantizes the inputs of the matrix products to 8 bits like llama.cpp
//! (faster, logits within ~1 of exact math). A batch of tokens (prefill) goes through every
//! weight matrix once as a matrix × matrix product; decoding is the same code with one token, and
//! gives bit for bit the same results (every row is one dot product, whatever the batch).
//!
//! [`CpuSession`] is the [`Backend`]: the model, the pool and a [`KvCache`].

mod ops;

use std::rc::Rc;

use super::{check_shift, check_tokens, Backend, BackendKind, Output, Want};
use crate::error::{Error, Result};
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
use crate::model::kv_cache::{self, KvRows};
use crate::model::{Activation, HParams, KvCache, LayerWeights, Model, Norm, QTensor, Weights};
use crate::quant::Activations;
use crate::sampler::argmax;

use ops::{add_bias, layer_norm};
pub(crate) use ops::{attention, AttnShape};
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub(crate) use ops::{attention_unit, attention_units, QUERY_BLOCK};
pub use ops::{gelu_tanh, rms_norm, rms_norm_inplace, silu, Rope};
pub(crate) use ops::{GateAct, Prod};

/// Native, and the browser's threaded build (wasm32 + `atomics`): the worker pool.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
use super::pool::Pool;

/// Prompt tokens evaluated per batch during prefill (bounds activation memory for long prompts).
pub const PREFILL_BATCH: usize = 256;

/// The default wasm32 build (no shared memory) runs single-threaded: the "pool" is the calling
/// thread.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
struct Pool;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
impl Pool {
    fn shared(_threads: usize) -> Rc<Pool> {
        Rc::new(Pool)
    }

    fn threads(&self) -> usize {
        1
    }

    fn run(&self, act: Activations, prods: &mut [Prod], x: &[f32], n: usize) {
        for p in prods.iter_mut() {
            p.run_here(act, x, n);
        }
    }

    fn attention(
        &self,
        a: &AttnShape,
        q: &[f32],
        (k, v): (KvRows, KvRows),
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        attention(a, q, &kv_cache::read(&k), &kv_cache::read(&v), scratch, out);
    }
}

/// The pool and the activation precision, passed down the forward pass.
struct Par<'a> {
    pool: &'a Pool,
    act: Activations,
}

impl Par<'_> {
    fn matmul(&self, w: &QTensor, x: &[f32], n: usize, out: &mut [f32]) {
        self.run(&mut [Prod::plain(w, out)], x, n);
    }

    /// Products of one input as one pool job (q, k, v).
    fn run(&self, prods: &mut [Prod], x: &[f32], n: usize) {
        self.pool.run(self.act, prods, x, n);
    }

    /// `out = act(x · gateᵀ + b_gate) · (x · upᵀ + b_up)` as one pool job: each chunk of rows
    /// computes both products and the activation step (`up_out`: the up product where one
    /// thread computes it whole).
    #[allow(clippy::too_many_arguments)]
    fn matmul_gated(
        &self,
        gate: &QTensor,
        up: &QTensor,
        ga: &GateAct,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        up_out: &mut [f32],
    ) {
        let gated = Some((up, ga, up_out));
        self.run(
            &mut [Prod {
                w: gate,
                out,
                gated,
            }],
            x,
            n,
        );
    }
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
    scores: Vec<f32>, // (block rows, keys) attention scores of a block of queries
    rope: Vec<f32>,   // (n_rot / 2, 2)   RoPE's cos, sin at one position
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// The CPU backend: a worker pool and its scratch space.
pub struct Cpu {
    threads: usize,
    act: Activations,
    pool: Rc<Pool>,
    scratch: Scratch,
}

impl Cpu {
    /// `threads` in all (the caller included). Natively each `Cpu` has its own pool; in the
    /// browser's threaded build the engine worker's sessions share one ([`Pool::shared`]: its Web
    /// Workers are started once), and the default wasm32 build runs on one thread whatever is
    /// asked. [`Cpu::threads`] is what runs (a worker that cannot be started is not counted).
    pub fn new(threads: usize) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let pool = Rc::new(Pool::new(threads.max(1)));
        #[cfg(target_arch = "wasm32")]
        let pool = Pool::shared(threads);
        Cpu {
            threads: pool.threads(),
            act: Activations::F32,
            pool,
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

    /// Run `tokens` (positions `kv.len ..`) through the model and append their K/V to the
    /// cache; returns logits: none for [`Want::Nothing`], (n_vocab) of the last token for
    /// [`Want::Last`] and [`Want::Argmax`], (n_tokens, n_vocab) for [`Want::All`]. `ropes`: each
    /// layer's ([`layer_ropes`]).
    pub fn forward(
        &mut self,
        hp: &HParams,
        w: &Weights,
        ropes: &[Option<Rope>],
        kv: &mut KvCache,
        tokens: &[u32],
        want: Want,
    ) -> Result<Vec<f32>> {
        let n = tokens.len();
        check_tokens(tokens, kv.len, kv.n_ctx, hp.n_vocab)?;
        let start = kv.len;
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
        if hp.embd_scale != 1.0 {
            x.iter_mut().for_each(|v| *v *= hp.embd_scale);
        }

        for (il, lw) in w.layers.iter().enumerate() {
            layer(hp, lw, ropes[il].as_ref(), il, kv, start, n, s, pool);
        }
        kv.len = start + n;

        // ---- output: norm, lm head, bias, soft-capping ----
        let rows: std::ops::Range<usize> = match want {
            Want::Nothing => return Ok(Vec::new()),
            Want::Last | Want::Argmax => n - 1..n,
            Want::All => 0..n,
        };
        let m = rows.len();
        let h = grow(&mut s.h, m * e);
        for (i, t) in rows.enumerate() {
            norm(
                hp,
                &w.output_norm,
                &s.x[t * e..(t + 1) * e],
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
            if hp.logit_scale != 1.0 {
                row.iter_mut().for_each(|l| *l *= hp.logit_scale);
            }
            if let Some(cap) = hp.final_logit_softcap {
                row.iter_mut().for_each(|l| *l = (*l / cap).tanh() * cap);
            }
        }
        Ok(logits)
    }
}

/// The CPU engine on one conversation: the model, a [`Cpu`] and the KV cache.
pub struct CpuSession {
    model: Rc<Model>,
    cpu: Cpu,
    kv: KvCache,
    /// Each layer's RoPE for the cache's size (made once: a rope's frequencies are `powf`s, per
    /// layer and step otherwise).
    ropes: Vec<Option<Rope>>,
}

/// Each layer's RoPE (`None`: a layer without) for a context of `n_ctx` positions.
fn layer_ropes(model: &Model, n_ctx: usize) -> Vec<Option<Rope>> {
    let hp = &model.hp;
    let factors = model.weights.rope_factors(hp, n_ctx);
    (0..hp.n_layer)
        .map(|il| Rope::for_layer(hp, il, factors))
        .collect()
}

impl CpuSession {
    /// A session with a KV cache of `n_ctx` positions (clamped to the training context).
    pub fn new(model: Rc<Model>, n_ctx: usize, threads: usize) -> Result<Self> {
        if model.offloaded {
            return Err(Error::Unsupported(
                "this model's weights were loaded onto the GPU only; load it again for the CPU engine"
                    .into(),
            ));
        }
        let n_ctx = n_ctx.clamp(1, model.hp.n_ctx_train);
        let kv = KvCache::new(&model.hp, n_ctx)?;
        let ropes = layer_ropes(&model, n_ctx);
        Ok(CpuSession {
            model,
            cpu: Cpu::new(threads),
            kv,
            ropes,
        })
    }

    pub fn cpu(&self) -> &Cpu {
        &self.cpu
    }

    pub fn set_activations(&mut self, act: Activations) {
        self.cpu.set_activations(act);
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes()
    }

    /// The cache, (n_layer, n_ctx, kv_dim) keys and values.
    pub fn kv(&self) -> &KvCache {
        &self.kv
    }

    pub fn kv_mut(&mut self) -> &mut KvCache {
        &mut self.kv
    }
}

impl Backend for CpuSession {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn len(&self) -> usize {
        self.kv.len
    }

    fn n_ctx(&self) -> usize {
        self.kv.n_ctx
    }

    fn truncate(&mut self, n: usize) {
        self.kv.len = self.kv.len.min(n);
    }

    async fn forward(&mut self, tokens: &[u32], want: Want) -> Result<Output> {
        let m = &*self.model;
        let batches = tokens.len().div_ceil(PREFILL_BATCH);
        let mut all = Vec::new();
        let mut last = Vec::new();
        for (i, chunk) in tokens.chunks(PREFILL_BATCH).enumerate() {
            let w = match want {
                Want::All => Want::All,
                _ if i + 1 < batches => Want::Nothing,
                w => w,
            };
            let l = self
                .cpu
                .forward(&m.hp, &m.weights, &self.ropes, &mut self.kv, chunk, w)?;
            match want {
                Want::All => all.extend_from_slice(&l),
                _ => last = l,
            }
        }
        let finite = |l: &[f32]| {
            if l.iter().any(|v| v.is_nan()) {
                return Err(Error::Model(
                    "the model computed NaN logits: its weights or settings are broken".into(),
                ));
            }
            Ok(())
        };
        Ok(match want {
            Want::Nothing => Output::Nothing,
            Want::All => Output::Logits(all),
            Want::Last => {
                finite(&last)?;
                Output::Logits(last)
            }
            Want::Argmax => {
                finite(&last)?;
                Output::Token(argmax(&last))
            }
        })
    }

    async fn shift(&mut self, keep: usize, discard: usize) -> Result<()> {
        check_shift(keep, discard, self.kv.len)?;
        let hp = &self.model.hp;
        let ropes = &self.ropes;
        self.kv.shift(keep, discard, |il, row| {
            if let Some(rope) = &ropes[il] {
                for head in row.chunks_exact_mut(hp.head_dim) {
                    rope.rotate(head, -(discard as f32));
                }
            }
        });
        Ok(())
    }
}

/// `out = norm(x)` with the model's norm kind (RMS or LayerNorm with bias).
fn norm(hp: &HParams, n: &Norm, x: &[f32], out: &mut [f32]) {
    match &n.b {
        Some(b) => layer_norm(x, &n.w, b, hp.norm_eps, out),
        None => rms_norm(x, &n.w, hp.norm_eps, out),
    }
}

/// `h = norm(x)` row by row, or a copy of `x` for a block without an input norm (Olmo 2).
fn norm_rows(hp: &HParams, n: Option<&Norm>, x: &[f32], h: &mut [f32]) {
    let e = hp.n_embd;
    match n {
        Some(n) => {
            for (x, h) in x.chunks_exact(e).zip(h.chunks_exact_mut(e)) {
                norm(hp, n, x, h);
            }
        }
        None => h.copy_from_slice(x),
    }
}

/// RMS norm of each `w.len()`-wide piece of `x` (per head, or whole rows).
fn norm_pieces(x: &mut [f32], w: Option<&[f32]>, eps: f32) {
    if let Some(w) = w {
        for piece in x.chunks_exact_mut(w.len()) {
            rms_norm_inplace(piece, w, eps);
        }
    }
}

/// `x += scale · post_norm(o)` (the post-norm where the layer has one).
fn residual(hp: &HParams, x: &mut [f32], o: &mut [f32], post: Option<&[f32]>) {
    norm_pieces(o, post, hp.norm_eps);
    if hp.residual_scale != 1.0 {
        o.iter_mut().for_each(|v| *v *= hp.residual_scale);
    }
    x.iter_mut().zip(o.iter()).for_each(|(x, a)| *x += a);
}

/// One transformer block over a batch of `n` tokens at positions `start..start + n`.
#[allow(clippy::too_many_arguments)]
fn layer(
    hp: &HParams,
    lw: &LayerWeights,
    rope: Option<&Rope>,
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
    norm_rows(hp, lw.attn_norm.as_ref(), &s.x[..n * e], h);
    let h = &s.h[..n * e];
    grow(&mut s.q, n * qd);
    grow(&mut s.k, n * kvd);
    grow(&mut s.v, n * kvd);
    pool.run(
        &mut [
            Prod::plain(&lw.wq, &mut s.q[..n * qd]),
            Prod::plain(&lw.wk, &mut s.k[..n * kvd]),
            Prod::plain(&lw.wv, &mut s.v[..n * kvd]),
        ],
        h,
        n,
    );
    add_bias(&mut s.q[..n * qd], lw.bq.as_deref());
    add_bias(&mut s.k[..n * kvd], lw.bk.as_deref());
    add_bias(&mut s.v[..n * kvd], lw.bv.as_deref());
    norm_pieces(&mut s.q[..n * qd], lw.q_norm.as_deref(), eps);
    norm_pieces(&mut s.k[..n * kvd], lw.k_norm.as_deref(), eps);
    if let Some(rope) = rope {
        for t in 0..n {
            // One table per token for all its q and k heads.
            rope.table_into(start + t, &mut s.rope);
            let heads = s.q[t * qd..(t + 1) * qd].chunks_exact_mut(hd);
            for head in heads.chain(s.k[t * kvd..(t + 1) * kvd].chunks_exact_mut(hd)) {
                rope.apply_table(head, &s.rope);
            }
        }
    }
    if let Some(temp) = hp.attn_temperature {
        for (t, row) in s.q[..n * qd].chunks_exact_mut(qd).enumerate() {
            let m = temp.at(start + t);
            row.iter_mut().for_each(|x| *x *= m);
        }
    }
    if hp.q_scale != 1.0 {
        s.q[..n * qd].iter_mut().for_each(|x| *x *= hp.q_scale);
    }
    {
        let (mut kc, mut vc) = kv.layer_mut(il);
        kc[start * kvd..(start + n) * kvd].copy_from_slice(&s.k[..n * kvd]);
        vc[start * kvd..(start + n) * kvd].copy_from_slice(&s.v[..n * kvd]);
    }
    let shape = AttnShape {
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim: hd,
        window: if hp.swa_layers[il] { hp.n_swa } else { 0 },
        softcap: hp.attn_softcap,
        scale: hp.kq_scale,
        start,
        n,
    };
    let att = grow(&mut s.att, n * qd);
    pool.pool.attention(
        &shape,
        &s.q[..n * qd],
        kv.layer_shared(il),
        &mut s.scores,
        att,
    );
    let o = grow(&mut s.o, n * e);
    pool.matmul(&lw.wo, &s.att[..n * qd], n, o);
    add_bias(o, lw.bo.as_deref());
    residual(hp, &mut s.x[..n * e], o, lw.post_attn_norm.as_deref());

    // ---- feed-forward ----
    let h = grow(&mut s.h, n * e);
    norm_rows(hp, lw.ffn_norm.as_ref(), &s.x[..n * e], h);
    let h = &s.h[..n * e];
    grow(&mut s.gate, n * ff);
    grow(&mut s.up, n * ff);
    let act: fn(f32) -> f32 = match hp.act {
        Activation::Silu => silu,
        Activation::Gelu => gelu_tanh,
    };
    match &lw.w_gate {
        Some(w_gate) => {
            // gate = act(gate + b_gate) · (up + b_up), chunk by chunk on the pool.
            let ga = GateAct {
                act,
                b_gate: lw.b_gate.clone(),
                b_up: lw.b_up.clone(),
            };
            let (gate, up) = (&mut s.gate[..n * ff], &mut s.up[..n * ff]);
            pool.matmul_gated(w_gate, &lw.w_up, &ga, h, n, gate, up);
        }
        None => {
            // A plain MLP: act(up), computed in `gate`.
            pool.matmul(&lw.w_up, h, n, &mut s.gate[..n * ff]);
            add_bias(&mut s.gate[..n * ff], lw.b_up.as_deref());
            s.gate[..n * ff].iter_mut().for_each(|g| *g = act(*g));
        }
    }
    let o = grow(&mut s.o, n * e);
    pool.matmul(&lw.w_down, &s.gate[..n * ff], n, o);
    add_bias(o, lw.b_down.as_deref());
    residual(hp, &mut s.x[..n * e], o, lw.post_ffn_norm.as_deref());
}
