//! Weights on the GPU: each matrix in its GGUF block layout (buffer bytes ≈ tensor bytes), split
//! by rows across buffers where it exceeds the storage binding limit; norms and biases as f32.

use std::collections::HashMap;

use super::device::{GpuDevice, GpuOptions};
use super::graph::{fused_keys, plain_types};
use super::kernels::Kernels;
use crate::error::{Error, Result};
use crate::gguf::TensorInfo;
use crate::model::{HParams, Model, Norm, QTensor, Weights};
use crate::quant::GgmlType;

pub(super) struct MatChunk {
    pub(super) buf: wgpu::Buffer,
    pub(super) row0: usize,
    pub(super) rows: usize,
}

/// A weight matrix on the GPU: its GGUF blocks as-is, split by rows into chunks that each fit one
/// storage binding.
pub struct GpuMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
    pub(super) chunks: Vec<MatChunk>,
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
        let m = Self::create(dev, name, ty, rows, cols)?;
        if data.len() != rows * m.row_bytes {
            return Err(Error::Model(format!(
                "`{name}`: {} bytes for {rows} rows of {} bytes",
                data.len(),
                m.row_bytes
            )));
        }
        m.write(dev, 0, data);
        // The empty submit hands the staging memory back at once (natively it would pile up
        // until the first real submit).
        dev.queue.submit([]);
        Ok(m)
    }

    /// The buffers of a matrix (rows × cols of `ty`), not yet written.
    fn create(
        dev: &GpuDevice,
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
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
        if rows == 0 {
            return Err(Error::Model(format!("`{name}`: no rows")));
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
            chunks.push(MatChunk {
                buf: dev.storage(name, (r1 - r0) * row_bytes)?,
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

    /// Write `data`, the matrix's bytes from byte `at` on (`at` is where the previous write
    /// stopped): returns how many of them were written. Writes are whole 4-byte words, so up to
    /// 3 bytes before the end of a buffer stay for the next call; a buffer's last word is padded
    /// with zeros.
    fn write(&self, dev: &GpuDevice, at: usize, data: &[u8]) -> usize {
        let end = at + data.len();
        let mut done = at;
        for c in &self.chunks {
            let b0 = c.row0 * self.row_bytes;
            let b1 = b0 + c.rows * self.row_bytes;
            if b1 <= done {
                continue;
            }
            let seg = &data[done - at..end.min(b1) - at];
            let off = (done - b0) as u64;
            let whole = seg.len() / 4 * 4;
            if whole > 0 {
                dev.queue.write_buffer(&c.buf, off, &seg[..whole]);
            }
            if end < b1 {
                return done + whole - at;
            }
            if whole < seg.len() {
                let mut tail = [0u8; 4];
                tail[..seg.len() - whole].copy_from_slice(&seg[whole..]);
                dev.queue.write_buffer(&c.buf, off + whole as u64, &tail);
            }
            done = b1;
        }
        done - at
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

pub(super) struct GpuLayer {
    /// Norm weights, followed by the bias for LayerNorm: (dim) or (2, dim).
    pub(super) attn_norm: Option<wgpu::Buffer>,
    pub(super) wq: GpuMatrix,
    pub(super) wk: GpuMatrix,
    pub(super) wv: GpuMatrix,
    pub(super) wo: GpuMatrix,
    /// The q, k and v biases side by side (zeros for a missing one): (q_dim + 2 · kv_dim).
    pub(super) b_qkv: Option<wgpu::Buffer>,
    pub(super) bo: Option<wgpu::Buffer>,
    /// Per-head (head_dim) or whole-row q/k norm weights, and their width.
    pub(super) q_norm: Option<(wgpu::Buffer, usize)>,
    pub(super) k_norm: Option<(wgpu::Buffer, usize)>,
    pub(super) post_attn_norm: Option<wgpu::Buffer>,
    pub(super) ffn_norm: Option<wgpu::Buffer>,
    pub(super) w_gate: Option<GpuMatrix>,
    pub(super) w_up: GpuMatrix,
    pub(super) w_down: GpuMatrix,
    pub(super) b_gate: Option<wgpu::Buffer>,
    pub(super) b_up: Option<wgpu::Buffer>,
    /// The gate and up biases side by side, for the fused gate·up product: (2 · n_ff).
    pub(super) b_gate_up: Option<wgpu::Buffer>,
    pub(super) b_down: Option<wgpu::Buffer>,
    pub(super) post_ffn_norm: Option<wgpu::Buffer>,
}

impl GpuLayer {
    fn matrices(&self) -> impl Iterator<Item = &GpuMatrix> {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_up,
            &self.w_down,
        ]
        .into_iter()
        .chain(self.w_gate.as_ref())
    }

    fn vectors(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        [
            &self.attn_norm,
            &self.b_qkv,
            &self.bo,
            &self.post_attn_norm,
            &self.ffn_norm,
            &self.b_gate,
            &self.b_up,
            &self.b_gate_up,
            &self.b_down,
            &self.post_ffn_norm,
        ]
        .into_iter()
        .flatten()
        .chain(self.q_norm.iter().chain(&self.k_norm).map(|(b, _)| b))
    }
}

/// Uploads weight matrices to the GPU as a GGUF file streams in (the [`crate::loader::TensorSink`]
/// of [`crate::loader::ModelLoader::with_sink`]): each matrix is written piece by piece as its
/// bytes arrive, so neither the host nor a staging buffer ever holds a whole tensor, and a model
/// needs about its file size in GPU memory and little on the host.
pub struct GpuUploader {
    dev: GpuDevice,
    mats: HashMap<String, GpuMatrix>,
    /// Matrices whose buffers exist but whose bytes have not arrived yet.
    empty: HashMap<String, GpuMatrix>,
    /// The matrix being written: its name, buffers, bytes received, and the received bytes not
    /// written yet (fewer than 4: writes are whole words).
    open: Option<(String, GpuMatrix, usize, Vec<u8>)>,
}

impl GpuUploader {
    pub fn new(dev: GpuDevice) -> Self {
        GpuUploader {
            dev,
            mats: HashMap::new(),
            empty: HashMap::new(),
            open: None,
        }
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Whether the tensor goes to the GPU as it streams in: a matrix (2-D, rows of whole GPU
    /// blocks); its buffers are created now, when the header is read — before any upload, so
    /// that (where GPU memory is host memory) no freed staging memory ends up between them.
    /// Vectors (norms, biases) stay on the host; they are uploaded with the model.
    pub fn takes(&mut self, t: &TensorInfo) -> Result<bool> {
        let [cols, rows] = t.dims[..] else {
            return Ok(false);
        };
        if !cols.is_multiple_of(32) || rows == 0 {
            return Ok(false);
        }
        let m = GpuMatrix::create(&self.dev, &t.name, t.ty, rows as usize, cols as usize)?;
        if (m.rows * m.row_bytes) as u64 != t.size {
            return Err(Error::Model(format!(
                "`{}`: {} bytes for {rows} rows of {} bytes",
                t.name, t.size, m.row_bytes
            )));
        }
        self.dev.check()?;
        self.empty.insert(t.name.clone(), m);
        Ok(true)
    }

    /// The next bytes of a tensor it takes, from byte `at` of the tensor on; tensors come one
    /// after the other, each in order.
    pub fn write(&mut self, t: &TensorInfo, at: u64, bytes: &[u8]) -> Result<()> {
        if at == 0 {
            let m = self
                .empty
                .remove(&t.name)
                .ok_or_else(|| Error::Model(format!("`{}`: no GPU buffers for it", t.name)))?;
            self.open = Some((t.name.clone(), m, 0, Vec::new()));
        }
        let Some((name, m, got, rest)) = self.open.as_mut() else {
            return Err(Error::Model(format!(
                "`{}`: bytes before its start",
                t.name
            )));
        };
        if *name != t.name || *got as u64 != at {
            return Err(Error::Model(format!("`{}`: bytes out of order", t.name)));
        }
        let data: std::borrow::Cow<'_, [u8]> = if rest.is_empty() {
            bytes.into()
        } else {
            [&rest[..], bytes].concat().into()
        };
        let n = m.write(&self.dev, *got - rest.len(), &data);
        *rest = data[n..].to_vec();
        *got += bytes.len();
        self.dev.queue.submit([]);
        if *got as u64 == t.size {
            if let Some((name, m, _, _)) = self.open.take() {
                self.dev.check()?;
                self.mats.insert(name, m);
            }
        }
        Ok(())
    }
}

/// A model resident on the GPU: device, kernels, weights.
pub struct GpuModel {
    pub(super) dev: GpuDevice,
    pub(super) kernels: Kernels,
    pub(super) hp: HParams,
    pub(super) tok_embd: GpuMatrix,
    pub(super) output: Option<GpuMatrix>,
    pub(super) output_norm: wgpu::Buffer,
    pub(super) output_bias: Option<wgpu::Buffer>,
    /// RoPE frequency factors beyond the original context (and within it: `rope_short`); the
    /// same unless the model has LongRoPE factors.
    pub(super) rope_long: Option<Vec<f32>>,
    pub(super) rope_short: Option<Vec<f32>>,
    pub(super) layers: Vec<GpuLayer>,
    /// Bound where a kernel's read-only buffer is unused.
    pub(super) dummy: wgpu::Buffer,
    /// Bound where a kernel's writable buffer is unused.
    pub(super) dummy_rw: wgpu::Buffer,
    pub(super) buffer_bytes: u64,
    pub(super) tensor_bytes: u64,
}

impl GpuModel {
    /// Open the GPU and upload `model`'s weights.
    pub async fn new(model: &Model, opts: &GpuOptions) -> Result<GpuModel> {
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
    pub async fn from_uploader(up: GpuUploader, model: &Model) -> Result<GpuModel> {
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
        // A matrix the uploader already holds, else upload it from the host bytes now.
        let mut mat = |t: &QTensor| match pre.remove(&t.name) {
            Some(m) => Ok(m),
            None if t.data.is_empty() => Err(Error::Model(format!(
                "tensor `{}` is neither on the GPU nor on the host",
                t.name
            ))),
            None => GpuMatrix::from_tensor(&dev, t),
        };
        let opt_buf = |name: &str, v: &Option<Vec<f32>>| -> Result<Option<wgpu::Buffer>> {
            v.as_deref().map(|v| dev.upload_f32(name, v)).transpose()
        };
        let norm_buf = |name: &str, n: &Norm| {
            let wb: Vec<f32> = n.w.iter().chain(n.b.iter().flatten()).copied().collect();
            dev.upload_f32(name, &wb)
        };
        let opt_norm =
            |name: &str, n: &Option<Norm>| n.as_ref().map(|n| norm_buf(name, n)).transpose();
        // Vectors side by side, zeros for a missing one; none if all are missing.
        let side_by_side = |name: &str, parts: &[(&Option<Vec<f32>>, usize)]| {
            if parts.iter().all(|(v, _)| v.is_none()) {
                return Ok(None);
            }
            let mut all = Vec::new();
            for (v, n) in parts {
                match v {
                    Some(v) if v.len() == *n => all.extend_from_slice(v),
                    Some(v) => {
                        return Err(Error::Model(format!(
                            "`{name}`: a bias of {} values for {n} rows",
                            v.len()
                        )))
                    }
                    None => all.resize(all.len() + n, 0.0),
                }
            }
            dev.upload_f32(name, &all).map(Some)
        };
        let (qd, kvd) = (hp.q_dim(), hp.kv_dim());
        let qk_norm = |name: &str, v: &Option<Vec<f32>>| -> Result<Option<(wgpu::Buffer, usize)>> {
            v.as_deref()
                .map(|v| Ok((dev.upload_f32(name, v)?, v.len())))
                .transpose()
        };
        let mut layers = Vec::with_capacity(w.layers.len());
        for (i, l) in w.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(GpuLayer {
                attn_norm: opt_norm(&n("attn_norm"), &l.attn_norm)?,
                wq: mat(&l.wq)?,
                wk: mat(&l.wk)?,
                wv: mat(&l.wv)?,
                wo: mat(&l.wo)?,
                b_qkv: side_by_side(&n("b_qkv"), &[(&l.bq, qd), (&l.bk, kvd), (&l.bv, kvd)])?,
                bo: opt_buf(&n("bo"), &l.bo)?,
                q_norm: qk_norm(&n("q_norm"), &l.q_norm)?,
                k_norm: qk_norm(&n("k_norm"), &l.k_norm)?,
                post_attn_norm: opt_buf(&n("post_attn_norm"), &l.post_attn_norm)?,
                ffn_norm: opt_norm(&n("ffn_norm"), &l.ffn_norm)?,
                w_gate: l.w_gate.as_ref().map(&mut mat).transpose()?,
                w_up: mat(&l.w_up)?,
                w_down: mat(&l.w_down)?,
                b_gate: opt_buf(&n("b_gate"), &l.b_gate)?,
                b_up: opt_buf(&n("b_up"), &l.b_up)?,
                b_gate_up: match l.w_gate {
                    Some(_) => {
                        side_by_side(&n("b_gate_up"), &[(&l.b_gate, hp.n_ff), (&l.b_up, hp.n_ff)])?
                    }
                    None => None,
                },
                b_down: opt_buf(&n("b_down"), &l.b_down)?,
                post_ffn_norm: opt_buf(&n("post_ffn_norm"), &l.post_ffn_norm)?,
            });
            dev.check()?;
        }
        let tok_embd = mat(&w.tok_embd)?;
        let output = w.output.as_ref().map(&mut mat).transpose()?;
        let output_norm = norm_buf("output_norm", &w.output_norm)?;
        let output_bias = opt_buf("output_bias", &w.output_bias)?;
        let dummy = dev.upload("dummy", &[0u8; 16])?;
        let dummy_rw = dev.scratch("dummy_rw", 4, wgpu::BufferUsages::empty())?;
        dev.check()?;
        // plain products: the lm head and the matrices no fused product takes
        let mut types: Vec<GgmlType> = vec![w.lm_head().ty];
        types.extend(plain_types(hp, &layers));
        let fused = fused_keys(hp, &layers);
        let kernels = Kernels::new(&dev, &types, &[w.tok_embd.ty], &fused).await?;

        let ob = |x: &Option<wgpu::Buffer>| x.as_ref().map_or(0, |x| x.size());
        let mut buffer_bytes = tok_embd.buffer_bytes()
            + output.as_ref().map_or(0, |o| o.buffer_bytes())
            + output_norm.size()
            + ob(&output_bias);
        for l in &layers {
            buffer_bytes += l.matrices().map(|m| m.buffer_bytes()).sum::<u64>();
            buffer_bytes += l.vectors().map(|b| b.size()).sum::<u64>();
        }
        Ok(GpuModel {
            dev,
            kernels,
            hp: hp.clone(),
            tok_embd,
            output,
            output_norm,
            output_bias,
            rope_long: w.rope_factors(hp, 1 << 40).map(<[f32]>::to_vec),
            rope_short: w.rope_factors(hp, 0).map(<[f32]>::to_vec),
            layers,
            dummy,
            dummy_rw,
            buffer_bytes,
            tensor_bytes,
        })
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

    /// What the ops need of the model besides their buffers.
    pub(super) fn ctx(&self) -> super::ops::Ctx<'_> {
        super::ops::Ctx {
            dev: &self.dev,
            k: &self.kernels,
            dummy: &self.dummy,
            dummy_rw: &self.dummy_rw,
        }
    }

    pub(super) fn lm_head(&self) -> &GpuMatrix {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }
}

impl GpuModel {
    /// The RoPE frequency factors for a context of `n_ctx` positions (see
    /// [`Weights::rope_factors`]).
    pub(super) fn rope_factors(&self, n_ctx: usize) -> Option<&[f32]> {
        if self.hp.long_rope(n_ctx) {
            self.rope_long.as_deref()
        } else {
            self.rope_short.as_deref()
        }
    }
}
