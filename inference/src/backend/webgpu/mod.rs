//! The WebGPU backend: the same forward pass as [`crate::backend::cpu`], as WGSL kernels on wgpu.
//!
//! * Weights are uploaded once, tensor by tensor, still in their GGUF block layout (buffer bytes ≈
//!   tensor bytes); a tensor larger than the storage binding limit is split by rows across buffers.
//! * Pipelines, bind groups and uniform buffers are built at load ([`GpuModel::new`]) and session
//!   creation ([`GpuSession::new`]); per token the host writes a 16-byte step uniform and the token
//!   id, records ONE command buffer (one compute pass), submits it once and reads back the 4-byte
//!   argmax computed on the GPU.
//! * No optional GPU features: no `shader-f16`, no subgroups.
//!
//! Entry points are `async` (the browser's WebGPU is); natively the `*_blocking` wrappers use
//! `pollster`.

mod device;
mod kernels;

use std::collections::HashMap;

use std::sync::Arc;

pub use device::{GpuDevice, GpuOptions};
use kernels::{Kernels, MATVEC1_RPW, MATVEC_NT, MATVEC_RPW};

use crate::error::{Error, Result};
use crate::model::{Arch, HParams, QTensor, Weights};
use crate::quant::GgmlType;

// ----------------------------------------------------------------------------------------------
// Weights on the GPU
// ----------------------------------------------------------------------------------------------

struct MatChunk {
    buf: wgpu::Buffer,
    row0: usize,
    rows: usize,
}

/// A weight matrix on the GPU: its GGUF blocks as-is, split by rows into chunks that each fit one
/// storage binding.
pub struct GpuMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
    chunks: Vec<MatChunk>,
}

impl GpuMatrix {
    /// Upload `data` (rows × cols of `ty`, GGUF layout).
    pub fn upload(
        dev: &GpuDevice,
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: &[u8],
    ) -> Result<GpuMatrix> {
        if !cols.is_multiple_of(32) || !cols.is_multiple_of(ty.block_size()) {
            return Err(Error::Unsupported(format!(
                "GPU matrix `{name}`: row length {cols} is not a multiple of 32 / the {} block",
                ty.name()
            )));
        }
        let row_bytes = ty
            .row_bytes(cols as u64)
            .map(|b| b as usize)
            .ok_or_else(|| Error::Model(format!("`{name}`: bad row length {cols}")))?;
        if rows == 0 || data.len() != rows * row_bytes {
            return Err(Error::Model(format!(
                "`{name}`: {} bytes for {rows} rows of {row_bytes} bytes",
                data.len()
            )));
        }
        let per = (dev.max_binding as usize / row_bytes).min(rows);
        if per == 0 {
            return Err(Error::Gpu(format!(
                "`{name}`: one row ({row_bytes} bytes) exceeds the storage binding limit"
            )));
        }
        let mut chunks = Vec::new();
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + per).min(rows);
            let buf = dev.upload(name, &data[r0 * row_bytes..r1 * row_bytes])?;
            chunks.push(MatChunk {
                buf,
                row0: r0,
                rows: r1 - r0,
            });
            r0 = r1;
        }
        Ok(GpuMatrix {
            ty,
            rows,
            cols,
            row_bytes,
            chunks,
        })
    }

    fn from_tensor(dev: &GpuDevice, t: &QTensor) -> Result<GpuMatrix> {
        Self::upload(dev, &t.name, t.ty, t.rows, t.cols, &t.data)
    }

    /// How many buffers the matrix is split into.
    pub fn n_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes of the GPU buffers.
    pub fn buffer_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buf.size()).sum()
    }
}

struct GpuLayer {
    attn_norm: wgpu::Buffer,
    wq: GpuMatrix,
    wk: GpuMatrix,
    wv: GpuMatrix,
    wo: GpuMatrix,
    bq: Option<wgpu::Buffer>,
    bk: Option<wgpu::Buffer>,
    bv: Option<wgpu::Buffer>,
    q_norm: Option<wgpu::Buffer>,
    k_norm: Option<wgpu::Buffer>,
    post_attn_norm: Option<wgpu::Buffer>,
    ffn_norm: wgpu::Buffer,
    w_gate: GpuMatrix,
    w_up: GpuMatrix,
    w_down: GpuMatrix,
    post_ffn_norm: Option<wgpu::Buffer>,
}

/// Uploads weight matrices to the GPU as a GGUF file streams in (a [`crate::engine::TensorSink`]
/// for [`crate::engine::ModelLoader::with_sink`]): the host never holds them, so a model needs
/// about its file size in GPU memory and little on the host.
pub struct GpuUploader {
    dev: GpuDevice,
    mats: HashMap<String, GpuMatrix>,
}

impl GpuUploader {
    pub fn new(dev: GpuDevice) -> Self {
        GpuUploader {
            dev,
            mats: HashMap::new(),
        }
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Take a tensor if it is a matrix (2-D, rows of whole GPU blocks): upload it, `Ok(true)`.
    /// Vectors (norms, biases) stay on the host; they are uploaded with the model.
    pub fn take(&mut self, t: &crate::gguf::TensorInfo, data: &[u8]) -> Result<bool> {
        let [cols, rows] = t.dims[..] else {
            return Ok(false);
        };
        if !cols.is_multiple_of(32) {
            return Ok(false);
        }
        let m = GpuMatrix::upload(&self.dev, &t.name, t.ty, rows as usize, cols as usize, data)?;
        self.dev.check()?;
        self.mats.insert(t.name.clone(), m);
        Ok(true)
    }
}

/// A model resident on the GPU: device, kernels, weights.
pub struct GpuModel {
    dev: GpuDevice,
    kernels: Kernels,
    hp: HParams,
    tok_embd: GpuMatrix,
    output: Option<GpuMatrix>,
    output_norm: wgpu::Buffer,
    output_bias: Option<wgpu::Buffer>,
    rope_freqs: Option<Vec<f32>>,
    layers: Vec<GpuLayer>,
    dummy: wgpu::Buffer,
    buffer_bytes: u64,
    tensor_bytes: u64,
}

impl GpuModel {
    /// Open the GPU and upload `model`'s weights.
    pub async fn new(model: &crate::engine::Model, opts: &GpuOptions) -> Result<GpuModel> {
        let dev = GpuDevice::new(opts).await?;
        Self::with_device(dev, &model.hp, &model.weights, model.tensor_bytes).await
    }

    /// Upload weights to an already opened device.
    pub async fn with_device(
        dev: GpuDevice,
        hp: &HParams,
        w: &Weights,
        tensor_bytes: u64,
    ) -> Result<GpuModel> {
        Self::build(dev, HashMap::new(), hp, w, tensor_bytes).await
    }

    /// Finish a model whose matrices a [`GpuUploader`] took while the file streamed in
    /// (`model.offloaded`): only the small vectors are uploaded now.
    pub async fn from_uploader(up: GpuUploader, model: &crate::engine::Model) -> Result<GpuModel> {
        Self::build(
            up.dev,
            up.mats,
            &model.hp,
            &model.weights,
            model.tensor_bytes,
        )
        .await
    }

    async fn build(
        dev: GpuDevice,
        mut pre: HashMap<String, GpuMatrix>,
        hp: &HParams,
        w: &Weights,
        tensor_bytes: u64,
    ) -> Result<GpuModel> {
        let mut mats: Vec<GgmlType> = vec![w.lm_head().ty];
        for l in &w.layers {
            for m in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                mats.push(m.ty);
            }
        }
        let kernels = Kernels::new(&dev, &mats, &[w.tok_embd.ty]).await?;
        // A matrix the uploader already holds, else upload it from the host bytes now.
        let mut mat = |t: &QTensor| match pre.remove(&t.name) {
            Some(m) => Ok(m),
            None if t.data.is_empty() => Err(Error::Model(format!(
                "tensor `{}` is neither on the GPU nor on the host",
                t.name
            ))),
            None => GpuMatrix::from_tensor(&dev, t),
        };
        let vec_buf = |name: &str, v: &[f32]| dev.upload_f32(name, v);
        let opt_buf = |name: &str, v: &Option<Vec<f32>>| -> Result<Option<wgpu::Buffer>> {
            v.as_deref().map(|v| dev.upload_f32(name, v)).transpose()
        };
        let mut layers = Vec::with_capacity(w.layers.len());
        for (i, l) in w.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(GpuLayer {
                attn_norm: vec_buf(&n("attn_norm"), &l.attn_norm)?,
                wq: mat(&l.wq)?,
                wk: mat(&l.wk)?,
                wv: mat(&l.wv)?,
                wo: mat(&l.wo)?,
                bq: opt_buf(&n("bq"), &l.bq)?,
                bk: opt_buf(&n("bk"), &l.bk)?,
                bv: opt_buf(&n("bv"), &l.bv)?,
                q_norm: opt_buf(&n("q_norm"), &l.q_norm)?,
                k_norm: opt_buf(&n("k_norm"), &l.k_norm)?,
                post_attn_norm: opt_buf(&n("post_attn_norm"), &l.post_attn_norm)?,
                ffn_norm: vec_buf(&n("ffn_norm"), &l.ffn_norm)?,
                w_gate: mat(&l.w_gate)?,
                w_up: mat(&l.w_up)?,
                w_down: mat(&l.w_down)?,
                post_ffn_norm: opt_buf(&n("post_ffn_norm"), &l.post_ffn_norm)?,
            });
            dev.check()?;
        }
        let tok_embd = mat(&w.tok_embd)?;
        let output = w.output.as_ref().map(&mut mat).transpose()?;
        let output_norm = vec_buf("output_norm", &w.output_norm)?;
        let output_bias = opt_buf("output_bias", &w.output_bias)?;
        let dummy = dev.upload("dummy", &[0u8; 16])?;
        dev.check()?;

        let b = |x: &wgpu::Buffer| x.size();
        let ob = |x: &Option<wgpu::Buffer>| x.as_ref().map_or(0, |x| x.size());
        let mut buffer_bytes = tok_embd.buffer_bytes()
            + output.as_ref().map_or(0, |o| o.buffer_bytes())
            + b(&output_norm)
            + ob(&output_bias);
        for l in &layers {
            buffer_bytes += [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .iter()
                .map(|m| m.buffer_bytes())
                .sum::<u64>();
            buffer_bytes += b(&l.attn_norm) + b(&l.ffn_norm);
            buffer_bytes += [
                &l.bq,
                &l.bk,
                &l.bv,
                &l.q_norm,
                &l.k_norm,
                &l.post_attn_norm,
                &l.post_ffn_norm,
            ]
            .iter()
            .map(|x| ob(x))
            .sum::<u64>();
        }
        Ok(GpuModel {
            dev,
            kernels,
            hp: hp.clone(),
            tok_embd,
            output,
            output_norm,
            output_bias,
            rope_freqs: w.rope_freqs.clone(),
            layers,
            dummy,
            buffer_bytes,
            tensor_bytes,
        })
    }

    /// Native convenience: [`GpuModel::new`] run to completion.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(model: &crate::engine::Model, opts: &GpuOptions) -> Result<GpuModel> {
        pollster::block_on(Self::new(model, opts))
    }

    pub fn adapter_info(&self) -> String {
        self.dev.adapter_info()
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Bytes of the weight buffers (matrices still quantized, norms and biases as f32).
    pub fn buffer_bytes(&self) -> u64 {
        self.buffer_bytes
    }

    /// Bytes of the model's tensors in the GGUF file.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensor_bytes
    }

    /// Buffers the token embedding is split into (1 unless it exceeds the binding limit).
    pub fn embedding_chunks(&self) -> usize {
        self.tok_embd.n_chunks()
    }

    pub fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn lm_head(&self) -> &GpuMatrix {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }
}

// ----------------------------------------------------------------------------------------------
// Recorded operations
// ----------------------------------------------------------------------------------------------

/// The workgroup grid of an op, as a function of the batch (n tokens, n_out logit rows).
#[derive(Clone, Copy)]
enum Grid {
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

fn split2(groups: u32) -> (u32, u32) {
    let g = groups.max(1);
    (g.min(MAX_X), g.div_ceil(MAX_X))
}

impl Grid {
    fn size(self, n: u32, n_out: u32) -> (u32, u32, u32) {
        let pick = |out: bool| if out { n_out } else { n };
        match self {
            Grid::Tokens => (n, 1, 1),
            Grid::Rows { rows, out } => {
                let (x, y) = split2(rows.div_ceil(MATVEC_RPW));
                (x, y, pick(out).div_ceil(MATVEC_NT))
            }
            Grid::NormRows { per, out } => (if out { n_out } else { n * per }, 1, 1),
            Grid::Heads(h) => (h, n, 1),
            Grid::Elems { per, out } => {
                let (x, y) = split2((pick(out) * per).div_ceil(256));
                (x, y, 1)
            }
            Grid::One => (1, 1, 1),
        }
    }

    /// The grid of the one-token matvec (`main1`) over `rows`.
    fn rows1(rows: u32) -> (u32, u32, u32) {
        let (x, y) = split2(rows.div_ceil(MATVEC1_RPW));
        (x, y, 1)
    }
}

struct Op {
    pipeline: wgpu::ComputePipeline,
    /// A matvec's one-token kernel, used instead when it multiplies a single token.
    one: Option<wgpu::ComputePipeline>,
    bind: wgpu::BindGroup,
    grid: Grid,
    /// What it computes, for the GPU time profile (`chord bench --backend webgpu --profile`).
    what: &'static str,
}

impl Op {
    /// The pipeline and workgroup grid for a batch of `n` tokens (`n_out` needing logits).
    fn launch(&self, n: u32, n_out: u32) -> (&wgpu::ComputePipeline, (u32, u32, u32)) {
        match (&self.one, self.grid) {
            (Some(one), Grid::Rows { rows, out }) if (if out { n_out } else { n }) == 1 => {
                (one, Grid::rows1(rows))
            }
            _ => (&self.pipeline, self.grid.size(n, n_out)),
        }
    }
}

fn f(x: f32) -> u32 {
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
// Session
// ----------------------------------------------------------------------------------------------

/// Per-token counters and memory figures of a session.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GpuStats {
    pub dispatches_per_token: usize,
    pub submits_per_token: usize,
    pub readback_bytes_per_token: usize,
    pub buffer_bytes: u64,
    pub tensor_bytes: u64,
    pub kv_cache_bytes: u64,
    pub scratch_bytes: u64,
    /// GPU time of one decode step (mean since the last reset), from timestamp queries; `None`
    /// unless the device was opened with [`GpuOptions::timestamps`] and the adapter has them.
    pub gpu_ms_per_token: Option<f64>,
    /// GPU time of the prompt batches that returned a token (since the last reset), likewise.
    pub gpu_prefill_ms: Option<f64>,
}

/// Timestamp queries written at the start and end of every forward pass.
struct GpuTimer {
    /// Two timestamps: begin, end.
    set: wgpu::QuerySet,
    /// (2) u64 ticks, resolved from `set`, then copied next to the token in the readback.
    resolve: wgpu::Buffer,
    /// ns per tick.
    period: f64,
    /// Sum of decode-step GPU time (ns) and the number of steps; prompt batches likewise.
    decode: (f64, usize),
    prefill: (f64, usize),
}

/// Per-dispatch GPU time of decode steps: a timestamp before the first dispatch and after each.
struct GpuProfile {
    /// (n_ops + 1) timestamps.
    set: wgpu::QuerySet,
    /// (n_ops + 1) u64 ticks, resolved from `set`.
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Timestamps this profile holds (the ops after that are not timed).
    count: u32,
    /// label -> (ns, dispatches), summed over `steps` decode steps.
    by_op: Vec<(&'static str, f64, usize)>,
    steps: usize,
}

/// Where the timestamps sit in the token readback buffer (after the 4-byte token, 8-aligned).
const TS_AT: u64 = 8;

/// What a forward call reads back.
enum Read {
    Nothing,
    Token,
    Logits,
}

/// One conversation on the GPU: KV cache, activations and the recorded ops.
pub struct GpuSession<'m> {
    m: &'m GpuModel,
    n_ctx: usize,
    max_batch: usize,
    max_out: usize,
    len: usize,
    step: wgpu::Buffer,
    tokens: wgpu::Buffer,
    logits: wgpu::Buffer,
    result: wgpu::Buffer,
    readback: wgpu::Buffer,
    logits_readback: Option<wgpu::Buffer>,
    body: Vec<Op>,
    head: Vec<Op>,
    kv_bytes: u64,
    scratch_bytes: u64,
    last: (usize, usize, usize),
    timer: Option<GpuTimer>,
    profile: Option<GpuProfile>,
}

impl<'m> GpuSession<'m> {
    /// A session with a KV cache for `n_ctx` tokens (clamped to the training context).
    pub fn new(m: &'m GpuModel, n_ctx: usize, opts: &GpuOptions) -> Result<GpuSession<'m>> {
        let hp = &m.hp;
        let dev = &m.dev;
        dev.check()?;
        let k = &m.kernels;
        let n_ctx = n_ctx.clamp(1, hp.n_ctx_train);
        let (e, qd, kvd, hd, ff, nv) = (
            hp.n_embd,
            hp.q_dim(),
            hp.kv_dim(),
            hp.head_dim,
            hp.n_ff,
            hp.n_vocab,
        );
        if hd > 256 {
            // attention.wgsl gives each of a head's dimensions one of its 256 threads
            return Err(Error::Gpu(format!(
                "head size {hd} is above the GPU attention kernel's 256; use the CPU backend"
            )));
        }
        let lim = dev.max_binding as usize;
        // Batch: bounded by the option, the attention scores buffer and the widest activation.
        let widest = [e, qd, ff].into_iter().max().unwrap_or(e);
        let max_batch = opts
            .max_batch
            .unwrap_or(64)
            .min(lim / (hp.n_head * n_ctx * 4).max(1))
            .min(lim / (widest * 4))
            .min(n_ctx);
        if max_batch == 0 {
            return Err(Error::Gpu(format!(
                "a {n_ctx}-token context does not fit the {lim}-byte binding limit"
            )));
        }
        let max_out = max_batch.min((lim.min(64 << 20) / (nv * 4)).max(1));
        let u = wgpu::BufferUsages::empty();
        let step = dev.uniform("step", &[0; 8]);
        let tokens = dev.scratch("tokens", max_batch, u)?;
        let x = dev.scratch("x", max_batch * e, u)?;
        let h = dev.scratch("h", max_batch * e, u)?;
        let q = dev.scratch("q", max_batch * qd, u)?;
        let kb = dev.scratch("k", max_batch * kvd, u)?;
        let vb = dev.scratch("v", max_batch * kvd, u)?;
        let att = dev.scratch("att", max_batch * qd, u)?;
        let o = dev.scratch("o", max_batch * e, u)?;
        let gate = dev.scratch("gate", max_batch * ff, u)?;
        let up = dev.scratch("up", max_batch * ff, u)?;
        let scores = dev.scratch("scores", max_batch * hp.n_head * n_ctx, u)?;
        let logits = dev.scratch("logits", max_out * nv, u)?;
        let result = dev.scratch("result", 1, u)?;
        let timer = dev.timestamp_period.map(|period| GpuTimer {
            set: dev.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("forward_time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("forward_time"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period: period as f64,
            decode: (0.0, 0),
            prefill: (0.0, 0),
        });
        // The token (4 bytes) and, when timed, the pass's two timestamps at TS_AT.
        let readback = dev.readback_buffer("readback", TS_AT + 16);
        let scratch_bytes = [
            &tokens, &x, &h, &q, &kb, &vb, &att, &o, &gate, &up, &scores, &logits, &result,
        ]
        .iter()
        .map(|b| b.size())
        .sum::<u64>();

        // RoPE cos/sin tables, one per distinct (base, scale), exactly as the CPU computes them.
        let half = hd / 2;
        let mut tables: Vec<((u32, u32), wgpu::Buffer)> = Vec::new();
        let mut layer_table = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let (base, scale) = hp.rope_for_layer(il);
            let key = (base.to_bits(), scale.to_bits());
            let idx = match tables.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    let inv: Vec<f32> = (0..half)
                        .map(|i| {
                            let fr = (base as f64).powf(-2.0 * i as f64 / hd as f64) * scale as f64;
                            (fr / m.rope_freqs.as_ref().map_or(1.0, |ff| ff[i] as f64)) as f32
                        })
                        .collect();
                    let mut cs = Vec::with_capacity(n_ctx * half * 2);
                    for pos in 0..n_ctx {
                        for &fr in &inv {
                            let (s, c) = (pos as f32 * fr).sin_cos();
                            cs.push(c);
                            cs.push(s);
                        }
                    }
                    tables.push((key, dev.upload_f32("rope", &cs)?));
                    tables.len() - 1
                }
            };
            layer_table.push(idx);
        }
        let scratch_bytes = scratch_bytes + tables.iter().map(|(_, t)| t.size()).sum::<u64>();

        let mut kv_bytes = 0;
        let mut body = Vec::new();
        let gemma = hp.arch == Arch::Gemma3;
        // embedding lookup, per chunk of token_embd
        let scale = if gemma { (e as f32).sqrt() } else { 1.0 };
        for c in &m.tok_embd.chunks {
            let p = dev.uniform(
                "embed",
                &[
                    c.rows as u32,
                    e as u32,
                    m.tok_embd.row_bytes as u32,
                    c.row0 as u32,
                    f(scale),
                    0,
                    0,
                    0,
                ],
            );
            body.push(Op {
                pipeline: k.embed_for(m.tok_embd.ty)?.clone(),
                one: None,
                what: "embed",
                bind: dev.bind_group(&k.embed_layout, &[&step, &p, &c.buf, &tokens, &x]),
                grid: Grid::Tokens,
            });
        }
        let eps = f(hp.norm_eps);
        let norm_p = |dim: usize, from_out: bool, has_w: bool| {
            dev.uniform(
                "norm",
                &[dim as u32, eps, from_out as u32, has_w as u32, 0, 0, 0, 0],
            )
        };
        for (il, l) in m.layers.iter().enumerate() {
            let kc = dev.scratch("k_cache", n_ctx * kvd, u)?;
            let vc = dev.scratch("v_cache", n_ctx * kvd, u)?;
            kv_bytes += kc.size() + vc.size();
            let norm =
                |w: &wgpu::Buffer, a: &wgpu::Buffer, b: &wgpu::Buffer, dim, from_out, has_w| {
                    let p = norm_p(dim, from_out, has_w);
                    dev.bind_group(&k.norm_layout, &[&step, &p, w, a, b])
                };
            // attention
            body.push(Op {
                pipeline: k.norm_rows.clone(),
                one: None,
                what: "norm",
                bind: norm(&l.attn_norm, &x, &h, e, false, true),
                grid: Grid::NormRows { per: 1, out: false },
            });
            push_matvec(
                &mut body,
                m,
                &step,
                &l.wq,
                &h,
                &q,
                l.bq.as_ref(),
                false,
                "matvec q",
            )?;
            push_matvec(
                &mut body,
                m,
                &step,
                &l.wk,
                &h,
                &kb,
                l.bk.as_ref(),
                false,
                "matvec k",
            )?;
            push_matvec(
                &mut body,
                m,
                &step,
                &l.wv,
                &h,
                &vb,
                l.bv.as_ref(),
                false,
                "matvec v",
            )?;
            if let Some(qn) = &l.q_norm {
                body.push(Op {
                    pipeline: k.norm_inplace.clone(),
                    one: None,
                    what: "norm (q/k)",
                    bind: norm(qn, &m.dummy, &q, hd, false, true),
                    grid: Grid::NormRows {
                        per: hp.n_head as u32,
                        out: false,
                    },
                });
            }
            if let Some(kn) = &l.k_norm {
                body.push(Op {
                    pipeline: k.norm_inplace.clone(),
                    one: None,
                    what: "norm (q/k)",
                    bind: norm(kn, &m.dummy, &kb, hd, false, true),
                    grid: Grid::NormRows {
                        per: hp.n_head_kv as u32,
                        out: false,
                    },
                });
            }
            let p = dev.uniform(
                "rope",
                &[
                    hp.n_head as u32,
                    hp.n_head_kv as u32,
                    hd as u32,
                    hp.rope_neox as u32,
                    f(hp.q_scale),
                    0,
                    0,
                    0,
                ],
            );
            body.push(Op {
                pipeline: k.rope.clone(),
                one: None,
                what: "rope",
                bind: dev.bind_group(
                    &k.rope_layout,
                    &[
                        &step,
                        &p,
                        &tables[layer_table[il]].1,
                        &q,
                        &kb,
                        &vb,
                        &kc,
                        &vc,
                    ],
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
                    0,
                    0,
                ],
            );
            body.push(Op {
                pipeline: k.attention.clone(),
                one: None,
                what: "attention",
                bind: dev.bind_group(&k.attn_layout, &[&step, &p, &q, &kc, &vc, &scores, &att]),
                grid: Grid::Heads(hp.n_head as u32),
            });
            push_matvec(
                &mut body, m, &step, &l.wo, &att, &o, None, false, "matvec o",
            )?;
            let pan = l.post_attn_norm.as_ref();
            body.push(Op {
                pipeline: k.add_norm.clone(),
                one: None,
                what: "add + norm",
                bind: norm(pan.unwrap_or(&m.dummy), &o, &x, e, false, pan.is_some()),
                grid: Grid::NormRows { per: 1, out: false },
            });
            // feed-forward
            body.push(Op {
                pipeline: k.norm_rows.clone(),
                one: None,
                what: "norm",
                bind: norm(&l.ffn_norm, &x, &h, e, false, true),
                grid: Grid::NormRows { per: 1, out: false },
            });
            push_matvec(
                &mut body,
                m,
                &step,
                &l.w_gate,
                &h,
                &gate,
                None,
                false,
                "matvec gate",
            )?;
            push_matvec(
                &mut body,
                m,
                &step,
                &l.w_up,
                &h,
                &up,
                None,
                false,
                "matvec up",
            )?;
            let p = dev.uniform("ffn", &[ff as u32, gemma as u32, 0, 0, 0, 0, 0, 0]);
            body.push(Op {
                pipeline: k.ffn.clone(),
                one: None,
                what: "ffn act",
                bind: dev.bind_group(&k.ffn_layout, &[&step, &p, &up, &gate]),
                grid: Grid::Elems {
                    per: ff as u32,
                    out: false,
                },
            });
            push_matvec(
                &mut body,
                m,
                &step,
                &l.w_down,
                &gate,
                &o,
                None,
                false,
                "matvec down",
            )?;
            let pfn = l.post_ffn_norm.as_ref();
            body.push(Op {
                pipeline: k.add_norm.clone(),
                one: None,
                what: "add + norm",
                bind: norm(pfn.unwrap_or(&m.dummy), &o, &x, e, false, pfn.is_some()),
                grid: Grid::NormRows { per: 1, out: false },
            });
        }

        // output: norm of the rows that need logits, lm head (+ bias), soft-capping, argmax
        let mut head = Vec::new();
        let p = norm_p(e, true, true);
        head.push(Op {
            pipeline: k.norm_rows.clone(),
            one: None,
            what: "norm",
            bind: dev.bind_group(&k.norm_layout, &[&step, &p, &m.output_norm, &x, &h]),
            grid: Grid::NormRows { per: 1, out: true },
        });
        push_matvec(
            &mut head,
            m,
            &step,
            m.lm_head(),
            &h,
            &logits,
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
                0,
                0,
                0,
                0,
                0,
            ],
        );
        let bind = dev.bind_group(&k.argmax_layout, &[&step, &p, &m.dummy, &logits, &result]);
        if hp.final_logit_softcap.is_some() {
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
        dev.check()?;
        Ok(GpuSession {
            m,
            n_ctx,
            max_batch,
            max_out,
            len: 0,
            step,
            tokens,
            logits,
            result,
            readback,
            logits_readback: None,
            body,
            head,
            kv_bytes,
            scratch_bytes,
            last: (0, 0, 0),
            timer,
            profile: None,
        })
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Forget the conversation (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.len = 0;
        if let Some(t) = &mut self.timer {
            t.decode = (0.0, 0);
            t.prefill = (0.0, 0);
        }
    }

    /// Time every dispatch of the following decode steps on the GPU (needs a device opened with
    /// timestamps on an adapter that can write them inside a pass); false where it cannot.
    pub fn set_profile(&mut self, on: bool) -> bool {
        let dev = &self.m.dev;
        if !on || !dev.timestamps_inside {
            self.profile = None;
            return false;
        }
        let count = (self.body.len() + self.head.len() + 1).min(4096) as u32;
        self.profile = Some(GpuProfile {
            set: dev.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: dev.readback_buffer("profile_readback", count as u64 * 8),
            count,
            by_op: Vec::new(),
            steps: 0,
        });
        true
    }

    /// GPU time per decode step by kind of op, largest first: (label, ms per token, dispatches
    /// per token), from the steps since `set_profile(true)`.
    pub fn profile(&self) -> Vec<(&'static str, f64, f64)> {
        let Some(p) = &self.profile else {
            return Vec::new();
        };
        let steps = p.steps.max(1) as f64;
        let mut v: Vec<_> = p
            .by_op
            .iter()
            .map(|&(what, ns, n)| (what, ns / steps / 1e6, n as f64 / steps))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    pub fn stats(&self) -> GpuStats {
        GpuStats {
            dispatches_per_token: self.last.0,
            submits_per_token: self.last.1,
            readback_bytes_per_token: self.last.2,
            buffer_bytes: self.m.buffer_bytes,
            tensor_bytes: self.m.tensor_bytes,
            kv_cache_bytes: self.kv_bytes,
            scratch_bytes: self.scratch_bytes,
            gpu_ms_per_token: self
                .timer
                .as_ref()
                .filter(|t| t.decode.1 > 0)
                .map(|t| t.decode.0 / t.decode.1 as f64 / 1e6),
            gpu_prefill_ms: self
                .timer
                .as_ref()
                .filter(|t| t.prefill.1 > 0)
                .map(|t| t.prefill.0 / 1e6),
        }
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        self.m.dev.check()?;
        if tokens.is_empty() {
            return Err(Error::Invalid("no tokens to evaluate".into()));
        }
        if self.len + tokens.len() > self.n_ctx {
            return Err(Error::Invalid(format!(
                "context is full: {} + {} tokens exceed the {}-token context",
                self.len,
                tokens.len(),
                self.n_ctx
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.m.hp.n_vocab) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary ({} tokens)",
                self.m.hp.n_vocab
            )));
        }
        Ok(())
    }

    /// One batch (≤ max_batch tokens, ≤ max_out when all logits are wanted): one command buffer,
    /// one submit; returns what `read` asks for.
    async fn forward(&mut self, tokens: &[u32], all: bool, read: Read) -> Result<Vec<u8>> {
        let m = self.m;
        let dev = &m.dev;
        dev.check()?;
        let n = tokens.len() as u32;
        let (out_row0, n_out) = if all { (0, n) } else { (n - 1, 1) };
        let words: [u32; 8] = [n, self.len as u32, out_row0, n_out, 0, 0, 0, 0];
        dev.queue
            .write_buffer(&self.step, 0, bytemuck::cast_slice(&words));
        dev.queue
            .write_buffer(&self.tokens, 0, bytemuck::cast_slice(tokens));
        let mut enc = dev
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("token"),
            });
        let mut dispatches = 0u32;
        {
            // Timed only when the token is read back (the timestamps travel with it).
            let timed = self.timer.as_ref().filter(|_| matches!(read, Read::Token));
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: timed.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            let head: &[Op] = if matches!(read, Read::Nothing) {
                &[]
            } else {
                &self.head
            };
            let prof = self
                .profile
                .as_ref()
                .filter(|_| n == 1 && matches!(read, Read::Token));
            if let Some(p) = prof {
                pass.write_timestamp(&p.set, 0);
            }
            for op in self.body.iter().chain(head) {
                let (pipeline, (gx, gy, gz)) = op.launch(n, n_out);
                if gx == 0 || gy == 0 || gz == 0 {
                    continue;
                }
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &op.bind, &[]);
                pass.dispatch_workgroups(gx, gy, gz);
                dispatches += 1;
                if let Some(p) = prof.filter(|p| dispatches < p.count) {
                    pass.write_timestamp(&p.set, dispatches);
                }
            }
        }
        let bytes = match read {
            Read::Nothing => 0,
            Read::Token => {
                enc.copy_buffer_to_buffer(&self.result, 0, &self.readback, 0, 4);
                if let Some(t) = &self.timer {
                    enc.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
                    enc.copy_buffer_to_buffer(&t.resolve, 0, &self.readback, TS_AT, 16);
                }
                if let Some(p) = self.profile.as_ref().filter(|_| n == 1) {
                    let k = dispatches.min(p.count - 1) + 1;
                    enc.resolve_query_set(&p.set, 0..k, &p.resolve, 0);
                    enc.copy_buffer_to_buffer(&p.resolve, 0, &p.readback, 0, k as u64 * 8);
                }
                4
            }
            Read::Logits => {
                let bytes = n_out as u64 * self.m.hp.n_vocab as u64 * 4;
                let need = self.max_out as u64 * self.m.hp.n_vocab as u64 * 4;
                if self.logits_readback.is_none() {
                    self.logits_readback = Some(dev.readback_buffer("logits_readback", need));
                }
                if let Some(rb) = &self.logits_readback {
                    enc.copy_buffer_to_buffer(&self.logits, 0, rb, 0, bytes);
                }
                bytes
            }
        };
        dev.queue.submit([enc.finish()]);
        self.len += tokens.len();
        if n == 1 {
            self.last = (dispatches as usize, 1, bytes as usize);
        }
        let out = match read {
            Read::Nothing => Vec::new(),
            Read::Token if self.timer.is_some() => {
                let b = dev.read(&self.readback, TS_AT + 16).await?;
                self.record_time(&b, n as usize);
                if n == 1 {
                    self.record_profile(dispatches).await?;
                }
                b
            }
            Read::Token => dev.read(&self.readback, 4).await?,
            Read::Logits => match &self.logits_readback {
                Some(rb) => dev.read(rb, bytes).await?,
                None => Vec::new(),
            },
        };
        dev.check()?;
        Ok(out)
    }

    /// Add the per-dispatch times of a profiled decode step to the profile.
    async fn record_profile(&mut self, dispatches: u32) -> Result<()> {
        let Some(p) = &self.profile else {
            return Ok(());
        };
        let k = dispatches.min(p.count - 1) + 1;
        let b = self.m.dev.read(&p.readback, k as u64 * 8).await?;
        let ticks: Vec<u64> = b
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .collect();
        let period = self.timer.as_ref().map_or(1.0, |t| t.period);
        // The ops that were dispatched, in order (the same walk as `forward`).
        let whats: Vec<&'static str> = self
            .body
            .iter()
            .chain(&self.head)
            .filter(|op| {
                let (_, (gx, gy, gz)) = op.launch(1, 1);
                gx > 0 && gy > 0 && gz > 0
            })
            .map(|op| op.what)
            .collect();
        let Some(p) = &mut self.profile else {
            return Ok(());
        };
        for (i, w) in ticks.windows(2).enumerate() {
            let (Some(what), Some(dt)) = (whats.get(i), w[1].checked_sub(w[0])) else {
                continue;
            };
            let ns = dt as f64 * period;
            match p.by_op.iter_mut().find(|e| e.0 == *what) {
                Some(e) => {
                    e.1 += ns;
                    e.2 += 1;
                }
                None => p.by_op.push((what, ns, 1)),
            }
        }
        p.steps += 1;
        Ok(())
    }

    /// Add the GPU time of a timed forward pass (timestamps at `TS_AT` of its readback).
    fn record_time(&mut self, b: &[u8], n_tokens: usize) {
        let (Some(t), Some(ts)) = (&mut self.timer, b.get(TS_AT as usize..TS_AT as usize + 16))
        else {
            return;
        };
        let tick = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&ts[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        // A timestamp may wrap or be reset by the driver; such a sample is dropped.
        let Some(ticks) = tick(1).checked_sub(tick(0)) else {
            return;
        };
        let ns = ticks as f64 * t.period;
        let acc = if n_tokens == 1 {
            &mut t.decode
        } else {
            &mut t.prefill
        };
        acc.0 += ns;
        acc.1 += 1;
    }

    /// Evaluate a prompt (after what is in the cache) and return the greedy next token.
    pub async fn prefill(&mut self, tokens: &[u32]) -> Result<u32> {
        self.check_tokens(tokens)?;
        let chunks: Vec<&[u32]> = tokens.chunks(self.max_batch).collect();
        let mut tok = 0;
        for (i, c) in chunks.iter().enumerate() {
            if i + 1 < chunks.len() {
                self.forward(c, false, Read::Nothing).await?;
            } else {
                tok = self.read_token(c).await?;
            }
        }
        Ok(tok)
    }

    async fn read_token(&mut self, tokens: &[u32]) -> Result<u32> {
        let b = self.forward(tokens, false, Read::Token).await?;
        let id = b
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| Error::Gpu("short readback".into()))?;
        if id as usize >= self.m.hp.n_vocab {
            return Err(Error::Gpu(format!(
                "the GPU returned token {id}, outside the vocabulary (NaN logits?)"
            )));
        }
        Ok(id)
    }

    /// Feed one token and return the greedy next one (one submit, 4 bytes read back).
    pub async fn step(&mut self, token: u32) -> Result<u32> {
        self.check_tokens(&[token])?;
        self.read_token(&[token]).await
    }

    /// Evaluate `tokens` and read back logits: of the last token (n_vocab values) or of every
    /// token ((n, n_vocab), `all`).
    pub async fn logits(&mut self, tokens: &[u32], all: bool) -> Result<Vec<f32>> {
        self.check_tokens(tokens)?;
        let per = if all { self.max_out } else { self.max_batch };
        let chunks: Vec<&[u32]> = tokens.chunks(per).collect();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            if all || i + 1 == chunks.len() {
                let b = self.forward(c, all, Read::Logits).await?;
                out.extend(to_f32(&b));
            } else {
                self.forward(c, false, Read::Nothing).await?;
            }
        }
        Ok(out)
    }

    /// Generate after `prompt` exactly as [`crate::engine::Session::generate`] does. Greedy
    /// decoding (temperature 0, no repetition penalty) samples on the GPU and reads back 4 bytes
    /// per token; other settings read back the last logits row and sample on the CPU.
    pub async fn generate(
        &mut self,
        tok: &crate::tokenizer::Tokenizer,
        prompt: &[u32],
        params: &crate::engine::GenerateParams,
        mut on_piece: impl FnMut(u32, &str) -> bool,
    ) -> Result<crate::engine::Generation> {
        use crate::sampler::Sampler;
        if prompt.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        let room = self.n_ctx.saturating_sub(self.len);
        if prompt.len() > room {
            return Err(Error::Invalid(format!(
                "the prompt has {} tokens but only {room} fit in the {}-token context",
                prompt.len(),
                self.n_ctx
            )));
        }
        let mut g = crate::engine::Generation {
            prompt_len: prompt.len(),
            stop: "length",
            ..Default::default()
        };
        let mut sampler = Sampler::new(params.sampler.clone());
        let on_gpu = sampler.is_greedy()
            && (sampler.params.repeat_penalty == 1.0 || sampler.params.repeat_penalty <= 0.0);
        let mut history: Vec<u32> = prompt.to_vec();
        let t0 = crate::engine::now();
        let mut next = if on_gpu {
            self.prefill(prompt).await?
        } else {
            let mut l = self.logits(prompt, false).await?;
            sampler.sample(&mut l, &history)
        };
        let t1 = crate::engine::now();
        g.prefill_s = t1 - t0;
        let mut detok = crate::tokenizer::Detokenizer::new(tok);
        for i in 0..params.max_tokens {
            if !params.ignore_eos && tok.is_eog(next) {
                g.stop = "eos";
                break;
            }
            g.tokens.push(next);
            history.push(next);
            let piece = detok.push(next);
            g.text.push_str(&piece);
            if !on_piece(next, &piece) {
                g.stop = "stopped";
                break;
            }
            if i + 1 == params.max_tokens {
                break;
            }
            if self.len >= self.n_ctx {
                g.stop = "context";
                break;
            }
            next = if on_gpu {
                self.step(next).await?
            } else {
                let mut l = self.logits(&[next], false).await?;
                sampler.sample(&mut l, &history)
            };
        }
        let rest = detok.flush();
        if !rest.is_empty() {
            g.text.push_str(&rest);
            on_piece(u32::MAX, &rest);
        }
        g.decode_s = crate::engine::now() - t1;
        Ok(g)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn prefill_blocking(&mut self, tokens: &[u32]) -> Result<u32> {
        pollster::block_on(self.prefill(tokens))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn step_blocking(&mut self, token: u32) -> Result<u32> {
        pollster::block_on(self.step(token))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn logits_blocking(&mut self, tokens: &[u32], all: bool) -> Result<Vec<f32>> {
        pollster::block_on(self.logits(tokens, all))
    }
}

// ----------------------------------------------------------------------------------------------
// Single-kernel entry points (tests and diagnostics)
// ----------------------------------------------------------------------------------------------

/// Run the matvec kernel of `ty` alone: y (n, rows) = W (rows, cols; GGUF blocks) · x (n, cols).
/// W is split across buffers when larger than the device's binding limit.
pub async fn matvec(
    dev: &GpuDevice,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &[u8],
    x: &[f32],
    n: usize,
) -> Result<Vec<f32>> {
    if x.len() != n * cols || n == 0 {
        return Err(Error::Invalid("x must hold n × cols values".into()));
    }
    let k = Kernels::new(dev, &[ty], &[]).await?;
    let m = GpuMatrix::upload(dev, "w", ty, rows, cols, w)?;
    let u = wgpu::BufferUsages::empty();
    let xb = dev.upload_f32("x", x)?;
    let y = dev.scratch("y", n * rows, u)?;
    let dummy = dev.upload("dummy", &[0u8; 16])?;
    let step = dev.uniform("step", &[n as u32, 0, 0, n as u32, 0, 0, 0, 0]);
    let rb = dev.readback_buffer("y_readback", (n * rows * 4) as u64);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for c in &m.chunks {
            let p = dev.uniform(
                "matvec",
                &[
                    c.rows as u32,
                    cols as u32,
                    m.row_bytes as u32,
                    c.row0 as u32,
                    rows as u32,
                    0,
                    0,
                    0,
                ],
            );
            let bind = dev.bind_group(&k.matvec_layout, &[&step, &p, &c.buf, &xb, &y, &dummy]);
            let grid = Grid::Rows {
                rows: c.rows as u32,
                out: false,
            };
            let (pipeline, (gx, gy, gz)) = if n == 1 {
                (k.matvec1_for(ty)?, Grid::rows1(c.rows as u32))
            } else {
                (k.matvec_for(ty)?, grid.size(n as u32, n as u32))
            };
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(gx, gy, gz);
        }
    }
    enc.copy_buffer_to_buffer(&y, 0, &rb, 0, (n * rows * 4) as u64);
    dev.queue.submit([enc.finish()]);
    let b = dev.read(&rb, (n * rows * 4) as u64).await?;
    Ok(to_f32(&b))
}

/// Run the embedding kernel of `ty` alone: dequantize rows `ids` of W (rows, cols).
pub async fn embed_rows(
    dev: &GpuDevice,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &[u8],
    ids: &[u32],
) -> Result<Vec<f32>> {
    let n = ids.len();
    let k = Kernels::new(dev, &[], &[ty]).await?;
    let m = GpuMatrix::upload(dev, "w", ty, rows, cols, w)?;
    let tokens = dev.upload("ids", bytemuck::cast_slice(ids))?;
    let x = dev.scratch("x", n * cols, wgpu::BufferUsages::empty())?;
    let step = dev.uniform("step", &[n as u32, 0, 0, 1, 0, 0, 0, 0]);
    let rb = dev.readback_buffer("x_readback", (n * cols * 4) as u64);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for c in &m.chunks {
            let p = dev.uniform(
                "embed",
                &[
                    c.rows as u32,
                    cols as u32,
                    m.row_bytes as u32,
                    c.row0 as u32,
                    f(1.0),
                    0,
                    0,
                    0,
                ],
            );
            let bind = dev.bind_group(&k.embed_layout, &[&step, &p, &c.buf, &tokens, &x]);
            pass.set_pipeline(k.embed_for(ty)?);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(n as u32, 1, 1);
        }
    }
    enc.copy_buffer_to_buffer(&x, 0, &rb, 0, (n * cols * 4) as u64);
    dev.queue.submit([enc.finish()]);
    let b = dev.read(&rb, (n * cols * 4) as u64).await?;
    Ok(to_f32(&b))
}

fn to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

/// Shared handle type for callers that keep a model in an `Arc`.
pub type SharedGpuModel = Arc<GpuModel>;
