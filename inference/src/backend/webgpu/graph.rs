//! The recorded forward pass: every op (pipeline, bind group, workgroup grid) built once per
//! session, so a forward call only writes a 32-byte step uniform and the token ids, then records
//! the ops into one compute pass.

use super::device::GpuDevice;
use super::kernels::{MATVEC1_RPW, MATVEC_NT, MATVEC_RPW};
use super::weights::{GpuMatrix, GpuModel};
use crate::error::{Error, Result};
use crate::model::Rope;
use crate::model::{Activation, NormKind};

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
    /// (heads, n, 1)
    Heads(u32),
    /// 256-thread elementwise over n·per (or n_out·per) values
    Elems {
        per: u32,
        out: bool,
    },
    One,
}

const MAX_X: u32 = 32768;

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
            Grid::Heads(h) => (h, n, 1),
            Grid::Elems { per, out } => {
                let (x, y) = split2(pick(out).saturating_mul(per).div_ceil(256));
                (x, y, 1)
            }
            Grid::One => (1, 1, 1),
        }
    }

    /// The grid of the one-token matvec (`main1`) over `rows`.
    pub(super) fn rows1(rows: u32) -> (u32, u32, u32) {
        let (x, y) = split2(rows.div_ceil(MATVEC1_RPW));
        (x, y, 1)
    }
}

pub(super) struct Op {
    pipeline: wgpu::ComputePipeline,
    /// A matvec's one-token kernel, used instead when it multiplies a single token.
    one: Option<wgpu::ComputePipeline>,
    pub(super) bind: wgpu::BindGroup,
    grid: Grid,
    /// What it computes, for the GPU time profile (`chord bench --backend webgpu --profile`).
    pub(super) what: &'static str,
}

impl Op {
    /// The pipeline and workgroup grid for a batch of `n` tokens (`n_out` needing logits).
    pub(super) fn launch(&self, n: u32, n_out: u32) -> (&wgpu::ComputePipeline, (u32, u32, u32)) {
        match (&self.one, self.grid) {
            (Some(one), Grid::Rows { rows, out }) if (if out { n_out } else { n }) == 1 => {
                (one, Grid::rows1(rows))
            }
            _ => (&self.pipeline, self.grid.size(n, n_out)),
        }
    }
}

pub(super) fn f(x: f32) -> u32 {
    x.to_bits()
}

/// Push one matvec op per chunk of `m`: y[:, chunk rows] = m · x (+ bias).
#[allow(clippy::too_many_arguments)]
fn push_matvec(
    ops: &mut Vec<Op>,
    gm: &GpuModel,
    step: &wgpu::Buffer,
    m: &GpuMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    out: bool,
    what: &'static str,
) -> Result<()> {
    let dev = &gm.dev;
    let k = &gm.kernels;
    for c in &m.chunks {
        let p = dev.uniform(
            "matvec",
            &[
                c.rows as u32,
                m.cols as u32,
                m.row_bytes as u32,
                c.row0 as u32,
                m.rows as u32,
                out as u32,
                bias.is_some() as u32,
                0,
            ],
        );
        let bind = dev.bind_group(
            &k.matvec_layout,
            &[step, &p, &c.buf, x, y, bias.unwrap_or(&gm.dummy)],
        );
        ops.push(Op {
            pipeline: k.matvec_for(m.ty)?.clone(),
            one: Some(k.matvec1_for(m.ty)?.clone()),
            what,
            bind,
            grid: Grid::Rows {
                rows: c.rows as u32,
                out,
            },
        });
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// The graph of one session
// ----------------------------------------------------------------------------------------------

/// A session's activation buffers, sized for `max_batch` tokens (`max_out` rows of logits).
pub(super) struct Scratch {
    pub step: wgpu::Buffer,   // uniform: n_tok, start, out_row0, n_out
    pub tokens: wgpu::Buffer, // (max_batch) u32
    pub x: wgpu::Buffer,      // (max_batch, n_embd)  residual stream
    pub h: wgpu::Buffer,      // (max_batch, n_embd)  normed input of a block
    pub q: wgpu::Buffer,      // (max_batch, n_head · head_dim)
    pub k: wgpu::Buffer,      // (max_batch, n_head_kv · head_dim)
    pub v: wgpu::Buffer,      // (max_batch, n_head_kv · head_dim)
    pub att: wgpu::Buffer,    // (max_batch, n_head · head_dim)
    pub o: wgpu::Buffer,      // (max_batch, n_embd)  attention / FFN output
    pub gate: wgpu::Buffer,   // (max_batch, n_ff)
    pub up: wgpu::Buffer,     // (max_batch, n_ff)
    pub scores: wgpu::Buffer, // (max_batch, n_head, n_ctx)
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
            step: dev.uniform("step", &[0; 8]),
            tokens: dev.scratch("tokens", max_batch, u)?,
            x: dev.scratch("x", n("x", &[max_batch, e])?, u)?,
            h: dev.scratch("h", n("h", &[max_batch, e])?, u)?,
            q: dev.scratch("q", n("q", &[max_batch, qd])?, u)?,
            k: dev.scratch("k", n("k", &[max_batch, kvd])?, u)?,
            v: dev.scratch("v", n("v", &[max_batch, kvd])?, u)?,
            att: dev.scratch("att", n("att", &[max_batch, qd])?, u)?,
            o: dev.scratch("o", n("o", &[max_batch, e])?, u)?,
            gate: dev.scratch("gate", n("gate", &[max_batch, ff])?, u)?,
            up: dev.scratch("up", n("up", &[max_batch, ff])?, u)?,
            scores: dev.scratch("scores", n("scores", &[max_batch, hp.n_head, n_ctx])?, u)?,
            logits: dev.scratch("logits", n("logits", &[max_out, hp.n_vocab])?, u)?,
            result: dev.scratch("result", 1, u)?,
        })
    }

    pub fn bytes(&self) -> u64 {
        [
            &self.tokens,
            &self.x,
            &self.h,
            &self.q,
            &self.k,
            &self.v,
            &self.att,
            &self.o,
            &self.gate,
            &self.up,
            &self.scores,
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
    let dev = &m.dev;
    let k = &m.kernels;
    let (e, hd, ff, nv) = (hp.n_embd, hp.head_dim, hp.n_ff, hp.n_vocab);
    let Scratch {
        step,
        tokens,
        x,
        h,
        q,
        k: kb,
        v: vb,
        att,
        o,
        gate,
        up,
        scores,
        logits,
        result,
    } = s;
    let mut body = Vec::new();
    // embedding lookup, per chunk of token_embd
    for c in &m.tok_embd.chunks {
        let p = dev.uniform(
            "embed",
            &[
                c.rows as u32,
                e as u32,
                m.tok_embd.row_bytes as u32,
                c.row0 as u32,
                f(hp.embd_scale),
                0,
                0,
                0,
            ],
        );
        body.push(Op {
            pipeline: k.embed_for(m.tok_embd.ty)?.clone(),
            one: None,
            what: "embed",
            bind: dev.bind_group(&k.embed_layout, &[step, &p, &c.buf, tokens, x]),
            grid: Grid::Tokens,
        });
    }
    let eps = f(hp.norm_eps);
    let layer_norm = hp.norm == NormKind::Layer;
    // norm.wgsl's Params: dim, eps, from_out, has_w, layer (LayerNorm: the bias follows the
    // weight), residual scale.
    let norm_p = |dim: usize, from_out: bool, has_w: bool, layer: bool, scale: f32| {
        dev.uniform(
            "norm",
            &[
                dim as u32,
                eps,
                from_out as u32,
                has_w as u32,
                layer as u32,
                f(scale),
                0,
                0,
            ],
        )
    };
    let norm_bind = |w: &wgpu::Buffer, a: &wgpu::Buffer, b: &wgpu::Buffer, p: &wgpu::Buffer| {
        dev.bind_group(&k.norm_layout, &[step, p, w, a, b])
    };
    // b = norm(a) of each token's row (the block's input norm).
    let norm_op = |w: &wgpu::Buffer, a: &wgpu::Buffer, b: &wgpu::Buffer| Op {
        pipeline: k.norm_rows.clone(),
        one: None,
        what: "norm",
        bind: norm_bind(w, a, b, &norm_p(e, false, true, layer_norm, 1.0)),
        grid: Grid::NormRows { per: 1, out: false },
    };
    // x += residual_scale · post_norm(o) (or · o).
    let residual_op = |post: Option<&wgpu::Buffer>| Op {
        pipeline: k.add_norm.clone(),
        one: None,
        what: "add + norm",
        bind: norm_bind(
            post.unwrap_or(&m.dummy),
            o,
            x,
            &norm_p(e, false, post.is_some(), false, hp.residual_scale),
        ),
        grid: Grid::NormRows { per: 1, out: false },
    };
    // In-place RMS norm of each `dim`-wide piece of a (rows · per) buffer (q/k norms).
    let pieces_op = |(w, dim): &(wgpu::Buffer, usize), buf: &wgpu::Buffer, width: usize| Op {
        pipeline: k.norm_inplace.clone(),
        one: None,
        what: "norm (q/k)",
        bind: norm_bind(w, &m.dummy, buf, &norm_p(*dim, false, true, false, 1.0)),
        grid: Grid::NormRows {
            per: (width / dim) as u32,
            out: false,
        },
    };
    let temp = hp.attn_temperature;
    for (il, l) in m.layers.iter().enumerate() {
        let (kc, vc) = &kv[il];
        // attention: its input is the normed residual, or the residual itself (Olmo 2)
        let input = match &l.attn_norm {
            Some(w) => {
                body.push(norm_op(w, x, h));
                h
            }
            None => x,
        };
        push_matvec(
            &mut body,
            m,
            step,
            &l.wq,
            input,
            q,
            l.bq.as_ref(),
            false,
            "matvec q",
        )?;
        push_matvec(
            &mut body,
            m,
            step,
            &l.wk,
            input,
            kb,
            l.bk.as_ref(),
            false,
            "matvec k",
        )?;
        push_matvec(
            &mut body,
            m,
            step,
            &l.wv,
            input,
            vb,
            l.bv.as_ref(),
            false,
            "matvec v",
        )?;
        if let Some(qn) = &l.q_norm {
            body.push(pieces_op(qn, q, hp.q_dim()));
        }
        if let Some(kn) = &l.k_norm {
            body.push(pieces_op(kn, kb, hp.kv_dim()));
        }
        let p = dev.uniform(
            "rope",
            &[
                hp.n_head as u32,
                hp.n_head_kv as u32,
                hd as u32,
                hp.rope_neox as u32,
                f(hp.q_scale),
                f(temp.map_or(0.0, |t| t.scale)),
                temp.map_or(1, |t| t.floor as u32),
                hp.n_rot as u32,
            ],
        );
        body.push(Op {
            pipeline: k.rope.clone(),
            one: None,
            what: "rope",
            bind: dev.bind_group(
                &k.rope_layout,
                &[step, &p, &rope.tables[rope.layer[il]].1, q, kb, vb, kc, vc],
            ),
            grid: Grid::Tokens,
        });
        let window = if hp.swa_layers[il] { hp.n_swa } else { 0 };
        let p = dev.uniform(
            "attention",
            &[
                hp.n_head as u32,
                hp.n_head_kv as u32,
                hd as u32,
                window as u32,
                n_ctx as u32,
                f(hp.kq_scale),
                f(hp.attn_softcap.unwrap_or(0.0)),
                0,
            ],
        );
        body.push(Op {
            pipeline: k.attention.clone(),
            one: None,
            what: "attention",
            bind: dev.bind_group(&k.attn_layout, &[step, &p, q, kc, vc, scores, att]),
            grid: Grid::Heads(hp.n_head as u32),
        });
        push_matvec(
            &mut body,
            m,
            step,
            &l.wo,
            att,
            o,
            l.bo.as_ref(),
            false,
            "matvec o",
        )?;
        body.push(residual_op(l.post_attn_norm.as_ref()));
        // feed-forward: act(gate) · up, or act(up) for a plain MLP (computed in `gate`)
        let input = match &l.ffn_norm {
            Some(w) => {
                body.push(norm_op(w, x, h));
                h
            }
            None => x,
        };
        let gated = l.w_gate.is_some();
        if let Some(wg) = &l.w_gate {
            push_matvec(
                &mut body,
                m,
                step,
                wg,
                input,
                gate,
                l.b_gate.as_ref(),
                false,
                "matvec gate",
            )?;
        }
        let up_out = if gated { up } else { gate };
        push_matvec(
            &mut body,
            m,
            step,
            &l.w_up,
            input,
            up_out,
            l.b_up.as_ref(),
            false,
            "matvec up",
        )?;
        let gelu = hp.act == Activation::Gelu;
        let p = dev.uniform(
            "ffn",
            &[ff as u32, gelu as u32, gated as u32, 0, 0, 0, 0, 0],
        );
        body.push(Op {
            pipeline: k.ffn.clone(),
            one: None,
            what: "ffn act",
            bind: dev.bind_group(&k.ffn_layout, &[step, &p, up, gate]),
            grid: Grid::Elems {
                per: ff as u32,
                out: false,
            },
        });
        push_matvec(
            &mut body,
            m,
            step,
            &l.w_down,
            gate,
            o,
            l.b_down.as_ref(),
            false,
            "matvec down",
        )?;
        body.push(residual_op(l.post_ffn_norm.as_ref()));
    }

    // output: norm of the rows that need logits, lm head (+ bias), soft-capping, argmax
    let mut head = Vec::new();
    let p = norm_p(e, true, true, layer_norm, 1.0);
    head.push(Op {
        pipeline: k.norm_rows.clone(),
        one: None,
        what: "norm",
        bind: dev.bind_group(&k.norm_layout, &[step, &p, &m.output_norm, x, h]),
        grid: Grid::NormRows { per: 1, out: true },
    });
    push_matvec(
        &mut head,
        m,
        step,
        m.lm_head(),
        h,
        logits,
        m.output_bias.as_ref(),
        true,
        "matvec lm head",
    )?;
    let p = dev.uniform(
        "argmax",
        &[
            nv as u32,
            0,
            f(hp.final_logit_softcap.unwrap_or(0.0)),
            f(hp.logit_scale),
            0,
            0,
            0,
            0,
        ],
    );
    let bind = dev.bind_group(&k.argmax_layout, &[step, &p, &m.dummy, logits, result]);
    if hp.final_logit_softcap.is_some() || hp.logit_scale != 1.0 {
        head.push(Op {
            pipeline: k.finish.clone(),
            one: None,
            what: "lm head finish",
            bind: bind.clone(),
            grid: Grid::Elems {
                per: nv as u32,
                out: true,
            },
        });
    }
    head.push(Op {
        pipeline: k.argmax.clone(),
        one: None,
        what: "argmax",
        bind,
        grid: Grid::One,
    });
    Ok(Graph { body, head })
}
