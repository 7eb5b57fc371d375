//! The recorded forward pass: every op (pipeline, bind group, workgroup grid) built once per
//! session, so a forward call only writes a 16-byte step uniform and the token ids, then records
//! the ops into one compute pass. Each layer is composed from [`ops`](super::ops) as its
//! [`LayerPlan`] says: on the fused path six dispatches (q·k·v with the attention norm, RoPE with
//! the cache store, attention, o with the residual add, gate·up·act with the FFN norm, down with
//! the residual add); norms the fused products cannot take (LayerNorm, post-norms) and matrices
//! split across buffers get their own ops.

use super::device::GpuDevice;
use super::fused::FusedKey;
use super::kernels::{MATVEC_NT, MATVEC_RPW};
use super::ops::{self, Fuse, FusedIo, Op, Out};
use super::uniforms::Step;
use super::weights::{GpuLayer, GpuMatrix, GpuModel};
use crate::error::{Error, Result};
use crate::model::{HParams, NormKind, Rope};

/// The workgroup grid of an op, as a function of the batch (n tokens, n_out logit rows).
#[derive(Clone, Copy)]
pub(super) enum Grid {
    /// (n, 1, 1)
    Tokens,
    /// matvec over `rows` for n (or n_out) tokens
    Rows {
        rows: u32,
        out: bool,
    },
    /// one workgroup per row: n·per (or n_out) rows
    NormRows {
        per: u32,
        out: bool,
    },
    /// Attention: (heads, n, splits), splits > 1 only for one token over a long cache
    /// ([`attn_splits`]).
    Attn {
        heads: u32,
        window: u32,
    },
    /// The splits' combination: (heads, 1, 1) when one token's attention was split, else none.
    AttnCombine {
        heads: u32,
        window: u32,
    },
    /// 256-thread elementwise over n·per (or n_out·per) values
    Elems {
        per: u32,
        out: bool,
    },
    /// A fused product: `groups` per NT tokens of a batch, `groups1` for one token.
    Fused {
        groups: u32,
        groups1: u32,
    },
    One,
}

const MAX_X: u32 = 32768;

/// Keys per split of a token's attention, and the most splits (`split_keys`, `MAX_SPLIT` in
/// attention.wgsl).
pub(super) const SPLIT_KEYS: u32 = 256;
pub(super) const MAX_SPLIT: u32 = 32;

/// How many splits the attention of a batch of `n` tokens from position `start` takes: one
/// token over a long cache is split (flash decoding) so that more workgroups than heads share
/// it; a batch has workgroups enough. attention.wgsl's `combine` computes the same.
pub(super) fn attn_splits(n: u32, start: u32, window: u32) -> u32 {
    if n != 1 {
        return 1;
    }
    let span = if window > 0 {
        (start + 1).min(window)
    } else {
        start + 1
    };
    span.div_ceil(SPLIT_KEYS).clamp(1, MAX_SPLIT)
}

pub(super) fn split2(groups: u32) -> (u32, u32) {
    let g = groups.max(1);
    (g.min(MAX_X), g.div_ceil(MAX_X))
}

/// WebGPU's `maxComputeWorkgroupsPerDimension` (the default limit, which wgpu validates with
/// a panic, not an error).
pub(super) const MAX_GROUPS: u32 = 65_535;

/// An error for a grid that a dispatch may not have.
pub(super) fn check_grid(label: &str, (x, y, z): (u32, u32, u32)) -> Result<()> {
    if x.max(y).max(z) > MAX_GROUPS {
        return Err(Error::Gpu(format!(
            "`{label}` needs a grid of {x} × {y} × {z} workgroups, over the {MAX_GROUPS} per \
             dimension WebGPU allows: use a smaller batch or context"
        )));
    }
    Ok(())
}

impl Grid {
    /// The grid for n tokens (n_out logit rows); a product too large for u32 saturates, so
    /// that [`check_grid`] refuses it.
    pub(super) fn size(self, n: u32, n_out: u32) -> (u32, u32, u32) {
        let pick = |out: bool| if out { n_out } else { n };
        match self {
            Grid::Tokens => (n, 1, 1),
            Grid::Rows { rows, out } => {
                let (x, y) = split2(rows.div_ceil(MATVEC_RPW));
                (x, y, pick(out).div_ceil(MATVEC_NT))
            }
            Grid::NormRows { per, out } => (if out { n_out } else { n.saturating_mul(per) }, 1, 1),
            Grid::Attn { heads, .. } => (heads, n, 1),
            Grid::AttnCombine { .. } => (0, 0, 0),
            Grid::Elems { per, out } => {
                let (x, y) = split2(pick(out).saturating_mul(per).div_ceil(256));
                (x, y, 1)
            }
            Grid::Fused { groups, .. } => {
                let (x, y) = split2(groups);
                (x, y, n.div_ceil(MATVEC_NT))
            }
            Grid::One => (1, 1, 1),
        }
    }
}

// ----------------------------------------------------------------------------------------------
// The graph of one session
// ----------------------------------------------------------------------------------------------

/// A session's activation buffers, sized for `max_batch` tokens (`max_out` rows of logits).
pub(super) struct Scratch {
    pub step: wgpu::Buffer,   // uniform Step: n_tok, start, out_row0, n_out
    pub tokens: wgpu::Buffer, // (max_batch) u32
    pub x: wgpu::Buffer,      // (max_batch, n_embd)  residual stream
    pub h: wgpu::Buffer,      // (max_batch, n_embd)  a block's input: normed, or x ∘ norm weight
    pub qkv: wgpu::Buffer,    // (max_batch, q_dim + 2 · kv_dim)  q, k, v side by side
    pub q: wgpu::Buffer,      // (max_batch, n_head · head_dim)  rotated and scaled
    pub att: wgpu::Buffer,    // (max_batch, n_head · head_dim)
    pub o: wgpu::Buffer,      // (max_batch, n_embd)  attention / FFN output
    pub gate: wgpu::Buffer,   // (max_batch, n_ff)
    pub up: wgpu::Buffer,     // (max_batch, n_ff)
    pub scores: wgpu::Buffer, // (max_batch, n_head, n_ctx)
    pub part: wgpu::Buffer,   // (n_head, MAX_SPLIT, head_dim + 2)  split attention's partials
    pub logits: wgpu::Buffer, // (max_out, n_vocab)
    pub result: wgpu::Buffer, // (1) u32 argmax
}

impl Scratch {
    pub fn new(
        dev: &GpuDevice,
        m: &GpuModel,
        n_ctx: usize,
        max_batch: usize,
        max_out: usize,
    ) -> Result<Self> {
        let hp = &m.hp;
        let (e, qd, kvd, ff) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff);
        let u = wgpu::BufferUsages::empty();
        // Sizes come from the file and the session: multiplied with overflow checks (the device
        // then refuses anything over its binding limit with a clear error).
        let n = |label: &str, dims: &[usize]| -> Result<usize> {
            dims.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&v| v <= usize::MAX / 4)
                .ok_or_else(|| {
                    Error::Gpu(format!(
                        "buffer `{label}` ({dims:?} values) is too large; use a smaller context"
                    ))
                })
        };
        Ok(Scratch {
            step: dev.uniform("step", &Step::default()),
            tokens: dev.scratch("tokens", max_batch, u)?,
            x: dev.scratch("x", n("x", &[max_batch, e])?, u)?,
            h: dev.scratch("h", n("h", &[max_batch, e])?, u)?,
            qkv: dev.scratch("qkv", n("qkv", &[max_batch, qd + 2 * kvd])?, u)?,
            q: dev.scratch("q", n("q", &[max_batch, qd])?, u)?,
            att: dev.scratch("att", n("att", &[max_batch, qd])?, u)?,
            o: dev.scratch("o", n("o", &[max_batch, e])?, u)?,
            gate: dev.scratch("gate", n("gate", &[max_batch, ff])?, u)?,
            up: dev.scratch("up", n("up", &[max_batch, ff])?, u)?,
            scores: dev.scratch("scores", n("scores", &[max_batch, hp.n_head, n_ctx])?, u)?,
            part: dev.scratch(
                "part",
                n("part", &[hp.n_head, MAX_SPLIT as usize, hp.head_dim + 2])?,
                u,
            )?,
            logits: dev.scratch("logits", n("logits", &[max_out, hp.n_vocab])?, u)?,
            result: dev.scratch("result", 1, u)?,
        })
    }

    pub fn bytes(&self) -> u64 {
        [
            &self.tokens,
            &self.x,
            &self.h,
            &self.qkv,
            &self.q,
            &self.att,
            &self.o,
            &self.gate,
            &self.up,
            &self.scores,
            &self.part,
            &self.logits,
            &self.result,
        ]
        .iter()
        .map(|b| b.size())
        .sum()
    }
}

/// RoPE cos/sin tables, one per distinct (base, scale) of the layers, computed on the host
/// exactly as the CPU engine computes its angles (so large angles lose nothing on GPUs with
/// low-precision sin/cos).
pub(super) struct RopeTables {
    /// Per table: the rotation (inverse frequencies) and its (n_ctx, head_dim / 2, 2) cos/sin.
    pub tables: Vec<(Rope, wgpu::Buffer)>,
    /// The table of each layer.
    pub layer: Vec<usize>,
}

impl RopeTables {
    pub fn new(dev: &GpuDevice, m: &GpuModel, n_ctx: usize) -> Result<Self> {
        let hp = &m.hp;
        let factors = m.rope_factors(n_ctx);
        let mut keys: Vec<(u32, u32, bool, bool)> = Vec::new();
        let mut tables = Vec::new();
        let mut layer = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let (base, scale) = hp.rope_for_layer(il);
            let key = (
                base.to_bits(),
                scale.to_bits(),
                hp.swa_layers[il],
                hp.rope_layers[il],
            );
            let idx = match keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    // A layer without RoPE gets the identity (cos 1, sin 0: exact).
                    let rope = Rope::for_layer(hp, il, factors)
                        .unwrap_or_else(|| Rope::identity(hp.n_rot));
                    let cs: Vec<f32> = (0..n_ctx)
                        .flat_map(|pos| rope.cos_sin_scaled(pos as f32))
                        .collect();
                    tables.push((rope, dev.upload_f32("rope", &cs)?));
                    keys.push(key);
                    keys.len() - 1
                }
            };
            layer.push(idx);
        }
        Ok(RopeTables { tables, layer })
    }

    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|(_, b)| b.size()).sum()
    }
}

/// The recorded forward pass: `body` runs for every batch, `head` (output norm, lm head, argmax)
/// only when logits or a token are read back.
pub(super) struct Graph {
    pub body: Vec<Op>,
    pub head: Vec<Op>,
}

/// How a layer's ops are fused: architecture differences (LayerNorm, post-norms) and matrices
/// split across buffers (a fused product takes each of its matrices whole) turn a fusion off.
#[derive(Clone, Copy, Debug)]
pub(super) struct LayerPlan {
    /// q·k·v as one product that applies the attention norm (RMS) itself.
    pub qkv: bool,
    /// The o product adds itself to the residual (no post-attention norm).
    pub o_resid: bool,
    /// gate·up·act (or up·act) as one product that applies the FFN norm (RMS) itself.
    pub ffn: bool,
    /// The down product adds itself to the residual (no post-FFN norm).
    pub down_resid: bool,
}

impl LayerPlan {
    pub fn new(hp: &HParams, l: &GpuLayer) -> LayerPlan {
        let rms = hp.norm == NormKind::Rms;
        let whole = |m: &GpuMatrix| m.n_chunks() == 1;
        LayerPlan {
            qkv: rms && [&l.wq, &l.wk, &l.wv].into_iter().all(whole),
            o_resid: l.post_attn_norm.is_none() && whole(&l.wo),
            ffn: rms && whole(&l.w_up) && l.w_gate.as_ref().is_none_or(whole),
            down_resid: l.post_ffn_norm.is_none() && whole(&l.w_down),
        }
    }

    /// The fused pipelines the layer needs.
    pub fn keys(&self, l: &GpuLayer) -> Vec<FusedKey> {
        let one = |m: &GpuMatrix| FusedKey {
            types: vec![m.ty],
            gated: false,
        };
        let mut keys = Vec::new();
        if self.qkv {
            keys.push(FusedKey {
                types: vec![l.wq.ty, l.wk.ty, l.wv.ty],
                gated: false,
            });
        }
        if self.o_resid {
            keys.push(one(&l.wo));
        }
        if self.ffn {
            keys.push(match &l.w_gate {
                Some(g) => FusedKey {
                    types: vec![g.ty, l.w_up.ty],
                    gated: true,
                },
                None => one(&l.w_up),
            });
        }
        if self.down_resid {
            keys.push(one(&l.w_down));
        }
        keys
    }

    /// The norm weight a fused consumer of the attention input wants pre-multiplied into `h`.
    fn attn_scale(self, l: &GpuLayer) -> Option<&wgpu::Buffer> {
        l.attn_norm.as_ref().filter(|_| self.qkv)
    }

    fn ffn_scale(self, l: &GpuLayer) -> Option<&wgpu::Buffer> {
        l.ffn_norm.as_ref().filter(|_| self.ffn)
    }
}

/// Record every op of the forward pass over the session's buffers and per-layer KV cache
/// (`kv[il]` = (keys, values), each (n_ctx, n_head_kv · head_dim)).
pub(super) fn record(
    m: &GpuModel,
    s: &Scratch,
    rope: &RopeTables,
    kv: &[(wgpu::Buffer, wgpu::Buffer)],
    n_ctx: usize,
) -> Result<Graph> {
    let hp = &m.hp;
    let (qd, kvd) = (hp.q_dim(), hp.kv_dim());
    let Scratch {
        step,
        tokens,
        x,
        h,
        qkv,
        q,
        att,
        o,
        gate,
        up,
        scores,
        part,
        logits,
        result,
    } = s;
    let ctx = m.ctx();
    let plans: Vec<LayerPlan> = m.layers.iter().map(|l| LayerPlan::new(hp, l)).collect();
    let mut body = ops::embed(m, step, tokens, x)?;
    if let Some(w) = m
        .layers
        .first()
        .zip(plans.first())
        .and_then(|(l, p)| p.attn_scale(l))
    {
        body.push(ops::scale(m, step, w, x, h));
    }
    // A product's output that feeds the residual: fused (the add, and the next block's scaled
    // input, in its epilogue) or a plain product, the add (with the post-norm) and a scale op.
    let residual = |body: &mut Vec<Op>,
                    fuse: bool,
                    w: &GpuMatrix,
                    input: &wgpu::Buffer,
                    bias: Option<&wgpu::Buffer>,
                    post: Option<&wgpu::Buffer>,
                    next: Option<&wgpu::Buffer>,
                    what: &'static str|
     -> Result<()> {
        if fuse {
            let io = FusedIo {
                x: input,
                res: Some(x),
                y: next.map(|_| h),
                bias,
                nw: next,
            };
            let f = Fuse {
                resid: true,
                ..Fuse::of(hp)
            };
            body.push(ops::fused(&ctx, step, &[w], io, f, what)?);
            return Ok(());
        }
        let out = Out {
            y: o,
            off: 0,
            stride: hp.n_embd,
            bias,
            logits: false,
        };
        body.extend(ops::matvec(m, step, w, input, out, what)?);
        body.push(ops::add_norm(m, step, post, o, x));
        if let Some(nw) = next {
            body.push(ops::scale(m, step, nw, x, h));
        }
        Ok(())
    };
    for (il, (l, &plan)) in m.layers.iter().zip(&plans).enumerate() {
        let (kc, vc) = &kv[il];
        // attention: its input is the normed residual (a norm op, or the product applies the
        // norm to x ∘ w, written into h by the op before), or the residual itself (OLMo 2)
        let (input, norm_in) = match (&l.attn_norm, plan.qkv) {
            (Some(_), true) => (h, true),
            (Some(w), false) => {
                body.push(ops::norm(m, step, w, x, h, false));
                (h, false)
            }
            (None, _) => (x, false),
        };
        if plan.qkv {
            let io = FusedIo {
                x: input,
                res: norm_in.then_some(x),
                y: Some(qkv),
                bias: l.b_qkv.as_ref(),
                nw: None,
            };
            let f = Fuse {
                norm: norm_in,
                ..Fuse::of(hp)
            };
            body.push(ops::fused(
                &ctx,
                step,
                &[&l.wq, &l.wk, &l.wv],
                io,
                f,
                "matvec qkv",
            )?);
        } else {
            for (w, off, what) in [
                (&l.wq, 0, "matvec q"),
                (&l.wk, qd, "matvec k"),
                (&l.wv, qd + kvd, "matvec v"),
            ] {
                let out = Out {
                    y: qkv,
                    off,
                    stride: qd + 2 * kvd,
                    bias: l.b_qkv.as_ref(),
                    logits: false,
                };
                body.extend(ops::matvec(m, step, w, input, out, what)?);
            }
        }
        let table = &rope.tables[rope.layer[il]].1;
        body.push(ops::rope(
            m,
            step,
            table,
            qkv,
            q,
            (kc, vc),
            l.q_norm.as_ref(),
            l.k_norm.as_ref(),
        )?);
        let window = if hp.swa_layers[il] { hp.n_swa } else { 0 };
        body.extend(ops::attention(
            m,
            step,
            window,
            n_ctx,
            q,
            (kc, vc),
            (scores, part),
            att,
        ));
        residual(
            &mut body,
            plan.o_resid,
            &l.wo,
            att,
            l.bo.as_ref(),
            l.post_attn_norm.as_ref(),
            plan.ffn_scale(l),
            "matvec o",
        )?;
        // feed-forward: act(gate) · up, or act(up) for a plain MLP (computed in `gate`)
        let (input, norm_in) = match (&l.ffn_norm, plan.ffn) {
            (Some(_), true) => (h, true),
            (Some(w), false) => {
                body.push(ops::norm(m, step, w, x, h, false));
                (h, false)
            }
            (None, _) => (x, false),
        };
        if plan.ffn {
            let io = FusedIo {
                x: input,
                res: norm_in.then_some(x),
                y: Some(gate),
                bias: l.b_gate_up.as_ref(),
                nw: None,
            };
            let f = Fuse {
                norm: norm_in,
                gated: l.w_gate.is_some(),
                act: l.w_gate.is_none(),
                ..Fuse::of(hp)
            };
            let mats: Vec<&GpuMatrix> = l.w_gate.iter().chain([&l.w_up]).collect();
            body.push(ops::fused(&ctx, step, &mats, io, f, "matvec gate·up")?);
        } else {
            let plain = |y, bias| Out {
                y,
                off: 0,
                stride: hp.n_ff,
                bias,
                logits: false,
            };
            if let Some(wg) = &l.w_gate {
                body.extend(ops::matvec(
                    m,
                    step,
                    wg,
                    input,
                    plain(gate, l.b_gate.as_ref()),
                    "matvec gate",
                )?);
            }
            let up_out = if l.w_gate.is_some() { up } else { gate };
            body.extend(ops::matvec(
                m,
                step,
                &l.w_up,
                input,
                plain(up_out, l.b_up.as_ref()),
                "matvec up",
            )?);
            body.push(ops::ffn_act(m, step, up, gate, l.w_gate.is_some()));
        }
        let next = m
            .layers
            .get(il + 1)
            .zip(plans.get(il + 1))
            .and_then(|(l, p)| p.attn_scale(l));
        residual(
            &mut body,
            plan.down_resid,
            &l.w_down,
            gate,
            l.b_down.as_ref(),
            l.post_ffn_norm.as_ref(),
            next,
            "matvec down",
        )?;
    }
    let head = ops::head(m, step, x, h, logits, result)?;
    Ok(Graph { body, head })
}

/// The weight types of the matrices that go through plain products (matvec.wgsl) because no
/// fused product takes them.
pub(super) fn plain_types(hp: &HParams, layers: &[GpuLayer]) -> Vec<crate::quant::GgmlType> {
    let mut types = Vec::new();
    for l in layers {
        let p = LayerPlan::new(hp, l);
        let mut plain: Vec<&GpuMatrix> = Vec::new();
        if !p.qkv {
            plain.extend([&l.wq, &l.wk, &l.wv]);
        }
        if !p.o_resid {
            plain.push(&l.wo);
        }
        if !p.ffn {
            plain.extend(l.w_gate.iter().chain([&l.w_up]));
        }
        if !p.down_resid {
            plain.push(&l.w_down);
        }
        for m in plain {
            if !types.contains(&m.ty) {
                types.push(m.ty);
            }
        }
    }
    types
}

/// Every fused pipeline a model's layers need.
pub(super) fn fused_keys(hp: &HParams, layers: &[GpuLayer]) -> Vec<FusedKey> {
    let mut keys: Vec<FusedKey> = Vec::new();
    for l in layers {
        for k in LayerPlan::new(hp, l).keys(l) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys
}
