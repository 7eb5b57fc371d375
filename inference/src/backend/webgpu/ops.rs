//! The GPU ops of the forward pass, each a small checked constructor: it checks the shapes it is
//! given, writes its uniform block (a `bytemuck::Pod` struct named like the WGSL one), and
//! returns the [`Op`] (pipeline, bind group, workgroup grid) that `graph.rs` composes per layer.

use super::device::GpuDevice;
use super::fused::FusedKey;
use super::graph::{attn_splits, split2, Grid, SPLIT_KEYS};
use super::kernels::Kernels;
use super::kernels::MATVEC1_RPW;
use super::uniforms::{
    ArgmaxParams, AttentionParams, EmbedParams, FfnParams, FusedParams, MatvecParams, NormParams,
    RopeParams,
};
use super::weights::{GpuMatrix, GpuModel};
use crate::error::{Error, Result};
use crate::model::{Activation, HParams, NormKind};

pub(super) struct Op {
    pipeline: wgpu::ComputePipeline,
    /// A product's one-token kernel, used instead when it multiplies a single token.
    one: Option<wgpu::ComputePipeline>,
    pub(super) bind: wgpu::BindGroup,
    grid: Grid,
    /// What it computes, for the GPU time profile (`chord bench --backend webgpu --profile`).
    pub(super) what: &'static str,
    /// Weight bytes one token's dispatch reads (products; 0 for the others), for the profile's
    /// GB/s.
    pub(super) weight_bytes: u64,
}

impl Op {
    fn new(
        pipeline: &wgpu::ComputePipeline,
        bind: wgpu::BindGroup,
        grid: Grid,
        what: &'static str,
    ) -> Op {
        Op {
            pipeline: pipeline.clone(),
            one: None,
            bind,
            grid,
            what,
            weight_bytes: 0,
        }
    }

    /// The pipeline and workgroup grid for a batch of `n` tokens (`n_out` needing logits) from
    /// position `start` on.
    pub(super) fn launch(
        &self,
        n: u32,
        n_out: u32,
        start: u32,
    ) -> (&wgpu::ComputePipeline, (u32, u32, u32)) {
        match (&self.one, self.grid) {
            (_, Grid::Attn { heads, window }) => {
                (&self.pipeline, (heads, n, attn_splits(n, start, window)))
            }
            (_, Grid::AttnCombine { heads, window }) => {
                let split = attn_splits(n, start, window) > 1;
                (
                    &self.pipeline,
                    if split { (heads, 1, 1) } else { (0, 0, 0) },
                )
            }
            (Some(one), Grid::Rows { rows, out }) if (if out { n_out } else { n }) == 1 => {
                let (x, y) = split2(rows.div_ceil(MATVEC1_RPW));
                (one, (x, y, 1))
            }
            (Some(one), Grid::Fused { groups1, .. }) if n == 1 => {
                let (x, y) = split2(groups1);
                (one, (x, y, 1))
            }
            _ => (&self.pipeline, self.grid.size(n, n_out)),
        }
    }
}

fn shape_error(what: &str, detail: String) -> Error {
    Error::Gpu(format!("op `{what}`: {detail}"))
}

/// Embedding lookup into `x` (n, n_embd), one op per chunk of token_embd.
pub(super) fn embed(
    m: &GpuModel,
    step: &wgpu::Buffer,
    tokens: &wgpu::Buffer,
    x: &wgpu::Buffer,
) -> Result<Vec<Op>> {
    let (dev, k, t) = (&m.dev, &m.kernels, &m.tok_embd);
    let mut ops = Vec::new();
    for c in &t.chunks {
        let p = dev.uniform(
            "embed",
            &EmbedParams {
                rows: c.rows as u32,
                cols: m.hp.n_embd as u32,
                row_bytes: t.row_bytes as u32,
                row0: c.row0 as u32,
                scale: m.hp.embd_scale,
                ..Default::default()
            },
        );
        let bind = dev.bind_group(&k.embed_layout, &[step, &p, &c.buf, tokens, x]);
        ops.push(Op::new(k.embed_for(t.ty)?, bind, Grid::Tokens, "embed"));
    }
    Ok(ops)
}

fn norm_params(m: &GpuModel, from_out: bool, has_w: bool, layer: bool, scale: f32) -> NormParams {
    NormParams {
        dim: m.hp.n_embd as u32,
        eps: m.hp.norm_eps,
        from_out: from_out as u32,
        has_w: has_w as u32,
        layer: layer as u32,
        scale,
        ..Default::default()
    }
}

/// b = norm(a) · w of each token's row (RMSNorm or LayerNorm, as the model has); `out`: of the
/// rows that need logits only (the output norm).
pub(super) fn norm(
    m: &GpuModel,
    step: &wgpu::Buffer,
    w: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: bool,
) -> Op {
    let (dev, k) = (&m.dev, &m.kernels);
    let p = dev.uniform(
        "norm",
        &norm_params(m, out, true, m.hp.norm == NormKind::Layer, 1.0),
    );
    let bind = dev.bind_group(&k.norm_layout, &[step, &p, w, a, b]);
    Op::new(&k.norm_rows, bind, Grid::NormRows { per: 1, out }, "norm")
}

/// b = a ∘ w of each token's row: the input of a product that applies the RMSNorm itself.
pub(super) fn scale(
    m: &GpuModel,
    step: &wgpu::Buffer,
    w: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
) -> Op {
    let (dev, k) = (&m.dev, &m.kernels);
    let p = dev.uniform("scale", &norm_params(m, false, true, false, 1.0));
    let bind = dev.bind_group(&k.norm_layout, &[step, &p, w, a, b]);
    Op::new(
        &k.scale_rows,
        bind,
        Grid::NormRows { per: 1, out: false },
        "norm scale",
    )
}

/// x += residual_scale · post_norm(o) (or · o).
pub(super) fn add_norm(
    m: &GpuModel,
    step: &wgpu::Buffer,
    post: Option<&wgpu::Buffer>,
    o: &wgpu::Buffer,
    x: &wgpu::Buffer,
) -> Op {
    let (dev, k) = (&m.dev, &m.kernels);
    let p = dev.uniform(
        "add_norm",
        &norm_params(m, false, post.is_some(), false, m.hp.residual_scale),
    );
    let bind = dev.bind_group(&k.norm_layout, &[step, &p, post.unwrap_or(&m.dummy), o, x]);
    Op::new(
        &k.add_norm,
        bind,
        Grid::NormRows { per: 1, out: false },
        "add + norm",
    )
}

/// Where a plain product writes: y[t · stride + off + r] (+ bias[off + r]).
pub(super) struct Out<'a> {
    pub y: &'a wgpu::Buffer,
    pub off: usize,
    pub stride: usize,
    pub bias: Option<&'a wgpu::Buffer>,
    /// The lm head: the rows that need logits, not every token.
    pub logits: bool,
}

/// y = m · x, one op per chunk of `mat` (matvec.wgsl).
pub(super) fn matvec(
    m: &GpuModel,
    step: &wgpu::Buffer,
    mat: &GpuMatrix,
    x: &wgpu::Buffer,
    out: Out<'_>,
    what: &'static str,
) -> Result<Vec<Op>> {
    let (dev, k) = (&m.dev, &m.kernels);
    if out.off + mat.rows > out.stride {
        return Err(shape_error(
            what,
            format!(
                "rows {}..{} outside a row of {}",
                out.off,
                out.off + mat.rows,
                out.stride
            ),
        ));
    }
    let mut ops = Vec::new();
    for c in &mat.chunks {
        let p = dev.uniform(
            "matvec",
            &MatvecParams {
                rows: c.rows as u32,
                cols: mat.cols as u32,
                row_bytes: mat.row_bytes as u32,
                out_off: (out.off + c.row0) as u32,
                out_stride: out.stride as u32,
                tok_mode: out.logits as u32,
                has_bias: out.bias.is_some() as u32,
                _pad: 0,
            },
        );
        let bind = dev.bind_group(
            &k.matvec_layout,
            &[step, &p, &c.buf, x, out.y, out.bias.unwrap_or(&m.dummy)],
        );
        ops.push(Op {
            pipeline: k.matvec_for(mat.ty)?.clone(),
            one: Some(k.matvec1_for(mat.ty)?.clone()),
            bind,
            grid: Grid::Rows {
                rows: c.rows as u32,
                out: out.logits,
            },
            what,
            weight_bytes: (c.rows * mat.row_bytes) as u64,
        });
    }
    Ok(ops)
}

/// The buffers of a fused product (matvec_fused.wgsl's bindings 5..9).
pub(super) struct FusedIo<'a> {
    /// The input (n, cols): with a norm, res ∘ the norm's weight.
    pub x: &'a wgpu::Buffer,
    /// The residual stream (n, n_embd): read for the norm, added to by a residual product.
    pub res: Option<&'a wgpu::Buffer>,
    pub y: Option<&'a wgpu::Buffer>,
    /// Concatenated biases of the segments.
    pub bias: Option<&'a wgpu::Buffer>,
    /// The next norm's weight (a residual product writes y = res ∘ nw).
    pub nw: Option<&'a wgpu::Buffer>,
}

/// What a fused product does with its products (see matvec_fused.wgsl), and the model's
/// constants it needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fuse {
    pub norm: bool,
    pub resid: bool,
    pub act: bool,
    pub gated: bool,
    pub gelu: bool,
    pub eps: f32,
    pub res_scale: f32,
}

impl Fuse {
    /// No option yet, the model's constants.
    pub fn of(hp: &HParams) -> Fuse {
        Fuse {
            gelu: hp.act == Activation::Gelu,
            eps: hp.norm_eps,
            res_scale: hp.residual_scale,
            ..Fuse::default()
        }
    }
}

/// What an op needs besides its own buffers.
pub(super) struct Ctx<'a> {
    pub dev: &'a GpuDevice,
    pub k: &'a Kernels,
    /// Bound where a read-only buffer is unused.
    pub dummy: &'a wgpu::Buffer,
    /// Bound where a writable buffer is unused.
    pub dummy_rw: &'a wgpu::Buffer,
}

/// One fused product over up to three matrices of the same input (q·k·v, gate·up·act) or
/// one matrix with a residual epilogue (o, down).
pub(super) fn fused(
    c: &Ctx<'_>,
    step: &wgpu::Buffer,
    mats: &[&GpuMatrix],
    io: FusedIo<'_>,
    f: Fuse,
    what: &'static str,
) -> Result<Op> {
    let Some(first) = mats.first() else {
        return Err(shape_error(what, "no matrix".into()));
    };
    if mats.len() > 3 || (f.gated && mats.len() != 2) {
        return Err(shape_error(what, format!("{} matrices", mats.len())));
    }
    for w in mats {
        if w.cols != first.cols || w.n_chunks() != 1 {
            return Err(shape_error(
                what,
                format!("`{}`: {} columns in {} buffers (fused products take one buffer each of {} columns)", w.ty.name(), w.cols, w.n_chunks(), first.cols),
            ));
        }
    }
    if f.gated && mats[1].rows != first.rows {
        return Err(shape_error(what, "gate and up differ in rows".into()));
    }
    let outputs_ok = if f.resid {
        io.y.is_some() == io.nw.is_some()
    } else {
        io.y.is_some()
    };
    if (f.norm || f.resid) != io.res.is_some() || !outputs_ok {
        return Err(shape_error(
            what,
            "its buffers do not match its options".into(),
        ));
    }
    let seg = |i: usize| mats.iter().take(i).map(|w| w.rows).sum::<usize>();
    let rows = if f.gated { first.rows } else { seg(mats.len()) };
    if f.norm && f.resid && rows != first.cols {
        return Err(shape_error(
            what,
            format!("a residual of {rows} normed over {}", first.cols),
        ));
    }
    let key = FusedKey {
        types: mats.iter().map(|w| w.ty).collect(),
        gated: f.gated,
    };
    let (main, one) = c.k.fused_for(&key)?;
    let mut flags = 0;
    for (on, bit) in [
        (f.norm, FusedParams::NORM),
        (f.resid, FusedParams::RESID),
        (f.resid && io.nw.is_some(), FusedParams::NEXT),
        (io.bias.is_some(), FusedParams::BIAS),
        (f.gelu, FusedParams::GELU),
        (f.act, FusedParams::ACT),
    ] {
        if on {
            flags |= bit;
        }
    }
    let rb = |i: usize| mats.get(i).map_or(0, |w| w.row_bytes as u32);
    let p = c.dev.uniform(
        "matvec_fused",
        &FusedParams {
            rows: rows as u32,
            cols: first.cols as u32,
            seg1: if f.gated { rows } else { seg(1).min(rows) } as u32,
            seg2: if f.gated || mats.len() < 3 {
                rows
            } else {
                seg(2)
            } as u32,
            rb0: rb(0),
            rb1: rb(1),
            rb2: rb(2),
            out_stride: rows as u32,
            flags,
            eps: f.eps,
            res_scale: f.res_scale,
            _pad: 0,
        },
    );
    let w = |i: usize| mats.get(i).map_or(c.dummy, |w| &w.chunks[0].buf);
    let bind = c.dev.bind_group(
        &c.k.fused_layout,
        &[
            step,
            &p,
            w(0),
            w(1),
            w(2),
            io.x,
            io.res.unwrap_or(c.dummy_rw),
            io.y.unwrap_or(c.dummy_rw),
            io.bias.unwrap_or(c.dummy),
            io.nw.unwrap_or(c.dummy),
        ],
    );
    let (groups, groups1) = key.groups(rows as u32);
    Ok(Op {
        pipeline: main.clone(),
        one: Some(one.clone()),
        bind,
        grid: Grid::Fused { groups, groups1 },
        what,
        weight_bytes: mats.iter().map(|w| (w.rows * w.row_bytes) as u64).sum(),
    })
}

/// The q·k·v output's consumer: q/k norms, RoPE, q scaling, and the KV-cache store.
#[allow(clippy::too_many_arguments)]
pub(super) fn rope(
    m: &GpuModel,
    step: &wgpu::Buffer,
    table: &wgpu::Buffer,
    qkv: &wgpu::Buffer,
    q: &wgpu::Buffer,
    (kc, vc): (&wgpu::Buffer, &wgpu::Buffer),
    q_norm: Option<&(wgpu::Buffer, usize)>,
    k_norm: Option<&(wgpu::Buffer, usize)>,
) -> Result<Op> {
    let (dev, k, hp) = (&m.dev, &m.kernels, &m.hp);
    let width = |n: Option<&(wgpu::Buffer, usize)>, dim: usize| -> Result<u32> {
        match n {
            None => Ok(0),
            Some((_, w)) if *w > 0 && dim.is_multiple_of(*w) => Ok(*w as u32),
            Some((_, w)) => Err(shape_error(
                "rope",
                format!("a q/k norm of {w} in a row of {dim}"),
            )),
        }
    };
    let (qn, kn) = (width(q_norm, hp.q_dim())?, width(k_norm, hp.kv_dim())?);
    let pieces = |w: u32, dim: usize| if w == 0 { 0 } else { dim / w as usize };
    if pieces(qn, hp.q_dim()) + pieces(kn, hp.kv_dim()) > 256 {
        return Err(Error::Unsupported(
            "more than 256 q/k norm pieces per token on the GPU".into(),
        ));
    }
    let temp = hp.attn_temperature;
    let p = dev.uniform(
        "rope",
        &RopeParams {
            n_head: hp.n_head as u32,
            n_head_kv: hp.n_head_kv as u32,
            hd: hp.head_dim as u32,
            neox: hp.rope_neox as u32,
            q_scale: hp.q_scale,
            temp_scale: temp.map_or(0.0, |t| t.scale),
            temp_floor: temp.map_or(1, |t| t.floor as u32),
            rot: hp.n_rot as u32,
            q_norm: qn,
            k_norm: kn,
            eps: hp.norm_eps,
            _pad: 0,
        },
    );
    let qn_buf = q_norm.map_or(&m.dummy, |(b, _)| b);
    let kn_buf = k_norm.map_or(&m.dummy, |(b, _)| b);
    let bind = dev.bind_group(
        &k.rope_layout,
        &[step, &p, table, qkv, q, kc, vc, qn_buf, kn_buf],
    );
    Ok(Op::new(&k.rope, bind, Grid::Tokens, "rope"))
}

/// Attention of the batch's queries over one layer's cache (`window` > 0: sliding): the
/// attention op and the op that combines its splits (launched only when one token's attention
/// is split; `part` holds the splits' results).
#[allow(clippy::too_many_arguments)]
pub(super) fn attention(
    m: &GpuModel,
    step: &wgpu::Buffer,
    window: usize,
    n_ctx: usize,
    q: &wgpu::Buffer,
    (kc, vc): (&wgpu::Buffer, &wgpu::Buffer),
    (scores, part): (&wgpu::Buffer, &wgpu::Buffer),
    att: &wgpu::Buffer,
) -> [Op; 2] {
    let (dev, k, hp) = (&m.dev, &m.kernels, &m.hp);
    let p = dev.uniform(
        "attention",
        &AttentionParams {
            n_head: hp.n_head as u32,
            n_head_kv: hp.n_head_kv as u32,
            hd: hp.head_dim as u32,
            window: window as u32,
            n_ctx: n_ctx as u32,
            kq_scale: hp.kq_scale,
            softcap: hp.attn_softcap.unwrap_or(0.0),
            split_keys: SPLIT_KEYS,
        },
    );
    let bind = dev.bind_group(&k.attn_layout, &[step, &p, q, kc, vc, scores, att, part]);
    let (heads, window) = (hp.n_head as u32, window as u32);
    [
        Op::new(
            &k.attention,
            bind.clone(),
            Grid::Attn { heads, window },
            "attention",
        ),
        Op::new(
            &k.attn_combine,
            bind,
            Grid::AttnCombine { heads, window },
            "attention combine",
        ),
    ]
}

/// gate = act(gate) · up (gated), or gate = act(gate).
pub(super) fn ffn_act(
    m: &GpuModel,
    step: &wgpu::Buffer,
    up: &wgpu::Buffer,
    gate: &wgpu::Buffer,
    gated: bool,
) -> Op {
    let (dev, k, hp) = (&m.dev, &m.kernels, &m.hp);
    let p = dev.uniform(
        "ffn",
        &FfnParams {
            n_ff: hp.n_ff as u32,
            gelu: (hp.act == Activation::Gelu) as u32,
            gated: gated as u32,
            _pad: 0,
        },
    );
    let bind = dev.bind_group(&k.ffn_layout, &[step, &p, up, gate]);
    let grid = Grid::Elems {
        per: hp.n_ff as u32,
        out: false,
    };
    Op::new(&k.ffn, bind, grid, "ffn act")
}

/// The head: output norm of the rows that need logits, lm head (+ bias), soft-capping and
/// scaling, argmax.
pub(super) fn head(
    m: &GpuModel,
    step: &wgpu::Buffer,
    x: &wgpu::Buffer,
    h: &wgpu::Buffer,
    logits: &wgpu::Buffer,
    result: &wgpu::Buffer,
) -> Result<Vec<Op>> {
    let (dev, k, hp) = (&m.dev, &m.kernels, &m.hp);
    let mut ops = vec![norm(m, step, &m.output_norm, x, h, true)];
    let lm = m.lm_head();
    ops.extend(matvec(
        m,
        step,
        lm,
        h,
        Out {
            y: logits,
            off: 0,
            stride: lm.rows,
            bias: m.output_bias.as_ref(),
            logits: true,
        },
        "matvec lm head",
    )?);
    let p = dev.uniform(
        "argmax",
        &ArgmaxParams {
            n_vocab: hp.n_vocab as u32,
            has_bias: 0,
            cap: hp.final_logit_softcap.unwrap_or(0.0),
            scale: hp.logit_scale,
        },
    );
    let bind = dev.bind_group(&k.argmax_layout, &[step, &p, &m.dummy, logits, result]);
    if hp.final_logit_softcap.is_some() || hp.logit_scale != 1.0 {
        let grid = Grid::Elems {
            per: hp.n_vocab as u32,
            out: true,
        };
        ops.push(Op::new(&k.finish, bind.clone(), grid, "lm head finish"));
    }
    ops.push(Op::new(&k.argmax, bind, Grid::One, "argmax"));
    Ok(ops)
}
